"""Terminal output: results on stdout (plain when piped), progress and messages on stderr."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


def _result_console() -> Console:
    # Piped output is for scripts and files: no colours, and no folding at 80 columns.
    if sys.stdout.isatty():
        return Console()
    width = int(os.environ.get("COLUMNS", "240"))
    return Console(no_color=True, highlight=False, width=width, soft_wrap=True)


@dataclass
class Consoles:
    out: Console = field(default_factory=_result_console)
    err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    def progress(self) -> Progress:
        """A bar over positions, with a rate; it disappears when done."""
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
        )


class Bar:
    """One progress task over positions 0..head, with an events/s figure."""

    def __init__(self, progress: Progress, description: str, head: int) -> None:
        self._progress = progress
        self._task: TaskID = progress.add_task(description, total=max(head, 1), rate="")
        self._started = time.perf_counter()

    def at(self, position: int, events: int | None = None) -> None:
        elapsed = time.perf_counter() - self._started
        rate = f"{events / elapsed:,.0f} ev/s" if events and elapsed > 0 else ""
        self._progress.update(self._task, completed=position, rate=rate)
