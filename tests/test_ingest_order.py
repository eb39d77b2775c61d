"""Any order of ingests gives the same graph, on the demo data, against Neo4j.

Two ingests can only depend on their order when one reads what the other writes: the compound sources
(L1000, Repurposing Hub, DrugBank, consensus matrix) place their records on the compounds already in
the graph and then resolve identities over all of them, and the consensus and over-expression ingests
map genes through the graph's Gene nodes; STRING, the PPI table and GO read nothing and only MERGE.
Every pair of compound sources is ingested alone in both orders; and the whole demo is ingested in
reverse order, which reverses the order of every one of its 28 pairs at once, and compared with the
main job's order.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from moakg.ingest.commands import adapters_from_config
from moakg.ingest.runner import run_adapters
from moakg.kg.connection import Neo4jConnection
from moakg.kg.maintenance import clear_graph

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "demo" / "sources.toml"
ALL = ("l1000", "repurposing_hub", "drugbank", "l1000_consensus", "overexpression", "string", "ppi", "go")
COMPOUND_SOURCES = ALL[:4]


def graph_state(conn: Neo4jConnection) -> dict[str, object]:
    """Counts per label and relationship type, and checksums of the compound and gene keys and of the
    compound relationships (start key, type, end key)."""
    def digest(rows: list[dict]) -> str:
        return hashlib.sha256("\n".join(sorted(str(r["k"]) for r in rows)).encode()).hexdigest()[:16]

    return {
        "nodes": conn.query("MATCH (n) WHERE NOT n:IngestRun AND NOT n:SchemaVersion "
                            "RETURN labels(n)[0] AS label, count(*) AS n ORDER BY label"),
        "rels": conn.query("MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n ORDER BY type"),
        "compounds": digest(conn.query("MATCH (c:Compound) RETURN c.id AS k")),
        "genes": digest(conn.query("MATCH (g:Gene) RETURN g.symbol AS k")),
        "compound_rels": digest(conn.query(
            "MATCH (c:Compound)-[r]->(x) RETURN c.id + '|' + type(r) + '|' + "
            "coalesce(x.id, x.symbol, x.name, x.sig_id) AS k")),
    }


def ingest(conn: Neo4jConnection, order: tuple[str, ...]) -> dict[str, object]:
    by_section = dict(zip(ALL, _demo_adapters(), strict=True))
    clear_graph(conn)
    reports = run_adapters(conn, [by_section[s] for s in order], progress=False)
    assert all(r.status == "completed" for r in reports)
    return graph_state(conn)


@pytest.mark.parametrize("pair", list(itertools.combinations(COMPOUND_SOURCES, 2)), ids="-".join)
def test_both_orders_of_two_compound_sources_give_the_same_graph(conn: Neo4jConnection,
                                                                 pair: tuple[str, str]) -> None:
    first, second = ingest(conn, pair), ingest(conn, pair[::-1])
    assert first == second
    assert any(r["label"] == "Compound" for r in first["nodes"])  # type: ignore[union-attr]


def test_the_demo_in_reverse_order_gives_the_main_jobs_graph(conn: Neo4jConnection) -> None:
    forward, backward = ingest(conn, ALL), ingest(conn, ALL[::-1])
    assert forward == backward
    assert {r["type"] for r in forward["rels"]} >= {"HAS_SIGNATURE", "HAS_MOA", "TARGETS", "PERTURBS"}  # type: ignore[union-attr]


def _demo_adapters() -> list:
    adapters = adapters_from_config(DEMO_CONFIG)
    assert len(adapters) == len(ALL)  # every demo section, in ALL's order
    return adapters
