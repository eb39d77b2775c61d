"""Edges per second and peak memory of the PyG export (:mod:`moakg.kg.export`), next to the key-based
exporter it replaced, measured in the same run on the same graph.

The graph is **synthetic**: ``--genes`` Gene nodes and ``--edges / --degree`` Signature nodes, each with
``--degree`` UPREGULATES edges carrying a float ``z`` (one edge in ten from the source 'cmap', the rest
'lincs'), written with ``UNWIND range(...)`` Cypher into a throw-away local Neo4j (or NEO4J_URI, only if
its graph is empty or ``--wipe`` is given). Each measurement runs in a fresh child process (peak RSS from
``VmHWM``, reset at the child's start; see benchmarks/common.py) over ``Signature`` + ``Gene`` and
``UPREGULATES``:

- ``idle``: imports and the connection only (what every other row's peak RSS includes);
- ``before``: the exporter before this change (a copy of its node-key paging and ``_edges`` loop, below),
  on the first ``--baseline-edges / --degree`` signatures in key order (it is slow);
- ``now``: :mod:`moakg.kg.export`'s node listing, edge reading and tensors, on the same subset and on the
  whole graph;
- ``export_heterodata``: the whole call on the whole graph (Signature features and reverse edges too).

``edges/s`` is the edges exported over the edge phase's seconds (read, map, sort, tensors); the node
listing's seconds are a column of their own, and ``client CPU s`` is the child's CPU time in the edge
phase (the rest of its wall time it waits for the server). Each row is the fastest of ``--repeat`` runs
(peak RSS: the highest). ``before`` and ``now`` on the subset must give the same tensors (checked through
a hash of edge_index, edge_attr and the source name of each edge).

    ~/.venvs/moakg/bin/python benchmarks/bench_export.py            # --edges 1000000 --baseline-edges 200000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

from moakg.benchmarks.common import PEAK_RSS_SNIPPET, bench_connection
from moakg.kg.connection import Neo4jConnection
from moakg.kg.export import ExportSpec, _edge_tensors, _edges, _Positions, _select_nodes, export_heterodata
from moakg.kg.export_features import run_batched
from moakg.kg.export_queries import edges_from_query
from moakg.kg.maintenance import clear_graph
from moakg.kg.schema import current_schema, init_schema

LABELS, REL = ("Signature", "Gene"), "UPREGULATES"
CHILD = PEAK_RSS_SNIPPET + """
import json, sys
from moakg.benchmarks.bench_export import child
print(json.dumps(child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), peak_rss_mb)))
"""


# --------------------------------------------------------------------------------------------------------
# The exporter before this change, kept here only as the benchmark's baseline: node keys by keyset pages of
# one record per key, then one record [src key, dst key, weight, source] per edge, mapped by dict look-ups.
def old_node_keys(conn: Neo4jConnection, label: str, batch_size: int) -> list[str]:
    key = current_schema().key_of(label)
    text = f"MATCH (n:{label}) WHERE n.{key} > $last RETURN n.{key} AS key ORDER BY key LIMIT $limit"
    out: list[str] = []
    last = ""
    while True:
        page = [r["key"] for r in conn.query(text, last=last, limit=batch_size)]
        out += page
        if len(page) < batch_size:
            return sorted(out)
        last = page[-1]


def old_edges(
    conn: Neo4jConnection, spec: ExportSpec, rel: str, keys: dict[str, list[str]],
    index: dict[str, dict[str, int]], sources: dict[str, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    decl = current_schema().rel(rel)
    src_label, dst_label = decl.endpoints
    s_idx, d_idx = index[src_label], index[dst_label]
    rows_s: list[int] = []
    rows_d: list[int] = []
    weights: list[float] = []
    codes: list[int] = []
    rows = run_batched(conn, edges_from_query(rel), keys[src_label], spec.batch_size, rel, False,
                       min_weight=spec.min_weight(rel))
    for s, d, w, source in rows:
        j = d_idx.get(d)
        if j is None:  # end node outside the subgraph
            continue
        rows_s.append(s_idx[s])
        rows_d.append(j)
        weights.append(decl.missing if w is None else float(w) * decl.scale)
        codes.append(sources.setdefault(source or "", len(sources)))
    s_arr, d_arr = np.asarray(rows_s, np.int64), np.asarray(rows_d, np.int64)
    c_arr = np.asarray(codes, np.int64)
    order = np.lexsort((c_arr, d_arr, s_arr))
    edge_index = torch.from_numpy(np.stack([s_arr[order], d_arr[order]]).reshape(2, -1))
    attr = torch.from_numpy(np.nan_to_num(np.asarray(weights, np.float32)[order]).reshape(-1, 1))
    return edge_index, attr, torch.from_numpy(c_arr[order])
# --------------------------------------------------------------------------------------------------------


def _digest(edge_index: torch.Tensor, attr: torch.Tensor, names: list[str], codes: torch.Tensor) -> str:
    h = hashlib.sha256(edge_index.numpy().tobytes())
    h.update(attr.numpy().tobytes())
    h.update("\n".join(names[c] for c in codes.tolist()).encode())
    return h.hexdigest()[:16]


def child(method: str, n_sig: int, batch_size: int, peak_rss_mb: Any) -> dict[str, Any]:
    """One measurement (in a child process; the server from NEO4J_URI / NEO4J_PASSWORD)."""
    out: dict[str, Any] = {"method": method}
    spec = ExportSpec(labels=LABELS, rels=(REL,), batch_size=batch_size)
    with Neo4jConnection() as conn:
        t0 = time.perf_counter()
        c0 = time.process_time()
        if method == "before":
            keys = {label: old_node_keys(conn, label, batch_size) for label in LABELS}
            keys["Signature"] = keys["Signature"][:n_sig]
            index = {label: {k: i for i, k in enumerate(ks)} for label, ks in keys.items()}
            t1, c1 = time.perf_counter(), time.process_time()
            seen: dict[str, int] = {}
            edge_index, attr, codes = old_edges(conn, spec, REL, keys, index, seen)
            out["digest"] = _digest(edge_index, attr, list(seen), codes)
        elif method == "now":
            keys, ids = _select_nodes(conn, spec, False)
            keys["Signature"], ids["Signature"] = keys["Signature"][:n_sig], ids["Signature"][:n_sig]
            t1, c1 = time.perf_counter(), time.process_time()
            pos = {label: _Positions(v) for label, v in ids.items()}
            names, s, d, w, code = _edges(conn, spec, REL, ids, pos, False)
            edge_index, attr, codes = _edge_tensors(s, d, w, code, len(keys["Signature"]), len(keys["Gene"]),
                                                    len(names))
            out["digest"] = _digest(edge_index, attr, names, codes)
        elif method == "export_heterodata":
            t1, c1 = t0, c0
            data, _ = export_heterodata(conn, spec, cache=False, progress=False)
            edge_index = data["Signature", REL, "Gene"].edge_index
        else:  # idle
            t1, c1, edge_index = t0, c0, torch.zeros(2, 0)
        t2, c2 = time.perf_counter(), time.process_time()
    return {**out, "edges": edge_index.shape[1], "nodes_s": t1 - t0, "edges_s": t2 - t1,
            "edges_cpu_s": c2 - c1, "peak_rss_mb": peak_rss_mb()}


def build_graph(conn: Neo4jConnection, n_sig: int, degree: int, n_genes: int) -> int:
    """Genes G0.., signatures S0.. (key order is not creation order), ``degree`` distinct genes each."""
    conn.query("UNWIND range(0, $n - 1) AS i CREATE (:Gene {symbol: 'G' + i})", n=n_genes)
    for lo in range(0, n_sig, 100_000):
        conn.query("UNWIND range($lo, $hi - 1) AS i CREATE (:Signature {sig_id: 'S' + i})",
                   lo=lo, hi=min(lo + 100_000, n_sig))
    step = next(p for p in (104729, 7919, 4099, 1031, 101, 1) if n_genes % p)  # coprime with n_genes
    with conn.session() as session:
        session.run(
            "MATCH (g:Gene) WITH g ORDER BY g.symbol WITH collect(g) AS genes "
            "MATCH (s:Signature) CALL (s, genes) { "
            "  WITH s, genes, toInteger(substring(s.sig_id, 1)) AS i UNWIND range(0, $degree - 1) AS j "
            "  WITH s, j, i, genes[(i * 7919 + j * $step) % size(genes)] AS g "
            "  CREATE (s)-[:UPREGULATES {z: ((i * 31 + j * 17) % 2000) / 200.0 - 5.0, "
            "                            source: CASE WHEN j % 10 = 0 THEN 'cmap' ELSE 'lincs' END}]->(g) "
            "} IN TRANSACTIONS OF 2000 ROWS",
            degree=degree, step=step,
        ).consume()
    return conn.query("MATCH ()-[r:UPREGULATES]->() RETURN count(r) AS n")[0]["n"]


def run_child(env: dict[str, str], method: str, n_sig: int, batch_size: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", CHILD, method, str(n_sig), str(batch_size)], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"child {method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rust_codec() -> bool:
    """Whether the driver decodes with its optional Rust extension (package neo4j-rust-ext)."""
    try:
        from neo4j._codec.packstream.v1 import _rust_unpack  # type: ignore[attr-defined]
    except ImportError:
        return False
    return _rust_unpack is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edges", type=int, default=1_000_000, help="UPREGULATES edges in the graph")
    ap.add_argument("--baseline-edges", type=int, default=200_000,
                    help="edges the baseline (and 'now' beside it) reads: the first signatures by key")
    ap.add_argument("--degree", type=int, default=50, help="edges per signature (L1000: top 50 genes)")
    ap.add_argument("--genes", type=int, default=12_000)
    ap.add_argument("--batch-size", type=int, default=10_000, help="ExportSpec.batch_size")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per measurement: the fastest is shown, with the highest peak RSS of them")
    ap.add_argument("--wipe", action="store_true", help="clear the graph at NEO4J_URI even if not empty")
    args = ap.parse_args()

    n_sig = -(-args.edges // args.degree)
    n_base = max(1, min(n_sig, args.baseline_edges // args.degree))
    with bench_connection() as conn:
        own_server = not os.environ.get("NEO4J_URI")
        if not own_server and not args.wipe and conn.query("MATCH (n) RETURN count(n) > 0 AS x")[0]["x"]:
            raise SystemExit("the graph at NEO4J_URI is not empty; pass --wipe to clear it")
        init_schema(conn)
        clear_graph(conn)
        t0 = time.perf_counter()
        n_edges = build_graph(conn, n_sig, args.degree, args.genes)
        print(f"synthetic graph: {n_sig:,} Signature, {args.genes:,} Gene, {n_edges:,} UPREGULATES "
              f"(built in {time.perf_counter() - t0:.0f} s); driver's Rust codec: "
              f"{'yes' if rust_codec() else 'no (pure Python)'}", flush=True)
        env = {**os.environ, "NEO4J_URI": conn.settings.uri, "NEO4J_USER": conn.settings.user,
               "NEO4J_PASSWORD": conn.settings.password, "NEO4J_DATABASE": conn.database}
        for method in ("before", "now"):  # warm-up: query plans and the page cache
            run_child(env, method, min(n_base, 200), args.batch_size)
        runs = [("idle", 0, "-"), ("before", n_base, "subset"), ("now", n_base, "subset"),
                ("now", n_sig, "all"), ("export_heterodata", n_sig, "all")]
        rows = []
        for method, n, part in runs:
            tries = [run_child(env, method, n, args.batch_size) for _ in range(args.repeat)]
            best = min(tries, key=lambda r: r["nodes_s"] + r["edges_s"])
            rows.append({**best, "part": part, "peak_rss_mb": max(r["peak_rss_mb"] for r in tries)})
            print(f"  {method:<18} {part:<6} done", flush=True)
        clear_graph(conn)

    print(f"\n{'method':<18} {'part':<6} {'edges':>10} {'nodes s':>8} {'edges s':>8} {'client CPU s':>12} "
          f"{'edges/s':>10} {'peak RSS MB':>12}")
    for r in rows:
        rate = r["edges"] / r["edges_s"] if r["edges"] else 0.0
        r["rate"] = rate
        print(f"{r['method']:<18} {r['part']:<6} {r['edges']:>10,} {r['nodes_s']:>8.2f} {r['edges_s']:>8.2f} "
              f"{r['edges_cpu_s']:>12.2f} {rate:>10,.0f} {r['peak_rss_mb']:>12.0f}")
    before, now_sub, now_all = rows[1], rows[2], rows[3]
    same = before["digest"] == now_sub["digest"] and before["edges"] == now_sub["edges"]
    print(f"\nnow / before, edges/s: {now_sub['rate'] / before['rate']:.1f}x on the same subset, "
          f"{now_all['rate'] / before['rate']:.1f}x for the whole graph; same tensors on the subset: "
          f"{'yes' if same else 'NO'}")
    print(f"peak RSS above idle: before {before['peak_rss_mb'] - rows[0]['peak_rss_mb']:.0f} MB for "
          f"{before['edges']:,} edges, now {now_all['peak_rss_mb'] - rows[0]['peak_rss_mb']:.0f} MB for "
          f"{now_all['edges']:,} edges")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
