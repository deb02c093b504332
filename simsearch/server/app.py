"""The HTTP API and the review page (FastAPI).

Every answer is JSON; queries answer in the command line's ``--json`` shape
(:meth:`~simsearch.label.query.QueryResult.to_dict`). Bad requests get a 4xx answer
``{"error": "..."}`` (one line, never a traceback): see :data:`ERROR_STATUS`.
"""

from __future__ import annotations

import hmac
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Body, FastAPI, Path as InPath, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..aami import AAMI_CLASSES
from ..errors import (
    AnnotationError,
    BeatNotFoundError,
    EncoderMismatchError,
    IndexBusyError,
    LeadNotFoundError,
    ParameterError,
    RecordFormatError,
    RecordNotFoundError,
    SampleOutOfRangeError,
    SignalQualityError,
    SimsearchError,
)
from ..label.query import MAX_K
from ..signal.records import MAX_FS, MIN_FS
from .paths import OutsideError
from .state import ServerState
from .uploads import UploadTooLargeError, receive_record
from .workspaces import NotReadyError

STATIC = Path(str(resources.files("simsearch") / "server" / "static"))
TOKEN_HEADER = "x-simsearch-token"
OPEN_PATHS = re.compile(r"^/(|static/.*|favicon\.ico|docs|docs/oauth2-redirect|redoc|openapi\.json)$")
"""What a browser fetches before the page can send the token: the page itself, its files, the API docs."""
MAX_BODY_BYTES = 64 << 20
"""Largest JSON body (a raw signal of a few minutes is a few MB); uploads have their own limit."""
MAX_SIGNAL_SAMPLES = 2_000_000
MAX_SUGGESTIONS = 500

ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (UploadTooLargeError, 413),
    (OutsideError, 403),
    (NotReadyError, 409),
    (IndexBusyError, 409),
    (EncoderMismatchError, 409),
    (BeatNotFoundError, 404),
    (RecordNotFoundError, 404),
    (ParameterError, 400),
    (LeadNotFoundError, 422),
    (SampleOutOfRangeError, 422),
    (SignalQualityError, 422),
    (RecordFormatError, 422),
    (AnnotationError, 422),
    (SimsearchError, 500),  # the index itself is unreadable or unwritable (IndexFormatError, IndexWriteError)
]
"""HTTP status of each simsearch error, first match wins."""


def status_of(exc: Exception) -> int:
    return next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 500)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split()) or "bad request"}, status_code=status)


class TokenGate:
    """ASGI middleware: every request but the page's own files carries the access token
    (``Authorization: Bearer TOKEN`` or ``X-Simsearch-Token: TOKEN``); bodies over
    :data:`MAX_BODY_BYTES` (uploads aside) are refused before they are read."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.token is not None and not OPEN_PATHS.match(path):
            given = headers.get(TOKEN_HEADER.encode(), b"")
            auth = headers.get(b"authorization", b"")
            if auth[:7].lower() == b"bearer ":
                given = auth[7:].strip()
            if not hmac.compare_digest(given, self.token):
                response = error(401, "missing or wrong access token: send 'Authorization: Bearer TOKEN' or "
                                      "'X-Simsearch-Token: TOKEN'")
                response.headers["WWW-Authenticate"] = "Bearer"
                return await response(scope, receive, send)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY_BYTES and not path.endswith("/upload"):
            return await error(413, f"request body over {MAX_BODY_BYTES} bytes")(scope, receive, send)
        return await self.app(scope, receive, send)


# ---------------------------------------------------------------- request bodies
Expert = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$",
                              description="Who gives the labels (kept with each label)")]


SAMPLE_MAX = 2**62
"""Largest sample number or beat id a request may give: any record's fits (10^18 samples), and numpy's
int64, where the numbers go, holds it; a larger one is refused as invalid (422), not overflowed (500)."""
PathNumber = Annotated[int, InPath(ge=0, le=SAMPLE_MAX)]
"""A sample number or beat id in a URL's path, bounded by :data:`SAMPLE_MAX`."""


class SignalQuery(BaseModel):
    signal: list[float] = Field(description="One lead in mV, a few seconds or more", max_length=MAX_SIGNAL_SAMPLES)
    # checked against the range where the query is answered (check_sampling_rate), so that every refusal of a rate
    # names it the same way, whichever route a signal comes by
    fs: float = Field(gt=0, description=f"Sampling rate in Hz, {MIN_FS:g} to {MAX_FS:g}")
    sample: int | None = Field(None, ge=0, le=SAMPLE_MAX,
                               description="The beat nearest this sample (within 150 ms); default the beat with "
                                           "the largest QRS")
    k: int = Field(10, ge=1, le=MAX_K)
    classes: list[str] | None = None
    exclude_records: list[str] = Field(default_factory=list, max_length=1000)


class OpenRecord(BaseModel):
    record: str = Field(description="Record path relative to the data directory, e.g. '100' or 'holter/rec1'",
                        max_length=1024)
    lead: str | None = Field(None, max_length=64)
    beats: Literal["detect", "reference"] = "detect"
    by: Expert = "expert"


class LabelItem(BaseModel):
    sample: int = Field(ge=0, le=SAMPLE_MAX, description="Sample of the beat at the record's rate (the beat within "
                                                         "150 ms)")
    label: str | None = Field(description="AAMI class or MIT-BIH symbol; null or '' removes the expert label",
                                 max_length=4)


class Labels(BaseModel):
    labels: list[LabelItem] = Field(min_length=1, max_length=100_000)
    by: Expert = "expert"


class Who(BaseModel):
    by: Expert = "expert"


class ExportRequest(BaseModel):
    ext: str = Field("pred", max_length=16, description="Extension of the WFDB annotation file (never atr)")
    by: Expert = "expert"


def expert_name(by: str) -> str:
    """``by`` if it can name who labeled (1 to 64 printable characters), as JSON bodies require."""
    if not isinstance(by, str) or not 1 <= len(by) <= 64 or not by.isprintable():
        raise ParameterError(f"by {str(by)[:80]!r}: expected who labels, 1 to 64 printable characters")
    return by


def class_list(classes: str | list[str] | None) -> list[str] | None:
    if classes is None:
        return None
    parts = classes.split(",") if isinstance(classes, str) else classes
    wanted = list(dict.fromkeys(str(c).strip().upper() for c in parts if str(c).strip()))
    unknown = [c for c in wanted if c not in AAMI_CLASSES]
    if not wanted or unknown:
        raise ParameterError(f"classes {classes!r}: expected a comma list of {', '.join(AAMI_CLASSES)}")
    return wanted


# ---------------------------------------------------------------- the app
def create_app(state: ServerState, token: str | None = None) -> FastAPI:
    """The API and the page over ``state``; with ``token``, every API request must carry it."""
    app = FastAPI(title="simsearch", version=__version__,
                  description="Similarity search for ECG heartbeats: queries, and review workspaces where an expert "
                              "labels a record. Errors answer {\"error\": \"...\"}.")
    app.state.simsearch = state

    @app.exception_handler(SimsearchError)
    async def _simsearch_error(request: Request, exc: SimsearchError):
        return error(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for item in exc.errors()[:3]:
            where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body",)) or "body"
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if exc.status_code != 404 else f"not found: {request.url.path}"
        return error(exc.status_code, str(message))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        if isinstance(exc, (MemoryError,)):
            return error(507, "out of memory")
        if isinstance(exc, OSError):
            return error(500, f"storage error ({exc.strerror or type(exc).__name__})")
        return error(500, f"internal error ({type(exc).__name__})")

    # ------------------------------------------------------------ page
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ------------------------------------------------------------ index and queries
    @app.get("/api/info", summary="What the index holds, and what this server serves")
    def info():
        details = state.index.info()
        details["server"] = {"version": __version__, "data_dir": str(state.data_dir) if state.data_dir else None,
                             "workspace_dir": str(state.workspace_dir), "max_upload_bytes": state.max_upload_bytes,
                             "classes": list(AAMI_CLASSES)}
        return JSONResponse(details)

    @app.get("/api/query", summary="Nearest labeled beats of a beat of a record (the CLI's query --json)")
    def query(record: Annotated[str, Query(max_length=1024, description="A record of the index, or a path "
                                                                           "relative to the data directory")],
              sample: Annotated[int, Query(ge=0, le=SAMPLE_MAX, description="Sample at the record's rate "
                                                                              "(nearest beat)")],
              k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
              exclude_record: bool = False,
              classes: Annotated[str | None, Query(max_length=64, description="e.g. S,V")] = None,
              lead: Annotated[str | None, Query(max_length=64)] = None):
        result = state.query(record, sample, k, exclude_record=exclude_record, classes=class_list(classes), lead=lead)
        return JSONResponse(result.to_dict())

    @app.post("/api/query/signal", summary="Nearest labeled beats of a beat in a raw signal (mV at fs)")
    def query_signal(body: SignalQuery):
        result = state.query_signal(body.signal, body.fs, body.sample, body.k, class_list(body.classes),
                                    body.exclude_records)
        return JSONResponse(result.to_dict())

    @app.get("/api/beats/{beat_id}", summary="A stored beat: catalog row, RR context, window in mV")
    def stored_beat(beat_id: PathNumber):
        return JSONResponse(state.stored_beat(beat_id))

    # ------------------------------------------------------------ workspaces
    ws = state.workspaces

    @app.get("/api/workspaces", summary="Every review workspace: record, state, who labeled what, when")
    def list_workspaces():
        return JSONResponse({"workspaces": ws.list()})

    @app.post("/api/workspaces", status_code=202, summary="Open a record of the data directory for review")
    def open_record(body: OpenRecord):
        from .paths import confined_record

        path = confined_record(body.record, state.data_dir)
        from ..signal.records import check_record

        check_record(path, lead=body.lead, annotations="atr" if body.beats == "reference" else None)
        relative = path.relative_to(state.data_dir).as_posix() if path.is_relative_to(state.data_dir) else \
            body.record
        workspace = ws.create(path.name, {"kind": "data", "path": relative}, body.lead, body.beats, body.by)
        return JSONResponse(workspace.describe(), status_code=202)

    @app.post("/api/workspaces/upload", status_code=202,
              summary="Upload a WFDB record (multipart: files = .hea + signal files [+ .atr]; lead, beats, by)")
    async def upload_record(request: Request):
        directory, name, fields = await receive_record(request, ws.tmp, state.max_upload_bytes)
        try:  # the form's other fields are checked only now: a refused one leaves no upload behind
            workspace = ws.create(name, {"kind": "upload", "path": f"record/{name}"}, fields.get("lead") or None,
                                  fields.get("beats") or "detect", expert_name(fields.get("by") or "expert"),
                                  upload_dir=directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return JSONResponse(workspace.describe(), status_code=202)

    @app.get("/api/workspaces/{wid}", summary="A workspace: status, record, summary, expert labels, history")
    def workspace(wid: str):
        return JSONResponse(ws.get(wid).describe())

    @app.get("/api/workspaces/{wid}/status", summary="Progress while the record is read and labeled")
    def workspace_status(wid: str):
        w = ws.get(wid)
        return JSONResponse({"id": w.id, **w.status})

    @app.get("/api/workspaces/{wid}/signal", summary="The record from start to end (s), raw or min/max per bucket")
    def workspace_signal(wid: str, start: float = 0.0, end: float | None = None,
                         points: Annotated[int, Query(ge=1, le=8000)] = 2000):
        w = ws.get(wid)
        live = w.ready()
        stop = end if end is not None else live.record.n_samples / live.record.fs
        return JSONResponse(w.strip(start, stop, points))

    @app.get("/api/workspaces/{wid}/beats", summary="Beats between start and end (s): label, confidence, source, RR")
    def workspace_beats(wid: str, start: float = 0.0, end: float = 1e12,
                        limit: Annotated[int, Query(ge=1, le=200_000)] = 5000, flagged: bool = False):
        return JSONResponse(ws.get(wid).beats(start, end, limit, flagged))

    @app.get("/api/workspaces/{wid}/beats/{sample}",
             summary="One beat: label, scores, RR context, window in mV, neighbors of other records with theirs")
    def workspace_beat(wid: str, sample: PathNumber, k: Annotated[int, Query(ge=1, le=50)] = 8):
        return JSONResponse(ws.get(wid).beat(sample, k, state))

    @app.post("/api/workspaces/{wid}/labels", summary="Store expert labels (kept on disk at once)")
    def set_labels(wid: str, body: Labels):
        items = [(item.sample, item.label) for item in body.labels]
        return JSONResponse(ws.get(wid).set_labels(items, body.by))

    @app.delete("/api/workspaces/{wid}/labels/{sample}", summary="Remove an expert label")
    def remove_label(wid: str, sample: PathNumber, by: Annotated[str, Query(max_length=64)] = "expert"):
        return JSONResponse(ws.get(wid).set_labels([(sample, None)], expert_name(by)))

    @app.get("/api/workspaces/{wid}/suggestions", summary="Beats to label next (the --suggest ranking)")
    def suggestions(wid: str, n: Annotated[int, Query(ge=1, le=MAX_SUGGESTIONS)] = 10):
        return JSONResponse({"suggestions": ws.get(wid).suggestions(n)})

    @app.post("/api/workspaces/{wid}/propagate", summary="Spread the expert labels; what changed")
    def propagate(wid: str, body: Annotated[Who, Body()] = Who()):
        return JSONResponse(ws.get(wid).propagate(body.by))

    @app.post("/api/workspaces/{wid}/export", summary="Write the WFDB annotation file, CSV and JSON")
    def export(wid: str, body: Annotated[ExportRequest, Body()] = ExportRequest()):
        return JSONResponse(ws.get(wid).export(body.ext, body.by))

    @app.get("/api/workspaces/{wid}/files/{name}", summary="Download an exported file")
    def exported_file(wid: str, name: str):
        path = ws.get(wid).export_file(name)
        return FileResponse(path, filename=path.name, media_type="application/octet-stream")

    @app.post("/api/workspaces/{wid}/add-to-index",
              summary="Store the labeled record in the index (expert / propagated provenance)")
    def add(wid: str, body: Annotated[Who, Body()] = Who()):
        w = ws.get(wid)
        with w.lock:
            annotation = w.current(body.by)
            report = state.add(annotation)
            w.event("add-to-index", body.by, added=report["added"], generation=report["generation"])
            w.save()
        return JSONResponse(report)

    app.add_middleware(TokenGate, token=token)
    return app
