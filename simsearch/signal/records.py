"""Reading WFDB records: file in, arrays out.

A record is named either by a path (``data/100`` or ``data/100.hea``) or by a bare name
looked up in the data directory (``--data-dir`` or ``SIMSEARCH_DATA``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from ..aami import check_symbols
from ..errors import LeadNotFoundError, RecordFormatError, RecordNotFoundError, SignalQualityError, reason

DATA_ENV = "SIMSEARCH_DATA"
PREFERRED_LEAD = "MLII"


@dataclass(frozen=True)
class Record:
    """One lead of a record, in physical units, at the rate ``fs`` it was recorded at.

    A record is never resampled: sample numbers (its own, its annotations', a user's)
    are always at ``fs``. Only beat cutting (:func:`simsearch.signal.beats.beats_from_record`)
    converts to the model's rate, and converts positions back.
    ``ann_samples``/``ann_symbols`` hold the reference annotations (all of them, beats
    and non-beats) when the record has an annotation file, else ``None``.
    """

    name: str
    path: str
    signal: np.ndarray
    fs: float
    lead: str
    ann_samples: np.ndarray | None = None
    ann_symbols: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def has_annotations(self) -> bool:
        return self.ann_samples is not None


def data_dir_from(data_dir: str | os.PathLike | None) -> Path | None:
    """The explicit data directory, else ``$SIMSEARCH_DATA``, else None."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if chosen is None or str(chosen) == "":
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise RecordNotFoundError(f"data directory not found: {path}")
    return path


def record_name(record: str | os.PathLike) -> str:
    """The name a record is known by (``data/100.hea`` -> ``100``): records are compared by name."""
    text = str(record).strip()
    name = Path(text[: -len(".hea")] if text.endswith(".hea") else text).name
    if not name:
        raise RecordNotFoundError(f"not a record name: {str(record)!r}")
    return name


def resolve_record_path(record: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Find ``<record>.hea``: as a path first, then inside the data directory."""
    text = str(record)
    if text.endswith(".hea"):
        text = text[: -len(".hea")]
    candidate = Path(text).expanduser()
    if candidate.with_name(candidate.name + ".hea").is_file():
        return candidate.resolve()  # absolute: indexes and annotations outlive the working directory
    base = data_dir_from(data_dir)
    if base is not None and (base / (candidate.name + ".hea")).is_file() and candidate.parent == Path("."):
        return (base / candidate.name).resolve()
    where = f" in {base}" if base is not None else f" (no data directory: pass --data-dir or set {DATA_ENV})"
    raise RecordNotFoundError(f"record not found: {record}{where}")


def load_record(
    record: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    lead: str | None = None,
    annotations: str | None = "atr",
) -> Record:
    """Read one lead of a WFDB record at its own sampling rate.

    Parameters
    ----------
    record : str or path
        A path (``data/100`` or ``data/100.hea``) or a bare name inside ``data_dir``.
    data_dir : str or path, optional
        Where bare names are looked up (default: ``$SIMSEARCH_DATA``).
    lead : str, optional
        Lead name; by default MLII where present, else the first lead.
    annotations : str or None
        Extension of the annotation file to read when it exists (``None``: ignore
        annotations).

    Returns
    -------
    Record

    Raises
    ------
    RecordNotFoundError, RecordFormatError, LeadNotFoundError, SignalQualityError, AnnotationError
    """
    path = resolve_record_path(record, data_dir)
    name = path.name
    try:
        header = wfdb.rdheader(str(path))
    except Exception as exc:  # wfdb raises many types for one cause: a bad header
        raise RecordFormatError(f"{path}.hea: malformed header ({reason(exc)})") from None
    leads = list(header.sig_name or [])
    if not leads:
        raise RecordFormatError(f"{path}.hea: the header names no signal")
    chosen = _choose_lead(leads, lead, name)
    channel = leads.index(chosen)
    try:
        raw = wfdb.rdrecord(str(path), channels=[channel], physical=True)
    except FileNotFoundError as exc:
        raise RecordNotFoundError(f"{name}: signal file missing ({reason(exc)})") from None
    except Exception as exc:
        raise RecordFormatError(f"{name}: signal file cannot be read ({reason(exc)})") from None
    signal = np.asarray(raw.p_signal[:, 0], dtype=np.float64)
    if header.sig_len and signal.shape[0] < header.sig_len:
        raise RecordFormatError(
            f"{name}: signal file is truncated ({signal.shape[0]} of {header.sig_len} samples)"
        )
    check_signal(signal, f"{name} lead {chosen}")
    fs = float(header.fs)

    ann_samples = ann_symbols = None
    if annotations and path.with_name(f"{name}.{annotations}").is_file():
        try:
            ann = wfdb.rdann(str(path), annotations)
        except Exception as exc:
            raise RecordFormatError(f"{name}.{annotations}: annotation file cannot be read ({reason(exc)})") from None
        ann_symbols = np.asarray(ann.symbol, dtype=object)
        check_symbols(ann_symbols, f"{name}.{annotations}")
        ann_samples = np.asarray(ann.sample, dtype=np.int64)
    return Record(name, str(path), signal, fs, chosen, ann_samples, ann_symbols)


MIN_SAMPLES = 64
"""Shorter signals hold no beat and are too short for the zero-phase filters."""


def check_signal(signal: np.ndarray, what: str) -> None:
    """Refuse signals no beat can come from: too short, NaN/inf samples, or a flat line."""
    if signal.ndim != 1 or signal.shape[0] < MIN_SAMPLES:
        raise SignalQualityError(f"{what}: signal too short ({signal.size} samples, at least {MIN_SAMPLES})")
    bad = ~np.isfinite(signal)
    if bad.any():
        raise SignalQualityError(f"{what}: {int(bad.sum())} NaN or infinite samples")
    if float(np.ptp(signal)) < 1e-6:
        raise SignalQualityError(f"{what}: flat signal (no variation)")


def _choose_lead(leads: list[str], lead: str | None, name: str) -> str:
    if lead is None:
        return PREFERRED_LEAD if PREFERRED_LEAD in leads else leads[0]
    if lead not in leads:
        raise LeadNotFoundError(f"{name}: no lead {lead!r} (leads: {', '.join(leads)})")
    return lead
