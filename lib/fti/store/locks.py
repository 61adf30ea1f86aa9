"""Locks between processes on one machine: a per-table commit lock, a run lock held across store calls, and a
system lock that data-protection deletions take against every run and landing of the system.

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
import tempfile
import threading
import time
from contextlib import contextmanager
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


# this process's holds of system locks: path -> [mode, count, file] (a run inside a run of the same system, e.g. a
# replay's landings, or a second thread's, does not lock twice; the last one out unlocks)
_HELD: dict[str, list] = {}
_HELD_GUARD = threading.Lock()


@contextmanager
def system_lock(home: Path | Location, system: str, *, what: str, exclusive: bool = False,
                wait_s: float = 900.0) -> Iterator[None]:
    """Hold the system's lock: shared by its runs and landings, exclusive for ``fti forget``.

    Every step that reads the forgotten list (or rows of an entity) and later commits rows of that system holds
    it shared from the read to the last commit, so a deletion can never fall between them: ``forget`` waits for
    the runs in flight to finish, and runs that start meanwhile wait for the deletion, then read the new list.
    Runs and landings still run side by side (shared holds do not exclude each other). Re-entrant within a
    process.

    Args:
        home: The home folder.
        system: The system whose tables are read and written.
        what: The work, for messages ("feature run", "forget carrier=HA").
        exclusive: Take it alone (a deletion).
        wait_s: How long to wait for the holders.

    Raises:
        ConcurrentRunError: The holders did not finish within ``wait_s`` (nothing was written), or this process
            asks for the exclusive lock while it holds the shared one.
    """
    path = lock_dir(home) / f"{system}.system.lock"
    key = str(path)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            if exclusive and held[0] != "exclusive":
                raise ConcurrentRunError(
                    f"{what} needs system {system} to itself, but this process is running a step of it",
                    hint="run it after the feature run, landing or scoring of this process has finished")
            held[1] += 1
    if held is None:
        held = _acquire(path, system, what=what, exclusive=exclusive, wait_s=wait_s)
    try:
        yield
    finally:
        with _HELD_GUARD:
            held[1] -= 1
            last = not held[1]
            if last:
                _HELD.pop(key, None)
        if last:
            fcntl.flock(held[2], fcntl.LOCK_UN)
            held[2].close()


def _acquire(path: Path, system: str, *, what: str, exclusive: bool, wait_s: float) -> list:
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    handle = open(path, "a+")
    deadline = time.monotonic() + wait_s
    waited = False
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if not waited:
                others = "runs and landings of" if exclusive else "a deletion (fti forget) in"
                log.warning("%s waits for the %s system %s to finish (lock %s)", what, others, system, path)
                waited = True
            if time.monotonic() > deadline:
                handle.close()
                raise ConcurrentRunError(
                    f"{what} waited {wait_s:.0f} s for the {'runs of' if exclusive else 'deletion in'} system "
                    f"{system} to finish; nothing was written by it",
                    hint=f"rerun it when they are done; a stale holder cannot exist (the lock dies with its "
                         f"process): {path}") from None
            time.sleep(0.2)
    with _HELD_GUARD:
        # another thread of this process may have taken it meanwhile: share that hold
        other = _HELD.get(str(path))
        if other is not None and (other[0] == "exclusive" or not exclusive):
            other[1] += 1
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            return other
        held = ["exclusive" if exclusive else "shared", 1, handle]
        _HELD[str(path)] = held
    return held
