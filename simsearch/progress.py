"""Progress bars for long work (build, train, annotate, evaluate), on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(status="", steps=1)``.

    Draws only on a terminal: piped or captured stderr (CI logs, scripts reading
    errors) gets no bar residue.
    """
    console = Console(stderr=True)
    if not (enabled and console.is_terminal):
        yield lambda status="", steps=1: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total, status="")
        yield lambda status="", steps=1: bar.update(task, advance=steps, status=status)
