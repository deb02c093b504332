"""R-peak detection on real MIT-BIH records, and the matching that scores it.

The ``data_dir`` fixture (conftest.py) is ``$SIMSEARCH_DATA`` or ../shared/data/mitdb
beside the checkout, and fails the tests when the records are not there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from simsearch.errors import SignalQualityError
from simsearch.evaluation.detection import evaluate_detection, summarize_detection, vf_episodes
from simsearch.evaluation.matching import match_peaks, pair_peaks
from simsearch.signal import detection
from simsearch.signal.beats import reference_beats
from simsearch.signal.detection import DEFAULT_PARAMS, DetectorParams, detect_r_peaks
from simsearch.signal.filtering import resample
from simsearch.signal.records import load_record

FIVE_MINUTES_S = 300


def first_minutes(name: str, data_dir: Path, fs: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Signal and reference beats of the first five minutes of a record."""
    record = load_record(name, data_dir)
    end = int(FIVE_MINUTES_S * record.fs)
    reference = reference_beats(record)[0]
    reference = reference[reference < end]
    if fs is None:
        return record.signal[:end], reference, record.fs
    return (resample(record.signal[:end], record.fs, fs), np.round(reference * fs / record.fs).astype(np.int64),
            float(fs))


def se_ppv(reference: np.ndarray, detected: np.ndarray, fs: float) -> tuple[float, float]:
    tp, fn, fp = match_peaks(reference, detected, fs)
    return 100.0 * tp / (tp + fn), 100.0 * tp / (tp + fp)


@pytest.mark.parametrize("name", ["100", "203", "208"])
def test_detects_the_beats_of_the_first_five_minutes(name: str, data_dir: Path) -> None:
    # 203 is noisy with multiform PVCs; 208 holds many PVCs of opposite polarity to
    # its normal beats.
    signal, reference, fs = first_minutes(name, data_dir)
    detected = detect_r_peaks(signal, fs)
    se, ppv = se_ppv(reference, detected, fs)
    assert se >= 99.0 and ppv >= 99.0, (se, ppv)


def test_returns_sorted_unique_int64_samples(data_dir: Path) -> None:
    signal, _, fs = first_minutes("100", data_dir)
    detected = detect_r_peaks(signal, fs)
    assert detected.dtype == np.int64
    assert np.all(np.diff(detected) > 0)
    assert detected[0] >= 0 and detected[-1] < signal.shape[0]


def test_places_beats_where_the_annotations_are(data_dir: Path) -> None:
    # Beat windows are centred on the detections, so they must sit on the R peak,
    # not merely within the 150 ms matching tolerance.
    signal, reference, fs = first_minutes("100", data_dir)
    detected = detect_r_peaks(signal, fs)
    nearest = detected[np.abs(detected[:, None] - reference[None, :]).argmin(axis=0)]
    assert np.median(np.abs(nearest - reference)) <= 0.005 * fs


def test_detects_an_inverted_lead(data_dir: Path) -> None:
    signal, reference, fs = first_minutes("100", data_dir)
    se, ppv = se_ppv(reference, detect_r_peaks(-signal, fs), fs)
    assert se >= 99.0 and ppv >= 99.0, (se, ppv)


def test_works_at_another_sampling_rate(data_dir: Path) -> None:
    signal, reference, fs = first_minutes("100", data_dir, fs=250)
    assert fs == 250
    se, ppv = se_ppv(reference, detect_r_peaks(signal, fs), fs)
    assert se >= 99.0 and ppv >= 99.0, (se, ppv)


def test_default_params_are_the_module_constants() -> None:
    for field in dataclasses.fields(DetectorParams):
        assert getattr(DEFAULT_PARAMS, field.name) == getattr(detection, field.name.upper()), field.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PARAMS.threshold_fraction = 0.5  # type: ignore[misc]


def test_params_are_passed_through(data_dir: Path) -> None:
    signal, _, fs = first_minutes("100", data_dir)
    default = detect_r_peaks(signal, fs)
    assert np.array_equal(default, detect_r_peaks(signal, fs, DEFAULT_PARAMS))
    # a 1.5 s refractory period leaves at most one detection per 1.5 s (record 100 beats at ~75 bpm)
    slow = detect_r_peaks(signal, fs, dataclasses.replace(DEFAULT_PARAMS, refractory_s=1.5))
    assert slow.shape[0] <= FIVE_MINUTES_S / 1.5 < default.shape[0]
    # a minimum length above the signal's: no beats
    assert detect_r_peaks(signal, fs, DetectorParams(min_signal_s=FIVE_MINUTES_S + 1)).shape == (0,)


def test_match_peaks_counts_one_to_one() -> None:
    fs = 100.0  # tolerance 0.15 s = 15 samples
    reference = np.array([100, 400, 700, 1000])
    # 102 detects 100 and 110 is its double; 400 and 1000 are missed; 1300 is false.
    detected = np.array([102, 110, 690, 1300])
    assert match_peaks(reference, detected, fs) == (2, 2, 2)


def test_match_peaks_tolerance_is_inclusive_and_each_beat_used_once() -> None:
    fs = 100.0
    assert match_peaks(np.array([100]), np.array([115]), fs) == (1, 0, 0)
    assert match_peaks(np.array([100]), np.array([116]), fs) == (0, 1, 1)
    # One detection between two close beats detects only one of them.
    assert match_peaks(np.array([100, 120]), np.array([110]), fs) == (1, 1, 0)
    # Two detections each find their own beat even when both are in reach of the first.
    assert match_peaks(np.array([100, 120]), np.array([105, 112]), fs) == (2, 0, 0)
    assert match_peaks(np.array([], dtype=np.int64), np.array([5]), fs) == (0, 0, 1)
    assert match_peaks(np.array([5]), np.array([], dtype=np.int64), fs) == (0, 1, 0)


def test_pair_peaks_indexes_the_inputs_and_prefers_the_nearer_beat() -> None:
    fs = 100.0
    ref_rows, det_rows = pair_peaks(np.array([700, 100, 400]), np.array([690, 102]), fs)
    assert ref_rows.tolist() == [1, 0] and det_rows.tolist() == [1, 0]
    # 110 is in reach of both beats; it goes to the nearer one (112), as bxb pairs them.
    ref_rows, det_rows = pair_peaks(np.array([100, 112]), np.array([110]), fs)
    assert ref_rows.tolist() == [1] and det_rows.tolist() == [0]


def test_a_signal_shorter_than_a_beat_has_no_beats() -> None:
    assert detect_r_peaks(np.sin(np.arange(100.0)), 360.0).shape == (0,)


def test_flat_signal_raises() -> None:
    with pytest.raises(SignalQualityError):
        detect_r_peaks(np.full(3600, 0.2), 360.0)


def test_nan_signal_raises() -> None:
    signal = np.sin(np.linspace(0, 60, 3600))
    signal[1000] = np.nan
    with pytest.raises(SignalQualityError):
        detect_r_peaks(signal, 360.0)


def test_vf_episodes_hold_no_reference_beat(data_dir: Path) -> None:
    record = load_record("207", data_dir)
    episodes = vf_episodes(record)
    assert episodes.shape == (6, 2) and np.all(episodes[:, 0] < episodes[:, 1])
    beats = reference_beats(record)[0]
    assert not any(((beats > start) & (beats < end)).any() for start, end in episodes)


def test_evaluate_and_summarize(data_dir: Path) -> None:
    rows = evaluate_detection(["100"], data_dir, detector=lambda record: np.array([], dtype=np.int64))
    assert rows[0]["record"] == "100"
    assert (rows[0]["tp"], rows[0]["fn"], rows[0]["fp"]) == (0, rows[0]["reference"], 0)
    assert rows[0]["se"] == 0.0 and rows[0]["seconds"] >= 0.0

    summary = summarize_detection(
        [
            {"reference": 100, "tp": 99, "fn": 1, "fp": 3, "fp_vf": 2, "seconds": 1.0},
            {"reference": 300, "tp": 300, "fn": 0, "fp": 1, "fp_vf": 0, "seconds": 3.0},
        ]
    )
    assert (summary["tp"], summary["fn"], summary["fp"]) == (399, 1, 4)
    assert summary["se"] == pytest.approx(100 * 399 / 400)
    assert summary["ppv"] == pytest.approx(100 * 399 / 403)
    assert summary["ppv_ec57"] == pytest.approx(100 * 399 / 401)
    assert summary["seconds_per_record"] == pytest.approx(2.0)
