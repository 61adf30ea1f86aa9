"""Run a documentation page as written: its code blocks, in order, as ONE bash script (so `cd` carries over).

A fenced block whose info string has ``title="PATH"`` is written to PATH (relative to the folder the script is
in at that point); a ``bash`` block is run (``set -euo pipefail``: the first failing command stops the page);
every other block (``console``, ``text``, output shown to the reader) is not run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
TITLE = re.compile(r'title="(?P<path>[^"]+)"')


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    path: str | None
    body: str


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        title = TITLE.search(info)
        found.append(Block(text.count("\n", 0, match.start()) + 1, info.split()[0] if info else "",
                           title["path"] if title else None, match["body"]))
    return found


def script(page: Path) -> str:
    """The page's runnable blocks as one bash script; each block announces its line on stderr first."""
    lines = ["set -euo pipefail"]
    for block in blocks(page):
        if block.path is None and block.language != "bash":
            continue
        lines.append(f"echo {shlex.quote(f'== {page.name}:{block.line}')} >&2")
        if block.path is not None:
            lines += [f"mkdir -p \"$(dirname {shlex.quote(block.path)})\"",
                      f"cat > {shlex.quote(block.path)} <<'FTI_DOCS_EOF'", block.body.rstrip("\n"), "FTI_DOCS_EOF"]
        else:
            lines.append(block.body.rstrip("\n"))
    return "\n".join(lines) + "\n"


def run_page(page: Path, *, cwd: Path, env: dict[str, str], timeout: float = 1500) -> subprocess.CompletedProcess:
    """Run the page's script in ``cwd``; raise with the failing block's line and the output's tail."""
    proc = subprocess.run(["bash", "-c", script(page)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        where = [line for line in proc.stderr.splitlines() if line.startswith("== ")]
        raise AssertionError(f"{page.name}: the block at {where[-1][3:] if where else '?'} failed "
                             f"(exit {proc.returncode})\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc
