"""The benchmarks' measuring children: a child that dies says why in the table, not with a traceback
that loses the rows measured before it (bench_train.py lost its whole table to an OOM-killed HGT)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moakg.benchmarks.common import child_failure


@pytest.mark.parametrize(("code", "expected"), [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL (out of memory?)"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "killed by SIGTERM"),
    ("raise MemoryError('cannot allocate 20 GiB')", "MemoryError: cannot allocate 20 GiB"),
    ("import sys; sys.exit(3)", "exit status 3"),
])
def test_child_failure_says_why_in_one_line(code: str, expected: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child_failure(proc) == expected
