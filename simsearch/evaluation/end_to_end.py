"""End to end: beats found by the detector, labeled by the index, matched to the reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..aami import AAMI_CLASSES, class_index, to_aami
from ..label.annotate import doubted_unclassifiable
from ..label.ectopy import ECTOPIC_CLASSES, RUN_CATEGORIES
from ..label.vote import VOTE_K, record_vote, vote_winner
from ..progress import progress_bar
from ..signal.beats import beats_from_record, reference_beats
from ..signal.records import Record, load_record, read_rhythms
from .classification import UNANNOTATED_RHYTHM, largest_first, named_rhythms, record_figures
from .detection import in_episodes, vf_episodes
from .matching import (
    MATCH_TOLERANCE_S,
    RUN_COUNTS,
    match_labels,
    match_runs,
    matched_metrics,
    pair_peaks,
    paired_counts,
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


@dataclass(frozen=True)
class LabeledRecord:
    """One record's reference beats beside the beats found and labeled in it: what :func:`matched_counts` and
    :func:`rhythm_counts` compare. Samples at the record's rate ``fs``; classes as AAMI class positions;
    ``left_out``, the (start, end) samples of its episodes of ventricular flutter."""

    fs: float
    reference: np.ndarray
    truth: np.ndarray
    found: np.ndarray
    predicted: np.ndarray
    left_out: np.ndarray

    def kept(self) -> tuple[np.ndarray, np.ndarray]:
        """Which reference beats and which found beats are scored: those outside :attr:`left_out`."""
        return ~in_episodes(self.reference, self.left_out), ~in_episodes(self.found, self.left_out)


def label_record(index, record: Record, *, exclude: Sequence[str] = (), tolerance_s: float = MATCH_TOLERANCE_S,
                 positions: str = "detected") -> LabeledRecord:
    """Detect the beats of one annotated record and label them by the index (the vote; the detections the
    check doubts Q, as ``annotate`` labels them), beside its reference beats.

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
        A detection within this of a reference beat is that beat (EC57: 150 ms); with ``positions`` ``"true
        detections"``, what a true detection is.
    positions : str
        One of :data:`BEAT_POSITIONS`: the detector's beats (the default), or the reference's, or the
        detector's true ones only.
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
    predicted = doubted_unclassifiable(vote_winner(record_vote(index, distances, ids))[0], found)
    # EC57 leaves ventricular flutter out: waves no annotator calls beats
    return LabeledRecord(record.fs, reference, class_index(to_aami(symbols)), found.samples, predicted,
                         vf_episodes(record))


def matched_counts(labeled: LabeledRecord, tolerance_s: float = MATCH_TOLERANCE_S) -> Counts:
    """The beats of :func:`label_record` matched to the reference, beat by beat and run by run, episodes of
    ventricular flutter left out, beats and runs, as EC57 leaves them out
    (:func:`~simsearch.evaluation.detection.vf_episodes`): to be summed over records and scored by
    :func:`end_to_end_figures`."""
    ref, det = labeled.kept()
    names = np.asarray(AAMI_CLASSES)
    return (*match_labels(labeled.reference[ref], labeled.truth[ref], labeled.found[det], labeled.predicted[det],
                          labeled.fs, tolerance_s),
            match_runs(labeled.reference, names[labeled.truth], labeled.found, names[labeled.predicted], labeled.fs,
                       tolerance_s, left_out=labeled.left_out))


def rhythm_counts(labeled: LabeledRecord, rhythms: tuple[np.ndarray, np.ndarray],
                  tolerance_s: float = MATCH_TOLERANCE_S) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`matched_counts`' beat counts (no runs) split by the reference rhythm in force at each beat.

    ``rhythms`` is :func:`~simsearch.signal.records.read_rhythms`' (changes, names) for the record. A matched
    beat and a missed one count in their reference beat's rhythm, a false detection in the rhythm at its time
    (:func:`~simsearch.evaluation.matching.paired_counts`: the beats are paired once, so the rhythms' counts add
    up to the record's); beats before any rhythm annotation in
    :data:`~simsearch.evaluation.classification.UNANNOTATED_RHYTHM`.
    """
    ref, det = labeled.kept()
    reference, found = labeled.reference[ref], labeled.found[det]
    rows = pair_peaks(reference, found, labeled.fs, tolerance_s)
    reference_rhythms, found_rhythms = (named_rhythms(*rhythms, samples) for samples in (reference, found))
    return {str(rhythm): paired_counts(labeled.truth[ref], labeled.predicted[det], *rows,
                                       reference_rhythms == rhythm, found_rhythms == rhythm)
            for rhythm in np.unique(np.concatenate([reference_rhythms, found_rhythms]))}


def record_counts(index, record: Record, *, exclude: Sequence[str] = (),
                  tolerance_s: float = MATCH_TOLERANCE_S, positions: str = "detected") -> Counts:
    """:func:`label_record` (its parameters), then :func:`matched_counts`: the counts of one annotated
    record, to be summed over records and scored by :func:`end_to_end_figures`."""
    return matched_counts(label_record(index, record, exclude=exclude, tolerance_s=tolerance_s, positions=positions),
                          tolerance_s)


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
        the QRS figures; each record's and each reference rhythm's compact figures (:meth:`Tally.figures`).
    """
    tally = Tally()
    with progress_bar("end-to-end", len(records), enabled=progress) as advance:
        for name in records:
            record = load_record(name, data_dir)
            tally.add(record.name, label_record(index, record, tolerance_s=tolerance_s), read_rhythms(name, data_dir),
                      tolerance_s)
            advance(name)
    return tally.figures()


@dataclass
class Tally:
    """The counts of labeled records summed three ways: over all of them, per record and per reference rhythm;
    what a report's EC57 figures, its per-record table and its per-rhythm table come from (:meth:`figures`)."""

    totals: Counts = field(default_factory=no_counts)
    per_record: dict[str, tuple] = field(default_factory=dict)
    per_rhythm: dict[str, tuple] = field(default_factory=dict)

    def add(self, name: str, labeled: LabeledRecord, rhythms: tuple[np.ndarray, np.ndarray],
            tolerance_s: float = MATCH_TOLERANCE_S) -> None:
        """Add a record's beats (:func:`label_record`) as the row ``name``, split by its ``rhythms``
        (:func:`~simsearch.signal.records.read_rhythms`' changes and names)."""
        counts = matched_counts(labeled, tolerance_s)
        self.totals = add_counts(self.totals, counts)
        self.per_record[name] = counts[:3]
        for rhythm, beat_counts in rhythm_counts(labeled, rhythms, tolerance_s).items():
            self.per_rhythm[rhythm] = add_counts(self.per_rhythm.get(rhythm, no_counts()[:3]), beat_counts)

    def figures(self) -> dict:
        """:func:`end_to_end_figures` of the totals, each record's compact figures (``per_record``,
        :func:`~simsearch.evaluation.classification.record_figures`, missed beats and false detections counted as
        in the pooled figures), and the same per reference rhythm (``per_rhythm``, the most beats first) where the
        records have rhythm annotations."""
        report = {**end_to_end_figures(self.totals),
                  "per_record": {name: record_figures(*counts) for name, counts in self.per_record.items()}}
        order = largest_first(list(self.per_rhythm), [int(c[0].sum() + c[1].sum()) for c in self.per_rhythm.values()])
        if order != [UNANNOTATED_RHYTHM]:
            report["per_rhythm"] = {rhythm: record_figures(*self.per_rhythm[rhythm]) for rhythm in order}
        return report
