"""Noise removal before segmentation (zero-phase, so R-peaks do not move), and the other
SciPy filters the signal stages use.

SciPy is imported on first use, not with this module: ``scipy.signal`` and
``scipy.ndimage`` take about a second to import on a small machine, and commands that
never touch a signal (``simsearch info``, a query of a stored beat) should not pay it.
The thin wrappers below are the signal stages' only way to SciPy's filters.
"""

from __future__ import annotations

import numpy as np

BASELINE_CUTOFF_HZ = 0.5
"""Below this: baseline wander (breathing, electrode motion)."""
NOISE_CUTOFF_HZ = 40.0
"""Above this: EMG and mains noise; the QRS energy lies below it."""


def bandpass(signal: np.ndarray, fs: float, low_hz: float = BASELINE_CUTOFF_HZ, high_hz: float = NOISE_CUTOFF_HZ,
             order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass (forward-backward, so the effective order doubles)."""
    from scipy.signal import butter, sosfiltfilt  # lazy: see the module docstring

    high_hz = min(high_hz, 0.45 * fs)
    sos = butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, np.asarray(signal, dtype=np.float64))


def clean_ecg(signal: np.ndarray, fs: float) -> np.ndarray:
    """The filtered signal every beat is cut from: baseline wander and HF noise removed."""
    return bandpass(signal, fs)


def resample(x, from_fs: float, to_fs: float, axis: int = 0) -> np.ndarray:
    """``x`` sampled at ``from_fs`` resampled to ``to_fs`` along ``axis``: polyphase
    (:func:`scipy.signal.resample_poly`, SciPy imported on the first call), the rate ratio
    rounded to a fraction with a denominator of at most 1000. The one rate conversion of
    simsearch (records to the model's rate, noise to a record's rate)."""
    x = np.asarray(x, dtype=np.float64)
    if abs(from_fs - to_fs) < 1e-9:
        return x
    from fractions import Fraction

    from scipy.signal import resample_poly  # lazy: see the module docstring

    ratio = Fraction(to_fs / from_fs).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=axis)


def find_peaks(x, **kwargs):
    """:func:`scipy.signal.find_peaks`, SciPy imported on the first call."""
    from scipy.signal import find_peaks as peaks  # lazy: see the module docstring

    return peaks(x, **kwargs)


def median_filter(x, **kwargs) -> np.ndarray:
    """:func:`scipy.ndimage.median_filter`, SciPy imported on the first call."""
    from scipy.ndimage import median_filter as median  # lazy: see the module docstring

    return median(x, **kwargs)


def percentile_filter(x, percentile, **kwargs) -> np.ndarray:
    """:func:`scipy.ndimage.percentile_filter`, SciPy imported on the first call."""
    from scipy.ndimage import percentile_filter as percentile_of  # lazy: see the module docstring

    return percentile_of(x, percentile, **kwargs)


def uniform_filter1d(x, **kwargs) -> np.ndarray:
    """:func:`scipy.ndimage.uniform_filter1d`, SciPy imported on the first call."""
    from scipy.ndimage import uniform_filter1d as uniform  # lazy: see the module docstring

    return uniform(x, **kwargs)


def maximum_filter1d(x, **kwargs) -> np.ndarray:
    """:func:`scipy.ndimage.maximum_filter1d`, SciPy imported on the first call."""
    from scipy.ndimage import maximum_filter1d as maximum  # lazy: see the module docstring

    return maximum(x, **kwargs)


def minimum_filter1d(x, **kwargs) -> np.ndarray:
    """:func:`scipy.ndimage.minimum_filter1d`, SciPy imported on the first call."""
    from scipy.ndimage import minimum_filter1d as minimum  # lazy: see the module docstring

    return minimum(x, **kwargs)
