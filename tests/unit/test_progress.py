"""What a user sees during a long command: one line per stage with a running total, and no py4j retry noise."""

from __future__ import annotations

import io
import logging
import re

from fti.cli import RetriedPy4jCommand
from fti.progress import StageProgress


def test_one_line_per_stage_with_its_time_and_the_running_total():
    out = io.StringIO()
    with StageProgress(out, bar=False) as progress:
        progress.plan(3)
        progress.done("month 2013-01: landed 27,004 flights, 6 of 6 tables written", 12.34)
        progress.done("trained flights_delay/1 -> champion", 5.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\[1/3\] month 2013-01: landed 27,004 flights, 6 of 6 tables written\s+12\.3 s   total 0:\d\d",
                        lines[0]), lines[0]
    assert lines[1].startswith("[2/3] trained flights_delay/1 -> champion") and "5.0 s" in lines[1]


def test_on_a_terminal_the_lines_print_above_a_bar():
    out = io.StringIO()
    with StageProgress(out, bar=True) as progress:
        progress.plan(2, first="month 2013-01")
        progress.done("month 2013-01: landed 1 flights, 6 of 6 tables written", 1.0, next_stage="training")
    assert "[1/2] month 2013-01: landed 1 flights, 6 of 6 tables written" in out.getvalue()


def test_py4j_retried_command_traceback_is_dropped_but_a_failed_command_shows():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RetriedPy4jCommand())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        try:
            raise ConnectionResetError("stale pooled connection")
        except ConnectionResetError:
            logging.info("Exception while sending command.", exc_info=True)  # what py4j does before its retry
            assert stream.getvalue() == ""
            logging.exception("Exception while sending command.")  # no retry left: an error, kept
        assert "Exception while sending command." in stream.getvalue()
        logging.info("something else")
        assert "something else" in stream.getvalue()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
