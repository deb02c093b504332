"""Vectors in Milvus: an archive's embeddings in a vector database, filters evaluated inside it.

An index built with ``--milvus-uri`` keeps its vectors in a Milvus collection instead of
``vectors.faiss``; everything else (manifest, generations, catalog, encoder) is as for
FAISS. One code path serves both engines, switched by the URI as :class:`pymilvus.MilvusClient`
reads it: a local file path ending in ``.db`` is Milvus Lite (embedded, one process at a
time), ``http://host:19530`` a Milvus server.

Each beat is one entity: ``id`` (the catalog's beat id, primary key), ``vector``,
``record``, ``aami`` (``""`` unlabeled), ``label_source`` and ``gen``, the generation
that added it. A search sends the filters as one boolean expression, so own-record
exclusion, class filters and "labeled only" run inside the engine::

    gen <= 7 and aami != "" and record not in ["208"] and aami in ["S", "V"]

Generations work as in the catalog (:mod:`simsearch.store.catalog`): a writer's entities
carry its generation, which no reader of the published one sees; a replaced record's
entities stay (readers of the previous generation still use them) and are hidden by
name and generation from later ones (``not (record == "100" and gen == 3)``), until the
write after next collects them; entities a writer that died left behind (``gen`` above
the published generation) are deleted by the next writer before it writes. So a kill
at any moment leaves the old pair of vectors and catalog or the new one.

The generation file ``vectors.milvus.json`` names the URI and collection. A build gets
a new collection (``simsearch_<index uid>_<generation>``); collections no kept
generation names are dropped after the next publication.

pymilvus (and milvus-lite) are imported here only: ``pip install simsearch[scale]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import IndexFormatError, ParameterError, reason

FILE = "vectors.milvus.json"
"""The generation's pointer to its collection (in place of ``vectors.faiss``)."""
BATCH = 5000
"""Entities per insert call (under Milvus's message size limit at 32 dimensions)."""
ID_CHECK_MAX = 2_000_000
"""Opening compares every id with the catalog up to this many entities; above, the counts."""
INDEX_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW", "auto": "AUTOINDEX"}
"""Milvus index of the vectors for each ``--index`` (Milvus Lite: FLAT for any)."""


def is_lite(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def normalized_uri(uri: str) -> str:
    """``uri`` with a Milvus Lite file made absolute (it must mean the same from any directory).

    Raises
    ------
    ParameterError
        A Milvus Lite path that does not end in ``.db``.
    """
    if not is_lite(uri):
        return uri
    if not uri.endswith(".db"):
        raise ParameterError(f"Milvus URI {uri!r}: a local Milvus Lite file ends in .db; a server is http://host:19530")
    return os.path.abspath(uri)


def client(uri: str):
    """A MilvusClient for ``uri`` (one per URI and process: Milvus Lite serves one client per file)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ParameterError("Milvus needs pymilvus (and milvus-lite for a local .db): "
                             "pip install 'simsearch[scale]'") from None
    cached = _CLIENTS.get(uri)
    if cached is None:
        try:
            cached = _CLIENTS[uri] = MilvusClient(uri)
        except Exception as exc:  # pymilvus raises its own MilvusException, or OSError for a Lite file
            raise IndexFormatError(f"cannot open Milvus at {uri}: {reason(exc)[:200]}") from None
    return cached


_CLIENTS: dict = {}


def release(uri: str | None = None) -> None:
    """Close the clients of ``uri`` (default: all) and stop their Milvus Lite servers in this process."""
    for key in [uri] if uri is not None else list(_CLIENTS):
        milvus = _CLIENTS.pop(key, None)
        if milvus is not None:
            try:
                milvus.close()
            except Exception:  # closing is best effort: the process may be exiting
                pass
        if key is not None and is_lite(key):
            try:
                from milvus_lite.server_manager import server_manager_instance
            except ImportError:
                continue
            server_manager_instance.release_server(key)


def _quoted(text: str) -> str:
    return json.dumps(str(text))


class MilvusVectors:
    """The :class:`~simsearch.store.vectors.Vectors` interface over a Milvus collection, at one generation.

    Parameters
    ----------
    params : dict
        ``type`` ("milvus"), ``uri``, ``collection``, ``dim``, ``index``, ``since``
        (the generation that created the collection).
    generation : int
        Entities of later generations are not seen; new ones get this generation.
    hidden : callable
        () -> [(record name, generation)] of the record versions replaced at or before
        ``generation`` (the catalog's :meth:`~simsearch.store.catalog.Catalog.removed_versions`).
    writable : bool
        A writer's view: the hidden versions are read again at each search.
    """

    filters_inside = True
    """BeatIndex.search hands the filters over as they are (record names, classes, ids)."""

    def __init__(self, params: dict, generation: int, hidden: Callable[[], list[tuple[str, int]]],
                 writable: bool = False):
        self.params = dict(params)
        self.type = "milvus"
        self.generation = int(generation)
        self._hidden_source = hidden
        self._hidden: list[tuple[str, int]] | None = None
        self.writable = writable
        self.uri = self.params["uri"]
        self.collection = self.params["collection"]
        self.client = client(self.uri)
        self._count: int | None = None

    # ------------------------------------------------------------------ creating
    @classmethod
    def create(cls, uri: str, collection: str, dim: int, generation: int, index: str = "flat",
               hidden: Callable[[], list[tuple[str, int]]] = list) -> MilvusVectors:
        """A new, empty collection (an old one of that name is dropped: it was a crashed build's)."""
        from pymilvus import DataType

        uri = normalized_uri(uri)
        milvus = client(uri)
        kind = "FLAT" if is_lite(uri) else INDEX_TYPES.get(index, "AUTOINDEX")
        try:
            if milvus.has_collection(collection):
                milvus.drop_collection(collection)
            schema = milvus.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("record", DataType.VARCHAR, max_length=255)
            schema.add_field("aami", DataType.VARCHAR, max_length=1)
            schema.add_field("label_source", DataType.VARCHAR, max_length=16)
            schema.add_field("gen", DataType.INT64)
            index_params = milvus.prepare_index_params()
            extra = {"nlist": 1024} if kind == "IVF_FLAT" else {"M": 32, "efConstruction": 64} if kind == "HNSW" else {}
            index_params.add_index(field_name="vector", index_type=kind, metric_type="IP", params=extra)
            milvus.create_collection(collection, schema=schema, index_params=index_params,
                                     consistency_level="Strong")
        except Exception as exc:
            raise IndexFormatError(f"cannot create Milvus collection {collection} at {uri}: {reason(exc)[:200]}") \
                from None
        params = {"type": "milvus", "uri": uri, "collection": collection, "dim": int(dim), "index": kind,
                  "since": int(generation)}
        return cls(params, generation, hidden, writable=True)

    @classmethod
    def read(cls, path, generation: int, hidden: Callable[[], list[tuple[str, int]]], *,
             writable: bool = False) -> MilvusVectors:
        """The collection a generation's ``vectors.milvus.json`` names."""
        try:
            params = json.loads(path.read_text())
            params["uri"], params["collection"], params["dim"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{path} is not a Milvus pointer ({reason(exc)[:80]})") from None
        vectors = cls(params, generation, hidden, writable=writable)
        if not vectors.client.has_collection(vectors.collection):
            raise IndexFormatError(f"Milvus collection {vectors.collection} at {vectors.uri} is missing: rebuild the "
                                   "index")
        vectors.client.load_collection(vectors.collection)
        return vectors

    def serialize(self) -> bytes:
        """The generation file: where the vectors are."""
        self.client.flush(self.collection)
        return json.dumps(self.params, indent=2).encode()

    # ------------------------------------------------------------------ the view of a generation
    @property
    def d(self) -> int:
        return int(self.params["dim"])

    @property
    def ntotal(self) -> int:
        if self._count is None or self.writable:
            rows = self.client.query(self.collection, filter=self._visible(labeled=False), output_fields=["count(*)"],
                                     consistency_level="Strong")
            self._count = int(rows[0]["count(*)"])
        return self._count

    def _hidden_versions(self) -> list[tuple[str, int]]:
        if self._hidden is None or self.writable:
            since = int(self.params.get("since", 0))
            self._hidden = [(name, gen) for name, gen in self._hidden_source() if gen >= since]
        return self._hidden

    def _visible(self, labeled: bool = True) -> str:
        parts = [f"gen <= {self.generation}"]
        if labeled:
            parts.append('aami != ""')
        hidden = self._hidden_versions()
        if hidden:
            parts.append("not (" + " or ".join(f"(record == {_quoted(n)} and gen == {int(g)})" for n, g in hidden)
                         + ")")
        return " and ".join(parts)

    def ids(self) -> np.ndarray:
        """Every visible id, sorted; above :data:`ID_CHECK_MAX` entities, None (the caller compares counts)."""
        if self.ntotal > ID_CHECK_MAX:
            return None
        found = []
        iterator = self.client.query_iterator(self.collection, batch_size=16384, filter=self._visible(labeled=False),
                                              output_fields=["id"])
        try:
            while True:
                batch = iterator.next()
                if not batch:
                    break
                found.extend(row["id"] for row in batch)
        finally:
            iterator.close()
        return np.sort(np.array(found, dtype=np.int64))

    # ------------------------------------------------------------------ writing
    def add(self, x: np.ndarray, ids: np.ndarray, *, record: str, aami: np.ndarray, label_source) -> None:
        x = np.asarray(x, dtype=np.float32)
        sources = np.broadcast_to(np.asarray(label_source, dtype=object), (len(ids),))
        rows = [{"id": int(i), "vector": v, "record": record, "aami": str(a), "label_source": str(s),
                 "gen": self.generation} for i, v, a, s in zip(ids.tolist(), x.tolist(), np.asarray(aami).tolist(),
                                                               sources.tolist())]
        for start in range(0, len(rows), BATCH):
            self.client.insert(self.collection, rows[start:start + BATCH])
        self._count = None

    def add_with_ids(self, x, ids) -> None:
        raise ParameterError("Milvus vectors are added with their record and labels (BeatIndex.add_beats)")

    def remove_ids(self, ids: np.ndarray) -> int:
        """Delete this writer's own entities among ``ids``; older ones stay for older readers (hidden by the
        catalog)."""
        ids = [int(i) for i in np.asarray(ids).tolist()]
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            self.client.delete(self.collection, filter=f"gen == {self.generation} and id in {chunk}")
        self._count = None
        return len(ids)

    def recover(self, published: int | None) -> None:
        """Delete what a writer that died before publishing left: entities newer than ``published``."""
        self.client.delete(self.collection, filter=f"gen > {int(published or 0)}")

    def collect(self, versions: Sequence[tuple[str, int]]) -> None:
        """Delete the entities of record versions no kept generation sees any more."""
        for name, gen in versions:
            self.client.delete(self.collection, filter=f"record == {_quoted(name)} and gen == {int(gen)}")

    def drop_others(self, keep: set[str]) -> None:
        """Drop this index's collections (same name prefix) that no kept generation names."""
        prefix = self.collection.rsplit("_", 1)[0] + "_"
        for name in self.client.list_collections():
            if name.startswith(prefix) and name not in keep:
                self.client.drop_collection(name)

    # ------------------------------------------------------------------ reading
    def reconstruct(self, key: int) -> np.ndarray:
        rows = self.client.query(self.collection, filter=f"id == {int(key)}", output_fields=["vector"])
        if not rows:
            raise RuntimeError(f"id {key} not found")
        return np.asarray(rows[0]["vector"], dtype=np.float32)

    def search(self, x: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        """Unfiltered search of the visible beats (labeled or not), FAISS-style results."""
        return self._search(x, k, self._visible(labeled=False))

    def search_filtered(self, x: np.ndarray, k: int, *, exclude_records: Sequence[str] = (),
                        exclude_ids: Sequence[int] = (), classes: Sequence[str] | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Inner products and ids of the ``k`` nearest labeled beats that pass the filters (id -1 pads)."""
        parts = [self._visible(labeled=True)]
        if len(exclude_records):
            parts.append(f"record not in {json.dumps([str(r) for r in exclude_records])}")
        if len(exclude_ids):
            parts.append(f"id not in {[int(i) for i in exclude_ids]}")
        if classes is not None:
            parts.append(f"aami in {json.dumps([str(c) for c in classes])}")
        return self._search(x, k, " and ".join(parts))

    def _search(self, x: np.ndarray, k: int, expression: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        if x.shape[1] != self.d:
            raise ParameterError(f"search: vectors of {x.shape[1]} dimensions, the index holds {self.d}")
        similarity = np.full((len(x), k), -np.inf, dtype=np.float32)
        ids = np.full((len(x), k), -1, dtype=np.int64)
        if not len(x):
            return similarity, ids
        hits = self.client.search(self.collection, data=x.tolist(), limit=k, filter=expression, output_fields=[],
                                  search_params={"metric_type": "IP"}, consistency_level="Strong")
        for row, found in enumerate(hits):
            for col, hit in enumerate(list(found)[:k]):
                ids[row, col] = int(hit["id"])
                similarity[row, col] = float(hit["distance"])
        return similarity, ids
