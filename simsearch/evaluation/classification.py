"""Honest inter-patient evaluation (de Chazal 2004 protocol), baselines in the same run.

The index holds DS1 beats only; every DS2 beat is a query. Nothing here is tuned on
DS2: vote settings come from the index defaults, chosen on DS1 validation records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from ..aami import AAMI_CLASSES, DS1, DS2
from ..errors import LeadNotFoundError
from ..label.vote import (
    BOOSTED_CLASSES,
    PATIENT_PRIOR_STRENGTH,
    PRIOR_ALPHA,
    RECORD_BALANCE,
    VOTE_K,
    class_vote,
    patient_adapted,
    vote_first,
    vote_winner,
)
from ..model.datasets import BeatSet, load_beats
from ..model.encoder import RR_INPUTS, Encoder, encoder_inputs
from ..model.leads import SECOND_LEAD_WEIGHT, side_by_side
from ..progress import progress_bar
from ..signal.records import read_rhythms, record_name, rhythm_at
from .leakage import check_disjoint
from .matching import matched_metrics
from .metrics import class_metrics, confusion_matrix, precision_at_k

SVEB_RECORD = "232"
"""The DS2 record whose SVEBs are most of DS2's (1,382 of 1,837): pooled S figures are
mostly this one patient's, so the report also gives them without it."""

RECORD_CLASSES = ("N", "S", "V", "F")
"""The classes of the per-record figures (Q beats are reported apart, as in EC57)."""

UNANNOTATED_RHYTHM = "unannotated"
"""The per-rhythm figures' name for beats no rhythm annotation covers (a record without any, or before its
first)."""

RAW_RR_WEIGHT = 3.0
"""Weight of the RR inputs against the unit-norm raw beat in the raw+RR baseline, set
in an early experiment on DS1 validation records (never on DS2) and not re-tuned."""


@dataclass(frozen=True)
class System:
    """A way to turn beats into vectors compared by Euclidean distance.

    ``both_leads``: the vectors of a beat in its record's default lead and in its other lead,
    side by side (:func:`~simsearch.model.leads.side_by_side`, the vectors of an index of both leads)."""

    name: str
    vectors: Callable[[np.ndarray, np.ndarray], np.ndarray]
    both_leads: bool = False


def raw_vectors(windows: np.ndarray, context: np.ndarray) -> np.ndarray:
    """The z-normalised beat samples, scaled to unit length."""
    beat, _ = encoder_inputs(windows, context)
    return np.ascontiguousarray(beat[:, :, 0] / np.sqrt(beat.shape[1]), dtype=np.float32)


def raw_rr_vectors(windows: np.ndarray, context: np.ndarray) -> np.ndarray:
    """Raw beat samples plus the encoder's RR inputs (same normalisation), weighted."""
    _, context_in = encoder_inputs(windows, context, RR_INPUTS)
    return np.ascontiguousarray(np.hstack([raw_vectors(windows, context), RAW_RR_WEIGHT * context_in]),
                                dtype=np.float32)


def systems_for(encoder: Encoder, both_leads: bool = True) -> list[System]:
    """The baselines, then the encoder, the product last: where every record has two leads, the
    encoder on one lead (``build --leads one``) before the default index's both leads."""
    baselines = [System("raw kNN", raw_vectors), System("raw+RR kNN", raw_rr_vectors)]
    if not both_leads:
        return [*baselines, System("simsearch encoder", encoder.embed)]
    return [*baselines, System("encoder, one lead", encoder.embed),
            System("simsearch encoder", encoder.embed, both_leads=True)]


def knn_search(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean kNN: (distances, rows of ``base``), both (n, k)."""
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    squared, nn = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return np.sqrt(np.maximum(squared, 0)), nn


def vote_predict(neighbor_classes: np.ndarray, distances: np.ndarray, class_counts: np.ndarray, k: int,
                 alpha: float = PRIOR_ALPHA, boosted: tuple[str, ...] = BOOSTED_CLASSES, *,
                 neighbor_records: np.ndarray | None = None, record_balance: float = RECORD_BALANCE,
                 query_records: np.ndarray | None = None,
                 patient_strength: float = PATIENT_PRIOR_STRENGTH) -> np.ndarray:
    """The index's vote over the first ``k`` neighbors: predicted class positions.

    Given ``query_records`` (each query's record), each record's votes are adapted to its own class
    mix as a recording's are (:func:`~simsearch.label.vote.patient_adapted`, ``patient_strength``)."""
    records = None if neighbor_records is None else neighbor_records[:, :k]
    scores = class_vote(neighbor_classes[:, :k], distances[:, :k], class_counts, alpha, boosted, records,
                        record_balance)
    if query_records is not None:
        scores = patient_adapted(scores, class_counts, query_records, alpha=alpha, boosted=boosted,
                                 strength=patient_strength)
    return vote_winner(scores)[0]


def shown_classes(neighbor_classes: np.ndarray, distances: np.ndarray, class_counts: np.ndarray,
                  neighbor_records: np.ndarray, k: int = VOTE_K, alpha: float = PRIOR_ALPHA) -> np.ndarray:
    """The classes of each query's neighbors (nearest first) in the order a query of the beat shows them: its own
    vote's class first (a single beat's vote over the first ``k``, no class mix of its record, as ``query`` takes
    it; :func:`~simsearch.label.vote.vote_first`)."""
    single = vote_winner(class_vote(neighbor_classes[:, :k], distances[:, :k], class_counts, alpha,
                                    neighbor_records=neighbor_records[:, :k]))[0]
    return np.take_along_axis(neighbor_classes, vote_first(neighbor_classes, single), axis=1)


def knn_predict(base: np.ndarray, base_labels: np.ndarray, base_records: np.ndarray, queries: np.ndarray, k: int,
                alpha: float = PRIOR_ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN + the index's vote: (predicted class positions, neighbor classes).
    ``base_records`` names the record of each base vector (the vote balances their shares)."""
    distances, nn = knn_search(base, queries, k)
    neighbor_classes = base_labels[nn]
    counts = np.bincount(base_labels, minlength=len(AAMI_CLASSES))
    return vote_predict(neighbor_classes, distances, counts, k, alpha,
                        neighbor_records=record_codes(base_records)[nn]), neighbor_classes


def record_codes(records: np.ndarray) -> np.ndarray:
    """Integer codes of record names (the same name, the same code): what the vote balances."""
    return np.unique(np.asarray(records), return_inverse=True)[1].astype(np.int64).reshape(np.shape(records))


def nsv_score(metrics: dict) -> float:
    """Mean of Se and +P over N, S and V (the classes with targets): one figure to select by."""
    figures = [metrics["classes"][c][key] for c in ("N", "S", "V") for key in ("se", "ppv")
               if metrics["classes"][c]["n"]]
    return round(float(np.mean([f or 0.0 for f in figures])), 2) if figures else 0.0


ZERO_LABEL_TARGETS = {("N", "se"): 97.0, ("N", "ppv"): 99.0, ("S", "se"): 80.0, ("S", "ppv"): 50.0,
                      ("V", "se"): 95.0, ("V", "ppv"): 92.0}
"""Issue 9's figures for the vote with no expert label (%): what the vote's operating point
(:data:`~simsearch.label.vote.PRIOR_ALPHA`) is chosen to come nearest to."""


def target_shortfall(metrics: dict, targets: dict = ZERO_LABEL_TARGETS) -> float:
    """Points by which Se and +P of N, S and V fall short of ``targets`` (:data:`ZERO_LABEL_TARGETS`), summed.

    :func:`nsv_score` weighs every point of Se and +P alike, so it chooses how well a
    setting separates the classes; a setting that only moves the vote's operating point
    along the same separation (more S found, more N called S) is chosen by this instead,
    which counts only what the targets ask: finding 80 % of the SVEBs matters, +P above 50 does not.
    """
    return round(sum(max(0.0, target - (metrics["classes"][c][key] or 0.0))
                     for (c, key), target in targets.items()), 2)


def score(true_idx: np.ndarray, pred_idx: np.ndarray, neighbor_classes: np.ndarray) -> dict:
    """EC57 figures, the confusion matrix and precision@1/@10 of one system."""
    matrix = confusion_matrix(true_idx, pred_idx)
    return {**class_metrics(matrix), "confusion": matrix.tolist(),
            "precision_at_1": precision_at_k(true_idx, neighbor_classes, 1),
            "precision_at_10": precision_at_k(true_idx, neighbor_classes, min(10, neighbor_classes.shape[1]))}


def record_figures(matrix, missed=None, extra=None) -> dict:
    """One record's (or one rhythm's) compact figures: its beats (Q included), its beats called S that are not
    (where a record or rhythm has no SVEB, its S +P is 0 whatever their number) and, per scored class, n, Se and +P.

    Parameters
    ----------
    matrix : array-like (5, 5)
        The record's confusion matrix (rows reference, columns predicted, AAMI order).
    missed, extra : array-like (5,), optional
        Where the beats were detected (end to end): the reference beats no detection found, per class, counted
        against their class's Se and among the beats, and the detections of no reference beat, per class they
        were given, against its +P (:func:`~simsearch.evaluation.matching.matched_metrics`); those called S
        are among the beats called S that are not.

    Returns
    -------
    dict
        ``beats``, ``false_s`` and ``classes``: ``{class: {"n", "se", "ppv"}}`` for N, S, V and F, in
        percent, ``None`` where undefined (no beat of the class, or none called it).
    """
    matrix, s = np.asarray(matrix), AAMI_CLASSES.index("S")
    missed, extra = (np.zeros(len(AAMI_CLASSES), np.int64) if c is None else np.asarray(c) for c in (missed, extra))
    metrics = matched_metrics(matrix, missed, extra)
    return {"beats": int(matrix.sum() + missed.sum()), "false_s": int(matrix[:, s].sum() - matrix[s, s] + extra[s]),
            "classes": {c: {"n": metrics["classes"][c]["tp"] + metrics["classes"][c]["fn"],
                            **{key: metrics["classes"][c][key] for key in ("se", "ppv")}} for c in RECORD_CLASSES}}


def named_rhythms(changes: np.ndarray, names: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """:func:`~simsearch.signal.records.rhythm_at`, with :data:`UNANNOTATED_RHYTHM` where no rhythm annotation
    covers a sample."""
    found = rhythm_at(changes, names, samples)
    return np.where(found == "", UNANNOTATED_RHYTHM, found).astype(object)


def beat_rhythms(beats: BeatSet, records: Sequence[str], data_dir) -> np.ndarray:
    """The reference rhythm of each beat of ``beats`` (stacked from ``records``, names or paths), from each
    record's rhythm annotations (:func:`~simsearch.signal.records.read_rhythms`), or
    :data:`UNANNOTATED_RHYTHM`."""
    out = np.full(len(beats), UNANNOTATED_RHYTHM, dtype=object)
    for record in records:
        rows = np.flatnonzero(beats.groups == record_name(record))
        if rows.size and beats.samples is not None:
            out[rows] = named_rhythms(*read_rhythms(record, data_dir), beats.samples[rows])
    return out


def largest_first(rhythms, beats=None) -> list[str]:
    """The distinct rhythms of ``rhythms`` (of :func:`beat_rhythms`, one per beat; or one per group of beats,
    ``beats`` holding each group's number) by their number of beats, the most first and
    :data:`UNANNOTATED_RHYTHM` last: the rows of a table per rhythm."""
    names, inverse = np.unique(np.asarray(rhythms).astype(str), return_inverse=True)
    totals = np.bincount(inverse.ravel(), weights=beats, minlength=names.size)
    return [str(r) for _, _, r in sorted(zip(names == UNANNOTATED_RHYTHM, -totals, names))]


def grouped_confusion(labels: np.ndarray, pred: np.ndarray, groups: np.ndarray, order=None) -> dict[str, list]:
    """One confusion matrix (a list of lists) per group of beats, in ``order`` (default: as the groups first
    appear)."""
    groups = np.asarray(groups)
    return {str(g): confusion_matrix(labels[groups == g], pred[groups == g]).tolist()
            for g in (dict.fromkeys(groups) if order is None else order)}


def _second_leads(train_records, test_records, train: BeatSet, test: BeatSet, data_dir, advance
                  ) -> tuple[tuple[BeatSet, BeatSet] | None, str | None]:
    """The same beats in each record's other lead, or None and why (a record with one lead)."""
    try:
        second = tuple(BeatSet.stack(load_beats(records, data_dir, advance, second_lead=True))
                       for records in (train_records, test_records))
    except LeadNotFoundError as exc:
        return None, str(exc)
    for one, other in zip((train, test), second):  # both cut at the reference annotations: the same beats
        if len(one) != len(other) or not np.array_equal(one.labels, other.labels):
            return None, "the two leads gave different beats"
    return second, None


def evaluate_classification(data_dir, encoder: Encoder, *, train_records: Sequence[str] = DS1,
                            test_records: Sequence[str] = DS2, k: int = VOTE_K, alpha: float = PRIOR_ALPHA,
                            progress: bool = False) -> dict:
    """Every test beat queries an index of the training beats; each system voted the same way.

    Parameters
    ----------
    data_dir : str or path
        Where the records are.
    encoder : Encoder
        The encoder scored, beside the raw and raw+RR kNN baselines.
    train_records, test_records : sequence of str
        Index and query records (default: DS1 and DS2); they must share no record (by name).
    k : int
        Neighbors that vote.
    alpha : float
        Strength of the class-prior correction of the vote.
    progress : bool
        Show progress bars on stderr.

    Returns
    -------
    dict
        ``protocol`` (records, beat counts, settings, encoder fingerprint) and, per
        system (the baselines, the encoder on one lead when every record has two, and the
        product, ``simsearch encoder``, last: on both leads side by side, as an index of such
        records holds them, else on one), EC57 figures, the confusion
        matrix, precision@1/@10 (per class and the N/S/V macro) of the neighbors a query shows (its vote's class
        first: :func:`~simsearch.label.vote.vote_first`) and, as a baseline, precision@10 of the nearest ten
        (``precision_at_10_nearest``), each test record's confusion matrix (``per_record_confusion``) and
        compact figures (``per_record``, see :func:`record_figures`), the same per reference rhythm
        where the test records have rhythm annotations (``per_rhythm_confusion``, ``per_rhythm``; by the
        rhythm's beats, :data:`UNANNOTATED_RHYTHM` last: :func:`beat_rhythms`), and, when record
        :data:`SVEB_RECORD` is among several test records, the same pooled figures
        without it (``without_232``).

    Raises
    ------
    ParameterError
        The training and test records share a record.
    """
    check_disjoint(train_records, test_records)
    start = time.perf_counter()
    with progress_bar("reading both leads", 2 * (len(train_records) + len(test_records)), enabled=progress) as advance:
        train = BeatSet.stack(load_beats(train_records, data_dir, advance))
        test = BeatSet.stack(load_beats(test_records, data_dir, advance))
        second, skipped = _second_leads(train_records, test_records, train, test, data_dir, advance)
    rhythms = beat_rhythms(test, test_records, data_dir)
    rhythm_order = largest_first(rhythms)
    annotated = rhythm_order != [UNANNOTATED_RHYTHM]
    results = []
    systems = systems_for(encoder, both_leads=second is not None)
    embedded: dict = {}

    def vectors(system: System, beats: BeatSet) -> np.ndarray:  # the encoder's default-lead vectors serve twice
        key = (system.vectors, id(beats))
        if key not in embedded:
            embedded[key] = system.vectors(beats.windows, beats.context)
        return embedded[key]

    with progress_bar("systems", len(systems), enabled=progress) as advance:
        for system in systems:
            t0 = time.perf_counter()
            base, queries = vectors(system, train), vectors(system, test)
            if system.both_leads:
                base = side_by_side(base, vectors(system, second[0]))
                queries = side_by_side(queries, vectors(system, second[1]))
            distances, nn = knn_search(base, queries, max(k, 10))  # precision@10 needs 10 neighbors
            neighbors, neighbor_records = train.labels[nn], record_codes(train.groups)[nn]
            counts = np.bincount(train.labels, minlength=len(AAMI_CLASSES))
            pred = vote_predict(neighbors, distances, counts, k, alpha, neighbor_records=neighbor_records,
                                query_records=test.groups)
            shown = shown_classes(neighbors, distances, counts, neighbor_records, k, alpha)
            per_record = grouped_confusion(test.labels, pred, test.groups)
            row = {"system": system.name, "seconds": round(time.perf_counter() - t0, 1),
                   **score(test.labels, pred, shown),
                   "precision_at_10_nearest": precision_at_k(test.labels, neighbors, min(10, neighbors.shape[1])),
                   "per_record_confusion": per_record,
                   "per_record": {r: record_figures(m) for r, m in per_record.items()}}
            if annotated:
                per_rhythm = grouped_confusion(test.labels, pred, rhythms, rhythm_order)
                row.update(per_rhythm_confusion=per_rhythm,
                           per_rhythm={r: record_figures(m) for r, m in per_rhythm.items()})
            if SVEB_RECORD in per_record and len(per_record) > 1:
                keep = test.groups != SVEB_RECORD
                row[f"without_{SVEB_RECORD}"] = score(test.labels[keep], pred[keep], shown[keep])
            results.append(row)
            advance(system.name)
    return {"protocol": {"train_records": list(train_records), "test_records": list(test_records),
                         "train_beats": len(train), "test_beats": len(test), "k": k, "prior_alpha": alpha,
                         "patient_strength": PATIENT_PRIOR_STRENGTH, "encoder": encoder.fingerprint,
                         "second_lead_weight": SECOND_LEAD_WEIGHT,
                         "both_leads_skipped": skipped, "classes": list(AAMI_CLASSES)},
            "systems": results, "seconds": round(time.perf_counter() - start, 1)}


