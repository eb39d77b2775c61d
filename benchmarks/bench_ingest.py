"""Ingest speed per source, and the L1000 reader's memory against reading a GCTX in one go.

Part 1 ingests each source from the real files in ../shared/data (full Repurposing Hub, DrugBank
TSVs, hetio PPI, GO 2019 + human GAF, the STRING samples, the L1000 plate) into a throw-away local
Neo4j (or NEO4J_URI) and prints input rows/s and written rows/s per source (``--demo`` uses the
bundled demo subsets instead).

Part 2 writes a **synthetic** GCTX of 20,000 signatures x 12,328 genes in the real layout (values
random, ids real-looking) and reads its 978 landmark rows for every signature twice, each in a fresh
process: with moakg's reader (row blocks of ``--chunk-rows`` signatures) and with pandas from h5py
in one go (the whole matrix into a DataFrame, then the landmark columns). It prints wall time and
peak resident memory (ru_maxrss) for both, next to the same process doing nothing but imports.

    python benchmarks/bench_ingest.py [--demo] [--skip-ingest] [--skip-gctx] [--signatures 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from moakg.benchmarks.common import PEAK_RSS_SNIPPET, bench_connection
from moakg.ingest.commands import adapters_from_config
from moakg.ingest.runner import run_adapters
from moakg.kg.maintenance import clear_graph
from moakg.kg.schema import init_schema

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

FULL_SOURCES = f"""
[l1000]
gct = "{SHARED}/l1000/test_l1000.gct"
pert_info = "{SHARED}/lincs/pertinfo.tsv.gz"
gene_info = "{SHARED}/lincs/geneinfo.tsv.gz"

[repurposing_hub]
drugs = "{SHARED}/repurposing_hub/repurposing_drugs_20200324.txt"
samples = "{SHARED}/repurposing_hub/repurposing_samples_20200324.txt"

[drugbank]
drugs_tsv = "{SHARED}/drugbank/drugbank.tsv"
proteins_tsv = "{SHARED}/drugbank/proteins.tsv"
gene_info = "{SHARED}/lincs/geneinfo.tsv.gz"

[string]
links = "{SHARED}/string/9606.protein.links.detailed.v11.0.random10k.txt"
aliases = "{SHARED}/string/9606.protein.aliases.v11.0.random10k.txt"
min_score = 400

[ppi]
path = "{SHARED}/ppi/protein-interactions.txt.gz"

[go]
obo = "{SHARED}/go/GeneOntology_2019.01.29.obo.gz"
gaf = "{SHARED}/go/GO.goa_human_2019.01.29.gz"
"""

#: input rows per source: the stats key that counts what the adapter read
INPUT_ROWS = {
    "lincs": "columns_in_input",
    "repurposing_hub": "sample_rows",
    "drugbank": "protein_rows",
    "string": "links_read",
    "ppi": "rows_read",
    "go": "annotations_read",
}


def bench_sources(config: Path) -> None:
    with bench_connection() as conn:
        init_schema(conn)
        clear_graph(conn)
        row = "{:<17}{:>12,}{:>10,}{:>9.1f}{:>10,.0f}{:>11,.0f}"
        print("{:<17}{:>12}{:>10}{:>9}{:>10}{:>11}".format(
            "source", "input rows", "written", "seconds", "input/s", "written/s"))
        for adapter in adapters_from_config(config):
            t0 = time.perf_counter()
            [rep] = run_adapters(conn, [adapter], progress=False)
            dt = time.perf_counter() - t0
            c = rep.counts
            written = c.nodes_created + c.nodes_matched + c.rels_created + c.rels_matched
            n_in = int(adapter.stats.get(INPUT_ROWS.get(adapter.source, ""), 0) or 0)
            print(row.format(adapter.source, n_in, written, dt, n_in / dt, written / dt))


def write_synthetic_gctx(path: Path, n_sig: int, n_genes: int = 12_328, n_landmark: int = 978) -> None:
    """A GCTX in the real layout with random values; labelled synthetic in its column metadata."""
    from moakg.ingest.l1000_io import write_gctx

    rng = np.random.default_rng(0)
    rids = [f"{200000 + i}_at" for i in range(n_genes)]
    row_meta = pd.DataFrame(
        {
            "pr_gene_symbol": [f"SYN{i}" for i in range(n_genes)],
            "pr_is_lm": ["1" if i < n_landmark else "0" for i in range(n_genes)],
        },
        index=pd.Index(rids, name="id"),
    )
    cids = [f"SYN001_A375_24H:BRD-K{i:08d}:10" for i in range(n_sig)]
    col_meta = pd.DataFrame(
        {"pert_type": "trt_cp", "provenance": "synthetic (moakg benchmark)"}, index=pd.Index(cids, name="id")
    )
    matrix = rng.standard_normal((n_sig, n_genes), dtype=np.float32)
    write_gctx(path, matrix, row_meta, col_meta)


READERS = {
    "imports only": "pass",
    "moakg read_gctx (row blocks)": (
        "from moakg.ingest.l1000_io import read_gctx\n"
        "m, rows, cols = read_gctx(path, rids=lm, chunk_rows=chunk)\n"
        "checksum = float(m.sum())\n"
    ),
    "pandas from h5py, one go": (
        "with h5py.File(path, 'r') as f:\n"
        "    df = pd.DataFrame(f['/0/DATA/0/matrix'][:], columns=rids)\n"
        "m = df.loc[:, lm].to_numpy()\n"
        "checksum = float(m.sum())\n"
    ),
}

CHILD = PEAK_RSS_SNIPPET + """
import json, sys, time
import h5py, numpy as np, pandas as pd
path, chunk = sys.argv[1], int(sys.argv[2])
with h5py.File(path, 'r') as f:
    rids = [r.decode() for r in f['/0/META/ROW/id'][:]]
    lm = [r for r, flag in zip(rids, f['/0/META/ROW/pr_is_lm'][:]) if flag in (b'1', 1)]
t0 = time.perf_counter()
checksum = None
{body}
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "maxrss_mb": peak_rss_mb(), "checksum": checksum}}))
"""


def bench_gctx(n_sig: int, chunk_rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="moakg-gctx-") as tmp:
        path = Path(tmp) / f"synthetic_n{n_sig}x12328.gctx"
        t0 = time.perf_counter()
        write_synthetic_gctx(path, n_sig)
        size_mb = path.stat().st_size / 2**20
        took = time.perf_counter() - t0
        print(f"\nsynthetic GCTX {n_sig:,} x 12,328 ({size_mb:,.0f} MiB) written in {took:.1f} s; "
              "reading the 978 landmark genes of every signature")
        print(f"{'reader':<32}{'seconds':>9}{'peak RSS MiB':>14}{'ratio':>8}")
        results = {}
        for name, body in READERS.items():
            out = subprocess.run(
                [sys.executable, "-c", CHILD.format(body=body), str(path), str(chunk_rows)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        ours = results["moakg read_gctx (row blocks)"]
        theirs = results["pandas from h5py, one go"]
        assert abs(ours["checksum"] - theirs["checksum"]) < 1e-3 * max(1.0, abs(theirs["checksum"]))
        base = ours["maxrss_mb"]
        for name, r in results.items():
            print(f"{name:<32}{r['seconds']:>9.2f}{r['maxrss_mb']:>14,.0f}{r['maxrss_mb'] / base:>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", action="store_true", help="ingest the bundled demo data instead of shared/data")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-gctx", action="store_true")
    ap.add_argument("--signatures", type=int, default=20_000)
    ap.add_argument("--chunk-rows", type=int, default=2_000)
    args = ap.parse_args()
    if not args.skip_ingest:
        if args.demo:
            bench_sources(ROOT / "demo" / "sources.toml")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = Path(tmp) / "sources.toml"
                cfg.write_text(FULL_SOURCES)
                bench_sources(cfg)
    if not args.skip_gctx:
        bench_gctx(args.signatures, args.chunk_rows)


if __name__ == "__main__":
    main()
