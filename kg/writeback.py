"""Writing model runs and their predictions back to Neo4j, idempotently per run id.

A run is one ``(:ModelRun {id})`` node (merged on its key, see ``kg/schema.py``) holding the config, the
graph version it was trained on (the completed IngestRun ids), the split, metrics and baseline metrics
(JSON strings plus a few flat numbers that Cypher can sort on) and the checkpoint path. Its predictions
are relationships ``(:Compound)-[:PREDICTED_MOA {run, score, rank}]->(:MoA)`` and
``(:Compound)-[:PREDICTED_TARGET {run, score, rank}]->(:Gene)``, merged on ``run``: writing the same run
again first deletes that run's predictions of that type and then writes the new ones in
``UNWIND`` batches, so a re-run changes no counts and stale predictions never survive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from neo4j import ManagedTransaction
from torch import Tensor

from moakg.kg.connection import Neo4jConnection
from moakg.kg.writer import clean_row

#: prediction relationship -> (end label, end key)
PREDICTION_RELS: dict[str, tuple[str, str]] = {
    "PREDICTED_MOA": ("MoA", "name"),
    "PREDICTED_TARGET": ("Gene", "symbol"),
}
DEFAULT_BATCH = 5000


def data_version(conn: Neo4jConnection) -> list[str]:
    """Ids of the completed IngestRuns, sorted: which data a model was trained on."""
    rows = conn.query("MATCH (r:IngestRun) WHERE r.status = 'completed' RETURN r.id AS id ORDER BY id")
    return [r["id"] for r in rows]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def write_model_run(conn: Neo4jConnection, run_id: str, props: Mapping[str, Any]) -> None:
    """MERGE ``(:ModelRun {id: run_id})`` and set ``props``; dicts and lists of dicts become JSON strings.

    ``created`` is set once; ``updated`` on every write. Lists of plain numbers or strings stay lists.
    """
    flat: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str, bool)) for v in value):
            flat[key] = list(value)
        else:
            flat[key] = _jsonable(value)
    conn.query(
        "MERGE (r:ModelRun {id: $id}) ON CREATE SET r.created = datetime() "
        "SET r += $props, r.updated = datetime()",
        id=run_id,
        props=clean_row(flat),
    )


def top_k_rows(
    scores: Tensor, row_keys: Sequence[str], col_keys: Sequence[str], k: int
) -> list[dict[str, Any]]:
    """Top-``k`` columns of each row of ``scores`` [n_rows, n_cols] as writer rows
    ``{start: row key, end: column key, score, rank}`` (rank 1 = best)."""
    k = min(k, scores.size(1))
    if k <= 0 or scores.numel() == 0:
        return []
    top = torch.topk(scores.float(), k, dim=1)
    out = []
    for i, key in enumerate(row_keys):
        for r, (s, j) in enumerate(zip(top.values[i].tolist(), top.indices[i].tolist(), strict=True)):
            out.append({"start": key, "end": col_keys[j], "score": float(s), "rank": r + 1})
    return out


def write_predictions(
    conn: Neo4jConnection, run_id: str, rel_type: str, rows: Sequence[Mapping[str, Any]],
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, int]:
    """Replace the ``rel_type`` predictions of ``run_id`` with ``rows`` (``start`` Compound.id, ``end``
    MoA.name / Gene.symbol, ``score``, ``rank``).

    Returns ``{deleted, written, missing}``; rows whose end nodes are missing are counted, not written.
    """
    if rel_type not in PREDICTION_RELS:
        raise ValueError(f"prediction type must be one of {sorted(PREDICTION_RELS)}, not {rel_type!r}")
    end_label, end_key = PREDICTION_RELS[rel_type]
    deleted = delete_predictions(conn, run_id, rel_type)
    # rel_type / labels come from PREDICTION_RELS only, never from input: safe to interpolate.
    q = (
        "UNWIND $rows AS r MATCH (c:Compound {id: r.start}) "
        f"MATCH (t:{end_label} {{{end_key}: r.end}}) "
        f"MERGE (c)-[p:{rel_type} {{run: $run}}]->(t) SET p.score = r.score, p.rank = r.rank "
        "RETURN count(p) AS n"
    )
    written = 0
    for i in range(0, len(rows), batch_size):
        chunk = [dict(r) for r in rows[i : i + batch_size]]

        def work(tx: ManagedTransaction, chunk: list[dict[str, Any]] = chunk) -> int:
            return int(tx.run(q, rows=chunk, run=run_id).single()["n"])

        written += conn.write(work)
    return {"deleted": deleted, "written": written, "missing": len(rows) - written}


def delete_predictions(conn: Neo4jConnection, run_id: str, rel_type: str | None = None) -> int:
    """Delete the predictions of ``run_id`` (of one type, or all); returns how many."""
    types = [rel_type] if rel_type else list(PREDICTION_RELS)
    n = 0
    for t in types:
        if t not in PREDICTION_RELS:
            raise ValueError(f"unknown prediction type {t!r}")
        rows = conn.query(f"MATCH (:Compound)-[p:{t}]->() WHERE p.run = $run DELETE p RETURN count(*) AS n",
                          run=run_id)
        n += rows[0]["n"] if rows else 0
    return n


def delete_model_run(conn: Neo4jConnection, run_id: str) -> int:
    """Delete a ModelRun and its predictions; returns the number of predictions deleted."""
    n = delete_predictions(conn, run_id)
    conn.query("MATCH (r:ModelRun {id: $id}) DETACH DELETE r", id=run_id)
    return n


def prediction_counts(conn: Neo4jConnection, run_id: str) -> dict[str, int]:
    """How many predictions of each type a run has in the graph."""
    out = {}
    for t in PREDICTION_RELS:
        q = f"MATCH (:Compound)-[p:{t}]->() WHERE p.run = $run RETURN count(p) AS n"
        rows = conn.query(q, run=run_id)
        out[t] = rows[0]["n"]
    return out
