"""The errors moakg reports to its user as one clear line (everything else is a bug and keeps a traceback).

Raise :class:`UserError` (or a subclass) for a problem with the user's input, configuration or
environment: a bad file, an unknown option value, a graph without the data a command needs, Neo4j not
reachable. The command line (:mod:`moakg.cli`) prints such an error as one line, ``error: <message>``,
and exits with status 1; so does a ``FileNotFoundError`` (its message names the file).

Any other exception is an unexpected failure, a bug: the command line prints one line saying so and
the path of a log file under ``$MOAKG_HOME/logs/`` that holds the full traceback
(:func:`write_error_log`); ``moakg --debug ...`` (or ``MOAKG_DEBUG=1``) prints the traceback itself.

Subclasses: ``moakg.ingest.base.InputFormatError`` (a bad input file, with the line or record),
``moakg.kg.connection.Neo4jUnavailable`` and ``moakg.kg.local_server.LocalNeo4jError``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path


class UserError(ValueError):
    """A problem the user can fix; the message names the file, record, option or value and what was expected.

    It subclasses ``ValueError`` so that code validating arguments (``raise UserError(...)`` where a
    ``ValueError`` used to be raised) keeps working with callers that catch ``ValueError``.
    """


#: what the command line reports in one line; any other exception is a bug
USER_ERRORS: tuple[type[Exception], ...] = (UserError, FileNotFoundError)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, USER_ERRORS)


def error_log_dir() -> Path:
    """``$MOAKG_HOME/logs`` (``~/.moakg/logs`` by default)."""
    from moakg.kg.local_server import moakg_home  # late: local_server imports this module

    return moakg_home() / "logs"


def describe(exc: BaseException) -> str:
    """``KeyError: 'x'``: the type and the message of an exception, on one line."""
    text = str(exc).replace("\n", " ").strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def write_error_log(
    exc: BaseException, argv: Sequence[str] | None = None, directory: Path | None = None
) -> Path:
    """Write the command line, versions and the full traceback of ``exc`` to a new
    ``error-<timestamp>-<pid>.log`` and return its path (raises ``OSError`` if it cannot be written).

    Environment variables are not written (``NEO4J_PASSWORD`` lives there).
    """
    from importlib.metadata import PackageNotFoundError, version

    directory = directory or error_log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now()
    path = directory / f"error-{now:%Y%m%d-%H%M%S-%f}-{os.getpid()}.log"
    try:
        moakg_version = version("moakg")
    except PackageNotFoundError:
        moakg_version = "unknown"
    argv = list(sys.argv if argv is None else argv)
    header = [
        f"time     {now.isoformat(timespec='seconds')}",
        f"command  {' '.join(argv)}",
        f"cwd      {Path.cwd()}",
        f"moakg    {moakg_version}",
        f"python   {sys.version.split()[0]} on {platform.platform()}",
        "",
    ]
    body = "".join(traceback.format_exception(exc))
    path.write_text("\n".join(header) + body, encoding="utf-8")
    return path
