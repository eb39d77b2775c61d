"""``moakg results``: every results table of the README from one command, resumable.

A suite file (TOML, default ``demo/results.toml``) lists named experiments, each a
:class:`~moakg.gnn.config.TrainConfig` (the keys of ``moakg train --config``) plus a ``title``.
:func:`run_suite` runs them in order with :func:`~moakg.gnn.run.run_experiment`, the function behind
``moakg train``, and writes each one's tables as Markdown to ``<out>/<name>.md`` as soon as it finishes,
then ``<out>/results.md``, all finished experiments in suite order. An experiment whose file holds the
same configuration is not run again, so a stopped suite resumes where it stopped and a re-run with
nothing changed does nothing; changing an experiment's options re-runs that one only.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moakg.console import markdown_table
from moakg.errors import UserError
from moakg.gnn.config import TrainConfig
from moakg.gnn.results import ExperimentResult, replace_file
from moakg.kg.connection import Neo4jConnection

#: the suite of the README's results tables
DEFAULT_SUITE = Path(__file__).resolve().parents[1] / "demo" / "results.toml"
#: options an experiment's Markdown names even at their defaults (the others only where changed)
ALWAYS_SHOWN = ("task", "models", "split", "settings", "seeds")
#: the first line of an experiment's Markdown file: its configuration, compared on a re-run
CONFIG_MARK = "<!-- moakg results config: "


@dataclass(frozen=True)
class Experiment:
    """One entry of a suite: ``name`` (its file's stem), ``title`` and the training configuration."""

    name: str
    title: str
    config: TrainConfig

    @property
    def fingerprint(self) -> str:
        return json.dumps(self.config.to_dict(), sort_keys=True)


def load_suite(path: Path) -> list[Experiment]:
    """The ``[[experiment]]`` tables of the TOML file ``path``; each needs a unique ``name`` (letters,
    digits, ``-``, ``_``) and a ``title``, its other keys are :class:`TrainConfig` fields (strict: an
    unknown key or a bad value is an error naming the file and the experiment)."""
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("experiment", [])
    except FileNotFoundError:
        raise UserError(f"{path}: no such suite file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    if not entries:
        raise UserError(f"{path}: no [[experiment]] tables")
    out: list[Experiment] = []
    for i, entry in enumerate(entries, 1):
        values = dict(entry)
        name, title = values.pop("name", None), values.pop("title", None)
        where = f"{path}: experiment {i}" + (f" ({name!r})" if name else "")
        if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
            raise UserError(f"{where}: needs a name of letters, digits, '-' and '_'")
        if not isinstance(title, str) or not title:
            raise UserError(f"{where}: needs a title")
        if any(e.name == name for e in out):
            raise UserError(f"{where}: the name {name!r} is used twice")
        cfg = TrainConfig.from_dict(values, source=where)
        try:
            cfg.validate()
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        out.append(Experiment(name, title, cfg))
    return out


def experiment_markdown(exp: Experiment, result: ExperimentResult) -> str:
    """An experiment's tables as Markdown, headed by its configuration (a TOML block for ``moakg train
    --config``) and the graph version it ran on."""
    default = TrainConfig().to_dict()
    cfg = {k: v for k, v in exp.config.to_dict().items() if k in ALWAYS_SHOWN or v != default[k]}
    lines = [f"{CONFIG_MARK}{exp.fingerprint} -->", f"## {exp.title}", "",
             f"`{exp.name}`: `moakg train --config` with these options (the others at their defaults), on "
             f"the graph of ingest runs {', '.join(result.data_version) or '(none)'}:", "", "```toml",
             *(f"{k} = {json.dumps(v)}" for k, v in cfg.items()), "```", ""]
    for title, rows, columns in result.sections():
        lines += [f"**{title}**", "", markdown_table(rows, columns)]
    return "\n".join(lines)


def _is_done(exp: Experiment, path: Path) -> bool:
    if not path.exists():
        return False
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    return first == f"{CONFIG_MARK}{exp.fingerprint} -->"


def run_suite(conn: Neo4jConnection | None, experiments: Sequence[Experiment], out: Path,
              only: Sequence[str] = (), force: bool = False, log: Callable[[str], object] = print,
              run: Callable[..., ExperimentResult] | None = None) -> Path:
    """Run the ``experiments`` (those named in ``only``, if given) not yet done in ``out``, writing each
    one's Markdown as it finishes, then ``out/results.md``; returns its path. ``force`` re-runs done
    ones. ``run`` is :func:`~moakg.gnn.run.run_experiment` (a parameter so a caller may pass data)."""
    if run is None:
        from moakg.gnn.run import run_experiment as run
    unknown = sorted(set(only) - {e.name for e in experiments})
    if unknown:
        raise UserError(f"--only {unknown[0]}: no such experiment ({', '.join(e.name for e in experiments)})")
    out.mkdir(parents=True, exist_ok=True)
    for i, exp in enumerate(experiments, 1):
        path = out / f"{exp.name}.md"
        if only and exp.name not in only:
            continue
        if _is_done(exp, path) and not force:
            log(f"[{i}/{len(experiments)}] {exp.name}: up to date ({path})")
            continue
        log(f"[{i}/{len(experiments)}] {exp.name}: {exp.title}")
        result = run(conn, exp.config, log=log)
        text = experiment_markdown(exp, result)
        replace_file(path, lambda p, t=text: p.write_text(t, encoding="utf-8"))
        log(f"[{i}/{len(experiments)}] {exp.name}: written to {path}")
    return write_index(experiments, out)


def write_index(experiments: Sequence[Experiment], out: Path) -> Path:
    """``out/results.md``: the done experiments' Markdown in suite order, and which are not done."""
    parts, missing = ["# moakg results", ""], []
    for exp in experiments:
        path = out / f"{exp.name}.md"
        if _is_done(exp, path):
            parts.append(path.read_text(encoding="utf-8").split("\n", 1)[1])
        else:
            missing.append(exp.name)
    if missing:
        parts.append(f"Not run yet (or run with other options): {', '.join(missing)}.\n")
    index = out / "results.md"
    replace_file(index, lambda p: p.write_text("\n".join(parts), encoding="utf-8"))
    return index


def suite_status(experiments: Sequence[Experiment], out: Path) -> list[dict[str, Any]]:
    """One row per experiment: its name, title and whether ``out`` holds it with these options."""
    return [{"experiment": e.name, "done": "yes" if _is_done(e, out / f"{e.name}.md") else "no",
             "title": e.title} for e in experiments]
