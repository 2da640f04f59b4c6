"""Progress bars on stderr for long client-side steps (publishing, waiting, encoding).

rich redraws the bar in place on a terminal; to a file or a pipe it writes nothing while it
runs and the finished bar once at the end, so logs and captured output hold no redraws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["progress"]


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bar for ``total`` steps; yields ``update(done)``. The bar ends (shown full or where it
    stopped) when the block does, also on an error, so the terminal's cursor comes back."""
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda done: bar.update(task, completed=done)
