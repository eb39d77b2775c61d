"""``moakg results``: a suite of experiments (real trainings on a small synthetic graph), written as Markdown,
resumed and re-run only where its options changed; a bad suite file is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_gnn_tasks import toy_graph
from typer.testing import CliRunner

from moakg.cli import app
from moakg.errors import UserError
from moakg.gnn.run import run_experiment
from moakg.gnn.suite import DEFAULT_SUITE, load_suite, run_suite
from moakg.kg.connection import Neo4jConnection

TINY = """
[[experiment]]
name = "tiny-moa"
title = "Tiny MoA"
task = "moa"
split = "random"
settings = ["phenotype"]
seeds = [0]
epochs = {epochs}
hidden = 16
lr = 5e-3
baseline_epochs = 3
write = false
out = "{out}"

[[experiment]]
name = "tiny-known"
title = "Tiny MoA, known targets"
task = "moa"
split = "random"
settings = ["known_targets"]
seeds = [0]
epochs = 2
hidden = 16
baselines = false
write = false
out = "{out}"
"""


def _suite(tmp_path: Path, epochs: int = 2) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(TINY.replace("{epochs}", str(epochs)).replace("{out}", str(tmp_path / "runs")))
    return path


def test_the_readme_suite_loads_and_names_every_table() -> None:
    names = [e.name for e in load_suite(DEFAULT_SUITE)]
    assert {"moa-scaffold", "moa-cluster", "target-scaffold", "target-cluster", "moa-encoders",
            "moa-label-noise"} <= set(names)
    by_name = {e.name: e.config for e in load_suite(DEFAULT_SUITE)}
    assert by_name["moa-cluster"].split == "cluster" and len(by_name["moa-scaffold"].seeds) >= 5


@pytest.mark.parametrize(("text", "message"), [
    ('[[experiment]]\nname = "a"\ntitle = "A"\nhiden = 3\n', "experiment 1 ('a'): unknown key 'hiden'"),
    ('[[experiment]]\nname = "a"\ntitle = "A"\n[[experiment]]\nname = "a"\ntitle = "B"\n',
     "experiment 2 ('a'): the name 'a' is used twice"),
    ('[[experiment]]\nname = "a b"\ntitle = "A"\n', "needs a name of letters"),
    ('[[experiment]]\nname = "a"\n', "experiment 1 ('a'): needs a title"),
    ('[[experiment]]\nname = "a"\ntitle = "A"\nepochs = 0\n', "epochs"),
    ("seeds = [0]\n", "no [[experiment]] tables"),
    ("[[experiment\n", "not valid TOML"),
])
def test_a_bad_suite_is_one_error_naming_the_file_and_experiment(tmp_path: Path, text: str,
                                                                 message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match="bad.toml") as err:
        load_suite(path)
    assert message in str(err.value)


def test_suite_writes_markdown_resumes_and_reruns_only_what_changed(tmp_path: Path) -> None:
    """Real trainings (every baseline) on a small synthetic graph passed as data: the suite's own
    behaviour, without touching a Neo4j graph other tests share."""
    data, maps = toy_graph(n_compounds=100, signal="both")
    calls: list[str] = []

    def counted(conn: Neo4jConnection | None, cfg: object, log: object = print) -> object:
        calls.append(cfg.settings[0])  # type: ignore[attr-defined]
        return run_experiment(None, cfg, data, maps, log=lambda _: None, n_boot=20)  # type: ignore[arg-type]

    out = tmp_path / "results"
    index = run_suite(None, load_suite(_suite(tmp_path)), out, log=lambda _: None, run=counted)
    assert calls == ["phenotype", "known_targets"]
    moa = (out / "tiny-moa.md").read_text()
    assert "## Tiny MoA" in moa and "| setting | method |" in moa
    rows = [line for line in moa.splitlines() if line.startswith("| phenotype |")]
    methods = {line.split("|")[2].strip() for line in rows}
    assert {"gnn:sage", "frequency_prior", "tanimoto_knn", "fp_mlp"} <= methods
    assert 'epochs = 2' in moa and 'task = "moa"' in moa  # the options it ran with
    assert "| known_targets | gnn:sage |" in (out / "tiny-known.md").read_text()
    text = index.read_text()
    assert text.index("## Tiny MoA") < text.index("## Tiny MoA, known targets") and "Not run yet" not in text

    # nothing changed: nothing runs, the files stay as they were
    before = {p.name: p.read_text() for p in out.glob("*.md")}
    run_suite(None, load_suite(_suite(tmp_path)), out, log=lambda _: None, run=counted)
    assert calls == ["phenotype", "known_targets"]
    assert {p.name: p.read_text() for p in out.glob("*.md")} == before

    # one experiment's options changed: that one alone re-runs
    run_suite(None, load_suite(_suite(tmp_path, epochs=3)), out, log=lambda _: None, run=counted)
    assert calls == ["phenotype", "known_targets", "phenotype"]
    assert "epochs = 3" in (out / "tiny-moa.md").read_text()
    assert (out / "tiny-known.md").read_text() == before["tiny-known.md"]

    with pytest.raises(UserError, match="--only nope: no such experiment"):
        run_suite(None, load_suite(_suite(tmp_path)), out, only=["nope"], run=counted)


def test_results_list_shows_what_is_written(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    out = tmp_path / "results"
    listed = CliRunner().invoke(app, ["results", "--suite", str(suite), "--out", str(out), "--list"])
    assert listed.exit_code == 0, listed.output
    assert [line.split()[:2] for line in listed.output.splitlines()[2:]] == [["tiny-moa", "no"],
                                                                              ["tiny-known", "no"]]
    bad = CliRunner().invoke(app, ["results", "--suite", str(tmp_path / "missing.toml"), "--list"])
    assert bad.exit_code == 1 and "missing.toml: no such suite file" in bad.output
