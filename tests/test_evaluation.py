"""EC57 scoring and the inter-patient protocol with its baselines, on real records."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from simsearch.aami import class_index
from simsearch.model.encoder import Encoder
from simsearch.evaluation.classification import evaluate_classification, raw_rr_vectors, raw_vectors
from simsearch.evaluation.metrics import class_metrics, confusion_matrix, precision_at_k
from simsearch.label.vote import prior_weights, vote_scores, vote_winner


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


def test_baseline_vectors_are_unit_raw_beats(data_dir):
    from simsearch.model.datasets import BeatSet, load_beats

    beats = BeatSet.stack(load_beats(["100"], data_dir))
    raw = raw_vectors(beats.windows[:20], beats.context[:20])
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-4)
    assert raw_rr_vectors(beats.windows[:20], beats.context[:20]).shape[1] > raw.shape[1]


def test_classification_protocol_on_a_few_records(data_dir):
    report = evaluate_classification(data_dir, Encoder.load(), train_records=["119", "209", "118"],
                                     test_records=["100", "233"], k=10)
    assert [s["system"] for s in report["systems"]] == ["raw kNN", "raw+RR kNN", "simsearch encoder"]
    n_test = report["protocol"]["test_beats"]
    for system in report["systems"]:
        assert np.sum(system["confusion"]) == n_test
        per_record = system["per_record_confusion"]
        assert sorted(per_record) == ["100", "233"]
        np.testing.assert_array_equal(np.sum([per_record["100"], per_record["233"]], axis=0), system["confusion"])
        assert 0 <= system["precision_at_10"]["macro_NSV"] <= 1
    encoder_row = report["systems"][-1]
    # 233 holds 831 VEBs; a trained encoder finds most of them in other patients' beats
    assert encoder_row["classes"]["V"]["se"] > 50
    with pytest.raises(ValueError, match="overlap"):
        evaluate_classification(data_dir, Encoder.load(), train_records=["100"], test_records=["100"])


def test_cli_refuses_test_records_from_ds1(data_dir):
    proc = subprocess.run([sys.executable, "-m", "simsearch", "evaluate", "--data-dir", str(data_dir),
                           "--records", "101,100"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "overlap DS1" in proc.stderr and "Traceback" not in proc.stderr


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
