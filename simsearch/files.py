"""Writing one file so that a crash (``kill -9`` included) leaves the old file or the new one, never a part.

(An index is published as a whole generation instead: :mod:`simsearch.store.layout`.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; moved over ``path`` when the block ends without error,
    removed when it fails. An error about the temporary name (a directory that takes no files, as ``/proc``)
    names ``path``: the file itself may well exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and str(exc.filename) == str(tmp):
            raise OSError(exc.errno, f"cannot be written there ({(exc.strerror or 'refused').lower()})",
                          str(path)) from None
        raise


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`staged`, flushed to disk before it takes the name."""
    with staged(path) as tmp, open(tmp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
