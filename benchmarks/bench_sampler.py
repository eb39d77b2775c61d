"""Time and peak memory per mini-batch of the neighbour sampler (:mod:`moakg.gnn.sampling`) against the
induced-subgraph sampler it replaced (a minimal copy below, ``baseline_sample_subgraph``), measured in
the same run.

The graph is **synthetic** (labelled so in the output), of the L1000 export's shape: Compound ->
Signature (HAS_SIGNATURE, about 5 signatures per compound), Signature -> Gene (UPREGULATES, 50 genes per
signature, a fifth of them drawn from 10 hub genes, with a per-edge ``edge_attr``), both with their
reverse edge types, plus a small HAS_MOA label edge type; features are 64 wide (the real 978 / 3,026
would only scale both samplers' node slicing). ``--edges`` counts message edges, both directions.

Two batch kinds of ``--batch`` seeds with ``--fanout`` neighbours per hop (the trainers' defaults):

- ``compound``: random compounds (the MoA trainer's batches);
- ``gene+hubs``: the 10 hub genes plus random genes (the target trainer embeds every gene in batches).

Each (size, sampler, batch kind) runs in a fresh child process: it builds the graph, then (new sampler)
its CSC indexes once (timed apart: once per graph, cached), resets the peak RSS (``VmHWM``, see
benchmarks/common.py), samples one warm-up batch and ``--batches`` timed ones, and reports ms per batch,
the peak RSS above the resident set before sampling, and the mean nodes / edges per sampled subgraph.

    ~/.venvs/moakg/bin/python benchmarks/bench_sampler.py                       # --edges 1e6 1e7
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from moakg.gnn.models import message_edge_types
from moakg.gnn.sampling import NeighborSampler

SIG = ("Compound", "HAS_SIGNATURE", "Signature")
UP = ("Signature", "UPREGULATES", "Gene")
MOA = ("Compound", "HAS_MOA", "MoA")
N_GENE, N_HUB, GENES_PER_SIG, SIGS_PER_COMP, HUB_SHARE, FEAT = 12_000, 10, 50, 5, 0.2, 64


def synthetic_graph(n_edges: int, seed: int = 0) -> HeteroData:
    """About ``n_edges`` message edges (both directions) of the shape in the module docstring."""
    g = torch.Generator().manual_seed(seed)
    n_sig = max(1, n_edges // (2 * (GENES_PER_SIG + 1)))
    n_comp = max(1, n_sig // SIGS_PER_COMP)
    d = HeteroData()
    for t, n in {"Compound": n_comp, "Signature": n_sig, "Gene": N_GENE, "MoA": 50}.items():
        d[t].num_nodes = n
    d["Compound"].x = torch.randn(n_comp, FEAT, generator=g)
    d["Signature"].x = torch.randn(n_sig, FEAT, generator=g)
    sig = torch.arange(n_sig).repeat_interleave(GENES_PER_SIG)
    hub = torch.rand(sig.numel(), generator=g) < HUB_SHARE
    gene = torch.where(hub, torch.randint(0, N_HUB, (sig.numel(),), generator=g),
                       torch.randint(N_HUB, N_GENE, (sig.numel(),), generator=g))
    key = torch.unique(sig * N_GENE + gene)
    edges = {SIG: torch.stack([torch.randint(0, n_comp, (n_sig,), generator=g), torch.arange(n_sig)]),
             UP: torch.stack([key // N_GENE, key % N_GENE]),
             MOA: torch.stack([torch.arange(n_comp), torch.randint(0, 50, (n_comp,), generator=g)])}
    for (s, r, t), ei in edges.items():
        d[s, r, t].edge_index = ei
        d[t, f"rev_{r}", s].edge_index = ei.flip(0)
    d[UP].edge_attr = torch.randn(d[UP].edge_index.size(1), generator=g)
    return d


# ---- baseline: the induced-subgraph sampler this module replaced (gnn/sampling.py before issue 12) ----

def _group_rank(key: Tensor, generator: torch.Generator) -> Tensor:
    """Random rank of each element within its group of equal ``key`` (0 = first), ``[E] -> [E]``."""
    perm = torch.randperm(key.numel(), generator=generator)
    order = perm[torch.argsort(key[perm], stable=True)]
    sorted_key = key[order]
    first = torch.searchsorted(sorted_key, sorted_key, right=False)
    rank = torch.empty_like(key)
    rank[order] = torch.arange(key.numel()) - first
    return rank


def baseline_sample_subgraph(graph: HeteroData, seeds: dict[str, Tensor], num_neighbors: tuple[int, ...],
                             generator: torch.Generator) -> tuple[HeteroData, dict[str, Tensor]]:
    """BASELINE (old): capped fan-out, then the induced subgraph of every reached node; O(E) per hop."""
    edge_types = message_edge_types(graph)
    reached = {t: torch.zeros(int(graph[t].num_nodes), dtype=torch.bool) for t in graph.node_types}
    frontier = {t: torch.zeros_like(m) for t, m in reached.items()}
    for t, idx in seeds.items():
        reached[t][idx] = True
        frontier[t][idx] = True
    for k in num_neighbors:
        new = {t: torch.zeros_like(m) for t, m in reached.items()}
        for et in edge_types:
            src_t, _, dst_t = et
            ei = graph[et].edge_index
            if ei.numel() == 0 or not frontier[dst_t].any():
                continue
            cand = frontier[dst_t][ei[1]].nonzero().squeeze(1)
            if cand.numel() == 0:
                continue
            if cand.numel() > k:
                cand = cand[_group_rank(ei[1, cand], generator) < k]
            new[src_t][ei[0, cand]] = True
        frontier = {t: new[t] & ~reached[t] for t in reached}
        for t in reached:
            reached[t] |= new[t]
    node_idx = {t: m.nonzero().squeeze(1) for t, m in reached.items()}
    sub = graph.subgraph(node_idx)
    for t, idx in node_idx.items():
        sub[t].n_id = idx
    return sub, {t: torch.searchsorted(node_idx[t], idx) for t, idx in seeds.items()}


# ---- one measurement (child process) ----

def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":")) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(n_edges: int, sampler: str, kind: str, batch: int, fanout: tuple[int, ...], n_batches: int,
            ) -> dict[str, float]:
    graph = synthetic_graph(n_edges)
    actual = sum(graph[et].edge_index.size(1) for et in message_edge_types(graph))
    graph_mb = _status_mb("VmRSS")
    index_s = index_mb = 0.0
    if sampler == "new":
        _reset_peak()
        t0 = time.perf_counter()
        ns = NeighborSampler(graph)
        index_s = time.perf_counter() - t0
        index_mb = _status_mb("VmRSS") - graph_mb

        def sample(seeds: dict[str, Tensor], gen: torch.Generator) -> HeteroData:
            return ns.sample(seeds, fanout, gen)[0]
    else:
        def sample(seeds: dict[str, Tensor], gen: torch.Generator) -> HeteroData:
            return baseline_sample_subgraph(graph, seeds, fanout, gen)[0]
    g = torch.Generator().manual_seed(1)
    if kind == "compound":
        draws = [{"Compound": torch.randperm(int(graph["Compound"].num_nodes), generator=g)[:batch]}
                 for _ in range(n_batches + 1)]
    else:
        draws = [{"Gene": torch.cat([torch.arange(N_HUB),
                                     N_HUB + torch.randperm(N_GENE - N_HUB, generator=g)[: batch - N_HUB]])}
                 for _ in range(n_batches + 1)]
    sample(draws[0], g)  # warm-up (allocator, first-call overheads)
    before = _status_mb("VmRSS")
    _reset_peak()
    nodes = edges = 0
    t0 = time.perf_counter()
    for seeds in draws[1:]:
        sub = sample(seeds, g)
        nodes += sum(int(sub[t].num_nodes) for t in sub.node_types)
        edges += sum(sub[et].edge_index.size(1) for et in sub.edge_types)
        del sub
    ms = (time.perf_counter() - t0) / n_batches * 1000
    return {"edges": actual, "ms_batch": ms, "peak_mb": _status_mb("VmHWM") - before, "graph_mb": graph_mb,
            "index_s": index_s, "index_mb": index_mb, "sub_nodes": nodes / n_batches,
            "sub_edges": edges / n_batches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--fanout", type=int, nargs="+", default=[15, 10])
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each child (1: steadier on a "
                    "shared machine; the old sampler's O(E) scans gain more from threads than the new one)")
    ap.add_argument("--child", nargs=3, metavar=("EDGES", "SAMPLER", "KIND"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        torch.set_num_threads(a.threads)
        r = measure(int(float(a.child[0])), a.child[1], a.child[2], a.batch, tuple(a.fanout), a.batches)
        print(json.dumps(r))
        return
    # glibc would keep freed tensors' pages (its mmap threshold grows with each large free), so a later
    # batch would reuse them unseen by VmHWM: a fixed threshold returns every large block on free
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    print(f"SYNTHETIC graph (benchmarks/bench_sampler.py); batch {a.batch}, fanout {a.fanout}, "
          f"{a.batches} timed batches after one warm-up, {a.threads} torch thread(s); "
          "peak = VmHWM above the RSS before sampling")
    head = (f"{'message edges':>13} {'batch kind':>10} {'sampler':>16} {'ms/batch':>9} {'peak MB':>8} "
            f"{'sub nodes':>9} {'sub edges':>10} {'index s':>8} {'index MB':>8}")
    print(head)
    print("-" * len(head))
    for n in a.edges:
        for kind in ("compound", "gene+hubs"):
            for sampler, label in (("old", "baseline induced"), ("new", "CSC sampled")):
                cmd = [sys.executable, __file__, "--child", str(int(n)), sampler, kind,
                       "--batch", str(a.batch), "--batches", str(a.batches), "--threads", str(a.threads),
                       "--fanout", *map(str, a.fanout)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
                r = json.loads(out.strip().splitlines()[-1])
                index = (f"{r['index_s']:>8.2f} {r['index_mb']:>8.0f}" if sampler == "new"
                         else f"{'':>8} {'':>8}")
                print(f"{r['edges']:>13,} {kind:>10} {label:>16} {r['ms_batch']:>9.1f} {r['peak_mb']:>8.1f} "
                      f"{r['sub_nodes']:>9.0f} {r['sub_edges']:>10.0f} {index}", flush=True)


if __name__ == "__main__":
    main()
