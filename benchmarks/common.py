"""What the benchmarks share: a Neo4j to measure against, and peak-memory measurement in children."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.local_server import LocalNeo4j, free_port


@contextmanager
def bench_connection() -> Iterator[Neo4jConnection]:
    if os.environ.get("NEO4J_URI"):
        with Neo4jConnection() as conn:
            yield conn
        return
    with tempfile.TemporaryDirectory(prefix="moakg-bench-") as tmp:
        server = LocalNeo4j(
            home=Path(tmp), bolt_port=free_port(), http_port=free_port(), heap="2g", pagecache="1g"
        )
        st = server.start()
        try:
            with Neo4jConnection(Neo4jSettings(uri=st.bolt_uri, password=server.password())) as conn:
                yield conn
        finally:
            server.stop()


def child_failure(proc: subprocess.CompletedProcess) -> str:
    """One line saying why a measuring child failed: the signal that killed it (SIGKILL with no output
    is how the kernel's OOM killer ends a process, and the usual cause here: the configuration does not
    fit this machine's memory), else the last line it wrote to stderr, else its exit status."""
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        hint = " (out of memory?)" if proc.returncode == -signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]


#: Python source for a child process: resets the peak RSS at its start and defines ``peak_rss_mb()``.
#: Linux copies the parent's high-water mark into a forked child, so ``ru_maxrss`` would report the
#: benchmark process's own peak; ``clear_refs 5`` resets it and ``VmHWM`` reads it back.
PEAK_RSS_SNIPPET = """
with open('/proc/self/clear_refs', 'w') as _f:
    _f.write('5')
def peak_rss_mb():
    with open('/proc/self/status') as _f:
        return next(int(ln.split()[1]) for ln in _f if ln.startswith('VmHWM:')) / 1024
"""
