"""Crashes and outages, measured: kill Neo4j or the client mid-write, recover, compare with a clean load.

    python -m moakg.benchmarks.bench_faults                   # everything (~40-60 min on 2 busy cores)
    python -m moakg.benchmarks.bench_faults --only ingest --sections drugbank,string --server-points 4

Every scenario runs against its own throw-away local Neo4j (a temporary home, free ports, heap 1g) and
drives the real command line (``moakg ingest all``, ``moakg train`` ...) in a child process with the
environment of a local-server user, so a kill hits what a user's crash would hit. The child counts its
calls into Neo4j (:class:`~moakg.kg.connection.Neo4jConnection` ``write`` / ``read`` / ``query`` /
``session``); a kill point is "after call N, plus a random part of the mean time between calls", so kills
land between batches and inside transactions. After a Neo4j kill the child's driver retries for
``FAST_RETRY_S`` instead of its 30 s (once, the first time, with the real 30 s), then the server is
started again.

Scenarios (``--only``):

* ``ingest``: per source of demo/sources.toml, starting from the clean graph of the sources before it,
  a random series of crashes (``--server-points`` SIGKILLs of the Neo4j JVM spread over the sources by
  their writing time, one of them per source as the run's end is marked; ``--client-points`` SIGKILLs
  of the ``moakg ingest`` process), each a new try of the same ingest, then the same ingest once more.
  The graph must equal the clean single ingest's (node and relationship counts per label and type, and
  every node's and relationship's key and properties, volatile ones aside: :func:`fingerprint`), the
  IngestRun ``completed`` with ``attempts`` counting the tries that reached Neo4j, and every Neo4j kill
  reported in one ``error:`` line.
* ``bulk``: ``moakg ingest all --bulk`` (of :data:`BULK_SECTIONS`) killed while staging, while dumping,
  during neo4j-admin import (the import tool, or the client) and right after it (:data:`BULK_POINTS`);
  no IngestRun may say ``completed`` over a partial graph; then the documented recovery (``moakg db
  clear --yes`` and a new ``--bulk``, or a transactional ``moakg ingest all``) must give the clean graph
  with every run completed and the schema's constraints in place.
* ``outage`` (on the demo graph the ingest scenario leaves): Neo4j down or killed during ``moakg query
  run``; Neo4j killed during ``moakg train``'s export and write-back (and the client too), and restarted
  while it trains; Neo4j or the client killed during ``moakg predict`` and ``moakg explain``. One
  ``error:`` line, no ModelRun, IngestRun or Explanation left ``completed`` but partial, and the same
  command again gives what a clean run gives.

The table printed at the end has one row per scenario: kill points tried, recovered, and lost /
duplicated / half-written records after the recovery (nodes or relationships missing, present more than
once, or present with other properties than in the clean graph: all must be 0), and how many of the
failed commands said so in one clear line. Notes under the table list anything else seen.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "demo" / "sources.toml"
#: properties that say when or how often, not what: left out of the comparison
VOLATILE = frozenset({"created", "updated", "started", "ended", "attempts", "error"})
#: run nodes: compared by id and status (their counts and stats describe the attempt, not the data)
RUN_LABELS = ("IngestRun", "ModelRun")


# ------------------------------------------------------------------------------------ the graph
@dataclass
class Fingerprint:
    """What a graph holds: counts per label / type, one checksum, and every record's properties hash.

    ``records`` maps a record's identity (a node's label and key; a relationship's type, end keys and
    merge properties) to the hashes of the copies found (more than one: a duplicate)."""

    nodes: dict[str, int]
    rels: dict[str, int]
    checksum: str
    records: dict[tuple, list[str]] = field(repr=False)
    runs: dict[str, dict[str, Any]] = field(repr=False)

    @property
    def duplicates(self) -> int:
        return sum(len(v) - 1 for v in self.records.values())


def _props_hash(props: dict[str, Any]) -> str:
    clean = {k: v for k, v in props.items() if k not in VOLATILE}
    return hashlib.sha1(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(conn: Any) -> Fingerprint:
    """Read the whole graph (streamed) into a :class:`Fingerprint`."""
    from moakg.kg.schema import current_schema

    schema = current_schema()
    ident: dict[str, tuple[str, Any]] = {}
    records: dict[tuple, list[str]] = {}
    runs: dict[str, dict[str, Any]] = {}
    nodes: Counter[str] = Counter()
    rels: Counter[str] = Counter()
    with conn.session() as s:
        for rec in s.run("MATCH (n) RETURN elementId(n) AS e, labels(n) AS l, properties(n) AS p"):
            label = sorted(rec["l"])[0] if rec["l"] else ""
            props = rec["p"]
            key = props.get(schema.key_of(label)) if label in schema.nodes else rec["e"]
            ident[rec["e"]] = (label, key)
            nodes[label] += 1
            if label in RUN_LABELS:
                runs[str(key)] = {"label": label, "status": props.get("status"),
                                  "attempts": props.get("attempts"), "source": props.get("source"),
                                  "error": props.get("error")}
                continue
            records.setdefault(("node", label, key), []).append(_props_hash(props))
        for rec in s.run("MATCH (a)-[r]->(b) RETURN elementId(a) AS a, elementId(b) AS b, type(r) AS t, "
                         "properties(r) AS p"):
            t, props = rec["t"], rec["p"]
            rels[t] += 1
            merge_on = schema.relationships[t].merge_on if t in schema.relationships else ()
            key = ("rel", t, ident[rec["a"]], ident[rec["b"]], tuple(str(props.get(m)) for m in merge_on))
            records.setdefault(key, []).append(_props_hash(props))
    h = hashlib.sha256()
    for key in sorted(records, key=repr):
        h.update(repr(key).encode())
        for v in sorted(records[key]):
            h.update(v.encode())
    return Fingerprint(dict(nodes), dict(rels), h.hexdigest(), records, runs)


def compare(ref: Fingerprint, got: Fingerprint) -> dict[str, int]:
    """Records ``lost`` (in the clean graph, not here), ``duplicated`` (extra copies, or records the
    clean graph does not hold) and ``half_written`` (here with other properties)."""
    lost = dup = half = 0
    for key, hashes in ref.records.items():
        mine = got.records.get(key)
        if mine is None:
            lost += len(hashes)
            continue
        dup += max(0, len(mine) - len(hashes))
        half += sum((Counter(hashes) - Counter(mine)).values()) - max(0, len(hashes) - len(mine))
    dup += sum(len(v) for k, v in got.records.items() if k not in ref.records)
    return {"lost": lost, "duplicated": dup, "half_written": max(half, 0)}


#: the relationship types of model predictions
PREDICTIONS = ("PREDICTED_MOA", "PREDICTED_TARGET")


def without(fp: Fingerprint, rel_types: Sequence[str]) -> Fingerprint:
    """``fp`` without the relationships of ``rel_types`` (records only: for :func:`compare`)."""
    records = {k: v for k, v in fp.records.items() if not (k[0] == "rel" and k[1] in rel_types)}
    return Fingerprint(fp.nodes, fp.rels, fp.checksum, records, fp.runs)


def diff_examples(ref: Fingerprint, got: Fingerprint, n: int = 5) -> list[str]:
    out = [f"lost {k}" for k in ref.records if k not in got.records][:n]
    out += [f"extra {k}" for k in got.records if k not in ref.records][:n]
    out += [f"changed {k}" for k, v in ref.records.items() if k in got.records
            and sorted(got.records[k]) != sorted(v)][:n]
    return out


# ------------------------------------------------------------------------------- the child side
class KillPoint:
    """Installed in the child: counts calls into Neo4j and, after call ``at`` plus ``delay`` seconds,
    SIGKILLs ``pid`` (the Neo4j JVM, or the child itself)."""

    def __init__(self, at: int | None, delay: float, pid: int | None, log: Path | None) -> None:
        self.at, self.delay, self.pid, self.log = at, delay, pid, log
        self.calls = 0
        self.first: float | None = None
        self.last: float | None = None
        self.trace: list[tuple[str, float]] = []  # (what, when) of every call
        self.fired = False
        self._lock = threading.Lock()

    def tick(self, what: str) -> None:
        with self._lock:
            self.calls += 1
            self.last = time.time()
            self.first = self.first or self.last
            self.trace.append((what, self.last))
            fire = self.at is not None and self.calls == self.at and not self.fired
            if fire:
                self.fired = True
        if fire:
            timer = threading.Timer(self.delay, self._kill, args=(what,))
            timer.daemon = True  # a command that ends before its kill point just ends
            timer.start()

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "first": self.first, "last": self.last, "trace": self.trace}

    def _kill(self, what: str) -> None:
        pid = self.pid or os.getpid()
        if self.log is not None:
            self.log.write_text(json.dumps({"call": self.at, "what": what, "pid": pid, "time": time.time()}))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    @contextlib.contextmanager
    def installed(self) -> Iterator[KillPoint]:
        """:meth:`install` for the block only (in-process use, e.g. counting a command's calls)."""
        from moakg.kg.connection import Neo4jConnection

        saved = {name: Neo4jConnection.__dict__[name] for name in ("write", "read", "query", "session")}
        self.install()
        try:
            yield self
        finally:
            for name, fn in saved.items():
                setattr(Neo4jConnection, name, fn)

    def install(self) -> None:
        from moakg.kg.connection import Neo4jConnection

        kp = self
        for name in ("write", "read", "query"):
            orig = getattr(Neo4jConnection, name)

            def wrapped(self: Any, *a: Any, _orig: Any = orig, _name: str = name, **kw: Any) -> Any:
                kp.tick(_name)
                return _orig(self, *a, **kw)

            setattr(Neo4jConnection, name, wrapped)
        orig_session = Neo4jConnection.session

        @contextlib.contextmanager
        def session(self: Any, **config: Any) -> Iterator[Any]:
            kp.tick("session")
            with orig_session(self, **config) as s:
                yield s

        Neo4jConnection.session = session  # type: ignore[method-assign]


def _watch_bulk(kp: KillPoint, out: Path | None, after_restart: str | None) -> None:
    """``moakg ingest all --bulk`` in the child: note when each phase starts (staging is everything before
    the dump), and kill at ``after_restart``."""
    from moakg.kg import bulk_import
    from moakg.kg.local_server import LocalNeo4j

    phases: dict[str, dict[str, float]] = {}

    def mark(name: str) -> None:
        phases[name] = {"call": kp.calls, "time": time.time()}
        if out is not None:
            out.write_text(json.dumps(phases))

    real_dump, real_stop, real_admin, real_start = (bulk_import.dump_graph, LocalNeo4j.stop, LocalNeo4j.admin,
                                                    LocalNeo4j.start)

    def dump_graph(*args: Any, **kw: Any) -> Any:
        mark("dump")
        return real_dump(*args, **kw)

    def stop(self: Any, *args: Any, **kw: Any) -> Any:
        mark("stop")
        return real_stop(self, *args, **kw)

    def admin(self: Any, *args: Any, **kw: Any) -> Any:
        mark("import")
        try:
            return real_admin(self, *args, **kw)
        finally:
            mark("import_done")

    def start(self: Any, *args: Any, **kw: Any) -> Any:
        st = real_start(self, *args, **kw)
        mark("restarted")
        if after_restart is not None:
            os.kill(os.getpid() if after_restart == "client" else st.pid, signal.SIGKILL)
        return st

    bulk_import.dump_graph = dump_graph
    LocalNeo4j.stop, LocalNeo4j.admin, LocalNeo4j.start = stop, admin, start  # type: ignore[method-assign]


def _child(argv: list[str]) -> None:
    """``python -m moakg.benchmarks.bench_faults child [--kill-at N --delay S --pid P] -- moakg args``."""
    p = argparse.ArgumentParser(prog="bench_faults child")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--pid", type=int, help="process to kill (default: this one)")
    p.add_argument("--kill-log", type=Path)
    p.add_argument("--calls-out", type=Path, help="write the number of calls made here at exit")
    p.add_argument("--retry-s", type=float, help="the driver's max_transaction_retry_time (default 30)")
    p.add_argument("--light", action="store_true",
                   help="`ingest ...` only, through the ingest commands alone: starts in seconds (no torch), "
                        "without the top-level error reporting (for a child that is killed anyway)")
    p.add_argument("--phases-out", type=Path, help="--bulk: record the call count at each phase here")
    p.add_argument("--after-restart", choices=["client", "server"],
                   help="--bulk: SIGKILL this as soon as the server is up again after neo4j-admin import")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if a.retry_s is not None:
        import neo4j

        from moakg.kg import connection

        real = neo4j.GraphDatabase.driver

        class _GD:
            @staticmethod
            def driver(*d: Any, **kw: Any) -> Any:
                kw["max_transaction_retry_time"] = a.retry_s
                return real(*d, **kw)

        connection.GraphDatabase = _GD  # type: ignore[assignment]
    kp = KillPoint(a.kill_at, a.delay, a.pid, a.kill_log)
    kp.install()
    if a.calls_out is not None:
        import atexit

        atexit.register(lambda: a.calls_out.write_text(json.dumps(kp.summary())))
    if a.phases_out is not None or a.after_restart is not None:
        _watch_bulk(kp, a.phases_out, a.after_restart)
    if a.light:
        from moakg.ingest.commands import ingest_app

        if args[:1] != ["ingest"]:
            raise SystemExit("--light runs `ingest ...` only")
        ingest_app(args[1:], prog_name="moakg ingest")
        return
    from moakg.cli import app

    app(args, prog_name="moakg")


# ------------------------------------------------------------------------------ the harness side
class Server:
    """A throw-away local Neo4j under ``root`` on free ports (heap 1g), with snapshots of its data."""

    def __init__(self, root: Path) -> None:
        from moakg.kg.local_server import LocalNeo4j, free_port

        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.local = LocalNeo4j(home=root / "neo4j", bolt_port=free_port(), http_port=free_port(), heap="1g",
                                pagecache="256m")

    @property
    def pid(self) -> int | None:
        st = self.local.state()
        return st.pid if st else None

    def env(self) -> dict[str, str]:
        """The environment of a user of this local server (what `moakg` finds without NEO4J_URI)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
        env.update(MOAKG_HOME=str(self.root / "moakg"), MOAKG_NEO4J_HOME=str(self.local.home),
                   MOAKG_BOLT_PORT=str(self.local.bolt_port), MOAKG_HTTP_PORT=str(self.local.http_port),
                   PYTHONUNBUFFERED="1")
        return env

    def settings(self) -> Any:
        from moakg.kg.connection import Neo4jSettings

        return Neo4jSettings(uri=f"bolt://127.0.0.1:{self.local.bolt_port}", password=self.local.password(),
                             local=True)

    def conn(self) -> Any:
        from moakg.kg.connection import Neo4jConnection

        return Neo4jConnection(self.settings())

    def start(self) -> None:
        """Start the server from a short-lived process, as `moakg neo4j start` does: the JVM is then
        nobody's child here. (Started from this process, a JVM that another process stops, e.g. a bulk
        load's restart, would linger as this process's zombie, and LocalNeo4j.stop would wait its whole
        grace period for it.)"""
        code = ("import sys; from pathlib import Path; from moakg.kg.local_server import LocalNeo4j; "
                "LocalNeo4j(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), heap=sys.argv[4], "
                "pagecache=sys.argv[5]).start()")
        env = {k: v for k, v in os.environ.items() if k != "NEO4J_PASSWORD"}
        proc = subprocess.run([sys.executable, "-c", code, str(self.local.home), str(self.local.bolt_port),
                               str(self.local.http_port), self.local.heap, self.local.pagecache],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"Neo4j did not start: {proc.stderr[-2000:]}")

    def ensure_up(self, timeout: float = 60.0) -> None:
        """Start the server unless it answers on Bolt. A JVM killed a moment ago may still look alive
        (exiting, or a zombie its parent has not reaped yet): it is waited for, then killed for good."""
        from moakg.kg.local_server import _port_open

        deadline = time.monotonic() + timeout
        while self.local.state() is not None and not _port_open(self.local.bolt_port):
            if time.monotonic() > deadline:
                self.kill()
                break
            time.sleep(0.2)
        if self.local.state() is None:
            self.start()

    def kill(self) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.local.state() is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        self.local.stop()

    def drop_export_cache(self) -> None:
        """The export cache of MOAKG_HOME (a command that hits it reads far less from Neo4j)."""
        shutil.rmtree(self.root / "moakg" / "cache", ignore_errors=True)

    def init(self) -> None:
        """``moakg db init``, in this process (set-up, not under test)."""
        from moakg.kg.schema import init_schema

        with self.conn() as c:
            init_schema(c)

    def clear(self) -> None:
        """``moakg db clear --yes``, in this process (set-up, not under test)."""
        from moakg.kg.maintenance import clear_graph

        with self.conn() as c:
            clear_graph(c)

    def snapshot(self, name: str) -> None:
        """Copy the data directory (the server stopped cleanly for it, then started again)."""
        self.stop()
        dest = self.root / "snapshots" / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(self.local.home / "data", dest)
        self.start()

    def restore(self, name: str) -> None:
        self.kill()
        shutil.rmtree(self.local.home / "data")
        shutil.copytree(self.root / "snapshots" / name, self.local.home / "data")
        self.start()


@dataclass
class ChildResult:
    rc: int
    seconds: float
    calls: dict[str, Any] | None
    killed: dict[str, Any] | None
    stdout: str
    stderr: str

    @property
    def active(self) -> float:
        """Seconds between the command's first and last call into Neo4j."""
        c = self.calls or {}
        return (c["last"] - c["first"]) if c.get("first") else 0.0

    def after_longest_pause(self) -> int:
        """The first call after the longest time without calls (e.g. a training's write-back), 1-based."""
        times = [t for _, t in (self.calls or {}).get("trace", [])]
        if len(times) < 2:
            return 1
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        return gaps.index(max(gaps)) + 2

    @property
    def error_lines(self) -> list[str]:
        """The ``error:`` lines on stderr (progress bars, which end in carriage returns, set apart; the
        text of a bar left open before the error is cut off)."""
        return [seg[seg.index("error: "):].strip() for ln in self.stderr.split("\n") for seg in ln.split("\r")
                if "error: " in seg]

    @property
    def one_line_error(self) -> bool:
        """The command failed with one clear line: one ``error:`` line, no traceback, not a bug report."""
        lines = self.error_lines
        return (self.rc == 1 and len(lines) == 1 and "unexpected" not in lines[0]
                and "Traceback" not in self.stderr and "will be retried" not in self.stderr)


def run_child(server: Server, moakg_args: Sequence[str], *, kill_at: int | None = None, delay: float = 0.0,
              kill_pid: int | None = None, retry_s: float | None = None, timeout: float = 1800,
              workdir: Path | None = None, extra: Sequence[str] = (), light: bool = False) -> ChildResult:
    """Run ``moakg <moakg_args>`` in a child against ``server``, optionally with a kill point."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="child-", dir=server.root))
    calls_out, kill_log = workdir / "calls", workdir / "killed.json"
    calls_out.unlink(missing_ok=True)
    kill_log.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "moakg.benchmarks.bench_faults", "child", "--calls-out", str(calls_out),
           "--kill-log", str(kill_log)]
    if kill_at is not None:
        cmd += ["--kill-at", str(kill_at), "--delay", f"{delay:.3f}"]
        if kill_pid is not None:
            cmd += ["--pid", str(kill_pid)]
    if retry_s is not None:
        cmd += ["--retry-s", str(retry_s)]
    cmd += [*extra, *(["--light"] if light else []), "--", *moakg_args]
    for attempt in range(6):
        t0 = time.perf_counter()
        with open(workdir / "stdout", "w") as out, open(workdir / "stderr", "w") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=server.env(), cwd=REPO.parent)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        seconds = time.perf_counter() - t0
        calls = json.loads(calls_out.read_text()) if calls_out.exists() else None
        killed = json.loads(kill_log.read_text()) if kill_log.exists() else None
        stderr = (workdir / "stderr").read_text()
        # A traceback before the first call into Neo4j: the working tree did not import (a file caught in
        # the middle of an edit); wait and run the command again, it is not the crash under test.
        broken = rc == 1 and not (calls or {}).get("calls") and "Traceback" in stderr and any(
            e in stderr for e in ("ImportError", "SyntaxError", "NameError", "AttributeError"))
        if not broken or attempt == 5:
            break
        log(f"`moakg {' '.join(moakg_args[:3])}` did not import ({stderr.strip().splitlines()[-1][:120]}); "
            "again in 30 s")
        time.sleep(30)
    return ChildResult(rc, seconds, calls, killed, (workdir / "stdout").read_text(),
                       (workdir / "stderr").read_text())


def source_config(section: str | Sequence[str], dest: Path, config: Path = DEMO_CONFIG) -> Path:
    """A sources.toml with only ``section`` (or these sections) of ``config``, its paths made absolute."""
    sections = [section] if isinstance(section, str) else list(section)
    raw = tomllib.loads(config.read_text())
    base = config.resolve().parent
    lines = []
    for name in sections:
        lines.append(f"[{name}]")
        for key, value in raw[name].items():
            def absolute(v: Any) -> Any:
                return str((base / v).resolve()) if isinstance(v, str) and (base / v).exists() else v
            value = [absolute(v) for v in value] if isinstance(value, list) else absolute(value)
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines))
    return dest



# ----------------------------------------------------------------------------------- scenarios
#: the sources of demo/sources.toml in the order `moakg ingest all` runs them
SECTIONS = ("l1000", "repurposing_hub", "drugbank", "l1000_consensus", "overexpression", "string", "ppi",
            "go")
#: the driver's retry time in the children of the sweep (seconds; the default, 30, is measured once)
FAST_RETRY_S = 2.0


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    tried: int = 0
    recovered: int = 0
    lost: int = 0
    duplicated: int = 0
    half_written: int = 0
    one_line: str = ""  # errors reported in one line / crashes that should report one
    notes: list[str] = field(default_factory=list)
    _one: list[int] = field(default_factory=lambda: [0, 0], repr=False)

    def add_diff(self, diff: dict[str, int]) -> None:
        self.lost += diff["lost"]
        self.duplicated += diff["duplicated"]
        self.half_written += diff["half_written"]

    def error_checked(self, ok: bool) -> None:
        self._one[0] += int(ok)
        self._one[1] += 1
        self.one_line = f"{self._one[0]}/{self._one[1]}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class SourceRef:
    """A source's clean ingest: its config, the graph after it, its calls and active seconds, its runs."""

    section: str
    config: Path
    fp: Fingerprint
    calls: int
    active: float
    runs: list[str]


def ingest_args(config: Path) -> list[str]:
    return ["ingest", "all", "--config", str(config)]


def reference_ingest(server: Server, sections: Sequence[str], folder: Path) -> dict[str, SourceRef]:
    """Ingest ``sections`` one after the other (a clean single ingest), fingerprinting after each."""
    refs: dict[str, SourceRef] = {}
    before: set[str] = set()
    for sec in sections:
        cfg = source_config(sec, folder / f"{sec}.toml")
        r = run_child(server, ingest_args(cfg))
        if r.rc != 0:
            raise RuntimeError(f"clean ingest of {sec} failed: {r.stderr[-2000:]}")
        with server.conn() as c:
            fp = fingerprint(c)
        runs = sorted(set(fp.runs) - before)
        before |= set(fp.runs)
        refs[sec] = SourceRef(sec, cfg, fp, (r.calls or {}).get("calls", 0), r.active, runs)
        log(f"reference {sec}: {r.seconds:.0f} s ({r.active:.0f} s writing, {refs[sec].calls} calls), "
            f"{sum(fp.nodes.values())} nodes, {sum(fp.rels.values())} relationships")
    return refs


def run_states(server: Server, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    with server.conn() as c:
        rows = c.query("MATCH (r) WHERE (r:IngestRun OR r:ModelRun) AND r.id IN $ids "
                       "RETURN r.id AS id, r.status AS status, r.attempts AS attempts", ids=list(ids))
    return {r["id"]: r for r in rows}


def crash(server: Server, args: Sequence[str], target: str, delay: float, retry_s: float | None,
          kill_at: int = 1, light: bool = False) -> ChildResult:
    """Run ``moakg args`` and SIGKILL ``target`` (``server`` or ``client``) ``delay`` s after its call
    ``kill_at``; a killed server is started again once the command has given up."""
    pid = server.pid if target == "server" else None
    r = run_child(server, args, kill_at=kill_at, delay=delay, kill_pid=pid, retry_s=retry_s, light=light)
    server.ensure_up()
    return r


def ingest_sweep(server: Server, refs: dict[str, SourceRef], plan: dict[str, list[str]],
                 rows: dict[str, Row], rng: random.Random) -> None:
    """For each source (from the clean graph of the sources before it): the crashes of ``plan``, one
    after the other (each a new try of the same ingest), then the same ingest once more, compared with
    the clean ingest of that source."""
    from moakg.kg.maintenance import clear_graph

    with server.conn() as c:
        clear_graph(c)
    default_retry_done = False
    for sec, kinds in plan.items():
        ref = refs[sec]
        args = ingest_args(ref.config)
        last_attempts = 0
        crashes: list[tuple[str, ChildResult, dict]] = []
        late = True
        for kind in kinds:
            row = rows[f"ingest: {'Neo4j' if kind == 'server' else 'client'} killed"]
            if kind == "server" and late:
                # once per source: as the run's end is marked, after every batch and the compound
                # identity step (the window where a re-run meets the source's own finished work)
                kill_at, delay, late = max(ref.calls - 1, 1), 0.0, False
            else:
                # after a random call into Neo4j (the last one, the summary printed at the end, aside),
                # plus a random part of the mean time between calls: between batches or inside a
                # transaction
                kill_at = rng.randint(1, max(ref.calls - 1, 1))
                delay = rng.uniform(0.0, ref.active / max(ref.calls, 1))
            retry = None if kind == "server" and not default_retry_done else FAST_RETRY_S
            default_retry_done |= kind == "server"
            r = crash(server, args, kind, delay, retry, kill_at=kill_at)
            state = run_states(server, ref.runs)
            crashes.append((kind, r, state))
            row.tried += 1
            statuses = {v["status"] for v in state.values()}
            attempts = max((v["attempts"] or 0 for v in state.values()), default=0)
            hit = r.killed is not None
            if kind == "server" and hit and "completed" not in statuses:
                row.error_checked(r.one_line_error)
                if not r.one_line_error:
                    row.notes.append(f"{sec}: not one line: rc {r.rc}, {r.error_lines or r.stderr[-300:]}")
                elif retry is None:
                    row.notes.append(f"default retry: gave up after {r.seconds:.0f} s: {r.error_lines[0]}")
            if kind == "client" and hit and r.rc != -signal.SIGKILL:
                row.notes.append(f"{sec}: client not killed (rc {r.rc})")
            if not hit:
                row.notes.append(f"{sec}: ingest ended before its kill point (call {kill_at}, {delay:.1f} s)")
            if attempts not in (last_attempts, last_attempts + 1):
                row.notes.append(f"{sec}: attempts went {last_attempts} -> {attempts}")
            last_attempts = attempts
            log(f"{sec}: {kind} killed {delay:.1f} s after call {kill_at}/{ref.calls}, rc {r.rc}, "
                f"runs {[(v['status'], v['attempts']) for v in state.values()]}, "
                f"{(r.error_lines or [''])[0][:160]}")
        final = run_child(server, args)
        with server.conn() as c:
            fp = fingerprint(c)
        diff = compare(ref.fp, fp)
        state = run_states(server, ref.runs)
        ok_runs = (all(v["status"] == "completed" for v in state.values()) and len(state) == len(ref.runs)
                   and all(v["attempts"] == last_attempts + 1 for v in state.values()))
        same = fp.checksum == ref.fp.checksum and fp.nodes == ref.fp.nodes and fp.rels == ref.fp.rels
        recovered = final.rc == 0 and same and ok_runs and not any(diff.values())
        for kind, _r, _s in crashes:
            rows[f"ingest: {'Neo4j' if kind == 'server' else 'client'} killed"].recovered += int(recovered)
        for kind in set(kinds):  # one re-run recovers both kinds of crash: its differences count in both
            rows[f"ingest: {'Neo4j' if kind == 'server' else 'client'} killed"].add_diff(diff)
        if not recovered:
            rows["ingest: Neo4j killed"].notes.append(
                f"{sec}: NOT recovered: rc {final.rc}, runs {state}, diff {diff}, "
                f"{diff_examples(ref.fp, fp)}")
        log(f"{sec}: re-run rc {final.rc}, runs {[(v['status'], v['attempts']) for v in state.values()]}, "
            f"{'equal to the clean ingest' if same else 'DIFFERENT: ' + str(diff)}")




# ---------------------------------------------------------------------------------- bulk load
#: the sources of the bulk scenario: compounds (staged in the graph, merged there) and a spooled
#: relationship type (INTERACTS_WITH, imported from files); small enough for a load per kill point
BULK_SECTIONS = ("drugbank", "string")
#: (phase, what is killed, recovery): A = `moakg db clear --yes` + a new --bulk load, B = `moakg ingest all`
BULK_POINTS = (("staging", "client", "A"), ("staging", "server", "B"), ("dump", "client", "B"),
               ("dump", "server", "A"), ("import", "admin", "A"), ("import", "client", "B"),
               ("after", "client", "B"), ("after", "server", "A"))


def find_procs(*needles: str) -> list[int]:
    """Pids of processes whose command line holds every needle (the neo4j-admin JVM of a bulk load)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmd for n in needles):
            out.append(int(d.name))
    return out


def _kill_during_import(root: Path, delay: float, done: threading.Event, killed: list[int],
                        victim: Sequence[str]) -> None:
    """Wait for the bulk load's neo4j-admin JVM (under ``root``), let it work ``delay`` s, then SIGKILL the
    processes whose command line holds every string of ``victim`` (the import tool, or the client)."""
    while not done.is_set():
        if find_procs("org.neo4j.cli.AdminTool", str(root)):
            if done.wait(delay):
                return
            for pid in find_procs(*victim):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            return
        time.sleep(0.05)


def _wait_gone(root: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while find_procs("org.neo4j.cli.AdminTool", str(root)) and time.monotonic() < deadline:
        time.sleep(0.5)


def constraints(server: Server) -> int:
    with server.conn() as c:
        return c.query("SHOW CONSTRAINTS YIELD name RETURN count(*) AS n")[0]["n"]


def bulk_sweep(root: Path, rows: dict[str, Row], rng: random.Random,
               sections: Sequence[str] = BULK_SECTIONS) -> None:
    """``moakg ingest all --bulk`` killed in each phase (:data:`BULK_POINTS`), then recovered as README
    says; the graph must equal a clean load's and no run may say ``completed`` over a partial graph."""
    server = Server(root)
    server.start()
    try:
        config = source_config(list(sections), root / "bulk.toml")
        bulk = ["ingest", "all", "--config", str(config), "--bulk"]
        server.init()
        clean = run_child(server, ingest_args(config))  # the transactional load is the reference
        assert clean.rc == 0, clean.stderr[-2000:]
        with server.conn() as c:
            ref = fingerprint(c)
        server.clear()
        phases_file = root / "phases.json"
        r = run_child(server, bulk, extra=["--phases-out", str(phases_file)])
        assert r.rc == 0, r.stderr[-2000:]
        phases = json.loads(phases_file.read_text())
        with server.conn() as c:
            got = fingerprint(c)
        diff = compare(ref, got)
        log(f"bulk reference: {r.seconds:.0f} s, phases {phases}; bulk graph vs transactional: {diff}")
        if any(diff.values()):
            rows["bulk: clean load"].notes.append(
                f"a clean bulk load differs from the transactional one: {diff}, {diff_examples(ref, got)}")
        staging_calls = int(phases["dump"]["call"])
        dump_calls = int(phases["stop"]["call"])
        import_s = phases["import_done"]["time"] - phases["import"]["time"]
        for phase, target, recovery in BULK_POINTS:
            row = rows[f"bulk: {phase}"]
            row.tried += 1
            server.clear()
            extra: list[str] = []
            kill_at, delay, pid = None, 0.0, None
            done, admin_killed = threading.Event(), []
            workdir = Path(tempfile.mkdtemp(prefix="child-", dir=server.root))
            if phase in ("staging", "dump"):
                lo, hi = (1, staging_calls - 1) if phase == "staging" else (staging_calls, dump_calls - 1)
                kill_at = rng.randint(lo, max(lo, hi))
                pid = server.pid if target == "server" else None
            elif phase == "import":
                # the import tool, or the client while neo4j-admin works (the tool goes on alone, and the
                # server stays stopped)
                delay = rng.uniform(0.2, 0.8) * import_s
                victim = (("org.neo4j.cli.AdminTool", str(server.root)) if target == "admin" else
                          ("moakg.benchmarks.bench_faults", "child", str(workdir)))
                watcher = threading.Thread(target=_kill_during_import, daemon=True,
                                           args=(server.root, delay, done, admin_killed, victim))
                watcher.start()
            else:
                extra = ["--after-restart", target]
            r = run_child(server, bulk, kill_at=kill_at, delay=delay, kill_pid=pid, retry_s=FAST_RETRY_S,
                          extra=extra, workdir=workdir)
            done.set()
            _wait_gone(server.root)  # an orphaned neo4j-admin finishes its import
            hit = r.killed is not None or bool(admin_killed) or bool(extra)
            server.ensure_up()
            # what the crash left: a run that says completed must sit in the complete graph
            with server.conn() as c:
                left = fingerprint(c)
            statuses = sorted({v["status"] for v in left.runs.values() if v["label"] == "IngestRun"})
            partial = compare(ref, left)
            complete = not any(partial.values())
            if "completed" in statuses and not complete:
                row.notes.append(f"{phase}/{target}: runs {statuses} in a partial graph {partial}")
            n_constraints = constraints(server)
            error_ok = r.one_line_error if r.rc == 1 else None
            if error_ok is not None:
                row.error_checked(error_ok)
                if not error_ok:
                    row.notes.append(f"{phase}/{target}: not one line: {r.error_lines or r.stderr[-400:]}")
            log(f"bulk {phase}/{target}: rc {r.rc} ({'hit' if hit else 'MISSED'}), runs {statuses}, graph "
                f"{'complete' if complete else 'partial'}, {n_constraints} constraints, "
                f"{(r.error_lines or [''])[0][:200]}")
            if not hit:
                row.notes.append(f"{phase}/{target}: the load ended before its kill point")
            # the documented recovery
            if recovery == "A":
                steps = [run_child(server, ["db", "clear", "--yes"]), run_child(server, bulk)]
            else:
                steps = [run_child(server, ingest_args(config))]
                if steps[0].rc == 1 and "run `moakg db init` first" in " ".join(steps[0].error_lines):
                    # as the one-line error says (the import's schema step never ran)
                    row.notes.append(f"{phase}/{target}: `moakg ingest all` said: {steps[0].error_lines[0]}")
                    steps += [run_child(server, ["db", "init"]), run_child(server, ingest_args(config))]
            with server.conn() as c:
                got = fingerprint(c)
            diff = compare(ref, got)
            runs_ok = (all(v["status"] == "completed" for v in got.runs.values())
                       and set(got.runs) == set(ref.runs))
            ok = (steps[-1].rc == 0 and not any(diff.values()) and runs_ok
                  and constraints(server) == n_constraints_ref(server))
            row.recovered += int(ok)
            row.add_diff(diff)
            if not ok:
                errors = [st.error_lines for st in steps]
                row.notes.append(f"{phase}/{target}: recovery {recovery} failed: rcs "
                                 f"{[st.rc for st in steps]}, {errors}, diff {diff}, "
                                 f"runs {got.runs}, {diff_examples(ref, got)}")
            log(f"bulk {phase}/{target}: recovery {recovery}: {'ok' if ok else 'FAILED'} {diff}")
    finally:
        server.kill()


def n_constraints_ref(server: Server) -> int:
    """The constraints `moakg db init` creates."""
    from moakg.kg.schema import current_schema, schema_statements

    return sum(1 for st in schema_statements(current_schema()) if "CONSTRAINT" in st.upper())



# ------------------------------------------------------------------------------------ outages
#: a small training (a minute here): enough for a ModelRun with predictions and a checkpoint
TRAIN_ARGS = ["train", "--task", "moa", "--model", "sage", "--split", "scaffold", "--setting", "phenotype",
              "--seeds", "0", "--epochs", "3", "--patience", "3", "--hidden", "16", "--no-baselines",
              "--top-k", "3"]


def _restart_when_killed(server: Server, kill_log: Path, done: threading.Event) -> None:
    """Start the server again as soon as the child has killed it (it goes on working meanwhile)."""
    while not done.is_set():
        if kill_log.exists():
            server.kill()  # reaps it and clears its state
            server.start()
            return
        time.sleep(0.1)


def outage(server: Server, args: Sequence[str], target: str, kill_at: int, delay: float = 0.0,
           restart_during: bool = False, retry_s: float | None = FAST_RETRY_S) -> ChildResult:
    """``moakg args`` with Neo4j (or the client) killed after call ``kill_at``; the server is started again
    once the command ended or, with ``restart_during``, at once (the command may ride it out). The export
    cache goes first, so that the command reads the graph (and makes the calls it made before)."""
    server.drop_export_cache()
    if not restart_during:
        return crash(server, args, target, delay, retry_s, kill_at=kill_at)
    workdir = Path(tempfile.mkdtemp(prefix="child-", dir=server.root))
    done = threading.Event()
    t = threading.Thread(target=_restart_when_killed, args=(server, workdir / "killed.json", done),
                         daemon=True)
    t.start()
    r = run_child(server, args, kill_at=kill_at, delay=delay, kill_pid=server.pid, retry_s=None,
                  workdir=workdir)
    done.set()
    t.join()
    server.ensure_up()
    return r


def _model_state(server: Server) -> dict[str, Any]:
    with server.conn() as c:
        runs = c.query("MATCH (r:ModelRun) RETURN r.id AS id, r.status AS status, r.attempts AS attempts "
                       "ORDER BY id")
        preds = c.query("MATCH (:Compound)-[p:PREDICTED_MOA]->(:MoA) RETURN p.run AS run, "
                        "p.origin AS origin, count(*) AS n ORDER BY run, origin")
        dups = c.query("MATCH (a:Compound)-[p:PREDICTED_MOA]->(b:MoA) WITH a, b, p.run AS run, count(*) AS n "
                       "WHERE n > 1 RETURN count(*) AS n")[0]["n"]
        expl = c.query("MATCH (e:Explanation) RETURN count(e) AS n")[0]["n"]
    return {"runs": runs, "predictions": preds, "duplicates": dups, "explanations": expl}


def _check_outage(row: Row, what: str, r: ChildResult, expect_error: bool = True) -> None:
    hit = r.killed is not None
    if hit and r.rc != 0 and expect_error:
        ok = r.one_line_error if r.rc == 1 else r.rc == -signal.SIGKILL
        if r.rc == 1:
            row.error_checked(ok)
        if not ok:
            row.notes.append(f"{what}: rc {r.rc}, not one line: {r.error_lines or r.stderr[-600:]}")
    if not hit:
        row.notes.append(f"{what}: ended before its kill point")


def outage_sweep(server: Server, root: Path, rows: dict[str, Row], rng: random.Random) -> None:
    """Neo4j killed (or restarted, or the client killed) while train, predict, explain and query run, on
    the demo graph the ingest scenario left; each followed by the same command again."""
    root.mkdir(parents=True, exist_ok=True)
    # -- query run: Neo4j down, then killed while a query runs
    row = rows["outage: query run"]
    server.kill()
    r = run_child(server, ["query", "run", "graph_summary"])
    row.tried += 1
    row.error_checked(r.one_line_error)
    row.recovered += int(r.one_line_error)
    if not r.one_line_error:
        row.notes.append(f"server down: {r.error_lines or r.stderr[-400:]}")
    log(f"query run, Neo4j down: rc {r.rc}: {(r.error_lines or [''])[0]}")
    server.start()
    r = outage(server, ["query", "run", "graph_summary"], "server", kill_at=1)
    row.tried += 1
    _check_outage(row, "killed during the query", r)
    again = run_child(server, ["query", "run", "graph_summary"])
    row.recovered += int(again.rc == 0 and "relationship" in again.stdout)
    log(f"query run, Neo4j killed: rc {r.rc}: {(r.error_lines or [''])[0]}; again rc {again.rc}")

    # -- predict's input: three labelled compounds taken out of the graph (given back by predict)
    with server.conn() as c:
        picked = c.query(
            "MATCH (c:Compound)-[:HAS_MOA]->(:MoA), (c)-[:HAS_SIGNATURE]->(s:Signature {kind: 'consensus'}) "
            "WHERE c.smiles IS NOT NULL WITH DISTINCT c, s ORDER BY c.id LIMIT 3 "
            "RETURN c.id AS id, c.smiles AS smiles, s.z_landmark AS z")
        landmarks = [x["s"] for x in c.query(
            "MATCH (g:Gene) WHERE g.is_landmark = true RETURN g.symbol AS s ORDER BY s")]
        c.query("UNWIND $ids AS k MATCH (c:Compound {id: k}) OPTIONAL MATCH (c)-[:HAS_SIGNATURE]->(s) "
                "DETACH DELETE c, s", ids=[x["id"] for x in picked])
    compounds, signatures = root / "new.tsv", root / "new_signatures.tsv"
    compounds.write_text("id\tsmiles\n" + "".join(f"new{i}\t{x['smiles']}\n" for i, x in enumerate(picked)))
    signatures.write_text("id\t" + "\t".join(landmarks) + "\n" + "".join(
        f"new{i}\t" + "\t".join(f"{v:.4f}" for v in x["z"]) + "\n" for i, x in enumerate(picked)))

    # -- train
    row = rows["outage: train"]
    server.drop_export_cache()
    ref = run_child(server, TRAIN_ARGS)
    assert ref.rc == 0, ref.stderr[-3000:]
    clean = _model_state(server)
    [run] = [x["id"] for x in clean["runs"]]
    calls, write_from = ref.calls["calls"], ref.after_longest_pause()
    log(f"train reference: {ref.seconds:.0f} s, {calls} calls, write-back from call {write_from}: {clean}")
    points = [("Neo4j killed during the export", "server", rng.randint(2, max(2, write_from - 2)), False),
              ("Neo4j killed during the write-back", "server", rng.randint(write_from, calls - 1), False),
              ("client killed during the write-back", "client", rng.randint(write_from, calls - 1), False),
              ("Neo4j restarted while it trains", "server", write_from - 1, True)]
    for what, target, at, during in points:
        row.tried += 1
        r = outage(server, TRAIN_ARGS, target, at, delay=rng.uniform(0, 0.1), restart_during=during)
        left = _model_state(server)
        n_clean = clean["predictions"][0]["n"]
        bad = [x for x in left["runs"] if x["status"] == "completed"
               and sum(p["n"] for p in left["predictions"] if p["run"] == x["id"]) != n_clean]
        if bad:
            row.notes.append(f"{what}: a partial ModelRun says completed: {left}")
        _check_outage(row, what, r, expect_error=not during)
        if during:
            outcome = "rode it out" if r.rc == 0 else f"failed: {r.error_lines}"
            row.notes.append(f"{what}: the command {outcome}")
        server.drop_export_cache()
        again = run_child(server, TRAIN_ARGS)
        after = _model_state(server)
        ok = (again.rc == 0 and after["predictions"] == clean["predictions"] and after["duplicates"] == 0
              and [x["status"] for x in after["runs"]] == ["completed"])
        row.recovered += int(ok)
        if not ok:
            row.notes.append(f"{what}: NOT recovered: rc {again.rc} {again.error_lines}, {after}")
        log(f"train, {what} (call {at}): rc {r.rc} {(r.error_lines or [''])[0][:160]}; left {left['runs']}; "
            f"again rc {again.rc}, {after['runs']}, predictions {after['predictions']}")

    # -- predict (from the graph before it, restored for every kill point)
    row = rows["outage: predict"]
    predict = ["predict", "--run", run, "--compounds", str(compounds), "--signatures", str(signatures),
               "--top-k", "3", "--paths", "0"]
    server.snapshot("before-predict")
    server.drop_export_cache()
    ref = run_child(server, predict)
    assert ref.rc == 0, ref.stderr[-3000:]
    with server.conn() as c:
        ref_fp = fingerprint(c)
    calls, write_from = ref.calls["calls"], ref.after_longest_pause()
    with server.conn() as c:
        n_new_predictions = c.query("MATCH ()-[p:PREDICTED_MOA]->() WHERE p.origin IS NOT NULL "
                                    "RETURN count(p) AS n")[0]["n"]
    log(f"predict reference: {ref.seconds:.0f} s, {calls} calls, {n_new_predictions} new predictions")
    predict_points = (("Neo4j killed while it adds the compounds", "server", rng.randint(3, calls // 2)),
                      ("client killed while it writes", "client", rng.randint(write_from, calls - 1)))
    for what, target, at in predict_points:
        row.tried += 1
        server.restore("before-predict")
        r = outage(server, predict, target, at, delay=rng.uniform(0, 0.1))
        left = _model_state(server)
        with server.conn() as c:
            fp = fingerprint(c)
        if [x["status"] for x in left["runs"]] != ["completed"]:
            row.notes.append(f"{what}: the ModelRun is {left['runs']} (predict must not change it)")
        # the new compounds' IngestRun covers the compounds, signatures and edges (the predictions are
        # written after it, in one transaction: all of them, or none)
        added = compare(without(ref_fp, PREDICTIONS), without(fp, PREDICTIONS))
        if any(v["status"] == "completed" for v in fp.runs.values() if v["source"] == "new_compounds") \
                and any(added.values()):
            row.notes.append(f"{what}: the new compounds' run says completed over a partial graph {added}")
        n_pred = {k: len(v) for k, v in fp.records.items() if k[0] == "rel" and k[1] in PREDICTIONS}
        ref_pred = {k: len(v) for k, v in ref_fp.records.items() if k[0] == "rel" and k[1] in PREDICTIONS}
        if sum(n_pred.values()) not in (sum(ref_pred.values()), sum(ref_pred.values()) - n_new_predictions):
            row.notes.append(f"{what}: {sum(n_pred.values())} predictions after the crash (clean "
                             f"{sum(ref_pred.values())}, of them {n_new_predictions} of this predict)")
        _check_outage(row, what, r)
        server.drop_export_cache()
        again = run_child(server, predict)
        with server.conn() as c:
            fp = fingerprint(c)
        diff = compare(ref_fp, fp)
        row.add_diff(diff)
        ok = again.rc == 0 and not any(diff.values()) and fp.runs == {
            k: {**v, "attempts": fp.runs[k]["attempts"]} for k, v in ref_fp.runs.items()}
        row.recovered += int(ok)
        if not ok:
            row.notes.append(f"{what}: NOT recovered: rc {again.rc} {again.error_lines}, {diff}, "
                             f"{diff_examples(ref_fp, fp)}")
        log(f"predict, {what} (call {at}): rc {r.rc} {(r.error_lines or [''])[0][:160]}; "
            f"again rc {again.rc}, {diff}")

    # -- explain (one prediction of the run, stored with its paths in one transaction)
    row = rows["outage: explain"]
    with server.conn() as c:
        compound = c.query("MATCH (c:Compound)-[p:PREDICTED_MOA {run: $run}]->() WHERE p.origin IS NULL "
                           "RETURN c.id AS id ORDER BY id LIMIT 1", run=run)[0]["id"]
    explain = ["explain", "--run", run, "--compound", compound, "--top-k", "3"]
    server.drop_export_cache()
    ref = run_child(server, explain)
    assert ref.rc == 0, ref.stderr[-3000:]
    with server.conn() as c:
        ref_fp = fingerprint(c)
    calls = ref.calls["calls"]
    log(f"explain reference: {ref.seconds:.0f} s, {calls} calls")
    for what, target in (("Neo4j killed while it writes", "server"),
                         ("client killed while it writes", "client")):
        row.tried += 1
        with server.conn() as c:
            c.query("MATCH (e:Explanation) OPTIONAL MATCH (e)-[:HAS_PATH]->(p) DETACH DELETE e, p")
        r = outage(server, explain, target, calls, delay=rng.uniform(0, 0.05))
        left = _model_state(server)
        with server.conn() as c:
            fp = fingerprint(c)
        partial = compare(ref_fp, fp)
        if left["explanations"] and any(partial.values()):
            row.notes.append(f"{what}: a partial explanation was left: {partial}")
        _check_outage(row, what, r)
        server.drop_export_cache()
        again = run_child(server, explain)
        with server.conn() as c:
            fp = fingerprint(c)
        diff = compare(ref_fp, fp)
        row.add_diff(diff)
        ok = again.rc == 0 and not any(diff.values())
        row.recovered += int(ok)
        if not ok:
            row.notes.append(f"{what}: NOT recovered: rc {again.rc} {again.error_lines}, {diff}")
        log(f"explain, {what}: rc {r.rc} {(r.error_lines or [''])[0][:160]}; left {left['explanations']} "
            f"explanation(s) ({'complete' if not any(partial.values()) else 'none/partial'}); again rc "
            f"{again.rc}, {diff}")


def ingest_plan(refs: dict[str, SourceRef], server_points: int, client_points: int,
                rng: random.Random) -> dict[str, list[str]]:
    """``server_points`` Neo4j kills spread over the sources by their writing time (at least 2 each, when
    there are enough), ``client_points`` client kills one per source in turn; each source's in a random
    order."""
    secs = list(refs)
    n = dict.fromkeys(secs, 0)
    per = min(2, server_points // len(secs))
    for sec in secs:
        n[sec] = per
    weights = [max(refs[s].active, 1.0) for s in secs]
    for _ in range(server_points - per * len(secs)):
        n[rng.choices(secs, weights)[0]] += 1
    plan = {sec: ["server"] * n[sec] for sec in secs}
    for i in range(client_points):
        plan[secs[i % len(secs)]].append("client")
    for kinds in plan.values():
        rng.shuffle(kinds)
    return {sec: kinds for sec, kinds in plan.items() if kinds}


def print_table(rows: Sequence[Row]) -> None:
    head = ["scenario", "kill points tried", "recovered", "lost", "duplicated", "half-written",
            "one-line errors"]
    body = [[r.scenario, str(r.tried), str(r.recovered), str(r.lost), str(r.duplicated), str(r.half_written),
             r.one_line or "-"] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)))
    for r in rows:
        for note in r.notes:
            print(f"  {r.scenario}: {note}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        _child(argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append", choices=["ingest", "bulk", "outage"],
                   help="run only these scenarios (repeatable; default all)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="sources of demo/sources.toml to use")
    p.add_argument("--server-points", type=int, default=20, help="Neo4j kills over the sources' ingests")
    p.add_argument("--client-points", type=int, default=8, help="client kills over the sources' ingests")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--keep", type=Path, help="keep the servers' files here (default: a temp dir, removed)")
    a = p.parse_args(argv)
    only = set(a.only or ["ingest", "bulk", "outage"])
    sections = [s for s in a.sections.split(",") if s]
    rng = random.Random(a.seed)
    rows = {name: Row(name) for name in ("ingest: Neo4j killed", "ingest: client killed", "bulk: clean load",
                                         "bulk: staging", "bulk: dump", "bulk: import", "bulk: after",
                                         "outage: query run", "outage: train", "outage: predict",
                                         "outage: explain")}
    t0 = time.perf_counter()
    tmp = a.keep or Path(tempfile.mkdtemp(prefix="moakg-bench-faults-"))
    servers: list[Server] = []
    try:
        if "ingest" in only or "outage" in only:
            server = Server(tmp / "ingest")
            servers.append(server)
            server.start()
            server.init()
            refs = reference_ingest(server, sections, tmp / "configs")
            if "ingest" in only:
                plan = ingest_plan(refs, a.server_points, a.client_points, rng)
                log(f"plan: {plan}")
                ingest_sweep(server, refs, plan, rows, rng)
            if "outage" in only:
                outage_sweep(server, tmp / "outage", rows, rng)
        if "bulk" in only:
            bulk_sweep(tmp / "bulk", rows, rng)
    finally:
        for srv in servers:
            srv.kill()
        if a.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nbench_faults: {time.perf_counter() - t0:.0f} s (seed {a.seed})\n")
    print_table([r for r in rows.values() if r.tried or r.notes])


if __name__ == "__main__":
    main()
