"""Exact inner-product kNN of many queries at once, pruned by the triangle inequality.

A 24-hour Holter recording has ~100,000 beats; voting on each of them with its 100
nearest labeled beats of a 10^5-beat index, and finding each beat's 10 nearest beats
of its own record (the spreading graph), are two all-against-all searches of ~10^10
vector pairs. A flat FAISS search computes every pair. :class:`ExactKnn` computes a
small share of them and returns the same answer:

* the stored vectors are clustered (k-means, seeded) and sorted by cluster, then by
  their distance ``r`` to their centroid;
* queries are grouped by their nearest centroid; for each group a first search of the
  clusters nearest it gives every query an upper bound ``s_k`` on its k-th best inner
  product's complement (a k-th best found among some candidates is never better than
  the true k-th best);
* a stored vector ``x`` can beat that bound only if ``q.x >= s_k``, i.e. only if
  ``|q - x|^2 <= |q|^2 + |x|^2 - 2 s_k``; by the triangle inequality
  ``|q - x| >= | |q - c| - r |`` for its centroid ``c``, so within each cluster only the
  vectors whose ``r`` lies in ``[|q - c| - b, |q - c| + b]`` can (``b`` that bound, plus a
  slack far above float32 rounding): one contiguous slice of the sorted cluster;
* the group is searched exactly (FAISS, BLAS) over the union of its slices.

Every vector that can enter a query's k best is searched, so the answer is exact: the
same neighbors as a flat search, up to the order of equal inner products. Nothing
assumes unit vectors (the bound uses the largest stored norm); unit embeddings just
make it tight. On the 109k-beat MIT-BIH index and 111k beats of a 24-hour recording,
about 15 % of the pairs are computed at k=100 and 8 % at k=11 (the graph).

FAISS runs on one thread here: the per-group searches are small, and OpenMP threads
spinning against other work on a shared 2-core machine cost more than they give
(measured: flat search at k=100, 2,100 queries/s on one thread, 700-800 on two, load 8).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np

SEED = 1234
"""Seed of the k-means that clusters the stored vectors (the answer never depends on it)."""
MIN_PRUNED = 4096
"""Fewer stored vectors than this are searched flat (BLAS over the allowed vectors)."""
MIN_QUERIES = 512
"""Fewer queries than this are searched flat. Measured on the MIT-BIH index, one record's
beats at a time with their record excluded (load 3 on 2 cores): 5,300 beats/s flat,
8,200-9,200 pruned from 256, 512 or 1,024 queries on (k-means, once per index, ~1 s)."""
MAX_CLUSTERS = 1024
CLUSTERS_PER_SQRT = 3.0
"""Clusters: about 3 sqrt(n) (1,000 at 10^5), at most :data:`MAX_CLUSTERS`: finer
clusters prune more pairs but cost k-means time and per-group overhead."""
KMEANS_ITERATIONS = 8
KMEANS_POINTS_PER_CLUSTER = 64
"""k-means trains on a seeded sample of this many vectors per cluster: cluster quality
only changes how much is pruned, never the answer."""
KMEANS_MIN_POINTS = 40
"""Vectors per cluster at least (FAISS asks k-means for 39 and warns below)."""
FIRST_PASS = 3
"""The first pass (the upper bound) searches the nearest clusters holding this many times k allowed vectors."""
NEAR_CLUSTERS = 64
"""Clusters the first pass may look at; a group whose nearest ones hold too few allowed
vectors (a filter that excludes most of them) is searched flat instead."""
SLACK = 1e-3
"""Added to every bound: far above float32 rounding of distances near 1 (~1e-6)."""
BLAS_THRESHOLD = 20
"""FAISS computes inner products with BLAS from this many queries on (its own default,
128,000 in faiss-cpu 1.15, keeps batches of fewer queries on a loop 3x slower here)."""


_LOCK = threading.RLock()
"""Held through every search here: two Python threads searching disjoint query groups at once
through FAISS's BLAS (OpenBLAS built for OpenMP) returned answers that differed from a
sequential run's (and took 3-4x longer), and the settings below are process-wide. A
server's concurrent batched searches take turns."""


@contextmanager
def faiss_settings(threads: int = 1, blas_threshold: int | None = BLAS_THRESHOLD) -> Iterator[None]:
    """FAISS on ``threads`` OpenMP threads with BLAS from ``blas_threshold`` queries on,
    restored afterwards (both are process-wide FAISS settings), one thread at a time."""
    with _LOCK, _settings(threads, blas_threshold):
        yield


@contextmanager
def _settings(threads: int, blas_threshold: int | None) -> Iterator[None]:
    before_threads = faiss.omp_get_max_threads()
    before_blas = faiss.cvar.distance_compute_blas_threshold
    faiss.omp_set_num_threads(threads)
    if blas_threshold is not None:
        faiss.cvar.distance_compute_blas_threshold = blas_threshold
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before_threads)
        faiss.cvar.distance_compute_blas_threshold = before_blas


def flat_knn(queries: np.ndarray, stored: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(inner products, row positions) of the ``k`` best rows of ``stored`` per query, exactly;
    -inf and -1 pad when ``stored`` has fewer than ``k`` rows."""
    m = queries.shape[0]
    sims = np.full((m, k), -np.inf, dtype=np.float32)
    rows = np.full((m, k), -1, dtype=np.int64)
    kk = min(k, stored.shape[0])
    if m and kk:
        sims[:, :kk], rows[:, :kk] = faiss.knn(queries, stored, kk, metric=faiss.METRIC_INNER_PRODUCT)
    return sims, rows


class ExactKnn:
    """Exact maximum-inner-product search over ``vectors`` (n, d), pruned (see the module).

    Parameters
    ----------
    vectors : array (n, d)
        The stored vectors (copied as float32).
    n_clusters : int, optional
        Default: :data:`CLUSTERS_PER_SQRT` sqrt(n), at most :data:`MAX_CLUSTERS`. The vectors
        are clustered on the first search of at least :data:`MIN_QUERIES` queries against
        at least :data:`MIN_PRUNED` vectors; smaller searches are flat.
    """

    def __init__(self, vectors: np.ndarray, n_clusters: int | None = None, seed: int = SEED):
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n, self.d = x.shape
        self.x = x
        self.seed = seed
        self.n_clusters = int(n_clusters or max(1, min(MAX_CLUSTERS, round(CLUSTERS_PER_SQRT * math.sqrt(self.n)),
                                                        self.n // KMEANS_MIN_POINTS)))
        self.clustered = False
        """Clustered on the first search that prunes (k-means costs ~1 s at 10^5 vectors)."""

    def _cluster(self) -> None:
        x, c, seed = self.x, self.n_clusters, self.seed
        with faiss_settings():
            kmeans = faiss.Kmeans(self.d, c, niter=KMEANS_ITERATIONS, seed=seed,
                                  max_points_per_centroid=KMEANS_POINTS_PER_CLUSTER, verbose=False)
            kmeans.train(x)
            self.centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
            self.centroid_index = faiss.IndexFlatL2(self.d)
            self.centroid_index.add(self.centroids)
            d2, assign = self.centroid_index.search(x, 1)
            _, near = self.centroid_index.search(self.centroids, min(c, NEAR_CLUSTERS))
        assign = assign.ravel()
        radius = np.sqrt(np.maximum(d2.ravel(), 0.0)).astype(np.float64)
        order = np.lexsort((radius, assign))
        self.order = order                               # sorted position -> original row
        self.sorted_x = np.ascontiguousarray(x[order])
        self.sorted_cluster = assign[order]
        self.stride = float(math.ceil(radius.max() if radius.size else 0.0) + 2.0)
        self.keys = self.sorted_cluster * self.stride + radius[order]  # sorted: cluster, then radius
        self.starts = np.searchsorted(self.sorted_cluster, np.arange(c + 1))
        self.near = near
        self.max_norm2 = float(np.max(np.einsum("ij,ij->i", x, x))) if self.n else 0.0
        self.clustered = True

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(inner products, row positions) of the ``k`` best allowed rows per query, best first.

        ``allowed`` (n,) bool restricts the answers (default: every row); -inf and -1 pad
        rows that have fewer than ``k`` allowed vectors to give.
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        m = q.shape[0]
        allowed_rows = None if allowed is None else np.flatnonzero(allowed)
        with faiss_settings():
            if self.n < MIN_PRUNED or m < MIN_QUERIES:
                return self._flat(q, k, allowed_rows)
            if not self.clustered:
                self._cluster()
            return self._pruned(q, k, allowed)

    def _flat(self, q: np.ndarray, k: int, allowed_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if allowed_rows is None:
            return flat_knn(q, self.x, k)
        sims, pos = flat_knn(q, self.x[allowed_rows], k)
        return sims, np.where(pos >= 0, allowed_rows[np.maximum(pos, 0)], -1)

    def _pruned(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        m = q.shape[0]
        sorted_allowed = None if allowed is None else np.asarray(allowed, dtype=bool)[self.order]
        n_allowed = self.n if sorted_allowed is None else int(sorted_allowed.sum())
        sims = np.full((m, k), -np.inf, dtype=np.float32)
        rows = np.full((m, k), -1, dtype=np.int64)
        if n_allowed == 0:
            return sims, rows
        kk = min(k, n_allowed)
        per_cluster = np.diff(self.starts) if sorted_allowed is None else \
            np.bincount(self.sorted_cluster[sorted_allowed], minlength=self.n_clusters)
        _, nearest = self.centroid_index.search(q, 1)
        nearest = nearest.ravel()
        by_group = np.argsort(nearest, kind="stable")
        bounds = np.searchsorted(nearest[by_group], np.arange(self.n_clusters + 1))
        offsets = np.arange(self.n_clusters) * self.stride
        query_norm2 = np.einsum("ij,ij->i", q, q).astype(np.float64)

        def search_group(group: int) -> None:
            members = by_group[bounds[group]:bounds[group + 1]]
            qg = q[members]
            # first pass: the k-th best among the nearest clusters bounds each query's k-th best
            near = self.near[group]
            enough = np.searchsorted(np.cumsum(per_cluster[near]), min(FIRST_PASS * kk, n_allowed))
            if enough >= near.size:  # the filter leaves too few vectors nearby: search this group flat
                fs, fr = self._flat(qg, k, None if allowed is None else np.flatnonzero(allowed))
                sims[members], rows[members] = fs, fr
                return
            first = self._candidates(near[:enough + 1], sorted_allowed)
            s_first, _ = flat_knn(qg, self.sorted_x[first], kk)
            # |q - x|^2 = |q|^2 + |x|^2 - 2 q.x: any x with q.x >= s_k lies within `reach` of q
            reach = np.sqrt(np.maximum(query_norm2[members] + self.max_norm2 - 2.0 * s_first[:, kk - 1], 0.0)) + SLACK
            to_centroids = np.sqrt(np.maximum(faiss.pairwise_distances(qg, self.centroids), 0.0)).astype(np.float64)
            low = np.maximum((to_centroids - reach[:, None]).min(axis=0), 0.0)
            high = np.minimum((to_centroids + reach[:, None]).max(axis=0), self.stride - 1.0)
            start = np.searchsorted(self.keys, offsets + low, side="left")
            stop = np.searchsorted(self.keys, offsets + high, side="right")
            candidates = _ranges(start, stop)
            if sorted_allowed is not None:
                candidates = candidates[sorted_allowed[candidates]]
            s, pos = flat_knn(qg, self.sorted_x[candidates], k)
            sims[members] = s
            rows[members] = np.where(pos >= 0, self.order[candidates[np.maximum(pos, 0)]], -1)

        # one group after another (see _LOCK)
        for group in np.flatnonzero(np.diff(bounds)):
            search_group(group)
        return sims, rows

    def _candidates(self, clusters: np.ndarray, sorted_allowed: np.ndarray | None) -> np.ndarray:
        """Sorted positions of the (allowed) vectors of ``clusters``."""
        found = _ranges(self.starts[clusters], self.starts[clusters + 1])
        return found if sorted_allowed is None else found[sorted_allowed[found]]


def _ranges(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start[i], stop[i])`` (empty ranges skipped), without a Python loop."""
    length = np.maximum(stop - start, 0)
    keep = length > 0
    start, length = start[keep], length[keep]
    total = int(length.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(start - np.concatenate(([0], np.cumsum(length)[:-1])), length)
    return shift + np.arange(total, dtype=np.int64)
