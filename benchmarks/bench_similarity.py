"""Time and peak memory of the two similarity computations of `moakg derive similarity`, by blocks,
next to a naive all-pairs numpy baseline measured in the same run.

Inputs are **synthetic** (labelled so in the output): Morgan-like bit vectors (2,048 bits, about 50 on,
bit frequencies falling off like real ECFP4 bits) and 978-gene z-vectors (standard normals), at 936
compounds (the real consensus set's size) and 20,000. Each method runs in a fresh child process (peak
RSS from ``VmHWM``, reset at the child's start; see benchmarks/common.py), reading the same inputs from
a ``.npy`` file, and keeps the top-k per compound:

- ``moakg blocked``: :mod:`moakg.derive.similarity` (rows in blocks of ``--block``, torch.topk per block);
- ``RDKit BulkTanimotoSimilarity``: one RDKit call per compound (Tanimoto only; ``--rdkit-max`` rows);
- ``naive numpy``: the whole n x n score matrix, then ``argpartition`` per row.

    ~/.venvs/moakg/bin/python benchmarks/bench_similarity.py            # --sizes 936 20000 --block 2048
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from moakg.benchmarks.common import PEAK_RSS_SNIPPET

BITS, ON_BITS, GENES, K = 2048, 50, 978, 10

CHILD = PEAK_RSS_SNIPPET + """
import json, sys, time
import numpy as np
kind, method, path, k, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
x = np.load(path)
n = x.shape[0]
if method in ('torch', 'blocked'):  # imports before the clock; their memory shows in the 'torch' row
    import torch
    torch.set_num_threads(int(sys.argv[6]))
    from moakg.derive.similarity import blocked_topk, spearman_scorer, tanimoto_scorer
elif method == 'rdkit':
    from rdkit import DataStructs
else:
    from scipy.stats import rankdata
t0 = time.perf_counter()
if method in ('load', 'torch'):
    kept = 0
elif method == 'blocked':
    if kind == 'tanimoto':
        r, c, s = blocked_topk(tanimoto_scorer(x), n, n, k, 0.0, block, exclude_self=True)
    else:
        r, c, s = blocked_topk(spearman_scorer(x), n, n, k, 0.0, block, signed=True, exclude_self=True)
    kept = float(np.sort(np.abs(s)).sum())
elif method == 'rdkit':
    fps = []
    for row in x:
        bv = DataStructs.ExplicitBitVect(x.shape[1])
        bv.SetBitsFromList(np.flatnonzero(row).tolist())
        fps.append(bv)
    kept = 0.0
    for i, fp in enumerate(fps):
        sims = np.array(DataStructs.BulkTanimotoSimilarity(fp, fps))
        sims[i] = -1
        kept += float(np.sort(np.partition(sims, -k)[-k:]).sum())
else:  # naive all-pairs numpy
    if kind == 'tanimoto':
        f = x.astype(np.float32)
        inter = f @ f.T
        cnt = f.sum(1)
        full = inter / (cnt[:, None] + cnt[None, :] - inter)
    else:  # Pearson of ranks, in float32 like moakg: numpy 2.4's bundled OpenBLAS segfaults on a
        # 20,000 x 978 float64 product x @ x.T (np.corrcoef) on the 2-core development machine
        r = rankdata(x, axis=1).astype(np.float32)
        r -= r.mean(axis=1, keepdims=True)
        r /= np.linalg.norm(r, axis=1, keepdims=True)
        full = r @ r.T
    np.fill_diagonal(full, 0.0 if kind == 'spearman' else -1.0)
    key = np.abs(full) if kind == 'spearman' else full
    top = np.argpartition(-key, k, axis=1)[:, :k]
    kept = float(np.sort(np.abs(np.take_along_axis(full, top, 1)).ravel()).sum())
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_mb": peak_rss_mb(), "kept": kept}))
"""


def synthetic_bits(n: int, rng: np.random.Generator) -> np.ndarray:
    """0/1 uint8 [n, BITS]: bit j on with probability ~ (j+1)^-0.7, scaled to ~ON_BITS bits a row."""
    p = (np.arange(1, BITS + 1) ** -0.7)[rng.permutation(BITS)]
    p = np.minimum(p * ON_BITS / p.sum(), 0.9)
    out = np.zeros((n, BITS), dtype=np.uint8)
    for i in range(0, n, 2048):
        out[i : i + 2048] = rng.random((min(2048, n - i), BITS)) < p
    return out


def run_child(kind: str, method: str, path: Path, block: int, threads: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, kind, method, str(path), str(K), str(block), str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[936, 20000])
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the blocked computation")
    ap.add_argument("--rdkit-max", type=int, default=20000, help="largest n for the RDKit row")
    ap.add_argument("--naive-max", type=int, default=20000, help="largest n for the naive numpy row")
    ap.add_argument("--kinds", nargs="+", default=["tanimoto", "spearman"], choices=["tanimoto", "spearman"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("SYNTHETIC inputs: Morgan-like 2,048-bit fingerprints (~50 bits on) and 978-gene N(0,1) "
          f"z-vectors; top-{K} per compound; block = {args.block} rows")
    header = f"{'computation':<11}{'n':>7}  {'method':<32}{'seconds':>9}{'peak RSS MiB':>14}" \
             f"{'time ratio':>12}{'memory ratio':>14}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="moakg-sim-") as tmp:
        for n in args.sizes:
            inputs = {"tanimoto": synthetic_bits(n, rng),
                      "spearman": rng.standard_normal((n, GENES)).astype(np.float32)}
            for kind in args.kinds:
                x = inputs[kind]
                path = Path(tmp) / f"{kind}-{n}.npy"
                np.save(path, x)
                methods = {"load": "inputs loaded, no computation",
                           "torch": "  + torch imported, no computation",
                           "blocked": "moakg blocked (torch, top-k)"}
                if kind == "tanimoto" and n <= args.rdkit_max:
                    methods["rdkit"] = "RDKit BulkTanimotoSimilarity"
                if n <= args.naive_max:
                    methods["naive"] = "naive all-pairs numpy"
                res = {m: run_child(kind, m, path, args.block, args.threads) for m in methods}
                base = res.get("naive")
                if base and abs(res["blocked"]["kept"] - base["kept"]) > 1e-3 * max(base["kept"], 1):
                    print(f"  !! {kind} n={n}: blocked and naive top-k differ "
                          f"({res['blocked']['kept']:.4f} vs {base['kept']:.4f})")
                for m, label in methods.items():
                    r = res[m]
                    timed = base and m not in ("load", "torch")
                    tr = f"{r['seconds'] / base['seconds']:.2f}" if timed else "-"
                    mr = f"{r['peak_mb'] / base['peak_mb']:.2f}" if base else "-"
                    print(f"{kind:<11}{n:>7,}  {label:<32}{r['seconds']:>9.2f}{r['peak_mb']:>14,.0f}"
                          f"{tr:>12}{mr:>14}", flush=True)


if __name__ == "__main__":
    main()
