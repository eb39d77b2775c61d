"""`moakg ingest all --bulk`: the import files, and the graph neo4j-admin builds from them equals the
transactional writer's (counts per label and type, and a sample of properties)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO_CONFIG, ensure_demo_graph
from neo4j.time import DateTime
from typer.testing import CliRunner

from moakg.cli import app
from moakg.derive.run import SOURCE as DERIVE
from moakg.errors import UserError
from moakg.ingest.commands import adapters_from_config
from moakg.kg.bulk_files import BulkValueError, CsvParts, HashSet64, RelSpool
from moakg.kg.bulk_import import bulk_ingest, graph_counts, spooled_types
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.local_server import LocalNeo4j, free_port
from moakg.kg.schema import current_schema

#: set by the writer or the server at write time: differ between any two loads
VOLATILE = {"created", "updated", "started", "ended", "bulk", "attempts", "files", "error"}


# ------------------------------------------------------------------------------ files, no Neo4j


def test_csv_parts_round_trip_keeps_types_and_splits_on_a_type_change(tmp_path: Path) -> None:
    parts = CsvParts(tmp_path, "node-X", [":ID(X)"])
    rows = [
        ("a", {"k": "a", "n": 3, "x": 1.5, "ok": True, "tags": ["p;q", 'say "hi"'],
               "text": "two\nlines, comma"}),
        ("b", {"k": "b", "n": 4}),
        ("c", {"k": "c", "n": 0.5}),  # n is a double here: a second part, so "a" and "b" keep longs
        ("d", {"k": "d", "when": DateTime(2024, 1, 2, 3, 4, 5)}),
    ]
    for key, props in rows:
        parts.write((key,), props)
    files = parts.close()
    assert len(files) == 2
    back = {ids[0]: props for ids, props in parts.read()}
    assert back["a"] == rows[0][1]
    assert back["b"] == {"k": "b", "n": 4} and isinstance(back["b"]["n"], int)
    assert back["c"]["n"] == 0.5
    assert back["d"]["when"].startswith("2024-01-02T03:04:05")
    header = files[0][0].read_text().strip().split(",")
    assert header[0] == ":ID(X)" and "n:long" in header and "tags:string[]" in header


def test_values_the_import_files_cannot_carry_are_refused(tmp_path: Path) -> None:
    parts = CsvParts(tmp_path, "rel-T", [":START_ID(A)", ":END_ID(B)"])
    with pytest.raises(BulkValueError, match="rel-T.*'empty'.*empty list"):
        parts.write(("a", "b"), {"empty": []})
    with pytest.raises(BulkValueError, match="one scalar type"):
        parts.write(("a", "b"), {"mixed": [1, "x"]})


def test_hash_set_matches_a_python_set() -> None:
    rng = np.random.default_rng(0)
    hs, ref = HashSet64(), set()
    for _ in range(300):
        batch = rng.integers(0, 20_000, size=int(rng.integers(1, 200)))
        new = hs.add_new(batch)
        expected = []
        for v in batch.tolist():
            expected.append(v not in ref)
            ref.add(v)
        assert new.tolist() == expected
    assert len(hs) == len(ref)


def test_spool_counts_missing_ends_and_folds_a_repeated_key_like_merge(tmp_path: Path) -> None:
    spool = RelSpool(tmp_path, ["INTERACTS_WITH"])
    spool.saw_nodes("Gene", ["A", "B", "C"])
    stamps = {"source": "s1", "ingest_run": "s1-run"}
    rows = [{"start": "A", "end": "B", "props": {"score": 1, "note": "first"}},
            {"start": "A", "end": "Z", "props": {}},  # Z was never written: missing, not spooled
            {"start": "A", "end": "B", "props": {"score": 2}}]  # same key: a match that updates score
    created, missing = spool.add("INTERACTS_WITH", "Gene", "Gene", ("source",), rows, stamps)
    assert created == 1
    assert missing == [{"start": "A", "end": "Z", "missing_start": False, "missing_end": True}]
    created2, _ = spool.add("INTERACTS_WITH", "Gene", "Gene", ("source",),
                            [{"start": "B", "end": "C", "props": {}}], {**stamps, "source": "s2"})
    assert created2 == 1
    files = spool.close()
    [group] = files
    rels = {tuple(ids): props for ids, props in spool.files[group].read()}
    assert rels == {("A", "B"): {"score": 2, "note": "first", "source": "s1", "ingest_run": "s1-run"},
                    ("B", "C"): {"source": "s2", "ingest_run": "s1-run"}}


def test_spooled_types_never_touch_compounds() -> None:
    types = spooled_types()
    schema = current_schema()
    assert {"UPREGULATES", "DOWNREGULATES", "INTERACTS_WITH", "ANNOTATED_WITH"} <= set(types)
    assert not [t for t in types if "Compound" in (*schema.rel(t).start, *schema.rel(t).end)]


# --------------------------------------------------------------------------- against Neo4j


@pytest.fixture(scope="module")
def bulk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNeo4j]:
    """A server of its own: the bulk load stops and starts it."""
    server = LocalNeo4j(home=tmp_path_factory.mktemp("bulk-home"), bolt_port=free_port(),
                        http_port=free_port(), heap="1g", pagecache="256m")
    server.start()
    yield server
    server.stop()


def _settings(server: LocalNeo4j) -> Neo4jSettings:
    return Neo4jSettings(uri=f"bolt://127.0.0.1:{server.bolt_port}", password=server.password(), local=True)


def _data_counts(conn: Neo4jConnection) -> tuple[dict[str, int], dict[str, int]]:
    """Counts of what the ingests write: the demo graph also holds derive's similarity relationships
    and run, and perhaps earlier tests' model runs."""
    schema = current_schema()
    nodes, _ = graph_counts(conn)
    nodes = {k: v for k, v in nodes.items() if k not in {"ModelRun", "Prediction", "Explanation",
                                                          "ExplanationPath"}}
    nodes["IngestRun"] = conn.query("MATCH (r:IngestRun) WHERE r.source <> $d RETURN count(r) AS n",
                                    d=DERIVE)[0]["n"]
    rels = {}
    for t, decl in schema.relationships.items():
        if decl.role in ("message", "label"):
            n = conn.query(f"MATCH ()-[r:{t}]->() WHERE coalesce(r.source, '') <> $d RETURN count(r) AS n",
                           d=DERIVE)[0]["n"]
            if n:
                rels[t] = n
    return nodes, rels


def _sample_nodes(conn: Neo4jConnection, label: str, keys: list) -> dict:
    key = current_schema().key_of(label)
    rows = conn.query(f"UNWIND $keys AS k MATCH (n:{label} {{{key}: k}}) RETURN k, properties(n) AS p",
                      keys=keys)
    return {r["k"]: {k: v for k, v in r["p"].items() if k not in VOLATILE} for r in rows}


def _sample_rels(conn: Neo4jConnection, rel: str, pairs: list) -> list:
    decl = current_schema().rel(rel)
    (s, e) = decl.endpoints
    sk, ek = current_schema().key_of(s), current_schema().key_of(e)
    rows = conn.query(f"UNWIND $pairs AS p MATCH (a:{s} {{{sk}: p[0]}})-[r:{rel}]->(b:{e} {{{ek}: p[1]}}) "
                      "RETURN a." + sk + " AS s, b." + ek + " AS e, properties(r) AS p", pairs=pairs)
    return sorted((r["s"], r["e"], sorted(r["p"].items())) for r in rows)


def test_bulk_load_equals_the_transactional_load(demo_conn: Neo4jConnection, bulk_server: LocalNeo4j,
                                                 tmp_path: Path) -> None:
    ensure_demo_graph(demo_conn, first_load=True)  # the reference: a first transactional load's counts
    result = bulk_ingest(_settings(bulk_server), adapters_from_config(DEMO_CONFIG), server=bulk_server,
                         folder=tmp_path / "files", progress=False)
    assert not (tmp_path / "files").exists()  # removed after a successful load
    with Neo4jConnection(_settings(bulk_server)) as bulk:
        assert _data_counts(bulk) == _data_counts(demo_conn)
        assert sum(result.relationships.values()) > 250_000
        # every ingest run completed, with the transactional path's counts and stats
        runs = ("MATCH (r:IngestRun) WHERE r.source <> $d "
                "RETURN r.id AS id, r.status AS st, r.counts AS c, r.stats AS s ORDER BY id")
        assert bulk.query(runs, d=DERIVE) == demo_conn.query(runs, d=DERIVE)
        assert all(r["st"] == "completed" for r in bulk.query(runs, d=DERIVE))
        rng = random.Random(0)
        for label in ("Compound", "Signature", "Gene", "GOTerm", "MoA", "CellLine"):
            key = current_schema().key_of(label)
            keys = [r["k"] for r in demo_conn.query(f"MATCH (n:{label}) RETURN n.{key} AS k")]
            sample = rng.sample(keys, min(25, len(keys)))
            assert _sample_nodes(bulk, label, sample) == _sample_nodes(demo_conn, label, sample), label
        for rel in ("UPREGULATES", "INTERACTS_WITH", "ANNOTATED_WITH", "IS_A", "TARGETS", "HAS_MOA",
                    "IN_CELL"):
            s, e = current_schema().rel(rel).endpoints
            sk, ek = current_schema().key_of(s), current_schema().key_of(e)
            pairs = [[r["s"], r["e"]] for r in demo_conn.query(
                f"MATCH (a:{s})-[:{rel}]->(b:{e}) RETURN a.{sk} AS s, b.{ek} AS e")]
            sample = rng.sample(pairs, min(25, len(pairs)))
            assert _sample_rels(bulk, rel, sample) == _sample_rels(demo_conn, rel, sample), rel


def test_bulk_refuses_a_database_that_is_not_empty(bulk_server: LocalNeo4j, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with Neo4jConnection(_settings(bulk_server)) as conn:
        conn.query("MERGE (:MoA {name: 'already here'})")
    with pytest.raises(UserError, match="empty database only.*moakg db clear --yes"):
        bulk_ingest(_settings(bulk_server), adapters_from_config(DEMO_CONFIG), server=bulk_server,
                    folder=tmp_path / "files", progress=False)
    # the command line says the same in one line, and wrote nothing
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.setenv("MOAKG_NEO4J_HOME", str(bulk_server.home))
    monkeypatch.setenv("NEO4J_PASSWORD", bulk_server.password())
    before = Neo4jConnection(_settings(bulk_server))
    with before:
        nodes = graph_counts(before)
    res = CliRunner().invoke(app, ["ingest", "all", "--config", str(DEMO_CONFIG), "--bulk",
                                   "--bulk-dir", str(tmp_path / "cli-files")])
    assert res.exit_code != 0
    assert "empty database only" in res.output
    with Neo4jConnection(_settings(bulk_server)) as conn:
        assert graph_counts(conn) == nodes


def test_spooled_batch_that_requires_its_ends_is_refused_before_anything_is_spooled(
        conn: Neo4jConnection, tmp_path: Path) -> None:
    from moakg.kg.writer import BatchWriter, MissingEndpointError, Provenance, RelBatch, spooling

    spool = RelSpool(tmp_path, ["INTERACTS_WITH"])
    spool.saw_nodes("Gene", ["A", "B"])
    batch = RelBatch("INTERACTS_WITH", ("Gene", "symbol"), ("Gene", "symbol"),
                     [{"start": "A", "end": "B"}, {"start": "A", "end": "Z"}], per_source=True,
                     require_endpoints=True)
    with spooling(spool):
        writer = BatchWriter(conn, Provenance.ingest("s1", "s1-run"))
        with pytest.raises(MissingEndpointError, match="Gene 'Z' is not in the graph"):
            writer.write(batch)
    assert spool.files == {} or all(p.rows == 0 for p in spool.files.values())
    assert conn.query("MATCH ()-[r:INTERACTS_WITH]->() RETURN count(r) AS n")[0]["n"] == 0
