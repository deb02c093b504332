"""Progress of long work (build, train, annotate, evaluate, cross-validate), on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PLAIN_INTERVAL_S = 10.0
"""Where stderr is no terminal (a pipe, a log, CI), progress is a plain line at most this
often, and none for work done sooner: a log of a long run shows it moving, a quick
command's stderr stays empty (or its one error line)."""


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(status="", steps=1)``.

    On a terminal, a bar; piped or captured stderr gets plain lines instead (see
    :data:`PLAIN_INTERVAL_S`), with no control characters. ``enabled=False`` (``--json``):
    nothing.
    """
    console = Console(stderr=True)
    if not enabled:
        yield lambda status="", steps=1: None
        return
    if not console.is_terminal:
        with _plain_lines(description, total) as advance:
            yield advance
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total, status="")
        yield lambda status="", steps=1: bar.update(task, advance=steps, status=status)


@contextmanager
def _plain_lines(description: str, total: int) -> Iterator[Callable[..., None]]:
    start = last = time.monotonic()
    done = 0

    def line(now: float, status: str) -> None:
        elapsed = now - start
        text = f"{description}: {done}/{total}"
        if total:
            text += f" ({100 * done / total:.0f} %)"
        text += f", {elapsed:.0f} s"
        if 0 < done < total:
            text += f", about {elapsed * (total - done) / done:.0f} s left"
        sys.stderr.write(text + (f", {status}" if status else "") + "\n")
        sys.stderr.flush()

    def advance(status: str = "", steps: int = 1) -> None:
        nonlocal done, last
        done += steps
        now = time.monotonic()
        if now - last >= PLAIN_INTERVAL_S and done < total:  # at the end, the done line says it
            last = now
            line(now, status)

    yield advance
    now = time.monotonic()
    if now - start >= PLAIN_INTERVAL_S:  # the work was long enough to have been reported: say it ended
        line(now, "done")
