"""GNN training cost on the FULL shared-data graph: export time, epoch time (full batch and mini-batch)
and peak memory for sage / rgcn / hgt.

Ingests ../shared/data as ``experiment_shared.py`` does (full Repurposing Hub, DrugBank TSVs, the real
consensus signatures and over-expression table, hetio PPI, GO 2019 + human GAF, the STRING sample) and
derives the similarity relationships, into a throw-away local Neo4j (or ``NEO4J_URI`` with
``--skip-ingest``), exports it to HeteroData (timed, no cache), builds the MoA task
(random split, phenotype setting) and, for each model and mode, trains ``--epochs`` epochs in a fresh
child process so that peak resident memory (ru_maxrss) belongs to that configuration alone (CUDA: peak
allocated GPU memory). Prints one table; a child that dies (HGT full batch is OOM-killed in 24 GiB) is a row
saying why. Takes about 20 minutes on 2 idle cores; not part of CI.

    python benchmarks/bench_train.py [--epochs 3] [--hidden 128] [--device cpu] [--skip-ingest]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moakg.benchmarks.common import PEAK_RSS_SNIPPET

CHILD = PEAK_RSS_SNIPPET + """
import json, sys, time, torch
from moakg.kg.export import load_export
from moakg.gnn.tasks import make_moa_task
from moakg.gnn.config import TrainConfig
from moakg.gnn.train import train
path, kind, mode, epochs, hidden, device = sys.argv[1:7]
data, maps, _ = load_export(path)
task = make_moa_task(data, maps, "random", 0, 5, "phenotype")
base = peak_rss_mb()
cfg = TrainConfig(epochs=int(epochs), patience=10**6, mini_batch=(mode == "mini-batch"), batch_size=512,
                  num_neighbors=(10, 5), device=device, lr=5e-3, hidden=int(hidden))
r = train(task, cfg, kind=kind, seed=0)
gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
print(json.dumps({"s_epoch": r.seconds_per_epoch, "params": r.n_params, "rss_mb": peak_rss_mb(),
    "base_mb": base, "gpu_mb": gpu,
    "micro_auprc": r.metrics["micro_auprc"]}))
"""


def ingest_full(conn: object) -> float:
    """The graph of ``experiment_shared.py`` (full Hub and DrugBank, the real consensus signatures and
    over-expression table, PPI, GO 2019 + human GAF, the STRING sample) and its derived similarity
    edges (SIMILAR_STRUCTURE, SIMILAR_SIGNATURE, MIMICS / OPPOSES): the graph the README's results
    tables are measured on. Returns the seconds taken."""
    from moakg.benchmarks.experiment_shared import SHARED_SOURCES
    from moakg.derive.run import derive_similarity
    from moakg.ingest.commands import adapters_from_config
    from moakg.ingest.runner import run_adapters
    from moakg.kg.maintenance import clear_graph
    from moakg.kg.schema import init_schema

    init_schema(conn)
    clear_graph(conn)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sources.toml"
        cfg.write_text(SHARED_SOURCES)
        t0 = time.perf_counter()
        run_adapters(conn, adapters_from_config(cfg), progress=False)
        derive_similarity(conn, progress=False)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=["sage", "rgcn", "hgt"])
    ap.add_argument("--skip-ingest", action="store_true", help="use the graph already at NEO4J_URI")
    args = ap.parse_args()

    from moakg.benchmarks.common import bench_connection, child_failure
    from moakg.kg.export import ExportSpec, export_heterodata, save_export

    with tempfile.TemporaryDirectory(prefix="moakg-bench-train-") as tmp, bench_connection() as conn:
        if not args.skip_ingest:
            print(f"ingest + derive (full shared data): {ingest_full(conn):.1f} s", flush=True)
        t0 = time.perf_counter()
        data, maps = export_heterodata(conn, cache=False, progress=False)
        export_s = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        nodes = sum(int(data[t].num_nodes) for t in data.node_types)
        edges = sum(int(data[et].edge_index.size(1)) for et in data.edge_types)
        print(f"export: {export_s:.1f} s, {nodes:,} nodes, {edges:,} edges (both directions), "
              f"exporter process peak RSS {rss:.0f} MB", flush=True)
        for t in data.node_types:
            print(f"  {t:10s} {int(data[t].num_nodes):>8,}")
        path = save_export(Path(tmp) / "graph.pt", data, maps, ExportSpec())
        del data
        rows = []
        for kind in args.models:
            for mode in ("full-batch", "mini-batch"):
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, str(path), kind, mode, str(args.epochs), str(args.hidden),
                     args.device], capture_output=True, text=True)
                if proc.returncode != 0:
                    rows.append((kind, mode, None, child_failure(proc)[:80]))
                    print(f"  {kind} {mode} failed: {rows[-1][3]}", flush=True)
                    continue
                rows.append((kind, mode, json.loads(proc.stdout.strip().splitlines()[-1]), ""))
                print(f"  {kind} {mode} done", flush=True)
    print(f"\nMoA task, phenotype setting, hidden {args.hidden}, 2 layers, {args.epochs} epochs, "
          f"device {args.device} (epoch = training pass + validation pass)")
    head = f"{'model':6s} {'mode':11s} {'s/epoch':>8s} {'params':>10s} {'peak RSS MB':>12s} {'data MB':>8s}"
    print(head + (f" {'GPU MB':>8s}" if args.device.startswith("cuda") else ""))
    for kind, mode, r, err in rows:
        if r is None:
            print(f"{kind:6s} {mode:11s} failed: {err}")
            continue
        line = (f"{kind:6s} {mode:11s} {r['s_epoch']:8.2f} {r['params']:>10,} {r['rss_mb']:12.0f} "
                f"{r['base_mb']:8.0f}")
        print(line + (f" {r['gpu_mb']:8.0f}" if r["gpu_mb"] is not None else ""))
    print("peak RSS: whole child process (graph + task + training); data MB: the same process after "
          "loading the graph and building the task, before training")


if __name__ == "__main__":
    main()
