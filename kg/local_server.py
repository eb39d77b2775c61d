"""A real local Neo4j 5.26 Community server, built from Maven Central artifacts and run by the JVM.

The Java side is ``kg/neo4j_launcher`` (a ``pom.xml`` and one launcher class around Neo4j's own
``CommunityBootstrapper``, the code path of the ``neo4j`` binary). This module builds it with Maven,
starts it in the background, waits until Bolt answers and stops it cleanly.

State lives in ``home`` (default ``~/.moakg/neo4j``, or ``MOAKG_HOME``/neo4j): ``data/``, ``logs/``,
``password`` (mode 0600) and ``server.json`` (pid and ports of the running server).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from moakg.errors import UserError

LAUNCHER_DIR = Path(__file__).resolve().parent / "neo4j_launcher"
LAUNCHER_CLASS = "moakg.Neo4jLauncher"
DEFAULT_BOLT_PORT = 7687
DEFAULT_HTTP_PORT = 7474
#: Neo4j 5's dbms.security.auth_minimum_password_length default
MIN_PASSWORD_LENGTH = 8


class LocalNeo4jError(UserError, RuntimeError):
    """The local Neo4j could not be built, started or stopped; the message says why and where to look.

    A :class:`~moakg.errors.UserError` (missing Java or Maven, a port in use, ...); still a
    ``RuntimeError`` for callers that catch that."""


def moakg_home() -> Path:
    return Path(os.environ.get("MOAKG_HOME", Path.home() / ".moakg")).expanduser()


def default_neo4j_home() -> Path:
    return Path(os.environ.get("MOAKG_NEO4J_HOME", moakg_home() / "neo4j")).expanduser()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


@dataclass
class ServerState:
    pid: int
    bolt_port: int
    http_port: int
    home: str

    @property
    def bolt_uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def build_launcher(quiet: bool = True) -> Path:
    """Compile the launcher and fetch Neo4j's jars with Maven (cached in ~/.m2). Returns target/."""
    target = LAUNCHER_DIR / "target"
    stamp = target / "lib" / ".complete"
    pom = LAUNCHER_DIR / "pom.xml"
    sources = [pom, *LAUNCHER_DIR.glob("src/main/java/**/*.java")]
    if stamp.exists() and all(p.stat().st_mtime <= stamp.stat().st_mtime for p in sources):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalNeo4jError("Maven (`mvn`) is not on PATH; it is needed once to fetch Neo4j's jars.")
    cmd = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(pom), "package"]
    proc = subprocess.run(cmd, capture_output=quiet, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-2000:] + (proc.stderr or "")[-2000:] if quiet else ""
        raise LocalNeo4jError(f"Building the Neo4j launcher failed (`{' '.join(cmd)}`):\n{tail}")
    stamp.touch()
    return target


class LocalNeo4j:
    """Start, stop and query the status of the project's own Neo4j server.

    Args:
        home: directory for data, logs, password and server state.
        bolt_port / http_port: loopback ports; ``None`` takes the defaults (7687, 7474).
        heap: JVM heap (``-Xmx``), e.g. ``"1g"``.
        pagecache: Neo4j page cache size, e.g. ``"512m"``.
    """

    def __init__(
        self,
        home: Path | None = None,
        bolt_port: int | None = None,
        http_port: int | None = None,
        heap: str = "1g",
        pagecache: str = "512m",
    ) -> None:
        self.home = Path(home or default_neo4j_home()).expanduser().resolve()
        self.bolt_port = bolt_port or int(os.environ.get("MOAKG_BOLT_PORT", DEFAULT_BOLT_PORT))
        self.http_port = http_port or int(os.environ.get("MOAKG_HTTP_PORT", DEFAULT_HTTP_PORT))
        self.heap = heap
        self.pagecache = pagecache

    # -- files -------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.home / "server.json"

    @property
    def password_file(self) -> Path:
        return self.home / "password"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "launcher.log"

    def password(self) -> str:
        """NEO4J_PASSWORD if set, else the password generated once and stored with mode 0600."""
        env = os.environ.get("NEO4J_PASSWORD")
        if env:
            self._write_password(env)
            return env
        if self.password_file.exists():
            return self.password_file.read_text().strip()
        pw = secrets.token_urlsafe(18)
        self._write_password(pw)
        return pw

    def _write_password(self, pw: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.password_file.exists() and self.password_file.read_text().strip() == pw:
            return
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pw)
        os.chmod(self.password_file, 0o600)

    # -- state -------------------------------------------------------------------------------
    def state(self) -> ServerState | None:
        """The running server's state, or None (a stale state file is removed)."""
        if not self.state_file.exists():
            return None
        st = ServerState(**json.loads(self.state_file.read_text()))
        if _pid_alive(st.pid):
            return st
        self.state_file.unlink(missing_ok=True)
        return None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> ServerState:
        """Start the server (building the launcher first if needed); return once Bolt answers."""
        running = self.state()
        if running is not None:
            return running
        for port in (self.bolt_port, self.http_port):
            if _port_open(port):
                raise LocalNeo4jError(
                    f"port {port} on 127.0.0.1 is already in use; pick another with --bolt-port/--http-port "
                    "or stop what listens there"
                )
        target = build_launcher()
        java = shutil.which("java")
        if java is None:
            raise LocalNeo4jError("`java` (17+) is not on PATH; Neo4j 5.26 needs a Java 17 runtime.")
        password = self.password()
        # Neo4j would exit during start-up and say why only in neo4j.log
        if len(password) < MIN_PASSWORD_LENGTH:
            raise LocalNeo4jError(f"NEO4J_PASSWORD is {len(password)} characters; Neo4j needs at least "
                                  f"{MIN_PASSWORD_LENGTH} (or unset it: moakg generates one)")
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        (self.home / "run" / "moakg.ready").unlink(missing_ok=True)
        classpath = f"{target / 'classes'}{os.pathsep}{target / 'lib' / '*'}"
        cmd = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Dfile.encoding=UTF-8",
            "-cp",
            classpath,
            LAUNCHER_CLASS,
            str(self.home),
            str(self.password_file),
            f"server.bolt.listen_address=127.0.0.1:{self.bolt_port}",
            f"server.bolt.advertised_address=127.0.0.1:{self.bolt_port}",
            f"server.http.listen_address=127.0.0.1:{self.http_port}",
            f"server.http.advertised_address=127.0.0.1:{self.http_port}",
            f"server.memory.pagecache.size={self.pagecache}",
        ]
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        st = ServerState(
            pid=proc.pid, bolt_port=self.bolt_port, http_port=self.http_port, home=str(self.home)
        )
        self.state_file.write_text(json.dumps(asdict(st)))
        try:
            self._wait_for_bolt(proc, password, timeout)
        except BaseException:
            self._terminate(proc.pid, grace=30)
            self.state_file.unlink(missing_ok=True)
            raise
        return st

    def _wait_for_bolt(self, proc: subprocess.Popen, password: str, timeout: float) -> None:
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError, DatabaseUnavailable, ServiceUnavailable

        deadline = time.monotonic() + timeout
        uri = f"bolt://127.0.0.1:{self.bolt_port}"
        ready = self.home / "run" / "moakg.ready"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalNeo4jError(
                    f"Neo4j exited during start-up (code {proc.returncode}); see {self.log_file} "
                    f"and {self.home / 'logs' / 'neo4j.log'}"
                )
            if ready.exists() and _port_open(self.bolt_port):
                try:
                    with GraphDatabase.driver(uri, auth=("neo4j", password)) as drv:
                        drv.verify_connectivity()
                        drv.execute_query("RETURN 1")
                    return
                except (ServiceUnavailable, AuthError, OSError):
                    pass  # Bolt is up before the password is set; try again.
                except DatabaseUnavailable:  # the server runs, its database did not start (retried)
                    db = self.home / "data" / "databases" / "neo4j"
                    tx = self.home / "data" / "transactions" / "neo4j"
                    raise LocalNeo4jError(
                        f"Neo4j started but its database did not (see {self.home / 'logs' / 'debug.log'}). A "
                        f"neo4j-admin import that was cut short (`moakg ingest all --bulk` stopped while it "
                        f"imported) leaves files that cannot start: remove {db} and {tx} to start with an "
                        "empty database, then load it again"
                    ) from None
            time.sleep(0.5)
        raise LocalNeo4jError(f"Neo4j did not answer on {uri} within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server cleanly (SIGTERM, then SIGKILL after ``timeout``). Returns False if none ran."""
        st = self.state()
        if st is None:
            return False
        self._terminate(st.pid, grace=timeout)
        self.state_file.unlink(missing_ok=True)
        return True

    def remove_database(self, name: str = "neo4j") -> None:
        """Delete the store and transaction files of database ``name`` (the server must be stopped); the
        next start creates it again, empty. For a database a cut-short import left unable to start."""
        if self.state() is not None:
            raise LocalNeo4jError(f"the database files can only be removed with the server stopped (home "
                                  f"{self.home})")
        for kind in ("databases", "transactions"):
            shutil.rmtree(self.home / "data" / kind / name, ignore_errors=True)

    def admin(self, args: list[str], log: Path) -> None:
        """Run ``neo4j-admin <args>`` on this server's files (the server must be stopped), output to ``log``.

        neo4j-admin is the class ``org.neo4j.cli.AdminTool`` of the jars the launcher is built from; it
        finds the data directory through ``NEO4J_HOME`` / ``NEO4J_CONF`` (the launcher keeps the
        default layout under ``home``)."""
        if self.state() is not None:
            raise LocalNeo4jError(f"neo4j-admin needs the server stopped (`moakg neo4j stop`; "
                                  f"home {self.home})")
        target = build_launcher()
        java = shutil.which("java")
        if java is None:
            raise LocalNeo4jError("`java` (17+) is not on PATH; neo4j-admin needs a Java 17 runtime.")
        (self.home / "conf").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, NEO4J_HOME=str(self.home), NEO4J_CONF=str(self.home / "conf"))
        classpath = f"{target / 'classes'}{os.pathsep}{target / 'lib' / '*'}"
        cmd = [java, "-cp", classpath, "org.neo4j.cli.AdminTool", *args]
        with open(log, "ab") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-1500:]
            raise LocalNeo4jError(f"neo4j-admin {' '.join(args[:3])} failed (code {proc.returncode}); "
                                  f"see {log}:\n{tail}")

    @staticmethod
    def _terminate(pid: int, grace: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
