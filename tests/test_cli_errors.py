"""How the command line reports errors: user errors in one line, bugs with a logged traceback, --debug."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import moakg.ingest.commands
from moakg.cli import app
from moakg.errors import UserError
from moakg.ingest.base import InputFormatError
from moakg.kg.connection import Neo4jUnavailable
from moakg.kg.local_server import LocalNeo4jError

LOG_LINE = re.compile(r"traceback: (\S+\.log)")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MOAKG_HOME (bug logs go to its logs/), debug off whatever the caller's environment says."""
    monkeypatch.setenv("MOAKG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MOAKG_DEBUG", raising=False)
    return tmp_path / "home"


@pytest.fixture
def bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """`moakg ingest all` hits a bug: reading the config raises KeyError."""

    def broken(path: Path) -> list:
        return {}["no-such-key"]

    monkeypatch.setattr(moakg.ingest.commands, "adapters_from_config", broken)


def _bad_config(tmp_path: Path) -> Path:
    bad = tmp_path / "sources.toml"
    bad.write_text('[nonsense]\npath = "y"\n')
    return bad


def test_known_error_classes_are_user_errors() -> None:
    for cls in (InputFormatError, Neo4jUnavailable, LocalNeo4jError):
        assert issubclass(cls, UserError), cls
    assert issubclass(Neo4jUnavailable, RuntimeError) and issubclass(LocalNeo4jError, RuntimeError)


def test_user_error_is_one_line_without_traceback(home: Path, tmp_path: Path) -> None:
    bad = _bad_config(tmp_path)
    result = CliRunner().invoke(app, ["ingest", "all", "--config", str(bad)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {bad}, section [nonsense]: unknown source; expected one of " \
        f"{moakg.ingest.commands.ORDER}\n"
    assert {"l1000", "drugbank", "go", "l1000_consensus"} <= set(moakg.ingest.commands.ORDER)
    assert result.stdout == ""
    missing = CliRunner().invoke(app, ["ingest", "all", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1
    assert missing.stderr == f"error: {tmp_path / 'nope.toml'}: no such config file\n"
    assert not (home / "logs").exists()  # user errors are not logged as bugs


def test_bug_prints_one_line_and_the_log_holding_the_traceback(home: Path, tmp_path: Path, bug: None) -> None:
    result = CliRunner().invoke(app, ["ingest", "all", "--config", str(tmp_path / "x.toml")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[0] == ("error: unexpected KeyError: 'no-such-key' "
                        "(a bug in moakg, not a problem with your input)")
    [log] = LOG_LINE.findall(lines[1])
    log_path = Path(log)
    assert log_path.parent == home / "logs" and log_path.name.startswith("error-")
    text = log_path.read_text()
    assert "Traceback (most recent call last)" in text
    assert "in broken" in text and text.rstrip().endswith("KeyError: 'no-such-key'")
    assert "command " in text and "python " in text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_prints_the_traceback(
    home: Path, tmp_path: Path, bug: None, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    args = ["ingest", "all", "--config", str(tmp_path / "x.toml")]
    if how == "flag":
        args = ["--debug", *args]
    else:
        monkeypatch.setenv("MOAKG_DEBUG", "1")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr and "in broken" in result.stderr
    assert result.stderr.rstrip().endswith("error: unexpected KeyError: 'no-such-key' (a bug in moakg; "
                                           "traceback above)")
    assert not (home / "logs").exists()


def test_debug_shows_the_traceback_of_a_user_error_too(home: Path, tmp_path: Path) -> None:
    bad = _bad_config(tmp_path)
    result = CliRunner().invoke(app, ["--debug", "ingest", "all", "--config", str(bad)])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr and "InputFormatError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"error: {bad}, section [nonsense]: unknown source")


def test_bug_without_a_writable_home_prints_the_traceback(
    tmp_path: Path, bug: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("MOAKG_HOME", str(blocker))  # logs/ cannot be created under a file
    monkeypatch.delenv("MOAKG_DEBUG", raising=False)
    result = CliRunner().invoke(app, ["ingest", "all", "--config", str(tmp_path / "x.toml")])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "error: unexpected KeyError: 'no-such-key' (a bug in moakg; traceback above, not logged:" \
        in result.stderr


def test_console_script_entry_point(tmp_path: Path) -> None:
    """`moakg` is `moakg.cli:main`: a user error through the real entry point, exit status 1, one line."""
    env = {**os.environ, "MOAKG_HOME": str(tmp_path / "home")}
    env.pop("MOAKG_DEBUG", None)
    code = "import sys; from moakg.cli import main; sys.argv[0] = 'moakg'; main()"
    args = [sys.executable, "-c", code, "ingest", "all", "--config", str(tmp_path / "nope.toml")]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == f"error: {tmp_path / 'nope.toml'}: no such config file\n"
    root = Path(__file__).resolve().parents[1]
    assert 'moakg = "moakg.cli:main"' in (root / "pyproject.toml").read_text()


def test_a_closed_pipe_is_not_reported_as_a_bug(home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`moakg ... | head` closes stdout early: exit quietly with the shell's SIGPIPE code, log nothing."""

    def closed(path: Path) -> list:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(moakg.ingest.commands, "adapters_from_config", closed)
    result = CliRunner().invoke(app, ["ingest", "all", "--config", str(_bad_config(tmp_path))])
    assert result.exit_code == 141 and result.stderr == ""
    assert not (home / "logs").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("args", [
    ["train", "--task", "moa", "--device", "cuda"],
    ["predict", "--run", "no-such-run", "--compounds", "new.tsv", "--device", "cuda:1"],
    ["derive", "similarity", "--device", "cuda"],
])
def test_cuda_without_a_gpu_fails_in_one_line_before_any_graph_work(
        home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    # a server that cannot be reached: had the command connected first, it would say so instead
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:1")
    result = CliRunner().invoke(app, args)
    device = args[args.index("--device") + 1]
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: --device {device}: CUDA is not available here; use --device cpu\n"
