"""What one server holds: the index and its encoder (opened once), the served directories, the workspaces."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..errors import ParameterError, RecordNotFoundError, SimsearchError
from ..label.annotate import Annotation, add_to_index
from ..label.query import QueryResult, query_beat, query_embedding, query_signal
from ..model.encoder import Encoder
from ..signal.beats import CONTEXT_COLUMNS, WINDOW, check_sample
from ..signal.records import data_dir_from, record_name
from ..store.index import BeatIndex
from .paths import confined_record, inside
from .signals import SignalCache, beat_window
from .workspaces import Workspaces, rr_context

MAX_UPLOAD_BYTES = 512 << 20
"""Largest upload (a 24-hour two-lead Holter in format 212 at 360 Hz is about 95 MB)."""


def default_workspace_dir(index_dir: str | os.PathLike) -> Path:
    """``INDEX_DIR.workspaces`` beside the index (never inside it: the index directory belongs to its writers)."""
    path = Path(os.path.abspath(index_dir))
    return path.with_name(path.name + ".workspaces")


class ServerState:
    """The index (reopened after each addition), the encoder, the data and workspace directories.

    Parameters
    ----------
    index_dir : path
        The index to serve; opened at once, its encoder loaded at once.
    data_dir : path, optional
        Records a client may name (default ``$SIMSEARCH_DATA``; none: only uploads).
    workspace_dir : path, optional
        Where review workspaces are kept (default :func:`default_workspace_dir`).
    encoder : Encoder, optional
        The index's encoder already loaded (checked against the index), so a process
        that holds one does not load it twice.
    """

    def __init__(self, index_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                 workspace_dir: str | os.PathLike | None = None, *, encoder: Encoder | None = None,
                 vote_k: int = 10, max_upload_bytes: int = MAX_UPLOAD_BYTES):
        self.index_path = Path(os.path.abspath(index_dir))
        first = BeatIndex.open(self.index_path, encoder)
        self.encoder = first.encoder  # TensorFlow loads now, not on the first query
        self.encoder.embed(np.zeros((1, WINDOW), np.float32), np.ones((1, len(CONTEXT_COLUMNS)), np.float32))  # traced
        first.close()
        self.index = BeatIndex.open(self.index_path, self.encoder)
        self._stored: dict[str, dict | None] = {}
        self._stored_lock = threading.Lock()
        chosen = data_dir_from(data_dir)
        self.data_dir = Path(os.path.realpath(chosen)) if chosen is not None else None
        self.workspace_dir = Path(os.path.abspath(workspace_dir or default_workspace_dir(self.index_path)))
        if inside(self.workspace_dir, self.index_path):
            raise ParameterError(f"the workspace directory {self.workspace_dir} may not lie inside the index")
        self.vote_k = vote_k
        self.max_upload_bytes = max_upload_bytes
        self.signals = SignalCache()
        self.write_lock = threading.Lock()
        self.workspaces = Workspaces(self.workspace_dir, self)

    def close(self) -> None:
        self.workspaces.close()
        self.index.close()

    @property
    def roots(self) -> list[Path]:
        """The directories the server reads records from."""
        return [p for p in (self.data_dir, self.workspace_dir, self.index_path) if p is not None]

    # ---------------------------------------------------------------- queries
    def query(self, record: str, sample: int, k: int, *, exclude_record: bool = False,
              classes: list[str] | None = None, lead: str | None = None) -> QueryResult:
        """A beat of a stored record (answered from its embedding), or of a record in the data directory."""
        index = self.index
        stored = None
        if "/" not in record and "\\" not in record:
            try:
                stored = self.stored_record(index, record_name(record))
            except RecordNotFoundError:
                stored = None
        if stored is not None and lead in (None, stored["lead"]):
            # query_beat's answer for a stored beat, its beat found in memory instead of three SQL queries
            name = stored["name"]
            sample = check_sample(sample, stored["n_samples"], name)
            samples = stored["samples"]
            if samples.size == 0:
                return query_beat(index, name, sample, k, exclude_record=exclude_record, classes=classes)
            right = int(np.clip(np.searchsorted(samples, sample), 0, samples.size - 1))
            row = right - 1 if right > 0 and sample - samples[right - 1] <= samples[right] - sample else right
            beat_id = int(stored["ids"][row])
            info = {"record": name, "sample": int(samples[row]), "time": float(stored["times"][row]),
                    "lead": stored["lead"], "symbol": stored["symbols"][row], "aami": stored["aami"][row],
                    "doubted": False}  # an index holds no doubted beat
            vector = index.vectors.reconstruct(beat_id)
            return query_embedding(index, vector, info, k, classes=classes,
                                   exclude_records=[name] if exclude_record else [], exclude_ids=[beat_id])
        path = confined_record(record, self.data_dir)
        return query_beat(index, str(path), sample, k, exclude_record=exclude_record, classes=classes, lead=lead)

    def stored_record(self, index: BeatIndex, name: str) -> dict | None:
        """A stored record's row and its beats (ids, samples, times, symbols, classes), read once
        per index generation; None if the index does not hold it."""
        key = f"{index.generation}:{name}"
        with self._stored_lock:
            if key in self._stored:
                return self._stored[key]
        row = index.catalog.record(name)
        if row is not None:
            beats = index.catalog.beats(record=name)
            order = np.argsort(beats["sample"].astype(np.int64), kind="stable")
            row = {**row, "ids": beats["id"].astype(np.int64)[order],
                   "samples": beats["sample"].astype(np.int64)[order],
                   "times": beats["time"].astype(float)[order], "symbols": list(beats["symbol"][order]),
                   "aami": list(beats["aami"][order])}
        with self._stored_lock:
            if len(self._stored) > 1000:
                self._stored.clear()
            self._stored[key] = row
        return row

    def query_signal(self, signal, fs: float, sample: int | None, k: int, classes: list[str] | None,
                     exclude_records: list[str]) -> QueryResult:
        return query_signal(self.index, signal, fs, sample, k, classes=classes, exclude_records=exclude_records)

    # ---------------------------------------------------------------- stored beats
    def stored_beat(self, beat_id: int) -> dict:
        """A stored beat's catalog row, RR context and window in mV (when its record is readable here)."""
        rows = self.index.catalog.beats(ids=np.array([beat_id], dtype=np.int64))
        beat = {key: _plain(values[0]) for key, values in rows.items()}
        self.neighbor_windows([beat])
        from .signals import window_grid

        beat["grid"] = window_grid()
        return beat

    def neighbor_windows(self, beats: list[dict]) -> None:
        """Add ``window`` (mV, see :func:`~simsearch.server.signals.beat_window`) and ``rr`` to
        stored beats (dicts with ``id``, ``record``, ``sample``), in place."""
        if not beats:
            return
        index = self.index
        rows = index.catalog.beats(ids=np.array([b["id"] for b in beats], dtype=np.int64))
        records = {}
        for i, beat in enumerate(beats):
            prev, nxt, local = (rows[c][i] for c in ("rr_prev", "rr_next", "rr_local"))
            beat["rr"] = rr_context(float(prev or 0), float(nxt or 0), float(local or 0))
            name = beat["record"]
            if name not in records:
                records[name] = index.catalog.record(name)
            stored = records[name]
            beat["window"] = None
            try:
                path = Path(stored["path"])
                if not any(inside(path.with_name(path.name + ".hea"), root) for root in self.roots):
                    raise RecordNotFoundError(f"{name}: its record file lies outside the served directories")
                signal, fs = self.signals.get(path, stored["lead"])
                beat["window"] = beat_window(signal, fs, int(beat["sample"]))
            except SimsearchError as exc:
                beat["window_error"] = str(exc)

    # ---------------------------------------------------------------- writing
    def add(self, annotation: Annotation) -> dict:
        """Add an annotated record to the index (one new generation), then serve the new generation."""
        with self.write_lock:
            with BeatIndex.updating(self.index_path, self.encoder) as writer:
                ids = add_to_index(writer, annotation)
            fresh = BeatIndex.open(self.index_path, self.encoder)
            old, self.index = self.index, fresh
            old.close()
        return {"added": int(ids.size), "record": annotation.record, "generation": fresh.generation,
                "beats_in_index": len(fresh)}


def _plain(value):
    return value.item() if hasattr(value, "item") else value
