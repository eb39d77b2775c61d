"""Connection to Neo4j: any server through NEO4J_URI/USER/PASSWORD/DATABASE, else the local one.

Errors are turned into one clear line (never a traceback, never the password); transient errors are
retried with exponential backoff by the driver's managed transactions (``execute_write``/``execute_read``)
and, for connecting, by :meth:`Neo4jConnection.verify`. A server that goes away while a command works
(stopped, killed, restarted) and does not come back within the driver's retries is reported the same
way: :class:`Neo4jUnavailable`, one line, instead of the driver's ``ServiceUnavailable`` /
``SessionExpired`` (a traceback, and a report of a bug in moakg).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from neo4j import Driver, GraphDatabase, ManagedTransaction, Session
from neo4j.exceptions import AuthError, ConfigurationError, ServiceUnavailable, SessionExpired

from moakg.errors import UserError
from moakg.kg.local_server import LocalNeo4j

T = TypeVar("T")
#: what the driver raises when the server is gone (refused, reset, killed, restarting)
CONNECTION_LOST = (ServiceUnavailable, SessionExpired)

# The driver logs every retry of a transaction as a WARNING ("Transaction failed and will be retried in
# ...s"); without a logging configuration Python prints each on stderr, a dozen lines before the one-line
# error. A handler here keeps them out of the terminal; an application that configures logging sees them.
logging.getLogger("neo4j").addHandler(logging.NullHandler())


class Neo4jUnavailable(UserError, RuntimeError):
    """Neo4j could not be reached or refused the credentials; the message is meant for the user.

    A :class:`~moakg.errors.UserError`; still a ``RuntimeError`` for callers that catch that."""


@dataclass(frozen=True)
class Neo4jSettings:
    uri: str
    user: str = "neo4j"
    password: str = field(default="", repr=False)
    database: str = "neo4j"
    local: bool = False  # True when these point at the project's own local server

    @classmethod
    def from_env(cls, local: LocalNeo4j | None = None) -> Neo4jSettings:
        """NEO4J_URI and friends when set; otherwise the local server (its state, or the default port)."""
        database = os.environ.get("NEO4J_DATABASE", "neo4j")
        uri = os.environ.get("NEO4J_URI")
        if uri:
            return cls(
                uri=uri,
                user=os.environ.get("NEO4J_USER", "neo4j"),
                password=os.environ.get("NEO4J_PASSWORD", ""),
                database=database,
            )
        local = local or LocalNeo4j()
        st = local.state()
        port = st.bolt_port if st else local.bolt_port
        return cls(
            uri=f"bolt://127.0.0.1:{port}",
            user="neo4j",
            password=local.password(),
            database=database,
            local=True,
        )


def _hint(settings: Neo4jSettings) -> str:
    if settings.local:
        return "run `moakg neo4j start` or set NEO4J_URI"
    return "check that the server runs and that NEO4J_URI is right"


def connection_lost(settings: Neo4jSettings, exc: BaseException) -> Neo4jUnavailable:
    """The one-line error for a server that went away while a command worked (``exc``: the driver's)."""
    text = " ".join(str(exc).split())
    errno = re.search(r"reason (\[Errno \d+\][^)]*)", text)  # "... (reason [Errno 111] Connection refused)"
    # without the driver's address objects: "Failed to read from defunct connection IPv4Address((...))"
    plain = re.sub(r"\s*\(?(Resolved)?IPv[46]Address\(\(.*?\)\)\)?", "", text).strip()
    reason = errno.group(1) if errno else (plain[:160] or type(exc).__name__)
    return Neo4jUnavailable(
        f"lost the connection to Neo4j at {settings.uri} ({reason}); {_hint(settings)}, then run the same "
        "command again: it completes what was cut short"
    )


class Neo4jConnection:
    """A driver plus the database to use. Use as a context manager or call :meth:`close`."""

    def __init__(self, settings: Neo4jSettings | None = None, connect_retries: int = 3) -> None:
        self.settings = settings or Neo4jSettings.from_env()
        self._driver: Driver = GraphDatabase.driver(
            self.settings.uri,
            auth=(self.settings.user, self.settings.password),
            max_transaction_retry_time=30.0,
            connection_acquisition_timeout=30.0,
            # Warnings such as "property key does not exist" on an empty graph are not errors here.
            notifications_min_severity="OFF",
        )
        self.verify(connect_retries)

    @property
    def database(self) -> str:
        return self.settings.database

    @property
    def driver(self) -> Driver:
        return self._driver

    def verify(self, retries: int = 3, backoff: float = 0.5) -> None:
        """Check connectivity, retrying with exponential backoff; raise :class:`Neo4jUnavailable`."""
        uri = self.settings.uri
        for attempt in range(retries + 1):
            try:
                self._driver.verify_connectivity()
                return
            except AuthError:
                self._driver.close()
                raise Neo4jUnavailable(
                    f"Neo4j at {uri} refused the credentials of user '{self.settings.user}'; "
                    "check NEO4J_USER/NEO4J_PASSWORD"
                ) from None
            except (ServiceUnavailable, SessionExpired, ConfigurationError, OSError, ValueError):
                if attempt == retries:
                    self._driver.close()
                    raise Neo4jUnavailable(
                        f"Neo4j at {uri} is not reachable; {_hint(self.settings)}"
                    ) from None
                time.sleep(backoff * 2**attempt)

    @contextmanager
    def session(self, **config: Any) -> Iterator[Session]:
        """A driver session (``config``: the driver's session options, e.g. ``fetch_size``); the server
        going away inside the block raises :class:`Neo4jUnavailable`."""
        try:
            with self._driver.session(database=self.database, **config) as s:
                yield s
        except CONNECTION_LOST as exc:
            raise connection_lost(self.settings, exc) from exc

    def write(self, work: Callable[[ManagedTransaction], T]) -> T:
        """Run ``work`` in one write transaction, retried on transient errors."""
        with self.session() as s:
            return s.execute_write(work)

    def read(self, work: Callable[[ManagedTransaction], T]) -> T:
        with self.session() as s:
            return s.execute_read(work)

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run one auto-routed query (retried on transient errors) and return its records as dicts."""
        try:
            records, _, _ = self._driver.execute_query(cypher, params, database_=self.database)
        except CONNECTION_LOST as exc:
            raise connection_lost(self.settings, exc) from exc
        return [r.data() for r in records]

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> Neo4jConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
