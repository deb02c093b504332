"""Writing an annotation: WFDB annotation file, CSV and JSON per beat, the suggestion sheet.

Every file is written under a temporary name and moved into place, so a reader never
sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import wfdb

from ..errors import AnnotationError
from ..files import atomic_write
from .annotate import Annotation, summary
from .expert import labels_file

RESERVED_EXTENSIONS = frozenset({"atr", "hea", "dat"})
"""Annotation extensions never written: the reference annotations and the record itself."""


def write_annotation(annotation: Annotation, out_dir: str | os.PathLike, ext: str = "pred") -> dict[str, Path]:
    """Write ``<record>.<ext>`` (WFDB, for any WFDB viewer), ``.csv`` and ``.json`` per beat.

    Each file is written under a temporary name and moved into place, so a reader
    never sees half a file.

    Parameters
    ----------
    annotation : Annotation
    out_dir : str or path
        Created if missing.
    ext : str
        Extension of the WFDB annotation file; ``atr``, ``hea`` and ``dat`` are refused,
        so a reference annotation file or the record itself is never overwritten.

    Returns
    -------
    dict of str to Path
        ``{"wfdb": ..., "csv": ..., "json": ...}``; samples in every file are at the
        record's own rate.

    Raises
    ------
    AnnotationError
        A reserved or malformed extension.
    OSError
        ``out_dir`` cannot be written.
    """
    ext = check_extension(ext)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"{annotation.record}.{ext}"
    paths = {"wfdb": base, "csv": base.with_name(base.name + ".csv"), "json": base.with_name(base.name + ".json")}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{annotation.record}.{ext}.tmp-") as tmp:
        wfdb.wrann(annotation.record, ext, np.asarray(annotation.samples, dtype=np.int64),
                   symbol=[str(s) for s in annotation.symbols], fs=annotation.fs, write_dir=tmp)
        os.replace(Path(tmp) / base.name, paths["wfdb"])
    rows = beat_rows(annotation)
    atomic_write(paths["csv"], _csv_text(rows))
    document = {"record": annotation.record, "path": annotation.path, "fs": annotation.fs, "lead": annotation.lead,
                "encoder": annotation.encoder, "summary": summary(annotation), "beats": rows}
    atomic_write(paths["json"], json.dumps(document) + "\n")
    return paths


def beat_rows(annotation: Annotation) -> list[dict]:
    """One plain dict per beat, the content of the CSV and JSON files."""
    neighbors = annotation.neighbors
    n = len(annotation)
    columns = zip(np.asarray(annotation.samples).tolist(), np.round(annotation.times, 3).tolist(),
                  annotation.labels.tolist(), annotation.symbols.tolist(),
                  np.round(np.asarray(annotation.confidence, dtype=np.float64), 4).tolist(),
                  annotation.label_source.tolist(),
                  [[]] * n if neighbors is None else neighbors.tolist())
    return [{"sample": sample, "time": time, "label": str(label), "symbol": str(symbol), "confidence": confidence,
             "label_source": str(source), "neighbors": " ".join(r for r in refs if r)}
            for sample, time, label, symbol, confidence, source, refs in columns]


def write_suggestions(annotation: Annotation, samples: np.ndarray, out_dir: str | os.PathLike) -> Path:
    """``<record>.suggest.csv``: the suggested samples with an empty label column for the expert.

    It is in the format :func:`read_labels` reads (sample, label, then context
    columns it ignores), so the filled-in file goes straight back to ``--labels``.
    """
    rows = np.searchsorted(annotation.samples, samples)
    lines = [{"sample": int(annotation.samples[r]), "label": "", "time": round(float(annotation.times[r]), 3),
              "current_label": str(annotation.labels[r]), "confidence": round(float(annotation.confidence[r]), 4)}
             for r in rows]
    path = Path(out_dir) / f"{annotation.record}.suggest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, _csv_text(lines, ("sample", "label", "time", "current_label", "confidence")))
    return path


def write_labels(labels: Mapping[int, str], out_dir: str | os.PathLike, record: str) -> Path:
    """``<record>.labels.csv`` (rows ``sample,label``, by sample): the expert's answers of
    every round, in the format :func:`~simsearch.label.expert.read_labels` reads."""
    path = labels_file(out_dir, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"sample": int(s), "label": str(labels[s])} for s in sorted(labels, key=int)]
    atomic_write(path, _csv_text(rows, ("sample", "label")))
    return path


def check_extension(ext: str) -> str:
    """The extension without a leading dot; refuses names that could clobber the record or its reference."""
    ext = str(ext).strip().lstrip(".")
    if not ext.isalnum():
        raise AnnotationError(f"annotation extension must be letters and digits, not {ext!r}")
    if ext.lower() in RESERVED_EXTENSIONS:
        raise AnnotationError(f"refusing extension {ext!r}: it would overwrite the record or its reference "
                              "annotations; choose another (e.g. pred)")
    return ext


def _csv_text(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else ()))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


