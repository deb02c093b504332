"""Beat-by-beat matching of two beat lists, as AAMI EC57 (and PhysioNet's bxb) makes it."""

from __future__ import annotations

import numpy as np

from ..aami import AAMI_CLASSES
from ..label.ectopy import ECTOPIC_CLASSES, RUN_CATEGORIES, class_runs
from .metrics import class_metrics, percent

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
    return paired_counts(reference_classes, test_classes, *pair_peaks(reference, test, fs, tolerance_s))


def paired_counts(reference_classes: np.ndarray, test_classes: np.ndarray, reference_rows: np.ndarray,
                  test_rows: np.ndarray, reference_in: np.ndarray | None = None, test_in: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`match_labels`' counts of beats already paired (:func:`pair_peaks`' rows), or of one group of them.

    Given ``reference_in`` and ``test_in`` (whether each reference beat and each test beat is in the group: a
    stretch of one rhythm, say), a pair counts where its reference beat is in the group, a missed reference
    beat where it is, and a test beat with no reference beat where it is. The beats are paired once, over the
    whole record, so the groups' counts add up to the record's, and a group's border changes no pairing.
    """
    n = len(AAMI_CLASSES)
    reference_classes, test_classes = np.asarray(reference_classes), np.asarray(test_classes)
    reference_in = np.ones(reference_classes.shape, bool) if reference_in is None else np.asarray(reference_in, bool)
    test_in = np.ones(test_classes.shape, bool) if test_in is None else np.asarray(test_in, bool)
    pairs = reference_in[reference_rows]
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (reference_classes[reference_rows[pairs]], test_classes[test_rows[pairs]]), 1)
    unpaired_reference, unpaired_test = reference_in.copy(), test_in.copy()
    unpaired_reference[reference_rows] = False
    unpaired_test[test_rows] = False
    missed = np.bincount(reference_classes[unpaired_reference], minlength=n)
    extra = np.bincount(test_classes[unpaired_test], minlength=n)
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


RUN_COUNTS = ("reference", "found", "test", "true")
"""The counts :func:`match_runs` keeps per class and run category: reference runs, those the test found,
test runs, those the reference has."""


def match_runs(reference: np.ndarray, reference_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
               fs: float, tolerance_s: float = MATCH_TOLERANCE_S, left_out: np.ndarray | None = None) -> np.ndarray:
    """Run-by-run comparison of two labeled beat lists, as EC57 scores run detection.

    Per ectopic class (:data:`~simsearch.label.ectopy.ECTOPIC_CLASSES`) and run category (couplet, short run
    of three to five, long run of six or more: :data:`~simsearch.label.ectopy.RUN_CATEGORIES`), a reference run
    is found where a test run of the same class and category overlaps its span (first to last beat, widened by
    ``tolerance_s`` each side), and a test run is true where a reference run does so. A couplet labeled as a
    run of three is thus a missed couplet and a false short run, as EC57 counts them.

    Parameters
    ----------
    reference, test : array of int
        Beat samples of each list, increasing.
    reference_labels, test_labels : array of str
        Their AAMI classes.
    left_out : ndarray of int, shape (k, 2), optional
        (start, end) samples of episodes left out, as EC57 leaves out ventricular flutter and fibrillation
        (:func:`~simsearch.evaluation.detection.vf_episodes`): their beats are dropped, and no run is read
        across one (the beats either side are compared as separate stretches).

    Returns
    -------
    ndarray of int, shape (2, 3, 4)
        Per class, per category: :data:`RUN_COUNTS`.
    """
    if left_out is not None and len(left_out):
        starts, ends = np.asarray(left_out, dtype=np.int64).T
        total = 0
        for after, before in zip(np.r_[np.iinfo(np.int64).min, ends], np.r_[starts, np.iinfo(np.int64).max]):
            ref = (reference > after) & (reference < before)
            tst = (test > after) & (test < before)
            total = total + match_runs(reference[ref], reference_labels[ref], test[tst], test_labels[tst], fs,
                                       tolerance_s)
        return total
    tolerance = tolerance_s * fs
    out = np.zeros((len(ECTOPIC_CLASSES), len(RUN_CATEGORIES), len(RUN_COUNTS)), dtype=np.int64)
    for i, cls in enumerate(ECTOPIC_CLASSES):
        for j, (fewest, most) in enumerate(RUN_CATEGORIES.values()):
            ref = _run_spans(reference, reference_labels, cls, fewest, most)
            found = _overlapped(*ref, *_run_spans(test, test_labels, cls, fewest, most), tolerance)
            true = _overlapped(*_run_spans(test, test_labels, cls, fewest, most), *ref, tolerance)
            out[i, j] = ref[0].size, found.sum(), true.size, true.sum()
    return out


def _run_spans(samples, labels, cls: str, fewest: int, most: int | None) -> tuple[np.ndarray, np.ndarray]:
    """First and last samples of the runs of ``cls`` of ``fewest`` to ``most`` beats."""
    samples = np.asarray(samples, dtype=np.int64)
    starts, lengths = class_runs(labels, cls)
    keep = (lengths >= fewest) & (lengths <= (np.inf if most is None else most))
    return samples[starts[keep]], samples[starts[keep] + lengths[keep] - 1]


def _overlapped(first, last, other_first, other_last, tolerance: float) -> np.ndarray:
    """Per span: whether one of the other spans (disjoint, in time order) overlaps it widened by ``tolerance``."""
    nearest = np.searchsorted(other_last, first - tolerance, side="left")  # the first other span not over yet
    inside = nearest < other_first.size
    hit = np.zeros(first.size, dtype=bool)
    hit[inside] = other_first[nearest[inside]] <= last[inside] + tolerance
    return hit


def run_figures(runs: np.ndarray) -> dict:
    """Se and +P (percent) of summed :func:`match_runs` counts, per class and category, with the counts."""
    return {cls: {category: {"n": int(c[0]), "se": percent(c[1], c[0]), "test": int(c[2]), "ppv": percent(c[3], c[2])}
                  for category, c in zip(RUN_CATEGORIES, np.asarray(runs)[i])}
            for i, cls in enumerate(ECTOPIC_CLASSES)}
