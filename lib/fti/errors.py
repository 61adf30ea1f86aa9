"""Errors that reach the user as one line: what went wrong, where, and what to do."""

from __future__ import annotations


class FtiError(Exception):
    """Base error. The CLI prints ``str(err)`` (and the hint) without a traceback unless ``--debug``.

    Args:
        message: What went wrong and where (file, table, column, row count).
        hint: What the user should do about it.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(FtiError):
    """A config file, profile or override is wrong."""


class NameError_(FtiError):
    """A table or system name is not allowed (it could escape the home folder)."""


class TableNotFoundError(FtiError):
    """A Delta table does not exist where it was expected."""


class SchemaMismatchError(FtiError):
    """A DataFrame does not match the schema of the table it is written to."""


class UnsupportedTableError(FtiError):
    """A Delta table needs a protocol feature that fti's readers cannot read (deletion vectors, column mapping...)."""


class VersionNotFoundError(FtiError):
    """A requested table version or commit time does not exist."""


class RetentionError(FtiError):
    """A vacuum would break rebuildability of a pinned version."""


class EnvironmentProblem(FtiError):
    """Java, Spark or another runtime prerequisite is missing."""


class ConcurrentRunError(FtiError):
    """Another run holds the window this run would write (exit 75, EX_TEMPFAIL: retry later)."""

    exit_code = 75


class FaultInjected(FtiError):
    """Raised at a named fault point when a test asks for it (``FTI_FAULT=point:raise``)."""


def check_reachable(what: str, address: str, *, hint: str, timeout_s: float = 3.0) -> None:
    """Fail fast, in one line, when a service's ``host:port`` (or ``scheme://host:port/...``) is not listening.

    Clients such as MLflow's retry an unreachable server for minutes; this check answers in seconds.

    Raises:
        FtiError: Nothing accepts connections at the address.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if not parts.hostname:
        return
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    if port is None:
        return
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise FtiError(f"{what} at {address} is unreachable: {exc.strerror or exc}", hint=hint) from None
