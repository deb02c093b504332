"""BeatIndex: embeddings in FAISS, metadata in the catalog, one directory on disk.

The directory holds ``manifest.json`` (format, encoder fingerprint, build figures),
``vectors.faiss`` (inner-product index whose ids are catalog beat ids),
``catalog.sqlite`` (unless another SQLAlchemy URL was given) and ``encoder.keras``,
a copy of the encoder, so the index answers queries on its own.
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
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np

from ..aami import AAMI_CLASSES, class_index
from ..errors import EncoderMismatchError, IndexFormatError
from ..model.encoder import Encoder, unit_distance
from ..progress import progress_bar
from ..signal.beats import MODEL_FS, Beats, beats_from_record
from ..signal.records import load_record
from .catalog import Catalog

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
CATALOG = "catalog.sqlite"
ENCODER_FILE = "encoder.keras"
DEFAULT_K = 10


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
    :meth:`search` for the nearest labeled beats of embeddings; queries by record or
    signal, with their vote, are :func:`simsearch.label.query.query_beat` and
    :func:`~simsearch.label.query.query_signal`.

    The encoder is loaded on first use (it costs TensorFlow's start-up), so opening an
    index and searching stored beats stays fast.
    """

    def __init__(self, path: Path, vectors, catalog: Catalog, manifest: dict, encoder: Encoder | None = None):
        self.path = path
        self.vectors = vectors
        self.catalog = catalog
        self.manifest = manifest
        self._encoder = encoder
        self._labels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the encoder that made the vectors."""
        return self.manifest["encoder"]["fingerprint"]

    @property
    def encoder(self) -> Encoder:
        """The index's own encoder (``encoder.keras``), loaded and checked on first use."""
        if self._encoder is None:
            self._encoder = _checked(Encoder.load(self.path / ENCODER_FILE), self.path, self.fingerprint)
        return self._encoder

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    def build(cls, path: str | os.PathLike, records: Sequence[str], data_dir: str | os.PathLike | None = None, *,
              encoder: Encoder | str | os.PathLike | None = None, catalog_url: str | None = None,
              lead: str | None = None, progress: bool = False) -> "BeatIndex":
        """Build an index of ``records`` at ``path``, replacing any index already there.

        Built in a temporary directory beside ``path`` and moved into place only when
        complete, so a failure leaves ``path`` as it was.
        """
        path = Path(path)
        if path.exists() and not (path / MANIFEST).is_file() and any(path.iterdir()):
            raise IndexFormatError(f"{path} exists and is not a simsearch index: refusing to overwrite it")
        encoder = encoder if isinstance(encoder, Encoder) else Encoder.load(encoder)
        with _staging(path, copy_from=None) as tmp:
            index = cls._create(tmp, encoder, catalog_url)
            stats = index.add_records(records, data_dir, lead=lead, progress=progress)
            index.manifest["build"] = {**asdict(stats), "embed_beats_per_s": round(stats.embed_beats_per_s, 1)}
            index.save()
            index.close()
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike, encoder: Encoder | str | os.PathLike | None = None) -> "BeatIndex":
        """Open an index; with ``encoder``, refuse it unless it is the one the index was built with."""
        path = Path(path)
        manifest = _read_manifest(path)
        for needed in (VECTORS, ENCODER_FILE) + (() if manifest.get("catalog_url") else (CATALOG,)):
            if not (path / needed).is_file():
                raise IndexFormatError(f"{path} is incomplete: {needed} is missing")
        if encoder is not None:
            loaded = encoder if isinstance(encoder, Encoder) else Encoder.load(encoder)
            encoder = _checked(loaded, path, manifest["encoder"]["fingerprint"])
        try:
            vectors = faiss.read_index(str(path / VECTORS))
        except RuntimeError:
            raise IndexFormatError(f"{path}: {VECTORS} is missing or unreadable") from None
        if vectors.d != manifest["encoder"]["dim"]:
            raise IndexFormatError(f"{path}: vectors have {vectors.d} dimensions, the encoder gives "
                                   f"{manifest['encoder']['dim']}")
        return cls(path, vectors, Catalog(_catalog_url(path, manifest)), manifest, encoder)

    @classmethod
    @contextmanager
    def updating(cls, path: str | os.PathLike, encoder: Encoder | str | os.PathLike | None = None
                 ) -> Iterator["BeatIndex"]:
        """Change an index as one step: work on a copy, swap it in only on success."""
        path = Path(path)
        _read_manifest(path)
        with _staging(path, copy_from=path) as tmp:
            index = cls.open(tmp, encoder)
            yield index
            index.save()
            index.close()

    @classmethod
    def _create(cls, path: Path, encoder: Encoder, catalog_url: str | None) -> "BeatIndex":
        path.mkdir(parents=True, exist_ok=True)
        encoder.save(path / ENCODER_FILE)
        manifest = {
            "format": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "encoder": {"fingerprint": encoder.fingerprint, "dim": encoder.dim, "source": encoder.path},
            "model_fs": MODEL_FS,
            "metric": "inner_product",
            "catalog_url": catalog_url,
        }
        vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(encoder.dim))
        return cls(path, vectors, Catalog(_catalog_url(path, manifest)), manifest, encoder)

    def save(self) -> None:
        faiss.write_index(self.vectors, str(self.path / VECTORS))
        self.manifest["n_vectors"] = int(self.vectors.ntotal)
        (self.path / MANIFEST).write_text(json.dumps(self.manifest, indent=2))

    def close(self) -> None:
        self.catalog.close()

    def __len__(self) -> int:
        return int(self.vectors.ntotal)

    # ---------------------------------------------------------------- adding
    def add_records(self, records: Sequence[str], data_dir: str | os.PathLike | None = None, *,
                    lead: str | None = None, progress: bool = False) -> BuildStats:
        """Read, filter, segment, embed and add records; a record already present is replaced."""
        stats = BuildStats()
        with progress_bar("indexing", len(records), enabled=progress) as advance:
            for name in records:
                t0 = time.perf_counter()
                record = load_record(name, data_dir, lead=lead)
                t1 = time.perf_counter()
                beats = beats_from_record(record)
                t2 = time.perf_counter()
                vectors = self.encoder.embed(beats.windows, beats.context)
                t3 = time.perf_counter()
                source = np.where(beats.aami != "", "reference", "none")
                self.add_beats(beats, vectors, record_path=record.path, n_samples=record.n_samples,
                               label_source=source)
                t4 = time.perf_counter()
                stats.records += 1
                stats.beats += len(beats)
                stats.read_s += t1 - t0
                stats.filter_s += t2 - t1
                stats.embed_s += t3 - t2
                stats.index_s += t4 - t3
                advance(f"{name}: {len(beats)} beats")
        return stats

    def add_beats(self, beats: Beats, vectors: np.ndarray, *, record_path: str, n_samples: int,
                  label_source: np.ndarray | str, confidence: np.ndarray | None = None) -> np.ndarray:
        """Add one record's beats and embeddings (replacing the record if present); returns their ids.

        ``n_samples`` is the record's length at its own rate ``beats.fs``.
        """
        ids, removed = self.catalog.replace_record(beats, path=record_path, n_samples=n_samples,
                                                   label_source=label_source, confidence=confidence)
        if removed.size:
            self.vectors.remove_ids(removed)
        if ids.size:
            self.vectors.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._labels = None
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
        return self._labels

    def classes_of(self, ids: np.ndarray) -> np.ndarray:
        """Class positions of beat ids (-1 for unlabeled beats or FAISS's -1 'no result')."""
        table_ids, classes, _ = self.label_table()
        pos = np.clip(np.searchsorted(table_ids, ids), 0, max(len(table_ids) - 1, 0))
        found = (ids >= 0) & (table_ids[pos] == ids) if len(table_ids) else np.zeros(ids.shape, bool)
        return np.where(found, classes[pos], -1)

    def search(self, vectors: np.ndarray, k: int = DEFAULT_K, *, exclude_records: Sequence[str] = (),
               exclude_ids: Sequence[int] = (), classes: Sequence[str] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest labeled beats of each vector: (distances, ids), both (n, k); id -1 pads.

        Only labeled beats answer; ``exclude_records`` / ``exclude_ids`` remove beats
        (e.g. the query's own patient), ``classes`` keeps only those AAMI classes.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        table_ids, table_classes, table_records = self.label_table()
        allowed = table_classes >= 0
        if classes is not None:
            allowed &= np.isin(table_classes, class_index(classes))
        if len(exclude_records):
            allowed &= ~np.isin(table_records, list(exclude_records))
        if len(exclude_ids):
            allowed &= ~np.isin(table_ids, np.asarray(exclude_ids, dtype=np.int64))
        selectors = []  # FAISS holds bare pointers: keep the selectors alive through the search
        n_allowed = int(allowed.sum())
        if n_allowed < allowed.size:  # name the smaller set: building the selector costs per id
            if n_allowed <= allowed.size // 2:
                selectors.append(faiss.IDSelectorBatch(np.ascontiguousarray(table_ids[allowed])))
            else:
                selectors.append(faiss.IDSelectorBatch(np.ascontiguousarray(table_ids[~allowed])))
                selectors.append(faiss.IDSelectorNot(selectors[0]))
        params = faiss.SearchParameters(sel=selectors[-1]) if selectors else None
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        similarity, ids = self.vectors.search(vectors, k, params=params)
        return np.where(ids >= 0, unit_distance(similarity), np.inf), ids

    def class_counts(self) -> np.ndarray:
        """Labeled beats per AAMI class (5,), the prior a vote corrects for."""
        _, classes, _ = self.label_table()
        return np.bincount(classes[classes >= 0], minlength=len(AAMI_CLASSES))

    # ---------------------------------------------------------------- describing
    def info(self) -> dict:
        return {"path": str(self.path), **{k: v for k, v in self.manifest.items()},
                "catalog": self.catalog.counts(), "records": [r["name"] for r in self.catalog.records()]}


def _checked(encoder: Encoder, path: Path, expected: str) -> Encoder:
    """``encoder`` if it is the one whose fingerprint the index at ``path`` records."""
    if encoder.fingerprint != expected:
        raise EncoderMismatchError(
            f"{path} was built with encoder {expected}, not {encoder.fingerprint}: rebuild the index with this "
            "encoder or open it without one")
    return encoder


def _catalog_url(path: Path, manifest: dict) -> str:
    return manifest.get("catalog_url") or f"sqlite:///{(path / CATALOG).resolve()}"


def _read_manifest(path: Path) -> dict:
    if not path.is_dir():
        raise IndexFormatError(f"index not found: {path}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is not a simsearch index (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"{path}/{MANIFEST} is corrupt ({exc.msg})") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexFormatError(f"{path}: index format {manifest.get('format')!r}, this simsearch reads {FORMAT_VERSION}")
    return manifest


@contextmanager
def _staging(path: Path, copy_from: Path | None) -> Iterator[Path]:
    """A temporary directory beside ``path`` that replaces it only if the block succeeds."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    if copy_from is not None:
        shutil.copytree(copy_from, tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
