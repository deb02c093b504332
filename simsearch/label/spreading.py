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
from scipy.sparse.linalg import splu

from ..model.encoder import unit_distance
from ..store.exact import MIN_PRUNED, ExactKnn
from .vote import vote_winner

GRAPH_K = 10
"""Neighbors per beat in the record's own kNN graph. The simulated expert cross-validated
inside DS1 (``scripts/cross_validate_adaptive.py``, 20 labels per record), 5, 10, 20
neighbors: SVEB Se / +P 89.3 / 93.0, 91.5 / 93.0, 88.9 / 94.7; VEB 96.5 / 96.0,
97.0 / 95.8, 97.6 / 95.1."""
SPREAD_ALPHA = 0.99
"""Label spreading's α: the share of a beat's label taken from its graph neighbors
rather than from its own global vote (Zhou et al.'s F ← αSF + (1−α)Y). High, because
a patient's beats of one kind form tight clusters whose consensus beats any single
beat's vote. Chosen with EXPERT_WEIGHT by the simulated expert on DS1 records (each
voted on by the other DS1 records only) from α in {0.5, 0.9, 0.99, 0.999}. Checked
again with encoders that never saw the scored patients (``scripts/cross_validate_adaptive.py``,
4 folds, 20 labels per record), α 0.9, 0.99, 0.999: SVEB Se / +P 88.2 / 92.7, 91.5 / 93.0,
90.7 / 95.0; VEB 96.3 / 94.4, 97.0 / 95.8, 97.6 / 95.0; N +P 99.5, 99.6, 99.6."""
SOLVERS = ("auto", "cg", "splu")
DIRECT_SOLVE_MAX = 5_000
"""Largest system (in unlabeled beats) that ``solver="auto"`` factorises (sparse LU,
exact); past it, as for a 24-hour Holter's 100,000 beats, where the factor's fill-in
takes minutes and gigabytes (2,500 beats 0.3 s, 20,000 11 s, 40,000 80 s, 109,000 over
14 min at 4.7 GB), it is solved by conjugate gradients to :data:`CG_ERROR`."""
CG_ERROR = 1e-9
"""Largest error conjugate gradients may leave in an entry of F (whose rows sum to about 1).
The system matrix ``A = I − αS_uu`` is symmetric with eigenvalues in [1−α, 1+α], so a
residual ``r`` bounds the error: ``|F − F*|₂ ≤ |r|₂ / (1−α)``. Iterating until the true
residual (computed again at the end) is at most ``(1−α) CG_ERROR`` per column leaves
every entry within 1e-9 of the exact solution: a label can differ from the direct
solver's only where a beat's two best classes score within ~1e-9 of each other (a tie)."""
CG_MAX_ITERATIONS = 5_000
"""Far more than needed: the condition number is at most (1+α)/(1−α) = 199, so the error
falls at least 0.87x per iteration (about 200 iterations for 1e-12)."""
EXPERT_WEIGHT = 20.0
"""Strength of a clamped expert label relative to one beat's global vote (whose
scores sum to 1): one expert answer should outweigh the votes of the beats around it
(tried: 1, 5, 20, 100; cross-validated again as for :data:`SPREAD_ALPHA`, 5, 20, 100 at 20
labels per record: SVEB 90.7 / 93.8, 91.5 / 93.0, 91.9 / 92.9; VEB 97.2 / 95.5, 97.0 / 95.8,
96.6 / 95.8)."""


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
    if n >= MIN_PRUNED:  # a Holter record: 10^10 pairs, ~92 % of them pruned (the same exact answer)
        similarity, ids = ExactKnn(x).search(x, k + 1)
    else:
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


def spread(graph: sp.csr_matrix, prior: np.ndarray, clamped: np.ndarray, alpha: float = SPREAD_ALPHA,
           solver: str = "auto") -> np.ndarray:
    """The fixed point of ``F ← αSF + (1−α)Y`` with the ``clamped`` rows held at Y.

    Solved as a linear system rather than iterated (the iteration needs about 1/(1−α)
    steps, thousands for α near 1): the free rows u satisfy
    ``(I − αS_uu) F_u = (1−α) Y_u + α S_uc Y_c``, a sparse system that is symmetric
    positive definite for α < 1 because S's eigenvalues lie in [−1, 1]. ``solver``:
    ``splu`` (sparse LU, exact), ``cg`` (conjugate gradients, to :data:`CG_ERROR`) or
    ``auto`` (splu up to :data:`DIRECT_SOLVE_MAX` free rows, cg past it).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    prior = np.asarray(prior, dtype=np.float64)
    n = prior.shape[0]
    clamped = np.unique(np.asarray(clamped, dtype=np.int64))
    free = np.setdiff1d(np.arange(n), clamped)
    f = prior.copy()
    if free.size == 0:
        return f
    graph = sp.csr_matrix(graph)
    s_uu = graph if clamped.size == 0 else graph[free][:, free]
    rhs = (1.0 - alpha) * prior[free]
    if clamped.size:
        rhs += alpha * (graph[free][:, clamped] @ prior[clamped])
    if solver == "splu" or (solver == "auto" and free.size <= DIRECT_SOLVE_MAX):
        system = (sp.identity(free.size, format="csc") - alpha * s_uu).tocsc()
        f[free] = splu(system).solve(np.ascontiguousarray(rhs))
    else:
        system = (sp.identity(free.size, format="csr") - alpha * s_uu).tocsr()
        # from Y: F is Y smoothed over the graph, so the start is already right where the graph is flat
        f[free] = conjugate_gradients(system, rhs, (1.0 - alpha) * CG_ERROR, x0=prior[free])
    return f


def conjugate_gradients(a: sp.csr_matrix, b: np.ndarray, atol: float, x0: np.ndarray | None = None,
                        max_iterations: int = CG_MAX_ITERATIONS) -> np.ndarray:
    """X with ``|a X[:, j] − b[:, j]|₂ ≤ atol`` for every column j, ``a`` symmetric positive
    definite: conjugate gradients on all columns at once (one sparse product per step),
    from ``x0`` (default 0).

    The recurrence's residual drifts from the true one at high accuracy, so the true
    residual is computed again once the recurrence is done, and iterated from while it
    is too large. No column is asked for more than 1e-14 of its right-hand side (double
    precision's reach).

    Raises
    ------
    ArithmeticError
        Not converged in ``max_iterations`` (``a`` is not positive definite).
    """
    b = np.asarray(b, dtype=np.float64).reshape(b.shape[0], -1)
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=np.float64).reshape(b.shape)
    tolerance = np.maximum(atol, 1e-14 * np.linalg.norm(b, axis=0))
    iterations = 0
    while True:
        r = b - a @ x
        residual = np.linalg.norm(r, axis=0)
        if (residual <= tolerance).all():
            return x
        if iterations >= max_iterations or not np.isfinite(residual).all():
            raise ArithmeticError(f"conjugate gradients did not converge in {iterations} iterations "
                                  f"(residual {residual.max():.3g}, wanted {tolerance.min():.3g})")
        p = r.copy()
        rr = np.einsum("ij,ij->j", r, r)
        while iterations < max_iterations and not (np.sqrt(rr) <= 0.5 * tolerance).all():  # NaN: stop
            ap = a @ p
            pap = np.einsum("ij,ij->j", p, ap)
            step = np.divide(rr, pap, out=np.zeros_like(rr), where=pap > 0)
            x += step * p
            r -= step * ap
            rr_next = np.einsum("ij,ij->j", r, r)
            p = r + np.divide(rr_next, rr, out=np.zeros_like(rr), where=rr > 0) * p
            rr = rr_next
            iterations += 1
            if not np.isfinite(rr).all():
                break


def propagate(graph: sp.csr_matrix, global_scores: np.ndarray, rows: np.ndarray, classes: np.ndarray, *,
              alpha: float = SPREAD_ALPHA, expert_weight: float = EXPERT_WEIGHT, solver: str = "auto"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-adapted (scores, class positions, confidence) of every beat.

    Y is the global vote for every beat, replaced by ``expert_weight`` times a
    one-hot row for expert beats, which are clamped; scores are F's rows normalised.
    Expert beats keep their label at confidence 1. ``solver``: see :func:`spread`.
    """
    prior = np.array(global_scores, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    prior[rows] = 0.0
    prior[rows, np.asarray(classes, dtype=np.int64)] = expert_weight
    f = spread(graph, prior, rows, alpha, solver)
    total = f.sum(axis=1, keepdims=True)
    scores = np.divide(f, total, out=np.zeros_like(f), where=total > 0)
    winner, confidence = vote_winner(scores)
    return scores, winner, confidence
