"""Locks between processes on one machine: a per-table commit lock and a run lock held across store calls.

Both are ``flock`` locks on files under ``<home>/_locks``: they die with their process, so a killed run
never leaves a stale lock. They serialize processes that share a file system with working POSIX locks
(one machine, or NFS with lockd); across machines without them, Delta's optimistic commit is the guard.

A home on object storage (or DBFS) has no POSIX locks: its lock files live on this machine, in
``FTI_LOCK_DIR`` (default ``<tmp>/fti-locks``), one folder per home URI. They still serialize the runs of one
machine; runs on different machines rely on the Delta commit protocol alone (see the README, "What is
guaranteed on object storage").
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import time
from contextlib import contextmanager
import tempfile
from pathlib import Path
from typing import Iterator

from fti.errors import ConcurrentRunError
from fti.location import Location

log = logging.getLogger(__name__)


def lock_dir(home: Path | Location) -> Path:
    """The folder of a home's lock files: ``<home>/_locks`` for a local home, else a folder on this machine."""
    home = Location(home)
    if home.is_local:
        folder = Path(home) / "_locks"
    else:
        root = Path(os.environ.get("FTI_LOCK_DIR") or Path(tempfile.gettempdir()) / "fti-locks")
        folder = root / hashlib.sha256(home.uri.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def commit_lock(home: Path | Location, name: str) -> Iterator[None]:
    """Serialize commits to one table from processes on this machine.

    Delta detects most conflicts itself; this lock also covers the case it does not: two replaces of the
    same EMPTY range (no file to conflict on), which would both land.
    """
    with open(lock_dir(home) / (name.replace("/", "__") + ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def run_lock(home: Path | Location, key: str, *, what: str, wait_s: float = 900.0) -> Iterator[None]:
    """Hold an exclusive lock on ``key`` across a read-then-write that spans several store calls.

    A second run with the same key waits (logging who holds it) and proceeds once the first is done,
    so the two serialize; after ``wait_s`` it gives up without writing anything.

    Args:
        home: The home folder.
        key: What is locked, e.g. ``flights/predictions@model@2013-12-01``.
        what: The work, for messages ("scoring flights_delay at 2013-12-01").
        wait_s: How long to wait for the holder.

    Raises:
        ConcurrentRunError: Another run held the lock for longer than ``wait_s``.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    path = lock_dir(home) / f"{safe}.run.lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    handle.seek(0)
                    log.warning("another run holds %s (%s): waiting for it", key, handle.read().strip() or "?")
                    waited = True
                if time.monotonic() > deadline:
                    raise ConcurrentRunError(
                        f"another run holds {what} ({key}) and did not finish within {wait_s:.0f} s; "
                        "nothing was written by this run",
                        hint=f"wait for it to finish, then rerun; a stale holder cannot exist (the lock "
                             f"dies with its process): {path}") from None
                time.sleep(0.5)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, since {dt.datetime.now(dt.timezone.utc).isoformat()}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
