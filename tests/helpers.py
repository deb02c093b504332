"""Test helpers: real MIT-BIH records rewritten at other sampling rates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import wfdb

from simsearch.signal.records import load_record, resampled


def write_at_rate(name: str, data_dir: Path, fs: float, out_dir: Path, seconds: float | None = None,
                  new_name: str | None = None) -> Path:
    """Record ``name`` (its default lead) resampled to ``fs`` and written as WFDB with its
    annotations moved to the new rate; returns the new record's path (no extension)."""
    record = load_record(name, data_dir)
    if seconds is not None:
        end = int(seconds * record.fs)
        keep = record.ann_samples < end
        record = replace(record, signal=record.signal[:end], ann_samples=record.ann_samples[keep],
                         ann_symbols=record.ann_symbols[keep])
    record = resampled(record, fs)
    new_name = new_name or f"{name}_{int(fs)}"
    wfdb.wrsamp(new_name, fs=fs, units=["mV"], sig_name=[record.lead], p_signal=record.signal[:, None], fmt=["16"],
                write_dir=str(out_dir))
    wfdb.wrann(new_name, "atr", record.ann_samples, symbol=list(record.ann_symbols), fs=fs, write_dir=str(out_dir))
    return Path(out_dir) / new_name
