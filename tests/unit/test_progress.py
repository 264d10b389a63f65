"""release._progress: a real tqdm bar on a terminal, not a byte on a pipe."""

from __future__ import annotations

import io
import subprocess
import sys

from release._progress import NullProgress, Progress
from tests.fixtures.tty import run_on_pty

DRIVE = """
from release._progress import Progress
with Progress("hashing", 3 * 2**20) as p:
    for _ in range(3):
        p.advance(2**20)
assert p.done == 3 * 2**20
"""


def test_nothing_is_written_when_stderr_is_a_pipe() -> None:
    p = subprocess.run(
        [sys.executable, "-c", DRIVE], capture_output=True, text=True, timeout=60, check=True
    )
    assert p.stderr == "" and p.stdout == ""


def test_a_bar_in_bytes_is_drawn_on_a_terminal() -> None:
    out = run_on_pty([sys.executable, "-c", DRIVE])
    # tqdm's final line: label, 100%, 3.00M/3.00M bytes (1024-based), and a bytes/s rate
    final = out.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("hashing: 100%"), out
    assert "3.00M/3.00M" in final and "B/s]" in final, out


def test_an_explicit_stream_that_is_not_a_tty_stays_empty() -> None:
    buf = io.StringIO()
    p = Progress("x", 10, stream=buf)
    p.advance(10)
    p.close()
    assert buf.getvalue() == "" and p.done == 10


def test_null_progress_counts_nothing() -> None:
    n = NullProgress()
    n.advance(5)
    n.close()
    assert n.done == 0
