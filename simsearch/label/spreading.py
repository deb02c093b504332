"""Label spreading over a record's own kNN graph (Zhou et al., 2004).

Beats of one patient look more like each other than like anyone else's, so the
index's vote (from other patients) is refined on the record's own graph, in which a
handful of clamped expert labels carry their class to the beats that resemble them.
Pure functions of the embeddings, the vote scores and the expert labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import cg, splu

from ..model.encoder import unit_distance
from .vote import vote_winner

GRAPH_K = 10
"""Neighbors per beat in the record's own kNN graph."""
SPREAD_ALPHA = 0.99
"""Label spreading's α: the share of a beat's label taken from its graph neighbors
rather than from its own global vote (Zhou et al.'s F ← αSF + (1−α)Y). High, because
a patient's beats of one kind form tight clusters whose consensus beats any single
beat's vote. Chosen with EXPERT_WEIGHT by the simulated expert on DS1 records (each
voted on by the other DS1 records only) from α in {0.5, 0.9, 0.99, 0.999}."""
DIRECT_SOLVE_MAX = 5_000
"""Largest record (in unlabeled beats) whose spreading system is factorised (sparse LU,
exact); past it, as for a 24-hour Holter's 100,000 beats, where the factor's fill-in
takes minutes and gigabytes, the system is solved by conjugate gradients (it is
symmetric positive definite), to a relative residual of :data:`ITERATIVE_RTOL`."""
ITERATIVE_RTOL = 1e-10
EXPERT_WEIGHT = 20.0
"""Strength of a clamped expert label relative to one beat's global vote (whose
scores sum to 1): one expert answer should outweigh the votes of the beats around it
(tried: 1, 5, 20, 100)."""


@contextmanager
def single_thread() -> Iterator[None]:
    """Run FAISS on one thread for small per-record problems (a few thousand beats).

    OpenMP threads cost more than they save at this size, and on a shared machine
    they spin against other jobs: k-means on 3,000 beats took 0.5 s on two busy
    threads and 0.02 s on one. One thread also makes k-means bit-reproducible.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def knn_graph(embeddings: np.ndarray, k: int = GRAPH_K) -> sp.csr_matrix:
    """Symmetrically normalised affinity ``S = D^-1/2 W D^-1/2`` of the record's kNN graph.

    W is a heat kernel on embedding distance over each beat's ``k`` nearest beats,
    symmetrised (an edge either way counts), with the kernel width the median kNN
    distance so the graph adapts to how tight this patient's clusters are.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return sp.csr_matrix((n, n))
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    with single_thread():
        similarity, ids = flat.search(x, k + 1)
    rows = np.repeat(np.arange(n), k + 1)
    cols = ids.ravel()
    keep = (cols >= 0) & (cols != rows)
    d2 = unit_distance(similarity.ravel()[keep]) ** 2
    sigma2 = max(float(np.median(d2)), 1e-6)
    w = sp.csr_matrix((np.exp(-d2 / sigma2), (rows[keep], cols[keep])), shape=(n, n))
    w = w.maximum(w.T)
    degree = np.asarray(w.sum(axis=1)).ravel()
    scale = sp.diags(np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0))
    return (scale @ w @ scale).tocsr()


def spread(graph: sp.csr_matrix, prior: np.ndarray, clamped: np.ndarray, alpha: float = SPREAD_ALPHA
           ) -> np.ndarray:
    """The fixed point of ``F ← αSF + (1−α)Y`` with the ``clamped`` rows held at Y.

    Solved as a linear system rather than iterated (the iteration needs about 1/(1−α) steps,
    thousands for α near 1): the free rows u satisfy
    ``(I − αS_uu) F_u = (1−α) Y_u + α S_uc Y_c``, a sparse system that is
    non-singular for α < 1 because S's eigenvalues lie in [−1, 1]: by sparse LU up to
    :data:`DIRECT_SOLVE_MAX` free rows, by conjugate gradients past it.
    """
    prior = np.asarray(prior, dtype=np.float64)
    n = prior.shape[0]
    clamped = np.unique(np.asarray(clamped, dtype=np.int64))
    free = np.setdiff1d(np.arange(n), clamped)
    f = prior.copy()
    if free.size == 0:
        return f
    graph = sp.csr_matrix(graph)
    system = (sp.identity(free.size, format="csc") - alpha * graph[free][:, free]).tocsc()
    rhs = (1.0 - alpha) * prior[free] + alpha * (graph[free][:, clamped] @ prior[clamped])
    if free.size <= DIRECT_SOLVE_MAX:
        f[free] = splu(system).solve(np.ascontiguousarray(rhs))
        return f
    system = system.tocsr()
    for c in range(rhs.shape[1]):
        column = np.ascontiguousarray(rhs[:, c])
        if not column.any():
            f[free, c] = 0.0
            continue
        solution, info = cg(system, column, x0=prior[free, c], rtol=ITERATIVE_RTOL, atol=0.0, maxiter=10_000)
        f[free, c] = solution
    return f


def propagate(graph: sp.csr_matrix, global_scores: np.ndarray, rows: np.ndarray, classes: np.ndarray, *,
              alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-adapted (scores, class positions, confidence) of every beat.

    Y is the global vote for every beat, replaced by ``expert_weight`` times a
    one-hot row for expert beats, which are clamped; scores are F's rows normalised.
    Expert beats keep their label at confidence 1.
    """
    prior = np.array(global_scores, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    prior[rows] = 0.0
    prior[rows, np.asarray(classes, dtype=np.int64)] = expert_weight
    f = spread(graph, prior, rows, alpha)
    total = f.sum(axis=1, keepdims=True)
    scores = np.divide(f, total, out=np.zeros_like(f), where=total > 0)
    winner, confidence = vote_winner(scores)
    return scores, winner, confidence
