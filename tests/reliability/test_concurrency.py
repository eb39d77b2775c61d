"""Two writers at once against one Neo4j, each with its own connection (threads of this process): two
ingests of different compound sources, two ingests of the same source, two trainings of the same
configuration and one of another.

What must hold: no duplicate nodes, the graph exactly as one writer after the other leaves it, and a
second writer of the same run (or of the compounds) waits for the first (:func:`moakg.kg.writer.run_lock`)
instead of interleaving with it. Each test makes the race happen on purpose: the first writer pauses
part-way (between its batches) until the second is seen waiting for its lock; without the lock the
second would run to its end inside that pause.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from rdkit import Chem

from moakg.gnn.config import TrainConfig
from moakg.gnn.results import ExperimentResult
from moakg.gnn.run import run_experiment
from moakg.ingest.base import SourceAdapter
from moakg.ingest.drugbank import DrugBankAdapter
from moakg.ingest.repurposing_hub import RepurposingHubAdapter
from moakg.ingest.runner import run_adapters
from moakg.kg import writer
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.export import export_heterodata
from moakg.kg.maintenance import clear_graph
from moakg.kg.writer import NodeBatch, RelBatch

WAIT = 120.0  # seconds any step of a test may wait for another thread before the test fails

# ------------------------------------------------------------------------------------------ inputs

#: four structural families, one MoA and two targets each: 48 compounds a 2-epoch GNN can train on
FAMILIES = [
    ("alcohol dehydrogenase substrate", "ADH1B|ADH1C", lambda i: "C" * (i + 1) + "O"),
    ("amine receptor agonist", "HTR1A|DRD2", lambda i: "C" * (i + 1) + "N"),
    ("fatty acid synthase inhibitor", "FASN|ACACA", lambda i: "C" * (i + 1) + "C(=O)O"),
    ("aromatic hydrocarbon receptor agonist", "AHR|CYP1A1", lambda i: "c1ccccc1" + "C" * (i + 1)),
]
PER_FAMILY = 12


def _write_tsv(path: Path, comment: list[str], header: list[str], rows: list[list[str]]) -> Path:
    lines = [*comment, "\t".join(header), *("\t".join(r) for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hub_files(out: Path, drugs: list[tuple[str, str, str, str | None]]) -> tuple[Path, Path]:
    """A Repurposing Hub drugs and samples file pair: ``(name, moa, targets, smiles or None)`` per drug."""
    out.mkdir(parents=True, exist_ok=True)
    drug_rows = [[name, "Launched", moa, targets, "", ""] for name, moa, targets, _ in drugs]
    sample_rows = []
    for i, (name, _, _, smiles) in enumerate(drugs):
        if smiles is not None:
            key = Chem.MolToInchiKey(Chem.MolFromSmiles(smiles))
            sample_rows.append([f"BRD-K{i:08d}-001-01-1", name, smiles, key])
    comment = ["!Source\tmoakg test"]
    return (
        _write_tsv(out / "drugs.txt", comment, ["pert_iname", "clinical_phase", "moa", "target",
                                                "disease_area", "indication"], drug_rows),
        _write_tsv(out / "samples.txt", comment, ["broad_id", "pert_iname", "smiles", "InChIKey"],
                   sample_rows),
    )


def family_drugs(per_family: int = PER_FAMILY) -> list[tuple[str, str, str, str]]:
    return [(f"fam{f}-drug{i}", moa, targets, smiles(i))
            for f, (moa, targets, smiles) in enumerate(FAMILIES) for i in range(per_family)]


def drugbank_files(out: Path) -> dict[str, Path]:
    """DrugBank tables whose first drug has no structure and the name of a Hub drug with one (the
    identity rules make them one compound), plus a few drugs with structures of their own."""
    out.mkdir(parents=True, exist_ok=True)
    drugs = [["DB90001", "Fam0-Drug3", "", ""]]  # no structure: keyed drugbank:DB90001 until merged
    drugs += [[f"DB9010{i}", f"dbdrug{i}", Chem.MolToInchiKey(Chem.MolFromSmiles("C" * (20 + i) + "S")), ""]
              for i in range(4)]
    proteins = [["DB90001", "target", "P00533", "1956", "Humans", "yes", "inhibitor"]]
    proteins += [[f"DB9010{i}", "target", "P00519", "25", "Humans", "yes", "inhibitor"] for i in range(4)]
    genes = [["1956", "EGFR"], ["25", "ABL1"]]
    return {
        "drugs_tsv": _write_tsv(out / "drugbank.tsv", [], ["drugbank_id", "name", "inchikey", "inchi"],
                                drugs),
        "proteins_tsv": _write_tsv(out / "proteins.tsv", [], ["drugbank_id", "category", "uniprot_id",
                                   "entrez_gene_id", "organism", "known_action", "actions"], proteins),
        "gene_info": _write_tsv(out / "gene_info.tsv", [], ["GeneID", "Symbol"], genes),
    }


# ------------------------------------------------------------------------------------------ helpers


def graph_fingerprint(conn: Neo4jConnection, skip: str = "SchemaVersion") -> tuple[list[str], list[str]]:
    """Every node (but ``skip`` nodes) and relationship with every property (but the clock's), sorted: two
    graphs with the same fingerprint are the same graph."""
    clock = {"created", "updated", "started", "ended"}

    def props(p: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in p.items() if k not in clock}, sort_keys=True, default=str)

    nodes = conn.query("MATCH (n) WHERE NOT n:SchemaVersion AND NOT $skip IN labels(n) "
                       "RETURN labels(n) AS l, properties(n) AS p", skip=skip)
    rels = conn.query("MATCH (a)-[r]->(b) RETURN type(r) AS t, properties(a) AS a, properties(b) AS b, "
                      "properties(r) AS p")
    key = ("id", "name", "symbol")
    return (sorted(json.dumps(n["l"]) + props(n["p"]) for n in nodes),
            sorted(f"{[r['a'].get(k) for k in key]}-{r['t']}{props(r['p'])}->{[r['b'].get(k) for k in key]}"
                   for r in rels))


def assert_no_duplicates(conn: Neo4jConnection) -> None:
    for label, key in (("Compound", "id"), ("Gene", "symbol"), ("MoA", "name"), ("IngestRun", "id"),
                       ("ModelRun", "id")):
        dup = conn.query(f"MATCH (n:{label}) WITH n.{key} AS k, count(*) AS c WHERE c > 1 RETURN k", )
        assert dup == [], (label, dup)


class LockWaits(logging.Handler):
    """Sets ``seen`` when a writer logs that it waits for another one's lock."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("waiting:"):
            self.messages.append(record.getMessage())
            self.seen.set()


@pytest.fixture
def lock_waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[LockWaits]:
    monkeypatch.setattr(writer, "LOCK_NOTE_AFTER", 0.3)
    handler = LockWaits()
    logger = logging.getLogger(writer.__name__)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def pause_before(adapter: SourceAdapter, first: type, reached: threading.Event,
                 go_on: threading.Event) -> None:
    """Make ``adapter`` stop before its first batch of type ``first`` (everything before it is written),
    set ``reached`` and wait there until ``go_on``."""
    batches = adapter.batches

    def paused() -> Iterator[Any]:
        stopped = False
        for batch in batches():
            if isinstance(batch, first) and not stopped:
                stopped = True
                reached.set()
                go_on.wait(WAIT)
            yield batch

    adapter.batches = paused  # type: ignore[method-assign]


def wait_any(*events: threading.Event) -> None:
    for _ in range(int(WAIT / 0.05)):
        if any(e.is_set() for e in events):
            return
        events[0].wait(0.05)
    raise AssertionError("nothing happened")


def in_thread(fn: Callable[[], Any], done: threading.Event | None = None) -> tuple[threading.Thread, dict]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # reported by the test, not lost in the thread
            out["error"] = exc
        finally:
            if done is not None:
                done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def result(t: threading.Thread, out: dict) -> Any:
    t.join(WAIT)
    assert not t.is_alive(), "a writer did not finish"
    if "error" in out:
        raise out["error"]
    return out["value"]


# ------------------------------------------------------------------------------------------ ingests


def test_two_compound_sources_at_once_equal_one_after_the_other(
    conn: Neo4jConnection, neo4j_settings: Neo4jSettings, tmp_path: Path, lock_waits: LockWaits
) -> None:
    """DrugBank writes a compound with no structure (drugbank:DB90001); before its TARGETS are written the
    Hub ingest starts, whose identity resolution would make that node one with the Hub's compound of
    the same name (absorbing it). Without taking turns the TARGETS edge then has no start and is
    dropped; with the compound lock the Hub waits, and the graph is DrugBank's then the Hub's."""
    hub = hub_files(tmp_path / "hub", family_drugs(4))
    db = drugbank_files(tmp_path / "db")

    def drugbank() -> DrugBankAdapter:
        return DrugBankAdapter(**db, organism=None)

    def hub_adapter() -> RepurposingHubAdapter:
        return RepurposingHubAdapter(*hub)

    # the reference: one after the other
    [ref_db] = run_adapters(conn, [drugbank()], progress=False)
    run_adapters(conn, [hub_adapter()], progress=False)
    expected = graph_fingerprint(conn)
    assert ref_db.counts.rels_missing_endpoint == 0
    merged = conn.query("MATCH (c:Compound)-[t:TARGETS {source: 'drugbank'}]->(:Gene {symbol: 'EGFR'}) "
                        "RETURN c.id AS id, c.drugbank_id AS db, c.name AS name")
    assert len(merged) == 1 and merged[0]["db"] == "DB90001" and not merged[0]["id"].startswith("drugbank:")

    clear_graph(conn)
    reached, go_on, hub_done = threading.Event(), threading.Event(), threading.Event()
    first = drugbank()
    pause_before(first, RelBatch, reached, go_on)
    with Neo4jConnection(neo4j_settings) as c1, Neo4jConnection(neo4j_settings) as c2:
        t1, o1 = in_thread(lambda: run_adapters(c1, [first], progress=False))
        assert reached.wait(WAIT), "DrugBank never reached its relationships"
        t2, o2 = in_thread(lambda: run_adapters(c2, [hub_adapter()], progress=False), done=hub_done)
        wait_any(lock_waits.seen, hub_done)  # the Hub waits for the lock, or (without one) has finished
        go_on.set()
        [db_report], [hub_report] = result(t1, o1), result(t2, o2)

    assert lock_waits.messages and "compounds" in lock_waits.messages[0]  # the Hub waited for DrugBank
    assert db_report.counts.rels_missing_endpoint == 0, db_report.counts.missing_examples
    assert (db_report.status, hub_report.status) == ("completed", "completed")
    assert_no_duplicates(conn)
    assert graph_fingerprint(conn) == expected


def test_same_source_twice_at_once_waits_and_counts_exactly(
    conn: Neo4jConnection, neo4j_settings: Neo4jSettings, tmp_path: Path, lock_waits: LockWaits
) -> None:
    """Two ingests of the same files (the same IngestRun id) started together: the first pauses after its
    compounds; the second waits for the first's run lock instead of writing in between, so one writes
    every node and the other (a re-run) creates none, and the run is never marked completed by one while
    the other still writes."""
    files = hub_files(tmp_path / "hub", family_drugs(3))
    [single] = run_adapters(conn, [RepurposingHubAdapter(*files)], progress=False)
    expected, total = graph_fingerprint(conn, skip="IngestRun"), single.counts.nodes_created
    assert total == 4 * 3 + 4 + 8  # compounds, MoAs, genes
    clear_graph(conn)

    reached, go_on, second_done = threading.Event(), threading.Event(), threading.Event()
    first = RepurposingHubAdapter(*files)
    pause_before(first, NodeBatch, reached, go_on)
    with Neo4jConnection(neo4j_settings) as c1, Neo4jConnection(neo4j_settings) as c2:
        # adapter.ingest itself (not run_adapters): only the run's own lock is taken
        t1, o1 = in_thread(lambda: first.ingest(c1, progress=False))
        assert reached.wait(WAIT)  # the first holds the run, marked running, before its first batch
        t2, o2 = in_thread(lambda: RepurposingHubAdapter(*files).ingest(c2, progress=False), done=second_done)
        wait_any(lock_waits.seen, second_done)
        status_meanwhile = _run(conn)["status"]  # the second waits (or, without a lock, has finished)
        go_on.set()
        r1, r2 = result(t1, o1), result(t2, o2)

    assert lock_waits.messages and r1.run_id in lock_waits.messages[0]
    assert status_meanwhile == "running"
    assert r1.run_id == r2.run_id
    assert (r1.counts.nodes_created, r2.counts.nodes_created) == (total, 0)  # the first wrote every node
    assert (r1.counts.rels_created, r2.counts.rels_created) == (single.counts.rels_created, 0)
    run = _run(conn)
    assert (run["status"], run["attempts"], run["nodes_created"]) == ("completed", 2, 0)  # the re-run's
    assert_no_duplicates(conn)
    assert graph_fingerprint(conn, skip="IngestRun") == expected


def _run(conn: Neo4jConnection) -> dict[str, Any]:
    [row] = conn.query("MATCH (r:IngestRun) RETURN r.status AS status, r.attempts AS attempts, "
                       "r.nodes_created AS nodes_created")
    return row


# ------------------------------------------------------------------------------------------ trainings


def _train(settings: Neo4jSettings, cfg: TrainConfig) -> ExperimentResult:
    with Neo4jConnection(settings) as c:
        data, maps = export_heterodata(c, cache=False, progress=False)
        return run_experiment(c, cfg, data, maps, log=lambda _: None, n_boot=50)


def test_trainings_at_once_write_whole_distinct_runs(
    conn: Neo4jConnection, neo4j_settings: Neo4jSettings, tmp_path: Path, lock_waits: LockWaits
) -> None:
    """Three trainings at once: two of the same configuration (one ModelRun id: they take turns and the
    run ends whole, as one of them wrote it) and one of another (a second, distinct ModelRun)."""
    run_adapters(conn, [RepurposingHubAdapter(*hub_files(tmp_path / "hub", family_drugs()))], progress=False)
    base = dict(task="moa", models=("sage",), split="random", settings=("phenotype",), seeds=(0,), epochs=2,
                hidden=8, top_k=2, baselines=False, min_per_class=3)
    same_a = TrainConfig(**base, out=tmp_path / "runs-a")  # `out` is not part of the run id
    same_b = TrainConfig(**base, out=tmp_path / "runs-b")
    other = TrainConfig(**{**base, "hidden": 16}, out=tmp_path / "runs-c")
    threads = [in_thread(lambda cfg=cfg: _train(neo4j_settings, cfg)) for cfg in (same_a, same_b, other)]
    res_a, res_b, res_c = (result(t, o) for t, o in threads)

    [id_a], [id_b], [id_c] = (list(r.run_ids.values()) for r in (res_a, res_b, res_c))
    assert id_a == id_b != id_c
    runs = {r["r"]["id"]: r["r"] for r in conn.query("MATCH (r:ModelRun) RETURN r")}
    assert set(runs) == {id_a, id_c}
    assert runs[id_a]["attempts"] == 2 and runs[id_c]["attempts"] == 1
    assert_no_duplicates(conn)
    for run_id, run in runs.items():
        assert run["status"] == "completed" and run.get("error") is None
        n_test = json.loads(run["split"])[0]["n_test"]
        per_compound = conn.query(
            "MATCH (c:Compound)-[p:PREDICTED_MOA]->(:MoA) WHERE p.run = $run "
            "WITH c, collect(p.rank) AS ranks RETURN count(c) AS n, "
            "sum(CASE WHEN size(ranks) = 2 AND 1 IN ranks AND 2 IN ranks THEN 1 ELSE 0 END) AS whole",
            run=run_id)[0]
        assert per_compound == {"n": n_test, "whole": n_test}  # exactly ranks 1..k, once, per test compound
        # the files the run points at are one writer's, whole, and agree with the graph
        ckpt = Path(run["checkpoint"])
        record = json.loads((ckpt / "metrics.json").read_text())
        assert record["run_id"] == run_id
        assert json.dumps(record["metrics"], sort_keys=True) == run["metrics"]  # NaN-safe: as JSON text
        state = torch.load(ckpt / "seed0.pt", weights_only=False)
        assert state["config"]["hidden"] == json.loads(run["config"])["hidden"]
        assert not [p.name for p in ckpt.iterdir() if p.name.startswith(".")]  # no temporary file left
    for res in (res_a, res_b):
        assert res.predictions_written[id_a] == 2 * json.loads(runs[id_a]["split"])[0]["n_test"]
