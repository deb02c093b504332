"""Test helpers: real MIT-BIH records rewritten at other sampling rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb

from simsearch.signal.filtering import resample
from simsearch.signal.records import load_record


def write_at_rate(name: str, data_dir: Path, fs: float, out_dir: Path, seconds: float | None = None,
                  new_name: str | None = None) -> Path:
    """Record ``name`` (its default lead) resampled to ``fs`` and written as WFDB with its
    annotations moved to the new rate; returns the new record's path (no extension)."""
    record = load_record(name, data_dir)
    end = record.n_samples if seconds is None else int(seconds * record.fs)
    signal = resample(record.signal[:end], record.fs, fs)
    new_name = new_name or f"{name}_{int(fs)}"
    wfdb.wrsamp(new_name, fs=fs, units=["mV"], sig_name=[record.lead], p_signal=signal[:, None], fmt=["16"],
                write_dir=str(out_dir))
    keep = record.ann_samples < end
    samples = np.round(record.ann_samples[keep] * fs / record.fs).astype(np.int64)
    inside = samples < signal.size
    wfdb.wrann(new_name, "atr", samples[inside], symbol=list(record.ann_symbols[keep][inside]), fs=fs,
               write_dir=str(out_dir))
    return Path(out_dir) / new_name
