"""R-peak (QRS) detection for records without annotations, and its evaluation.

The detector follows Pan & Tompkins (1985) and Hamilton & Tompkins (1986):

1. band-pass the raw ECG to the QRS band, so baseline wander, P and T waves shrink;
2. turn it into a non-negative energy envelope (squared slope, integrated over a
   QRS-wide window) whose peaks mark the QRS complexes, whatever their polarity;
3. walk the envelope's peaks in time with adaptive thresholds (medians of recent
   QRS and noise peaks), a refractory period, T-wave discrimination by slope and a
   search-back for beats the threshold missed after an unusually long RR interval;
4. move each detection to the largest deflection of the QRS, where MIT-BIH places
   its beat annotations, so that beat windows centred on it are aligned like theirs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import butter, find_peaks, sosfiltfilt

from .aami import SYMBOL_TO_AAMI
from .records import check_signal, load_record

QRS_BAND_HZ = (5.0, 20.0)
"""Pass band that keeps most QRS energy and little of P/T waves, baseline or mains."""
INTEGRATION_S = 0.080
"""Width of the moving-window integrator: about the widest QRS."""
REFRACTORY_S = 0.200
"""No two beats closer than this: the heart cannot depolarise again so soon."""
T_WAVE_S = 0.360
"""Within this of a beat, a peak with much less slope is taken for its T wave."""
P_WAVE_S = 0.300
"""Within this before a peak with much more slope, a peak is taken for its P wave."""
T_WAVE_SLOPE_RATIO = 0.5
P_WAVE_SLOPE_RATIO = 1.0
THRESHOLD_FRACTION = 0.3
"""Detection threshold = noise level + this fraction of (QRS level - noise level)."""
SEARCH_BACK_RR = 1.5
"""Search back for a missed beat once no beat came for this many mean RR intervals."""
SEARCH_BACK_FRACTION = 0.6
"""A searched-back beat needs this fraction of the detection threshold."""
T_SEARCH_FRACTION = 1.0
HISTORY = 8
"""Number of recent QRS peaks, noise peaks and RR intervals the levels come from."""
LEARNING_S = 8.0
LOCATE_BAND_HZ = (3.0, 30.0)
REFINE_S = 0.075
"""Half-width of the window in which a detection moves to the QRS's largest deflection."""
MATCH_TOLERANCE_S = 0.150
"""AAMI EC57: a detection within 150 ms of a reference beat detects it."""


def detect_r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices (sorted int64) of the R peaks of a raw single-lead ECG.

    ``signal`` is in physical units at ``fs`` Hz, unfiltered. Raises
    :class:`~simsearch.errors.SignalQualityError` for NaN or flat input.
    """
    signal = np.asarray(signal, dtype=np.float64)
    check_signal(signal, "ECG signal")
    band = bandpass(signal, fs, QRS_BAND_HZ)
    envelope = qrs_envelope(band, fs)
    slope = maximum_filter1d(np.abs(np.gradient(band)), size=_samples(INTEGRATION_S, fs))
    peaks, _ = find_peaks(envelope, distance=_samples(REFRACTORY_S, fs))
    beats = classify_peaks(peaks, envelope[peaks], slope[peaks], fs, initial_qrs_level(envelope, fs))
    return refine_peaks(bandpass(signal, fs, LOCATE_BAND_HZ), beats, fs)


def bandpass(signal: np.ndarray, fs: float, band: tuple[float, float]) -> np.ndarray:
    """Zero-phase Butterworth band-pass, so filtered peaks stay where the raw ones are."""
    high = min(band[1], 0.45 * fs)
    sos = butter(2, (band[0], high), btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, signal)


def qrs_envelope(band: np.ndarray, fs: float) -> np.ndarray:
    """Root of the squared slope integrated over a QRS width, centred on the QRS.

    Squaring makes negative and positive complexes alike and favours the steep QRS
    over the slow P and T waves; the root brings it back to amplitude scale, so a
    large ectopic beat does not push the adaptive threshold above the normal beats.
    """
    energy = uniform_filter1d(np.gradient(band) ** 2, size=_samples(INTEGRATION_S, fs))
    return np.sqrt(energy)


def initial_qrs_level(envelope: np.ndarray, fs: float) -> float:
    """Typical QRS height of the envelope: median of its one-second maxima at the start.

    Almost every second of ECG holds a beat, so the median of these maxima is a QRS
    peak even when a few seconds hold only noise or an ectopic giant.
    """
    second = _samples(1.0, fs)
    seconds = max(1, min(int(LEARNING_S), envelope.shape[0] // second))
    chunks = envelope[: seconds * second].reshape(seconds, -1) if envelope.shape[0] >= second else envelope[None, :]
    return float(np.median(chunks.max(axis=1)))


def classify_peaks(
    peaks: np.ndarray, heights: np.ndarray, slopes: np.ndarray, fs: float, qrs_level: float
) -> np.ndarray:
    """Keep the envelope peaks that are QRS complexes (Hamilton-Tompkins rules)."""
    refractory = REFRACTORY_S * fs
    t_wave = T_WAVE_S * fs
    qrs_levels = deque([qrs_level] * HISTORY, maxlen=HISTORY)
    noise_levels = deque([0.0] * HISTORY, maxlen=HISTORY)
    rr = deque([fs] * HISTORY, maxlen=HISTORY)
    beats: list[int] = []
    pending: list[int] = []  # positions in `peaks` of noise peaks since the last beat

    def threshold() -> float:
        noise = float(np.median(noise_levels))
        return noise + THRESHOLD_FRACTION * (float(np.median(qrs_levels)) - noise)

    def accept(k: int) -> None:
        if beats:
            rr.append(peaks[k] - peaks[beats[-1]])
        beats.append(k)
        qrs_levels.append(heights[k])
        pending.clear()

    p_wave = P_WAVE_S * fs
    next_gap = np.append(np.diff(peaks), np.inf)
    next_slope = np.append(slopes[1:], 0.0)
    is_p_wave = (next_gap < p_wave) & (slopes < P_WAVE_SLOPE_RATIO * next_slope)
    for k in range(len(peaks)):
        while beats and peaks[k] - peaks[beats[-1]] > SEARCH_BACK_RR * np.mean(rr):
            last = peaks[beats[-1]]
            found = [
                j
                for j in pending
                if not is_p_wave[j]
                and heights[j] > (SEARCH_BACK_FRACTION if peaks[j] - last > t_wave else T_SEARCH_FRACTION) * threshold()
            ]
            if not found:
                break
            best = max(found, key=lambda j: heights[j])
            later = [j for j in pending if j > best]
            accept(best)
            pending.extend(later)
        if heights[k] > threshold() and not is_p_wave[k]:
            is_t_wave = bool(beats) and (
                peaks[k] - peaks[beats[-1]] < t_wave and slopes[k] < T_WAVE_SLOPE_RATIO * slopes[beats[-1]]
            )
            if not is_t_wave:
                accept(k)
                continue
        noise_levels.append(heights[k])
        pending.append(k)
    return peaks[np.asarray(beats, dtype=np.int64)]


def refine_peaks(band: np.ndarray, beats: np.ndarray, fs: float) -> np.ndarray:
    """Move each beat to the largest absolute deflection of ``band`` within ±REFINE_S."""
    half = _samples(REFINE_S, fs)
    n = band.shape[0]
    offsets = np.arange(-half, half + 1)
    windows = np.clip(beats[:, None] + offsets[None, :], 0, n - 1)
    refined = windows[np.arange(beats.shape[0]), np.argmax(np.abs(band[windows]), axis=1)]
    return np.unique(refined).astype(np.int64)


def match_peaks(
    reference: np.ndarray, detected: np.ndarray, fs: float, tolerance_s: float = MATCH_TOLERANCE_S
) -> tuple[int, int, int]:
    """(true positives, false negatives, false positives), matching one to one.

    A detection within ``tolerance_s`` of a reference beat detects it, and each
    reference beat and each detection is matched at most once. Both are walked in
    time order and each detection is given to the earliest unmatched reference beat
    still in reach; as every reference beat has a window of the same width, this
    greedy walk finds the largest possible matching.
    """
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    det = np.sort(np.asarray(detected, dtype=np.int64))
    tolerance = tolerance_s * fs
    tp = i = 0
    for d in det:
        while i < ref.shape[0] and ref[i] + tolerance < d:
            i += 1
        if i < ref.shape[0] and ref[i] - tolerance <= d:
            tp += 1
            i += 1
    return tp, int(ref.shape[0]) - tp, int(det.shape[0]) - tp


def reference_beats(record) -> np.ndarray:
    """Sample positions of the annotations that are beats (not rhythm or noise marks)."""
    is_beat = np.array([symbol in SYMBOL_TO_AAMI for symbol in record.ann_symbols], dtype=bool)
    return record.ann_samples[is_beat]


def evaluate_detection(
    records: Sequence[str],
    data_dir,
    detector: Callable[[np.ndarray, float], np.ndarray] = detect_r_peaks,
) -> list[dict]:
    """Run ``detector`` on each annotated record and score it against the beat annotations.

    ``seconds`` is the detector's own run time, without reading the record.
    """
    rows = []
    for name in records:
        record = load_record(name, data_dir)
        if not record.has_annotations:
            raise ValueError(f"{name}: no reference annotations to evaluate against")
        reference = reference_beats(record)
        started = time.perf_counter()
        detected = detector(record.signal, record.fs)
        seconds = time.perf_counter() - started
        tp, fn, fp = match_peaks(reference, detected, record.fs)
        rows.append(
            {
                "record": Path(str(name)).name,
                "reference": int(reference.shape[0]),
                "tp": tp,
                "fn": fn,
                "fp": fp,
                "se": _percent(tp, tp + fn),
                "ppv": _percent(tp, tp + fp),
                "seconds": seconds,
            }
        )
    return rows


def summarize_detection(rows: Sequence[dict]) -> dict:
    """Gross totals over records: beats pooled, so long records weigh more."""
    tp = sum(row["tp"] for row in rows)
    fn = sum(row["fn"] for row in rows)
    fp = sum(row["fp"] for row in rows)
    return {
        "records": len(rows),
        "reference": sum(row["reference"] for row in rows),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "se": _percent(tp, tp + fn),
        "ppv": _percent(tp, tp + fp),
        "seconds": sum(row["seconds"] for row in rows),
    }


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else float("nan")


def _samples(seconds: float, fs: float) -> int:
    return max(1, int(round(seconds * fs)))
