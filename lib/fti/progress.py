"""Progress of a long command: one line per finished stage with its time and the running total, and a bar
when the output is a terminal."""

from __future__ import annotations

import sys
import time
from typing import IO, Any


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


class StageProgress:
    """``with StageProgress(stream) as p: p.plan(n); ...; p.done("trained ...", seconds)``."""

    def __init__(self, stream: IO[str] | None = None, *, bar: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.bar = self.stream.isatty() if bar is None else bar
        self.total = 0
        self.count = 0
        self.started = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> StageProgress:
        if self.bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(file=self.stream), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("working", total=self.total or None)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def plan(self, stages: int, first: str = "") -> None:
        """How many stages there will be (the bar's length), and the one starting now."""
        self.total = stages
        if self._progress is not None:
            self._progress.update(self._task, total=stages, description=first or "working")

    def done(self, what: str, seconds: float, *, next_stage: str = "") -> str:
        """Report a finished stage; returns the line printed."""
        self.count += 1
        width = len(str(self.total or self.count))
        of = f"/{self.total}" if self.total else ""
        line = (f"[{self.count:>{width}}{of}] {what:<64} {seconds:6.1f} s   total "
                f"{_clock(time.perf_counter() - self.started)}")
        if self._progress is not None:
            self._progress.console.print(line, highlight=False, markup=False)
            self._progress.update(self._task, advance=1, description=next_stage or "working")
        else:
            print(line, file=self.stream, flush=True)
        return line
