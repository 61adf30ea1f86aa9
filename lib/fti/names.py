"""Validation of system and table names, so that no name can point outside the home folder."""

from __future__ import annotations

import re

from fti.errors import NameError_

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$")


def validate_system_name(name: str) -> str:
    """Check a system name (``flights``, ``synthetic``).

    Args:
        name: The name to check.

    Returns:
        The name unchanged.

    Raises:
        NameError_: If it holds anything but letters, digits, ``_`` and ``-``.
    """
    if not isinstance(name, str) or not _PART.match(name):
        raise NameError_(
            f"system name {name!r} is not allowed",
            hint="use letters, digits, '_' and '-' only, starting with a letter or digit",
        )
    return name


def validate_table_name(name: str) -> str:
    """Check a table name such as ``flights/carrier_delay``: relative, no ``..``, no shell metacharacters.

    Args:
        name: Slash-separated table name relative to the home folder.

    Returns:
        The name unchanged.

    Raises:
        NameError_: If the name is absolute, contains ``..`` or a character outside ``[A-Za-z0-9_-]``.
    """
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        raise NameError_(
            f"table name {name!r} is not allowed",
            hint="table names are relative, like 'flights/carrier_delay'",
        )
    parts = name.split("/")
    for part in parts:
        if not _PART.match(part):
            raise NameError_(
                f"table name {name!r} is not allowed: part {part!r} must be letters, digits, '_' or '-'",
                hint="no '..', no absolute paths, no spaces or shell metacharacters",
            )
    return name
