"""The neighbour target votes of the link model against a dense brute-force kNN of targets."""

from __future__ import annotations

import copy

import torch

from moakg.gnn.link_vote import LinkVotes
from moakg.gnn.models import SAGEEncoder, TargetLinkPredictor
from moakg.gnn.similarity_vote import TARGET_JACCARD, shared_target_pairs

SIM = ("Compound", "SIMILAR_STRUCTURE", "Compound")
SIM_REV = ("Compound", "rev_SIMILAR_STRUCTURE", "Compound")
TARGETS = ("Compound", "TARGETS", "Gene")
N_C, N_G, BITS = 12, 9, 16


def _graph(seed: int = 0) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(N_C, BITS, generator=g) < 0.4).float()
    sim = torch.randint(0, N_C, (2, 25), generator=g)
    sim = sim[:, sim[0] != sim[1]]
    targets = torch.unique(torch.randint(0, N_C // 2, (1, 20), generator=g).repeat(2, 1)
                           * torch.tensor([[1], [0]]) + torch.tensor([[0], [1]])
                           * torch.randint(0, N_G, (1, 20), generator=g), dim=1)
    edges = {SIM: sim, SIM_REV: sim.flip(0), TARGETS: targets}
    return x, edges


def _dense_vote(x: torch.Tensor, edges: dict, beta: float, kappa: float, prior: torch.Tensor) -> torch.Tensor:
    """The kNN of targets written out densely: v[c, g] = (kappa p_g + sum w A) / (kappa + sum w m)."""
    a = torch.zeros(N_C, N_G)
    a[edges[TARGETS][0], edges[TARGETS][1]] = 1.0
    known = (a.sum(1) > 0).float()
    w = torch.zeros(N_C, N_C)  # w[c, c'] summed over both directions' edges into c
    for et in (SIM, SIM_REV):
        for src, dst in edges[et].T.tolist():
            inter = (x[src] * x[dst]).sum()
            union = x[src].sum() + x[dst].sum() - inter
            s = float(inter / union) if union > 0 else 0.0
            w[dst, src] += torch.exp(torch.tensor(beta * (s - 1.0)))
    return (kappa * prior + w @ a) / (kappa + (w * known).sum(1, keepdim=True))


def test_votes_equal_a_dense_knn_of_targets_and_pairs_match_rows() -> None:
    x, edges = _graph()
    votes = LinkVotes({"SIMILAR_STRUCTURE": ("tanimoto", (0, BITS), [SIM, SIM_REV], 1.0)}, TARGETS, N_G)
    pos_train = edges[TARGETS]
    votes.prior.copy_(torch.bincount(pos_train[1], minlength=N_G).float().div(6).clamp(1e-4, 1 - 1e-4))
    tables = votes.tables(x, edges, N_G)
    comp = torch.arange(N_C)
    offsets = votes.offset_all(tables, comp)
    vote = votes.votes["SIMILAR_STRUCTURE"]
    beta = float(torch.nn.functional.softplus(vote.raw_beta.detach()))
    kappa = float(torch.nn.functional.softplus(vote.raw_kappa.detach()))
    expected = _dense_vote(x, edges, beta, kappa, votes.prior)
    logit = lambda p: torch.log(p.clamp(1e-4, 1 - 1e-4)) - torch.log1p(-p.clamp(1e-4, 1 - 1e-4))  # noqa: E731
    assert torch.allclose(offsets, logit(expected) - logit(votes.prior)[None, :], atol=1e-5)
    # a compound whose neighbours target gene g ranks g above genes no neighbour targets
    assert (offsets > 0).any() and (offsets < 0).any()
    # pair lookups agree with the all-genes rows
    cc, gg = torch.meshgrid(comp, torch.arange(N_G), indexing="ij")
    pairs = votes.offset(tables, cc.reshape(-1), gg.reshape(-1), gg.reshape(-1))
    assert torch.allclose(pairs.view(N_C, N_G), offsets, atol=1e-6)
    # a repeated compound gets the same row twice
    assert torch.allclose(votes.offset_all(tables, torch.tensor([3, 3, 1]))[0],
                          votes.offset_all(tables, torch.tensor([3]))[0])


def test_link_model_starts_as_the_vote_and_the_vote_follows_the_edges() -> None:
    x, edges = _graph(1)
    meta = (["Compound", "Gene"], [SIM, SIM_REV, TARGETS, ("Gene", "rev_TARGETS", "Compound")])
    edges[("Gene", "rev_TARGETS", "Compound")] = edges[TARGETS].flip(0)
    encoder = SAGEEncoder(meta, {"Compound": N_C, "Gene": N_G}, {"Compound": BITS, "Gene": 0}, hidden=8)
    votes = LinkVotes({"SIMILAR_STRUCTURE": ("tanimoto", (0, BITS), [SIM, SIM_REV], 1.0)}, TARGETS, N_G)
    model = TargetLinkPredictor(encoder, N_G, votes)
    model.set_prior(edges[TARGETS], N_C // 2)
    model.eval()
    x_dict = {"Compound": x, "Gene": torch.zeros(N_G, 0)}
    comp = torch.arange(N_C)
    probs = torch.sigmoid(model.logits_all(x_dict, edges, comp))
    vote = votes.votes["SIMILAR_STRUCTURE"]
    beta = float(torch.nn.functional.softplus(vote.raw_beta.detach()))
    kappa = float(torch.nn.functional.softplus(vote.raw_kappa.detach()))
    assert torch.allclose(probs, _dense_vote(x, edges, beta, kappa, votes.prior), atol=1e-4)
    # without the TARGETS edges nobody votes: every compound falls back to the prior
    no_targets = {et: ei for et, ei in edges.items() if "TARGETS" not in et[1]}
    no_targets[TARGETS] = torch.zeros(2, 0, dtype=torch.long)
    prior_probs = torch.sigmoid(model.logits_all(x_dict, no_targets, comp))
    assert torch.allclose(prior_probs, votes.prior.expand(N_C, N_G), atol=1e-4)
    # gradients reach the gate and the similarity sharpness
    model.train()
    loss = model.logits_all(x_dict, edges, comp).sigmoid().sum()
    loss.backward()
    assert votes.gates.grad is not None and votes.gates.grad.abs().sum() > 0
    assert vote.raw_beta.grad is not None


def test_tune_votes_takes_the_best_grid_point_relation_by_relation() -> None:
    from moakg.gnn.vote_tuning import tune_votes

    sig = ("Compound", "SIMILAR_SIGNATURE", "Compound")
    votes = LinkVotes({"SIMILAR_STRUCTURE": ("tanimoto", (0, BITS), [SIM], 1.0),
                       "SIMILAR_SIGNATURE": ("pearson", (0, BITS), [sig], 0.0)}, TARGETS, N_G)
    soft = torch.nn.functional.softplus

    def score() -> float:  # best at structure (1.0, 10, 0.5), signature gate 0.5 with beta 3, kappa 2
        s_beta, s_kappa = soft(votes.votes["SIMILAR_STRUCTURE"].raw_beta), soft(
            votes.votes["SIMILAR_STRUCTURE"].raw_kappa)
        g_beta, g_kappa = soft(votes.votes["SIMILAR_SIGNATURE"].raw_beta), soft(
            votes.votes["SIMILAR_SIGNATURE"].raw_kappa)
        return float(-(votes.gates.detach()[0] - 1) ** 2 - (s_beta - 10) ** 2 - (s_kappa - 0.5) ** 2
                     - (votes.gates.detach()[1] - 0.5) ** 2 - (g_beta - 3) ** 2 - (g_kappa - 2) ** 2)

    chosen = tune_votes(votes, score)
    assert chosen == {"SIMILAR_STRUCTURE": (1.0, 10.0, 0.5, 0), "SIMILAR_SIGNATURE": (0.5, 3.0, 2.0, 0)}
    assert torch.allclose(votes.gates.detach(), torch.tensor([1.0, 0.5]))
    assert abs(float(soft(votes.votes["SIMILAR_STRUCTURE"].raw_beta)) - 10.0) < 1e-4


def _dense_jaccard(targets: torch.Tensor, n_c: int, n_g: int) -> torch.Tensor:
    """[n_c, n_c] Jaccard of the compounds' target sets written out densely, 0 on the diagonal."""
    a = torch.zeros(n_c, n_g)
    a[targets[0], targets[1]] = 1.0
    inter = a @ a.T
    union = a.sum(1, keepdim=True) + a.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter)).fill_diagonal_(0)


def test_shared_target_pairs_are_the_top_k_jaccard_neighbours_of_a_dense_computation() -> None:
    """Against sets written out densely: every compound's neighbours are the ``top_k`` others with the
    largest target-set Jaccard (> 0), with that Jaccard, as messages neighbour -> compound; duplicate
    edges (one per source) count once, and a compound without targets gets no neighbour."""
    g = torch.Generator().manual_seed(3)
    n_c, n_g = 30, 12
    targets = torch.stack([torch.randint(0, n_c - 5, (90,), generator=g),
                           torch.randint(0, n_g, (90,), generator=g)])
    targets = torch.cat([targets, targets[:, :10]], 1)  # a second source repeats some pairs
    jac = _dense_jaccard(targets, n_c, n_g)
    for top_k in (3, 100):
        (src, dst), s = shared_target_pairs(targets, n_c, top_k)
        assert torch.allclose(s, jac[dst, src])
        assert bool((s > 0).all()) and not bool((src == dst).any())
        for c in range(n_c):
            mine = s[dst == c]
            expected = jac[c][jac[c] > 0].sort(descending=True).values[:top_k]
            assert torch.allclose(mine.sort(descending=True).values, expected), c
        assert not bool(torch.isin(torch.arange(n_c - 5, n_c), dst).any())


def test_shared_target_vote_is_the_target_jaccard_knn_and_follows_the_edges_passed_in() -> None:
    """The link votes over SHARED_TARGET equal a dense Jaccard-weighted kNN of targets, and removing a
    compound's TARGETS edges removes its vote (only targets in the graph passed in count)."""
    _, edges = _graph(1)
    x = torch.zeros(N_C, 1)
    votes = LinkVotes({"SHARED_TARGET": (TARGET_JACCARD, (0, 0), [TARGETS], 1.0)}, TARGETS, N_G)
    votes.prior.fill_(0.1)
    (vote,) = votes.votes.values()
    beta = float(torch.nn.functional.softplus(vote.raw_beta.detach()))
    kappa = float(torch.nn.functional.softplus(vote.raw_kappa.detach()))
    a = torch.zeros(N_C, N_G)
    a[edges[TARGETS][0], edges[TARGETS][1]] = 1.0
    jac = _dense_jaccard(edges[TARGETS], N_C, N_G)
    w = torch.where(jac > 0, torch.exp(beta * (jac - 1.0)), torch.zeros_like(jac))  # N_C < top_k: all
    expected = (kappa * 0.1 + w @ a) / (kappa + w.sum(1, keepdim=True))
    logit = lambda p: torch.log(p) - torch.log1p(-p)  # noqa: E731
    offsets = votes.offset_all(votes.tables(x, edges, N_G), torch.arange(N_C))
    assert torch.allclose(offsets, logit(expected) - logit(torch.tensor(0.1)), atol=1e-5)
    c = int(edges[TARGETS][0, 0])
    assert bool((offsets[c] != 0).any())
    cut = {**edges, TARGETS: edges[TARGETS][:, edges[TARGETS][0] != c]}
    assert bool((votes.offset_all(votes.tables(x, cut, N_G), torch.tensor([c])) == 0).all())


def test_top_k_votes_are_a_dense_knn_of_each_compounds_k_nearest_neighbours_with_targets() -> None:
    """With ``top_k`` k only each compound's k most similar neighbours *with targets* vote (a neighbour
    without targets takes no slot), as a dense kNN restricted to them; the grid can choose k."""
    from moakg.gnn.vote_tuning import tune_votes

    g = torch.Generator().manual_seed(5)
    x = torch.randn(N_C, 6, generator=g)  # continuous profiles: no tied similarities
    pairs = torch.combinations(torch.arange(N_C)).T  # every unordered pair once
    targets = torch.stack([torch.randint(0, N_C - 4, (20,), generator=g),  # the last 4 have none
                           torch.randint(0, N_G, (20,), generator=g)])
    edges = {SIM: pairs, SIM_REV: pairs.flip(0), TARGETS: torch.unique(targets, dim=1)}
    votes = LinkVotes({"SIMILAR_SIGNATURE": ("pearson", (0, 6), [SIM, SIM_REV], 1.0)}, TARGETS, N_G)
    votes.prior.fill_(0.1)
    (vote,) = votes.votes.values()
    a = torch.zeros(N_C, N_G)
    a[edges[TARGETS][0], edges[TARGETS][1]] = 1.0
    known = a.sum(1) > 0
    xc = x - x.mean(1, keepdim=True)
    corr = (xc / xc.norm(dim=1, keepdim=True)) @ (xc / xc.norm(dim=1, keepdim=True)).T
    logit = lambda p: torch.log(p) - torch.log1p(-p)  # noqa: E731
    for k in (0, 1, 3):
        vote.set_params(3.0, 0.5, top_k=k)
        w = torch.exp(3.0 * (corr - 1.0)).fill_diagonal_(0) * known[None, :]
        if k:
            w = w * torch.zeros_like(w).scatter_(1, w.topk(k, dim=1).indices, 1.0)
        expected = (0.5 * 0.1 + w @ a) / (0.5 + w.sum(1, keepdim=True))
        offsets = votes.offset_all(votes.tables(x, edges, N_G), torch.arange(N_C))
        assert torch.allclose(offsets, logit(expected) - logit(torch.tensor(0.1)), atol=1e-4), k
        assert int((w > 0).sum(1).max()) == (k or int(known.sum()))
    truth = votes.offset_all(votes.tables(x, edges, N_G), torch.arange(N_C))  # the k = 3 vote

    def score() -> float:  # the closer to the k = 3 vote, the better
        return -float((votes.offset_all(votes.tables(x, edges, N_G), torch.arange(N_C)) - truth).abs().sum())

    assert tune_votes(votes, score, top_ks=(0, 1, 3))["SIMILAR_SIGNATURE"][3] == 3


def test_moa_mediated_vote_is_a_dense_vote_of_the_neighbours_moas_through_p_gene_given_moa() -> None:
    """MOA_MEDIATED: each similar compound votes, split over its MoAs, with P(g | m), the share of the
    compounds with MoA m and visible targets that target g, written out densely here. A compound whose
    MoA no compound with targets has does not vote, and changing a compound's MoA input moves only the
    votes of its neighbours."""
    g = torch.Generator().manual_seed(7)
    x, edges = _graph(3)
    n_moa = 4
    moa = (torch.rand(N_C, n_moa, generator=g) < 0.35).float()
    moa[:, 3] = 0.0
    moa[N_C - 1, :] = 0.0
    moa[N_C - 1, 3] = 1.0  # an MoA without a single compound with targets: no vote
    features = torch.cat([x, moa], 1)
    votes = LinkVotes({"MOA_MEDIATED": ("tanimoto", (0, BITS), [SIM, SIM_REV], 1.0)}, TARGETS, N_G,
                      ("MOA_MEDIATED",), (BITS, BITS + n_moa))
    votes.prior.fill_(0.05)
    (vote,) = votes.votes.values()
    vote.set_params(2.0, 0.7)
    a = torch.zeros(N_C, N_G)
    a[edges[TARGETS][0], edges[TARGETS][1]] = 1.0
    has_t = a.sum(1) > 0
    per_moa = moa[has_t].sum(0)
    p_gene_given_moa = (a.T @ moa) / per_moa.clamp(min=1)  # [G, M]
    usable = moa * (per_moa > 0).float()
    share = usable / usable.sum(1, keepdim=True).clamp(min=1)
    known = (usable.sum(1) > 0).float()
    w = torch.zeros(N_C, N_C)
    for et in (SIM, SIM_REV):
        for src, dst in edges[et].T.tolist():
            inter = (x[src] * x[dst]).sum()
            union = x[src].sum() + x[dst].sum() - inter
            w[dst, src] += torch.exp(torch.tensor(2.0 * (float(inter / union) - 1.0)))
    expected = (0.7 * 0.05 + w @ share @ p_gene_given_moa.T) / (0.7 + (w * known).sum(1, keepdim=True))
    logit = lambda p: torch.log(p) - torch.log1p(-p)  # noqa: E731
    tables = votes.tables(features, edges, N_G)
    offsets = votes.offset_all(tables, torch.arange(N_C))
    assert torch.allclose(offsets, logit(expected) - logit(torch.tensor(0.05)), atol=1e-5)
    assert (offsets > 0).any()
    cc, gg = torch.meshgrid(torch.arange(N_C), torch.arange(N_G), indexing="ij")
    pairs = votes.offset(tables, cc.reshape(-1), gg.reshape(-1), gg.reshape(-1))
    assert torch.allclose(pairs.view(N_C, N_G), offsets, atol=1e-6)
    # a compound's own MoA input never enters its own vote, only its neighbours' (one without targets:
    # its MoA then moves no P(g | m) either)
    c = next(i for i in range(N_C) if not has_t[i] and (w[:, i] > 0).any())
    changed = features.clone()
    changed[c, BITS:BITS + 3] = 1.0 - changed[c, BITS:BITS + 3]
    moved = votes.offset_all(votes.tables(changed, edges, N_G), torch.arange(N_C))
    neighbours = (w[:, c] > 0).nonzero().view(-1)
    still = torch.ones(N_C, dtype=torch.bool)
    still[neighbours] = False
    assert still[c]
    assert torch.allclose(moved[still], offsets[still], atol=1e-6)
    assert not torch.allclose(moved[neighbours], offsets[neighbours])


def test_the_grid_reuses_tables_only_where_a_fresh_computation_gives_the_same_offsets() -> None:
    """Inside ``fixed_inputs`` (the validation grid) tables and similarities are cached per relation and
    (beta, kappa, top_k): along a random walk over grid points that revisits them, with gates moving too,
    the offsets equal those of a twin module computed from scratch, for the target and the MoA vote."""
    g = torch.Generator().manual_seed(11)
    x, edges = _graph(4)
    moa = (torch.rand(N_C, 3, generator=g) < 0.4).float()
    features = torch.cat([x, moa], 1)
    relations = {"SIMILAR_STRUCTURE": ("tanimoto", (0, BITS), [SIM, SIM_REV], 1.0),
                 "MOA_MEDIATED": ("tanimoto", (0, BITS), [SIM, SIM_REV], 0.5)}
    votes = LinkVotes(relations, TARGETS, N_G, ("MOA_MEDIATED",), (BITS, BITS + 3))
    votes.prior.fill_(0.05)
    twin = copy.deepcopy(votes)
    points = [(beta, kappa, k) for beta in (1.0, 10.0) for kappa in (0.1, 2.0) for k in (0, 2)]

    def offsets(module: LinkVotes) -> torch.Tensor:
        return module.offset_all(module.tables(features, edges, N_G), torch.arange(N_C)).detach()

    with votes.fixed_inputs():
        for step in range(40):
            r = step % 2
            point = points[int(torch.randint(len(points), (1,), generator=g))]
            gate = float(torch.rand(1, generator=g)) * 2
            for module in (votes, twin):
                list(module.votes.values())[r].set_params(*point)
                with torch.no_grad():
                    module.gates[r].fill_(gate)
            assert torch.allclose(offsets(votes), offsets(twin), atol=1e-6), (step, r, point)
        assert len(votes._cache) <= 2 * len(points)  # one table per relation and point, reused
    assert votes._cache is None and all(v._kept is None for v in votes.votes.values())
