"""Print bench/results.json as the table the README carries (and write it to bench/RESULTS.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ("pit_join", "pit_join_full", "pit_skew", "incremental", "incremental_declared", "feature_run", "train", "train_10m", "score", "score_local", "delta_write")


def _earlier_rows(path: Path) -> dict[str, str]:
    """The rows of the current RESULTS.md by benchmark name (kept for benchmarks not run this time)."""
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].replace(" (earlier run)", "")
        if len(cells) == 7 and name in ORDER:
            rows[name] = line if name != cells[0] else line.replace(f"| {name} |", f"| {name} (earlier run) |", 1)
    return rows


def table(results: dict, earlier: dict[str, str] | None = None) -> str:
    lines = ["| benchmark | ours (s) | reference | reference (s) | ratio | goal | met |",
             "|---|---|---|---|---|---|---|"]
    for name in ORDER:
        r = results.get(name)
        if r is None:
            lines.append((earlier or {}).get(name, f"| {name} | not run | | | | | |"))
            continue
        lines.append(f"| {name} | {r['ours_s']:.1f} | {r['reference']} | {r['reference_s']:.2f} | {r['ratio']:.2f} | "
                     f"{r.get('goal', '')} | {'yes' if r.get('goal_met') else 'no'} |")
    machines = sorted({r["machine"] for r in results.values() if "machine" in r})
    return "\n".join(lines) + "\n\nMachine: " + "; ".join(machines) + "\n"


def main() -> int:
    path = Path(__file__).with_name("results.json")
    if not path.exists():
        print("no bench/results.json yet: run make bench", file=sys.stderr)
        return 1
    out = Path(__file__).with_name("RESULTS.md")
    text = table(json.loads(path.read_text()), _earlier_rows(out))
    goals = Path(__file__).with_name("GOALS.md")  # measured goals that are not benchmarks (the demo's time)
    if goals.exists():
        text += "\n" + goals.read_text()
    history = Path(__file__).with_name("HISTORY.md")  # what each change did to the figures (kept out of the docs)
    if history.exists():
        text += "\n" + history.read_text()
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
