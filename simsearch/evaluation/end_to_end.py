"""End to end: beats found by the detector, labeled by the index, matched to the reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..aami import AAMI_CLASSES, class_index, to_aami
from ..label.annotate import doubted_unclassifiable
from ..label.ectopy import ECTOPIC_CLASSES, RUN_CATEGORIES
from ..label.vote import VOTE_K, record_vote, vote_winner
from ..progress import progress_bar
from ..signal.beats import beats_from_record, reference_beats
from ..signal.records import Record, load_record
from .detection import in_episodes, vf_episodes
from .matching import (
    MATCH_TOLERANCE_S,
    RUN_COUNTS,
    match_labels,
    match_runs,
    matched_metrics,
    pair_peaks,
    run_figures,
)
from .metrics import percent

Counts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(confusion matrix of matched beats, missed reference beats per class, extra detections
per given class), as :func:`~simsearch.evaluation.matching.match_labels` returns them, and the run
counts of :func:`~simsearch.evaluation.matching.match_runs`."""


BEAT_POSITIONS = ("detected", "reference", "true detections")
"""Where :func:`record_counts` cuts a record's beats: ``"detected"``, as ``annotate`` reads a recording
(the detector, checked in the other lead); ``"reference"``, at the reference annotations, from the same
signal (the detector's errors taken away); ``"true detections"``, the detections within the tolerance of a
reference beat (its false detections taken away, its misses kept). The last two tell, in noise, what the
detector's errors cost the labels of the beats around them (their rhythm context):
``scripts/cross_validate_end_to_end.py``."""


def record_counts(index, record: Record, *, exclude: Sequence[str] = (),
                  tolerance_s: float = MATCH_TOLERANCE_S, positions: str = "detected") -> Counts:
    """Detect the beats of one annotated record, label them by the index (the vote; the detections the check
    doubts Q, as ``annotate`` labels them), match them to the reference. Episodes of ventricular flutter are left
    out, beats and runs, as EC57 leaves them out (:func:`~simsearch.evaluation.detection.vf_episodes`).

    Parameters
    ----------
    index : BeatIndex
        The labeled beats that vote.
    record : Record
        With reference annotations; its signal may be a noisy copy of another record's.
    exclude : sequence of str
        Records whose beats may not vote, besides ``record.name`` itself (e.g. the clean
        record a noisy copy was made from).
    tolerance_s : float
        A detection within this of a reference beat is that beat (EC57: 150 ms).
    positions : str
        One of :data:`BEAT_POSITIONS`: the detector's beats (the default), or the reference's, or the
        detector's true ones only.

    Returns
    -------
    Counts
        To be summed over records and scored by :func:`end_to_end_figures`.
    """
    if positions not in BEAT_POSITIONS:
        raise ValueError(f"positions must be one of {', '.join(BEAT_POSITIONS)}, not {positions!r}")
    reference, symbols = reference_beats(record)
    bare = replace(record, ann_samples=None, ann_symbols=None)  # as annotate reads it
    if positions == "reference":
        found = beats_from_record(bare, r_peaks=reference)
    else:
        found = beats_from_record(bare)
        if positions == "true detections":
            true_rows = np.sort(pair_peaks(reference, found.samples, record.fs, tolerance_s)[1])
            found = beats_from_record(bare, r_peaks=found.samples[true_rows], centres=found.centres[true_rows])
    distances, ids = index.search(index.embed(record, found), VOTE_K,
                                  exclude_records=list(dict.fromkeys([record.name, *exclude])))
    pred = doubted_unclassifiable(vote_winner(record_vote(index, distances, ids))[0], found)
    truth = class_index(to_aami(symbols))
    names = np.asarray(AAMI_CLASSES)
    vf = vf_episodes(record)  # EC57 leaves ventricular flutter out: waves no annotator calls beats
    ref, det = ~in_episodes(reference, vf), ~in_episodes(found.samples, vf)
    return (*match_labels(reference[ref], truth[ref], found.samples[det], pred[det], record.fs, tolerance_s),
            match_runs(reference, names[truth], found.samples, names[pred], record.fs, tolerance_s, left_out=vf))


def no_counts() -> Counts:
    """Zero counts, to sum :func:`record_counts` into."""
    n = len(AAMI_CLASSES)
    return (np.zeros((n, n), dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
            np.zeros((len(ECTOPIC_CLASSES), len(RUN_CATEGORIES), len(RUN_COUNTS)), dtype=np.int64))


def add_counts(total: Counts, more: Counts) -> Counts:
    return tuple(t + m for t, m in zip(total, more))


def end_to_end_figures(counts: Counts) -> dict:
    """EC57 figures of summed :func:`record_counts`, with the detector's QRS figures.

    Returns
    -------
    dict
        :func:`~simsearch.evaluation.matching.matched_metrics` (missed reference beats
        count against their class's Se, extra detections against the +P of the class
        they were given) and ``qrs``: ``tp``, ``fn``, ``fp``, ``se`` and ``ppv`` (percent)
        of the detections whatever their class, the 150 ms pairing being the same; ``runs``: run detection
        per ectopic class and run category (:func:`~simsearch.evaluation.matching.run_figures`).
    """
    matrix, missed, extra, runs = counts
    tp, fn, fp = int(matrix.sum()), int(missed.sum()), int(extra.sum())
    qrs = {"tp": tp, "fn": fn, "fp": fp, "se": percent(tp, tp + fn), "ppv": percent(tp, tp + fp)}
    return {**matched_metrics(matrix, missed, extra), "qrs": qrs, "runs": run_figures(runs)}


def evaluate_end_to_end(index, records: Sequence[str], data_dir, *, tolerance_s: float = MATCH_TOLERANCE_S,
                        progress: bool = False) -> dict:
    """Detected beats (no reference positions) labeled by the index, scored against the reference.

    Parameters
    ----------
    index : BeatIndex
        The labeled beats that vote; a test record's own beats never do (excluded by name,
        however the record is spelled).
    records : sequence of str
        Test records (names or paths) with reference annotations.
    data_dir : str or path, optional
        Where bare names are looked up.
    tolerance_s : float
        A detection within this of a reference beat is that beat (EC57: 150 ms).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        :func:`end_to_end_figures` pooled over records: EC57 figures, the confusion
        matrix of matched beats, ``missed_reference_beats`` (counted against their
        class's Se), ``extra_beats`` (against the +P of the class they were given) and
        the QRS figures.
    """
    totals = no_counts()
    with progress_bar("end-to-end", len(records), enabled=progress) as advance:
        for name in records:
            totals = add_counts(totals, record_counts(index, load_record(name, data_dir), tolerance_s=tolerance_s))
            advance(name)
    return end_to_end_figures(totals)
