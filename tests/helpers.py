"""Test helpers: real MIT-BIH records rewritten at other sampling rates; waiting for a review workspace."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import wfdb

from simsearch.signal.records import load_record, other_lead, resampled, write_record


def write_at_rate(name: str, data_dir: Path, fs: float, out_dir: Path, seconds: float | None = None,
                  new_name: str | None = None, both_leads: bool = False) -> Path:
    """Record ``name`` (its default lead, and its other lead with ``both_leads``) resampled to ``fs``
    and written as WFDB with its annotations moved to the new rate; returns the new record's path
    (no extension)."""
    names = [None, other_lead(name, data_dir)] if both_leads else [None]
    leads = []
    for lead in names:
        record = load_record(name, data_dir, lead=lead)
        if seconds is not None:
            end = int(seconds * record.fs)
            keep = record.ann_samples < end
            record = replace(record, signal=record.signal[:end], ann_samples=record.ann_samples[keep],
                             ann_symbols=record.ann_symbols[keep])
        leads.append(resampled(record, fs))
    record = leads[0]
    new_name = new_name or f"{name}_{int(fs)}"
    write_record(Path(out_dir) / new_name, np.column_stack([r.signal for r in leads]), fs, [r.lead for r in leads])
    wfdb.wrann(new_name, "atr", record.ann_samples, symbol=list(record.ann_symbols), fs=fs, write_dir=str(out_dir))
    return Path(out_dir) / new_name


def wait_ready(client, wid: str, timeout: float = 120) -> list[str]:
    """Poll a server workspace's status until it is ready (a failure fails the test); the states seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/workspaces/{wid}/status").json()
        if not seen or seen[-1] != status["state"]:
            seen.append(status["state"])
        if status["state"] in ("ready", "failed"):
            assert status["state"] == "ready", status
            return seen
        time.sleep(0.1)
    raise AssertionError(f"workspace {wid} not ready after {timeout} s: {seen}")
