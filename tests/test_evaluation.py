"""EC57 scoring and the inter-patient protocol with its baselines, on real records."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import write_at_rate

from simsearch.aami import AAMI_CLASSES, class_index, to_aami
from simsearch.evaluation.classification import evaluate_classification, raw_rr_vectors, raw_vectors, record_figures
from simsearch.evaluation.metrics import class_metrics, confusion_matrix, precision_at_k
from simsearch.label.vote import DISTANCE_SOFTENING, patient_adapted, prior_weights, vote_scores, vote_winner
from simsearch.model.encoder import Encoder
from simsearch.signal.records import load_record


def test_class_metrics_follow_ec57():
    truth = class_index(list("NNNNSSVVFQ"))
    pred = class_index(list("NNNSSNVVVN"))
    m = class_metrics(confusion_matrix(truth, pred))
    assert m["classes"]["N"] == {"n": 4, "tp": 3, "fn": 1, "fp": 1, "se": 75.0, "ppv": 75.0, "fpr": 20.0}
    assert m["classes"]["S"]["se"] == 50.0 and m["classes"]["S"]["ppv"] == 50.0
    # the F beat called V is not a VEB false positive (EC57), but it is an F false negative
    assert m["classes"]["V"]["fp"] == 0 and m["classes"]["V"]["ppv"] == 100.0
    assert m["classes"]["F"]["se"] == 0.0 and m["classes"]["F"]["ppv"] is None
    assert m["q_beats"]["n"] == 1  # Q is reported apart, not scored
    assert m["accuracy"] == pytest.approx(100 * 6 / 9, abs=0.01)  # Q left out


def test_a_beat_called_q_is_a_miss_as_bxb_counts_it():
    truth = class_index(list("NNSSVVQ"))
    pred = class_index(list("NQSQVVQ"))  # an N and an S beat called Q (bxb's Nq, Sq)
    m = class_metrics(confusion_matrix(truth, pred))
    assert m["classes"]["N"]["se"] == 50.0 and m["classes"]["S"]["se"] == 50.0 and m["called_q"] == 2
    assert m["classes"]["N"]["ppv"] == 100.0 and m["classes"]["V"]["se"] == 100.0
    assert m["accuracy"] == pytest.approx(100 * 4 / 6, abs=0.01)  # the Q beat called Q is not scored


def test_precision_at_k():
    queries = np.array([0, 0, 2])
    neighbors = np.array([[0, 0, 1], [1, 0, 0], [2, 2, 2]])
    p = precision_at_k(queries, neighbors, 2)
    assert p["N"] == pytest.approx(0.75) and p["V"] == 1.0 and p["S"] is None


def test_prior_correction_lets_a_rare_class_win():
    neighbors = np.array([[0, 0, 0, 1, 1]])  # 3 N, 2 S at equal distance
    distances = np.full((1, 5), 0.5)
    plain, _ = vote_winner(vote_scores(neighbors, distances))
    corrected, _ = vote_winner(vote_scores(neighbors, distances, prior_weights(np.array([1000, 10, 0, 0, 0]))))
    assert plain[0] == 0 and corrected[0] == 1
    assert prior_weights(np.array([5, 0, 5, 0, 0]), 1.0)[1] == 0  # an absent class never wins


def test_one_crowding_record_does_not_outvote_the_others():
    # 9 N neighbors from one record, 4 S neighbors from four records, all equally near
    neighbors = np.array([[0] * 9 + [1] * 4])
    records = np.array([[7] * 9 + [1, 2, 3, 4]])
    distances = np.full(neighbors.shape, 0.5)
    plain, _ = vote_winner(vote_scores(neighbors, distances, neighbor_records=records, record_balance=1.0))
    balanced = vote_scores(neighbors, distances, neighbor_records=records, record_balance=0.5)
    assert plain[0] == 0 and vote_winner(balanced)[0][0] == 1
    weight = 1 / (0.5 + DISTANCE_SOFTENING)
    assert balanced[0, 0] / balanced[0, 1] == pytest.approx(np.sqrt(9 * weight) / (4 * np.sqrt(weight)))
    # rows are balanced apart, and missing neighbors (-1) weigh nothing
    two = vote_scores(np.vstack([neighbors, [[0] * 12 + [-1]]]), np.full((2, 13), 0.5),
                      neighbor_records=np.vstack([records, [[7] * 12 + [-1]]]))
    np.testing.assert_allclose(two[0], balanced[0])
    assert two[1, 0] == pytest.approx(1.0)


def test_the_neighbors_shown_put_the_votes_class_first():
    from simsearch.label.vote import vote_first

    neighbors = np.array([[0, 0, 1, 0, 1, -1], [2, 0, 2, 0, 0, 0]])  # nearest first; -1: no neighbor
    order = vote_first(neighbors, np.array([1, 0]))
    np.testing.assert_array_equal(np.take_along_axis(neighbors, order, axis=1), [[1, 1, 0, 0, 0, -1],
                                                                                 [0, 0, 0, 0, 2, 2]])
    np.testing.assert_array_equal(order, [[2, 4, 0, 1, 3, 5], [1, 3, 4, 5, 0, 2]])  # each group in its order


def test_a_record_vote_follows_the_patients_own_class_mix():
    counts = np.array([9000, 200, 700, 80, 0])  # a DS1-like index: no Q
    close = np.array([0.5, 0.5, 0.0, 0.0, 0.0])  # a tie between N and S
    clear_n = np.array([0.95, 0.05, 0.0, 0.0, 0.0])
    clear_s = np.array([0.1, 0.9, 0.0, 0.0, 0.0])
    # a patient with no SVEB: the close call goes to N; one whose rhythm is mostly SVEBs: it stays S
    no_sveb = patient_adapted(np.vstack([np.tile(clear_n, (2000, 1)), close]), counts)
    mostly_sveb = patient_adapted(np.vstack([np.tile(clear_s, (1500, 1)), np.tile(clear_n, (500, 1)), close]), counts)
    assert vote_winner(no_sveb[-1:])[0][0] == 0 and vote_winner(mostly_sveb[-1:])[0][0] == 1
    assert mostly_sveb[-1, 1] > close[1] > no_sveb[-1, 1]
    np.testing.assert_allclose(no_sveb.sum(axis=1), 1.0)
    assert (no_sveb[:, 4] == 0).all()  # a class absent from the index stays absent
    # a strip of a few beats keeps about the index's mix; strength 0 changes nothing; each record on its own
    assert abs(patient_adapted(close[None, :], counts)[0, 1] - close[1]) < 0.02
    np.testing.assert_array_equal(patient_adapted(np.tile(close, (3, 1)), counts, strength=0), np.tile(close, (3, 1)))
    both = patient_adapted(np.vstack([np.tile(clear_n, (2000, 1)), close, np.tile(clear_s, (1500, 1)), close]),
                           counts, np.array([1] * 2001 + [2] * 1501))
    assert vote_winner(both[[2000, -1]])[0].tolist() == [0, 1]
    # a beat no neighbor voted on stays at zero
    assert not patient_adapted(np.vstack([np.tile(clear_n, (10, 1)), np.zeros(5)]), counts)[-1].any()


def test_baseline_vectors_are_unit_raw_beats(data_dir):
    from simsearch.model.datasets import BeatSet, load_beats

    beats = BeatSet.stack(load_beats(["100"], data_dir))
    raw = raw_vectors(beats.windows[:20], beats.context[:20])
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-4)
    assert raw_rr_vectors(beats.windows[:20], beats.context[:20]).shape[1] > raw.shape[1]


def test_the_fixed_part_recombined_is_what_an_encoder_with_those_weights_embeds(data_dir):
    """Cross-validation reweighs the fixed context part without training again (``fixed_weighted``): with the
    encoder's own scale it gives its embeddings, with other weights those of the same encoder built so."""
    from simsearch.evaluation.selection import fixed_weighted, shape_and_inputs
    from simsearch.model.encoder import FIXED_INPUT_WEIGHTS, build_encoder
    from simsearch.signal.beats import beats_from_record

    packaged = Encoder.load()
    other = Encoder(build_encoder(input_weights=(1.0, *FIXED_INPUT_WEIGHTS[1:])))  # prematurity 1
    other.model.set_weights(packaged.model.get_weights())
    beats = beats_from_record(load_record("119", data_dir, span_s=(0, 60)))
    parts = shape_and_inputs(packaged, beats.windows, beats.context)
    assert not np.allclose(packaged.embed(beats.windows, beats.context), other.embed(beats.windows, beats.context),
                           atol=1e-3)
    for encoder in (packaged, other):
        np.testing.assert_allclose(fixed_weighted(*parts, encoder.fixed_scale),
                                   encoder.embed(beats.windows, beats.context), atol=1e-5)


def test_stored_vectors_reweighed_are_what_an_encoder_with_those_weights_embeds(data_dir, small_index):
    """An index keeps only its unit vectors: ``refixed`` recovers from them, one lead or both side by side,
    the vectors of other fixed weights, and the simulated expert's records prepared from an index are
    prepared again so (``refixed_records``): with the encoder's own scale, exactly as they were."""
    from simsearch.evaluation.adaptive import prepare_records, refixed_records
    from simsearch.evaluation.selection import fixed_weighted, refixed, shape_and_inputs
    from simsearch.model.leads import side_by_side
    from simsearch.signal.beats import beats_from_record

    packaged = Encoder.load()
    beats = beats_from_record(load_record("119", data_dir, span_s=(0, 60)))
    parts = shape_and_inputs(packaged, beats.windows, beats.context)
    other = packaged.fixed_scale * np.array([1.0, 2.0, 0.5, *[1.0] * (packaged.fixed_scale.size - 3)])
    own, wanted = (fixed_weighted(*parts, scale) for scale in (packaged.fixed_scale, other))
    np.testing.assert_allclose(refixed(own, packaged.dim, packaged.fixed_scale, other), wanted, atol=1e-5)
    np.testing.assert_allclose(refixed(side_by_side(own, own[::-1]), packaged.dim, packaged.fixed_scale, other),
                               side_by_side(wanted, wanted[::-1]), atol=1e-5)
    with pytest.raises(ValueError, match="none zero"):
        refixed(own, packaged.dim, np.zeros_like(other), other)

    prepared = prepare_records(small_index, ["232"], data_dir)
    (before, truth), = prepared
    (again, same_truth), = refixed_records(prepared, small_index, small_index.encoder.fixed_scale)
    np.testing.assert_array_equal(same_truth, truth)
    np.testing.assert_allclose(again.embeddings, before.embeddings, atol=1e-5)
    np.testing.assert_allclose(again.global_scores, before.global_scores, atol=1e-4)
    np.testing.assert_array_equal(again.neighbor_ids, before.neighbor_ids)
    assert abs(again.graph - before.graph).max() < 1e-4
    (moved, _), = refixed_records(prepared, small_index, other)
    assert not np.allclose(moved.embeddings, before.embeddings, atol=1e-3)
    with pytest.raises(ValueError, match="holds beats of the records"):
        refixed_records(prepare_records(small_index, ["100"], data_dir), small_index, other)


def test_the_simulated_expert_scores_synthetic_paroxysms_per_rhythm(small_index, data_dir):
    """``scripts/cross_validate_adaptive.py --setups``: synthetic records of patients the index does not hold,
    prepared as real ones are (their labels kept apart from the beats), scored per reference rhythm."""
    from simsearch.evaluation.adaptive import prepare_simulated, score_expert

    prepared, rhythms = prepare_simulated(small_index, ["232", "106"], data_dir, "apc_fibrillation")
    assert [record.record for record, _ in prepared] == ["232~apc_fibrillation", "106~apc_fibrillation"]
    for (record, truth), rhythm in zip(prepared, rhythms, strict=True):
        assert len(record.beats) == truth.size == rhythm.size == 600
        assert set(record.beats.aami) == {""} and set(record.beats.symbols) == {""}
        assert record.embeddings.shape == (600, small_index.encoder.dim) and record.graph.shape == (600, 600)
        assert not (truth[rhythm == "AFIB"] == AAMI_CLASSES.index("S")).any()
    report = score_expert(prepared, [5], rhythms=rhythms)
    for budget in report["budgets"].values():
        assert list(budget["per_rhythm"]) == ["AFIB", "N"]
        assert budget["per_rhythm"]["AFIB"]["classes"]["S"]["n"] == 0
        assert sum(r["beats"] for r in budget["per_rhythm"].values()) == 1200 - budget["expert_labels"]
    assert report["budgets"]["5"]["expert_labels"] == 10


def test_classification_protocol_on_a_few_records(data_dir, capsys):
    report = evaluate_classification(data_dir, Encoder.load(), train_records=["119", "209", "118"],
                                     test_records=["100", "232", "233"], k=10)
    assert [s["system"] for s in report["systems"]] == ["raw kNN", "raw+RR kNN", "encoder, one lead",
                                                        "simsearch encoder"]
    assert report["protocol"]["both_leads_skipped"] is None
    n_test = report["protocol"]["test_beats"]
    for system in report["systems"]:
        assert np.sum(system["confusion"]) == n_test
        per_record = system["per_record_confusion"]
        assert list(per_record) == ["100", "232", "233"]
        np.testing.assert_array_equal(np.sum(list(per_record.values()), axis=0), system["confusion"])
        assert 0 <= system["precision_at_10"]["macro_NSV"] <= 1
        # the report's per-record figures are each record's own EC57 figures
        for name, matrix in per_record.items():
            figures, own = system["per_record"][name], class_metrics(np.array(matrix))
            assert figures["beats"] == np.sum(matrix)
            assert figures["classes"]["S"] == {key: own["classes"]["S"][key] for key in ("n", "se", "ppv")}
        # without 232: the pooled figures of the other records, precision@10 of their beats only
        without = system["without_232"]
        others = np.array(per_record["100"]) + np.array(per_record["233"])
        assert without["confusion"] == others.tolist() and without["classes"] == class_metrics(others)["classes"]
        assert without["precision_at_10"]["S"] != system["precision_at_10"]["S"]
        # per reference rhythm: the same beats, grouped by the annotations' rhythm notes, largest first
        per_rhythm = system["per_rhythm_confusion"]
        np.testing.assert_array_equal(np.sum(list(per_rhythm.values()), axis=0), system["confusion"])
        assert list(per_rhythm)[0] == "N" and {"SBR", "B"} <= set(per_rhythm)
        assert system["per_rhythm"]["B"] == record_figures(per_rhythm["B"])
    assert report["systems"][0]["per_record"]["232"]["classes"]["S"]["n"] == 1382
    # 233's ventricular bigeminy: every other beat a VEB
    assert report["systems"][0]["per_rhythm"]["B"]["classes"]["V"]["n"] > 0
    from simsearch.cli import _print_classification

    _print_classification({**report, "plot": "confusion.png"}, as_json=False)
    text = capsys.readouterr().out
    for shown in ("P@10 S", "P@10 NSV", "without record 232 (its 1780 beats left out)", "per record: Se/+P",
                  "per reference rhythm", "│ SBR │ 1780 │ 398 │ 1382 │ 0 │",
                  "│ 232 │ 1780 │ 398 │ 1382 │ 0 │"):
        assert shown in " ".join(text.split()), shown
    encoder_row = report["systems"][-1]
    # 233 holds 831 VEBs; a trained encoder finds most of them in other patients' beats
    assert encoder_row["classes"]["V"]["se"] > 50
    one_lead = report["systems"][2]
    assert one_lead["confusion"] != encoder_row["confusion"] and one_lead["classes"]["V"]["se"] > 50
    with pytest.raises(ValueError, match="overlap"):
        evaluate_classification(data_dir, Encoder.load(), train_records=["100"], test_records=["100"])
    with pytest.raises(ValueError, match=r"overlap.*\['100'\]"):  # by name, whatever the spelling
        evaluate_classification(data_dir, Encoder.load(), train_records=["119", str(data_dir / "100.hea")],
                                test_records=["100"])


def test_cli_refuses_test_records_from_ds1_named_or_by_path(data_dir):
    """101 is a DS1 record: a path to it names it as surely as its bare name does."""
    for records in ("101,100", f"100,{data_dir / '101'}"):
        proc = subprocess.run([sys.executable, "-m", "simsearch", "evaluate", "--data-dir", str(data_dir),
                               "--records", records], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "overlap DS1" in proc.stderr and "['101']" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_detection_task_json(data_dir):
    proc = subprocess.run([sys.executable, "-m", "simsearch", "evaluate", "--task", "detection", "--data-dir",
                           str(data_dir), "--records", "100", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["records"][0]["record"] == "100" and report["total"]["se"] > 99


def test_beat_by_beat_matching_counts_missed_and_extra_beats():
    from simsearch.evaluation.matching import match_labels, matched_metrics

    fs = 360.0
    reference = np.array([1000, 2000, 3000, 4000])
    ref_classes = class_index(list("NVNS"))
    test = np.array([1010, 1990, 3500, 4020])  # 3000 missed, 3500 extra
    test_classes = class_index(list("NVNN"))
    matrix, missed, extra = match_labels(reference, ref_classes, test, test_classes, fs)
    assert matrix.sum() == 3 and missed.sum() == 1 and extra.sum() == 1
    m = matched_metrics(matrix, missed, extra)
    assert m["classes"]["N"]["tp"] == 1 and m["classes"]["N"]["fn"] == 1 and m["classes"]["N"]["fp"] == 2
    assert m["classes"]["V"]["se"] == 100.0 and m["classes"]["S"]["se"] == 0.0


def test_matched_beats_split_into_groups_add_up_to_the_whole():
    """Per rhythm: a pair counts in its reference beat's group, an extra detection in its own; a detection
    paired across a group's border stays paired (the beats are paired once, not group by group)."""
    from simsearch.evaluation.classification import record_figures
    from simsearch.evaluation.matching import match_labels, pair_peaks, paired_counts

    fs = 360.0
    reference = np.array([1000, 2000, 3000, 4000, 5000])
    ref_classes = class_index(list("NNSNV"))
    test = np.array([1010, 2030, 3500, 3990, 5000])  # 3000 missed, 3500 extra (called S)
    test_classes = class_index(list("NSSNV"))
    ref_groups = np.array(["a", "a", "b", "b", "c"])  # a changes to b at 2010: 2000's detection (2030) is in b
    test_groups = np.array(["a", "b", "b", "b", "c"])
    rows = pair_peaks(reference, test, fs)
    groups = {g: paired_counts(ref_classes, test_classes, *rows, ref_groups == g, test_groups == g) for g in "abc"}
    for whole, parts in zip(match_labels(reference, ref_classes, test, test_classes, fs), zip(*groups.values())):
        np.testing.assert_array_equal(whole, np.sum(parts, axis=0))
    a, b = record_figures(*groups["a"]), record_figures(*groups["b"])
    assert a["beats"] == 2 and a["false_s"] == 1 and a["classes"]["N"]["se"] == 50.0  # 2000, called S, is a's
    assert b["beats"] == 2 and b["false_s"] == 1  # the extra detection, called S
    assert b["classes"]["S"] == {"n": 1, "se": 0.0, "ppv": 0.0} and b["classes"]["N"]["se"] == 100.0


# ---------------------------------------------------------------- leak guards (records compared by name)

def test_check_disjoint_compares_records_by_name(data_dir):
    from simsearch.errors import SimsearchError
    from simsearch.evaluation.leakage import check_disjoint, shared_records

    for spelling in ("101", "101.hea", str(data_dir / "101"), str(data_dir / "101.hea"), "../elsewhere/101"):
        assert shared_records(["106", "101"], [spelling, "100"]) == ["101"], spelling
        with pytest.raises(SimsearchError, match=r"overlap the index: \['101'\]"):
            check_disjoint(["101"], ["100", spelling], "the index")
    check_disjoint(["101", "106"], ["100", str(data_dir / "1010"), "10"])  # other names pass


class SearchSpy:
    """An index whose searches are recorded: what each excluded, and which records answered."""

    def __init__(self, index):
        self.index = index
        self.calls: list[tuple[set, set]] = []

    def __getattr__(self, name):
        return getattr(self.index, name)

    def search(self, vectors, k=10, **kwargs):
        distances, ids = self.index.search(vectors, k, **kwargs)
        table_ids, _, records = self.index.label_table()
        answered = set(records[np.searchsorted(table_ids, ids[ids >= 0])])
        self.calls.append((set(kwargs.get("exclude_records", ())), answered))
        return distances, ids


def test_query_by_path_never_returns_the_query_beat(small_index, data_dir):
    """119 is in the index: named by path, with its extension or in another lead, the
    query beat (or the same heartbeat stored in MLII) never answers for itself."""
    from simsearch import query_beat

    rec = load_record("119", data_dir)
    sample = int(rec.ann_samples[rec.ann_symbols == "V"][7])
    for record, lead in (("119", None), (str(data_dir / "119"), None), (str(data_dir / "119.hea"), None),
                         (str(data_dir / "119"), "V1")):
        result = query_beat(small_index, record, sample, k=100, lead=lead)
        assert result.query["record"] == "119" and abs(result.query["sample"] - sample) <= 2
        assert not [n for n in result.neighbors if n.record == "119" and abs(n.sample - sample) <= 54], record
        assert result.neighbors[0].distance > 0
        excluded = query_beat(small_index, record, sample, k=20, lead=lead, exclude_record=True)
        assert all(n.record != "119" for n in excluded.neighbors)


def test_end_to_end_counts_agree_with_detector_and_reference_and_exclude_the_record(small_index, data_dir):
    """100 is in the index and is named by path: its own beats never vote for it; every
    reference beat is matched or missed, every detection matched or extra, as the detector scores."""
    from simsearch.evaluation.end_to_end import evaluate_end_to_end
    from simsearch.evaluation.matching import match_peaks
    from simsearch.signal.beats import detect_beats, reference_beats

    spy = SearchSpy(small_index)
    report = evaluate_end_to_end(spy, [str(data_dir / "100")], data_dir)
    assert spy.calls and all("100" in excluded and "100" not in answered for excluded, answered in spy.calls)
    assert set().union(*(answered for _, answered in spy.calls)) <= {"119", "208", "209"}

    record = load_record("100", data_dir)
    reference, symbols = reference_beats(record)
    tp, fn, fp = match_peaks(reference, detect_beats(record), record.fs)
    confusion = np.array(report["confusion"])
    assert confusion.sum() == tp and report["missed_reference_beats"] == fn and report["extra_beats"] == fp
    assert {k: report["qrs"][k] for k in ("tp", "fn", "fp")} == {"tp": tp, "fn": fn, "fp": fp}
    reference_counts = np.bincount(class_index(to_aami(symbols)), minlength=len(AAMI_CLASSES))
    assert (confusion.sum(axis=1) <= reference_counts).all()
    assert (reference_counts - confusion.sum(axis=1)).sum() == fn
    for i, c in enumerate(AAMI_CLASSES[:4]):
        assert report["classes"][c]["tp"] == confusion[i, i]
    assert report["classes"]["N"]["se"] > 95  # 100 is almost all normal beats, found and called N
    own = report["per_record"]["100"]
    assert own["beats"] == len(reference) and own["classes"]["N"]["se"] == report["classes"]["N"]["se"]
    assert report["per_rhythm"] == {"N": own}  # 100 is in sinus rhythm throughout


def test_end_to_end_counts_with_the_detectors_errors_taken_away(small_index, data_dir, noise_dir, tmp_path):
    """A noisy copy of 232 (not in the index): cut at the reference positions every reference beat is
    matched and none is extra; as detected without its false detections, the misses stay and nothing is
    extra; as detected, both (the product's path)."""
    from simsearch.evaluation.end_to_end import record_counts
    from simsearch.evaluation.noise import noise_leads, noisy_copies

    clean = load_record("232", data_dir, span_s=(0, 300))
    (_, noisy), = noisy_copies(clean, noise_leads("em", noise_dir), [0], 0, tmp_path)
    (matched, missed, extra, _), (_, missed_true, extra_true, _), (_, missed_ref, extra_ref, runs_ref) = (
        record_counts(small_index, noisy, positions=p) for p in ("detected", "true detections", "reference"))
    assert extra.sum() > 0 and missed.sum() > 0  # electrode motion as strong as the ECG: the detector errs both ways
    assert extra_ref.sum() == extra_true.sum() == 0 and missed_ref.sum() == 0
    assert missed_true.sum() == missed.sum()
    with pytest.raises(ValueError, match="positions must be one of"):
        record_counts(small_index, noisy, positions="guessed")


def test_adaptive_expert_labels_lift_the_rare_class_and_are_not_scored(small_index, data_dir):
    """232 (DS2, not in the index): 1,382 SVEBs, of which the index of four records finds 92 % with no
    label (57 % before the vote weighed prematurity three times). Ten beats chosen by the suggestions and
    labeled from the reference find nearly all of them (99 %, both ways)."""
    from simsearch.evaluation.adaptive import evaluate_adaptive, round_sizes

    spy = SearchSpy(small_index)
    records = [str(data_dir / "232"), "100"]
    report = evaluate_adaptive(spy, records, budgets=(0, 10), data_dir=data_dir)
    assert report["records"] == ["232", "100"]
    assert {excluded for call in spy.calls for excluded in call[0]} == {"232", "100"}
    assert all(not excluded & answered for excluded, answered in spy.calls)
    budgets = report["budgets"]
    assert list(budgets) == ["global", "0", "10"]
    assert [budgets[b]["expert_labels"] for b in budgets] == [0, 0, 20]  # ten per record

    from simsearch.signal.beats import reference_beats

    n_232 = len(reference_beats(load_record("232", data_dir))[0])
    assert budgets["0"]["per_record"]["232"]["beats"] == n_232
    assert budgets["10"]["per_record"]["232"]["beats"] == n_232 - 10  # the expert's beats are not scored
    for budget in budgets.values():  # per reference rhythm: 232's sinus bradycardia, 100's sinus rhythm
        assert list(budget["per_rhythm"]) == ["N", "SBR"]
        assert sum(r["beats"] for r in budget["per_rhythm"].values()) == np.sum(budget["confusion"])
        assert budget["per_rhythm"]["SBR"]["classes"]["S"]["n"] == budget["per_record"]["232"]["classes"]["S"]["n"]
    before, after = (budgets[b]["per_record"]["232"]["classes"]["S"]["se"] for b in ("0", "10"))
    print(f"232 S Se: {before} with no expert label, {after} with 10")
    assert after >= before + 5 and after > 95
    again = evaluate_adaptive(small_index, records, budgets=(10,), data_dir=data_dir)
    assert again["budgets"]["10"]["per_record"] == budgets["10"]["per_record"]  # deterministic
    assert round_sizes(10, 3) == [4, 3, 3] and round_sizes(2, 3) == [1, 1] and round_sizes(0, 3) == []


def test_a_record_with_one_lead_is_scored_in_one_lead(data_dir, tmp_path):
    one_lead = write_at_rate("233", data_dir, 360.0, tmp_path, seconds=120, new_name="x233")
    report = evaluate_classification(data_dir, Encoder.load(), train_records=["119", "209"],
                                     test_records=[str(one_lead)], k=10)
    assert [s["system"] for s in report["systems"]] == ["raw kNN", "raw+RR kNN", "simsearch encoder"]
    assert report["protocol"]["both_leads_skipped"] == "x233 has one lead: no second lead to read"
    assert report["systems"][-1]["classes"]["V"]["n"] > 0


def test_another_database_is_scored_with_an_index_of_other_records(data_dir, tmp_path):
    """Test records named as a database is distributed (a directory, a RECORDS file), labeled by an index of
    the records --index-records names; an overlap by name is refused, and the noise task keeps its own index."""
    from simsearch.signal.beats import reference_beats

    other = tmp_path / "otherdb"
    other.mkdir()
    for ext in ("hea", "dat", "atr"):
        shutil.copy(data_dir / f"119.{ext}", other / f"119.{ext}")
    (other / "RECORDS").write_text("119\n")
    beats = len(reference_beats(load_record(other / "119"))[0])
    for records in (other, other / "RECORDS"):
        proc = subprocess.run([sys.executable, "-m", "simsearch", "evaluate", "--task", "end-to-end", "--data-dir",
                               str(data_dir), "--records", str(records), "--index-records", "100,209", "--json"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["index_records"] == ["100", "209"]
        assert report["qrs"]["tp"] + report["qrs"]["fn"] == beats and report["qrs"]["se"] > 99
        assert report["runs"]["V"]["couplet"]["n"] == 0  # 119's ventricular beats come alone
        assert list(report["per_record"]) == ["119"] and {"N", "B", "T"} <= set(report["per_rhythm"])
    proc = subprocess.run([sys.executable, "-m", "simsearch", "evaluate", "--task", "adaptive", "--data-dir",
                           str(data_dir), "--records", str(other), "--index-records", "100,209", "--budgets",
                           "0,5,10,20,50"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # piped, the tables are as wide as they need: no header wrapped, no cell cut short
    for words in ("per record", "per reference rhythm", "50 labels V",
                  "false S: the beats 0 labels / 5 labels / 10 labels / 20 labels / 50 labels called S"):
        assert words in proc.stdout, words
    assert "…" not in proc.stdout
    for args, words in ((["--records", str(data_dir / "209"), "--index-records", "100,209"], "overlap the index's"),
                        (["--task", "noise", "--index-records", "all"], "--index-records is for"),
                        (["--records", str(tmp_path)], "no record")):  # a directory without one
        proc = subprocess.run([sys.executable, "-m", "simsearch", "evaluate", "--data-dir", str(data_dir), *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
