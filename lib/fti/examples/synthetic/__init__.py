"""The synthetic example project: seeded entities and events at any scale, with a leakage canary (written with
fti.authoring only)."""

from .system import build

__all__ = ["build"]
