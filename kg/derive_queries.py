"""Read-only Cypher for the derive step (:mod:`moakg.derive`): what it reads from the graph.

Every value is a query parameter; records are folded into numpy as they stream, so no Python list of
all z-vectors is ever held.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection

#: Signatures of genetic perturbations are not compound signatures
OE_PERT_TYPE = "trt_oe"


def input_runs(conn: Neo4jConnection, exclude_prefix: str = "derive_") -> list[str]:
    """Ids of the completed IngestRuns of every data source (derive runs left out), sorted."""
    rows = conn.query(
        "MATCH (r:IngestRun) WHERE r.status = 'completed' AND NOT r.source STARTS WITH $prefix "
        "RETURN r.id AS id ORDER BY id", prefix=exclude_prefix)
    return [r["id"] for r in rows]


def run_status(conn: Neo4jConnection, run_id: str) -> str | None:
    """``status`` of ``(:IngestRun {id: run_id})``; None when there is no such run."""
    rows = conn.query("MATCH (r:IngestRun {id: $id}) RETURN r.status AS status", id=run_id)
    return rows[0]["status"] if rows else None


def drop_other_runs(conn: Neo4jConnection, source: str, keep: str) -> int:
    """Delete the IngestRun nodes of ``source`` other than ``keep`` (runs whose output was replaced)."""
    rows = conn.query("MATCH (r:IngestRun {source: $source}) WHERE r.id <> $keep "
                      "DETACH DELETE r RETURN count(*) AS n", source=source, keep=keep)
    return int(rows[0]["n"]) if rows else 0


def compound_smiles(conn: Neo4jConnection) -> tuple[list[str], list[str]]:
    """``(ids, smiles)`` of every compound with a SMILES, in id order."""
    rows = conn.query("MATCH (c:Compound) WHERE c.smiles IS NOT NULL "
                      "RETURN c.id AS id, c.smiles AS smiles ORDER BY id")
    return [r["id"] for r in rows], [r["smiles"] for r in rows]


def landmark_symbols(conn: Neo4jConnection) -> list[str]:
    """Landmark gene symbols, sorted: position ``j`` of every ``Signature.z_landmark`` is gene ``j``."""
    rows = conn.query("MATCH (g:Gene) WHERE g.is_landmark = true RETURN g.symbol AS s ORDER BY s")
    return [r["s"] for r in rows]


def compound_consensus(conn: Neo4jConnection, n_landmarks: int) -> tuple[list[str], np.ndarray]:
    """``(ids, Z)``: each compound's consensus landmark z-vector (mean of its signatures' ``z_landmark``,
    NaN as 0; overexpression signatures excluded), in id order; ``Z`` is float32 [n, n_landmarks]."""
    text = ("MATCH (c:Compound)-[:HAS_SIGNATURE]->(s:Signature) "
            "WHERE s.z_landmark IS NOT NULL AND coalesce(s.pert_type, '') <> $oe "
            "RETURN c.id AS id, s.z_landmark AS z ORDER BY id")

    def work(tx: Any) -> tuple[list[str], np.ndarray]:
        ids: list[str] = []
        sums: list[np.ndarray] = []
        counts: list[int] = []
        for rec in tx.run(text, oe=OE_PERT_TYPE):
            z = rec["z"]
            if len(z) != n_landmarks:
                raise UserError(f"a signature of compound {rec['id']!r} has a z_landmark of length {len(z)} "
                                f"but the graph has {n_landmarks} landmark genes (Gene.is_landmark)")
            v = np.nan_to_num(np.asarray(z, dtype=np.float64))
            if ids and ids[-1] == rec["id"]:
                sums[-1] += v
                counts[-1] += 1
            else:
                ids.append(rec["id"])
                sums.append(v)
                counts.append(1)
        if not ids:
            return [], np.zeros((0, n_landmarks), dtype=np.float32)
        return ids, (np.stack(sums) / np.asarray(counts)[:, None]).astype(np.float32)

    return conn.read(work)


def overexpression_signatures(conn: Neo4jConnection) -> list[dict[str, Any]]:
    """Genetic perturbation signatures: ``{sig_id, gene, genes, z}`` per ``(:Signature {pert_type:
    'trt_oe'})-[:PERTURBS]->(:Gene)``, with the symbols of its up/down genes and their signed z (+1 / -1
    where an edge has no z), in sig_id order."""
    return conn.query(
        "MATCH (s:Signature {pert_type: $oe})-[:PERTURBS]->(p:Gene) "
        "CALL (s) { OPTIONAL MATCH (s)-[r:UPREGULATES|DOWNREGULATES]->(g:Gene) "
        "  RETURN collect(g.symbol) AS genes, "
        "         collect(coalesce(r.z, CASE type(r) WHEN 'UPREGULATES' THEN 1.0 ELSE -1.0 END)) AS z } "
        "RETURN s.sig_id AS sig_id, p.symbol AS gene, genes, z ORDER BY sig_id, gene",
        oe=OE_PERT_TYPE)
