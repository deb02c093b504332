"""The vector half of an index: FAISS indexes by type, their training, loading and search parameters.

Every type holds unit embeddings under catalog beat ids and answers inner-product
searches; :class:`Vectors` gives them one interface (search with a FAISS id selector,
add, remove, reconstruct by id, every id for the open-time check), so
:class:`~simsearch.store.index.BeatIndex` does not care which one it holds.

=========  =====================================================  ===================================
type       FAISS index                                            when
=========  =====================================================  ===================================
``flat``   ``IndexIDMap2(IndexFlatIP)``: exact                    the default; up to
                                                                  :data:`AUTO_FLAT_MAX` vectors
``ivf``    ``IndexIVFFlat`` (inner product, its own ids), k-means  archives: 10^6 to 10^7 vectors
           on a seeded sample, ``nprobe`` tuned at build for
           recall@10 >= :data:`TARGET_RECALL` and recall@100
           >= :data:`WIDE_RECALL`; memory-mapped on open
           above :data:`MAP_ABOVE` (``faiss.IO_FLAG_MMAP``)
``hnsw``   ``IndexIDMap2(IndexHNSWFlat(M=32))``, ``efSearch``     fastest queries, but slow to build
           tuned the same way                                     (single-threaded graph inserts
                                                                  dominate) and ~400 B per vector
``ivfpq``  ``IndexIVFPQ`` (16 bytes per vector)                   never by ``auto``: at 32
                                                                  dimensions product quantisation
                                                                  loses half the neighbors
=========  =====================================================  ===================================

``auto`` picks ``flat`` up to :data:`AUTO_FLAT_MAX` vectors and ``ivf`` above
(``scripts/benchmark_scale.py`` measures why). The type and its parameters (list
count, probes for 10 and for 100 neighbors, training sample and seed, tuned recalls) are recorded in the manifest
under ``vectors``.

A writer always stages a flat index (vectors arrive record by record, and IVF must be
trained on all of them); :func:`finalize` turns it into the requested type just before
the generation is written. An index opened for writing is read fully into memory; one
opened for reading is memory-mapped where FAISS allows (the inverted lists of IVF
indexes larger than :data:`MAP_ABOVE`), so opening a large archive costs little memory until it is searched.

Filters stay exact: a FAISS id selector (the allowed beats) is applied inside every
type's search, so an excluded beat never answers. An approximate index searched with
a filter looks at more allowed candidates than an unfiltered search would: the share
of beats the selector allows is estimated on :data:`FILTER_SAMPLE` stored ids and the
probes (IVF) or ``efSearch`` (HNSW) are multiplied by :data:`FILTER_BOOST` and divided by it; an HNSW graph whose filter
allows under :data:`HNSW_FILTER_MIN` of the beats is scanned exhaustively instead (a
graph walk through excluded nodes loses the allowed ones), an IVF index whose filter allows
under :data:`EXHAUSTIVE_BELOW` probes every list. A filter removing more than
1 - :data:`STABLE_ABOVE` of the beats is searched again with twice the effort until its
answers stop changing (answers pushed far out, as in a small index without the query's
own patient), and any row short of ``k`` is searched again up to an exhaustive search:
a filter that allows ``k`` beats always gets ``k``.
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexFormatError, ParameterError, reason

TYPES = ("flat", "hnsw", "ivf", "ivfpq")
"""Index types a build can ask for (and ``auto``)."""
CHOICES = TYPES + ("auto",)
DEFAULT_TYPE = "flat"
AUTO_FLAT_MAX = 200_000
"""``auto`` keeps an exact flat index up to this many vectors (single query p50 about
1 ms on 2 cores at 10^5, growing linearly: 11-13 ms at 10^6), and trains an IVF index above."""
TARGET_RECALL = 0.97
"""Recall@10 against exact search that the probes (IVF) or ``efSearch`` (HNSW) are tuned to reach at build."""
TUNED_K = 10
"""Neighbors the effort (``nprobe``, ``efSearch``) is tuned for: a query's top ten."""
WIDE_K = 100
"""The vote's neighbors: a second effort (``nprobe_at_100``, ``efSearch_at_100``) is tuned at build for
recall@100 >= :data:`WIDE_RECALL`. A search for ``k`` between :data:`TUNED_K` and this many interpolates
the two geometrically, one for more grows it by ``sqrt(k / WIDE_K)`` (an index without the second
effort, built before it, grows its first by ``sqrt(k / TUNED_K)``). Before it, the sqrt rule alone gave
each MIT-BIH beat voted on by the other records (IVF, 1024 lists, own record excluded) recall@100 0.989."""
WIDE_RECALL = 0.99
"""Recall@100 the wide effort is tuned for (issue 10 asks it of an approximate vote). On the 48 MIT-BIH
records (IVF, 1024 lists) it takes 16 probes; the vote's own-record exclusion doubles them (33, see
:data:`FILTER_BOOST`): recall@100 0.994 against exact, where 16 probes gave 0.961 and 24 gave 0.987."""
TUNE_QUERIES = 300
"""Indexed vectors, sampled with the build's seed, on which the search parameters are tuned."""
SEED = 1234
"""Seed of the training sample, of k-means and of the tuning queries."""
TRAIN_PER_LIST = 40
"""Training vectors per IVF list (FAISS asks for at least 39)."""
MAX_NLIST = 4096
"""IVF lists at most: 4 sqrt(n) grows past it at 10^6 vectors; more lists make k-means on
2 cores slower than the build's embedding, for little query time (a probe of 4096 lists
at 10^7 scans ~2,500 vectors per list)."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
PQ_M = 16
MIN_TRAIN = {"ivf": 1000, "ivfpq": 10_000}
"""Fewest vectors an IVF index is trained on (IVF-PQ's codebooks need 256 per sub-quantizer
and more); a smaller index of that type is kept flat, and exact, until it grows."""
FILTER_SAMPLE = 512
"""Stored ids on which a selector's allowed share is estimated (about 0.3 ms of Python calls)."""
FILTER_BOOST = {"hnsw": 4, "ivf": 2, "ivfpq": 2}
"""Extra effort of a filtered search: excluding the query's own patient removes its nearest
beats, so the answers lie farther out than the tuned effort reaches (measured at 10^5:
recall@10 with own-patient exclusion 0.87 for HNSW at the tuned efSearch, 0.96 for IVF)."""
HNSW_FILTER_MIN = 0.2
"""Below this allowed share a filtered HNSW search scans its flat storage instead of walking the graph."""
EXHAUSTIVE_BELOW = 0.05
"""Below this allowed share (a rare class, e.g. S or F only) an IVF search probes every
list: exact, at about the cost of a flat scan, where scaled probes lost a tenth of the
answers at 10^7 (class S only: recall@10 0.92)."""
STABLE_ABOVE = 0.9
"""A filter allowing at least this share (own-record exclusion in an archive of many
patients, the query beat itself) is searched once with the boosted effort; one removing
more (own patient in an index of a few) is searched again until its answers hold."""
MAP_ABOVE = 256 * 2**20
"""Bytes of an IVF file above which a reader maps its lists instead of reading them (about 2 million
vectors of 32 floats; read from the page cache in a fraction of a second below it). Mapped lists are
searched through FAISS's on-disk list interface, slower per probe: each MIT-BIH beat voted on by the
other records at 10^5 (nprobe 33, own record excluded) 16,500-18,900 beats/s mapped, 23,000-24,300 read."""
RETRAIN_GROWTH = 4.0
"""An IVF index is trained again at a write once it holds this many times more (or fewer)
vectors than it was trained on; in between, new vectors go into the trained lists."""


def normalized_type(kind: str | None) -> str:
    """``kind`` checked against :data:`CHOICES` (None: the default)."""
    kind = DEFAULT_TYPE if kind is None else str(kind).lower()
    if kind not in CHOICES:
        raise ParameterError(f"index type {kind!r}: choose one of {', '.join(CHOICES)}")
    return kind


def auto_type(n: int) -> str:
    """The type ``auto`` builds for ``n`` vectors."""
    return "flat" if n <= AUTO_FLAT_MAX else "ivf"


def ivf_lists(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4 sqrt(n), a power of two, at most :data:`MAX_NLIST`,
    and few enough that every list has :data:`TRAIN_PER_LIST` training vectors."""
    want = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** max(0, round(math.log2(want)))
    return int(max(1, min(nlist, MAX_NLIST, n // TRAIN_PER_LIST)))


# ---------------------------------------------------------------------------- the wrapper
class Vectors:
    """A FAISS index of unit embeddings whose ids are beat ids, whatever its type.

    Parameters
    ----------
    index : faiss.Index
        ``IndexIDMap2`` over a flat or HNSW index, or an ``IndexIVF`` holding the ids itself.
    params : dict
        The manifest's ``vectors`` entry: ``type`` and its search parameters.

    Attributes of the FAISS index not defined here (``id_map``, ``metric_type``...)
    are the index's own.
    """

    def __init__(self, index, params: dict):
        self.index = index
        self.params = dict(params)
        self.type = self.params["type"]
        self._locations: tuple[np.ndarray, np.ndarray] | None = None
        self._sample: np.ndarray | None = None

    def __getattr__(self, name):
        if name == "index":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.index, name)

    @property
    def d(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def ivf(self):
        """The IVF index itself (None for flat and HNSW)."""
        return self.index if self.type in ("ivf", "ivfpq") else None

    # ------------------------------------------------------------------ ids
    def ids(self) -> np.ndarray:
        """Every beat id held, sorted (what opening an index checks against the catalog)."""
        if self.ivf is None:
            return np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))
        ids, _ = self._ivf_locations()
        return ids

    def _ivf_locations(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted ids, their list number << 32 | offset) of an IVF index, read once from its lists."""
        if self._locations is None:
            invlists = self.index.invlists
            ids, places = [], []
            for list_no in range(self.index.nlist):
                size = invlists.list_size(list_no)
                if size:
                    ids.append(faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy())
                    places.append((np.int64(list_no) << 32) | np.arange(size, dtype=np.int64))
            all_ids = np.concatenate(ids).astype(np.int64) if ids else np.empty(0, np.int64)
            all_places = np.concatenate(places) if places else np.empty(0, np.int64)
            order = np.argsort(all_ids, kind="stable")
            self._locations = (all_ids[order], all_places[order])
        return self._locations

    def reconstruct(self, key: int) -> np.ndarray:
        """The stored vector of beat ``key`` (IVF-PQ: its decoded approximation).

        Raises
        ------
        RuntimeError
            No vector has that id (as FAISS itself says).
        """
        if self.ivf is None:
            return self.index.reconstruct(int(key))
        ids, places = self._ivf_locations()
        pos = int(np.searchsorted(ids, key))
        if pos >= len(ids) or ids[pos] != key:
            raise RuntimeError(f"id {key} not found")
        return self._from_offset(int(places[pos]))

    def _from_offset(self, place: int) -> np.ndarray:
        out = np.empty(self.d, dtype=np.float32)
        self.index.reconstruct_from_offset(place >> 32, place & 0xFFFFFFFF, faiss.swig_ptr(out))
        return out

    # ------------------------------------------------------------------ writing
    def add_with_ids(self, x: np.ndarray, ids: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
        self._locations = self._sample = None

    def add(self, x: np.ndarray, ids: np.ndarray, **metadata) -> None:
        """Add vectors under beat ids; ``metadata`` (record, aami, label_source per beat) is for
        engines that filter inside (Milvus) and not needed here."""
        self.add_with_ids(x, ids)

    def remove_ids(self, ids: np.ndarray) -> int:
        """Remove beats by id; an HNSW graph, which cannot drop nodes, is built again without them."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._locations = self._sample = None
        if self.type != "hnsw":
            return int(self.index.remove_ids(ids))
        held = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        keep = ~np.isin(held, ids)
        x = self.index.index.reconstruct_n(0, self.ntotal)[keep] if self.ntotal else np.empty((0, self.d), np.float32)
        self.index = _hnsw(self.d, x, held[keep], self.params.get("efSearch", 64))
        return int((~keep).sum())

    def serialize(self) -> np.ndarray:
        return faiss.serialize_index(self.index)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, ids) of everything held, in storage order (a flat or HNSW index)."""
        n = self.ntotal
        if self.type == "ivf":  # the lists hold the vectors themselves
            invlists = self.index.invlists
            xs, ids = [], []
            for list_no in range(self.index.nlist):
                size = invlists.list_size(list_no)
                if size:
                    codes = faiss.rev_swig_ptr(invlists.get_codes(list_no), size * invlists.code_size)
                    xs.append(np.frombuffer(codes.tobytes(), dtype=np.float32).reshape(size, self.d))
                    ids.append(faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy())
            if not xs:
                return np.empty((0, self.d), np.float32), np.empty(0, np.int64)
            return np.concatenate(xs), np.concatenate(ids).astype(np.int64)
        if self.ivf is not None:  # IVF-PQ: decoded one by one
            ids, places = self._ivf_locations()
            x = np.stack([self._from_offset(int(p)) for p in places]) if n else np.empty((0, self.d), np.float32)
            return x, ids
        inner = faiss.downcast_index(self.index.index)
        x = inner.reconstruct_n(0, n) if n else np.empty((0, self.d), np.float32)
        return x, faiss.vector_to_array(self.index.id_map).astype(np.int64)

    # ------------------------------------------------------------------ searching
    def search(self, x: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        """Inner products and ids of the ``k`` nearest, FAISS-style (id -1 pads).

        ``params`` may carry an id selector (``params.sel``): only selected ids answer.
        The type's own parameters (``nprobe``, ``efSearch``) are added here; rows that
        found fewer than ``k`` selected beats are searched again with more probes.
        """
        x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
        sel = getattr(params, "sel", None) if params is not None else None
        if self.type == "flat":
            return self.index.search(x, k, params=params)
        level, top = self._effort(k)
        share = 1.0
        if sel is not None:
            share = self.allowed_share(sel)
            if self.type == "hnsw" and share < HNSW_FILTER_MIN:
                return self._scan_storage(x, k, sel)
            if share < EXHAUSTIVE_BELOW:
                level = top
            else:
                level = min(top, math.ceil(FILTER_BOOST[self.type] * level / share))
        distances, labels = self._search_at(x, k, sel, level)
        if sel is None:
            return distances, labels
        # rows short of k allowed beats, and (when the filter removes much) rows whose answers still move: search
        # them again with twice the effort, up to an exhaustive search
        active = np.arange(len(x))
        while level < top and active.size:
            short = (labels[active] < 0).any(axis=1)
            if share >= STABLE_ABOVE:
                active = active[short]
                if not active.size:
                    break
            level = min(top, level * 2)
            d2, l2 = self._search_at(x[active], k, sel, level)
            changed = np.array([set(a.tolist()) != set(b.tolist()) for a, b in zip(labels[active], l2)], dtype=bool)
            distances[active], labels[active] = d2, l2
            active = active[changed | (l2 < 0).any(axis=1)]
        return distances, labels

    def allowed_share(self, sel) -> float:
        """Share of the stored beats that ``sel`` allows, estimated on :data:`FILTER_SAMPLE` stored ids (seeded)."""
        if self._sample is None:
            ids = self.ids()
            self._sample = ids if len(ids) <= FILTER_SAMPLE else \
                np.random.default_rng(SEED).choice(ids, size=FILTER_SAMPLE, replace=False)
        if not len(self._sample):
            return 1.0
        hits = sum(1 for i in self._sample.tolist() if sel.is_member(i))
        return max(hits, 0.5) / len(self._sample)

    def _scan_storage(self, x, k, sel):
        """Exact filtered search of an HNSW index's flat storage (ids translated as IndexIDMap2 does)."""
        translated = faiss.IDSelectorTranslated(self.index.id_map, sel)
        storage = faiss.downcast_index(faiss.downcast_index(self.index.index).storage)
        distances, positions = storage.search(x, k, params=faiss.SearchParameters(sel=translated))
        id_map = faiss.rev_swig_ptr(self.index.id_map.data(), self.ntotal)
        labels = np.where(positions >= 0, id_map[np.maximum(positions, 0)], -1)
        return distances, labels

    def _effort(self, k: int) -> tuple[int, int]:
        """(tuned for ``k`` neighbors, exhaustive) value of the type's search effort: IVF probes or
        HNSW efSearch (see :data:`WIDE_K`)."""
        name = "efSearch" if self.type == "hnsw" else "nprobe"
        top = max(int(self.params.get(name, 64)), self.ntotal) if self.type == "hnsw" else int(self.index.nlist)
        level = float(self.params.get(name, 64 if self.type == "hnsw" else 8))
        wide = self.params.get(f"{name}_at_{WIDE_K}")
        if k > TUNED_K and wide is None:
            level *= math.sqrt(k / TUNED_K)
        elif k > TUNED_K:
            wide = max(float(wide), level)
            level = level * (wide / level) ** (math.log(min(k, WIDE_K) / TUNED_K) / math.log(WIDE_K / TUNED_K))
            level *= math.sqrt(max(k, WIDE_K) / WIDE_K)
        return min(math.ceil(level - 1e-9), top), top

    def _search_at(self, x, k, sel, level):
        if self.type == "hnsw":
            search_params = faiss.SearchParametersHNSW(efSearch=max(int(level), k))
        else:
            search_params = faiss.SearchParametersIVF(nprobe=int(level))
        if sel is not None:
            search_params.sel = sel
        return self.index.search(x, k, params=search_params)


# ---------------------------------------------------------------------------- making them
def empty(d: int) -> Vectors:
    """The staging index of a writer: exact, flat, filled record by record."""
    return Vectors(faiss.IndexIDMap2(faiss.IndexFlatIP(d)), {"type": "flat"})


def finalize(vectors: Vectors, requested: str, seed: int = SEED) -> Vectors:
    """The index a generation is written with: ``vectors`` turned into the ``requested`` type.

    ``auto`` resolves by size (:func:`auto_type`). An index already of the type is kept
    as it is, except an IVF index grown or shrunk :data:`RETRAIN_GROWTH`-fold since it
    was trained, which is trained again. Training and tuning are seeded: the same
    vectors give the same index. The returned object's ``params`` (type, requested
    type, parameters, training sample, tuned recall) go into the manifest.
    """
    requested = normalized_type(requested)
    kind = auto_type(vectors.ntotal) if requested == "auto" else requested
    if kind in ("ivf", "ivfpq") and vectors.ntotal < MIN_TRAIN[kind]:
        kind = "flat"  # too few vectors to train on: exact until a later write brings enough
    if kind == vectors.type:
        trained = int(vectors.params.get("trained_on", 0))
        growth = (vectors.ntotal + 1) / (trained + 1)
        if kind not in ("ivf", "ivfpq") or 1 / RETRAIN_GROWTH <= growth <= RETRAIN_GROWTH:
            vectors.params["requested"] = requested
            return vectors
    x, ids = vectors.arrays()
    made = build(kind, x, ids, seed=seed)
    made.params["requested"] = requested
    return made


def build(kind: str, x: np.ndarray, ids: np.ndarray, *, seed: int = SEED, nlist: int | None = None,
          tune: bool = True) -> Vectors:
    """An index of ``kind`` holding ``x`` under ``ids``, trained and tuned (seeded).

    Parameters
    ----------
    kind : str
        One of :data:`TYPES`.
    nlist : int, optional
        IVF lists (default :func:`ivf_lists`).
    tune : bool
        Tune ``nprobe``/``efSearch`` for :data:`TARGET_RECALL` on :data:`TUNE_QUERIES`
        indexed vectors (exact answers from a flat search of ``x``).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n, d = x.shape
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        if n:
            index.add_with_ids(x, ids)
        return Vectors(index, {"type": "flat"})
    if kind == "hnsw":
        vectors = Vectors(_hnsw(d, x, ids, 64), {"type": "hnsw", "M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION,
                                                   "efSearch": 64})
        if tune:
            _tune(vectors, x, ids, "efSearch", (16, 32, 64, 128, 256, 512), seed)
        return vectors
    if kind not in ("ivf", "ivfpq"):
        raise ParameterError(f"index type {kind!r}: choose one of {', '.join(TYPES)}")
    nlist = int(nlist or ivf_lists(n))
    spec = f"IVF{nlist},Flat" if kind == "ivf" else f"IVF{nlist},PQ{PQ_M}"
    index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    ivf.cp.spherical = True  # unit vectors: centroids on the sphere
    if kind == "ivfpq":
        # the factory turns on polysemous training (code order for Hamming filtering), which searches never use
        # here and which took 14 of the 16 s of training on 9,000 vectors
        faiss.downcast_index(ivf).do_polysemous_training = False
    rng = np.random.default_rng(seed)
    train_n = min(n, TRAIN_PER_LIST * nlist * (4 if kind == "ivfpq" else 1))
    sample = x[np.sort(rng.choice(n, size=train_n, replace=False))] if train_n < n else x
    if n:
        index.train(sample)
        index.add_with_ids(x, ids)
    params = {"type": kind, "nlist": nlist, "nprobe": min(8, nlist), "trained_on": n, "train_sample": int(train_n),
              "seed": seed}
    if kind == "ivfpq":
        params["pq_m"] = PQ_M
    vectors = Vectors(index, params)
    if tune:
        _tune(vectors, x, ids, "nprobe", tuple(p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256) if p <= nlist) or (1,),
              seed)
    return vectors


def _hnsw(d: int, x: np.ndarray, ids: np.ndarray, ef_search: int):
    inner = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    inner.hnsw.efSearch = ef_search
    index = faiss.IndexIDMap2(inner)
    if len(x):
        index.add_with_ids(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return index


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (ids, -1 ignored) that ``found`` holds."""
    hits = total = 0
    for f, t in zip(found, truth):
        t = t[t >= 0]
        hits += len(np.intersect1d(f[f >= 0], t))
        total += len(t)
    return hits / total if total else 1.0


def _tune(vectors: Vectors, x: np.ndarray, ids: np.ndarray, name: str, levels: tuple[int, ...], seed: int) -> None:
    """Set ``vectors.params[name]`` to the smallest level whose recall@10 reaches :data:`TARGET_RECALL`,
    and ``name + "_at_100"`` to the smallest whose recall@100 reaches :data:`WIDE_RECALL`.

    Queries are indexed vectors (seeded sample); each one's own id is left out of both
    answers, as a query of a stored beat leaves it out.
    """
    n = len(x)
    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(n, size=min(TUNE_QUERIES, n), replace=False))
    queries = x[rows]
    nearest = None
    if n > TUNED_K + 1:  # exact answers, once for both (the nearest 11 are the first 11 of the nearest 101)
        _, nearest = faiss.knn(queries, x, min(WIDE_K + 1, n), metric=faiss.METRIC_INNER_PRODUCT)  # no copy of x
    for k, target, key in ((TUNED_K, TARGET_RECALL, name), (WIDE_K, WIDE_RECALL, f"{name}_at_{WIDE_K}")):
        if n <= k + 1:
            vectors.params[key] = levels[-1]
            continue
        positions = nearest[:, :k + 1]
        truth = _drop_self(np.where(positions >= 0, ids[np.maximum(positions, 0)], -1), ids[rows], k)
        chosen, recall = levels[-1], 0.0
        for level in levels:
            if name == "efSearch" and level < k < levels[-1]:  # an HNSW search looks at k candidates at least
                continue
            _, found = vectors._search_at(queries, k + 1, None, level)
            recall = recall_at(_drop_self(found, ids[rows], k), truth)
            if recall >= target:
                chosen = level
                break
        vectors.params[key] = chosen
        vectors.params[f"tuned_recall_at_{k}"] = round(float(recall), 4)
    vectors.params["tuned_on_queries"] = len(rows)


def _drop_self(found: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    out = np.full((len(found), k), -1, dtype=np.int64)
    for i, (row, me) in enumerate(zip(found, own)):
        row = row[row != me][:k]
        out[i, :len(row)] = row
    return out


# ---------------------------------------------------------------------------- files
def read(path: Path, params: dict, *, mmap: bool) -> Vectors:
    """The vectors of a generation file, of the type its manifest names.

    ``mmap``: map an IVF index's lists from the file instead of reading them, if it is
    larger than :data:`MAP_ABOVE` (readers only: a mapped index cannot be changed).

    Raises
    ------
    IndexFormatError
        Not a FAISS index, truncated, or not the type the manifest says.
    """
    kind = params.get("type")
    if kind not in TYPES:
        raise IndexFormatError(f"{path}: the manifest names vectors of type {kind!r}, this simsearch reads "
                               f"{', '.join(TYPES)}: rebuild the index")
    mapped = mmap and kind == "ivf" and path.is_file() and path.stat().st_size > MAP_ABOVE  # (IVF-PQ crashes mapped)
    flags = faiss.IO_FLAG_MMAP if mapped else 0
    try:
        index = faiss.read_index(str(path), flags)
    except (RuntimeError, MemoryError) as exc:  # FAISS reports a foreign or truncated file as RuntimeError
        raise IndexFormatError(f"{path} is not a FAISS index or is truncated ({reason(exc)[:120]})") from None
    if kind in ("ivf", "ivfpq"):  # read_index gives the most derived type (downcasting again would free it)
        want = faiss.IndexIVFFlat if kind == "ivf" else faiss.IndexIVFPQ
        ok = isinstance(index, want)
    else:
        ok = isinstance(index, faiss.IndexIDMap2)
        if ok:
            inner = faiss.downcast_index(index.index)
            ok = isinstance(inner, faiss.IndexHNSWFlat if kind == "hnsw" else faiss.IndexFlatIP)
    if not ok or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        what = {"flat": "inner-product IndexIDMap2", "hnsw": "inner-product IndexIDMap2(IndexHNSWFlat)",
                "ivf": "inner-product IndexIVFFlat", "ivfpq": "inner-product IndexIVFPQ"}[kind]
        raise IndexFormatError(f"{path} holds a {type(index).__name__}, not the {what} simsearch writes: rebuild the "
                               "index")
    return Vectors(index, params)
