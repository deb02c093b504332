"""A record uploaded from the browser: streamed to a temporary directory, size-limited, read as WFDB.

The multipart body is parsed as it arrives (python-multipart's streaming parser) into
``WORKSPACE_DIR/.tmp/<random>/``, never into the system's temporary directory, and the
upload stops as soon as it passes the size limit. The files must be plain names (a
``.hea`` header and the signal files it names, optionally a ``.atr``); the record is then
read with :func:`~simsearch.signal.records.load_record` there. Only a record that reads is
moved into a workspace; anything else is removed.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import ParameterError, RecordFormatError, SimsearchError
from ..signal.records import check_record, load_record
from .paths import check_record_files, safe_name

MAX_FILES = 8
MAX_FIELD_BYTES = 256
FIELDS = ("lead", "beats", "by")


class UploadTooLargeError(ParameterError):
    """The upload is over the server's limit."""


class Upload:
    """The files and form fields of one multipart upload, written under ``directory``."""

    def __init__(self, directory: Path, limit: int):
        self.directory = directory
        self.limit = limit
        self.files: dict[str, int] = {}
        self.fields: dict[str, str] = {}
        self._headers: dict[str, str] = {}
        self._field = self._value = b""
        self._out = None
        self._name: str | None = None
        self._text: bytearray | None = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done, "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers, self._field, self._value = {}, b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("latin-1")
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        field = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None:
            name = safe_name(Path(filename.decode("utf-8", "replace")).name, "uploaded file name")
            if name in self.files:
                raise ParameterError(f"file {name!r} uploaded twice")
            if len(self.files) >= MAX_FILES:
                raise ParameterError(f"at most {MAX_FILES} files per upload (a .hea, its signal files, a .atr)")
            self.files[name] = 0
            # open across the parser's calls, closed when its part ends (or by close())
            self._name, self._out, self._text = name, open(self.directory / name, "xb"), None  # noqa: SIM115
        elif field in FIELDS:
            self._name, self._out, self._text = field, None, bytearray()
        else:
            raise ParameterError(f"unexpected form field {field[:40]!r} (expected files, {', '.join(FIELDS)})")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._out is not None:
            self._out.write(data[start:end])
            self.files[self._name] += end - start
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise ParameterError(f"form field {self._name!r} is too long")

    def _end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        elif self._text is not None:
            self.fields[self._name] = self._text.decode("utf-8", "replace").strip()
            self._text = None

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def receive_record(request: Request, tmp_root: Path, limit: int) -> tuple[Path, str, dict[str, str]]:
    """Stream a multipart upload into a new directory under ``tmp_root`` and read the record there.

    Returns (directory, record name, form fields). The caller moves the directory into a
    workspace; on any error it is removed here.

    Raises
    ------
    UploadTooLargeError
        Over ``limit`` bytes (announced or received).
    ParameterError
        Not multipart, no single ``.hea``, bad file names.
    RecordFormatError, RecordNotFoundError, SignalQualityError, LeadNotFoundError
        The files do not make a WFDB record simsearch can read.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ParameterError("upload a record as multipart/form-data: the .hea and its signal files as 'files'")
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise UploadTooLargeError(f"upload of {int(announced)} bytes is over the limit of {limit} bytes")
    directory = tmp_root / uuid.uuid4().hex
    directory.mkdir()
    upload = Upload(directory, limit)
    try:
        parser = MultipartParser(params[b"boundary"], upload.callbacks())
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise UploadTooLargeError(f"upload is over the limit of {limit} bytes")
                parser.write(chunk)
            parser.finalize()
        except ParseError as exc:
            raise ParameterError(f"the upload is not multipart/form-data as its boundary says ({exc})") from None
        upload.close()
        headers = [n for n in upload.files if n.endswith(".hea")]
        if len(headers) != 1:
            raise ParameterError(f"upload one WFDB header (.hea) with its signal files, not {len(headers)} headers "
                                 f"({', '.join(sorted(upload.files)) or 'no files'})")
        name = safe_name(headers[0][: -len(".hea")], "record name")
        record = directory / name
        lead = upload.fields.get("lead") or None
        await run_in_threadpool(_validate, record, directory, lead, upload.fields.get("beats") == "reference")
        return directory, name, upload.fields
    except BaseException:
        upload.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _validate(record: Path, directory: Path, lead: str | None, needs_annotations: bool) -> None:
    """Read the record where it was uploaded: its header, signal files and lead, its annotations if any."""
    check_record_files(record, directory)
    try:
        check_record(record, lead=lead)
        load_record(record, lead=lead, annotations=None)
    except SimsearchError:
        raise
    except Exception as exc:  # wfdb's own failures on hostile files
        raise RecordFormatError(f"{record.name}: not a WFDB record simsearch can read ({type(exc).__name__})") from None
    if needs_annotations and not record.with_name(record.name + ".atr").is_file():
        raise ParameterError(f"{record.name}: beats=reference needs {record.name}.atr in the upload")
