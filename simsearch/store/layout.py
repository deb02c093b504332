"""An index directory on disk: immutable generations, one pointer, one writer at a time.

::

    INDEX_DIR/
        CURRENT                 names the published generation ("gen-000007"); replaced in one os.replace
        gen-000006/             the previous generation, kept for readers that opened it just before
        gen-000007/             manifest.json, vectors.faiss, catalog.sqlite, encoder.keras
        gen-000008.tmp-1a2b3c/  a writer's staging directory (removed when the write fails)
        .writer.lock            held by the one writer (build, add); readers never take it

A writer (:class:`Writer`) takes the lock, writes a whole new generation into a
staging directory, fsyncs its files and the directory, renames it to its final name
and only then replaces ``CURRENT``: that replacement is the one step that publishes
it. A crash at any moment leaves ``CURRENT`` naming a complete generation, the old one
or the new one; what the crash left behind (staging directories, a generation never
published) carries a name no reader follows and is removed by the next writer, or by
a reader that finds the lock free (:func:`tidy`).

Published generations are never modified, so a reader needs no lock: it reads
``CURRENT`` once and opens the files of that generation.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import IndexBusyError, IndexFormatError, IndexWriteError

POINTER = "CURRENT"
"""File naming the published generation; the only file ever replaced in place."""
LOCK = ".writer.lock"
"""Lock file of the writer; its presence means nothing (the OS releases a dead writer's lock)."""
GENERATION = re.compile(r"gen-(\d{6,})")
"""Name of a published or published-once generation directory."""
TMP_MARK = ".tmp-"
"""In every name that is not (yet) part of the index: staging directories, the pointer
being written, generations being deleted. Whatever carries it is garbage once no
writer holds the lock."""
LEGACY_MANIFEST = "manifest.json"
LEGACY_FILES = (LEGACY_MANIFEST, "vectors.faiss", "catalog.sqlite", "encoder.keras")
"""The flat layout of format 1 (every file directly in INDEX_DIR), removed once a
generation is published over it."""
KEEP_PREVIOUS = 1
"""Generations kept before the current one: a reader that read ``CURRENT`` just before
a writer replaced it still finds the files it is about to open."""
WRITE_LOCK_TIMEOUT_S = 600.0
"""How long a second writer waits for the first. Writers queue rather than fail fast,
so that two ``add`` commands started together both land; a build of every MIT-BIH
record takes a few minutes, so ten minutes of waiting means something is stuck."""
FAULT_ENV = "SIMSEARCH_FAULT_POINT"
"""Test hook: the name of a checkpoint at which a writer kills itself (see :func:`fault_point`)."""
FAULT_POINTS = ("staging-created", "vectors-written", "catalog-written", "manifest-written", "generation-renamed",
                "before-pointer", "after-pointer", "cleanup")
"""The checkpoints of a write, in order; the crash tests kill a writer at each."""


def generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def generation_number(name: str) -> int | None:
    """The number of a generation directory's name; None for any other name."""
    match = GENERATION.fullmatch(name)
    return int(match.group(1)) if match else None


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL, as a crash would, if ``$SIMSEARCH_FAULT_POINT`` is ``name``.

    The crash tests set the variable in a writer subprocess to stop it at a chosen step
    of a write; unset, this costs one environment look-up.
    """
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def read_pointer(root: Path) -> int | None:
    """The generation ``CURRENT`` names; None when there is no ``CURRENT``.

    Raises
    ------
    IndexFormatError
        ``CURRENT`` is unreadable or names no generation.
    """
    try:
        text = (root / POINTER).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{root / POINTER} is unreadable ({getattr(exc, 'strerror', None) or exc}): "
                               "rebuild the index") from None
    number = generation_number(text)
    if number is None:
        raise IndexFormatError(f"{root / POINTER} names no generation ({text[:40]!r}): rebuild the index")
    return number


def current_generation(root: Path) -> int:
    """The published generation of the index at ``root``.

    Raises
    ------
    IndexFormatError
        No index at ``root``, an index of the older flat layout, or a corrupt pointer.
    """
    if not root.is_dir():
        raise IndexFormatError(f"index not found: {root}")
    number = read_pointer(root)
    if number is not None:
        return number
    if (root / LEGACY_MANIFEST).is_file():
        raise IndexFormatError(f"{root} holds an index in the flat layout of an older simsearch (format 1): "
                               "rebuild it with `simsearch build`")
    if any(_ours(name) for name in os.listdir(root)):
        raise IndexFormatError(f"{root} holds no published index (its first build did not finish): build it again")
    raise IndexFormatError(f"{root} is not a simsearch index (no {POINTER})")


def refuse_foreign(root: Path) -> None:
    """Raise unless ``root`` is missing, empty or an index directory (the only places a build may write).

    Raises
    ------
    IndexFormatError
        ``root`` is a file, or a directory holding something other than an index.
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise IndexFormatError(f"{root} exists and is not a simsearch index (not a directory): "
                               "refusing to overwrite it")
    names = os.listdir(root)
    if POINTER in names or LEGACY_MANIFEST in names or all(_ours(name) for name in names):
        return
    raise IndexFormatError(f"{root} exists and is not a simsearch index: refusing to overwrite it")


def _ours(name: str) -> bool:
    return name == LOCK or TMP_MARK in name or generation_number(name) is not None


# ------------------------------------------------------------------ durable writes
def write_file(path: Path, data) -> None:
    """Write ``data`` (bytes or any buffer) to a new file and fsync it: once this returns, it survives a crash."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_file(path: Path) -> None:
    """Flush a file that another library wrote (SQLite, Keras, a copy) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creations, renames) durable; POSIX only, as only POSIX needs it."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link an immutable file into a new generation (no copy, no space); copy where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@contextmanager
def storage_errors(root: Path, doing: str) -> Iterator[None]:
    """Turn an OSError of the index's own files (a read-only directory, a full disk) into one line."""
    try:
        yield
    except IndexWriteError:
        raise
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise IndexWriteError(f"cannot {doing} the index at {root}: {exc.strerror or exc}{where}; "
                              "the index is as it was") from None


# ------------------------------------------------------------------ writing
class Writer:
    """One write of the index at ``root``: the lock, a staging directory, its publication.

    Use as a context manager. Entering waits for the lock (up to ``timeout`` seconds,
    then :class:`~simsearch.errors.IndexBusyError`), removes what crashed writers left
    and creates the staging directory of generation :attr:`number`; the body fills it
    and calls :meth:`publish`. Leaving without publishing (an exception) removes the
    staging directory, so the index stays as it was.
    """

    def __init__(self, root: Path, timeout: float | None = None):
        self.root = Path(os.path.abspath(root))
        self.timeout = WRITE_LOCK_TIMEOUT_S if timeout is None else timeout
        self.previous: int | None = None
        self.number = 0
        self.staging = self.root
        self.published = False
        self.created = False
        self._lock: FileLock | None = None

    def __enter__(self) -> Writer:
        with storage_errors(self.root, "create"):
            self.created = not self.root.exists()
            self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.root / LOCK, timeout=self.timeout)
        try:
            self._lock.acquire()
        except Timeout:
            raise IndexBusyError(f"another process has been writing the index at {self.root} for over "
                                 f"{self.timeout:g} s: try again once it is done") from None
        except OSError as exc:
            raise IndexWriteError(f"cannot lock the index at {self.root} for writing: {exc.strerror or exc}") from None
        try:
            try:
                self.previous = read_pointer(self.root)
            except IndexFormatError:
                self.previous = None  # a corrupt pointer: only a build, which ignores the old index, gets on
            with storage_errors(self.root, "write"):
                remove_leftovers(self.root)
                self.number = max([self.previous or 0, *_generations(self.root)]) + 1
                self.staging = self.root / f"{generation_name(self.number)}{TMP_MARK}{uuid.uuid4().hex[:8]}"
                self.staging.mkdir()
            fault_point("staging-created")
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self.published:
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._release()

    def _release(self) -> None:
        """Release the lock; a first write that failed also takes away the directory it created."""
        forget = self.created and not self.published
        if forget:  # unlinked while held: a writer waiting on it sees the unlinked file and tries again
            (self.root / LOCK).unlink(missing_ok=True)
        self._lock.release()
        if forget:
            try:
                self.root.rmdir()
            except OSError:
                pass  # no longer empty: another writer has started meanwhile

    @property
    def final(self) -> Path:
        """Where the generation lives once published."""
        return self.root / generation_name(self.number)

    def publish(self) -> None:
        """Make the staging directory the index's current generation, in one atomic step.

        Every file and the directory are fsync'ed, the directory is renamed to its
        final name, and ``CURRENT`` is replaced by a new file naming it (written and
        fsync'ed beside it first). Before the replacement a crash leaves the old
        generation current, after it the new one.
        """
        with storage_errors(self.root, "write"):
            for path in self.staging.iterdir():
                fsync_file(path)
            fsync_dir(self.staging)
            os.rename(self.staging, self.final)
            self.staging = self.final
            fsync_dir(self.root)
            fault_point("generation-renamed")
            pending = self.root / f"{POINTER}{TMP_MARK}{uuid.uuid4().hex[:8]}"
            try:
                write_file(pending, f"{generation_name(self.number)}\n".encode("ascii"))
                fault_point("before-pointer")
                os.replace(pending, self.root / POINTER)
            except BaseException:
                pending.unlink(missing_ok=True)
                shutil.rmtree(self.final, ignore_errors=True)
                raise
            self.published = True
        try:
            fsync_dir(self.root)
        except OSError as exc:  # the new generation is current already: never say the index is as it was
            raise IndexWriteError(f"the index at {self.root} was updated, but the disk did not confirm it "
                                  f"({exc.strerror or exc}): check the disk") from None
        fault_point("after-pointer")

    def cleanup(self) -> None:
        """Remove generations older than the previous one, and leftovers; never fails the write."""
        try:
            remove_leftovers(self.root)
        except OSError:
            pass  # the new generation is published; the next writer removes what is left


def _generations(root: Path) -> list[int]:
    return [n for n in (generation_number(name) for name in os.listdir(root)) if n is not None]


def remove_leftovers(root: Path) -> None:
    """Remove what no reader can be using; call with the writer lock held.

    Always: staging directories and pointer files of crashed writers (every name
    with ``.tmp-``). When ``CURRENT`` names a generation: generations newer than it
    (written, never published), those older than the :data:`KEEP_PREVIOUS` before it,
    and the files of the format 1 flat layout. Without a readable pointer no
    generation is touched: nothing here can tell which one holds the index.
    """
    names = os.listdir(root)
    try:
        current = read_pointer(root)
    except IndexFormatError:
        current = None
    doomed = [root / name for name in names if TMP_MARK in name]
    if current is not None:
        numbers = sorted(_generations(root))
        kept = {current, *[n for n in numbers if n < current][-KEEP_PREVIOUS:]}
        for number in numbers:
            if number not in kept:
                # renamed out of the index first: a crash half way through rmtree leaves garbage by its name
                moved = root / f"{generation_name(number)}{TMP_MARK}removed-{uuid.uuid4().hex[:8]}"
                os.rename(root / generation_name(number), moved)
                doomed.append(moved)
        if LEGACY_MANIFEST in names:  # only beside its manifest is a catalog.sqlite the old layout's own
            doomed += [root / name for name in LEGACY_FILES if name in names and name != LEGACY_MANIFEST]
            doomed.append(root / LEGACY_MANIFEST)  # last: while it exists, the rest is known to be ours
    if doomed:
        fault_point("cleanup")
    for path in doomed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def tidy(root: Path) -> None:
    """Remove leftovers of crashed writers if no writer is at work; never waits, never fails.

    Readers call this: taking the free lock for a moment costs a system call, and a
    read-only index directory simply stays as it is.
    """
    lock = FileLock(root / LOCK, timeout=0)
    try:
        lock.acquire()
    except (Timeout, OSError):
        return
    try:
        remove_leftovers(root)
    except OSError:
        pass
    finally:
        lock.release()
