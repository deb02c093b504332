"""Where the server may read and write: records confined to the data directory, names that are names.

Every path a request names is relative to a served directory; it is resolved (symbolic
links followed) and refused unless it stays inside. A record's header, signal files and
annotation file are each checked, so a symbolic link inside the data directory that
points out of it is refused as well.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from ..errors import ParameterError, RecordNotFoundError
from ..signal.records import exists_as

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", re.ASCII)
"""A file or record name a client may give: no separators, no leading dot, no spaces."""


class OutsideError(ParameterError):
    """A path that leaves the directory it must stay in (traversal, absolute, a link out)."""


def inside(path: Path, root: Path) -> bool:
    """True if ``path``, symbolic links resolved, is ``root`` or lies under it."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))
    except (OSError, ValueError):
        return False


def safe_name(text: str, what: str = "name") -> str:
    """``text`` if it is a plain file name (letters, digits, ``_.+-``; no leading dot)."""
    if not isinstance(text, str) or not SAFE_NAME.fullmatch(text) or ".." in text:
        raise ParameterError(f"{what} {str(text)[:80]!r} is not a plain name (letters, digits, '_', '.', '+', '-'; "
                             "at most 64 characters, not starting with a dot)")
    return text


def confined_record(text: str, root: Path | None) -> Path:
    """The record ``text`` names inside the data directory ``root``, as an absolute path (no extension).

    ``text`` is a path relative to ``root`` (``100``, ``holter/rec1``, ``holter/rec1.hea``),
    written with ``/``. Absolute paths, ``..``, ``~``, backslashes and NUL bytes are
    refused, and so is a record whose files (links resolved) lie outside ``root``.

    Raises
    ------
    OutsideError
        The path leaves ``root``.
    RecordNotFoundError
        No data directory is served, or no such record is in it.
    """
    if root is None:
        raise RecordNotFoundError("this server has no data directory (start it with --data-dir or $SIMSEARCH_DATA)")
    raw = str(text)
    shown = raw[:120]
    if not raw.strip() or "\x00" in raw or "\\" in raw:
        raise OutsideError(f"record path {shown!r} is not a path inside the data directory")
    pure = PurePosixPath(raw.strip())
    if pure.is_absolute() or raw.startswith("~") or re.match(r"^[A-Za-z]:", raw):
        raise OutsideError(f"record path {shown!r} is absolute: name records relative to the data directory")
    if any(part in ("..", "") for part in pure.parts) or any(part.startswith(".") for part in pure.parts):
        raise OutsideError(f"record path {shown!r} leaves the data directory (or names a hidden file)")
    name = pure.name[: -len(".hea")] if pure.name.endswith(".hea") else pure.name
    if not name:
        raise OutsideError(f"record path {shown!r} names no record")
    record = Path(root, *pure.parts[:-1], name)
    header = record.with_name(name + ".hea")
    if not inside(header, root) or not inside(record.parent, root):
        raise OutsideError(f"record path {shown!r} leads outside the data directory")
    if not exists_as(header, "file"):  # a name the system refuses (too long) is no record either
        raise RecordNotFoundError(f"record not found in the data directory: {shown}")
    check_record_files(record, root)
    return record


def check_record_files(record: Path, root: Path) -> None:
    """Refuse a record whose signal or annotation files (links resolved) lie outside ``root``."""
    for path in record_files(record):
        if not inside(path, root):
            raise OutsideError(f"record {record.name}: {path.name} leads outside the data directory")


def record_files(record: Path) -> list[Path]:
    """The header, the signal files its header names, and the record's annotation files that exist."""
    header = record.with_name(record.name + ".hea")
    files = [header]
    try:
        lines = header.read_text(errors="replace").splitlines()[:1000]
    except OSError:
        return files
    names = set()
    for line in lines[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split()[0])
    files += [record.parent / n for n in sorted(names)]
    files += [p for p in record.parent.glob(f"{record.name}.*") if p.suffix in (".atr",)]
    return files
