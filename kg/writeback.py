"""Writing model runs and their predictions back to Neo4j, idempotently per run id, through the writer.

A run is one ``(:ModelRun {id})`` node (merged on its key, see ``kg/schema.py``) holding the config, the
graph version it was trained on (the completed IngestRun ids), the split, metrics and baseline metrics
(JSON strings plus a few flat numbers that Cypher can sort on) and the checkpoint path. Its predictions
are relationships ``(:Compound)-[:PREDICTED_MOA {run, score, rank}]->(:MoA)`` and
``(:Compound)-[:PREDICTED_TARGET {run, score, rank}]->(:Gene)``, merged on ``run``.

Both go through :func:`moakg.kg.writer.write_run` under the run's :class:`~moakg.kg.writer.Provenance`:
the ModelRun goes ``running`` -> ``completed`` around every write, or ``failed`` (with the error) when a
write raises; writing predictions first deletes that run's predictions of that type (in batches) and
then writes the new ones in ``UNWIND`` batches, so a re-run changes no counts, stale predictions never
survive, and a failed write is completed by writing the run again. ``moakg train`` writes the run node and
its predictions in one lifecycle (:func:`write_model_run` with ``predictions``), so a run never reads
``completed`` before its predictions are in; ``moakg predict`` adds its predictions to a completed run in
one transaction (:func:`write_predictions` with ``origin``), without touching the run's status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from moakg.kg.connection import Neo4jConnection
from moakg.kg.schema import _ident
from moakg.kg.writer import Delete, Provenance, RelBatch, delete_batched, write_atomic, write_run

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


def write_model_run(conn: Neo4jConnection, run_id: str, props: Mapping[str, Any],
                    predictions: tuple[str, Sequence[Mapping[str, Any]]] | None = None,
                    batch_size: int = DEFAULT_BATCH) -> dict[str, int]:
    """MERGE ``(:ModelRun {id: run_id})`` and set ``props``; dicts and lists of dicts become JSON strings.

    Lists of plain numbers or strings stay lists. ``created`` is set once; every write is a new attempt
    (``attempts`` + 1, ``started``, ``ended``) that leaves the run ``completed``.

    ``predictions`` (``(rel_type, rows)`` as :func:`write_predictions` takes them) replace the run's
    predictions of that type inside the same lifecycle: the run is ``completed`` only once they are all
    written (a crash in between leaves it ``running``, a failure ``failed``; the same write again
    completes it). Returns ``{deleted, written, missing}`` of the predictions (zeros without them).
    """
    flat: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str, bool)) for v in value):
            flat[key] = list(value)
        else:
            flat[key] = _jsonable(value)
    batches = _prediction_batches(run_id, *predictions) if predictions is not None else []
    # One write of the run node: running -> completed, a new attempt each time the run is written.
    counts = write_run(conn, Provenance.model(run_id), batches, flat, batch_size=batch_size)
    n = len(predictions[1]) if predictions is not None else 0
    missing = counts.rels_missing_endpoint
    return {"deleted": counts.deleted, "written": n - missing, "missing": missing}


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
    batch_size: int = DEFAULT_BATCH, origin: str | None = None,
) -> dict[str, int]:
    """Replace the ``rel_type`` predictions of ``run_id`` with ``rows`` (``start`` Compound.id, ``end``
    MoA.name / Gene.symbol, ``score``, ``rank``).

    ``origin`` (``moakg predict``: the IngestRun that added the predicted compounds; the rows carry it
    too) replaces only the predictions of that origin, so the run's test predictions and other batches of
    new compounds stay; they are written in one transaction and the run's status is left as it is.

    Returns ``{deleted, written, missing}``; rows whose end nodes are missing are counted, not written.
    """
    batches = _prediction_batches(run_id, rel_type, rows, origin)
    if origin is not None:
        # `moakg predict` adds to a completed run: all or nothing, in one transaction, so that neither a
        # failure nor a crash can leave the run's status or its predictions half-done.
        counts = write_atomic(conn, Provenance.model(run_id), batches, batch_size=batch_size)
    else:
        # Continues the run write_model_run started (not a new attempt); a failure marks it failed.
        counts = write_run(conn, Provenance.model(run_id), batches, batch_size=batch_size, new_attempt=False)
    missing = counts.rels_missing_endpoint
    return {"deleted": counts.deleted, "written": len(rows) - missing, "missing": missing}


def _prediction_batches(run_id: str, rel_type: str, rows: Sequence[Mapping[str, Any]],
                        origin: str | None = None) -> list[Delete | RelBatch]:
    """Replace: this run's (origin's) old predictions of this type go first, then ``rows``."""
    if rel_type not in PREDICTION_RELS:
        raise ValueError(f"prediction type must be one of {sorted(PREDICTION_RELS)}, not {rel_type!r}")
    end_label, end_key = PREDICTION_RELS[rel_type]
    return [_prediction_delete(run_id, rel_type, origin),
            RelBatch(rel_type, ("Compound", "id"), (end_label, end_key), rows)]  # merged on run (schema)


def _prediction_delete(run_id: str, rel_type: str, origin: str | None = None) -> Delete:
    if rel_type not in PREDICTION_RELS:
        raise ValueError(f"unknown prediction type {rel_type!r}")
    where = {"run": run_id} if origin is None else {"run": run_id, "origin": origin}
    return Delete("Compound", where, rel_type=rel_type)


def delete_predictions(conn: Neo4jConnection, run_id: str, rel_type: str | None = None) -> int:
    """Delete the predictions of ``run_id`` (of one type, or all); returns how many."""
    types = [rel_type] if rel_type else list(PREDICTION_RELS)
    return delete_batched(conn, [_prediction_delete(run_id, t) for t in types])


def delete_model_run(conn: Neo4jConnection, run_id: str) -> int:
    """Delete a ModelRun and its predictions; returns the number of predictions deleted."""
    n = delete_predictions(conn, run_id)
    delete_batched(conn, [Delete("ModelRun", {"id": run_id})])
    return n


def prediction_counts(conn: Neo4jConnection, run_id: str) -> dict[str, int]:
    """How many predictions of each type a run has in the graph."""
    out = {}
    for t in PREDICTION_RELS:
        q = f"MATCH (:Compound)-[p:{_ident(t)}]->() WHERE p.run = $run RETURN count(p) AS n"
        rows = conn.query(q, run=run_id)
        out[t] = rows[0]["n"]
    return out
