"""Batched writer vs one merge per transaction, on the same rows, in one run.

Writes 50,000 Gene nodes + 100,000 INTERACTS_WITH relationships through the batched writer
(one unwind-merge statement and one transaction per batch), and a subset of the same rows through the
per-row baseline (the same writer with batches of one row: one statement per transaction), extrapolated
per row. Prints rows/s and the
ratio. Uses NEO4J_URI/... when set, else starts a throw-away local Neo4j in a temporary directory.

    python benchmarks/bench_writer.py [--nodes 50000] [--rels 100000] [--baseline-rows 2000]
"""

from __future__ import annotations

import argparse
import random
import time

from moakg.benchmarks.common import bench_connection
from moakg.kg.connection import Neo4jConnection
from moakg.kg.maintenance import clear_graph
from moakg.kg.schema import init_schema
from moakg.kg.writer import BatchWriter, NodeBatch, Provenance, RelBatch, run_ingest


def make_rows(n_nodes: int, n_rels: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    nodes = [{"symbol": f"BENCH{i}", "entrez_id": i, "is_landmark": i % 13 == 0} for i in range(n_nodes)]
    rels = []
    for _ in range(n_rels):
        a, b = rng.randrange(n_nodes), rng.randrange(n_nodes)
        rels.append({"start": f"BENCH{a}", "end": f"BENCH{b}", "combined_score": rng.randrange(400, 1000)})
    return nodes, rels


def per_row(conn: Neo4jConnection, nodes: list[dict], rels: list[dict]) -> float:
    """The baseline: the same writer and statements, one row per transaction. Returns seconds."""
    writer = BatchWriter(conn, Provenance.ingest("bench", "bench-per-row"), batch_size=1)
    t0 = time.perf_counter()
    writer.write_nodes(NodeBatch("Gene", "symbol", nodes))
    writer.write_rels(RelBatch("INTERACTS_WITH", ("Gene", "symbol"), ("Gene", "symbol"), rels))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=50_000)
    ap.add_argument("--rels", type=int, default=100_000)
    ap.add_argument(
        "--baseline-rows", type=int, default=2_000, help="rows (nodes + rels) for the per-row baseline"
    )
    ap.add_argument("--batch-size", type=int, default=5_000)
    args = ap.parse_args()

    nodes, rels = make_rows(args.nodes, args.rels)
    with bench_connection() as conn:
        init_schema(conn)
        clear_graph(conn)
        # Warm-up so both methods run against a warmed-up JVM and query cache.
        run_ingest(conn, "bench-warmup", [NodeBatch("Gene", "symbol", nodes[:2000])], progress=False)
        clear_graph(conn)

        t0 = time.perf_counter()
        rep = run_ingest(
            conn,
            "bench",
            [
                NodeBatch("Gene", "symbol", nodes),
                RelBatch("INTERACTS_WITH", ("Gene", "symbol"), ("Gene", "symbol"), rels),
            ],
            batch_size=args.batch_size,
            progress=False,
        )
        batched_s = time.perf_counter() - t0
        assert rep.counts.nodes_created == args.nodes
        clear_graph(conn)

        # Same row shapes, scaled down, one node per two relationships as in the batched run.
        sub_nodes, sub_rels = make_rows(args.baseline_rows // 3, args.baseline_rows - args.baseline_rows // 3)
        base_s = per_row(conn, sub_nodes, sub_rels)
        clear_graph(conn)

    batched_rows = args.nodes + args.rels
    base_rows = len(sub_nodes) + len(sub_rels)
    batched_rps = batched_rows / batched_s
    base_rps = base_rows / base_s
    row = "{:<36}{:>10,}{:>10.1f}{:>12,.0f}{:>8.1f}"
    print(f"{'method':<36}{'rows':>10}{'seconds':>10}{'rows/s':>12}{'ratio':>8}")
    print(row.format("per-row writes, 1 tx/row (baseline)", base_rows, base_s, base_rps, 1.0))
    ratio = batched_rps / base_rps
    print(row.format("batched writer (kg.writer)", batched_rows, batched_s, batched_rps, ratio))
    est = batched_rows / base_rps
    print(
        f"\nper-row baseline extrapolated to {batched_rows:,} rows: {est:,.0f} s "
        f"(batch size {args.batch_size})"
    )


if __name__ == "__main__":
    main()
