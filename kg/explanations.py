"""Writing path explanations back to Neo4j, idempotently per (run, compound, prediction, method).

    (:Explanation {id, run, method, kind, prediction, score, fidelity_plus, fidelity_minus,
                   characterization, sparsity, created, updated})
      -[:EXPLAINS]->(:Compound)     -[:FOR]->(:MoA | :Gene)
    (:Explanation)-[:HAS_PATH]->(:ExplanationPath {id, explanation, rank, score, metapath, length})
      -[:STEP {order, weight, rel_type, forward}]->(node)     one STEP per node of the path, order 0..l

Every node and relationship above also carries ``run`` (the ModelRun id).

``STEP.rel_type`` / ``weight`` / ``forward`` describe the relationship that arrives at that node from the
previous one (``null`` on order 0); ``forward`` is true when it points from the previous node to this one.
The ``queries/explanation_paths.cypher`` query turns the stored steps back into real graph paths.

The explanation id is a hash of (run, compound, prediction kind and key, method). Every node and
relationship is written by :func:`moakg.kg.writer.write_atomic`, stamped with the ModelRun id (``run``):
writing the same explanation again updates that node and deletes its old ExplanationPaths (and their
STEPs, found by the paths' ``explanation`` property) before creating the new ones, so counts never grow
and stale paths never survive.

Why one transaction and not one per batch: an explanation is a few dozen rows, and readers (the
``explanation_paths`` query, the Browser) must never see it half-replaced, with old paths deleted and
new ones missing. ``write_atomic`` runs all the writer's batches in one managed transaction (retried as a
whole on transient errors), so a failure, e.g. a path node that is not in the graph, rolls everything
back and leaves the previous explanation as it was; there is no half-written state that a run status
would have to flag.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from moakg.kg.connection import Neo4jConnection
from moakg.kg.schema import _ident, current_schema
from moakg.kg.writer import Batch, Delete, NodeBatch, Provenance, RelBatch, write_atomic

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
    node = {**props, "id": eid, "method": method, "kind": kind, "prediction": prediction,
            "compound": compound}
    write_atomic(conn, Provenance.model(run), [
        Delete("ExplanationPath", {"explanation": eid}),  # replace: the old paths (and their STEPs) go
        NodeBatch("Explanation", "id", [node], timestamps=True),
        *_links(eid, compound, *PREDICTION_LABELS[kind], prediction),
        *_path_batches(eid, paths),
    ])
    return eid


def _link(rel_type: str, start: tuple[str, str], end: tuple[str, str],
          rows: list[dict[str, Any]]) -> RelBatch:
    """A relationship batch of the explanation layer: a missing end node is an error, never skipped."""
    return RelBatch(rel_type, start, end, rows, require_endpoints=True)


def _links(eid: str, compound: str, label: str, key: str, prediction: str) -> list[Batch]:
    """EXPLAINS the compound, FOR the predicted MoA / Gene."""
    return [_link("EXPLAINS", ("Explanation", "id"), ("Compound", "id"), [{"start": eid, "end": compound}]),
            _link("FOR", ("Explanation", "id"), (label, key), [{"start": eid, "end": prediction}])]


def _path_batches(eid: str, paths: Sequence[dict[str, Any]]) -> list[Batch]:
    """ExplanationPath nodes, their HAS_PATH links and one STEP batch per label of the path nodes."""
    path_rows, has_path = [], []
    steps_by_label: dict[str, list[dict[str, Any]]] = {}
    for p in paths:
        pid = f"{eid}:{int(p['rank'])}"
        path_rows.append({"id": pid, "explanation": eid, "rank": int(p["rank"]), "score": float(p["score"]),
                          "metapath": p["metapath"], "length": len(p["rel_types"])})
        has_path.append({"start": eid, "end": pid})
        for order, (t, k) in enumerate(zip(p["node_types"], p["node_keys"], strict=True)):
            steps_by_label.setdefault(t, []).append({
                "start": pid, "end": k, "order": order,
                "weight": float(p["weights"][order - 1]) if order else None,
                "rel_type": p["rel_types"][order - 1] if order else None,
                "forward": bool(p["forward"][order - 1]) if order else None,
            })
    # node labels are the exported node types (schema names), keys come from the schema
    steps = [_link("STEP", ("ExplanationPath", "id"), (label, current_schema().key_of(label)), rows)
             for label, rows in steps_by_label.items()]
    return [NodeBatch("ExplanationPath", "id", path_rows),
            _link("HAS_PATH", ("Explanation", "id"), ("ExplanationPath", "id"), has_path), *steps]


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
    from moakg.kg.browser_favorites import inline_query

    return inline_query("explanation_paths", {"run": run, "compound": compound, "top": int(top)})


def path_query(path: dict[str, Any]) -> str:
    """One statement that draws one explanation path (as
    :meth:`moakg.gnn.explain.paths.ExplanationPath.as_dict`) in the Browser: its nodes matched by key,
    joined by its relationship types in their stored directions."""
    from moakg.kg.browser_favorites import cypher_literal

    schema = current_schema()
    nodes = [f"(n{i}:{_ident(t)} {{{_ident(schema.key_of(t))}: {cypher_literal(k)}}})"
             for i, (t, k) in enumerate(zip(path["node_types"], path["node_keys"], strict=True))]
    text = nodes[0]
    for i, (rel, fwd) in enumerate(zip(path["rel_types"], path["forward"], strict=True), start=1):
        text += (f"-[:{_ident(rel)}]->" if fwd else f"<-[:{_ident(rel)}]-") + nodes[i]
    return f"MATCH p = {text} RETURN p LIMIT 1"


#: every stored explanation path (top 5 per explanation), for the Browser screenshot test
EXPLANATION_PATHS_BROWSER_QUERY = browser_query()
