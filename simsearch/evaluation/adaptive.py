"""A simulated expert: Se/+P per class as it labels the beats :func:`suggest_beats` asks for."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..aami import AAMI_CLASSES, AAMI_TO_SYMBOL, class_index
from ..label.annotate import (
    Annotation,
    Prepared,
    assemble,
    prepare,
    read_beats,
    shown_neighbors,
    suggested_rows,
    vote_and_graph,
)
from ..label.spreading import EXPERT_WEIGHT, GRAPH_K, SPREAD_ALPHA, knn_graph
from ..label.suggest import CLUSTERS_PER_LABEL, SUGGEST_SEED
from ..label.vote import VOTE_K, record_vote
from ..model.datasets import in_other_lead, load_beats
from ..model.leads import graph_vectors, side_by_side
from ..model.rhythms import reference_rhythms, simulate_rhythm
from ..progress import progress_bar
from ..signal.records import read_rhythms, record_name
from ..store.index import BeatIndex
from .classification import (
    UNANNOTATED_RHYTHM,
    grouped_confusion,
    knn_search,
    largest_first,
    named_rhythms,
    record_figures,
)
from .metrics import class_metrics, confusion_matrix
from .selection import refixed

ROUNDS = 3
"""Rounds in which the simulated expert spends each budget."""
EXPERT_TARGETS = {("S", "se"): 95.0, ("S", "ppv"): 95.0, ("V", "se"): 98.0, ("V", "ppv"): 98.0}
"""Issue 9's figures with at most 20 expert labels per record (%), what the expert loop's settings
are chosen to come nearest to (:func:`~simsearch.evaluation.classification.target_shortfall`)."""


def evaluate_adaptive(index: BeatIndex, records: Sequence[str], budgets: Sequence[int] = (0, 5, 10, 20, 50),
                      data_dir: str | os.PathLike | None = None, k: int = 10, progress: bool = False, *,
                      rounds: int = ROUNDS, alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT,
                      seed: int = SUGGEST_SEED, clusters_per_label: int = CLUSTERS_PER_LABEL) -> dict:
    """Se/+P per class as a simulated expert labels ``budget`` beats of each record.

    For every record (reference beat positions) and budget the expert starts from
    nothing, and in up to ``rounds`` rounds labels the beats :func:`suggest_beats`
    asks for, revealing their reference class only; the record is re-propagated after
    each round. Beats the expert labeled are left out of the score, which is pooled
    over records (gross statistics). Each record is embedded and searched once
    (:func:`prepare_records`, then :func:`score_expert`, which a cross-validation can
    call for many settings).

    Parameters
    ----------
    index : BeatIndex
        The labeled beats that vote; a record's own beats never do (excluded by name).
    records : sequence of str
        Test records (names or paths) with reference annotations.
    budgets : sequence of int
        Expert labels per record, each budget simulated from scratch.
    data_dir : str or path, optional
        Where bare names are looked up.
    k : int
        Neighbors of the global vote.
    progress : bool
        Show a progress bar on stderr.
    rounds, alpha, expert_weight
        Rounds per budget, and the label spreading settings.
    seed, clusters_per_label
        The suggestions' k-means seed and clusters per label (:func:`~simsearch.label.suggest.suggest_rows`).

    Returns
    -------
    dict
        ``budgets`` maps ``"global"`` (the index's vote, leaned toward each record's own class mix as
        :func:`~simsearch.label.vote.record_vote` leans it, without spreading) and
        each budget to its pooled EC57 figures, their ``confusion`` matrix (reference
        rows, AAMI class order), ``expert_labels`` (how many were given), each record's compact
        figures (``per_record``, :func:`~simsearch.evaluation.classification.record_figures`) and the same per
        reference rhythm where the records have rhythm annotations (``per_rhythm``, the most beats first);
        ``records`` are the records' names.
    """
    start = time.perf_counter()
    prepared = prepare_records(index, records, data_dir, k, progress)
    report = score_expert(prepared, budgets, rounds=rounds, alpha=alpha, expert_weight=expert_weight, seed=seed,
                          clusters_per_label=clusters_per_label, rhythms=prepared_rhythms(prepared))
    return {"records": [record_name(r) for r in records], "k": k, **report,
            "wall_s": round(time.perf_counter() - start, 1)}


def prepare_records(index: BeatIndex, records: Sequence[str], data_dir: str | os.PathLike | None = None,
                    k: int = 10, progress: bool = False) -> list[tuple[Prepared, np.ndarray]]:
    """(prepared record, reference class positions) of each record: read, embedded and searched once."""
    out = []
    with progress_bar("adaptive evaluation", len(records), enabled=progress) as advance:
        for name in records:
            loaded, found, reference = read_beats(name, data_dir, beats="reference")
            out.append((prepare(index, loaded, found, k), class_index(reference)))
            advance(f"{loaded.name}: {len(found)} beats")
    return out


def prepared_rhythms(prepared: Sequence[tuple[Prepared, np.ndarray]]) -> list[np.ndarray]:
    """The reference rhythm of each beat of each record prepared by :func:`prepare_records`
    (:func:`~simsearch.evaluation.classification.named_rhythms`): what :func:`score_expert` splits its figures by."""
    return [named_rhythms(*read_rhythms(record.path), record.beats.samples) for record, _ in prepared]


def prepare_simulated(index: BeatIndex, records: Sequence[str], data_dir: str | os.PathLike | None, rhythm: str,
                      k: int = 10, progress: bool = False
                      ) -> tuple[list[tuple[Prepared, np.ndarray]], list[np.ndarray]]:
    """The synthetic ``rhythm`` records (:func:`~simsearch.model.rhythms.simulate_rhythm`, seed 0) of the beats of
    ``records`` prepared as :func:`prepare_records` prepares real ones, and each one's reference rhythms
    (:func:`~simsearch.model.rhythms.reference_rhythms`): what the simulated expert of a cross-validation is
    scored on besides the real records (``scripts/cross_validate_adaptive.py --setups``).

    Both leads are re-sequenced alike where the index holds both. Records whose beats the rhythm cannot be
    made from are left out.
    """
    first = load_beats(records, data_dir)
    second = in_other_lead(records, first, data_dir) if index.second_lead_weight else [None] * len(first)
    out, rhythms = [], []
    with progress_bar(f"synthetic {rhythm}", len(records), enabled=progress) as advance:
        for one, other in zip(first, second, strict=True):
            simulated = simulate_rhythm(one, rhythm)
            advance(one.record)
            if simulated is None:
                continue
            embeddings = index.encoder.embed(simulated.windows, simulated.context)
            if other is not None:
                again = simulate_rhythm(other, rhythm)  # the same rows and intervals: one seed, one record name
                embeddings = side_by_side(embeddings, index.encoder.embed(again.windows, again.context),
                                          index.second_lead_weight)
            scores, ids, distances, graph = vote_and_graph(index, simulated.record, embeddings, k)
            unlabeled = replace(simulated, symbols=np.full(len(simulated), "", dtype="<U1"),
                                aami=np.full(len(simulated), "", dtype="<U1"))
            out.append((Prepared(simulated.record, "", simulated.fs, simulated.lead, int(simulated.samples[-1]) + 1,
                                 unlabeled, embeddings, scores, ids, distances, graph, index.fingerprint),
                        class_index(simulated.aami)))
            rhythms.append(reference_rhythms(simulated))
    return out, rhythms


def refixed_records(prepared: Sequence[tuple[Prepared, np.ndarray]], index: BeatIndex, new_scale: np.ndarray
                    ) -> list[tuple[Prepared, np.ndarray]]:
    """Records prepared by :func:`prepare_records` as they would be with the fixed context part of the index's
    encoder weighed by ``new_scale`` (:func:`~simsearch.evaluation.selection.fixed_scale`), without training
    or embedding again: their vectors and the index's recombined
    (:func:`~simsearch.evaluation.selection.refixed`), the index's vote taken again over them (exact search,
    as :meth:`BeatIndex.search` is for a flat index) and each record's graph rebuilt. With the encoder's own
    scale it gives :func:`prepare_records`' records back. How the simulated expert of a cross-validation
    is scored with other fixed weights (``scripts/cross_validate_adaptive.py --fixed-weights``).

    Raises
    ------
    ValueError
        The index holds beats of one of the records (a cross-validation fold's index holds none), or the
        encoder has no fixed part.
    """
    encoder = index.encoder
    if encoder.fixed_scale is None:
        raise ValueError(f"{index.path}: its encoder has no fixed context part to reweigh")
    table_ids, table_classes, table_records = index.label_table()
    names = [record.record for record, _ in prepared]
    if np.isin(table_records, names).any():
        raise ValueError("refixed_records: the index holds beats of the records scored")
    stored, ids = index.vectors.arrays()
    labeled = np.isin(ids, table_ids[table_classes >= 0])  # only labeled beats answer a search
    stored, ids = stored[labeled], ids[labeled]

    def reweighed(vectors):
        return refixed(vectors, encoder.dim, encoder.fixed_scale, new_scale, index.second_lead_weight)

    base = reweighed(stored)
    out = []
    for record, truth in prepared:
        embeddings = reweighed(record.embeddings)
        distances, rows = knn_search(base, embeddings, max(VOTE_K, record.neighbor_ids.shape[1]))
        scores = record_vote(index, distances, ids[rows])
        shown_ids, shown_distances = shown_neighbors(index, distances, ids[rows], scores, record.neighbor_ids.shape[1])
        out.append((replace(record, embeddings=embeddings, global_scores=scores, neighbor_ids=shown_ids,
                            neighbor_distances=shown_distances,
                            graph=knn_graph(graph_vectors(embeddings, encoder, new_scale))), truth))
    return out


def score_expert(prepared: Sequence[tuple[Prepared, np.ndarray]], budgets: Sequence[int], *, rounds: int = ROUNDS,
                 alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT, seed: int = SUGGEST_SEED,
                 clusters_per_label: int = CLUSTERS_PER_LABEL, rhythms: Sequence[np.ndarray] | None = None) -> dict:
    """The figures of :func:`evaluate_adaptive` (its settings, ``budgets``) for records prepared by
    :func:`prepare_records`; given ``rhythms`` (each record's beats' reference rhythms, :func:`prepared_rhythms`),
    its figures per rhythm too: each budget's ``per_rhythm_confusion`` and ``per_rhythm``."""
    budgets = [int(b) for b in budgets]
    keys = ["global"] + [str(b) for b in budgets]
    empty = np.zeros((len(AAMI_CLASSES), len(AAMI_CLASSES)), dtype=np.int64)
    pooled = {key: empty.copy() for key in keys}
    per_record: dict[str, dict] = {key: {} for key in keys}
    per_rhythm: dict[str, dict] = {key: {} for key in keys}
    labeled = {key: 0 for key in keys}
    for at, (record, truth) in enumerate(prepared):
        none = np.empty(0, np.int64)
        runs = {"global": (record.global_scores.argmax(axis=1), none)}
        unlabeled = assemble(record, none, none, np.empty(0, dtype="<U1"), alpha=alpha, expert_weight=expert_weight)
        for budget in budgets:
            runs[str(budget)] = simulate_expert(record, truth, budget, rounds=rounds, alpha=alpha,
                                                expert_weight=expert_weight, unlabeled=unlabeled, seed=seed,
                                                clusters_per_label=clusters_per_label)
        for key, (predicted, rows) in runs.items():
            scored = np.ones(truth.shape[0], dtype=bool)
            scored[rows] = False
            matrix = confusion_matrix(truth[scored], predicted[scored])
            pooled[key] += matrix
            labeled[key] += int(rows.size)
            per_record[key][record.record] = record_figures(matrix)
            if rhythms is not None:
                for rhythm, counts in grouped_confusion(truth[scored], predicted[scored], rhythms[at][scored]).items():
                    per_rhythm[key][rhythm] = per_rhythm[key].get(rhythm, empty) + np.asarray(counts)
    budget_figures = {key: {"expert_labels": labeled[key], **class_metrics(pooled[key]),
                            "confusion": pooled[key].tolist(), "per_record": per_record[key]} for key in keys}
    order = largest_first(list(per_rhythm["global"]), [int(m.sum()) for m in per_rhythm["global"].values()])
    if order and order != [UNANNOTATED_RHYTHM]:
        for key in keys:
            matrices = {rhythm: per_rhythm[key].get(rhythm, empty) for rhythm in order}
            budget_figures[key].update(per_rhythm_confusion={rhythm: m.tolist() for rhythm, m in matrices.items()},
                                       per_rhythm={rhythm: record_figures(m) for rhythm, m in matrices.items()})
    return {"rounds": rounds, "alpha": alpha, "expert_weight": expert_weight, "graph_k": GRAPH_K, "seed": seed,
            "clusters_per_label": clusters_per_label, "budgets": budget_figures}


def simulate_expert(prepared: Prepared, truth: np.ndarray, budget: int, *, rounds: int = ROUNDS,
                    alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT,
                    unlabeled: Annotation | None = None, seed: int = SUGGEST_SEED,
                    clusters_per_label: int = CLUSTERS_PER_LABEL) -> tuple[np.ndarray, np.ndarray]:
    """(final class positions, rows the expert labeled) after spending ``budget`` labels in rounds.

    ``unlabeled`` is the record's annotation before any expert label, when the caller
    already has it (it is the same for every budget).
    """
    rows = np.empty(0, dtype=np.int64)
    annotation = unlabeled or assemble(prepared, rows, truth[rows], np.empty(0, dtype="<U1"), alpha=alpha,
                                       expert_weight=expert_weight)
    for size in round_sizes(budget, rounds):
        new = suggested_rows(annotation, size, seed=seed, clusters_per_label=clusters_per_label)
        if new.size == 0:
            break
        rows = np.concatenate([rows, new])
        symbols = np.array([AAMI_TO_SYMBOL[AAMI_CLASSES[c]] for c in truth[rows]], dtype="<U1")
        annotation = assemble(prepared, rows, truth[rows], symbols, alpha=alpha, expert_weight=expert_weight)
    return class_index(annotation.labels), rows


def round_sizes(budget: int, rounds: int = ROUNDS) -> list[int]:
    """Split a labeling budget into at most ``rounds`` near-equal rounds, larger first."""
    rounds = max(1, min(int(rounds), int(budget)))
    return [int(len(part)) for part in np.array_split(np.arange(int(budget)), rounds)] if budget > 0 else []
