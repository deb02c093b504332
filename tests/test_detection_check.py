"""The second look at the detector's beats in the other lead, on real records and nstdb's real noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simsearch.evaluation.matching import match_peaks
from simsearch.signal.beats import beats_from_record, detect_beats, reference_beats
from simsearch.signal.detection import detect_r_peaks
from simsearch.signal.detection_check import (
    FEATURES,
    MODEL_PATH,
    check_detections,
    load_model,
    median_of_neighbors,
    tree_scores,
)
from simsearch.signal.records import load_record, write_record


@pytest.mark.parametrize("name", ["118e12", "119e12"])
def test_drops_most_detections_noise_made_and_keeps_the_beats(name, noise_dir, data_dir):
    """nstdb's electrode motion at 12 dB (never trained on: 118 and 119 are left out of training)."""
    record = load_record(name, noise_dir)
    reference = reference_beats(load_record(name[:3], data_dir))[0]
    alone = match_peaks(reference, detect_r_peaks(record.signal, record.fs), record.fs)
    checked = match_peaks(reference, detect_beats(record), record.fs)
    assert alone[2] >= 100 and checked[2] <= alone[2] / 5, (alone, checked)
    assert checked[1] <= alone[1] + 2, (alone, checked)


def test_a_clean_record_keeps_its_beats(data_dir):
    record = load_record("100", data_dir)
    assert np.array_equal(detect_beats(record), detect_r_peaks(record.signal, record.fs))


def test_annotate_reads_the_checked_beats(noise_dir):
    """A record read without annotations is cut at the checked detections."""
    record = load_record("118e12", noise_dir, annotations=None)
    assert np.array_equal(beats_from_record(record).samples, detect_beats(record))


def test_one_lead_or_an_unusable_other_lead_leaves_the_detections_unchecked(noise_dir, tmp_path):
    record = load_record("118e12", noise_dir, annotations=None, span_s=(300.0, 420.0))  # a noisy stretch
    alone = detect_r_peaks(record.signal, record.fs)
    flat = np.column_stack([record.signal, np.full(record.n_samples, 0.1)])
    for name, signal, leads in (("one", record.signal, ["MLII"]), ("flat", flat, ["MLII", "V1"])):
        written = load_record(write_record(tmp_path / name, signal, record.fs, leads), annotations=None)
        assert np.array_equal(detect_beats(written), detect_r_peaks(written.signal, written.fs)), name
    raw = load_record("118e12", noise_dir, annotations=None, span_s=(300.0, 420.0))
    assert np.array_equal(check_detections(raw.signal, None, raw.fs, alone), alone)
    assert len(detect_beats(raw)) < len(alone)  # the same stretch with its other lead: checked


@pytest.mark.parametrize("stretch", ["flat", "saturated"])
def test_a_stretch_where_the_other_lead_is_off_keeps_its_beats(stretch, data_dir, tmp_path):
    """Five minutes of V1 off in record 208 (its ventricular beats are what V1 misses most): the
    detections there stand unchecked, as the trees would take a silent lead for one that saw no beat."""
    first = load_record("208", data_dir, span_s=(0.0, 900.0))
    second = load_record(first.path, lead="V1", annotations=None, span_s=(0.0, 900.0))
    off = second.signal.copy()
    off[int(300 * first.fs): int(600 * first.fs)] = 0.0 if stretch == "flat" else 5.0
    written = load_record(write_record(tmp_path / "off", np.column_stack([first.signal, off]), first.fs,
                                       ["MLII", "V1"]), annotations=None)
    reference = reference_beats(first)[0]
    alone = match_peaks(reference, detect_r_peaks(written.signal, written.fs), written.fs)
    checked = match_peaks(reference, detect_beats(written), written.fs)
    assert checked[1] <= alone[1] + 1 and checked[2] <= alone[2], (alone, checked)


def test_trees_go_left_at_or_below_the_threshold():
    tree = {"feature": np.array([1, 0, 0]), "threshold": np.array([0.5, 0.0, 0.0]), "left": np.array([1, 0, 0]),
            "right": np.array([2, 0, 0]), "leaf": np.array([False, True, True]), "value": np.array([0.0, -1.0, 2.0])}
    features = np.array([[9.0, 0.5], [9.0, 0.51], [0.0, -3.0]])
    assert tree_scores([tree, tree], features).tolist() == [-2.0, 4.0, -2.0]


def test_median_of_neighbors_leaves_the_element_out():
    values = np.array([1.0, 100.0, 3.0, 5.0])
    assert median_of_neighbors(values, 1).tolist() == [100.0, 2.0, 52.5, 3.0]
    assert median_of_neighbors(np.array([7.0]), 3).tolist() == [7.0]


def test_the_packaged_model_names_its_features_and_threshold(tmp_path):
    model = load_model(MODEL_PATH)
    assert tuple(model["features"]) == FEATURES and 0.0 < model["threshold"] < 0.5 and model["trees"]
    assert "cross_validation" in model and "nstdb" in model
    other = json.loads(MODEL_PATH.read_text())
    other["features"] = list(reversed(FEATURES))
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="features"):
        load_model(tmp_path / "other.json")
