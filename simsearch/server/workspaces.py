"""Review workspaces: one record being labeled by an expert, kept on disk as it goes.

A workspace is a directory ``WORKSPACE_DIR/<id>/`` holding ``workspace.json`` (the
record it reviews, every expert label with who gave it and when, what happened), an
uploaded record under ``record/`` when it came from the browser, and the exported files
under ``export/``. ``workspace.json`` is rewritten whole under a temporary name and moved
into place (:func:`atomic_json`) after every change, so a reload of the page or a restart
of the server loses nothing.

What is costly (reading, detecting, embedding, searching the index) is done once per
record by a background worker (:meth:`Workspaces.prepare`) and kept in memory; labels,
propagation and suggestions are then pure functions of it
(:func:`~simsearch.label.annotate.assemble`). After a restart a workspace is prepared
again when it is first opened, its stored labels applied.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..aami import AAMI_CLASSES
from ..errors import AnnotationError, ParameterError, RecordNotFoundError, SampleOutOfRangeError, SimsearchError
from ..files import atomic_write
from ..label.annotate import (
    LOW_CONFIDENCE,
    Annotation,
    Prepared,
    assemble,
    neighbor_refs,
    prepare,
    read_beats,
    suggested_rows,
    summary as annotation_summary,
)
from ..label.expert import EXPERT_TOLERANCE_S, expert_rows, match_samples, parse_label
from ..label.export import check_extension, write_annotation
from ..label.query import query_embedding
from ..signal.beats import CONTEXT_COLUMNS
from ..signal.records import Record
from .paths import confined_record, inside, safe_name
from .signals import beat_window, strip, window_grid

DOCUMENT = "workspace.json"
MAX_EVENTS = 1000
"""Events kept in a workspace's history (labels stay, however many)."""
MAX_SWITCHED = 500
"""Beats listed one by one in a propagation's report (all are counted)."""
_RR = {name: CONTEXT_COLUMNS.index(name) for name in ("rr_prev", "rr_next", "rr_local")}


def _shown_label(given: tuple[str, str] | None) -> str:
    """An item of a label request in an error line: its symbol, or "no label" (a removal)."""
    return "no label" if given is None else repr(given[1])


class NotReadyError(SimsearchError):
    """The workspace's record is still being read and labeled (or failed)."""


class WorkspaceNotFoundError(RecordNotFoundError):
    """No workspace with that id."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def atomic_json(path: Path, document: dict) -> None:
    """Write ``document`` to ``path`` atomically (see :func:`simsearch.files.atomic_write`)."""
    atomic_write(path, json.dumps(document, indent=1))


@dataclass
class Live:
    """A prepared workspace in memory: the record, its embeddings and graph, the last propagation."""

    record: Record
    prepared: Prepared
    annotation: Annotation
    propagated_version: int


class Workspace:
    """One record under review; every method holds the workspace's lock."""

    def __init__(self, directory: Path, document: dict):
        self.dir = directory
        self.doc = document
        self.lock = threading.RLock()
        self.status = {"state": "queued", "progress": 0.0, "message": "waiting", "error": None}
        self.live: Live | None = None

    @property
    def id(self) -> str:
        return self.doc["id"]

    def save(self) -> None:
        atomic_json(self.dir / DOCUMENT, self.doc)

    def event(self, action: str, by: str, **details) -> None:
        self.doc["events"].append({"at": now(), "by": by, "action": action, **details})
        del self.doc["events"][:-MAX_EVENTS]

    # ---------------------------------------------------------------- describing
    def brief(self) -> dict:
        labels = self.doc["labels"].values()
        last = max((e["at"] for e in labels), default=None)
        return {"id": self.id, "record": self.doc["record"], "source": self.doc["source"]["kind"],
                "created": self.doc["created"], "created_by": self.doc["created_by"],
                "state": self.status["state"], "expert_labels": len(self.doc["labels"]),
                "labeled_by": sorted({e["by"] for e in labels}), "last_labeled": last}

    def describe(self) -> dict:
        out = {**self.brief(), "status": dict(self.status), "lead": self.doc["lead"], "beats": self.doc["beats"],
               "labels": self.label_list(), "events": self.doc["events"][-50:],
               "labels_version": self.doc["labels_version"]}
        live = self.live
        if live is not None:
            rec = live.record
            out["signal"] = {"fs": rec.fs, "n_samples": rec.n_samples, "duration_s": rec.n_samples / rec.fs,
                             "lead": rec.lead, "units": "mV",
                             "gaps_s": [] if rec.gaps is None else np.round(rec.gaps / rec.fs, 3).tolist()}
            out["summary"] = self.summary()
            out["pending_propagation"] = self.doc["labels_version"] != live.propagated_version
        return out

    def label_list(self) -> list[dict]:
        return [{"sample": int(s), **e, "label_source": "expert"}
                for s, e in sorted(self.doc["labels"].items(), key=lambda kv: int(kv[0]))]

    def ready(self) -> Live:
        if self.live is None:
            state = self.status["state"]
            if state == "failed":
                raise NotReadyError(f"workspace {self.id}: the record could not be prepared: {self.status['error']}")
            raise NotReadyError(f"workspace {self.id} is still being prepared ({state}, "
                                f"{self.status['progress']:.0%}): wait for its status to be 'ready'")
        return self.live

    # ---------------------------------------------------------------- per-beat views
    def view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(labels, symbols, label sources, confidence) per beat: the last propagation with
        every expert label given since laid over it."""
        with self.lock:  # labels may be given meanwhile
            live = self.ready()
            ann = live.annotation
            rows = self._rows_of_labels(live)
            entries = [self.doc["labels"][s] for s in rows]
        labels, symbols = ann.labels.copy(), ann.symbols.copy()
        # the expert labels are those of the workspace now (one may have been removed since the propagation)
        source = np.where(ann.label_source == "expert", "propagated", ann.label_source).astype("<U10")
        confidence = ann.confidence.copy()
        if rows:
            where = np.array(list(rows.values()), dtype=np.int64)
            labels[where] = [e["label"] for e in entries]
            symbols[where] = [e["symbol"] for e in entries]
            source[where], confidence[where] = "expert", 1.0
        return labels, symbols, source, confidence

    def _rows_of_labels(self, live: Live) -> dict[str, int]:
        keys = list(self.doc["labels"])
        if not keys:
            return {}
        rows = np.searchsorted(live.annotation.samples, np.array([int(k) for k in keys], dtype=np.int64))
        return {k: int(r) for k, r in zip(keys, rows)}

    def summary(self) -> dict:
        """``annotate``'s summary of the view (:meth:`view`: expert labels given since the propagation
        applied), without the low-confidence beats' samples (the page asks for them by stretch: :meth:`beats`)."""
        ann = self.ready().annotation
        labels, symbols, source, confidence = self.view()
        counted = annotation_summary(replace(ann, labels=labels, symbols=symbols, label_source=source,
                                             confidence=confidence))
        del counted["low_confidence"]["samples"]
        return {**counted, "encoder": ann.encoder}

    def beats(self, start_s: float, end_s: float, limit: int, flagged_only: bool = False) -> dict:
        """Per-beat columns of the beats between ``start_s`` and ``end_s`` (at most ``limit``)."""
        live = self.ready()
        if not (np.isfinite(start_s) and np.isfinite(end_s)) or end_s < start_s:
            raise ParameterError(f"beats: end ({end_s}) must not come before start ({start_s})")
        labels, symbols, source, confidence = self.view()
        ann = live.annotation
        lo, hi = np.searchsorted(ann.times, [start_s, end_s])
        rows = np.arange(lo, hi)
        if flagged_only:
            rows = rows[(labels[rows] != "N") | (confidence[rows] < LOW_CONFIDENCE) | (source[rows] == "expert")]
        total = int(rows.size)
        rows = rows[:limit]
        context = ann.beats.context
        return {"total": total, "truncated": total > rows.size, "low_confidence": LOW_CONFIDENCE,
                "sample": ann.samples[rows].tolist(), "time": np.round(ann.times[rows], 4).tolist(),
                "label": labels[rows].tolist(), "symbol": symbols[rows].tolist(),
                "label_source": source[rows].tolist(), "confidence": np.round(confidence[rows], 4).tolist(),
                "rr_prev": np.round(context[rows, _RR["rr_prev"]].astype(float), 4).tolist(),
                "rr_next": np.round(context[rows, _RR["rr_next"]].astype(float), 4).tolist()}

    def row_of(self, sample: int) -> int:
        live = self.ready()
        rows = match_samples(live.annotation.samples, np.array([sample]), EXPERT_TOLERANCE_S * live.record.fs)
        if rows[0] < 0:
            raise SampleOutOfRangeError(f"{self.doc['record']}: no beat within {EXPERT_TOLERANCE_S * 1000:.0f} ms "
                                        f"of sample {sample}")
        return int(rows[0])

    def beat(self, sample: int, k: int, state) -> dict:  # state: the server's ServerState (it imports this module)
        """One beat: its label, scores, RR context, window in mV, and its nearest labeled
        beats of other records (the CLI's query JSON), each with its window and RR context."""
        live = self.ready()
        row = self.row_of(sample)
        ann = live.annotation
        labels, symbols, source, confidence = self.view()
        info = {"record": ann.record, "sample": int(ann.samples[row]), "time": round(float(ann.times[row]), 4),
                "lead": ann.lead, "symbol": str(symbols[row]), "aami": str(labels[row]),
                "doubted": bool(ann.beats.doubted[row])}
        result = query_embedding(state.index, ann.embeddings[row], info, k, exclude_records=[ann.record]).to_dict()
        context = ann.beats.context[row]
        result["beat"] = {**info, "row": row, "label": str(labels[row]), "label_source": str(source[row]),
                          "confidence": round(float(confidence[row]), 4),
                          "scores": {c: round(float(v), 4) for c, v in zip(AAMI_CLASSES, ann.scores[row])},
                          "rr": rr_context(*(float(context[_RR[n]]) for n in ("rr_prev", "rr_next", "rr_local"))),
                          "window": beat_window(live.record.signal, live.record.fs, int(ann.samples[row])),
                          "expert": self.doc["labels"].get(str(int(ann.samples[row])))}
        state.neighbor_windows(result["neighbors"])
        result["grid"] = window_grid()
        return result

    def strip(self, start_s: float, end_s: float, points: int) -> dict:
        live = self.ready()
        return strip(live.record.signal, live.record.fs, start_s, end_s, points)

    # ---------------------------------------------------------------- the expert's work
    def set_labels(self, items: list[tuple[int, str | None]], by: str) -> dict:
        """Store expert labels (``None`` removes one) by beat; written to disk before returning.

        All or nothing: every item is checked (a beat within reach, a known label, no beat given two labels, as the
        command line's labels file) before any is stored."""
        with self.lock:
            live = self.ready()
            wanted: dict[str, tuple[str, str] | None] = {}
            for sample, label in items:
                key = str(int(live.annotation.samples[self.row_of(int(sample))]))
                given = None if label is None or str(label).strip() == "" else parse_label(label)
                if key in wanted and wanted[key] != given:
                    raise AnnotationError(f"{self.doc['record']}: the beat at sample {key} is labeled twice in one "
                                          f"request ({_shown_label(wanted[key])} and {_shown_label(given)})")
                wanted[key] = given
            changes = []
            for key, given in wanted.items():
                if given is None:
                    if self.doc["labels"].pop(key, None) is not None:
                        changes.append({"sample": int(key), "label": None})
                    continue
                aami, symbol = given
                self.doc["labels"][key] = {"label": aami, "symbol": symbol, "by": by, "at": now()}
                changes.append({"sample": int(key), "label": aami, "symbol": symbol})
            if changes:
                self.doc["labels_version"] += 1
                self.event("label", by, changes=changes[:100], count=len(changes))
                self.save()
            return {"changed": changes, "labels": self.label_list(), "summary": self.summary(),
                    "pending_propagation": self.doc["labels_version"] != live.propagated_version}

    def suggestions(self, n: int) -> list[dict]:
        """The beats to label next (the ``--suggest`` ranking), never one already labeled."""
        live = self.ready()
        labels, _, source, confidence = self.view()
        ann = live.annotation
        rows = suggested_rows(ann, n, expert_mask=source == "expert")
        context = ann.beats.context
        return [{"sample": int(ann.samples[r]), "time": round(float(ann.times[r]), 3), "label": str(labels[r]),
                 "confidence": round(float(confidence[r]), 4),
                 "rr": rr_context(*(float(context[r, _RR[c]]) for c in ("rr_prev", "rr_next", "rr_local")))}
                for r in rows]

    def propagate(self, by: str) -> dict:
        """Spread the expert labels over the record again; report what changed."""
        with self.lock:
            live = self.ready()
            before, _, _, _ = self.view()
            expert = {int(s): e["symbol"] for s, e in self.doc["labels"].items()}
            rows, classes, symbols = expert_rows(live.prepared.beats, expert)
            annotation = assemble(live.prepared, rows, classes, symbols)
            annotation.neighbors = live.annotation.neighbors
            live.annotation, live.propagated_version = annotation, self.doc["labels_version"]
            after = annotation.labels
            switched = np.flatnonzero(before != after)
            report = {"expert_labels": int(rows.size),
                      "counts_before": {c: int((before == c).sum()) for c in AAMI_CLASSES},
                      "counts_after": {c: int((after == c).sum()) for c in AAMI_CLASSES},
                      "switched_count": int(switched.size),
                      "switched": [{"sample": int(annotation.samples[r]), "time": round(float(annotation.times[r]), 3),
                                    "from": str(before[r]), "to": str(after[r])} for r in switched[:MAX_SWITCHED]]}
            self.doc["propagations"] += 1
            self.event("propagate", by, expert_labels=report["expert_labels"], switched=report["switched_count"])
            self.save()
            return {**report, "summary": self.summary()}

    def current(self, by: str) -> Annotation:
        """The annotation with every expert label given so far (propagated again if labels changed)."""
        with self.lock:
            live = self.ready()
            if self.doc["labels_version"] != live.propagated_version:
                self.propagate(by)
            return live.annotation

    def export(self, ext: str, by: str) -> dict:
        ext = check_extension(ext)
        with self.lock:
            annotation = self.current(by)
            paths = write_annotation(annotation, self.dir / "export", ext)
            self.event("export", by, ext=ext)
            self.save()
        return {"files": {kind: p.name for kind, p in paths.items()},
                "urls": {kind: f"/api/workspaces/{self.id}/files/{p.name}" for kind, p in paths.items()}}

    def export_file(self, name: str) -> Path:
        name = safe_name(name, "file name")
        path = self.dir / "export" / name
        if not path.is_file() or not inside(path, self.dir / "export"):
            raise RecordNotFoundError(f"workspace {self.id} has no exported file {name!r} (export first)")
        return path


def rr_context(prev: float, nxt: float, local: float) -> dict:
    """RR intervals around a beat (s), heart rate, and prematurity (previous RR over the local median)."""
    return {"prev_s": round(prev, 4), "next_s": round(nxt, 4), "local_s": round(local, 4),
            "heart_rate_bpm": round(60.0 / prev, 1) if prev > 0 else None,
            "prematurity": round(prev / local, 3) if local > 0 else None}


class Workspaces:
    """Every workspace under one directory, and the one worker that prepares them in turn."""

    def __init__(self, root: Path, state):  # state: the server's ServerState (it imports this module)
        self.root = Path(root)
        self.state = state
        self.root.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, Workspace] = {}
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsearch-prepare")

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    @property
    def tmp(self) -> Path:
        path = self.root / ".tmp"
        path.mkdir(exist_ok=True)
        return path

    # ---------------------------------------------------------------- creating and finding
    def create(self, record: str, source: dict, lead: str | None, beats: str, by: str,
               upload_dir: Path | None = None) -> Workspace:
        if beats not in ("detect", "reference"):
            raise ParameterError(f"beats must be detect or reference, not {beats!r}")
        wid = uuid.uuid4().hex[:12]
        directory = self.root / wid
        directory.mkdir()
        if upload_dir is not None:
            shutil.move(str(upload_dir), directory / "record")
        document = {"format": 1, "id": wid, "record": record, "source": source, "lead": lead, "beats": beats,
                    "created": now(), "created_by": by, "labels": {}, "labels_version": 0, "propagations": 0,
                    "events": []}
        workspace = Workspace(directory, document)
        workspace.event("open", by, record=record, source=source["kind"])
        workspace.save()
        with self._lock:
            self._open[wid] = workspace
        self._submit(workspace)
        return workspace

    def get(self, wid: str) -> Workspace:
        if not isinstance(wid, str) or not wid.isalnum() or len(wid) > 32:
            raise WorkspaceNotFoundError(f"no workspace {str(wid)[:40]!r}")
        with self._lock:
            workspace = self._open.get(wid)
            if workspace is None:
                workspace = self._load(wid)
                self._open[wid] = workspace
                start = True
            else:
                start = False
        if start:
            self._submit(workspace)
        return workspace

    def list(self) -> list[dict]:
        found = []
        for directory in sorted(self.root.iterdir()):
            if directory.name.startswith(".") or not (directory / DOCUMENT).is_file():
                continue
            with self._lock:
                workspace = self._open.get(directory.name)
            if workspace is None:
                try:
                    workspace = self._load(directory.name)
                    workspace.status = {"state": "stored", "progress": 0.0, "message": "not opened since the start",
                                        "error": None}
                except SimsearchError:
                    continue
            found.append(workspace.brief())
        return sorted(found, key=lambda w: w["created"], reverse=True)

    def _load(self, wid: str) -> Workspace:
        directory = self.root / wid
        path = directory / DOCUMENT
        if not path.is_file():
            raise WorkspaceNotFoundError(f"no workspace {wid!r}")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AnnotationError(f"workspace {wid}: {DOCUMENT} cannot be read ({exc})") from None
        if not isinstance(document, dict) or document.get("id") != wid or not isinstance(document.get("labels"), dict):
            raise AnnotationError(f"workspace {wid}: {DOCUMENT} is not a workspace")
        return Workspace(directory, document)

    # ---------------------------------------------------------------- preparing
    def record_path(self, workspace: Workspace) -> Path:
        source = workspace.doc["source"]
        if source["kind"] == "data":
            return confined_record(source["path"], self.state.data_dir)
        path = workspace.dir / "record" / safe_name(workspace.doc["record"], "record name")
        if not inside(path.with_name(path.name + ".hea"), workspace.dir):
            raise RecordNotFoundError(f"workspace {workspace.id}: its uploaded record is missing")
        return path

    def _submit(self, workspace: Workspace) -> None:
        workspace.status = {"state": "queued", "progress": 0.0, "message": "waiting for the worker", "error": None}
        self._worker.submit(self.prepare, workspace)

    def prepare(self, workspace: Workspace) -> None:
        """Read, detect, embed, search and propagate (the background task); status says how far."""
        def step(state: str, progress: float, message: str) -> None:
            workspace.status = {"state": state, "progress": progress, "message": message, "error": None}

        try:
            doc = workspace.doc
            step("reading", 0.05, f"reading {doc['record']} and finding its beats")
            loaded, found, _ = read_beats(self.record_path(workspace), lead=doc["lead"], beats=doc["beats"])
            step("embedding", 0.35, f"{len(found)} beats: embedding and searching the index")
            expert = {int(s): e["symbol"] for s, e in doc["labels"].items()}
            rows, classes, symbols = expert_rows(found, expert)
            index = self.state.index
            prepared = prepare(index, loaded, found, self.state.vote_k)
            step("labeling", 0.85, "spreading labels over the record")
            annotation = assemble(prepared, rows, classes, symbols)
            annotation.neighbors = neighbor_refs(index, prepared.neighbor_ids)
            record = Record(loaded.name, loaded.path, loaded.signal.astype(np.float32), loaded.fs, loaded.lead,
                            gaps=loaded.gaps)
            with workspace.lock:
                workspace.live = Live(record, prepared, annotation, doc["labels_version"])
            step("ready", 1.0, f"{len(found)} beats labeled")
        except SimsearchError as exc:
            workspace.status = {"state": "failed", "progress": 1.0, "message": "failed", "error": str(exc)}
        except Exception as exc:  # a bug: said in one line, the server goes on
            workspace.status = {"state": "failed", "progress": 1.0, "message": "failed",
                                "error": f"internal error ({type(exc).__name__}: {exc})"}
