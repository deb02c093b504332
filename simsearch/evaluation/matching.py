"""Beat-by-beat matching of two beat lists, as AAMI EC57 (and PhysioNet's bxb) makes it."""

from __future__ import annotations

import numpy as np

from ..aami import AAMI_CLASSES
from .metrics import class_metrics

MATCH_TOLERANCE_S = 0.150
"""AAMI EC57: a detection within 150 ms of a reference beat detects it."""


def pair_peaks(
    reference: np.ndarray, detected: np.ndarray, fs: float, tolerance_s: float = MATCH_TOLERANCE_S
) -> tuple[np.ndarray, np.ndarray]:
    """Matched (reference, detection) pairs, as indices into the two arrays.

    The AAMI EC57 rule, as PhysioNet's ``bxb`` applies it: both are walked in time
    order; the earlier of the next reference beat and the next detection is paired
    with the other when they are within ``tolerance_s`` and no later one is nearer,
    else it stays unmatched. Each beat and each detection is paired at most once, so a
    double detection leaves one detection unmatched.
    """
    reference, detected = np.asarray(reference, dtype=np.int64), np.asarray(detected, dtype=np.int64)
    ref_order, det_order = np.argsort(reference, kind="stable"), np.argsort(detected, kind="stable")
    ref, det = reference[ref_order], detected[det_order]
    tolerance = tolerance_s * fs
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < ref.shape[0] and j < det.shape[0]:
        if det[j] < ref[i]:
            gap, rival = ref[i] - det[j], det[j + 1] if j + 1 < det.shape[0] else None
            nearest = rival is None or gap < abs(ref[i] - rival)
        else:
            gap, rival = det[j] - ref[i], ref[i + 1] if i + 1 < ref.shape[0] else None
            nearest = rival is None or gap < abs(det[j] - rival)
        if gap <= tolerance and nearest:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif det[j] < ref[i]:
            j += 1
        else:
            i += 1
    matched = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return ref_order[matched[:, 0]], det_order[matched[:, 1]]


def match_peaks(
    reference: np.ndarray, detected: np.ndarray, fs: float, tolerance_s: float = MATCH_TOLERANCE_S
) -> tuple[int, int, int]:
    """(true positives, false negatives, false positives) of ``detected`` against ``reference``.

    Matched one to one by :func:`pair_peaks`: a detection within ``tolerance_s`` (EC57:
    150 ms) of a reference beat detects it; a second detection of the same beat is a
    false positive.
    """
    tp = int(pair_peaks(reference, detected, fs, tolerance_s)[0].shape[0])
    return tp, int(np.size(reference)) - tp, int(np.size(detected)) - tp


def match_labels(reference: np.ndarray, reference_classes: np.ndarray, test: np.ndarray, test_classes: np.ndarray,
                 fs: float, tolerance_s: float = MATCH_TOLERANCE_S) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beat-by-beat comparison of two labeled beat lists, as EC57 makes it.

    Returns the confusion matrix of matched beats, the reference beats missed per
    class, and the test beats with no reference beat per (given) class.
    """
    n = len(AAMI_CLASSES)
    ref_rows, test_rows = pair_peaks(reference, test, fs, tolerance_s)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (reference_classes[ref_rows], test_classes[test_rows]), 1)
    missed = np.bincount(np.delete(reference_classes, ref_rows), minlength=n)
    extra = np.bincount(np.delete(test_classes, test_rows), minlength=n)
    return matrix, missed, extra


def matched_metrics(matrix: np.ndarray, missed: np.ndarray, extra: np.ndarray) -> dict:
    """EC57 figures where missed reference beats count against their class's Se and
    extra test beats against the +P of the class they were given (FPR and accuracy
    stay those of the matched beats)."""
    metrics = class_metrics(matrix)
    for i, c in enumerate(AAMI_CLASSES):
        if c in metrics["classes"]:
            row = metrics["classes"][c]
            row["fn"] += int(missed[i])
            row["fp"] += int(extra[i])
            row["se"] = round(100 * row["tp"] / (row["tp"] + row["fn"]), 2) if row["tp"] + row["fn"] else None
            row["ppv"] = round(100 * row["tp"] / (row["tp"] + row["fp"]), 2) if row["tp"] + row["fp"] else None
    return {**metrics, "confusion": matrix.tolist(), "missed_reference_beats": int(missed.sum()),
            "extra_beats": int(extra.sum())}
