"""Bulk first load (``moakg ingest all --bulk``: neo4j-admin import) against the transactional writer, at
>= 10M relationships, on SYNTHETIC data in the real formats (:mod:`moakg.benchmarks.synthetic_scale`).

The bulk path loads the whole data set (``--signatures`` x 100 Signature-Gene relationships plus the
STRING links); the transactional path, about 16,000 rows a second, loads a subset (``--tx-signatures``,
same generator and seed) and its rate is extrapolated per row to the whole set. Both also load the
subset, so the two rates are compared on the same rows too. Every load runs in a child process against
a fresh local Neo4j (peak RSS: the Python process; the server's JVM is not counted); the full set's
server home is kept under ``--dir`` (``neo4j-n<signatures>``) for ``bench_scale.py``.

    python benchmarks/bench_bulk.py [--signatures 100000] [--tx-signatures 2000] [--dir /tmp/moakg-scale]

Takes 10-20 minutes on 2 cores at 10M relationships (generating the data set: 3 more); not part of CI.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from moakg.benchmarks.common import PEAK_RSS_SNIPPET

CHILD = PEAK_RSS_SNIPPET + """
import json, sys, tempfile, time
from pathlib import Path
from moakg.ingest.commands import adapters_from_config
from moakg.kg.bulk_import import bulk_ingest, graph_counts
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.local_server import LocalNeo4j, free_port
from moakg.kg.schema import init_schema
from moakg.ingest.runner import run_adapters
config, mode, home = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with tempfile.TemporaryDirectory(prefix="moakg-bench-bulk-") as tmp:
    server = LocalNeo4j(home=Path(home) if home else Path(tmp) / "neo4j", bolt_port=free_port(),
                        http_port=free_port(), heap="2g", pagecache="1g")
    st = server.start()
    settings = Neo4jSettings(uri=st.bolt_uri, password=server.password(), local=True)
    try:
        t0 = time.perf_counter()
        phases = {}
        if mode == "bulk":
            r = bulk_ingest(settings, adapters_from_config(config), server=server, folder=Path(tmp) / "files",
                            progress=False)
            phases = r.seconds
        else:
            with Neo4jConnection(settings) as conn:
                init_schema(conn)
                run_adapters(conn, adapters_from_config(config), progress=False)
        seconds = time.perf_counter() - t0
        with Neo4jConnection(settings) as conn:
            nodes, rels = graph_counts(conn)
    finally:
        server.stop()
print(json.dumps({"seconds": seconds, "nodes": sum(nodes.values()), "rels": sum(rels.values()),
                  "phases": phases, "peak_mb": peak_rss_mb()}))
"""


#: STRING v11 human: 11,759,454 link lines, 7.1 % of the pairs at combined_score >= 700; at 100,000
#: signatures the synthetic set has as many lines as the real file
LINKS_PER_SIGNATURE = 11_759_454 / 100_000
KEEP_FRACTION = 0.071


def dataset(root: Path, signatures: int) -> Path:
    """A synthetic_scale folder (generated unless it is there); returns its sources.toml."""
    from moakg.benchmarks.synthetic_scale import ScaleSpec, generate

    out = root / f"n{signatures}x12328"
    config = out / "sources.toml"
    if not config.exists():
        generate(ScaleSpec(out=out, signatures=signatures, compounds=max(50, signatures // 20),
                           string_links=2 * int(signatures * LINKS_PER_SIGNATURE / 2),
                           string_keep_fraction=KEEP_FRACTION))
    return config


def load(config: Path, mode: str, home: Path | None = None) -> dict:
    """One load in a child process, into a fresh server (in ``home``, kept for bench_scale.py, or a
    temporary one)."""
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(config), mode, str(home or "")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} load of {config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signatures", type=int, default=100_000,
                    help="signatures of the full set (x 100 Signature-Gene relationships)")
    ap.add_argument("--tx-signatures", type=int, default=2_000, help="signatures of the transactional subset")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/moakg-scale"), help="where the data sets go")
    args = ap.parse_args()

    big = dataset(args.dir, args.signatures)
    small = dataset(args.dir, args.tx_signatures)
    runs = {("subset", "transactional"): load(small, "transactional"),
            ("subset", "bulk"): load(small, "bulk"),
            ("full", "bulk"): load(big, "bulk", args.dir / f"neo4j-n{args.signatures}")}
    tx = runs[("subset", "transactional")]
    tx_rate = (tx["nodes"] + tx["rels"]) / tx["seconds"]
    full = runs[("full", "bulk")]
    rows_full = full["nodes"] + full["rels"]
    print("SYNTHETIC data (benchmarks/synthetic_scale.py); rows = nodes + relationships\n")
    print(f"{'set':8} {'path':14} {'relationships':>13} {'nodes':>9} {'seconds':>9} {'rows/s':>9} "
          f"{'vs tx':>6} {'peak MB':>8}  phases")
    for (name, path), r in runs.items():
        rate = (r["nodes"] + r["rels"]) / r["seconds"]
        phases = ", ".join(f"{k} {v:.0f}s" for k, v in r["phases"].items() if k != "total")
        print(f"{name:8} {path:14} {r['rels']:>13,} {r['nodes']:>9,} {r['seconds']:>9.1f} {rate:>9,.0f} "
              f"{rate / tx_rate:>5.1f}x {r['peak_mb']:>8,.0f}  {phases}")
    est = rows_full / tx_rate
    print(f"{'full':8} {'transactional':14} {full['rels']:>13,} {full['nodes']:>9,} {est:>9.1f} "
          f"{tx_rate:>9,.0f} {1.0:>5.1f}x {'':>8}  extrapolated per row from the subset")
    print(f"\nbulk vs transactional on the full set: {est / full['seconds']:.1f}x faster "
          f"({full['seconds'] / 60:.1f} min against {est / 60:.1f} min)")


if __name__ == "__main__":
    main()
