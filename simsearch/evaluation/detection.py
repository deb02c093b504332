"""QRS detection scored against reference beat annotations, per record and pooled."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import AnnotationError
from ..signal.beats import detect_beats, reference_beats
from ..signal.records import Record, load_record
from .matching import match_peaks


def vf_episodes(record: Record) -> np.ndarray:
    """(start, end) samples of the ventricular flutter/fibrillation episodes, ``[`` to ``]``.

    Such episodes hold flutter waves but no beat annotations, so any detection in them
    is a false positive; AAMI EC57 leaves them out of the beat-by-beat comparison.
    """
    episodes, start = [], None
    for symbol, sample in zip(record.ann_symbols, record.ann_samples):
        if symbol == "[":
            start = int(sample)
        elif symbol == "]" and start is not None:
            episodes.append((start, int(sample)))
            start = None
    if start is not None:
        episodes.append((start, record.n_samples))
    return np.asarray(episodes, dtype=np.int64).reshape(-1, 2)


def detection_counts(reference: np.ndarray, detected: np.ndarray, fs: float,
                     vf: np.ndarray) -> tuple[int, int, int, int]:
    """TP, FN, FP of ``detected`` against ``reference`` (150 ms window), and how many of the
    FP fall inside the ventricular flutter/fibrillation episodes ``vf`` (:func:`vf_episodes`)."""
    tp, fn, fp = match_peaks(reference, detected, fs)
    return tp, fn, fp, fp - match_peaks(reference, detected[~in_episodes(detected, vf)], fs)[2]


def in_episodes(samples: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """Whether each sample falls in one of the (start, end) ``episodes`` (both ends included)."""
    samples = np.asarray(samples)
    inside = np.zeros(samples.shape[0], dtype=bool)
    for start, end in episodes:
        inside |= (samples >= start) & (samples <= end)
    return inside


def evaluate_detection(
    records: Sequence[str],
    data_dir: str | os.PathLike | None,
    detector: Callable[[Record], np.ndarray] = detect_beats,
) -> list[dict]:
    """Run ``detector`` on each annotated record and score it against the beat annotations.

    Parameters
    ----------
    records : sequence of str
        Record names or paths, with reference annotations.
    data_dir : str or path, optional
        Where bare names are looked up.
    detector : callable
        ``detector(record)`` -> R-peak samples at the record's rate; default the simsearch
        detector with its second look in the record's other lead (:func:`detect_beats`).

    Returns
    -------
    list of dict
        Per record: ``reference`` beats, ``tp``, ``fn``, ``fp``, ``fp_vf`` (the false
        positives inside ventricular flutter/fibrillation episodes, which AAMI EC57
        leaves out), ``se`` and ``ppv`` in percent, and ``seconds``, the detector's own
        run time (not the reading).

    Raises
    ------
    AnnotationError
        A record has no reference annotations.
    """
    rows = []
    for name in records:
        record = load_record(name, data_dir)
        if not record.has_annotations:
            raise AnnotationError(f"{record.name}: no reference annotations to evaluate against")
        reference = reference_beats(record)[0]
        started = time.perf_counter()
        detected = np.asarray(detector(record), dtype=np.int64)
        seconds = time.perf_counter() - started
        tp, fn, fp, fp_vf = detection_counts(reference, detected, record.fs, vf_episodes(record))
        rows.append(
            {
                "record": record.name,
                "reference": int(reference.shape[0]),
                "tp": tp,
                "fn": fn,
                "fp": fp,
                "fp_vf": fp_vf,
                "se": _percent(tp, tp + fn),
                "ppv": _percent(tp, tp + fp),
                "seconds": seconds,
            }
        )
    return rows


def summarize_detection(rows: Sequence[dict]) -> dict:
    """Gross totals over records (beats pooled, so long records weigh more), in percent.

    ``ppv_ec57`` leaves out the detections in ventricular flutter/fibrillation episodes,
    as AAMI EC57 does.
    """
    tp, fn, fp = (sum(row[key] for row in rows) for key in ("tp", "fn", "fp"))
    fp_vf = sum(row.get("fp_vf", 0) for row in rows)
    seconds = sum(row["seconds"] for row in rows)
    return {
        "records": len(rows),
        "reference": sum(row["reference"] for row in rows),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "fp_vf": fp_vf,
        **detection_rates(tp, fn, fp, fp_vf),
        "seconds": seconds,
        "seconds_per_record": seconds / len(rows) if rows else float("nan"),
    }


def detection_rates(tp: int, fn: int, fp: int, fp_vf: int = 0) -> dict:
    """``se``, ``ppv`` and ``ppv_ec57`` (false positives inside ventricular flutter left out) in percent."""
    return {"se": _percent(tp, tp + fn), "ppv": _percent(tp, tp + fp), "ppv_ec57": _percent(tp, tp + fp - fp_vf)}


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else float("nan")
