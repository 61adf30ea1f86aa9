"""Run a Databricks source-format notebook locally: cells split on `# COMMAND ----------`, executed in order
in one namespace with a small `dbutils.widgets` stand-in that takes defaults (or given overrides)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = "notebook results: "

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"


class _Widgets:
    def __init__(self, overrides: dict[str, str]) -> None:
        self._values: dict[str, str] = {}
        self._overrides = overrides

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self._values[name] = self._overrides.get(name, default)

    def dropdown(self, name: str, default: str, choices: list[str], label: str | None = None) -> None:
        value = self._overrides.get(name, default)
        if value not in choices:
            raise ValueError(f"widget {name}: {value!r} not in {choices}")
        self._values[name] = value

    def get(self, name: str) -> str:
        return self._values[name]


class DbutilsStub:
    def __init__(self, overrides: dict[str, str]) -> None:
        self.widgets = _Widgets(overrides)


def cells(path: Path) -> list[str]:
    text = path.read_text()
    if not text.startswith(HEADER):
        raise ValueError(f"{path} is not a Databricks source notebook (first line must be '{HEADER}')")
    return [c for c in text[len(HEADER):].split(SEPARATOR)]


def run_notebook(path: Path, overrides: dict[str, str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"dbutils": DbutilsStub(overrides), "__name__": "__notebook__"}
    for i, cell in enumerate(cells(path)):
        code = "\n".join(line for line in cell.splitlines() if not line.startswith("# MAGIC"))
        try:
            exec(compile(code, f"{path.name}[cell {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{path.name} cell {i} failed: {type(exc).__name__}: {exc}") from exc
    return namespace


def main(spec: list[dict[str, Any]]) -> None:
    """Run notebooks in order in this process (as on one cluster), each ``{"path", "widgets", "results"}``;
    ``results`` maps a name to an expression evaluated in that notebook's namespace after its last cell. Prints
    one line, ``RESULTS`` + the JSON list of each notebook's results."""
    out = []
    for step in spec:
        namespace = run_notebook(Path(step["path"]), step["widgets"])
        out.append({name: eval(expr, namespace) for name, expr in step.get("results", {}).items()})
    print(RESULTS + json.dumps(out, default=str))


if __name__ == "__main__":  # python notebooks.py SPEC.json: how the tests run them from the installed wheel
    main(json.loads(Path(sys.argv[1]).read_text()))
