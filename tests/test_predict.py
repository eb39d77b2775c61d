"""``moakg predict`` against the demo graph in a real Neo4j: three labelled compounds are removed from the
graph before a small model is trained, then given back to ``moakg predict`` as new compounds (their
SMILES and their consensus signatures in files). They must come back into the graph with their signature
and similarity edges, get scores for every MoA, and have their top-k predictions written with the run id;
bad input and a stale run must stop before anything is written. The module clears the graph at the end
(the removed compounds' other relationships cannot be put back), so later tests rebuild the demo.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from conftest import ensure_demo_graph
from typer.testing import CliRunner

from moakg.errors import UserError
from moakg.gnn.config import TrainConfig
from moakg.gnn.predict import predict_new_compounds
from moakg.gnn.predict_cli import add_cli
from moakg.gnn.run import run_experiment
from moakg.kg.connection import Neo4jConnection
from moakg.kg.maintenance import clear_graph

N_REMOVED = 3


def _counts(conn: Neo4jConnection) -> dict[str, int]:
    rows = conn.query("MATCH (n) RETURN 'node' AS k, count(n) AS n UNION ALL "
                      "MATCH ()-[r]->() RETURN 'rel' AS k, count(r) AS n")
    return {r["k"]: r["n"] for r in rows}


@pytest.fixture(scope="module")
def removed(_session_conn: Neo4jConnection, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The demo graph without three compounds (an MoA, a SMILES, a consensus signature, a structural
    neighbour), a trained one-seed run on it, and files describing the removed compounds."""
    conn = ensure_demo_graph(_session_conn)
    tmp = tmp_path_factory.mktemp("predict")
    picked = conn.query(
        "MATCH (c:Compound)-[:HAS_MOA]->(m:MoA), (c)-[:HAS_SIGNATURE]->(s:Signature {kind: 'consensus'}) "
        "WHERE c.smiles IS NOT NULL AND EXISTS { (c)-[:SIMILAR_STRUCTURE]-() } "
        "WITH c, s, collect(m.name) AS moas ORDER BY c.id LIMIT $n "
        "RETURN c.id AS id, c.name AS name, c.smiles AS smiles, moas, s.z_landmark AS z", n=N_REMOVED)
    landmarks = [r["s"] for r in conn.query(
        "MATCH (g:Gene) WHERE g.is_landmark = true RETURN g.symbol AS s ORDER BY s")]
    assert len(picked) == N_REMOVED and len(landmarks) == 978
    refs = [f"new{i}" for i in range(N_REMOVED)]
    compounds = tmp / "new.tsv"
    compounds.write_text("id\tname\tsmiles\n" + "".join(
        f"{ref}\t{r['name']}\t{r['smiles']}\n" for ref, r in zip(refs, picked, strict=True)))
    signatures = tmp / "new_signatures.tsv.gz"
    with gzip.open(signatures, "wt") as f:
        f.write("id\t" + "\t".join(landmarks) + "\n")
        for ref, r in zip(refs, picked, strict=True):
            f.write(ref + "\t" + "\t".join(f"{v:.4f}" for v in r["z"]) + "\n")
    conn.query("UNWIND $ids AS k MATCH (c:Compound {id: k}) OPTIONAL MATCH (c)-[:HAS_SIGNATURE]->(s) "
               "DETACH DELETE c, s", ids=[r["id"] for r in picked])
    cfg = TrainConfig(task="moa", models=("sage",), split="scaffold", settings=("phenotype",), seeds=(0,),
                      epochs=4, patience=4, hidden=16, baselines=False, out=tmp / "runs", top_k=3)
    res = run_experiment(conn, cfg, log=lambda _m: None)
    run_id = next(iter(res.run_ids.values()))
    try:
        yield {"conn": conn, "run": run_id, "picked": picked, "refs": refs, "compounds": compounds,
               "signatures": signatures, "tmp": tmp}
    finally:
        clear_graph(conn)


def test_predict_adds_scores_and_writes_removed_compounds(removed: dict) -> None:
    conn, run = removed["conn"], removed["run"]
    test_preds = conn.query("MATCH ()-[p:PREDICTED_MOA {run: $run}]->() RETURN count(p) AS n",
                            run=run)[0]["n"]
    res = predict_new_compounds(conn, run, removed["compounds"], removed["signatures"], top_k=5)

    assert [p.ref for p in res.predictions] == removed["refs"]
    assert [p.compound for p in res.predictions] == [r["id"] for r in removed["picked"]]  # same InChIKeys
    assert all(not p.flag and p.has_signature for p in res.predictions)
    for p in res.predictions:
        scores = [s for _, s in p.top]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] < 1
        # the top prediction comes with its explanation paths, each from the new compound
        assert 1 <= len(p.paths) <= 3 and all(x.startswith(f"(Compound {p.compound})") for x in p.paths)
    # back in the graph, with what the model reads: structure, signature, genes, similarity edges
    back = conn.query(
        "UNWIND $ids AS k MATCH (c:Compound {id: k})-[:HAS_SIGNATURE]->(s:Signature) "
        "RETURN k AS id, c.smiles IS NOT NULL AS smiles, size(s.z_landmark) AS width, "
        "COUNT { (s)-[:UPREGULATES|DOWNREGULATES]->(:Gene) } AS genes, "
        "COUNT { (c)-[:SIMILAR_STRUCTURE]-(:Compound) } AS analogues, "
        "COUNT { (c)-[:PREDICTED_MOA {run: $run}]->(:MoA) } AS preds",
        ids=[p.compound for p in res.predictions], run=run)
    assert len(back) == N_REMOVED
    for b in back:
        assert b["smiles"] and b["width"] == 978 and b["genes"] == 100 and b["analogues"] >= 1
        assert b["preds"] == 5
    assert res.written == 5 * N_REMOVED
    # the run's test predictions stay; the new ones carry the IngestRun that added their compounds
    after = conn.query("MATCH ()-[p:PREDICTED_MOA {run: $run}]->() RETURN count(p) AS n, "
                       "count(p.origin) AS with_origin", run=run)[0]
    assert after["n"] == test_preds + 5 * N_REMOVED and after["with_origin"] == 5 * N_REMOVED
    status = conn.query("MATCH (r:IngestRun {id: $id}) RETURN r.status AS s", id=res.ingest_run)
    assert status == [{"s": "completed"}]

    # idempotent: a second run writes the same predictions and changes no count
    before = _counts(conn)
    again = predict_new_compounds(conn, run, removed["compounds"], removed["signatures"], top_k=5)
    assert _counts(conn) == before
    assert [p.top for p in again.predictions] == [p.top for p in res.predictions]


def test_predict_with_a_target_run_ranks_genes_and_writes_predicted_targets(removed: dict) -> None:
    """A target run (link votes with the MoA layer on) scores the re-added compounds against every gene:
    each gets its own top genes, written as PREDICTED_TARGET with the run id, and its explanation paths
    start at the compound."""
    conn, tmp = removed["conn"], removed["tmp"]
    cfg = TrainConfig(task="target", models=("sage",), split="scaffold", settings=("phenotype",),
                      seeds=(0,), epochs=2, patience=2, hidden=16, baselines=False, out=tmp / "target_runs",
                      top_k=3)
    run = next(iter(run_experiment(conn, cfg, log=lambda _m: None).run_ids.values()))
    res = predict_new_compounds(conn, run, removed["compounds"], removed["signatures"], top_k=5)
    assert [p.compound for p in res.predictions] == [r["id"] for r in removed["picked"]]
    genes = {r["s"] for r in conn.query("MATCH (g:Gene) RETURN g.symbol AS s")}
    for p in res.predictions:
        scores = [s for _, s in p.top]
        assert {g for g, _ in p.top} <= genes and len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert p.paths and all(x.startswith(f"(Compound {p.compound})") for x in p.paths)
    # the votes rank per compound: not one list (the frequency prior's) for all
    assert len({tuple(g for g, _ in p.top) for p in res.predictions}) > 1
    written = conn.query("MATCH (c:Compound)-[p:PREDICTED_TARGET {run: $run}]->(:Gene) WHERE c.id IN $ids "
                         "RETURN count(p) AS n, count(p.origin) AS origin",
                         run=run, ids=[p.compound for p in res.predictions])[0]
    assert res.written == written["n"] == written["origin"] == 5 * N_REMOVED


def test_predict_averages_signatures_per_compound_with_a_signature_table(removed: dict) -> None:
    """Level-5 signatures keyed by sig_id plus a sig_info table: each compound's signatures are averaged,
    so two signatures (z - 1 and z + 1) give the consensus z and the same predictions."""
    conn, run, tmp = removed["conn"], removed["run"], removed["tmp"]
    first = predict_new_compounds(conn, run, removed["compounds"], removed["signatures"], top_k=5)
    with gzip.open(removed["signatures"], "rt") as f:
        header, *rows = f.read().splitlines()
    per_sig = tmp / "level5.tsv"
    sig_info = tmp / "sig_info.tsv"
    lines, info = [header.replace("id", "sig_id", 1)], ["sig_id\tpert_id\tcell_id"]
    for row in rows:
        ref, *z = row.split("\t")
        for k, shift in (("a", -1.0), ("b", 1.0)):
            lines.append(f"{ref}:{k}\t" + "\t".join(f"{float(v) + shift:.4f}" for v in z))
            info.append(f"{ref}:{k}\t{ref}\tA375")
    per_sig.write_text("\n".join(lines) + "\n")
    sig_info.write_text("\n".join(info) + "\n")
    res = predict_new_compounds(conn, run, removed["compounds"], per_sig, top_k=5, sig_info=sig_info)
    for a, b in zip(first.predictions, res.predictions, strict=True):
        assert [m for m, _ in a.top] == [m for m, _ in b.top]
        assert [s for _, s in a.top] == pytest.approx([s for _, s in b.top], abs=1e-4)
    bad = tmp / "sig_info_short.tsv"
    bad.write_text("\n".join(info[:-1]) + "\n")
    with pytest.raises(UserError, match="not in the table"):
        predict_new_compounds(conn, run, removed["compounds"], per_sig, sig_info=bad)


def test_predict_flags_a_compound_the_graph_knows(removed: dict) -> None:
    conn, run = removed["conn"], removed["run"]
    known = conn.query("MATCH (c:Compound)-[:HAS_MOA]->(m:MoA) WHERE c.smiles IS NOT NULL "
                       "RETURN c.id AS id, c.smiles AS smiles ORDER BY id LIMIT 1")[0]
    path = removed["tmp"] / "known.tsv"
    path.write_text(f"id\tsmiles\nold1\t{known['smiles']}\n")
    before = conn.query("MATCH (c:Compound) RETURN count(c) AS n")[0]["n"]
    res = predict_new_compounds(conn, run, path, top_k=3)
    (p,) = res.predictions
    assert p.compound == known["id"] and "in graph" in p.flag and "hidden" in p.flag
    assert p.paths == []  # its labels are still in the run's graph: no explanation could avoid them
    assert conn.query("MATCH (c:Compound) RETURN count(c) AS n")[0]["n"] == before  # nothing new


@pytest.mark.parametrize("case", ["unknown_run", "bad_smiles", "missing_genes", "stale_graph"])
def test_predict_bad_input_writes_nothing(removed: dict, case: str) -> None:
    conn, run, tmp = removed["conn"], removed["run"], removed["tmp"]
    compounds, signatures = removed["compounds"], removed["signatures"]
    expected = {"unknown_run": "no ModelRun 'nope'", "bad_smiles": "line 3",
                "missing_genes": "landmark genes", "stale_graph": "another version of the graph"}[case]
    if case == "unknown_run":
        run = "nope"
    elif case == "bad_smiles":
        compounds = tmp / "bad.tsv"
        compounds.write_text("id\tsmiles\na\tCCO\nb\tC1CC(\n")
        signatures = None
    elif case == "missing_genes":
        signatures = tmp / "few_genes.tsv"
        signatures.write_text("id\tAARS\tABCB6\n" + "".join(f"{r}\t1.0\t-1.0\n" for r in removed["refs"]))
    else:
        conn.query("CREATE (:IngestRun {id: 'extra-0000', source: 'extra', status: 'completed'})")
    before = _counts(conn)
    try:
        with pytest.raises(UserError, match=expected) as err:
            predict_new_compounds(conn, run, compounds, signatures)
        if case == "bad_smiles":
            assert str(compounds) in str(err.value)
        assert _counts(conn) == before
    finally:
        conn.query("MATCH (r:IngestRun {id: 'extra-0000'}) DELETE r")


def test_predict_cli_prints_top_moas(removed: dict, cli_env: object) -> None:
    app = typer.Typer()
    add_cli(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the app into `predict`
        pass

    out = CliRunner().invoke(app, ["predict", "--run", removed["run"], "--compounds",
                                   str(removed["compounds"]), "--signatures", str(removed["signatures"]),
                                   "--top-k", "2"])
    assert out.exit_code == 0, out.output
    rows = [ln for ln in out.output.splitlines() if ln.startswith("new0 ") and " -> " not in ln]
    assert len(rows) == 2 and "predictions written" in out.output
    # the compounds are in the graph by now (earlier tests added them), without labels: still explained
    assert "new0 -> " in out.output and "top paths (saliency)" in out.output
    bad = CliRunner().invoke(app, ["predict", "--run", "nope", "--compounds", str(removed["compounds"])])
    assert bad.exit_code == 1 and "no ModelRun 'nope'" in bad.output
    assert Path(removed["compounds"]).exists()
