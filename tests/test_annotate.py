"""Annotating a new record: real records, the packaged encoder, FAISS and SQLite.

The index is conftest's ``small_index`` (100, 119, 208, 209); the record annotated is
233 (DS2, not in the index, 831 V beats). Assertions are on what the pipeline
guarantees (expert labels honoured, files readable, monotone effect of expert V
labels), never on a particular model's exact labels.
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
from helpers import resample
from simsearch.errors import AnnotationError, SimsearchError
from simsearch.evaluation.matching import MATCH_TOLERANCE_S, match_peaks, pair_peaks
from simsearch.evaluation.metrics import class_metrics, confusion_matrix
from simsearch.label.annotate import LOW_CONFIDENCE, add_to_index, annotate_record, suggest_beats, summary
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
    assert (detected.label_source == "propagated").all()
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


def test_expert_labels_are_honoured(small_index, data_dir, from_reference):
    _, ref_classes = reference(data_dir)
    # labels against the evidence: three N beats called V, three V beats 'a' (aberrated APC, class S)
    n_rows = np.flatnonzero(ref_classes == "N")[:3]
    v_rows = np.flatnonzero(ref_classes == "V")[:3]
    expert = {int(from_reference.samples[r]) + 20: "V" for r in n_rows}  # 55 ms off: still that beat
    expert |= {int(from_reference.samples[r]): "a" for r in v_rows}
    ann = annotate_record(small_index, RECORD, data_dir=data_dir, beats="reference", expert_labels=expert)
    assert list(ann.labels[n_rows]) == ["V"] * 3 and list(ann.labels[v_rows]) == ["S"] * 3
    assert list(ann.symbols[v_rows]) == ["a"] * 3
    assert (ann.label_source[np.concatenate([n_rows, v_rows])] == "expert").all()
    assert (ann.confidence[ann.expert_mask] == 1.0).all()
    assert ann.expert_mask.sum() == 6
    assert summary(ann)["by_label_source"] == {"expert": 6, "propagated": len(ann) - 6}


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


def test_expert_v_labels_do_not_lower_v_sensitivity(small_index, data_dir, from_reference):
    """Simulated expert: 15 V beats, labeled from the reference. V sensitivity on the
    other beats is measured with and without them; clamping V labels can only add V
    evidence to every other beat, so it must not fall."""
    ref_samples, ref_classes = reference(data_dir)
    assert np.array_equal(ref_samples, from_reference.samples)
    v_rows = np.flatnonzero(ref_classes == "V")
    chosen = v_rows[np.linspace(0, v_rows.size - 1, 15).astype(int)]
    adapted = annotate_record(small_index, RECORD, data_dir=data_dir, beats="reference",
                              expert_labels={int(ref_samples[r]): "V" for r in chosen})
    scored = ~adapted.expert_mask
    truth = np.array([AAMI_CLASSES.index(c) for c in ref_classes])

    def v_se(labels):
        predicted = np.array([AAMI_CLASSES.index(c) for c in labels])
        return class_metrics(confusion_matrix(truth[scored], predicted[scored]))["classes"]["V"]["se"]

    before, after = v_se(from_reference.labels), v_se(adapted.labels)
    print(f"V Se on the other beats of {RECORD}: {before} without expert labels, {after} with 15 V labels")
    assert after >= before


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


def test_summary_counts(detected):
    report = summary(detected)
    assert sum(report["by_class"].values()) == len(detected)
    low = report["low_confidence"]
    assert low["count"] == int((detected.confidence < LOW_CONFIDENCE).sum()) == len(low["samples"])


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


def test_cli_annotate_writes_the_files(small_index, unannotated, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("annotate", small_index.path, unannotated, "--out", out, "--suggest", "4", "--plot", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
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
    from simsearch.signal.beats import WINDOW_AFTER, WINDOW_BEFORE
    from simsearch.plots import plot_neighbors, plot_strip

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


def test_a_record_at_another_rate_is_labeled_in_its_own_samples(small_index, data_dir, tmp_path):
    """Five minutes of 233 written at 250 Hz: beats are found and labeled at 360 Hz, reported at 250 Hz."""
    fs = 250
    rec = load_record(RECORD, data_dir)
    signal = resample(rec.signal[:int(300 * rec.fs)], rec.fs, fs)
    wfdb.wrsamp("slow", fs=fs, units=["mV"], sig_name=["MLII"], p_signal=signal[:, None], fmt=["16"],
                write_dir=str(tmp_path))
    annotation = annotate_record(small_index, tmp_path / "slow")
    assert annotation.fs == fs and annotation.n_samples == signal.size
    assert annotation.samples.max() < signal.size
    ref_samples, _ = reference(data_dir)
    ref_at_fs = np.round(ref_samples[ref_samples < 300 * rec.fs] * fs / rec.fs).astype(int)
    # the detected beats, in 250 Hz samples, sit on the reference beats converted to 250 Hz
    ref_rows, test_rows = pair_peaks(ref_at_fs, annotation.samples, fs, MATCH_TOLERANCE_S)
    assert len(ref_rows) > 0.95 * len(ref_at_fs)
    assert np.median(np.abs(ref_at_fs[ref_rows] - annotation.samples[test_rows])) <= 0.02 * fs
