"""Writing path explanations back to Neo4j, idempotently per (run, compound, prediction, method).

    (:Explanation {id, run, method, kind, prediction, score, fidelity_plus, fidelity_minus,
                   characterization, sparsity, created, updated})
      -[:EXPLAINS]->(:Compound)     -[:FOR]->(:MoA | :Gene)
    (:Explanation)-[:HAS_PATH]->(:ExplanationPath {id, rank, score, metapath, length})
      -[:STEP {order, weight, rel_type, forward}]->(node)     one STEP per node of the path, order 0..l

``STEP.rel_type`` / ``weight`` / ``forward`` describe the relationship that arrives at that node from the
previous one (``null`` on order 0); ``forward`` is true when it points from the previous node to this one.
The ``queries/explanation_paths.cypher`` query turns the stored steps back into real graph paths.

The explanation id is a hash of (run, compound, prediction kind and key, method): writing the same
explanation again updates that node and, in the same transaction, deletes its old ExplanationPaths (and
their STEPs) before creating the new ones, so counts never grow and stale paths never survive.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from neo4j import ManagedTransaction

from moakg.kg.connection import Neo4jConnection
from moakg.kg.schema import NODE_KEYS, _ident

#: prediction kind -> (label, key) of the node the explanation is FOR
PREDICTION_LABELS: dict[str, tuple[str, str]] = {"moa": ("MoA", "name"), "target": ("Gene", "symbol")}


def explanation_id(run: str, compound: str, kind: str, prediction: str, method: str) -> str:
    blob = "\x1f".join([run, compound, kind, prediction, method])
    return "expl-" + hashlib.sha256(blob.encode()).hexdigest()[:24]


def write_explanation(conn: Neo4jConnection, run: str, compound: str, kind: str, prediction: str, method: str,
                      props: dict[str, Any], paths: Sequence[dict[str, Any]]) -> str:
    """Write (or replace) one explanation; returns its id.

    ``props``: score, fidelity_plus, fidelity_minus, characterization, sparsity (any extra flat values).
    ``paths``: dicts with ``rank``, ``score``, ``metapath``, ``node_types``, ``node_keys``, ``rel_types``,
    ``forward``, ``weights`` (as :meth:`moakg.gnn.explain.paths.ExplanationPath.as_dict`).
    """
    if kind not in PREDICTION_LABELS:
        raise ValueError(f"prediction kind must be one of {sorted(PREDICTION_LABELS)}, not {kind!r}")
    eid = explanation_id(run, compound, kind, prediction, method)
    label, key = PREDICTION_LABELS[kind]
    steps_by_label: dict[str, list[dict[str, Any]]] = {}
    path_rows = []
    for p in paths:
        pid = f"{eid}:{int(p['rank'])}"
        path_rows.append({"id": pid, "rank": int(p["rank"]), "score": float(p["score"]),
                          "metapath": p["metapath"], "length": len(p["rel_types"])})
        for order, (t, k) in enumerate(zip(p["node_types"], p["node_keys"], strict=True)):
            steps_by_label.setdefault(t, []).append({
                "path": pid, "key": k, "order": order,
                "weight": float(p["weights"][order - 1]) if order else None,
                "rel_type": p["rel_types"][order - 1] if order else None,
                "forward": bool(p["forward"][order - 1]) if order else None,
            })
    clean = {k: v for k, v in props.items() if v is not None}

    def work(tx: ManagedTransaction) -> None:
        rec = tx.run(
            "MATCH (c:Compound {id: $compound}) "
            f"MATCH (t:{_ident(label)} {{{_ident(key)}: $prediction}}) "
            "MERGE (e:Explanation {id: $id}) ON CREATE SET e.created = datetime() "
            "SET e += $props, e.run = $run, e.method = $method, e.kind = $kind, e.prediction = $prediction, "
            "e.compound = $compound, e.updated = datetime() "
            "MERGE (e)-[:EXPLAINS]->(c) MERGE (e)-[:FOR]->(t) "
            "WITH e OPTIONAL MATCH (e)-[:HAS_PATH]->(old:ExplanationPath) DETACH DELETE old "
            "RETURN count(*) AS n",
            id=eid, compound=compound, prediction=prediction, props=clean, run=run, method=method, kind=kind,
        ).single()
        if rec is None or rec["n"] == 0:  # count(*) over no rows is 0: compound or prediction missing
            raise ValueError(f"compound {compound!r} or {label} {prediction!r} is not in the graph")
        tx.run("MATCH (e:Explanation {id: $id}) UNWIND $rows AS r "
               "CREATE (e)-[:HAS_PATH]->(:ExplanationPath {id: r.id, rank: r.rank, score: r.score, "
               "metapath: r.metapath, length: r.length})", id=eid, rows=path_rows).consume()
        for node_label, rows in steps_by_label.items():
            # labels come from the exported node types (schema names), keys from NODE_KEYS: safe to inline
            q = (f"UNWIND $rows AS r MATCH (p:ExplanationPath {{id: r.path}}) "
                 f"MATCH (n:{_ident(node_label)} {{{_ident(NODE_KEYS[node_label])}: r.key}}) "
                 "CREATE (p)-[:STEP {order: r.order, weight: r.weight, rel_type: r.rel_type, "
                 "forward: r.forward}]->(n) RETURN count(*) AS n")
            n = tx.run(q, rows=rows).single()["n"]
            if n != len(rows):
                raise ValueError(f"{len(rows) - n} {node_label} node(s) of the paths are not in the graph")

    conn.write(work)
    return eid


def delete_explanations(conn: Neo4jConnection, run: str | None = None) -> int:
    """Delete the explanations (with their paths) of ``run``, or all; returns how many explanations."""
    rows = conn.query(
        "MATCH (e:Explanation) WHERE $run IS NULL OR e.run = $run "
        "OPTIONAL MATCH (e)-[:HAS_PATH]->(p:ExplanationPath) DETACH DELETE p "
        "WITH DISTINCT e DETACH DELETE e RETURN count(e) AS n", run=run)
    return rows[0]["n"] if rows else 0


def explanation_counts(conn: Neo4jConnection) -> dict[str, int]:
    """Nodes and relationships of the explanation layer (for idempotency checks)."""
    q = ("CALL () { MATCH (e:Explanation) RETURN count(e) AS explanations } "
         "CALL () { MATCH (p:ExplanationPath) RETURN count(p) AS paths } "
         "CALL () { MATCH (:ExplanationPath)-[s:STEP]->() RETURN count(s) AS steps } "
         "CALL () { MATCH (:Explanation)-[r:EXPLAINS|FOR|HAS_PATH]->() RETURN count(r) AS links } "
         "RETURN explanations, paths, steps, links")
    return dict(conn.query(q)[0])


def browser_query(run: str = "", compound: str = "", top: int = 5) -> str:
    """``queries/explanation_paths.cypher`` with its parameters written in, comments stripped, ready to be
    typed into the Neo4j Browser (which then draws the ``path`` column); ``''`` means every run/compound."""
    import json

    from moakg.kg.queries import load_query

    text = "\n".join(line for line in load_query("explanation_paths").text.splitlines()
                     if not line.lstrip().startswith("//"))
    # json.dumps quotes and escapes like a Cypher double-quoted string literal
    return (text.replace("$run", json.dumps(run)).replace("$compound", json.dumps(compound))
            .replace("$top", str(int(top))))


#: every stored explanation path (top 5 per explanation), for the Browser screenshot test
EXPLANATION_PATHS_BROWSER_QUERY = browser_query()
