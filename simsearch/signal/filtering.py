"""Noise removal before segmentation: zero-phase so R-peaks do not move."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

BASELINE_CUTOFF_HZ = 0.5
"""Below this: baseline wander (breathing, electrode motion)."""
NOISE_CUTOFF_HZ = 40.0
"""Above this: EMG and mains noise; the QRS energy lies below it."""


def bandpass(signal: np.ndarray, fs: float, low_hz: float = BASELINE_CUTOFF_HZ, high_hz: float = NOISE_CUTOFF_HZ,
             order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass (forward-backward, so the effective order doubles)."""
    high_hz = min(high_hz, 0.45 * fs)
    sos = butter(order, [low_hz, high_hz], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, np.asarray(signal, dtype=np.float64))


def clean_ecg(signal: np.ndarray, fs: float) -> np.ndarray:
    """The filtered signal every beat is cut from: baseline wander and HF noise removed."""
    return bandpass(signal, fs)
