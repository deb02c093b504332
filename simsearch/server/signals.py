"""What the page draws: beat windows in mV on one time grid, and a record's strip decimated per pixel.

A long record is never sent whole: the overview is one (min, max) pair per pixel bucket
(:func:`strip`), so a 24-hour recording costs the browser a few thousand points, and the
detail view asks for the seconds it shows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import ParameterError, SampleOutOfRangeError
from ..signal.records import load_record

DISPLAY_FS = 360.0
"""Beat windows are drawn on one grid, whatever each record's rate."""
WINDOW_BEFORE_S = 0.25
WINDOW_AFTER_S = 0.45
"""A beat window: 250 ms before its R-peak, 450 ms after (the encoder sees 90 and 166 samples at 360 Hz)."""
MAX_POINTS = 8000
"""Most buckets (or raw samples per bucket request) one strip request returns."""
CACHE_BYTES = 512 << 20
"""Signals of stored records kept in memory to cut neighbor windows from."""


def beat_window(signal: np.ndarray, fs: float, sample: int) -> list[float]:
    """The beat at ``sample`` on the :data:`DISPLAY_FS` grid from -250 to +450 ms, in mV,
    the window's median removed (so beats of different records overlay)."""
    grid = np.arange(-WINDOW_BEFORE_S, WINDOW_AFTER_S + 1e-9, 1.0 / DISPLAY_FS)
    at = sample + grid * fs
    values = np.interp(at, np.arange(signal.size), signal, left=np.nan, right=np.nan)
    values = values - np.nanmedian(values) if np.isfinite(values).any() else values
    return [None if not np.isfinite(v) else round(float(v), 4) for v in values]


def window_grid() -> dict:
    """How :func:`beat_window` values are placed in time."""
    return {"t0": -WINDOW_BEFORE_S, "fs": DISPLAY_FS}


def strip(signal: np.ndarray, fs: float, start_s: float, end_s: float, points: int) -> dict:
    """The signal from ``start_s`` to ``end_s``: raw samples when they fit in ``points``
    (twice over), else ``points`` buckets of (min, max), in mV.

    Returns ``{"kind": "raw", "start", "fs", "mv"}`` or
    ``{"kind": "minmax", "start", "step", "min", "max"}`` (times in seconds).
    """
    if not (np.isfinite(start_s) and np.isfinite(end_s)) or end_s <= start_s:
        raise ParameterError(f"strip: end ({end_s}) must come after start ({start_s})")
    if not 1 <= points <= MAX_POINTS:
        raise ParameterError(f"strip: points must be from 1 to {MAX_POINTS}, not {points}")
    n = signal.size
    i0 = int(np.clip(np.floor(start_s * fs), 0, n))
    i1 = int(np.clip(np.ceil(end_s * fs), 0, n))
    if i1 <= i0:
        raise SampleOutOfRangeError(f"strip: {start_s:g} to {end_s:g} s lies outside the record (0 to {n / fs:g} s)")
    part = signal[i0:i1]
    if part.size <= 2 * points:
        return {"kind": "raw", "start": i0 / fs, "fs": fs, "mv": np.round(part.astype(np.float64), 4).tolist()}
    size = int(np.ceil(part.size / points))
    buckets = part.size // size
    body = part[: buckets * size].reshape(buckets, size)
    lows, highs = body.min(axis=1), body.max(axis=1)
    if buckets * size < part.size:  # the last, shorter bucket
        tail = part[buckets * size:]
        lows, highs = np.append(lows, tail.min()), np.append(highs, tail.max())
    return {"kind": "minmax", "start": i0 / fs, "step": size / fs,
            "min": np.round(lows.astype(np.float64), 4).tolist(), "max": np.round(highs.astype(np.float64), 4).tolist()}


class SignalCache:
    """Signals of stored records (one lead, float32), least recently used dropped past :data:`CACHE_BYTES`."""

    def __init__(self, limit: int = CACHE_BYTES):
        self.limit = limit
        self._items: OrderedDict[tuple[str, str], tuple[np.ndarray, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, lead: str | None) -> tuple[np.ndarray, float]:
        key = (str(path), lead or "")
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        record = load_record(path, lead=lead, annotations=None)
        item = (record.signal.astype(np.float32), float(record.fs))
        with self._lock:
            self._items[key] = item
            while sum(v[0].nbytes for v in self._items.values()) > self.limit and len(self._items) > 1:
                self._items.popitem(last=False)
        return item
