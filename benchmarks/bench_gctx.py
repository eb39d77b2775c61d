"""Reading a real-scale level-5 GCTX: wall time and peak memory per read mode.

The file is the SYNTHETIC level-5 GCTX of :mod:`moakg.benchmarks.synthetic_scale` (default 100,000
signatures x 12,328 genes, 978 landmarks: 4.9 GB of float32, the real layout and chunking). Each read
runs in a fresh child process that resets and reads its own peak resident memory (``VmHWM``, see
``PEAK_RSS_SNIPPET`` in benchmarks/common.py), so no mode inherits another's memory:

* ``open (metadata only)``: ``GctxFile(path)``, which decodes every row and column metadata field;
* ``moakg ingest path``: what ``L1000Adapter`` does for level 5: ``GctxFile`` then ``iter_blocks`` over
  every signature in blocks of ``--chunk-rows``, with the landmark rows (or, as with
  ``all_genes = true``, every row) ordered by gene symbol; each block is consumed (summed) and dropped;
* ``moakg read_gctx``: the whole selection into one array (landmarks: 0.4 GB; all genes: 4.9 GB);
* ``h5py dataset[()]``: the whole matrix in one HDF5 read, the floor for any reader;
* ``cmapPy parse``: cmapPy 4.0.1's reader on the same file, when cmapPy is installed (it is not a
  moakg dependency); an exception is printed in the table instead of numbers.

The page cache is warmed with one sequential read of the file first, so every mode reads from memory
(on a cold disk every mode pays the disk's sequential read once more). ``MB/s`` is the matrix bytes in
the file over the seconds: the file is chunked by whole signatures, so every mode reads every gene of
every signature, landmark modes included. MB = 10^6 bytes.

    python -m moakg.benchmarks.bench_gctx                       # 100,000 x 12,328, then delete it
    python -m moakg.benchmarks.bench_gctx --keep --dir /tmp/moakg-scale/n100000x12328
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
from typing import Any

from moakg.benchmarks.common import PEAK_RSS_SNIPPET, child_failure
from moakg.benchmarks.synthetic_scale import ScaleSpec, SyntheticScale, generate

#: mode name -> (genes read: "landmarks", "all" or "", whether the timed body consumes the data itself,
#: the timed body). Bodies see ``path``, ``chunk``, ``lm_ids`` / ``lm_pos`` (landmarks ordered by
#: symbol, as the adapter orders them) and ``all_pos`` (every row, by symbol); they set ``result``
#: (an array or DataFrame, summed after the clock stops) or ``checksum``.
MODES: dict[str, tuple[str, str]] = {
    "imports only": ("", "pass"),
    "open (metadata only)": ("", "g = GctxFile(path)"),
    "moakg ingest path (landmarks)": ("landmarks", (
        "g = GctxFile(path)\n"
        "for pos, z in g.iter_blocks(np.arange(g.shape[0]), lm_pos, chunk):\n"
        "    checksum += float(z.sum(dtype=np.float64))")),
    "moakg ingest path (all genes)": ("all", (
        "g = GctxFile(path)\n"
        "for pos, z in g.iter_blocks(np.arange(g.shape[0]), all_pos, chunk):\n"
        "    checksum += float(z.sum(dtype=np.float64))")),
    "moakg read_gctx (landmarks)": ("landmarks",
                                   "result, _, _ = read_gctx(path, rids=lm_ids, chunk_rows=chunk)"),
    "moakg read_gctx (all genes)": ("all", "result, _, _ = read_gctx(path, chunk_rows=chunk)"),
    "h5py dataset[()] (all genes)": ("all", (
        "with h5py.File(path, 'r') as f:\n"
        "    result = f['0/DATA/0/matrix'][()]")),
    "cmapPy parse (landmarks)": ("landmarks", (
        "from cmapPy.pandasGEXpress.parse import parse\n"
        "result = parse(path, rid=lm_ids).data_df")),
    "cmapPy parse (all genes)": ("all", (
        "from cmapPy.pandasGEXpress.parse import parse\n"
        "result = parse(path).data_df")),
}

CHILD = PEAK_RSS_SNIPPET + """
import json, sys, time, traceback
import h5py, numpy as np, pandas as pd
from moakg.ingest.l1000_io import GctxFile, decode_strings, read_gctx
path, chunk = sys.argv[1], int(sys.argv[2])
with h5py.File(path, 'r') as f:  # untimed: which rows are landmarks, ordered by symbol like the adapter
    ids = decode_strings(f['0/META/ROW/id'][()])
    sym = decode_strings(f['0/META/ROW/pr_gene_symbol'][()])
    is_lm = f['0/META/ROW/is_lm'][()]
order = sorted(range(len(ids)), key=lambda i: sym[i])
all_pos = np.array(order)
lm_pos = np.array([i for i in order if int(is_lm[i]) == 1])
lm_ids = [ids[i] for i in lm_pos]
del ids, sym, order
base_mb = peak_rss_mb()
checksum, result, error = 0.0, None, None
t0 = time.perf_counter()
try:
{body}
except Exception as exc:  # cmapPy's failure is a result to report, not a crash of the benchmark
    error = f"{{type(exc).__name__}}: {{exc}}"
    traceback.print_exc()
seconds = time.perf_counter() - t0
peak = peak_rss_mb()
if result is not None:
    checksum = float(np.asarray(result, dtype=np.float32).sum(dtype=np.float64))
print(json.dumps({{"seconds": seconds, "peak_mib": peak, "base_mib": base_mb, "checksum": checksum,
                  "error": error}}))
"""


def run_mode(path: Path, body: str, chunk_rows: int) -> dict[str, Any]:
    """One read in a fresh process; its time, peak RSS and checksum (or the error it raised)."""
    code = CHILD.format(body="\n".join("    " + ln for ln in body.splitlines()))
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(chunk_rows)],
                          capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"child failed: {child_failure(proc)}"}
    return json.loads(lines[-1])


def warm_page_cache(path: Path) -> float:
    """Read the file once, sequentially, so that every mode starts from the same (warm) cache."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(64 << 20):
            pass
    return time.perf_counter() - t0


def prepare(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The GCTX to read: the existing one under ``--dir`` with ``--keep`` (if its shape matches), else new."""
    folder = args.dir or Path(f"/tmp/moakg-scale/n{args.signatures}x{args.genes}")
    spec = ScaleSpec(out=folder, signatures=args.signatures, genes=args.genes, landmarks=args.landmarks,
                     compounds=args.compounds or max(1, args.signatures // 20), string_links=0,
                     seed=args.seed)
    path = folder / SyntheticScale(spec).gctx_name
    manifest_path = folder / "manifest.json"
    if args.keep and path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        same = all(manifest["spec"].get(k) == getattr(spec, k) for k in ("signatures", "genes", "landmarks"))
        if same:
            print(f"reusing {path} (--keep)")
            return path, manifest
        print(f"{folder} holds another shape: writing a new file")
    t0 = time.perf_counter()
    manifest = json.loads(generate(spec).to_json())
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
    return path, manifest


def remove_data_set(folder: Path, manifest: dict[str, Any]) -> None:
    """Delete the files the generator wrote (only those: --dir may hold other things), then the folder
    if that left it empty."""
    for name in [*manifest["files"], "manifest.json"]:
        (folder / name).unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()
    print(f"deleted the synthetic data set in {folder}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m moakg.benchmarks.bench_gctx", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signatures", type=int, default=100_000, help="GCTX columns (default 100000)")
    ap.add_argument("--genes", type=int, default=12_328, help="GCTX rows (default 12328)")
    ap.add_argument("--landmarks", type=int, default=978, help="of which landmarks (default 978)")
    ap.add_argument("--compounds", type=int, default=0, help="compounds (default signatures / 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic file (default 0)")
    ap.add_argument("--dir", type=Path, default=None,
                    help="folder of the synthetic data set (default /tmp/moakg-scale/n<signatures>x<genes>)")
    ap.add_argument("--keep", action="store_true",
                    help="reuse the file in --dir when it has this shape, and keep it afterwards "
                         "(without --keep the folder is written afresh and deleted at the end)")
    ap.add_argument("--chunk-rows", type=int, default=2_000,
                    help="signatures per block for moakg's reader (the L1000 adapter's default: 2000)")
    ap.add_argument("--modes", default="all",
                    help=f"comma-separated subset of: {', '.join(MODES)} (default all)")
    args = ap.parse_args(argv)
    modes = list(MODES) if args.modes == "all" else [m.strip() for m in args.modes.split(",")]
    if unknown := [m for m in modes if m not in MODES]:
        ap.error(f"unknown modes {unknown}")

    path, manifest = prepare(args)
    try:
        size = path.stat().st_size
        n_sig, n_genes = args.signatures, args.genes
        matrix_mb = n_sig * n_genes * 4 / 1e6
        warm = warm_page_cache(path)
        print(f"\nSYNTHETIC GCTX {path} ({size / 1e9:.2f} GB; matrix {n_sig:,} x {n_genes:,} float32 = "
              f"{matrix_mb / 1e3:.2f} GB); page cache warmed ({warm:.1f} s, {size / 1e6 / warm:,.0f} MB/s); "
              f"{os.cpu_count()} CPUs; chunk_rows {args.chunk_rows}")
        head = f"{'read mode':<32}{'signatures':>11}{'genes':>8}{'seconds':>9}{'peak MB':>10}{'MB/s':>9}"
        print(head)
        print("-" * len(head))
        results: dict[str, dict[str, Any]] = {}
        for name in modes:
            genes_kind, body = MODES[name]
            r = results[name] = run_mode(path, body, args.chunk_rows)
            genes = {"landmarks": args.landmarks, "all": n_genes}.get(genes_kind)
            sig = f"{n_sig:,}" if genes_kind else "-"
            g = f"{genes:,}" if genes else "-"
            if r.get("error"):
                tool = "cmapPy" if name.startswith("cmapPy") else name
                print(f"{name:<32}{sig:>11}{g:>8}   {tool}: {r['error']}")
                continue
            rate = f"{matrix_mb / r['seconds']:,.0f}" if genes_kind else "-"
            print(f"{name:<32}{sig:>11}{g:>8}{r['seconds']:>9.2f}{r['peak_mib'] * 1.048576:>10,.0f}{rate:>9}")
        check(results)
    finally:
        if not args.keep:
            remove_data_set(path.parent, manifest)
        else:
            print(f"kept {path}")


def check(results: dict[str, dict[str, Any]]) -> None:
    """Modes that read the same selection must agree on its sum (float64 sums in another order)."""
    for kind in ("landmarks", "all"):
        sums = {n: r["checksum"] for n, r in results.items()
                if MODES[n][0] == kind and not r.get("error")}
        if len(sums) < 2:
            continue
        ref = next(iter(sums.values()))
        bad = {n: s for n, s in sums.items() if not math.isclose(s, ref, rel_tol=1e-6, abs_tol=1e-2)}
        if bad:
            raise SystemExit(f"checksums disagree for {kind}: {sums}")
        print(f"checksums agree ({kind}): {ref:,.3f} over {len(sums)} modes")


if __name__ == "__main__":
    main()
