"""Annotating a new record: real records, the packaged encoder, FAISS and SQLite.

The index is conftest's ``small_index`` (100, 119, 208, 209); the record annotated is
233 (DS2, not in the index, 831 V beats). Assertions are on what the pipeline
guarantees (which beat an expert label names, files readable, suggestions never
repeated) and on behaviour no construction forces (expert labels spreading to similar
beats), never on a particular model's exact labels. Label spreading and suggestions
are also checked on small synthetic problems against their definitions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import wfdb

from simsearch import BeatIndex
from simsearch.aami import AAMI_CLASSES, AAMI_TO_SYMBOL, SYMBOL_TO_AAMI
from simsearch.errors import AnnotationError, SimsearchError
from simsearch.evaluation.matching import match_peaks
from simsearch.label.annotate import add_to_index, annotate_record, suggest_beats, summary
from simsearch.label.expert import read_labels
from simsearch.label.export import write_annotation, write_suggestions
from simsearch.label.query import query_beat, query_signal
from simsearch.signal.records import load_record

RECORD = "233"


def reference(data_dir, record=RECORD):
    """(samples, AAMI classes) of the record's reference beats."""
    rec = load_record(record, data_dir)
    beat = np.array([s in SYMBOL_TO_AAMI for s in rec.ann_symbols])
    return rec.ann_samples[beat], np.array([SYMBOL_TO_AAMI[s] for s in rec.ann_symbols[beat]])


@pytest.fixture(scope="module")
def unannotated(data_dir, tmp_path_factory):
    """233's signal files alone, without its .atr."""
    where = tmp_path_factory.mktemp("unannotated")
    for ext in ("hea", "dat"):
        shutil.copy(data_dir / f"{RECORD}.{ext}", where / f"{RECORD}.{ext}")
    return where / RECORD


@pytest.fixture(scope="module")
def detected(small_index, unannotated):
    """233 annotated from detected beats, no expert labels."""
    return annotate_record(small_index, unannotated)


@pytest.fixture(scope="module")
def from_reference(small_index, data_dir):
    """233 annotated at its reference beat positions, no expert labels."""
    return annotate_record(small_index, RECORD, data_dir=data_dir, beats="reference")


def test_annotates_a_record_without_annotation_file(detected, data_dir):
    ref_samples, _ = reference(data_dir)
    tp, fn, fp = match_peaks(ref_samples, detected.samples, detected.fs)
    assert tp / (tp + fn) > 0.95 and tp / (tp + fp) > 0.95
    assert set(detected.labels) <= set(AAMI_CLASSES)
    assert ((detected.confidence >= 0) & (detected.confidence <= 1)).all()
    doubted = detected.beats.doubted
    assert np.array_equal(detected.label_source == "doubted", doubted)  # no expert label: the rest propagated
    assert (detected.label_source[~doubted] == "propagated").all()
    assert (detected.labels[doubted] == "Q").all()
    assert np.array_equal(detected.confidence[doubted], detected.beats.detection_probability[doubted])
    assert np.allclose(detected.scores.sum(axis=1), 1.0)
    assert detected.embeddings.shape[0] == len(detected.beats) == len(detected)
    assert (np.diff(detected.samples) > 0).all()


def test_writes_files_wfdb_reads_with_beat_symbols_only(detected, tmp_path):
    paths = write_annotation(detected, tmp_path / "out")
    ann = wfdb.rdann(str(tmp_path / "out" / RECORD), "pred")
    assert np.array_equal(ann.sample, detected.samples)
    assert set(ann.symbol) <= set(AAMI_TO_SYMBOL.values())
    lines = paths["csv"].read_text().splitlines()
    assert lines[0].startswith("sample,time,label,symbol,confidence,label_source,neighbors")
    assert len(lines) == len(detected) + 1
    first = lines[1].split(",")
    assert first[5] == "propagated" and len(first[6].split()) == 3 and first[6].count(":") == 6
    document = json.loads(paths["json"].read_text())
    assert len(document["beats"]) == len(detected) and document["summary"]["beats"] == len(detected)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.mark.parametrize("ext", ["atr", "ATR", ".atr", "hea", "p/x"])
def test_reference_and_bad_extensions_are_refused(detected, tmp_path, ext):
    with pytest.raises(AnnotationError):
        write_annotation(detected, tmp_path, ext)
    assert not list(tmp_path.iterdir())


def test_expert_labels_name_the_nearest_beat_and_spread_to_the_beats_like_it(small_index, data_dir,
                                                                            from_reference):
    """An expert label's own beat is set to it (by construction, so not the point here);
    what is tested is which beat a label names, how its symbol reads, and that
    spreading carries it to the beats that resemble that beat."""
    _, ref_classes = reference(data_dir)
    n_rows = np.flatnonzero(ref_classes == "N")[:3]
    v_rows = np.flatnonzero(ref_classes == "V")[:3]
    expert = {int(from_reference.samples[r]) + 20: "V" for r in n_rows}  # 55 ms off: still that beat
    expert |= {int(from_reference.samples[r]): "a" for r in v_rows}  # 'a': aberrated APC, an S symbol
    ann = annotate_record(small_index, RECORD, data_dir=data_dir, beats="reference", expert_labels=expert)
    assert sorted(np.flatnonzero(ann.expert_mask)) == sorted(np.concatenate([n_rows, v_rows]))
    assert list(ann.labels[v_rows]) == ["S"] * 3 and list(ann.symbols[v_rows]) == ["a"] * 3
    assert list(ann.symbols[n_rows]) == ["V"] * 3
    assert summary(ann)["by_label_source"] == {"expert": 6, "propagated": len(ann) - 6, "doubted": 0}
    # 233's VEBs form one tight cluster: three of them called S carry S to their nearest beats
    s = AAMI_CLASSES.index("S")
    for row in v_rows:
        similarity = ann.embeddings @ ann.embeddings[row]
        similarity[ann.expert_mask] = -np.inf
        nearest = np.argsort(-similarity)[:10]
        assert (from_reference.labels[nearest] != "S").all()
        # all 10 turn S with the packaged encoder (5153e098...; 4 to 10 with e68cbd88...); every one's S score rises
        assert (ann.labels[nearest] == "S").sum() >= 4, ann.labels[nearest]
        assert (ann.scores[nearest, s] > from_reference.scores[nearest, s] + 0.3).all()


def test_expert_label_far_from_any_beat_is_an_error(small_index, data_dir, from_reference):
    gaps = np.diff(from_reference.samples)
    row = int(np.argmax(gaps))  # the middle of the longest RR is > 150 ms from both beats
    middle = int(from_reference.samples[row] + gaps[row] // 2)
    assert gaps[row] / 2 > 0.15 * from_reference.fs
    with pytest.raises(AnnotationError, match="no beat within 150 ms"):
        annotate_record(small_index, RECORD, data_dir=data_dir, beats="reference", expert_labels={middle: "N"})


def test_unknown_expert_label_is_an_error(small_index, data_dir, from_reference):
    with pytest.raises(AnnotationError, match="unknown label"):
        annotate_record(small_index, RECORD, data_dir=data_dir, beats="reference",
                        expert_labels={int(from_reference.samples[10]): "Z"})


def test_suggestions_are_distinct_new_and_deterministic(small_index, detected, unannotated):
    first = suggest_beats(detected, 8)
    assert first.size == 8 and np.unique(first).size == 8
    assert np.isin(first, detected.samples).all()
    assert np.array_equal(first, suggest_beats(detected, 8))
    expert = {int(s): "N" for s in first[:4]}
    relabeled = annotate_record(small_index, unannotated, expert_labels=expert)
    again = suggest_beats(relabeled, 8)
    assert again.size == 8 and np.unique(again).size == 8
    assert not np.isin(again, first[:4]).any()
    assert suggest_beats(detected, len(detected) + 5).size == len(detected)


def test_labels_file_round_trip_and_errors(detected, tmp_path):
    path = write_suggestions(detected, suggest_beats(detected, 3), tmp_path)
    assert path.name == f"{RECORD}.suggest.csv"
    assert read_labels(path) == {}  # nothing filled in yet
    lines = path.read_text().splitlines()
    filled = [lines[0]] + [line.replace(",,", ",V,", 1) for line in lines[1:]]
    path.write_text("\n".join(filled) + "\n")
    assert set(read_labels(path).values()) == {"V"} and len(read_labels(path)) == 3
    plain = tmp_path / "plain.csv"
    plain.write_text("100,N\n200, a\n")  # no header
    assert read_labels(plain) == {100: "N", 200: "a"}
    bad = tmp_path / "bad.csv"
    bad.write_text("sample,label\n100,N\n200,Z\n")
    with pytest.raises(AnnotationError, match=r"bad.csv:3: unknown label 'Z'"):
        read_labels(bad)
    bad.write_text("sample,label\n1x0,N\n")
    with pytest.raises(AnnotationError, match="not a whole number"):
        read_labels(bad)
    with pytest.raises(AnnotationError):
        read_labels(tmp_path / "missing.csv")


def test_add_to_index_stores_provenance(small_index, data_dir, from_reference, tmp_path):
    index_dir = tmp_path / "idx"
    shutil.copytree(small_index.path, index_dir)  # the shared index stays untouched
    ref_samples, ref_classes = reference(data_dir)
    expert = {int(s): "V" for s in ref_samples[ref_classes == "V"][:5]}
    ann = annotate_record(small_index, RECORD, data_dir=data_dir, beats="reference", expert_labels=expert)
    before = len(small_index)
    with BeatIndex.updating(index_dir) as index:
        ids = add_to_index(index, ann)
    assert ids.size == len(ann)
    index = BeatIndex.open(index_dir)
    rows = index.catalog.beats(record=RECORD)
    assert len(index) == before + len(ann)
    assert list(rows["sample"]) == list(ann.samples)
    assert list(rows["aami"]) == list(ann.labels)
    assert (rows["label_source"] == "expert").sum() == 5
    assert (rows["label_source"] == "propagated").sum() == len(ann) - 5
    assert all(c is not None and 0 <= c <= 1 for c in rows["confidence"])
    assert index.catalog.counts()["by_label_source"]["expert"] == 5


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "simsearch", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ}, timeout=300)


def test_cli_annotate_writes_the_files(small_index, unannotated, tmp_path, capsys):
    """In this process (the command line as a subprocess, piped: tests/test_holter.py)."""
    from simsearch import cli

    out = tmp_path / "out"
    cli.main(["annotate", small_index.path, unannotated, "--out", out, "--suggest", "4", "--plot", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["record"] == RECORD and len(report["suggestions"]) == 4
    for name in (f"{RECORD}.pred", f"{RECORD}.pred.csv", f"{RECORD}.pred.json", f"{RECORD}.suggest.csv",
                 f"{RECORD}.strip.png"):
        assert (out / name).is_file(), name
    assert len(wfdb.rdann(str(out / RECORD), "pred").sample) == report["beats"]


def test_cli_annotate_missing_record_is_one_line_error(small_index, tmp_path):
    proc = run_cli("annotate", small_index.path, tmp_path / "nope", "--out", tmp_path / "out")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "record not found" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_plots_write_pngs(small_index, detected, data_dir, tmp_path):
    from simsearch.plots import plot_neighbors, plot_strip
    from simsearch.signal.beats import WINDOW_AFTER, WINDOW_BEFORE

    png = b"\x89PNG"
    strip = plot_strip(detected, tmp_path / "strip.png", start_s=10, seconds=8)
    assert strip.read_bytes().startswith(png)
    with pytest.raises(SimsearchError):
        plot_strip(detected, tmp_path / "late.png", start_s=1e6)
    stored = query_beat(small_index, "119", 5000, k=5)
    assert plot_neighbors(small_index, stored, tmp_path / "stored.png").read_bytes().startswith(png)
    rec = load_record(RECORD, data_dir)
    peak = int(detected.beats.samples[20])
    raw = query_signal(small_index, rec.signal[peak - 720:peak + 720], rec.fs, sample=720, k=5)
    window = rec.signal[peak - WINDOW_BEFORE:peak + WINDOW_AFTER]
    path = plot_neighbors(small_index, raw, tmp_path / "raw.png", query_window=window)
    assert path.read_bytes().startswith(png)


def test_a_drawn_beat_is_cut_from_its_few_seconds_as_from_the_whole_record(small_index, data_dir):
    from simsearch.plots import _beat_window
    from simsearch.signal.beats import MODEL_FS, rescale_samples, segment, to_model_rate
    from simsearch.signal.filtering import clean_ecg

    record = load_record("201", data_dir, annotations=None)  # not in the index: read as named
    whole = clean_ecg(to_model_rate(record.signal, record.fs), MODEL_FS)
    for sample in (300, 300_000, record.n_samples - 100):  # the seconds cut short at both ends too
        at = min(int(rescale_samples(sample, record.fs, MODEL_FS)), whole.size - 1)
        drawn = _beat_window(small_index, "201", None, sample, data_dir)
        np.testing.assert_allclose(drawn, segment(whole, np.array([at]))[0], atol=1e-3)


# ---------------------------------------------------------------- label spreading and suggestions, synthetic

def iterate_spreading(graph, prior, clamped, alpha, tol=1e-12, max_steps=200_000):
    """Zhou et al.'s iteration F <- alpha S F + (1 - alpha) Y, clamped rows reset to Y each step."""
    dense = graph.toarray()
    f = prior.copy()
    for _ in range(max_steps):
        new = alpha * dense @ f + (1 - alpha) * prior
        new[clamped] = prior[clamped]
        if np.abs(new - f).max() < tol:
            return new
        f = new
    raise AssertionError("the iteration did not converge")


@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.99])
def test_spread_is_the_fixed_point_of_the_iteration(alpha):
    from simsearch.label.spreading import knn_graph, spread

    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    graph = knn_graph(x, k=5)
    dense = graph.toarray()
    assert np.allclose(dense, dense.T) and (dense >= 0).all() and not np.diag(dense).any()
    assert np.abs(np.linalg.eigvalsh(dense)).max() <= 1 + 1e-9  # why the iteration converges for alpha < 1
    prior = rng.dirichlet(np.ones(5), size=60)
    clamped = np.array([3, 17, 42])
    prior[clamped] = 20.0 * np.eye(5)[[1, 2, 3]]
    expected = iterate_spreading(graph, prior, clamped, alpha)
    got = spread(graph, prior, clamped, alpha)
    np.testing.assert_allclose(got, expected, atol=1e-8)
    np.testing.assert_array_equal(got[clamped], prior[clamped])
    # nothing clamped, and everything clamped
    np.testing.assert_allclose(spread(graph, prior, np.empty(0, np.int64), alpha),
                               iterate_spreading(graph, prior, np.empty(0, np.int64), alpha), atol=1e-8)
    np.testing.assert_array_equal(spread(graph, prior, np.arange(60), alpha), prior)


def clustered(n_clusters=6, per_cluster=40, dim=8, seed=0):
    """Unit vectors in tight, well separated clusters: (embeddings, cluster of each row)."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:n_clusters]
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    x = centres[cluster] + 0.05 * rng.normal(size=(cluster.size, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), cluster


def test_suggest_rows_prefers_uncertain_clusters_and_never_repeats_an_expert_beat():
    from simsearch.label.suggest import suggest_rows

    x, cluster = clustered()
    scores = np.zeros((cluster.size, 5))
    scores[:, 0] = 1.0                               # every cluster sure (margin 1)...
    scores[cluster == 5] = [0.5, 0.5, 0, 0, 0]       # ...but cluster 5, a coin toss (margin 0)
    none = np.zeros(cluster.size, dtype=bool)
    first = suggest_rows(x, scores, none, 6)
    assert first.size == 6 and np.unique(first).size == 6
    assert (cluster[first] == 5).all()
    np.testing.assert_array_equal(first, suggest_rows(x, scores, none, 6))  # deterministic
    scores[cluster == 4] = [0.6, 0.4, 0, 0, 0]       # cluster 4 doubtful too (margin 0.2)
    first = suggest_rows(x, scores, none, 6)
    assert set(cluster[first]) == {4, 5}
    # with cluster 5 labeled by the expert, its beats are never suggested again, and cluster 4 leads
    expert = cluster == 5
    expert[np.flatnonzero(cluster == 5)[-3:]] = False  # three of its beats still unlabeled
    again = suggest_rows(x, scores, expert, 6)
    assert np.unique(again).size == 6 and not expert[again].any()
    assert cluster[again[0]] == 4
    # asking for more than there is gives every unlabeled beat once
    everything = suggest_rows(x, scores, expert, 10_000)
    assert sorted(everything) == sorted(np.flatnonzero(~expert))
    assert suggest_rows(x, scores, np.ones(cluster.size, dtype=bool), 5).size == 0


def test_one_suggestion_goes_to_the_most_premature_beat_called_normal():
    from simsearch.label.suggest import PREMATURE_FROM, premature_ratio, suggest_rows
    from simsearch.signal.beats import CONTEXT_COLUMNS

    x, cluster = clustered()
    scores = np.zeros((cluster.size, 5))
    scores[:, 0] = 1.0
    scores[cluster == 5] = [0.5, 0.5, 0, 0, 0]
    none = np.zeros(cluster.size, dtype=bool)
    context = np.zeros((cluster.size, len(CONTEXT_COLUMNS)))
    context[:, CONTEXT_COLUMNS.index("rr_sinus")] = 1.0
    context[:, CONTEXT_COLUMNS.index("rr_prev")] = 1.0
    early, earlier, called_v = np.flatnonzero(cluster == 1)[:3]
    context[[early, earlier, called_v], CONTEXT_COLUMNS.index("rr_prev")] = [0.6, 0.5, 0.4]
    scores[called_v] = [0.2, 0, 0.8, 0, 0]            # the earliest beat is called V: not asked for that
    assert premature_ratio(context)[earlier] == 0.5
    plain = suggest_rows(x, scores, none, 6)
    with_rhythm = suggest_rows(x, scores, none, 6, context=context)
    np.testing.assert_array_equal(with_rhythm[:-2], plain[:-2])
    assert with_rhythm[-1] == earlier
    assert with_rhythm[-2] == called_v                 # the one beat called V is asked about too
    answered = none.copy()
    answered[[earlier, called_v]] = True               # once answered, the next earliest is asked
    again = suggest_rows(x, scores, answered, 6, context=context)
    assert again[-1] == early and not answered[again].any()
    few = suggest_rows(x, scores, none, PREMATURE_FROM - 1, context=context)
    np.testing.assert_array_equal(few, suggest_rows(x, scores, none, PREMATURE_FROM - 1))
    context[:, CONTEXT_COLUMNS.index("rr_prev")] = 0.95  # none earlier than PREMATURE_RATIO
    scores[called_v] = [1.0, 0, 0, 0, 0]                 # and none called V: the clusters only
    np.testing.assert_array_equal(suggest_rows(x, scores, none, 6, context=context), suggest_rows(x, scores, none, 6))


def test_the_beat_called_v_most_like_the_dominant_beat_is_asked_about():
    from simsearch.label.suggest import DOMINANT_V_COLUMN, suggest_rows
    from simsearch.signal.beats import CONTEXT_COLUMNS

    x, cluster = clustered()
    scores = np.zeros((cluster.size, 5))
    scores[:, 0] = 1.0
    scores[cluster == 5] = [0.5, 0.5, 0, 0, 0]       # the clusters' questions go to cluster 5
    wide, like_dominant = np.flatnonzero(cluster == 2)[:2]
    scores[[wide, like_dominant]] = [0, 0, 1.0, 0, 0]  # sure calls: no cluster question goes to them
    context = np.zeros((cluster.size, len(CONTEXT_COLUMNS)))
    context[:, CONTEXT_COLUMNS.index("rr_sinus")] = 1.0
    context[:, CONTEXT_COLUMNS.index("rr_prev")] = 1.0
    context[[wide, like_dominant], CONTEXT_COLUMNS.index(DOMINANT_V_COLUMN)] = [0.8, 0.05]
    rows = suggest_rows(x, scores, np.zeros(cluster.size, dtype=bool), 6, context=context)
    assert rows[-2] == like_dominant and wide not in rows


def test_a_call_of_five_asks_where_the_spreading_overrules_the_vote():
    from simsearch.label.suggest import DISAGREEMENT_FROM, overruled_ectopic_call, suggest_rows

    x, cluster = clustered()
    scores = np.zeros((cluster.size, 5))
    scores[:, 0] = 1.0
    scores[cluster == 5] = [0.5, 0.5, 0, 0, 0]       # the clusters' questions go to cluster 5
    prior = scores.copy()
    voted_s, surer_s, voted_v = np.flatnonzero(cluster == 3)[:3]
    prior[[voted_s, surer_s, voted_v]] = [[0.4, 0.6, 0, 0, 0], [0.2, 0.8, 0, 0, 0], [0.45, 0, 0.55, 0, 0]]
    none = np.zeros(cluster.size, dtype=bool)
    plain = suggest_rows(x, scores, none, DISAGREEMENT_FROM)
    rows = suggest_rows(x, scores, none, DISAGREEMENT_FROM, prior_scores=prior)
    assert rows[-3] == surer_s and np.delete(rows, -3).tolist() == np.delete(plain, -3).tolist()
    answered = none.copy()
    answered[surer_s] = True                         # answered: the next surest overruled vote is asked
    assert suggest_rows(x, scores, answered, DISAGREEMENT_FROM, prior_scores=prior)[-3] == voted_s
    # a smaller call keeps its cluster questions; where the spreading agrees with the vote, nothing is asked
    few = DISAGREEMENT_FROM - 1
    np.testing.assert_array_equal(suggest_rows(x, scores, none, few, prior_scores=prior),
                                  suggest_rows(x, scores, none, few))
    assert overruled_ectopic_call(prior, prior, np.arange(cluster.size)) is None
    assert overruled_ectopic_call(prior, scores, np.array([voted_v])) == voted_v



def test_doubted_detections_are_labeled_q_and_kept_out_of_the_index_unless_the_expert_labels_them(
        small_index, data_dir, noise_dir, tmp_path):
    """A detection the other lead's check doubts is labeled Q (source 'doubted', its confidence the check's
    probability); an expert label overrides that, and only the beats not doubted or labeled by the expert enter
    the index."""
    from simsearch.evaluation.noise import noise_leads, noisy_copies

    clean = load_record("232", data_dir, span_s=(0, 300))
    (_, noisy), = noisy_copies(clean, noise_leads("em", noise_dir), [6], 0, tmp_path)
    plain = annotate_record(small_index, noisy.path, beats="detect")
    doubted = np.flatnonzero(plain.beats.doubted)
    assert doubted.size >= 2, "em at 6 dB makes detections the check doubts"
    answered = int(plain.samples[doubted[0]])
    ann = annotate_record(small_index, noisy.path, beats="detect", expert_labels={answered: "N"})
    assert ann.labels[doubted[0]] == "N" and ann.label_source[doubted[0]] == "expert"
    assert (ann.label_source[doubted[1:]] == "doubted").all() and (ann.labels[doubted[1:]] == "Q").all()
    assert summary(ann)["by_label_source"]["doubted"] == doubted.size - 1
    index_dir = tmp_path / "idx"
    shutil.copytree(small_index.path, index_dir)
    with BeatIndex.updating(index_dir) as index:
        add_to_index(index, ann)
    rows = BeatIndex.open(index_dir).catalog.beats(record=ann.record)
    assert list(rows["sample"]) == list(np.delete(ann.samples, doubted[1:]))
    assert list(rows["aami"]) == list(np.delete(ann.labels, doubted[1:]))


def test_a_query_says_whether_its_beat_is_doubted(small_index, data_dir, noise_dir, tmp_path):
    """The beat asked about is marked doubted where annotate would label it Q; a stored beat never is."""
    from simsearch.evaluation.noise import noise_leads, noisy_copies
    from simsearch.signal.beats import beats_from_record

    clean = load_record("232", data_dir, span_s=(0, 300))
    (_, noisy), = noisy_copies(clean, noise_leads("em", noise_dir), [6], 0, tmp_path)
    beats = beats_from_record(load_record(noisy.path, annotations=None))
    doubted, believed = np.flatnonzero(beats.doubted)[0], np.flatnonzero(~beats.doubted)[0]
    assert query_beat(small_index, noisy.path, int(beats.samples[doubted]), 3).query["doubted"] is True
    assert query_beat(small_index, noisy.path, int(beats.samples[believed]), 3).query["doubted"] is False
    assert query_beat(small_index, "208", 61785, 3).query["doubted"] is False
