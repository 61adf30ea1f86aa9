"""Run a Databricks source-format notebook locally: cells split on `# COMMAND ----------`, executed in order
in one namespace with a small `dbutils.widgets` stand-in that takes defaults (or given overrides)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
