"""Label spreading's solvers: conjugate gradients against the exact sparse LU, on real beats.

The graphs are those of real records (the stored embeddings of the small index, the
packaged model): CG must give the same labels as splu, and scores within the error
bound it promises (:data:`~simsearch.label.spreading.CG_ERROR`).
"""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.label import spreading
from simsearch.label.vote import index_vote


def record_problem(index, record: str, expert: int, seed: int = 0):
    """(graph, global vote scores, expert rows, their classes) of a stored record."""
    beats = index.catalog.beats(record=record)
    ids = beats["id"].astype(np.int64)
    x = np.stack([index.vectors.reconstruct(int(i)) for i in ids])
    distances, neighbors = index.search(x, 100, exclude_records=[record])
    scores = index_vote(index, distances, neighbors)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ids), size=expert, replace=False))
    classes = rng.integers(0, 5, size=expert)
    return spreading.knn_graph(x), scores, rows, classes


@pytest.mark.parametrize("record,expert", [("208", 0), ("119", 5), ("209", 40)])
def test_conjugate_gradients_give_the_labels_of_the_direct_solve(small_index, record, expert):
    graph, scores, rows, classes = record_problem(small_index, record, expert)
    exact = spreading.propagate(graph, scores, rows, classes, solver="splu")
    iterative = spreading.propagate(graph, scores, rows, classes, solver="cg")
    assert np.array_equal(iterative[1], exact[1])  # labels
    assert np.abs(iterative[0] - exact[0]).max() < 10 * spreading.CG_ERROR  # scores
    assert np.abs(iterative[2] - exact[2]).max() < 10 * spreading.CG_ERROR  # confidence


def test_the_error_bound_holds_on_f_itself(small_index):
    graph, scores, rows, classes = record_problem(small_index, "100", 10)
    prior = np.array(scores, dtype=np.float64)
    prior[rows] = 0.0
    prior[rows, classes] = spreading.EXPERT_WEIGHT
    exact = spreading.spread(graph, prior, rows, solver="splu")
    iterative = spreading.spread(graph, prior, rows, solver="cg")
    assert np.abs(iterative - exact).max() <= spreading.CG_ERROR
    assert np.array_equal(iterative[rows], prior[rows])  # clamped rows are held


def test_auto_factorises_small_systems_and_iterates_past_the_limit(small_index, monkeypatch):
    graph, scores, rows, classes = record_problem(small_index, "119", 3)
    calls = []
    original = spreading.conjugate_gradients
    monkeypatch.setattr(spreading, "conjugate_gradients", lambda *a, **k: calls.append(1) or original(*a, **k))
    spreading.propagate(graph, scores, rows, classes)
    assert calls == []  # under DIRECT_SOLVE_MAX: sparse LU
    monkeypatch.setattr(spreading, "DIRECT_SOLVE_MAX", 100)
    spreading.propagate(graph, scores, rows, classes)
    assert calls == [1]
    with pytest.raises(ValueError, match="solver"):
        spreading.spread(graph, scores, rows, solver="jacobi")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_conjugate_gradients_refuse_a_system_that_does_not_converge():
    import scipy.sparse as sp

    singular = sp.diags([1.0, 0.0, 2.0]).tocsr()  # no solution: the residual cannot vanish
    with pytest.raises(ArithmeticError, match="did not converge"):
        spreading.conjugate_gradients(singular, np.ones((3, 1)), 1e-12, max_iterations=50)
