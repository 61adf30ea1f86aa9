"""Plain-text tables and timings for what the CLI prints."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

log = logging.getLogger(__name__)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Render rows as an aligned text table.

    Args:
        rows: Cells, one sequence per row.
        headers: Column titles.

    Returns:
        The table as one string (no trailing newline).
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in cells[1:]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


@contextmanager
def timed(step: str) -> Iterator[dict[str, float]]:
    """Log the start and duration of a step; yields a dict that receives ``seconds``."""
    out: dict[str, float] = {}
    log.info("%s ...", step)
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start
        log.info("%s done in %.1f s", step, out["seconds"])
