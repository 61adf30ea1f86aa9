"""The system lock: runs share it, a deletion takes it alone, holds nest within a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from fti.errors import ConcurrentRunError
from fti.store.locks import system_lock

HOLD = textwrap.dedent("""
    import sys, time
    from fti.store.locks import system_lock
    with system_lock(sys.argv[1], "demo", what="other", exclusive=sys.argv[2] == "x"):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
""")


def _hold_in_another_process(home, exclusive: bool, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(home), "x" if exclusive else "s", str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.held_at = time.monotonic()  # type: ignore[attr-defined]
    return proc


def test_shared_holds_nest_and_an_exclusive_one_inside_is_refused(tmp_path):
    with system_lock(tmp_path, "demo", what="run"):
        with system_lock(tmp_path, "demo", what="landing inside the run"):
            pass
        with pytest.raises(ConcurrentRunError, match="needs system demo to itself"):
            with system_lock(tmp_path, "demo", what="forget", exclusive=True):
                pass
    with system_lock(tmp_path, "demo", what="forget", exclusive=True):  # released: free again
        pass


def test_runs_share_it_and_a_deletion_waits_for_them(tmp_path):
    other = _hold_in_another_process(tmp_path, exclusive=False, seconds=2.0)
    try:
        with system_lock(tmp_path, "demo", what="run", wait_s=1):  # shared with the other run: at once
            pass
        with pytest.raises(ConcurrentRunError, match="waited 0 s for the runs of system demo"):
            with system_lock(tmp_path, "demo", what="forget", exclusive=True, wait_s=0.3):
                pass
        with system_lock(tmp_path, "demo", what="forget", exclusive=True, wait_s=30):
            assert time.monotonic() - other.held_at > 1.9, "the deletion got the lock while the run still held it"
    finally:
        other.kill()
        other.wait()


def test_a_run_waits_for_a_deletion(tmp_path):
    other = _hold_in_another_process(tmp_path, exclusive=True, seconds=1.5)
    try:
        with system_lock(tmp_path, "demo", what="run", wait_s=30):
            assert time.monotonic() - other.held_at > 1.4, "the run got the lock while the deletion held it"
    finally:
        other.kill()
        other.wait()
    with pytest.raises(ConcurrentRunError):
        other = _hold_in_another_process(tmp_path, exclusive=True, seconds=3)
        try:
            with system_lock(tmp_path, "demo", what="run", wait_s=0.3):
                pass
        finally:
            other.kill()
            other.wait()
