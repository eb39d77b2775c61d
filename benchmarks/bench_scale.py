"""Export and mini-batch training at 1M and 10M relationships, and a projection to the full CLUE release,
on SYNTHETIC data in the real formats (:mod:`moakg.benchmarks.synthetic_scale`, the data sets of
``bench_bulk.py``).

For each size: bulk-load the data set into a local Neo4j kept under ``--dir`` (loaded once; re-runs
reuse it), export it to ``HeteroData`` (:func:`moakg.kg.export.export_heterodata`, no cache) in a child
process, then train the MoA task (SAGE, phenotype setting, random split) for ``--epochs`` epochs with
neighbour-capped mini-batches, and full batch where the graph is at most ``--full-batch-max`` edges,
each in a child process (peak RSS from ``VmHWM``). Prints one table, the growth from the smaller to the
larger size (time ~ edges^b) and the projection to 72M Signature-Gene + 13M STRING relationships.

    python benchmarks/bench_scale.py [--signatures 10000 100000] [--epochs 1] [--dir /tmp/moakg-scale]

About 30 minutes on 2 cores with the data sets generated and loaded; not part of CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from moakg.benchmarks.bench_bulk import dataset
from moakg.benchmarks.common import PEAK_RSS_SNIPPET, child_failure

EXPORT = PEAK_RSS_SNIPPET + """
import json, os, sys, time
from pathlib import Path
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.export import ExportSpec, export_heterodata, save_export
uri, out = sys.argv[1:3]
with Neo4jConnection(Neo4jSettings(uri=uri, password=os.environ["NEO4J_PASSWORD"])) as conn:
    t0 = time.perf_counter()
    data, maps = export_heterodata(conn, cache=False, progress=False)
    seconds = time.perf_counter() - t0
save_export(Path(out), data, maps, ExportSpec())
edges = sum(int(data[et].edge_index.size(1)) for et in data.edge_types)
print(json.dumps({"seconds": seconds, "edges": edges, "peak_mb": peak_rss_mb()}))
"""

TRAIN = PEAK_RSS_SNIPPET + """
import json, sys
from moakg.kg.export import load_export
from moakg.gnn.tasks import make_moa_task
from moakg.gnn.config import TrainConfig
from moakg.gnn.train import train
path, mode, epochs, hidden = sys.argv[1:5]
data, maps, _ = load_export(path)
task = make_moa_task(data, maps, "random", 0, 5, "phenotype")
base = peak_rss_mb()
cfg = TrainConfig(epochs=int(epochs), patience=10**6, mini_batch=(mode == "mini-batch"), batch_size=512,
                  num_neighbors=(10, 5), lr=5e-3, hidden=int(hidden))
r = train(task, cfg, kind="sage", seed=0)
print(json.dumps({"s_epoch": r.seconds_per_epoch, "peak_mb": peak_rss_mb(), "base_mb": base}))
"""

#: the full CLUE release: ~720,000 compound signatures x (50 up + 50 down) genes, STRING human links
FULL_SIGNATURE_GENE = 72_000_000
FULL_STRING = 13_000_000


def child(code: str, *args: str, password: str | None = None) -> dict:
    env = dict(os.environ, NEO4J_PASSWORD=password) if password else None  # never on a command line
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": child_failure(proc)[:100]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(root: Path, signatures: int, epochs: int, hidden: int, full_batch_max: int) -> dict:
    from moakg.ingest.commands import adapters_from_config
    from moakg.kg.bulk_import import bulk_ingest, graph_counts
    from moakg.kg.connection import Neo4jConnection, Neo4jSettings
    from moakg.kg.local_server import LocalNeo4j, free_port

    config = dataset(root, signatures)
    server = LocalNeo4j(home=root / f"neo4j-n{signatures}", bolt_port=free_port(), http_port=free_port(),
                        heap="2g", pagecache="2g")
    st = server.start()
    settings = Neo4jSettings(uri=st.bolt_uri, password=server.password(), local=True)
    out: dict = {"signatures": signatures}
    try:
        with Neo4jConnection(settings) as conn:
            loaded = conn.query("MATCH (r:IngestRun {status: 'completed'}) RETURN count(r) AS n")[0]["n"]
        if not loaded:
            t0 = time.perf_counter()
            bulk_ingest(settings, adapters_from_config(config), server=server,
                        folder=root / f"bulk-{signatures}", progress=False)
            out["load_s"] = time.perf_counter() - t0
        with Neo4jConnection(settings) as conn:
            out["relationships"] = sum(graph_counts(conn)[1].values())
        path = root / f"export-n{signatures}.pt"
        out["export"] = child(EXPORT, settings.uri, str(path), password=settings.password)
    finally:
        server.stop()
    out["mini"] = child(TRAIN, str(path), "mini-batch", str(epochs), str(hidden))
    if out["export"].get("edges", math.inf) <= full_batch_max:
        out["full"] = child(TRAIN, str(path), "full-batch", str(epochs), str(hidden))
    return out


def _cell(r: dict | None, key: str, fmt: str) -> str:
    if not r:
        return "-"
    if "error" in r:
        return "failed"
    return format(r[key], fmt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signatures", type=int, nargs="+", default=[10_000, 100_000],
                    help="data set sizes (x 100 Signature-Gene relationships)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--full-batch-max", type=int, default=5_000_000,
                    help="train full batch too on graphs with at most this many exported edges")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/moakg-scale"))
    args = ap.parse_args()

    rows = [measure(args.dir, n, args.epochs, args.hidden, args.full_batch_max) for n in args.signatures]
    print("SYNTHETIC data (benchmarks/synthetic_scale.py); edges = exported, both directions\n")
    print(f"{'signatures':>10} {'rels in Neo4j':>13} {'export s':>9} {'edges':>11} {'edges/s':>9} "
          f"{'export MB':>9} {'mini s/ep':>9} {'mini MB':>8} {'full s/ep':>9} {'full MB':>8}")
    for r in rows:
        e = r["export"]
        rate = f"{e['edges'] / e['seconds']:,.0f}" if "edges" in e else "failed"
        print(f"{r['signatures']:>10,} {r['relationships']:>13,} {_cell(e, 'seconds', '.1f'):>9} "
              f"{_cell(e, 'edges', ','):>11} {rate:>9} {_cell(e, 'peak_mb', ',.0f'):>9} "
              f"{_cell(r['mini'], 's_epoch', '.1f'):>9} {_cell(r['mini'], 'peak_mb', ',.0f'):>8} "
              f"{_cell(r.get('full'), 's_epoch', '.1f'):>9} {_cell(r.get('full'), 'peak_mb', ',.0f'):>8}")
    ok = [r for r in rows if "edges" in r["export"] and "s_epoch" in r["mini"]]
    if len(ok) >= 2:
        a, b = ok[0], ok[-1]
        scale = b["relationships"] / a["relationships"]
        full = (FULL_SIGNATURE_GENE + FULL_STRING) / b["relationships"]
        print(f"\ngrowth from {a['relationships']:,} to {b['relationships']:,} relationships ({scale:.1f}x), "
              f"and the projection to the full CLUE release ({FULL_SIGNATURE_GENE + FULL_STRING:,}: "
              f"{full:.1f}x the larger set), time or memory ~ relationships^b:")
        for name, get in (("export seconds", lambda r: r["export"]["seconds"]),
                          ("export peak MB", lambda r: r["export"]["peak_mb"]),
                          ("mini-batch s/epoch", lambda r: r["mini"]["s_epoch"]),
                          ("mini-batch peak MB", lambda r: r["mini"]["peak_mb"])):
            b_exp = math.log(get(b) / get(a)) / math.log(scale)
            print(f"  {name:20} {get(a):>10,.1f} -> {get(b):>10,.1f}   b = {b_exp:.2f}   "
                  f"full release ~ {get(b) * full ** b_exp:,.0f}")


if __name__ == "__main__":
    main()
