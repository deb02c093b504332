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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np

from .aami import AAMI_CLASSES, class_index
from .beats import (MODEL_FS, Beats, beat_context, beats_from_record, check_sample, nearest_beat, rescale_samples,
                    segment)
from .catalog import Catalog
from .encoder import Encoder
from .errors import EncoderMismatchError, IndexFormatError, SampleOutOfRangeError
from .filtering import clean_ecg
from .progress import progress_bar
from .records import check_signal, load_record, resample
from .vote import PRIOR_ALPHA, VOTE_K, class_vote, ip_to_distance, vote_winner

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
CATALOG = "catalog.sqlite"
ENCODER_FILE = "encoder.keras"
DEFAULT_K = 10


@dataclass
class Neighbor:
    id: int
    record: str
    sample: int
    time: float
    lead: str
    symbol: str | None
    aami: str | None
    distance: float
    label_source: str


@dataclass
class Vote:
    label: str
    confidence: float
    scores: dict[str, float]


@dataclass
class QueryResult:
    query: dict
    neighbors: list[Neighbor]
    vote: Vote
    embedding: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"query": self.query, "neighbors": [asdict(n) for n in self.neighbors], "vote": asdict(self.vote)}


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

    Use :meth:`build` to create one from records, :meth:`open` to load one, then
    :meth:`query` (a beat of a record) or :meth:`query_signal` (a raw signal).
    """

    def __init__(self, path: Path, encoder: Encoder, vectors, catalog: Catalog, manifest: dict):
        self.path = path
        self.encoder = encoder
        self.vectors = vectors
        self.catalog = catalog
        self.manifest = manifest
        self._labels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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
        expected = manifest["encoder"]["fingerprint"]
        if encoder is None:
            encoder = Encoder.load(path / ENCODER_FILE)
        elif not isinstance(encoder, Encoder):
            encoder = Encoder.load(encoder)
        if encoder.fingerprint != expected:
            raise EncoderMismatchError(
                f"{path} was built with encoder {expected}, not {encoder.fingerprint}: rebuild the index with this "
                "encoder or open it without one")
        try:
            vectors = faiss.read_index(str(path / VECTORS))
        except RuntimeError:
            raise IndexFormatError(f"{path}: {VECTORS} is missing or unreadable") from None
        if vectors.d != encoder.dim:
            raise IndexFormatError(f"{path}: vectors have {vectors.d} dimensions, the encoder gives {encoder.dim}")
        return cls(path, encoder, vectors, Catalog(_catalog_url(path, manifest)), manifest)

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
            "vote": {"k": VOTE_K, "prior_alpha": PRIOR_ALPHA},
        }
        vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(encoder.dim))
        return cls(path, encoder, vectors, Catalog(_catalog_url(path, manifest)), manifest)

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
                record = load_record(name, data_dir, lead=lead, fs=MODEL_FS)
                t1 = time.perf_counter()
                beats = beats_from_record(record)
                t2 = time.perf_counter()
                vectors = self.encoder.embed(beats.windows, beats.context)
                t3 = time.perf_counter()
                source = np.where(beats.aami != "", "reference", "none")
                self.add_beats(beats, vectors, record_path=record.path, n_samples=record.n_samples,
                               source_fs=record.source_fs, label_source=source)
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
                  source_fs: float | None, label_source: np.ndarray | str,
                  confidence: np.ndarray | None = None) -> np.ndarray:
        """Add one record's beats and embeddings (replacing the record if present); returns their ids."""
        ids, removed = self.catalog.replace_record(beats, path=record_path, n_samples=n_samples,
                                                   source_fs=source_fs, label_source=label_source,
                                                   confidence=confidence)
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
        return np.where(ids >= 0, ip_to_distance(similarity), np.inf), ids

    @property
    def vote_settings(self) -> dict:
        """How many neighbors vote and how strongly class frequency is corrected."""
        return {"k": VOTE_K, "prior_alpha": PRIOR_ALPHA, **self.manifest.get("vote", {})}

    def vote(self, distances: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Per-class vote scores (n, 5) from search results, corrected for the index's class prior."""
        _, table_classes, _ = self.label_table()
        counts = np.bincount(table_classes[table_classes >= 0], minlength=len(AAMI_CLASSES))
        return class_vote(self.classes_of(ids), np.where(np.isfinite(distances), distances, 0.0), counts,
                          self.vote_settings["prior_alpha"])

    def query(self, record: str, sample: int, k: int = DEFAULT_K, *, exclude_record: bool = False,
              classes: Sequence[str] | None = None, data_dir: str | os.PathLike | None = None,
              lead: str | None = None) -> QueryResult:
        """Neighbors of the beat nearest ``sample`` in ``record``.

        A record already in the index (by name) is answered from its stored
        embeddings; any other is read (by path, or by name in ``data_dir``). The query
        beat itself is never its own neighbor.
        """
        stored = self.catalog.record(Path(str(record)).name) if _is_bare_name(record) else None
        if stored is not None:
            check_sample(sample, stored["n_samples"], stored["name"])
            beat_id = self.catalog.nearest_beat(stored["name"], sample)
            if beat_id is None:
                raise SampleOutOfRangeError(f"{stored['name']}: the record has no beats")
            beat = self.catalog.beats(ids=np.array([beat_id]))
            vector = self.vectors.reconstruct(beat_id)[None, :]
            info = {key: _plain(beat[key][0]) for key in ("record", "sample", "time", "lead", "symbol", "aami")}
            exclude_ids = [beat_id]
        else:
            loaded = load_record(record, data_dir, lead=lead, fs=MODEL_FS)
            check_sample(sample, int(rescale_samples(loaded.n_samples, MODEL_FS, loaded.source_fs)), loaded.name)
            beats = beats_from_record(loaded)
            row = nearest_beat(beats.samples, int(rescale_samples(sample, loaded.source_fs, MODEL_FS)),
                               loaded.n_samples, loaded.name)
            vector = self.encoder.embed(beats.windows[row:row + 1], beats.context[row:row + 1])
            at_source = int(rescale_samples(beats.samples[row], MODEL_FS, loaded.source_fs))
            info = {"record": loaded.name, "sample": at_source,
                    "time": float(beats.samples[row] / MODEL_FS), "lead": loaded.lead,
                    "symbol": beats.symbols[row] or None, "aami": beats.aami[row] or None}
            exclude_ids = []
        exclude = [info["record"]] if exclude_record else []
        return self._answer(vector, info, k, exclude, exclude_ids, classes)

    def query_signal(self, signal: np.ndarray, fs: float, sample: int | None = None, k: int = DEFAULT_K, *,
                     classes: Sequence[str] | None = None, exclude_records: Sequence[str] = ()) -> QueryResult:
        """Neighbors of a beat in a raw single-lead signal (physical units) sampled at ``fs``.

        The beat is the one nearest ``sample`` (default: the signal's largest QRS).
        Its context (RR features, dominant beat) comes from the beats detected in the
        signal; with fewer than two beats a resting rhythm is assumed and the beat is its
        own dominant beat, so pass several seconds around it.
        """
        from .detection import detect_r_peaks

        signal = np.asarray(signal, dtype=np.float64)
        check_signal(signal, "query signal")
        if fs <= 0:
            raise ValueError("fs must be positive")
        at_model_fs = resample(signal, fs, MODEL_FS) if fs != MODEL_FS else signal
        filtered = clean_ecg(at_model_fs, MODEL_FS)
        peaks = detect_r_peaks(at_model_fs, MODEL_FS) if at_model_fs.size > 2 * MODEL_FS else np.empty(0, int)
        if sample is not None:
            target = int(rescale_samples(sample, fs, MODEL_FS))
            if not 0 <= target < at_model_fs.size:
                raise SampleOutOfRangeError(f"sample {sample} is outside the signal (0..{signal.size - 1})")
        else:
            target = int(np.argmax(np.abs(filtered)))
        if peaks.size == 0 or np.min(np.abs(peaks - target)) > 0.15 * MODEL_FS:
            peaks = np.sort(np.append(peaks, target)).astype(np.int64)
        row = int(np.argmin(np.abs(peaks - target)))
        windows = segment(filtered, peaks)
        vector = self.encoder.embed(windows[row:row + 1], beat_context(peaks, windows, MODEL_FS)[row:row + 1])
        info = {"record": None, "sample": int(rescale_samples(peaks[row], MODEL_FS, fs)),
                "time": float(peaks[row] / MODEL_FS), "lead": None, "symbol": None, "aami": None}
        return self._answer(vector, info, k, list(exclude_records), [], classes)

    def _answer(self, vector, info, k, exclude_records, exclude_ids, classes) -> QueryResult:
        distances, ids = self.search(vector, max(k, self.vote_settings["k"]), exclude_records=exclude_records,
                                     exclude_ids=exclude_ids, classes=classes)
        scores = self.vote(distances, ids)[0]
        distances, ids = distances[:, :k], ids[:, :k]
        found = ids[0] >= 0
        rows = self.catalog.beats(ids=ids[0][found])
        neighbors = [Neighbor(id=int(rows["id"][i]), record=rows["record"][i], sample=int(rows["sample"][i]),
                              time=float(rows["time"][i]), lead=rows["lead"][i], symbol=rows["symbol"][i],
                              aami=rows["aami"][i], distance=round(float(d), 4), label_source=rows["label_source"][i])
                     for i, d in enumerate(distances[0][found])]
        winner, confidence = vote_winner(scores[None, :])
        vote = Vote(label=AAMI_CLASSES[int(winner[0])] if scores.sum() > 0 else "",
                    confidence=round(float(confidence[0]), 4),
                    scores={c: round(float(s), 4) for c, s in zip(AAMI_CLASSES, scores)})
        return QueryResult(info, neighbors, vote, vector[0])

    # ---------------------------------------------------------------- describing
    def info(self) -> dict:
        return {"path": str(self.path), **{k: v for k, v in self.manifest.items()},
                "catalog": self.catalog.counts(), "records": [r["name"] for r in self.catalog.records()]}


def _is_bare_name(record: str) -> bool:
    text = str(record)
    return os.sep not in text and "/" not in text and not text.endswith(".hea")


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


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
