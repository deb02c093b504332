"""Expert labels: read from a file, named by AAMI class or MIT-BIH symbol, matched to beats."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..aami import AAMI_CLASSES, SYMBOL_TO_AAMI, class_index
from ..errors import AnnotationError, reason
from ..signal.beats import Beats

EXPERT_TOLERANCE_S = 0.15
"""An expert label names the beat within this of its sample (EC57's match window)."""


def parse_label(label: str) -> tuple[str, str]:
    """(AAMI class, MIT-BIH symbol) of an expert label given as either.

    The AAMI letters N, S, V, F, Q are MIT-BIH beat symbols too, so one lookup reads
    both vocabularies; case matters ('a' is an aberrated APC, 'f' a fusion of paced
    and normal beats).
    """
    text = str(label).strip()
    if text not in SYMBOL_TO_AAMI:
        raise AnnotationError(f"unknown label {text!r}: expected an AAMI class ({', '.join(AAMI_CLASSES)}) "
                              f"or a MIT-BIH beat symbol ({''.join(SYMBOL_TO_AAMI)})")
    return SYMBOL_TO_AAMI[text], text


def match_samples(beat_samples: np.ndarray, wanted: np.ndarray, tolerance: float) -> np.ndarray:
    """Row of the nearest beat to each wanted sample; -1 where none lies within ``tolerance``."""
    beat_samples = np.asarray(beat_samples, dtype=np.int64)
    wanted = np.asarray(wanted, dtype=np.int64)
    if beat_samples.size == 0:
        return np.full(wanted.shape, -1, dtype=np.int64)
    right = np.clip(np.searchsorted(beat_samples, wanted), 0, beat_samples.size - 1)
    left = np.clip(right - 1, 0, beat_samples.size - 1)
    rows = np.where(np.abs(beat_samples[left] - wanted) <= np.abs(beat_samples[right] - wanted), left, right)
    return np.where(np.abs(beat_samples[rows] - wanted) <= tolerance, rows, -1)


def expert_rows(beats: Beats, expert_labels: Mapping[int, str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beat rows, class positions, symbols) of expert labels keyed by sample at the record's rate.

    Refuses labels far from every beat (the expert and the detector disagree on
    where a beat is) and two different labels for one beat.
    """
    if not expert_labels:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, "<U1")
    parsed = {int(s): parse_label(label) for s, label in expert_labels.items()}
    samples = np.array(sorted(parsed), dtype=np.int64)
    rows = match_samples(beats.samples, samples, EXPERT_TOLERANCE_S * beats.fs)
    if (rows < 0).any():
        missing = samples[rows < 0]
        shown = ", ".join(map(str, missing[:5])) + (", ..." if missing.size > 5 else "")
        raise AnnotationError(f"{beats.record}: no beat within {EXPERT_TOLERANCE_S * 1000:.0f} ms of labeled "
                              f"sample(s) {shown} ({missing.size} of {samples.size} labels)")
    chosen: dict[int, tuple[str, str, int]] = {}
    for sample, row in zip(samples, rows):
        aami, symbol = parsed[int(sample)]
        if int(row) in chosen and chosen[int(row)][0] != aami:
            raise AnnotationError(f"{beats.record}: samples {chosen[int(row)][2]} and {sample} label the same beat "
                                  f"as {chosen[int(row)][0]} and {aami}")
        chosen.setdefault(int(row), (aami, symbol, int(sample)))
    order = sorted(chosen)
    return (np.array(order, dtype=np.int64), class_index([chosen[r][0] for r in order]),
            np.array([chosen[r][1] for r in order], dtype="<U1"))


MAX_LABEL_SAMPLE = 10**12
"""Largest sample number a labels file may give: a month of ECG at 10 kHz is 2.6e10
samples; longer numbers are typos or garbage (and overflow the 64-bit positions beats
are matched with)."""
MAX_LABELS_BYTES = 64 << 20
"""A labels file holds a line per labeled beat: tens of megabytes is already millions."""
_WHOLE = re.compile(r"[+-]?[0-9]+", re.ASCII)


def read_labels(path: str | os.PathLike) -> dict[int, str]:
    """Expert labels from a CSV file: rows ``sample,label`` (header optional, more columns ignored).

    Rows with an empty label are skipped, so a filled-in suggestion file
    (:func:`write_suggestions`) can be read back as it is, even half done. A sample
    must be a whole number (``100.5`` and ``1e3`` are refused, not rounded) from 0 to
    :data:`MAX_LABEL_SAMPLE`; the first row is a header when its sample holds no digit.
    The file must be UTF-8 text.
    """
    path = Path(path)
    try:
        size = path.stat().st_size if path.is_file() else None  # not a device, a FIFO or a directory
        if size is not None and size <= MAX_LABELS_BYTES:
            text = path.read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as exc:  # ValueError: UnicodeDecodeError, a NUL byte in the name
        what = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else \
            f"cannot be read ({getattr(exc, 'strerror', None) or reason(exc)})"
        raise AnnotationError(f"labels file {path} {what}") from None
    if size is None:
        raise AnnotationError(f"labels file {path} is not a file" if path.exists() else
                              f"labels file not found: {path}")
    if size > MAX_LABELS_BYTES:
        raise AnnotationError(f"labels file {path} is over {MAX_LABELS_BYTES >> 20} MB: not a labels file")
    if "\0" in text:
        raise AnnotationError(f"labels file {path} is not text (it holds NUL bytes)")
    labels: dict[int, str] = {}
    first = True
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise AnnotationError(f"labels file {path} is not CSV ({reason(exc)})") from None
    for line_no, row in enumerate(rows, 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        header, first = first, False
        if len(row) < 2:
            raise AnnotationError(f"{path}:{line_no}: expected 'sample,label', got {_shown(','.join(row))}")
        sample, label = row[0].strip(), row[1].strip()
        if not _WHOLE.fullmatch(sample):
            if header and not re.search(r"[0-9]", sample):
                continue  # a header row
            raise AnnotationError(f"{path}:{line_no}: sample {_shown(sample)} is not a whole number")
        if not label:
            continue
        try:
            parse_label(label)
        except AnnotationError as exc:
            raise AnnotationError(f"{path}:{line_no}: {exc}") from None
        if len(sample.lstrip("+-")) > len(str(MAX_LABEL_SAMPLE)) or abs(int(sample)) > MAX_LABEL_SAMPLE:
            raise AnnotationError(f"{path}:{line_no}: sample {_shown(sample)} is out of range "
                                  f"(0 to {MAX_LABEL_SAMPLE})")
        if int(sample) < 0:
            raise AnnotationError(f"{path}:{line_no}: negative sample {sample}")
        if int(sample) in labels and labels[int(sample)] != label:
            raise AnnotationError(f"{path}:{line_no}: sample {sample} labeled twice "
                                  f"({labels[int(sample)]!r} and {label!r})")
        labels[int(sample)] = label
    return labels


def _shown(text: str, limit: int = 24) -> str:
    """``text`` quoted for an error line, cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def labels_file(out_dir: str | os.PathLike, record: str) -> Path:
    """``OUT/<record>.labels.csv``: every expert answer of every round of ``annotate --labels``."""
    return Path(out_dir) / f"{record}.labels.csv"


def gather_labels(path: str | os.PathLike, out_dir: str | os.PathLike, record: str) -> dict[int, str]:
    """The expert's answers so far: those kept in :func:`labels_file` from earlier rounds,
    then those of ``path`` (this round's file, e.g. the filled-in suggestion sheet).

    A sample answered again takes its newer label; answers are never dropped, so a
    suggestion sheet can be overwritten by the next round's without losing the last one's.
    Both files are read (and refused) before anything heavy loads.
    """
    kept = labels_file(out_dir, record)
    earlier = read_labels(kept) if kept.is_file() else {}
    newer = read_labels(path)
    return {**earlier, **newer}
