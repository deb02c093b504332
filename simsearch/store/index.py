"""BeatIndex: embeddings in FAISS, metadata in the catalog, one directory on disk.

An index directory holds generations (:mod:`simsearch.store.layout`); ``CURRENT``
names the published one, whose directory holds ``manifest.json`` (format,
generation, encoder fingerprint, build figures), ``vectors.faiss`` (inner-product
index whose ids are catalog beat ids, of the type in :mod:`simsearch.store.vectors`), ``catalog.sqlite``
(unless another SQLAlchemy URL was given) and ``encoder.keras``, a copy of the encoder, so the index answers
queries on its own.

Every change (:meth:`BeatIndex.build`, :meth:`BeatIndex.updating`) writes a new
generation under the writer lock and publishes it in one atomic step, so readers never
lock and never see half an index, a crash leaves the old index or the new one, and two
writers run one after the other instead of losing each other's records.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..aami import AAMI_CLASSES, class_index
from ..errors import (
    EncoderMismatchError,
    IndexFormatError,
    IndexWriteError,
    LeadNotFoundError,
    ParameterError,
    SimsearchError,
    reason,
)
from ..model.encoder import Encoder, unit_distance
from ..model.leads import DEFAULT_LEADS, LEADS, beat_vectors, choose_leads, lead_weight, one_lead_query
from ..model.parallel import EmbeddedRecord, embed_one
from ..progress import progress_bar
from ..signal.beats import BEAT_FORMAT, MODEL_FS, Beats
from ..signal.records import Record
from . import layout, milvus
from .catalog import Catalog
from .exact import ExactKnn
from .vectors import empty as empty_vectors, finalize as finalize_vectors, normalized_type, read as read_vectors

FORMAT_VERSION = 2
"""Version of the on-disk layout. 2: generations behind a ``CURRENT`` pointer, versioned
catalog rows and a beat-id counter; an index of format 1 (flat) is refused: rebuild it."""
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
CATALOG = "catalog.sqlite"
ENCODER_FILE = "encoder.keras"
DEFAULT_K = 10
BATCH_SEARCH_MIN = 64
"""From this many queries on, a search of a flat or HNSW index filters without a FAISS id
selector (whose per-vector test keeps a flat search off BLAS: a record's 2,000 beats with
their own record excluded were searched at ~530 beats/s against 1,400 unfiltered; an IVF
batch keeps the selector, see :meth:`BeatIndex._search_overfetch`)."""
OVERFETCH = 64
"""Extra neighbors a filtered batch asks an approximate index for, to drop the excluded ones."""
DENSE_IDS = 16
"""Beat ids are looked up in a table over their range while it is at most this many times the
beats held (ids only grow: replaced records leave gaps)."""
OPEN_ATTEMPTS = 3
"""Times :meth:`BeatIndex.open` reads ``CURRENT`` again when the generation it named was
removed under it (writers keep one previous generation, so this takes two writes
landing between reading the pointer and opening the files)."""


@dataclass
class BuildStats:
    """Where a build's time went, in seconds, and how many beats it embedded."""

    records: int = 0
    beats: int = 0
    read_s: float = 0.0
    filter_s: float = 0.0
    embed_s: float = 0.0
    index_s: float = 0.0

    @property
    def embed_beats_per_s(self) -> float:
        return self.beats / self.embed_s if self.embed_s else 0.0


class BeatIndex:
    """Search labeled beats by similarity; vote on a query's class.

    Use :meth:`build` to create one from records, :meth:`open` to load one,
    :meth:`updating` to change one, :meth:`search` for the nearest labeled beats of
    embeddings; queries by record or signal, with their vote, are
    :func:`simsearch.label.query.query_beat` and :func:`~simsearch.label.query.query_signal`.

    ``path`` is the index directory a user names; ``directory`` the generation inside
    it that this object reads. The encoder is loaded on first use (it costs
    TensorFlow's start-up), so opening an index and searching stored beats stays fast.
    """

    def __init__(self, path: Path, directory: Path, vectors, catalog: Catalog, manifest: dict,
                 encoder: Encoder | None = None):
        self.path = path
        self.directory = directory
        self.vectors = vectors
        self.catalog = catalog
        self.manifest = manifest
        self._encoder = encoder
        self.writable = False
        """True inside :meth:`build` and :meth:`updating`, the only places beats are added."""
        self._labels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._record_codes: np.ndarray | None = None
        """Per row of :meth:`label_table`, its record as an integer code; made with the table."""
        self._exact: tuple[ExactKnn, np.ndarray] | None = None
        """Pruned exact search over a flat index's vectors and their table rows, built on first batched search."""

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the encoder that made the vectors."""
        return self.manifest["encoder"]["fingerprint"]

    @property
    def leads(self) -> str:
        """``"one"`` (each beat in its first lead) or ``"both"`` (:mod:`simsearch.model.leads`)."""
        return self.manifest.get("leads", "one")

    @property
    def second_lead_weight(self) -> float:
        """The second lead's weight in the vectors (0 in an index of one lead)."""
        return float(self.manifest.get("second_lead_weight", 0.0))

    def embed(self, record: Record, beats: Beats, rows: np.ndarray | None = None) -> np.ndarray:
        """Query vectors of ``beats`` (cut from ``record``, read in the index's first lead), or
        of their ``rows``, as this index holds them: see
        :func:`~simsearch.model.leads.beat_vectors` (a record with one lead gets its one-lead
        vectors, which :meth:`search` takes)."""
        return beat_vectors(self.encoder, record, beats, self.second_lead_weight, rows=rows)

    def _one_lead(self, vectors: np.ndarray) -> bool:
        """One-lead vectors (n, encoder dim) given to an index of both leads."""
        return (bool(self.second_lead_weight) and vectors.ndim == 2
                and vectors.shape[1] == self.manifest["encoder"]["dim"])

    @property
    def generation(self) -> int:
        """The generation this object reads (or, inside :meth:`updating`, writes)."""
        return self.manifest["generation"]

    @property
    def encoder(self) -> Encoder:
        """The index's own encoder (``encoder.keras``), loaded and checked on first use."""
        if self._encoder is None:
            if not (self.directory / ENCODER_FILE).is_file():
                raise IndexFormatError(f"{self.path}: generation {self.generation} was removed by later writes since "
                                       "it was opened: open the index again")
            self._encoder = _checked(Encoder.load(self.directory / ENCODER_FILE), self.path, self.fingerprint)
        return self._encoder

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    def build(cls, path: str | os.PathLike, records: Sequence[str], data_dir: str | os.PathLike | None = None, *,
              encoder: Encoder | str | os.PathLike | None = None, catalog_url: str | None = None,
              lead: str | None = None, progress: bool = False, lock_timeout: float | None = None,
              index_type: str | None = None, milvus_uri: str | None = None, engine=None,
              leads: str = DEFAULT_LEADS) -> BeatIndex:
        """Build an index of ``records`` at ``path``, replacing any index already there.

        The index is written as a new generation and published in one step (see
        :mod:`simsearch.store.layout`), so a failure or a crash leaves ``path`` as it
        was. Beat ids continue from the replaced index's: an id never names two beats.

        Parameters
        ----------
        path : path
            The index directory: missing, empty, or an index to replace.
        records : sequence of str
            Record names (in ``data_dir``) or paths.
        encoder : Encoder or path, optional
            Default: the packaged model.
        catalog_url : str, optional
            SQLAlchemy URL of a catalog outside the index directory (a relative SQLite
            path is made absolute here, once). Default: SQLite inside each generation.
        lock_timeout : float, optional
            Seconds to wait for another writer (default
            :data:`~simsearch.store.layout.WRITE_LOCK_TIMEOUT_S`).
        index_type : str, optional
            ``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or ``auto`` (the default: exact flat up
            to :data:`~simsearch.store.vectors.AUTO_FLAT_MAX` beats, IVF above); see
            :mod:`simsearch.store.vectors`. Later writes keep the choice.
        milvus_uri : str, optional
            Keep the vectors in Milvus instead (:mod:`simsearch.store.milvus`): a local
            ``.db`` file (Milvus Lite) or ``http://host:19530``; needs ``catalog_url``.
        engine : optional
            Where records are embedded: default here, one after the other;
            :class:`simsearch.model.parallel.RayEngine` on Ray.
        leads : {"auto", "one", "both"}
            Each beat in its first lead (``lead``), or in both: the first and the record's
            other lead side by side (:mod:`simsearch.model.leads`; every record then needs
            two leads). ``auto`` (the default): both when every record has two leads, else
            one (:data:`~simsearch.model.leads.DEFAULT_LEADS`). Later writes keep the choice.

        Raises
        ------
        IndexFormatError
            ``path`` holds something other than an index, or ``catalog_url`` holds another index's catalog.
        LeadNotFoundError
            ``leads="both"`` and a record has one lead.
        IndexBusyError
            Another writer held the index for longer than ``lock_timeout``.
        IndexWriteError
            The directory or the catalog cannot be written (read-only, full disk).
        """
        root = Path(os.path.abspath(path))
        layout.refuse_foreign(root)
        url = absolute_catalog_url(catalog_url)
        index_type = normalized_type(index_type or "auto")
        weight = lead_weight(choose_leads(leads, records, data_dir, lead))
        if milvus_uri is not None:
            milvus_uri = milvus.normalized_uri(milvus_uri)
            if url is None:
                raise ParameterError("vectors in Milvus need a catalog outside the index directory: give --catalog-url "
                                     "(PostgreSQL, or an SQLite file)")
        # the lock before the encoder (an unwritable path fails at once), the engine before any Milvus client
        with layout.Writer(root, lock_timeout) as writer, _running(engine):
            old = _old_manifest(root, writer.previous)
            encoder = encoder if isinstance(encoder, Encoder) else Encoder.load(encoder)
            index = cls._create(writer, encoder, url, old, index_type, milvus_uri, weight)
            try:
                stats = index.add_records(records, data_dir, lead=lead, progress=progress, engine=engine)
                index.manifest["build"] = {**asdict(stats), "embed_beats_per_s": round(stats.embed_beats_per_s, 1)}
                index._publish(writer)
            finally:
                index.close()
        return cls.open(root)

    @classmethod
    def open(cls, path: str | os.PathLike, encoder: Encoder | str | os.PathLike | None = None) -> BeatIndex:
        """Open the published generation of an index; never locks, never waits for a writer.

        Opening checks the whole pairing: manifest, vectors of the encoder's dimension,
        a catalog of the same generation, and the same beat ids in FAISS and in the
        catalog. It does not load TensorFlow (the encoder loads on first use). When no
        writer is at work it also removes what crashed writers left in the directory.

        Parameters
        ----------
        encoder : Encoder or path, optional
            Refuse the index unless it was built with this encoder.

        Raises
        ------
        IndexFormatError
            No index at ``path``, an older format, or files that are missing, corrupt
            or do not belong together (one line saying which).
        EncoderMismatchError
            ``encoder`` is not the index's.
        """
        root = Path(os.path.abspath(path))
        number = layout.current_generation(root)
        layout.tidy(root)
        if encoder is not None and not isinstance(encoder, Encoder):
            encoder = Encoder.load(encoder)
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            try:
                return cls._open_generation(root, number, encoder)
            except IndexFormatError:
                # two writes may have landed since CURRENT was read, removing that generation: read it again
                latest = layout.read_pointer(root)
                if attempt == OPEN_ATTEMPTS or latest in (None, number):
                    raise
                number = latest
        raise AssertionError("unreachable")

    @classmethod
    @contextmanager
    def updating(cls, path: str | os.PathLike, encoder: Encoder | str | os.PathLike | None = None, *,
                 lock_timeout: float | None = None) -> Iterator[BeatIndex]:
        """Change an index as one step: work on a new generation, publish it only on success.

        Holds the writer lock for the whole block, so a second writer waits (up to
        ``lock_timeout`` seconds, default
        :data:`~simsearch.store.layout.WRITE_LOCK_TIMEOUT_S`) and then works on this
        one's result: no record is lost. Readers keep reading the published generation
        until the block ends; an exception in the block, or a crash, leaves it current.

        Raises
        ------
        IndexFormatError, EncoderMismatchError
            As :meth:`open`.
        IndexBusyError, IndexWriteError
            As :meth:`build`.
        """
        root = Path(os.path.abspath(path))
        layout.current_generation(root)  # no index here: say why before creating anything
        with layout.Writer(root, lock_timeout) as writer:
            if writer.previous is None:
                layout.current_generation(root)  # removed or corrupted meanwhile: say why
            if encoder is not None and not isinstance(encoder, Encoder):
                encoder = Encoder.load(encoder)
            base = cls._open_generation(root, writer.previous, encoder, writing=True)
            base.catalog.close()
            staging = writer.staging
            with layout.storage_errors(root, "write"):
                layout.link_or_copy(base.directory / ENCODER_FILE, staging / ENCODER_FILE)
                if base.manifest["catalog_url"] is None:
                    shutil.copyfile(base.directory / CATALOG, staging / CATALOG)
            manifest = {**base.manifest, "generation": writer.number}
            catalog = Catalog(_catalog_url(staging, manifest), writer.number)
            vectors = base.vectors
            if vectors.type == "milvus":  # the shared collection, seen at the new generation
                vectors = milvus.MilvusVectors(vectors.params, writer.number, catalog.removed_versions, writable=True)
            index = cls(root, staging, vectors, catalog, manifest, base._encoder)
            index.writable = True
            try:
                if manifest["catalog_url"] is not None:
                    catalog.recover(writer.previous)
                    if vectors.type == "milvus":
                        vectors.recover(writer.previous)
                yield index
                index._publish(writer)
            finally:
                index.close()

    @classmethod
    def _create(cls, writer: layout.Writer, encoder: Encoder, catalog_url: str | None, old: dict | None,
                index_type: str = "auto", milvus_uri: str | None = None, second_lead_weight: float = 0.0
                ) -> BeatIndex:
        """An empty index in the writer's staging directory, its ids continuing ``old``'s."""
        staging = writer.staging
        uid = (old or {}).get("index_uid") or uuid.uuid4().hex
        next_id = int((old or {}).get("next_beat_id", 1))
        with layout.storage_errors(writer.root, "write"):
            encoder.save(staging / ENCODER_FILE)
        manifest = {
            "format": FORMAT_VERSION,
            "generation": writer.number,
            "index_uid": uid,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "encoder": {"fingerprint": encoder.fingerprint, "dim": encoder.dim, "source": encoder.path},
            "model_fs": MODEL_FS,
            "beat_format": BEAT_FORMAT,
            "metric": "inner_product",
            "leads": "both" if second_lead_weight else "one",
            "second_lead_weight": second_lead_weight,
            "catalog_url": catalog_url,
            "vectors": {"type": "flat", "requested": index_type},
        }
        url = _catalog_url(staging, manifest)
        catalog = Catalog.create(url, writer.number, index_uid=uid, owner=str(writer.root), next_id=next_id)
        if catalog_url is not None:
            try:
                if catalog.owner != str(writer.root):
                    raise IndexFormatError(f"catalog {catalog.name} belongs to the index at {catalog.owner}: give "
                                           "each index its own catalog URL")
                manifest["index_uid"] = catalog.index_uid
                catalog.advance_ids(next_id)
                catalog.recover(writer.previous if old and old.get("catalog_url") == catalog_url else None)
                catalog.remove_all()
            except BaseException:
                catalog.close()
                raise
        dim = _vector_dim(manifest)
        if milvus_uri is None:
            vectors = empty_vectors(dim)
        else:
            try:
                vectors = milvus.MilvusVectors.create(milvus_uri, f"simsearch_{manifest['index_uid']}_{writer.number}",
                                                      dim, writer.number, index_type, catalog.removed_versions)
            except BaseException:
                catalog.close()
                raise
        index = cls(writer.root, staging, vectors, catalog, manifest, encoder)
        index.writable = True
        return index

    @classmethod
    def _open_generation(cls, root: Path, number: int, encoder: Encoder | None, writing: bool = False
                         ) -> BeatIndex:
        """Open generation ``number`` of the index at ``root``, checking that its parts pair up.

        ``writing``: the vectors are read into memory to be changed (a reader's are
        memory-mapped where their type allows)."""
        directory = root / layout.generation_name(number)
        if not directory.is_dir():
            raise IndexFormatError(f"{root}: {layout.POINTER} names {directory.name}, which is missing: rebuild the "
                                   "index")
        manifest = _read_manifest(directory, number)
        for needed in (_vectors_file(manifest), ENCODER_FILE) + (() if manifest["catalog_url"] else (CATALOG,)):
            if not (directory / needed).is_file():
                raise IndexFormatError(f"{root} is incomplete: {needed} is missing from {directory.name}")
        if encoder is not None:
            encoder = _checked(encoder, root, manifest["encoder"]["fingerprint"])
        catalogs: list[Catalog] = []  # Milvus asks the catalog which record versions to hide
        vectors = _read_vectors(directory, manifest, mmap=not writing,
                                hidden=lambda: catalogs[0].removed_versions() if catalogs else [])
        catalog = Catalog(_catalog_url(directory, manifest), number, immutable=manifest["catalog_url"] is None)
        catalogs.append(catalog)
        try:
            _check_pair(directory, manifest, vectors, catalog)
        except BaseException:
            catalog.close()
            raise
        return cls(root, directory, vectors, catalog, manifest, encoder)

    def _publish(self, writer: layout.Writer) -> None:
        """Write the vectors, the catalog's generation and the manifest into staging, then publish them."""
        root = writer.root
        requested = (self.manifest.get("vectors") or {}).get("requested", "flat")
        if self.vectors.type != "milvus":
            self.vectors = finalize_vectors(self.vectors, requested)  # trains and tunes an IVF or HNSW index
        self.manifest["vectors"] = {**self.vectors.params, "requested": requested}
        with layout.storage_errors(root, "write"):
            layout.write_file(self.directory / _vectors_file(self.manifest), self.vectors.serialize())
        layout.fault_point("vectors-written")
        self.catalog.mark_written()
        external = self.manifest["catalog_url"] is not None
        if not external:
            self.catalog.collect(writer.number)  # a private copy: what no one will read again goes now
            self.catalog.close()
        layout.fault_point("catalog-written")
        self.manifest["n_vectors"] = int(self.vectors.ntotal)
        self.manifest["next_beat_id"] = self.catalog.next_id
        self.manifest["written"] = datetime.now(UTC).isoformat(timespec="seconds")
        with layout.storage_errors(root, "write"):
            layout.write_file(self.directory / MANIFEST, json.dumps(self.manifest, indent=2).encode())
        layout.fault_point("manifest-written")
        writer.publish()
        self.directory, self.writable = writer.final, False
        if external and writer.previous is not None:
            try:  # readers of the previous generation still read these rows; older ones go
                if self.vectors.type == "milvus":
                    self.vectors.collect(self.catalog.removed_versions(writer.previous))
                    self.vectors.drop_others({self.vectors.collection, _milvus_collection(root, writer.previous)})
                self.catalog.collect(writer.previous)
            except SimsearchError:
                pass  # the new generation is published; the next writer collects
        writer.cleanup()

    def close(self) -> None:
        self.catalog.close()

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    # ---------------------------------------------------------------- adding
    def add_records(self, records: Sequence[str], data_dir: str | os.PathLike | None = None, *,
                    lead: str | None = None, progress: bool = False, engine=None) -> BuildStats:
        """Read, filter, segment, embed and add records; a record already present is replaced.

        Parameters
        ----------
        records : sequence of str
            Record names (looked up in ``data_dir``) or paths, at any sampling rate;
            each is stored at its own rate, under its name.
        data_dir : str or path, optional
            Where bare names are looked up (default: ``$SIMSEARCH_DATA``).
        lead : str, optional
            Lead to read (default: MLII, else II, else the first).
        progress : bool
            Show a progress bar on stderr.
        engine : optional
            Embed the records elsewhere (:class:`simsearch.model.parallel.RayEngine`); they
            are stored here in the order given.

        Returns
        -------
        BuildStats
            Records and beats added, and where the time went.
        """
        if engine is not None:
            embedded = engine.embed(records, data_dir, lead, self.directory / ENCODER_FILE, self.second_lead_weight)
        else:
            embedded = (embed_one(self.encoder, name, data_dir, lead, self.second_lead_weight) for name in records)
        return self._add_embedded(embedded, len(records), progress)

    def _add_embedded(self, embedded: Iterator[EmbeddedRecord], total: int, progress: bool) -> BuildStats:
        """Store embedded records in the order given; where the time went (an engine's summed over its workers)."""
        stats = BuildStats()
        with progress_bar("indexing", total, enabled=progress) as advance:
            for item in embedded:
                start = time.perf_counter()
                source = np.where(item.beats.aami != "", "reference", "none")
                self.add_beats(item.beats, item.vectors, record_path=item.path, n_samples=item.n_samples,
                               label_source=source)
                stats.records += 1
                stats.beats += len(item.beats)
                stats.read_s += item.read_s
                stats.filter_s += item.filter_s
                stats.embed_s += item.embed_s
                stats.index_s += time.perf_counter() - start
                advance(f"{item.name}: {len(item.beats)} beats")
        return stats

    def add_beats(self, beats: Beats, vectors: np.ndarray, *, record_path: str, n_samples: int,
                  label_source: np.ndarray | str, confidence: np.ndarray | None = None) -> np.ndarray:
        """Add one record's beats and embeddings (replacing the record if present); returns their ids.

        ``n_samples`` is the record's length at its own rate ``beats.fs``. Only an
        index being written (:meth:`build`, :meth:`updating`) takes beats.

        Raises
        ------
        IndexWriteError
            The index was opened for reading.
        ParameterError
            ``vectors`` is not one row of the index's dimension per beat.
        LeadNotFoundError
            One-lead vectors for an index of both leads.
        """
        if not self.writable:
            raise IndexWriteError(f"{self.path} is open for reading: add beats inside BeatIndex.updating(path)")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._one_lead(vectors):
            raise LeadNotFoundError(f"{beats.record} was embedded in one lead: this index holds both leads of every "
                                    "beat (build a one-lead index, --leads one, for such records)")
        if vectors.shape != (len(beats), self.vectors.d):
            raise ParameterError(f"{len(beats)} beats need vectors of shape ({len(beats)}, {self.vectors.d}), "
                                 f"not {vectors.shape}")
        ids, removed = self.catalog.replace_record(beats, path=record_path, n_samples=n_samples,
                                                   label_source=label_source, confidence=confidence)
        if removed.size:
            self.vectors.remove_ids(removed)
        if ids.size:
            self.vectors.add(vectors, ids, record=beats.record, aami=beats.aami, label_source=label_source)
        self._labels = None
        self._exact = None
        return ids

    # ---------------------------------------------------------------- searching
    def label_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted beat ids, class positions with -1 where unlabeled, record names), cached."""
        if self._labels is None:
            ids, aami, records = self.catalog.labels()
            order = np.argsort(ids)
            classes = np.full(ids.shape[0], -1, dtype=np.int64)
            labeled = aami[order] != ""
            classes[labeled] = class_index(aami[order][labeled])
            self._labels = (ids[order], classes, records[order].astype(str))
            self._record_codes = np.unique(self._labels[2], return_inverse=True)[1].astype(np.int64)
        return self._labels

    def classes_of(self, ids: np.ndarray) -> np.ndarray:
        """Class positions of beat ids (-1 for unlabeled beats or FAISS's -1 'no result')."""
        return self.neighbor_labels(ids)[0]

    def record_codes_of(self, ids: np.ndarray) -> np.ndarray:
        """Integer codes of the beat ids' records (the same code, the same record; -1 for FAISS's
        -1): what the vote balances the records' shares by (:data:`~simsearch.label.vote.RECORD_BALANCE`)."""
        return self.neighbor_labels(ids)[1]

    def neighbor_labels(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class positions, record codes) of beat ids, as :meth:`classes_of` and :meth:`record_codes_of`
        give them, from one lookup of the ids (a vote needs both for 10^7 neighbors)."""
        rows = self._table_rows(ids)
        _, classes, _ = self.label_table()
        if not classes.size:
            return np.full(rows.shape, -1, dtype=np.int64), np.full(rows.shape, -1, dtype=np.int64)
        safe = np.maximum(rows, 0)
        return np.where(rows >= 0, classes[safe], -1), np.where(rows >= 0, self._record_codes[safe], -1)

    def _table_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of :meth:`label_table` holding beat ids, -1 where an id is not there."""
        table_ids = self.label_table()[0]
        ids = np.asarray(ids)
        if ids.size > len(table_ids) and len(table_ids) and 0 <= table_ids[-1] <= DENSE_IDS * len(table_ids):
            # a whole recording's neighbors (10^7 ids): one lookup table over the id range, not a binary search each
            dense = np.full(int(table_ids[-1]) + 2, -1, dtype=np.int32)
            dense[table_ids] = np.arange(len(table_ids), dtype=np.int32)
            return dense[np.where((ids >= 0) & (ids <= table_ids[-1]), ids, -1)].astype(np.int64)
        if not len(table_ids):
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(table_ids, ids), 0, len(table_ids) - 1)
        return np.where((ids >= 0) & (table_ids[pos] == ids), pos, -1)

    def search(self, vectors: np.ndarray, k: int = DEFAULT_K, *, exclude_records: Sequence[str] = (),
               exclude_ids: Sequence[int] = (), classes: Sequence[str] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest labeled beats of each vector.

        Parameters
        ----------
        vectors : array (n, dim) or (dim,)
            Unit vectors as the index holds them (:meth:`embed`); in an index of both
            leads, one-lead vectors too: they are compared by the first lead alone
            (:func:`~simsearch.model.leads.one_lead_query`).
        k : int
            Neighbors per vector.
        exclude_records : sequence of str
            Record names whose beats may not answer (e.g. the query's own patient).
        exclude_ids : sequence of int
            Beat ids that may not answer (e.g. the query beat itself).
        classes : sequence of str, optional
            Keep only beats of these AAMI classes.

        Returns
        -------
        distances, ids : arrays (n, k)
            Euclidean distances between unit vectors (0..2), nearest first, and catalog
            beat ids; only labeled beats answer, and id -1 (distance inf) pads.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if self._one_lead(vectors):
            vectors = one_lead_query(vectors, self.second_lead_weight)
        if getattr(self.vectors, "filters_inside", False):  # Milvus: the filters run inside the engine
            similarity, ids = self.vectors.search_filtered(vectors, k, exclude_records=exclude_records,
                                                           exclude_ids=exclude_ids, classes=classes)
            return np.where(ids >= 0, unit_distance(similarity), np.inf), ids
        table_ids, table_classes, table_records = self.label_table()
        allowed = table_classes >= 0
        if classes is not None:
            allowed &= np.isin(table_classes, class_index(classes))
        if len(exclude_records):
            allowed &= ~np.isin(table_records, list(exclude_records))
        if len(exclude_ids):
            allowed &= ~np.isin(table_ids, np.asarray(exclude_ids, dtype=np.int64))
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.vectors.d:
            raise ParameterError(f"search: vectors of {vectors.shape[-1]} dimensions, the index holds "
                                 f"{self.vectors.d}")
        try:
            if vectors.shape[0] >= BATCH_SEARCH_MIN and self.vectors.type == "flat":
                similarity, ids = self._search_exact(vectors, k, allowed)
            elif vectors.shape[0] >= BATCH_SEARCH_MIN and not allowed.all() and self.vectors.type == "hnsw":
                similarity, ids = self._search_overfetch(vectors, k, allowed)
            else:
                similarity, ids = self._search_selected(vectors, k, allowed)
        except RuntimeError as exc:  # FAISS checks raise RuntimeError
            raise ParameterError(f"search: {reason(exc)[:200]}") from None
        return np.where(ids >= 0, unit_distance(similarity), np.inf), ids

    def _search_selected(self, vectors: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One FAISS search with an id selector naming the allowed beats (or none): the
        path of a few queries, for which the selector's per-vector test costs little."""
        table_ids = self.label_table()[0]
        selectors = []  # FAISS holds bare pointers: keep the selectors alive through the search
        n_allowed = int(allowed.sum())
        if n_allowed < allowed.size:  # name the smaller set: building the selector costs per id
            if n_allowed <= allowed.size // 2:
                selectors.append(faiss.IDSelectorBatch(np.ascontiguousarray(table_ids[allowed])))
            else:
                selectors.append(faiss.IDSelectorBatch(np.ascontiguousarray(table_ids[~allowed])))
                selectors.append(faiss.IDSelectorNot(selectors[0]))
        params = faiss.SearchParameters(sel=selectors[-1]) if selectors else None
        return self.vectors.search(vectors, k, params=params)

    def _search_exact(self, vectors: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A batch against a flat index: exact, every query sharing one filter, no selector
        (:class:`~simsearch.store.exact.ExactKnn`: a flat BLAS search over the allowed
        vectors, or, for thousands of queries, one pruned by the triangle inequality)."""
        if self._exact is None:
            x, stored_ids = self.vectors.arrays()
            table_ids = self.label_table()[0]
            self._exact = (ExactKnn(x), np.searchsorted(table_ids, stored_ids))
        exact, table_rows = self._exact
        row_allowed = allowed[table_rows] if table_rows.size else np.zeros(0, dtype=bool)
        similarity, rows = exact.search(vectors, k, None if row_allowed.all() else row_allowed)
        table_ids = self.label_table()[0]
        return similarity, np.where(rows >= 0, table_ids[table_rows[np.maximum(rows, 0)]], -1)

    def _search_overfetch(self, vectors: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A filtered batch against an HNSW index, whose graph walk a selector slows: ``k``
        plus :data:`OVERFETCH` more neighbors without a selector, the filtered-out ones
        dropped; only the rows left with fewer than ``k`` are searched again, with the
        selector. (An IVF index takes the selector for the whole batch: it tests only the
        vectors of the lists it probes. Overfetching instead, each MIT-BIH beat voted on by the
        other records at 10^5 re-searched most rows, its own record crowding the first
        k + 64: 10,300 beats/s at recall@100 0.93, against 18,700 at 0.96 with the selector,
        FAISS on one thread, before :data:`~simsearch.store.vectors.TUNED_K` raised the probes.)"""
        table_ids = self.label_table()[0]
        extra = min(int((~allowed).sum()), max(OVERFETCH, k))
        similarity, ids = self.vectors.search(vectors, k + extra)
        pos = np.clip(np.searchsorted(table_ids, ids), 0, max(table_ids.size - 1, 0))
        ok = (ids >= 0) & (table_ids[pos] == ids) & allowed[pos]
        keep = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # allowed ones first, in rank order
        rows = np.arange(ids.shape[0])[:, None]
        similarity, ids, ok = similarity[rows, keep], ids[rows, keep], ok[rows, keep]
        similarity, ids = np.where(ok, similarity, -np.inf).astype(np.float32), np.where(ok, ids, -1)
        short = np.flatnonzero(~ok.all(axis=1))
        if short.size:
            similarity[short], ids[short] = self._search_selected(vectors[short], k, allowed)
        return similarity, ids

    def class_counts(self) -> np.ndarray:
        """Labeled beats per AAMI class (5,), the prior a vote corrects for."""
        _, classes, _ = self.label_table()
        return np.bincount(classes[classes >= 0], minlength=len(AAMI_CLASSES))

    # ---------------------------------------------------------------- describing
    def info(self) -> dict:
        return {"path": str(self.path), **{k: v for k, v in self.manifest.items()},
                "catalog": self.catalog.counts(), "records": [r["name"] for r in self.catalog.records()]}


@contextmanager
def _running(engine) -> Iterator[None]:
    """An embedding engine started before anything else of the build (Ray forks its servers, which a
    Milvus Lite gRPC server already running in this process can hang) and stopped after it."""
    if engine is None or not hasattr(engine, "start"):
        yield
        return
    engine.start()
    try:
        yield
    finally:
        engine.close()


def absolute_catalog_url(url: str | None) -> str | None:
    """``url`` with a relative SQLite path made absolute (stored so, it means the same from any directory).

    Raises
    ------
    ParameterError
        ``url`` is not an SQLAlchemy URL, or names an in-memory database (gone with the process).
    """
    if url is None:
        return None
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ParameterError(f"catalog URL {url!r} is not an SQLAlchemy URL (e.g. sqlite:///path/catalog.db)") from None
    if parsed.get_backend_name() != "sqlite":
        return url
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise ParameterError(f"catalog URL {url!r} names an in-memory database: an index needs one on disk")
    if database.startswith("file:") or os.path.isabs(database):
        return url
    return parsed.set(database=os.path.abspath(database)).render_as_string(hide_password=False)


def _checked(encoder: Encoder, path: Path, expected: str) -> Encoder:
    """``encoder`` if it is the one whose fingerprint the index at ``path`` records."""
    if encoder.fingerprint != expected:
        raise EncoderMismatchError(
            f"{path} was built with encoder {expected}, not {encoder.fingerprint}: rebuild the index with this "
            "encoder or open it without one")
    return encoder


def _catalog_url(directory: Path, manifest: dict) -> str:
    return manifest["catalog_url"] or f"sqlite:///{directory / CATALOG}"


def _read_manifest(directory: Path, number: int) -> dict:
    """The manifest of generation ``number``, checked field by field (one clear line per defect)."""
    where = f"{directory}/{MANIFEST}"
    try:
        manifest = json.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise IndexFormatError(f"{directory.parent} is incomplete: "
                               f"{MANIFEST} is missing from {directory.name}") from None
    except OSError as exc:
        raise IndexFormatError(f"{where} is unreadable ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise IndexFormatError(f"{where} is corrupt ({getattr(exc, 'msg', None) or reason(exc)})") from None
    if not isinstance(manifest, dict):
        raise IndexFormatError(f"{where} is not a manifest (a JSON {type(manifest).__name__}, not an object)")
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexFormatError(f"{where}: index format {manifest.get('format')!r}, this simsearch reads "
                               f"{FORMAT_VERSION}: rebuild the index")
    encoder = manifest.get("encoder")
    leads, weight = manifest.get("leads", "one"), manifest.get("second_lead_weight", 0.0)
    checks = {
        "generation": manifest.get("generation") == number,
        "index_uid": isinstance(manifest.get("index_uid"), str),
        "encoder": isinstance(encoder, dict),
        "encoder.fingerprint": isinstance(encoder, dict) and isinstance(encoder.get("fingerprint"), str),
        "encoder.dim": isinstance(encoder, dict) and _positive_int(encoder.get("dim")),
        "catalog_url": manifest.get("catalog_url") is None or isinstance(manifest.get("catalog_url"), str),
        "leads": leads in LEADS,
        "second_lead_weight": isinstance(weight, (int, float)) and not isinstance(weight, bool)
        and (weight > 0) == (leads == "both"),
        "n_vectors": isinstance(manifest.get("n_vectors"), int) and not isinstance(manifest.get("n_vectors"), bool),
    }
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise IndexFormatError(f"{where} is corrupt: {bad[0]} is missing or wrong ({_shown(manifest, bad[0])}): "
                               "rebuild the index")
    if manifest.get("beat_format") != BEAT_FORMAT:
        made = ("by an older simsearch, which recorded no beat format" if "beat_format" not in manifest
                else f"as beat format {_shown(manifest, 'beat_format')}")
        raise IndexFormatError(f"{where}: the index's beats were cut {made}; this simsearch cuts format "
                               f"{BEAT_FORMAT}, and its queries would not compare with them: rebuild the index")
    return manifest


def _vector_dim(manifest: dict) -> int:
    """Dimensions of an index's vectors: the encoder's, twice in an index of both leads."""
    return manifest["encoder"]["dim"] * (2 if manifest.get("leads", "one") == "both" else 1)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _shown(manifest: dict, key: str) -> str:
    value = manifest
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return repr(value)[:40]


def _vectors_file(manifest: dict) -> str:
    """The generation's vectors file: the FAISS index, or the pointer to a Milvus collection."""
    params = manifest.get("vectors")
    return milvus.FILE if isinstance(params, dict) and params.get("type") == "milvus" else VECTORS


def _milvus_collection(root: Path, number: int) -> str:
    """The Milvus collection generation ``number`` names ('' if none or unreadable)."""
    try:
        return json.loads((root / layout.generation_name(number) / milvus.FILE).read_text())["collection"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _read_vectors(directory: Path, manifest: dict, mmap: bool = False, hidden=list):
    """The generation's vectors, refused unless they are what simsearch writes, of the encoder's dimension.

    Their type is the manifest's ``vectors.type`` (an index written before types existed is
    flat); ``hidden`` gives Milvus the record versions to hide (see :mod:`simsearch.store.milvus`)."""
    path = directory / _vectors_file(manifest)
    params = manifest.get("vectors")
    if isinstance(params, dict) and params.get("type") == "milvus":
        vectors = milvus.MilvusVectors.read(path, manifest["generation"], hidden, writable=not mmap)
    else:
        vectors = read_vectors(path, params if isinstance(params, dict) else {"type": "flat"}, mmap=mmap)
    dim = _vector_dim(manifest)
    if vectors.d != dim:
        raise IndexFormatError(f"{path}: vectors have {vectors.d} dimensions, the encoder gives {dim} (leads: "
                               f"{manifest.get('leads', 'one')}): rebuild the index")
    if vectors.type != "milvus" and vectors.ntotal != manifest["n_vectors"]:  # Milvus: counted once paired
        raise IndexFormatError(f"{path} holds {vectors.ntotal} vectors, the manifest says {manifest['n_vectors']}")
    return vectors


def _check_pair(directory: Path, manifest: dict, vectors, catalog: Catalog) -> None:
    """Refuse vectors and a catalog that do not belong together: same index, same generation, same beat ids."""
    number = manifest["generation"]
    if catalog.index_uid != manifest["index_uid"]:
        raise IndexFormatError(f"catalog {catalog.name} belongs to another index than {directory.parent}")
    oldest, newest = catalog.generations
    if not oldest <= number <= newest:
        raise IndexFormatError(f"catalog {catalog.name} holds generations {oldest} to {newest}, the vectors in "
                               f"{directory.name} are generation {number}: they do not belong together")
    if vectors.type == "milvus" and vectors.ntotal != manifest["n_vectors"]:
        raise IndexFormatError(f"Milvus collection {vectors.collection} holds {vectors.ntotal} vectors of generation "
                               f"{number}, the manifest says {manifest['n_vectors']}")
    stored = vectors.ids()
    listed = catalog.ids()
    if stored is None:  # too many to list (Milvus): the counts must agree
        stored = listed if vectors.ntotal == listed.size else np.empty(0, np.int64)
    if not np.array_equal(stored, listed):
        only_vectors = np.setdiff1d(stored, listed).size
        only_catalog = np.setdiff1d(listed, stored).size
        raise IndexFormatError(f"{directory.parent}: the vectors ({stored.size} ids) and the catalog ({listed.size} "
                               f"beats) do not hold the same beats ({only_vectors} only in the vectors, {only_catalog} "
                               "only in the catalog): rebuild the index")


def _old_manifest(root: Path, previous: int | None) -> dict | None:
    """The manifest of the generation a build replaces, if it is readable (ids continue from it)."""
    if previous is None:
        return None
    try:
        return _read_manifest(root / layout.generation_name(previous), previous)
    except IndexFormatError:
        return None  # a corrupt index is replaced whole
