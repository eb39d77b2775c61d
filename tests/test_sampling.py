"""The mini-batch neighbour sampler (gnn/sampling.py) on small hand-built HeteroData graphs (no Neo4j):
NeighborLoader semantics (at most k sampled in-edges per frontier node, edge type and hop; the sampled
edges only), real edges with their attributes, reproducibility, and a hub's degree never reaching a
batch."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from moakg.gnn.models import message_edge_types
from moakg.gnn.sampling import (
    InEdgeIndex,
    NeighborSampler,
    in_edge_index,
    sample_in_edges,
    sample_subgraph,
)
from moakg.gnn.tasks import drop_edges

SIG = ("Compound", "HAS_SIGNATURE", "Signature")
UP = ("Signature", "UPREGULATES", "Gene")
PPI = ("Gene", "INTERACTS_WITH", "Gene")
MOA = ("Compound", "HAS_MOA", "MoA")


def toy(n_comp: int = 40, n_sig: int = 120, n_gene: int = 50, seed: int = 0) -> HeteroData:
    """Compounds, signatures, genes and MoAs with the exporter's edge types both ways, uneven in-degrees
    (gene 0 a hub, some genes in-degree 0), and per-edge ``eid`` (the edge's own id), ``edge_attr`` and
    ``source_code`` to check the slicing."""
    g = torch.Generator().manual_seed(seed)
    d = HeteroData()
    for t, n in {"Compound": n_comp, "Signature": n_sig, "Gene": n_gene, "MoA": 3}.items():
        d[t].num_nodes = n
    d["Compound"].x = torch.randn(n_comp, 4, generator=g)
    d["Signature"].x = torch.randn(n_sig, 5, generator=g)
    d["Gene"].symbol = [f"G{i}" for i in range(n_gene)]  # a list attribute is per-node too
    sig = torch.arange(n_sig)
    # skewed gene choice: gene 0 gets ~1/3 of the edges, genes >= 40 none
    genes = torch.where(torch.rand(600, generator=g) < 0.33, 0, torch.randint(1, 40, (600,), generator=g))
    up = torch.stack([torch.randint(0, n_sig, (600,), generator=g), genes]).unique(dim=1)
    edges = {
        SIG: torch.stack([sig % n_comp, sig]),
        UP: up,
        PPI: torch.randint(0, n_gene, (2, 150), generator=g).unique(dim=1),
        MOA: torch.stack([torch.arange(n_comp), torch.arange(n_comp) % 3]),
    }
    for (s, r, t), ei in edges.items():
        for et, e in (((s, r, t), ei), ((t, f"rev_{r}", s), ei.flip(0))):
            n = e.size(1)
            d[et].edge_index = e
            d[et].eid = torch.arange(n)
            d[et].edge_attr = torch.randn(n, 2, generator=g)
            d[et].source_code = torch.randint(0, 5, (n,), generator=g)
    return d


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def global_edges(sub: HeteroData, et: tuple[str, str, str]) -> Tensor:
    """The sampled edges of ``et`` [2, E] in global ids."""
    ei = sub[et].edge_index
    return torch.stack([sub[et[0]].n_id[ei[0]], sub[et[2]].n_id[ei[1]]])


def in_degree(d: HeteroData, et: tuple[str, str, str]) -> Tensor:
    return torch.bincount(d[et].edge_index[1], minlength=int(d[et[2]].num_nodes))


@pytest.mark.parametrize("fanout", [(3, 2), (1, 4), (6,)])
def test_each_frontier_node_keeps_min_degree_k_in_edges_per_type_and_hop(fanout: tuple[int, ...]) -> None:
    d = toy()
    seeds = torch.tensor([0, 3, 5, 11, 17])
    sub, _ = sample_subgraph(d, {"Compound": seeds}, fanout, gen())
    ets = message_edge_types(d)
    # hop 1 samples into the seeds only, so the edges into seeds are hop 1's and their new sources
    # are the nodes first reached at hop 1
    hop1 = {t: torch.empty(0, dtype=torch.long) for t in d.node_types}
    for et in ets:
        e = global_edges(sub, et)
        if et[2] == "Compound":
            src = e[0, torch.isin(e[1], seeds)]
            hop1[et[0]] = torch.cat([hop1[et[0]], src])
    hop1 = {t: v.unique() for t, v in hop1.items()}
    hop1["Compound"] = hop1["Compound"][~torch.isin(hop1["Compound"], seeds)]
    for et in ets:
        e = global_edges(sub, et)
        deg = in_degree(d, et)
        into_seed = torch.isin(e[1], seeds) & (et[2] == "Compound")
        # every edge points into a seed (hop 1) or, with a second hop, into a node first reached at hop 1
        later = e[1, ~into_seed]
        if len(fanout) == 1:
            assert later.numel() == 0, et
        else:
            assert torch.isin(later, hop1[et[2]]).all(), et
        count = Counter(e[1].tolist())
        if et[2] == "Compound":
            for s in seeds.tolist():
                assert count.pop(s, 0) == min(int(deg[s]), fanout[0]), (et, s)
        if len(fanout) > 1:
            for v in hop1[et[2]].tolist():
                assert count.pop(v, 0) == min(int(deg[v]), fanout[1]), (et, v)
        assert not count, et  # nothing else has an incoming edge


def test_a_hub_gives_a_batch_at_most_k_of_its_edges() -> None:
    # 10,000 signatures all up-regulate gene 0; seeding every signature and the gene reaches every source
    # of the hub's edges: the induced subgraph of those nodes would hold all 10,000 edges
    n = 10_000
    d = HeteroData()
    d["Signature"].num_nodes, d["Gene"].num_nodes = n, 1
    d["Signature"].x = torch.randn(n, 3)
    d[UP].edge_index = torch.stack([torch.arange(n), torch.zeros(n, dtype=torch.long)])
    d[UP].edge_attr = torch.arange(n, dtype=torch.float).view(-1, 1)
    d["Gene", "rev_UPREGULATES", "Signature"].edge_index = d[UP].edge_index.flip(0)
    seeds = {"Signature": torch.arange(n), "Gene": torch.tensor([0])}
    induced = d.subgraph(seeds)
    assert induced[UP].edge_index.size(1) == n  # what the old sampler returned
    for k in (1, 5, 25):
        sub, local = sample_subgraph(d, seeds, (k, k), gen())
        assert sub[UP].edge_index.size(1) == k
        assert sub[UP].edge_index[1].eq(local["Gene"][0]).all()
        picked = sub[UP].edge_attr.view(-1).long()
        assert picked.unique().numel() == k  # without replacement
        assert torch.equal(sub["Signature"].n_id[sub[UP].edge_index[0]], picked)
        # each signature seed has one in-edge (from the gene): taken at hop 1
        assert sub["Gene", "rev_UPREGULATES", "Signature"].edge_index.size(1) == n


def test_sampled_edges_are_real_edges_with_their_attributes() -> None:
    d = toy()
    sub, _ = sample_subgraph(d, {"Compound": torch.arange(0, 40, 3), "Gene": torch.tensor([0, 7])},
                             (4, 3), gen(1))
    for t in d.node_types:
        n_id = sub[t].n_id
        assert sub[t].num_nodes == n_id.numel()
        assert n_id.unique().numel() == n_id.numel()  # distinct
        if "x" in d[t]:
            assert torch.equal(sub[t].x, d[t].x[n_id])
    assert sub["Gene"].symbol == [f"G{i}" for i in sub["Gene"].n_id.tolist()]
    total = 0
    for et in message_edge_types(d):
        eid = sub[et].eid
        assert torch.equal(eid, eid.unique())  # each edge at most once, in the graph's order
        assert torch.equal(global_edges(sub, et), d[et].edge_index[:, eid])
        assert torch.equal(sub[et].edge_attr, d[et].edge_attr[eid])
        assert torch.equal(sub[et].source_code, d[et].source_code[eid])
        total += eid.numel()
    assert total > 0
    # every message edge type is there (possibly empty), label edges are not
    assert set(sub.edge_types) == set(message_edge_types(d))
    assert MOA not in sub.edge_types and ("MoA", "rev_HAS_MOA", "Compound") not in sub.edge_types


def test_same_generator_seed_same_sample() -> None:
    d = toy()
    seeds = {"Compound": torch.tensor([1, 2, 30])}
    a, la = sample_subgraph(d, seeds, (2, 2), gen(5))
    b, lb = sample_subgraph(d, seeds, (2, 2), gen(5))
    c, _ = sample_subgraph(d, seeds, (2, 2), gen(6))
    assert torch.equal(la["Compound"], lb["Compound"])
    for t in d.node_types:
        assert torch.equal(a[t].n_id, b[t].n_id)
    for et in message_edge_types(d):
        assert torch.equal(a[et].eid, b[et].eid)
    assert any(not torch.equal(a[et].eid, c[et].eid) for et in message_edge_types(d))
    # the graph's global -> local scratch maps are left all -1 between samples
    scratch = NeighborSampler(d).scratch
    assert scratch.slot and all(bool(buf.eq(-1).all()) for buf in scratch.slot.values())


def test_every_edge_is_taken_when_the_degree_is_at_most_k() -> None:
    d = toy()
    seeds = torch.tensor([0, 1, 2, 3])
    big = int(max(in_degree(d, et).max() for et in message_edge_types(d)))
    sub, _ = sample_subgraph(d, {"Compound": seeds}, (big,), gen())
    for et in message_edge_types(d):
        if et[2] == "Compound":
            want = torch.isin(d[et].edge_index[1], seeds).nonzero().view(-1)
            assert torch.equal(sub[et].eid, want), et
    # and the same for a hub gene at a fan-out of exactly its degree
    hub = int(in_degree(d, UP)[0])
    sub, _ = sample_subgraph(d, {"Gene": torch.tensor([0])}, (hub,), gen())
    assert torch.equal(sub[UP].eid, (d[UP].edge_index[1] == 0).nonzero().view(-1))


def test_seeds_local_positions_point_at_the_seeds() -> None:
    d = toy()
    seeds = {"Compound": torch.tensor([39, 4, 17]), "Gene": torch.tensor([12, 0])}  # unsorted on purpose
    sub, local = sample_subgraph(d, seeds, (3, 3), gen())
    for t, idx in seeds.items():
        assert torch.equal(sub[t].n_id[local[t]], idx)
    assert torch.equal(sub["Compound"].x[local["Compound"]], d["Compound"].x[seeds["Compound"]])
    assert sub["MoA"].num_nodes == 0  # reached only through label edges, which are never sampled


def test_sample_in_edges_is_uniform_without_replacement() -> None:
    # one call over nodes of every regime: degree <= k (all), k < degree <= 2k (random keys), > 2k
    # (rejection rounds); each node's k edges distinct and from its own segment
    k = 3
    degs = torch.tensor([2, 3, 5, 6, 7, 50, 400])
    nodes = torch.arange(degs.numel())
    dst = torch.repeat_interleave(nodes, degs)
    ei = torch.stack([torch.arange(dst.numel()), dst])[:, torch.randperm(dst.numel(), generator=gen(9))]
    index = InEdgeIndex.build(ei, degs.numel())
    g = gen(0)
    for _ in range(50):
        e = sample_in_edges(index, nodes, k, g)
        assert e.unique().numel() == e.numel()
        assert torch.equal(torch.bincount(ei[1, e], minlength=degs.numel()), degs.clamp(max=k))
    # each edge equally likely: a node listed n times draws n independent samples in one call
    trials = 4000
    e = sample_in_edges(index, nodes.repeat(trials), k, g)
    hits = torch.bincount(e, minlength=dst.numel()).float()
    p = (k / degs.float()).clamp(max=1.0)[ei[1]]  # per edge
    sd = (trials * p * (1 - p)).sqrt()
    assert ((hits - trials * p).abs() <= 5 * sd + 1e-9).all()


def test_in_edge_index_is_cached_per_edge_tensor_and_follows_replaced_edges() -> None:
    d = toy()
    num_gene = int(d["Gene"].num_nodes)
    first = in_edge_index(d[UP].edge_index, num_gene)
    assert in_edge_index(d[UP].edge_index, num_gene) is first
    assert torch.equal(first.ptr[1:] - first.ptr[:-1], in_degree(d, UP))
    # an epoch graph: a shallow copy with the hub's edges dropped gets its own index, the rest is shared
    epoch = copy.copy(d)
    drop_edges(epoch, UP, d[UP].edge_index[1] == 0)
    assert epoch[UP].edge_index is not d[UP].edge_index
    sub, _ = sample_subgraph(epoch, {"Gene": torch.tensor([0, 1, 2])}, (50,), gen())
    assert not (global_edges(sub, UP)[1] == 0).any()
    assert in_edge_index(d[UP].edge_index, num_gene) is first
