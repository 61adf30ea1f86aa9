"""The registry of systems: name -> the module whose ``build()`` gives its :class:`~fti.features.spec.SystemSpec`."""

from __future__ import annotations

import importlib

from fti.errors import ConfigError
from fti.features.spec import SystemSpec

SYSTEMS = {"flights": "fti.features.flights.system", "synthetic": "fti.features.synthetic.system"}


def get_system(name: str) -> SystemSpec:
    """The spec of a system by name.

    Raises:
        ConfigError: For an unknown system.
    """
    if name not in SYSTEMS:
        raise ConfigError(f"no feature pipeline for system {name!r}", hint=f"systems: {', '.join(sorted(SYSTEMS))}")
    return importlib.import_module(SYSTEMS[name]).build()
