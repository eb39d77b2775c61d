"""kg/export.py against the bundled demo graph in a real Neo4j: every count, edge, feature and map is
checked against Cypher run here, plus subgraphs, thresholds, the cache, save/load and the CLI.

The demo is ingested at most once for the module (``demo``, on the session connection), and every test
that uses it undoes what it writes. The tests at the end build small graphs of their own on the
function-scoped ``conn`` fixture (an empty graph); conftest runs them before every test that reads the
demo, so the demo is still ingested only once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from conftest import ensure_demo_graph
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator
from torch_geometric.data import HeteroData
from typer.testing import CliRunner

from moakg.kg import export as export_module
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.export import (
    DEFAULT_LABELS,
    REL_ENDPOINTS,
    ExportSpec,
    IdMaps,
    _Positions,
    export_heterodata,
    load_export,
    save_export,
)
from moakg.kg.schema import NODE_KEYS


@pytest.fixture(scope="module")
def demo(_session_conn: Neo4jConnection) -> Neo4jConnection:
    """The demo graph for the whole module, as conftest's function-scoped `demo_conn` makes it: ingested
    (after a wipe) unless exactly the demo's completed runs are already there. Tests here clean up."""
    return ensure_demo_graph(_session_conn)


@pytest.fixture(scope="module")
def full(demo: Neo4jConnection) -> tuple[HeteroData, IdMaps]:
    return export_heterodata(demo, ExportSpec(batch_size=700), cache=False, progress=False)


def count(conn: Neo4jConnection, cypher: str, **params: object) -> int:
    return conn.query(cypher, **params)[0]["n"]


def key_of(label: str, var: str = "n") -> str:
    return f"{var}.{NODE_KEYS[label]}"


def edge_keys(data: HeteroData, maps: IdMaps, rel: str) -> list[tuple[str, str, str]]:
    src, dst = REL_ENDPOINTS[rel]
    store = data[src, rel, dst]
    return [
        (maps.keys[src][s], maps.keys[dst][d], maps.sources[c])
        for s, d, c in zip(*store.edge_index.tolist(), store.source_code.tolist(), strict=True)
    ]


def assert_same(a: HeteroData, b: HeteroData) -> None:
    assert a.node_types == b.node_types and a.edge_types == b.edge_types
    for sa, sb in zip(a.stores, b.stores, strict=True):
        assert set(sa.keys()) == set(sb.keys())
        for k, v in sa.items():
            assert torch.equal(v, sb[k]) if isinstance(v, torch.Tensor) else v == sb[k], k


def cypher_k_hop(conn: Neo4jConnection, ids: list[str], rels: list[str], k: int) -> dict[str, set[str]]:
    """Nodes within k hops (either direction) by a variable-length pattern: the reference for the BFS."""
    keys = "CASE " + " ".join(f"WHEN n:{label} THEN {key_of(label)}" for label in DEFAULT_LABELS) + " END"
    rows = conn.query(
        f"MATCH (c:Compound) WHERE c.id IN $ids MATCH (c)-[:{'|'.join(rels)}*0..{k}]-(n) "
        f"RETURN DISTINCT labels(n)[0] AS label, {keys} AS key",
        ids=ids,
    )
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["label"], set()).add(r["key"])
    return out


# ------------------------------------------------------------------------------------------ whole graph
DEMO_RELS = {"HAS_SIGNATURE", "IN_CELL", "UPREGULATES", "DOWNREGULATES", "INTERACTS_WITH", "ANNOTATED_WITH",
             "IS_A", "PART_OF", "TARGETS", "HAS_MOA"}


def test_counts_equal_neo4j(demo: Neo4jConnection, full: tuple[HeteroData, IdMaps]) -> None:
    data, maps = full
    assert data.node_types == list(DEFAULT_LABELS)
    for label in DEFAULT_LABELS:
        n = count(demo, f"MATCH (n:{label}) RETURN count(n) AS n")
        assert n > 0 and data[label].num_nodes == n == len(maps.keys[label]), label
        assert torch.equal(data[label].node_id, torch.arange(n))
    present = set()
    for rel, (src, dst) in REL_ENDPOINTS.items():
        n = count(demo, f"MATCH (:{src})-[r:{rel}]->(:{dst}) RETURN count(r) AS n")
        assert data[src, rel, dst].num_edges == n, rel
        present |= {rel} if n else set()
    # what the demo's sources write (derived and over-expression relationships come from other steps)
    assert present >= DEMO_RELS, DEMO_RELS - present
    assert len(data.edge_types) == 2 * len(REL_ENDPOINTS)


def test_reverse_edges_mirror_forward(full: tuple[HeteroData, IdMaps]) -> None:
    data, _ = full
    for rel, (src, dst) in REL_ENDPOINTS.items():
        fwd, rev = data[src, rel, dst], data[dst, f"rev_{rel}", src]
        assert torch.equal(rev.edge_index, fwd.edge_index.flip(0))
        assert torch.equal(rev.edge_attr, fwd.edge_attr) and torch.equal(rev.source_code, fwd.source_code)
        assert fwd.edge_attr.shape == (fwd.num_edges, 1) and fwd.edge_attr.dtype == torch.float32


def test_every_edge_matches_neo4j(demo: Neo4jConnection, full: tuple[HeteroData, IdMaps]) -> None:
    """The multiset of (start key, end key, source) per relation equals Neo4j's, and weights match."""
    data, maps = full
    for rel, (src, dst) in REL_ENDPOINTS.items():
        rows = demo.query(
            f"MATCH (a:{src})-[r:{rel}]->(b:{dst}) RETURN {key_of(src, 'a')} AS s, {key_of(dst, 'b')} AS d, "
            "r.source AS source, coalesce(r.z, r.combined_score) AS w"
        )
        want_keys = Counter((r["s"], r["d"], r["source"]) for r in rows)
        assert Counter(edge_keys(data, maps, rel)) == want_keys, rel
        if rel in ("UPREGULATES", "DOWNREGULATES", "INTERACTS_WITH"):
            scale = 1000.0 if rel == "INTERACTS_WITH" else 1.0
            want = {(r["s"], r["d"], r["source"]): 1.0 if r["w"] is None else r["w"] / scale for r in rows}
            got = data[src, rel, dst].edge_attr[:, 0].tolist()
            for key, w in zip(edge_keys(data, maps, rel), got, strict=True):
                assert w == pytest.approx(want[key], rel=1e-6, abs=1e-6)  # float32
    inter = data["Gene", "INTERACTS_WITH", "Gene"]
    codes = {maps.sources[c] for c in inter.source_code.tolist()}
    assert codes == {"string", "ppi"}  # one relation, filterable by source
    assert set(maps.sources) >= {"drugbank", "repurposing_hub"}


def test_id_maps_round_trip_and_sorted(full: tuple[HeteroData, IdMaps]) -> None:
    _, maps = full
    for label, keys in maps.keys.items():
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert all(maps.index[label][k] == i for i, k in enumerate(keys))


def test_edges_point_at_the_right_keys(demo: Neo4jConnection, full: tuple[HeteroData, IdMaps]) -> None:
    data, maps = full
    for rel, (src, dst) in REL_ENDPOINTS.items():
        ei = data[src, rel, dst].edge_index
        for e in np.linspace(0, ei.shape[1] - 1, 5).astype(int) if ei.shape[1] else []:
            a, b = maps.keys[src][ei[0, e]], maps.keys[dst][ei[1, e]]
            n = count(demo, f"MATCH (a:{src})-[r:{rel}]->(b:{dst}) WHERE {key_of(src, 'a')} = $a "
                      f"AND {key_of(dst, 'b')} = $b RETURN count(r) AS n", a=a, b=b)
            assert n >= 1, (rel, a, b)


def test_deterministic(demo: Neo4jConnection, full: tuple[HeteroData, IdMaps]) -> None:
    data, maps = export_heterodata(demo, ExportSpec(batch_size=10000), cache=False, progress=False)
    assert maps.keys == full[1].keys and maps.sources == full[1].sources
    assert_same(data, full[0])


# ------------------------------------------------------------------------------------------ features
def test_compound_fingerprints_equal_rdkit(demo: Neo4jConnection, full: tuple[HeteroData, IdMaps]) -> None:
    data, maps = full
    comp = data["Compound"]
    rows = demo.query("MATCH (c:Compound) WHERE c.smiles IS NOT NULL RETURN c.id AS id, c.smiles AS smi "
                      "ORDER BY c.id LIMIT 3")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    for r in rows:
        i = maps.index["Compound"][r["id"]]
        want = torch.from_numpy(gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(r["smi"])).astype(np.float32))
        assert comp.has_structure[i] and torch.equal(comp.fp[i], want)
    missing = [r["id"] for r in demo.query("MATCH (c:Compound) WHERE c.smiles IS NULL RETURN c.id AS id")]
    assert missing, "the demo has compounds without structure"
    idx = [maps.index["Compound"][k] for k in missing]
    assert not comp.has_structure[idx].any() and comp.fp[idx].abs().sum() == 0
    n_struct = count(demo, "MATCH (c:Compound) WHERE c.smiles IS NOT NULL RETURN count(c) AS n")
    assert int(comp.has_structure.sum()) == n_struct
    assert comp.fp.shape == (comp.num_nodes, 2048) and comp.x.shape == (comp.num_nodes, 2048 + 978)
    assert torch.equal(comp.x, torch.cat([comp.fp, comp.z], dim=1))


def test_consensus_z_is_mean_of_signatures(demo: Neo4jConnection, full: tuple[HeteroData, IdMaps]) -> None:
    data, maps = full
    comp = data["Compound"]
    rows = demo.query("MATCH (c:Compound)-[:HAS_SIGNATURE]->(s:Signature) "
                      "RETURN c.id AS id, collect(s.z_landmark) AS zs ORDER BY size(zs) DESC, id")
    assert int(comp.has_signature.sum()) == len(rows)
    for r in rows[:3] + rows[-2:]:  # compounds with several signatures first
        i = maps.index["Compound"][r["id"]]
        want = torch.tensor(np.mean(np.asarray(r["zs"], dtype=np.float64), axis=0), dtype=torch.float32)
        assert comp.has_signature[i] and torch.allclose(comp.z[i], want, atol=1e-6)
    no_sig = (~comp.has_signature).nonzero().flatten()
    assert comp.z[no_sig].abs().sum() == 0


def test_signature_features(demo: Neo4jConnection, full: tuple[HeteroData, IdMaps]) -> None:
    data, maps = full
    sig = data["Signature"]
    lm = [r["s"] for r in demo.query("MATCH (g:Gene {is_landmark: true}) RETURN g.symbol AS s ORDER BY s")]
    assert maps.landmark_genes == lm and sig.x.shape == (sig.num_nodes, len(lm))
    rows = demo.query("MATCH (s:Signature) RETURN s.sig_id AS id, s.z_landmark AS z, s.n_replicates AS n "
                      "ORDER BY id LIMIT 4")
    for r in rows:
        i = maps.index["Signature"][r["id"]]
        assert torch.allclose(sig.x[i], torch.tensor(r["z"], dtype=torch.float32))
        assert sig.quality[i, maps.quality_fields.index("n_replicates")] == r["n"]
    assert sig.quality.shape == (sig.num_nodes, 3) and not sig.quality.isnan().any()


def test_z_length_mismatch_is_a_clear_error(demo: Neo4jConnection) -> None:
    sig_id = demo.query("MATCH (s:Signature) RETURN s.sig_id AS id ORDER BY id LIMIT 1")[0]["id"]
    demo.query("MATCH (s:Signature {sig_id: $id}) "
               "SET s.z_saved = s.z_landmark, s.z_landmark = s.z_landmark[1..]", id=sig_id)
    try:
        with pytest.raises(ValueError, match="landmark genes"):
            export_heterodata(demo, ExportSpec(labels=("Signature",)), cache=False, progress=False)
    finally:
        demo.query("MATCH (s:Signature {sig_id: $id}) SET s.z_landmark = s.z_saved REMOVE s.z_saved",
                   id=sig_id)


# ------------------------------------------------------------------------------------------ subgraphs
def seed_compounds(conn: Neo4jConnection) -> list[str]:
    """One compound with a signature and targets, one with an MoA: small but varied neighbourhoods."""
    a = conn.query("MATCH (c:Compound)-[:HAS_SIGNATURE]->() WHERE (c)-[:TARGETS]->() "
                   "RETURN c.id AS id ORDER BY id LIMIT 1")
    b = conn.query("MATCH (c:Compound)-[:HAS_MOA]->() WHERE NOT (c)-[:HAS_SIGNATURE]->() "
                   "RETURN c.id AS id ORDER BY id LIMIT 1")
    return [r["id"] for r in a + b]


@pytest.mark.parametrize("hops", [0, 1, 2])
def test_k_hop_subgraph_equals_cypher(demo: Neo4jConnection, hops: int) -> None:
    ids = seed_compounds(demo)
    data, maps = export_heterodata(demo, ExportSpec(compound_ids=ids, hops=hops), cache=False, progress=False)
    want = cypher_k_hop(demo, ids, list(REL_ENDPOINTS), hops)
    for label in DEFAULT_LABELS:
        assert set(maps.keys[label]) == want.get(label, set()), (label, hops)
    # edges are those induced among the kept nodes
    for rel, (src, dst) in REL_ENDPOINTS.items():
        n = count(demo, f"MATCH (a:{src})-[r:{rel}]->(b:{dst}) WHERE {key_of(src, 'a')} IN $s AND "
                  f"{key_of(dst, 'b')} IN $d RETURN count(r) AS n", s=maps.keys[src], d=maps.keys[dst])
        assert data[src, rel, dst].num_edges == n, rel
    if hops == 2:
        assert all(len(maps.keys[label]) > 0 for label in DEFAULT_LABELS)


def test_k_hop_by_moa_over_chosen_relations(demo: Neo4jConnection) -> None:
    moa = demo.query("MATCH (:Compound)-[:HAS_MOA]->(m:MoA) RETURN m.name AS m, count(*) AS n "
                     "ORDER BY n DESC, m LIMIT 1")[0]["m"]
    spec = ExportSpec(labels=("Compound", "Gene", "MoA"), rels=("TARGETS", "HAS_MOA"), moa=moa, hops=2)
    data, maps = export_heterodata(demo, spec, cache=False, progress=False)
    rows = demo.query("MATCH (c:Compound)-[:HAS_MOA]->(:MoA {name: $m}) RETURN c.id AS id", m=moa)
    ids = [r["id"] for r in rows]
    want = cypher_k_hop(demo, ids, ["TARGETS", "HAS_MOA"], 2)
    assert {label: set(v) for label, v in maps.keys.items()} == {label: want.get(label, set())
                                                               for label in spec.labels}
    assert data.node_types == list(spec.labels)
    assert {e[1] for e in data.edge_types} == {"TARGETS", "rev_TARGETS", "HAS_MOA", "rev_HAS_MOA"}


def test_seed_set_without_hops_keeps_other_labels_whole(demo: Neo4jConnection) -> None:
    ids = seed_compounds(demo)
    data, maps = export_heterodata(demo, ExportSpec(compound_ids=ids), cache=False, progress=False)
    assert maps.keys["Compound"] == sorted(ids)
    assert data["Gene"].num_nodes == count(demo, "MATCH (n:Gene) RETURN count(n) AS n")
    n = count(demo, "MATCH (c:Compound)-[r:TARGETS]->() WHERE c.id IN $ids RETURN count(r) AS n", ids=ids)
    assert data["Compound", "TARGETS", "Gene"].num_edges == n


def test_min_string_score(demo: Neo4jConnection) -> None:
    scores = [r["s"] for r in demo.query("MATCH ()-[r:INTERACTS_WITH]->() WHERE r.combined_score IS NOT NULL "
                                         "RETURN r.combined_score AS s")]
    assert scores, "the demo has STRING edges"
    cut = max(scores) + 1
    n_all = count(demo, "MATCH ()-[r:INTERACTS_WITH]->() RETURN count(r) AS n")
    n_kept = count(demo, "MATCH ()-[r:INTERACTS_WITH]->() WHERE r.combined_score IS NULL "
                   "OR r.combined_score >= $c RETURN count(r) AS n", c=cut)
    assert n_kept < n_all
    for min_score, want in ((None, n_all), (min(scores), n_all), (cut, n_kept)):
        spec = ExportSpec(labels=("Gene",), min_string_score=min_score)
        data, maps = export_heterodata(demo, spec, cache=False, progress=False)
        inter = data["Gene", "INTERACTS_WITH", "Gene"]
        assert inter.num_edges == want, min_score
        ppi = torch.tensor([maps.sources[c] == "ppi" for c in inter.source_code.tolist()])
        assert (inter.edge_attr[ppi] == 1.0).all()  # no score: full weight, never filtered
        assert (inter.edge_attr[~ppi] < 1.0).all()


def test_spec_errors(demo: Neo4jConnection) -> None:
    with pytest.raises(ValueError, match="unknown label"):
        ExportSpec(labels=("Protein",))
    with pytest.raises(ValueError, match="needs label"):
        ExportSpec(labels=("Compound",), rels=("TARGETS",))
    with pytest.raises(ValueError, match="not in the graph"):
        export_heterodata(demo, ExportSpec(compound_ids=["NOPE"], hops=1), cache=False, progress=False)
    with pytest.raises(ValueError, match="mechanism of action"):
        export_heterodata(demo, ExportSpec(moa="no such moa", hops=1), cache=False, progress=False)


# ------------------------------------------------------------------------------------------ cache, files, CLI
def test_cache_hit_then_miss_after_new_ingest_run(demo: Neo4jConnection, tmp_path: Path) -> None:
    spec = ExportSpec(labels=("Compound", "MoA"))
    d1, m1 = export_heterodata(demo, spec, cache_dir=tmp_path, progress=False)
    d2, m2 = export_heterodata(demo, spec, cache_dir=tmp_path, progress=False)
    assert not m1.cache_hit and m2.cache_hit
    assert_same(d1, d2) and m1.keys == m2.keys
    # batch_size changes how, not what: still a hit; another spec is not
    assert export_heterodata(demo, ExportSpec(labels=spec.labels, batch_size=50), cache_dir=tmp_path,
                             progress=False)[1].cache_hit
    other = ExportSpec(labels=("MoA",))
    assert not export_heterodata(demo, other, cache_dir=tmp_path, progress=False)[1].cache_hit
    try:
        demo.query("CREATE (:IngestRun {id: 'test-export-run', status: 'running'})")
        _, m3 = export_heterodata(demo, spec, cache_dir=tmp_path, progress=False)
        _, m4 = export_heterodata(demo, spec, cache_dir=tmp_path, progress=False)
        assert not m3.cache_hit and not m4.cache_hit  # a running ingest: neither read nor written
        demo.query("MATCH (r:IngestRun {id: 'test-export-run'}) "
                   "SET r.status = 'completed', r.ended = datetime()")
        assert not export_heterodata(demo, spec, cache_dir=tmp_path, progress=False)[1].cache_hit
        assert export_heterodata(demo, spec, cache_dir=tmp_path, progress=False)[1].cache_hit
    finally:
        demo.query("MATCH (r:IngestRun {id: 'test-export-run'}) DELETE r")
    assert export_heterodata(demo, spec, cache_dir=tmp_path, progress=False)[1].cache_hit  # back to the first


def test_save_load_round_trip(full: tuple[HeteroData, IdMaps], tmp_path: Path) -> None:
    data, maps = full
    spec = ExportSpec(batch_size=700)
    path = save_export(tmp_path / "g.pt", data, maps, spec)
    data2, maps2, spec2 = load_export(path)
    assert_same(data, data2)
    assert maps2.keys == maps.keys and maps2.index == maps.index and maps2.sources == maps.sources
    assert maps2.landmark_genes == maps.landmark_genes and spec2 == spec
    # fp and z share x's storage, so the file holds the compound features once
    comp = data2["Compound"]
    assert comp.fp.untyped_storage().data_ptr() == comp.x.untyped_storage().data_ptr()


@pytest.fixture
def cli_app(cli_env: Neo4jSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    """The real `moakg` app (with its error reporting), pointed at the test server and a fresh home."""
    from moakg.cli import app

    monkeypatch.setenv("MOAKG_HOME", str(tmp_path / "home"))
    return app


def test_cli_help(cli_app: typer.Typer) -> None:
    r = CliRunner().invoke(cli_app, ["export", "--help"])
    assert r.exit_code == 0
    opts = ("--out", "--moa", "--compound", "--hops", "--labels", "--rels", "--min-string-score",
            "--no-cache")
    for opt in opts:
        assert opt in r.output


def test_cli_writes_a_file(demo: Neo4jConnection, cli_app: typer.Typer, tmp_path: Path) -> None:
    ids = seed_compounds(demo)
    out = tmp_path / "sub.pt"
    args = ["export", "--out", str(out), "--compound", ids[0], "--compound", ids[1], "--hops", "1",
            "--labels", "Compound,Gene,MoA", "--rels", "TARGETS", "--rels", "HAS_MOA"]
    r = CliRunner().invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    assert "Compound TARGETS Gene" in r.output and "exported" in r.output
    data, maps, spec = load_export(out)
    assert spec.compound_ids == tuple(ids) and spec.hops == 1 and set(ids) <= set(maps.keys["Compound"])
    assert data.node_types == ["Compound", "Gene", "MoA"]
    r = CliRunner().invoke(cli_app, args)  # same graph, same spec: from the cache in MOAKG_HOME
    assert r.exit_code == 0 and "from cache" in r.output
    assert (tmp_path / "home" / "cache" / "export").is_dir()
    bad = ["export", "--out", str(out), "--labels", "Compound", "--rels", "TARGETS"]
    r = CliRunner().invoke(cli_app, bad)
    assert r.exit_code == 1 and "needs label" in r.output


# ------------------------------------------------------------------------------------------ small graphs
#: Built in this order on purpose: keys not created in key order, the "string" edge of a pair before its
#: "ppi" twin, a source ("chembl") only on an edge that a compound subset drops.
SMALL_GRAPH = """
CREATE (s3:Signature {sig_id: 'sig-c'}), (s1:Signature {sig_id: 'sig-a'}), (s2:Signature {sig_id: 'sig-b'})
CREATE (tp53:Gene {symbol: 'TP53'}), (akt1:Gene {symbol: 'AKT1'}), (egfr:Gene {symbol: 'EGFR'}),
       (brca1:Gene {symbol: 'BRCA1'}), (myc:Gene {symbol: 'MYC'})
CREATE (c2:Compound {id: 'CPD-B'}), (c1:Compound {id: 'CPD-A'}), (c3:Compound {id: 'CPD-C'})
CREATE (s3)-[:UPREGULATES {z: 2.5, source: 'lincs'}]->(tp53),
       (s3)-[:UPREGULATES {z: -1.25, source: 'lincs'}]->(akt1),
       (s1)-[:UPREGULATES {z: 3, source: 'cmap'}]->(egfr),
       (s1)-[:UPREGULATES {source: 'lincs'}]->(myc),
       (s1)-[:UPREGULATES {z: 0.0 / 0.0, source: 'lincs'}]->(brca1),
       (s2)-[:UPREGULATES {z: 1.0e-7, source: 'lincs'}]->(tp53),
       (s2)-[:DOWNREGULATES {z: -4.0, source: 'lincs'}]->(egfr)
CREATE (tp53)-[:INTERACTS_WITH {combined_score: 900, source: 'string'}]->(myc),
       (tp53)-[:INTERACTS_WITH {source: 'ppi'}]->(myc),
       (akt1)-[:INTERACTS_WITH {combined_score: 400, source: 'string'}]->(egfr),
       (brca1)-[:INTERACTS_WITH {combined_score: 700, source: 'string'}]->(tp53),
       (akt1)-[:INTERACTS_WITH {source: 'ppi'}]->(tp53)
CREATE (c1)-[:TARGETS {source: 'drugbank'}]->(egfr),
       (c1)-[:TARGETS {source: 'repurposing_hub'}]->(egfr),
       (c1)-[:TARGETS]->(akt1),
       (c1)-[:TARGETS {source: 'drugbank'}]->(tp53),
       (c2)-[:TARGETS {source: 'repurposing_hub'}]->(tp53),
       (c3)-[:TARGETS {source: 'chembl'}]->(myc)
CREATE (c1)-[:HAS_SIGNATURE {source: 'lincs'}]->(s1), (c1)-[:HAS_SIGNATURE {source: 'lincs'}]->(s3),
       (c2)-[:HAS_SIGNATURE {source: 'lincs'}]->(s2)
"""
SMALL_LABELS = ("Compound", "Signature", "Gene")
SMALL_RELS = ("HAS_SIGNATURE", "UPREGULATES", "DOWNREGULATES", "INTERACTS_WITH", "TARGETS")
#: weight property and scale per relationship, from kg/schema.toml; the others weigh 1.0
SMALL_WEIGHTS = {"UPREGULATES": ("z", 1.0), "DOWNREGULATES": ("z", 1.0),
                 "INTERACTS_WITH": ("combined_score", 1e-3)}


def reference_export(conn: Neo4jConnection, keep: dict[str, set[str]] | None, min_score: float | None,
                     ) -> tuple[dict[str, list[str]], list[str], dict[str, tuple[torch.Tensor, ...]]]:
    """The export written the plain way: one row of keys per edge from Cypher, filtered and sorted here.

    ``keep``: the node keys per label (None: all). Returns keys per label, source names and per relation
    (edge_index, edge_attr, source_code)."""
    keys = {label: sorted(r["k"] for r in conn.query(f"MATCH (n:{label}) RETURN {key_of(label)} AS k"))
            for label in SMALL_LABELS}
    if keep is not None:
        keys = {label: [k for k in ks if k in keep.get(label, set())] for label, ks in keys.items()}
    edges: dict[str, list[tuple[int, int, str, float]]] = {}
    for rel in SMALL_RELS:
        src, dst = REL_ENDPOINTS[rel]
        prop, scale = SMALL_WEIGHTS.get(rel, (None, 1.0))
        weight = f", r.{prop} AS w" if prop else ""
        rows = conn.query(f"MATCH (a:{src})-[r:{rel}]->(b:{dst}) RETURN {key_of(src, 'a')} AS s, "
                          f"{key_of(dst, 'b')} AS d, r.source AS source{weight}")
        out = []
        for r in rows:
            if r["s"] not in keys[src] or r["d"] not in keys[dst]:
                continue
            w = r.get("w")
            if rel == "INTERACTS_WITH" and min_score is not None and w is not None and w < min_score:
                continue
            weight = 1.0 if w is None else float(w) * scale
            out.append((keys[src].index(r["s"]), keys[dst].index(r["d"]), r["source"] or "",
                        0.0 if np.isnan(weight) else weight))
        edges[rel] = out
    names = sorted({e[2] for es in edges.values() for e in es})
    tensors = {}
    for rel, es in edges.items():
        es = sorted((s, d, names.index(source), w) for s, d, source, w in es)
        edge_index = torch.tensor([[e[0] for e in es], [e[1] for e in es]], dtype=torch.int64)
        tensors[rel] = (edge_index.reshape(2, -1),
                        torch.tensor([[e[3]] for e in es], dtype=torch.float32).reshape(-1, 1),
                        torch.tensor([e[2] for e in es], dtype=torch.int8))
    return keys, names, tensors


def assert_matches_reference(data: HeteroData, maps: IdMaps, want: tuple) -> None:
    keys, names, tensors = want
    assert maps.keys == keys and maps.sources == names
    for rel, (edge_index, attr, code) in tensors.items():
        src, dst = REL_ENDPOINTS[rel]
        fwd, rev = data[src, rel, dst], data[dst, f"rev_{rel}", src]
        assert torch.equal(fwd.edge_index, edge_index), rel
        assert torch.equal(fwd.edge_attr, attr), rel
        assert torch.equal(fwd.source_code, code), rel
        assert torch.equal(rev.edge_index, edge_index.flip(0)) and torch.equal(rev.edge_attr, attr)
        assert torch.equal(rev.source_code, code)


@pytest.mark.parametrize(("batch_size", "flush"), [(10000, 1 << 16), (2, 1 << 16), (1, 1)])
def test_small_graph_equals_plain_reference(conn: Neo4jConnection, monkeypatch: pytest.MonkeyPatch,
                                            batch_size: int, flush: int) -> None:
    """Several sources, weights (int, float, NaN, none), min_string_score and compound subsets, against the
    plain per-edge reference; tiny blocks and flushes give the same tensors."""
    monkeypatch.setattr(export_module, "_FLUSH_EDGES", flush)
    conn.query(SMALL_GRAPH)

    def export(**kw: object) -> tuple[HeteroData, IdMaps]:
        spec = ExportSpec(labels=SMALL_LABELS, rels=SMALL_RELS, batch_size=batch_size, **kw)
        return export_heterodata(conn, spec, cache=False, progress=False)

    data, maps = export()
    assert_matches_reference(data, maps, reference_export(conn, None, None))
    # what the reference stands for, spelled out on a few edges
    assert maps.sources == ["", "chembl", "cmap", "drugbank", "lincs", "ppi", "repurposing_hub", "string"]
    assert maps.keys["Gene"] == ["AKT1", "BRCA1", "EGFR", "MYC", "TP53"]
    up = data["Signature", "UPREGULATES", "Gene"]
    assert up.edge_index.tolist() == [[0, 0, 0, 1, 2, 2], [1, 2, 3, 4, 0, 4]]  # sig-a: BRCA1, EGFR, MYC
    # NaN -> 0, int z, no z -> 1.0
    assert up.edge_attr.flatten().tolist() == [0.0, 3.0, 1.0, pytest.approx(1e-7), -1.25, 2.5]
    inter = data["Gene", "INTERACTS_WITH", "Gene"]
    pair = (inter.edge_index[0] == 4) & (inter.edge_index[1] == 3)  # TP53 - MYC: ppi before string
    assert [maps.sources[c] for c in inter.source_code[pair].tolist()] == ["ppi", "string"]
    assert inter.edge_attr[pair].flatten().tolist() == [1.0, pytest.approx(0.9)]

    data, maps = export(min_string_score=500)  # drops the 400 edge only; unscored ppi edges stay
    assert_matches_reference(data, maps, reference_export(conn, None, 500))
    assert data["Gene", "INTERACTS_WITH", "Gene"].num_edges == 4

    data, maps = export(compound_ids=["CPD-A"])  # every signature and gene, one compound
    keep = {"Compound": {"CPD-A"}, "Signature": {"sig-a", "sig-b", "sig-c"},
            "Gene": {"TP53", "AKT1", "EGFR", "BRCA1", "MYC"}}
    assert_matches_reference(data, maps, reference_export(conn, keep, None))
    assert "chembl" not in maps.sources  # its only edge starts at a compound left out

    data, maps = export(compound_ids=["CPD-B"], hops=1, min_string_score=500)
    keep = {label: set(v) for label, v in cypher_k_hop(conn, ["CPD-B"], list(SMALL_RELS), 1).items()}
    assert keep == {"Compound": {"CPD-B"}, "Signature": {"sig-b"}, "Gene": {"TP53"}}
    assert_matches_reference(data, maps, reference_export(conn, keep, 500))
    assert data["Signature", "UPREGULATES", "Gene"].num_edges == 1
    assert data["Signature", "DOWNREGULATES", "Gene"].num_edges == 0  # its gene (EGFR) is 2 hops away


def test_relation_with_two_sources_and_one_without(conn: Neo4jConnection) -> None:
    """TARGETS from drugbank, repurposing_hub and one edge with no source: one edge per relationship,
    parallel edges ordered by source name, the missing source named ''."""
    conn.query(SMALL_GRAPH)
    conn.query("MATCH (c:Compound {id: 'CPD-A'})-[r:TARGETS]->(:Gene {symbol: 'AKT1'}) SET r.source = ''")
    spec = ExportSpec(labels=("Compound", "Gene"), rels=("TARGETS",), compound_ids=["CPD-A", "CPD-B"])
    for _ in range(2):  # '' and null are one source, named ''
        data, maps = export_heterodata(conn, spec, cache=False, progress=False)
        assert maps.sources == ["", "drugbank", "repurposing_hub"]
        assert edge_keys(data, maps, "TARGETS") == [
            ("CPD-A", "AKT1", ""), ("CPD-A", "EGFR", "drugbank"), ("CPD-A", "EGFR", "repurposing_hub"),
            ("CPD-A", "TP53", "drugbank"), ("CPD-B", "TP53", "repurposing_hub")]
        assert (data["Compound", "TARGETS", "Gene"].edge_attr == 1.0).all()  # no weight declared
        conn.query("MATCH ()-[r:TARGETS]->() WHERE r.source = '' REMOVE r.source")


def test_positions_dense_and_sparse_ids() -> None:
    """Internal id -> export index, for dense ids (an array) and ids too sparse for one (a search)."""
    for ids in (np.array([7, 3, -1, 0, 12]), np.array([7, 3, -1, 0, 10**15])):
        pos = _Positions(ids)
        assert (pos.dense is not None) == (ids.max() < 100)
        query = np.array([0, 3, 7, ids.max(), 1, 5, 11, 13, 10**14, 10**16])
        assert pos(query).tolist() == [3, 1, 0, 4, -1, -1, -1, -1, -1, -1]
    assert _Positions(np.array([], np.int64))(np.array([0, 5])).tolist() == [-1, -1]
