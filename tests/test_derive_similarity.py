"""`moakg derive similarity` against a real Neo4j: scores checked against RDKit and numpy computed here,
top-k and thresholds, idempotence, re-derive after a new ingest, MIMICS / OPPOSES on hand-made
overexpression signatures, the named queries and the export of the derived edges."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator
from typer.testing import CliRunner

from moakg.derive.run import SOURCE, SimilarityParams, derive_similarity
from moakg.kg.connection import Neo4jConnection
from moakg.kg.export import ExportSpec, export_heterodata
from moakg.kg.queries import run_query
from moakg.kg.writer import NodeBatch, RelBatch, run_ingest

SMILES = {  # ids sorted as the derive sorts them
    "C01": "CC(=O)Oc1ccccc1C(=O)O",          # aspirin
    "C02": "OC(=O)c1ccccc1O",                # salicylic acid
    "C03": "COC(=O)c1ccccc1O",               # methyl salicylate
    "C04": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",     # ibuprofen
    "C05": "COc1ccc2cc(ccc2c1)C(C)C(=O)O",   # naproxen
    "C06": "CC(C(=O)O)c1cccc(c1)C(=O)c1ccccc1",  # ketoprofen
    "C07": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",     # caffeine
    "C08": "Cn1c(=O)c2[nH]cnc2n(C)c1=O",     # theophylline
    "C09": "Cn1cnc2c1c(=O)[nH]c(=O)n2C",     # theobromine
    "C10": "CC(=O)Nc1ccc(O)cc1",             # paracetamol
    "C11": "CCOc1ccc(NC(C)=O)cc1",           # phenacetin
    "C12": "CCO",                            # ethanol
}
N_LANDMARKS = 24
LANDMARKS = [f"G{i:02d}" for i in range(N_LANDMARKS)]
SIG_COMPOUNDS = ["C01", "C02", "C03", "C04", "C05", "C06", "C07", "C08"]


def _z_vectors(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Per compound, one or two landmark z-vectors: C02 follows C01, C03 is C01 reversed (negative
    Spearman), C05 has two signatures (its consensus is their mean)."""
    rng = np.random.default_rng(seed)
    base = {c: rng.normal(size=N_LANDMARKS) for c in SIG_COMPOUNDS}
    base["C02"] = base["C01"] + 0.3 * rng.normal(size=N_LANDMARKS)
    base["C03"] = -base["C01"] + 0.3 * rng.normal(size=N_LANDMARKS)
    out = {c: [v] for c, v in base.items()}
    out["C05"] = [base["C05"] + 0.5, base["C05"] - 0.5 + 0.2 * rng.normal(size=N_LANDMARKS)]
    return out


def _ingest_fixture(conn: Neo4jConnection, zs: dict[str, list[np.ndarray]]) -> None:
    genes = [{"symbol": g, "is_landmark": True} for g in LANDMARKS]
    genes.append({"symbol": "NL1", "is_landmark": False})
    compounds = [{"id": c, "smiles": s, "name": f"drug {c}"} for c, s in SMILES.items()]
    sigs, has_sig = [], []
    for c, vs in zs.items():
        for i, v in enumerate(vs):
            sid = f"sig:{c}:{i}"
            sigs.append({"sig_id": sid, "z_landmark": [float(x) for x in v], "pert_type": "trt_cp"})
            has_sig.append({"start": c, "end": sid})
    batches = [
        NodeBatch("Gene", "symbol", genes), NodeBatch("Compound", "id", compounds),
        NodeBatch("Signature", "sig_id", sigs), NodeBatch("MoA", "name", [{"name": "cox inhibitor"}]),
        RelBatch("HAS_SIGNATURE", ("Compound", "id"), ("Signature", "sig_id"), has_sig),
        RelBatch("HAS_MOA", ("Compound", "id"), ("MoA", "name"),
                 [{"start": c, "end": "cox inhibitor"} for c in ("C01", "C02", "C04")], per_source=True),
        RelBatch("TARGETS", ("Compound", "id"), ("Gene", "symbol"),
                 [{"start": "C01", "end": "G00"}, {"start": "C02", "end": "G00"}], per_source=True),
    ]
    run_ingest(conn, "fixture", batches, params={"seed": 0}, progress=False)


#: hand-made overexpression signatures: (sig_id, perturbed gene, {gene: z})
OE = [
    ("oe:A:1", "G20", {"G00": 3.0, "G01": 2.5, "G02": 2.0, "G03": -2.0, "G04": -3.0, "G05": 1.5, "NL1": 4.0}),
    ("oe:A:2", "G20", {"G00": 0.5, "G01": -0.5, "G02": 0.4, "G03": -0.6, "G04": 0.3}),  # weaker, same gene
    ("oe:B:1", "G21", {"G06": 2.0, "G07": 2.0, "G08": -2.0, "G09": -2.0, "G10": 2.0}),
    ("oe:C:1", "G22", {"G11": 2.0, "G12": 2.0}),  # too few genes: never scored
]


def _write_overexpression(conn: Neo4jConnection) -> None:
    """Overexpression signatures in the shape the overexpression ingest writes (built here by hand)."""
    up, down = [], []
    for sid, _, genes in OE:
        for g, z in genes.items():
            (up if z > 0 else down).append({"start": sid, "end": g, "z": z})
    batches = [NodeBatch("Signature", "sig_id", [{"sig_id": s, "pert_type": "trt_oe"} for s, _, _ in OE]),
               RelBatch("UPREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), up),
               RelBatch("DOWNREGULATES", ("Signature", "sig_id"), ("Gene", "symbol"), down)]
    run_ingest(conn, "fixture_oe", batches, progress=False)
    conn.query("UNWIND $rows AS r MATCH (s:Signature {sig_id: r[0]}), (g:Gene {symbol: r[1]}) "
               "MERGE (s)-[:PERTURBS]->(g)", rows=[[s, g] for s, g, _ in OE])


def _edges(conn: Neo4jConnection, rel: str) -> dict[tuple[str, str], float]:
    rows = conn.query(f"MATCH (a)-[r:{rel}]->(b) RETURN coalesce(a.id, a.symbol) AS a, "
                      "coalesce(b.id, b.symbol) AS b, r.score AS s")
    return {(r["a"], r["b"]): r["s"] for r in rows}


def _check_topk(full: np.ndarray, ids: list[str], edges: dict[tuple[str, str], float], k: int,
                minimum: float, signed: bool) -> None:
    """Edges = union over compounds of their top-k (by |score| when signed) at or above ``minimum``."""
    key = np.abs(full) if signed else full.copy()
    np.fill_diagonal(key, -np.inf)
    expected = set()
    for i in range(len(ids)):
        order = np.argsort(-key[i], kind="stable")[:k]
        expected |= {tuple(sorted((ids[i], ids[j]))) for j in order if key[i, j] >= minimum}
    assert set(edges) == expected
    for (a, b), s in edges.items():
        assert a < b  # one relationship per unordered pair, from the smaller id
        assert s == pytest.approx(full[ids.index(a), ids.index(b)], abs=1e-5)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))  # no ties in random normals
    return float(np.corrcoef(ra, rb)[0, 1])


def test_structure_scores_are_rdkit_tanimoto_top_k_above_threshold(conn: Neo4jConnection) -> None:
    _ingest_fixture(conn, _z_vectors())
    params = SimilarityParams(structure_k=2, structure_min=0.25)
    report = derive_similarity(conn, params, block=5, progress=False)  # blocks smaller than the graph
    assert report.status == "completed"
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    ids = sorted(SMILES)
    fps = [gen.GetFingerprint(Chem.MolFromSmiles(SMILES[c])) for c in ids]
    full = np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps])
    edges = _edges(conn, "SIMILAR_STRUCTURE")
    assert len(edges) >= 5
    _check_topk(full, ids, edges, k=2, minimum=0.25, signed=False)
    assert edges[("C01", "C02")] == pytest.approx(full[0, 1], abs=1e-6)  # aspirin - salicylic acid
    assert ("C07", "C09") in edges  # caffeine - theobromine


def test_signature_scores_are_spearman_of_consensus_z(conn: Neo4jConnection) -> None:
    zs = _z_vectors()
    _ingest_fixture(conn, zs)
    derive_similarity(conn, SimilarityParams(signature_k=2, signature_min=0.2), block=3, progress=False)
    ids = sorted(zs)
    consensus = {c: np.mean(vs, axis=0) for c, vs in zs.items()}
    full = np.array([[_spearman(consensus[a], consensus[b]) for b in ids] for a in ids])
    edges = _edges(conn, "SIMILAR_SIGNATURE")
    _check_topk(full, ids, edges, k=2, minimum=0.2, signed=True)
    assert edges[("C01", "C02")] > 0.8 and edges[("C01", "C03")] < -0.8  # signed
    assert not any("C09" in e or "C10" in e for e in edges)  # no signature, no edge


def test_rederive_changes_nothing_and_a_new_ingest_makes_it_rerun(conn: Neo4jConnection) -> None:
    _ingest_fixture(conn, _z_vectors())
    _write_overexpression(conn)
    first = derive_similarity(conn, progress=False)
    summary = conn.query("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n ORDER BY t")
    again = derive_similarity(conn, progress=False)
    assert again.status == "up to date" and again.run_id == first.run_id
    assert conn.query("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n ORDER BY t") == summary
    forced = derive_similarity(conn, force=True, progress=False)  # rewritten: same edges, same counts
    assert forced.run_id == first.run_id
    assert conn.query("MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS n ORDER BY t") == summary

    # a new input: a close analogue of aspirin arrives in another ingest run
    analogue = {"id": "C13", "smiles": "CCC(=O)Oc1ccccc1C(=O)O"}
    run_ingest(conn, "more", [NodeBatch("Compound", "id", [analogue])], progress=False)
    third = derive_similarity(conn, progress=False)
    assert third.status == "completed" and third.run_id != first.run_id
    assert third.stats["replaced_runs"] == 1
    runs = conn.query("MATCH (r:IngestRun {source: $s}) RETURN r.id AS id, r.status AS st, r.params AS p",
                      s=SOURCE)
    assert [(r["id"], r["st"]) for r in runs] == [(third.run_id, "completed")]
    assert '"input_runs"' in runs[0]["p"]
    edges = _edges(conn, "SIMILAR_STRUCTURE")
    assert any("C13" in e for e in edges)
    derived = conn.query("MATCH ()-[r:SIMILAR_STRUCTURE|SIMILAR_SIGNATURE|MIMICS|OPPOSES]->() "
                         "RETURN DISTINCT r.ingest_run AS run")
    assert {r["run"] for r in derived} == {third.run_id}
    # new parameters: a new run too, with fewer edges under a stricter threshold
    strict = derive_similarity(conn, SimilarityParams(structure_min=0.9), progress=False)
    assert strict.run_id != third.run_id
    assert len(_edges(conn, "SIMILAR_STRUCTURE")) < len(edges)


def test_mimics_and_opposes_overexpression_signatures(conn: Neo4jConnection) -> None:
    zs = _z_vectors()
    zs["C06"] = [np.array([3.0, 2.0, 2.5, -1.0, -2.0, 1.0] + [0.1] * 18)]  # like G20's overexpression
    zs["C07"] = [-zs["C06"][0]]                                              # its reverse
    _ingest_fixture(conn, zs)
    _write_overexpression(conn)
    params = SimilarityParams(perturbation_k=2, perturbation_min=0.1, perturbation_min_genes=5)
    report = derive_similarity(conn, params, progress=False)
    assert report.stats["perturbation_signatures"] == 4
    assert report.stats["perturbation_genes_not_landmark"] == 1  # NL1
    mimics, opposes = _edges(conn, "MIMICS"), _edges(conn, "OPPOSES")
    pos = {g: i for i, g in enumerate(LANDMARKS)}

    def cosine(z: np.ndarray, genes: dict[str, float]) -> float:
        idx = [pos[g] for g in genes if g in pos]
        v = np.array([genes[g] for g in genes if g in pos])
        return float(z[idx] @ v / (np.linalg.norm(z[idx]) * np.linalg.norm(v)))

    expected = {}
    for c, vs in zs.items():
        z = np.mean(vs, axis=0)
        per_gene: dict[str, float] = {}
        for _, gene, genes in OE[:3]:  # oe:C:1 has 2 landmark genes < perturbation_min_genes = 5
            s = cosine(z, genes)
            if abs(s) > abs(per_gene.get(gene, 0.0)):
                per_gene[gene] = s
        top = sorted(per_gene.items(), key=lambda kv: -abs(kv[1]))[:2]
        expected |= {(c, g): s for g, s in top if abs(s) >= 0.1}
    got = mimics | opposes
    assert set(got) == set(expected)
    for e, s in got.items():
        assert s == pytest.approx(expected[e], abs=1e-5)
    assert all(s > 0 for s in mimics.values()) and all(s < 0 for s in opposes.values())
    assert mimics[("C06", "G20")] > 0.9 and opposes[("C07", "G20")] < -0.9
    assert not any(g == "G22" for _, g in got)


def test_named_queries_return_the_neighbours(conn: Neo4jConnection) -> None:
    zs = _z_vectors()
    zs["C06"] = [np.array([3.0, 2.0, 2.5, -1.0, -2.0, 1.0] + [0.1] * 18)]
    _ingest_fixture(conn, zs)
    _write_overexpression(conn)
    derive_similarity(conn, SimilarityParams(structure_k=3, structure_min=0.2, signature_min=0.2,
                                             perturbation_min_genes=5), progress=False)
    rows = run_query(conn, "nearest_by_structure", compound="C02", top=3)
    assert rows and rows[0]["other_id"] in ("C01", "C03")
    assert all(r["tanimoto"] >= 0.2 for r in rows)
    aspirin = next(r for r in rows if r["other_id"] == "C01")
    assert aspirin["moas"] == ["cox inhibitor"] and aspirin["targets"] == ["G00"]
    rows = run_query(conn, "nearest_by_signature", compound="drug C01", top=2)  # by name, either side
    assert [r["other_id"] for r in rows] == sorted(["C02", "C03"], key=lambda o: -abs(
        _edges(conn, "SIMILAR_SIGNATURE")[("C01", o)]))
    assert {np.sign(r["spearman"]) for r in rows} == {1.0, -1.0}
    rows = run_query(conn, "mimicked_genes", compound="C06")
    assert rows[0]["gene"] == "G20" and rows[0]["relation"] == "MIMICS" and rows[0]["known_target"] is False


def test_derived_edges_are_exported_with_their_scores(conn: Neo4jConnection, tmp_path) -> None:
    _ingest_fixture(conn, _z_vectors())
    derive_similarity(conn, progress=False)
    data, maps = export_heterodata(conn, ExportSpec(), cache=False, progress=False)
    et = ("Compound", "SIMILAR_STRUCTURE", "Compound")
    edges = _edges(conn, "SIMILAR_STRUCTURE")
    assert data[et].edge_index.shape[1] == len(edges) > 0
    keys = maps.keys["Compound"]
    got = {(keys[a], keys[b]): float(w) for (a, b), w in
           zip(data[et].edge_index.T.tolist(), data[et].edge_attr[:, 0].tolist(), strict=True)}
    assert got == pytest.approx(edges, abs=1e-6)
    assert data[("Compound", "rev_SIMILAR_STRUCTURE", "Compound")].edge_index.shape[1] == len(edges)


def test_cli_derive_similarity(conn: Neo4jConnection, cli_env) -> None:
    from moakg.cli import app

    _ingest_fixture(conn, _z_vectors())
    res = CliRunner().invoke(app, ["derive", "similarity", "--structure-k", "3", "--signature-min", "0.2"])
    assert res.exit_code == 0, res.output
    assert "derive_similarity" in res.output and "completed" in res.output
    assert "similar_structure_written" in res.output
    res = CliRunner().invoke(app, ["derive", "similarity", "--structure-k", "3", "--signature-min", "0.2"])
    assert res.exit_code == 0 and "up to date" in res.output


def test_cli_defaults_are_the_params_defaults() -> None:
    """`moakg derive similarity` repeats each SimilarityParams default as its option's default (the CLI
    imports derive.run lazily, to keep `moakg --help` free of torch); the two must not drift apart."""
    import inspect
    from dataclasses import fields

    from moakg.derive.cli import similarity

    options = inspect.signature(similarity).parameters
    for f in fields(SimilarityParams):
        assert options[f.name].default == f.default, f.name
