"""R-peak (QRS) detection for records without annotations.

The detector follows Pan & Tompkins (1985) and Hamilton & Tompkins (1986):

1. band-pass the raw ECG to the QRS band, so baseline wander, P and T waves shrink;
2. turn it into a non-negative envelope (the integrated squared slope) whose peaks
   mark the QRS complexes, whatever their polarity;
3. walk the envelope's peaks in time with an adaptive threshold (medians of recent
   QRS and noise peak heights), a refractory period, P- and T-wave discrimination
   by slope, and a search-back for beats the threshold missed before an unusually
   long RR interval;
4. move each detection to the largest deflection of the QRS, where MIT-BIH places
   its beat annotations, so that beat windows centred on it are aligned like theirs.

The settings below were first tuned on all 48 MIT-BIH Arrhythmia records (beat
positions only), then re-tuned on DS1 alone by ``scripts/tune_detector.py``: coordinate
descent over the settings that decide which envelope peaks are beats, scored on DS1's
22 records clean and on 20 of them (not 118/119, whose nstdb noise versions stay a
test) with nstdb electrode-motion and muscle noise at 12 dB throughout; DS2 never
read. Each searched setting gives the DS1 figures that chose or kept it (the other
settings at their values here): errors (missed beats plus false detections outside VF
episodes) on clean DS1 / their mean over the two noisy conditions. Original settings
157 / 2,459, these 159 / 1,933; DS1 gross Se / +P clean 99.82 / 99.33 -> 99.79 / 99.35,
em 12 dB 99.75 / 96.85 -> 99.70 / 97.64, ma 12 dB 99.63 / 92.67 -> 99.59 / 94.03. A
setting could lower clean Se or +P (outside VF) by 0.03 points at most (the script's
``CLEAN_SLACK``, 15 beats); most noise gains (a steeper T-wave rule, a 5-15 Hz band, a
threshold above 0.35) miss more clean beats than that, so only the threshold moved. The
refractory period, P-wave window, learning length, locating band and window and minimum
length were not searched (physiology, or they move a beat or touch a record's first
seconds only).

The beats found here are then checked in the record's other lead, where noise rarely
strikes at the same instant (:mod:`simsearch.signal.detection_check`, run by
:func:`simsearch.signal.beats.detect_beats`): this module sees one lead only.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

import numpy as np

from .filtering import bandpass, find_peaks, maximum_filter1d, uniform_filter1d  # SciPy, imported on first use
from .records import check_signal

QRS_BAND_HZ = (5.0, 20.0)
"""Keeps most QRS energy and little of the P/T waves, baseline wander or mains hum.
DS1 search kept it: 5-15 Hz saves noisy errors (1,310) but misses 121 clean beats (over
the slack); 8-20, 5-25 and 10-25 Hz lose on both (204/2,686, 185/3,135, 278/4,820)."""
INTEGRATION_S = 0.080
"""Integration window of the envelope: a narrow QRS. Wider windows favour the broad T wave.
DS1 search kept it (errors clean/noisy: 60 ms 171/1,804 with 117 missed, over the slack;
100 ms 152/2,024; 120 ms 160/2,088)."""
REFRACTORY_S = 0.200
"""No two beats closer than this: the ventricles cannot depolarise again so soon."""
T_WAVE_S = 0.360
"""Within this after a beat, a peak with much less slope than the beat is its T wave.
DS1 search kept it (errors clean/noisy: 300 ms 161/2,125; 400 ms 176/1,836 with 124
missed, over the slack)."""
T_WAVE_SLOPE_RATIO = 0.5
"""Within T_WAVE_S of a beat, a peak with less than this fraction of its slope is its T wave.
DS1 search kept it: 0.7-1.0 would cut the noisy errors by a quarter (to 1,495,
1,407, 1,410) but miss 117-183 clean beats, over the slack; 0.3: 161/2,437."""
P_WAVE_S = 0.300
"""Within this before a peak with more slope, a peak is that beat's P wave (or noise)."""
P_WAVE_SLOPE_RATIO = 1.0
"""A peak with less than this times the slope of the next peak within P_WAVE_S is a P wave.
DS1 search kept it (errors clean/noisy: 0.8 175/2,075 with 87 false, 1.2 166/1,876 with
118 missed, both over the slack)."""
THRESHOLD_FRACTION = 0.35
"""Detection threshold = noise level + this fraction of (QRS level - noise level).
0.35 (was 0.3): fewer noise peaks pass, at a few low beats. DS1 errors clean/noisy
159/1,933 (0.3: 157/2,459; 0.25: 175/3,300; 0.4: 177/1,502 and 0.45: 207/1,213, which
miss 130 and 164 clean beats, over the slack)."""
SEARCH_BACK_RR = 1.5
"""Search back for a missed beat when no beat came for this many mean RR intervals.
DS1 search kept it (errors clean/noisy: 1.3 150/2,235; 1.66 175/1,825 and 1.8 188/1,770,
which miss 126 and 140 clean beats, over the slack)."""
SEARCH_BACK_FRACTION = 0.6
"""A searched-back peak needs this fraction of the threshold (the whole threshold while
it is within T_WAVE_S of the last beat, where only the slope rule had refused it).
DS1 search kept it (errors clean/noisy: 0.4 164/2,242; 0.8 212/1,797, 162 missed, over
the slack)."""
HISTORY = 8
"""Number of recent QRS peaks, noise peaks and RR intervals the levels are taken from.
DS1 search kept it (errors clean/noisy: 5 157/1,993; 12 158/1,914, a gain of 1 %, under
the 2 % a move must make)."""
LEARNING_S = 8.0
"""Length of the start of the record from which the first QRS level is taken."""
LOCATE_BAND_HZ = (3.0, 30.0)
"""Band in which a beat's largest deflection is sought: wide enough to keep the shape of
wide ventricular beats, whose QRS-band extremum lies on an edge rather than the peak."""
LOCATE_S = 0.075
"""Half-width of the window in which a detection moves to the QRS's largest deflection."""
MIN_SIGNAL_S = 0.5
"""Shorter signals (less than one RR interval at 120 bpm) hold no beat one could tell from noise."""


@dataclass(frozen=True)
class DetectorParams:
    """The detector's settings, one field per module constant of the same name.

    The defaults are the module constants, whose docstrings give each one's reason;
    another instance lets a tuning script (``scripts/tune_detector.py``) or a test try
    other values without touching the module.
    """

    qrs_band_hz: tuple[float, float] = QRS_BAND_HZ
    integration_s: float = INTEGRATION_S
    refractory_s: float = REFRACTORY_S
    t_wave_s: float = T_WAVE_S
    t_wave_slope_ratio: float = T_WAVE_SLOPE_RATIO
    p_wave_s: float = P_WAVE_S
    p_wave_slope_ratio: float = P_WAVE_SLOPE_RATIO
    threshold_fraction: float = THRESHOLD_FRACTION
    search_back_rr: float = SEARCH_BACK_RR
    search_back_fraction: float = SEARCH_BACK_FRACTION
    history: int = HISTORY
    learning_s: float = LEARNING_S
    locate_band_hz: tuple[float, float] = LOCATE_BAND_HZ
    locate_s: float = LOCATE_S
    min_signal_s: float = MIN_SIGNAL_S


DEFAULT_PARAMS = DetectorParams()
"""The module constants: what :func:`detect_r_peaks` uses unless told otherwise."""


def detect_r_peaks(signal: np.ndarray, fs: float, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Sample indices (sorted, unique int64) of the R peaks of a raw single-lead ECG.

    Parameters
    ----------
    signal : numpy.ndarray
        One lead in physical units at ``fs`` Hz, unfiltered; one shorter than
        ``params.min_signal_s`` has no beats.
    fs : float
        Sampling rate in Hz.
    params : DetectorParams, optional
        The detector's settings (default: the module constants).

    Returns
    -------
    numpy.ndarray
        R-peak sample indices, int64.

    Raises
    ------
    SignalQualityError
        NaN or flat input.
    """
    signal = np.asarray(signal, dtype=np.float64)
    check_signal(signal, "ECG signal")
    if signal.shape[0] < params.min_signal_s * fs:
        return np.empty(0, dtype=np.int64)
    band = bandpass(signal, fs, *params.qrs_band_hz)
    envelope = qrs_envelope(band, fs, params)
    slope = maximum_filter1d(np.abs(np.gradient(band)), size=_samples(params.integration_s, fs))
    peaks, _ = find_peaks(envelope, distance=_samples(params.refractory_s, fs))
    beats = classify_peaks(
        peaks, envelope[peaks], slope[peaks], initial_qrs_level(envelope, fs, params), fs, signal.shape[0], params
    )
    return locate_r_peaks(bandpass(signal, fs, *params.locate_band_hz), beats, fs, params)


def qrs_envelope(band: np.ndarray, fs: float, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Root of the squared slope integrated over a QRS width, centred on the QRS.

    Squaring makes negative and positive complexes alike and favours the steep QRS
    over the slow P and T waves; the root brings it back to amplitude scale, so that a
    large ectopic beat does not lift the adaptive threshold above the normal beats.
    """
    energy = uniform_filter1d(np.gradient(band) ** 2, size=_samples(params.integration_s, fs))
    return np.sqrt(np.maximum(energy, 0.0))  # the running mean can round a hair below zero


def initial_qrs_level(envelope: np.ndarray, fs: float, params: DetectorParams = DEFAULT_PARAMS) -> float:
    """Typical QRS height of the envelope: the median of its one-second maxima at the start.

    Nearly every second of ECG holds a beat, so this median is a QRS peak even when a
    few of those seconds hold only noise or a giant ectopic beat.
    """
    second = _samples(1.0, fs)
    seconds = min(int(params.learning_s), envelope.shape[0] // second)
    if seconds == 0:
        return float(envelope.max())
    return float(np.median(envelope[: seconds * second].reshape(seconds, second).max(axis=1)))


class _Levels:
    """Recent QRS and noise peak heights and RR intervals, from which thresholds follow."""

    def __init__(self, qrs_level: float, params: DetectorParams) -> None:
        self.params = params
        self.qrs = deque([qrs_level] * params.history, maxlen=params.history)
        self.noise = deque([0.0] * params.history, maxlen=params.history)
        self.rr: deque = deque(maxlen=params.history)

    def threshold(self) -> float:
        noise = statistics.median(self.noise)
        return noise + self.params.threshold_fraction * (statistics.median(self.qrs) - noise)

    def search_back_after(self, fs: float) -> float:
        """Samples without a beat after which one was probably missed."""
        mean_rr = sum(self.rr) / len(self.rr) if self.rr else fs
        return self.params.search_back_rr * mean_rr


def classify_peaks(
    peaks: np.ndarray,
    heights: np.ndarray,
    slopes: np.ndarray,
    qrs_level: float,
    fs: float,
    end: int,
    params: DetectorParams = DEFAULT_PARAMS,
) -> np.ndarray:
    """The envelope peaks that are QRS complexes, by the Hamilton-Tompkins rules.

    ``peaks`` are at least a refractory period apart, ``heights`` and ``slopes`` are the
    envelope and the steepest QRS-band slope at each, ``end`` is the signal length.
    """
    t_wave = params.t_wave_s * fs
    p_wave = is_p_wave(peaks, slopes, fs, params)
    levels = _Levels(qrs_level, params)
    beats: list[int] = []
    pending: list[int] = []  # noise peaks since the last beat, where search-back looks

    def accept(k: int) -> None:
        if beats:
            levels.rr.append(peaks[k] - peaks[beats[-1]])
        beats.append(k)
        levels.qrs.append(heights[k])

    def search_back(now: int) -> None:
        """Accept the missed beats among the pending peaks while the gap is too long."""
        while beats and now - peaks[beats[-1]] > levels.search_back_after(fs):
            last, threshold = peaks[beats[-1]], levels.threshold()
            found = [
                j
                for j in pending
                if not p_wave[j]
                and heights[j] > threshold * (params.search_back_fraction if peaks[j] - last > t_wave else 1.0)
            ]
            if not found:
                return
            best = max(found, key=lambda j: heights[j])
            accept(best)
            pending[:] = [j for j in pending if j > best]

    for k in range(peaks.shape[0]):
        search_back(peaks[k])
        is_t_wave = bool(beats) and (
            peaks[k] - peaks[beats[-1]] < t_wave and slopes[k] < params.t_wave_slope_ratio * slopes[beats[-1]]
        )
        if heights[k] > levels.threshold() and not p_wave[k] and not is_t_wave:
            accept(k)
            pending.clear()
        else:
            levels.noise.append(heights[k])
            pending.append(k)
    search_back(end)
    return peaks[np.asarray(beats, dtype=np.int64)]


def is_p_wave(peaks: np.ndarray, slopes: np.ndarray, fs: float, params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Peaks followed within P_WAVE_S by a steeper one: a P wave (or noise) before its QRS.

    Offline, the next peak is known; this keeps tall, sharp P waves (as in record
    108) from being taken for beats.
    """
    gap_to_next = np.append(np.diff(peaks), np.inf)
    next_slope = np.append(slopes[1:], 0.0)
    return (gap_to_next < params.p_wave_s * fs) & (slopes < params.p_wave_slope_ratio * next_slope)


def locate_r_peaks(
    located: np.ndarray, beats: np.ndarray, fs: float, params: DetectorParams = DEFAULT_PARAMS
) -> np.ndarray:
    """Move each beat to the largest absolute deflection of ``located`` within ±LOCATE_S
    (:func:`largest_deflections`); two beats moved onto one deflection become one."""
    return np.unique(largest_deflections(located, beats, fs, params))


def largest_deflections(located: np.ndarray, beats: np.ndarray, fs: float,
                        params: DetectorParams = DEFAULT_PARAMS) -> np.ndarray:
    """Per beat, the sample of the largest absolute deflection of ``located`` (the signal
    band-passed to :data:`LOCATE_BAND_HZ`) within ±LOCATE_S of it (int64, one per beat, in order).

    That is where MIT-BIH annotates the R peak, also for negative complexes (the S or
    QS wave) and wide ventricular beats.
    """
    beats = np.asarray(beats, dtype=np.int64)
    if beats.shape[0] == 0 or located.shape[0] == 0:
        return beats
    half = _samples(params.locate_s, fs)
    windows = np.clip(beats[:, None] + np.arange(-half, half + 1)[None, :], 0, located.shape[0] - 1)
    deepest = np.argmax(np.abs(located[windows]), axis=1)
    return windows[np.arange(beats.shape[0]), deepest].astype(np.int64)


def _samples(seconds: float, fs: float) -> int:
    return max(1, int(round(seconds * fs)))
