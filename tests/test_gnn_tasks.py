"""Tasks and splits (moakg.gnn.tasks, moakg.gnn.splits): honest splits, labels never in the graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator
from torch import Tensor
from torch_geometric.data import HeteroData

from moakg.gnn.splits import (
    butina_clusters,
    cell_line_split,
    cluster_split,
    murcko_scaffold,
    random_split,
    scaffold_split,
)
from moakg.gnn.tasks import (
    MoATask,
    SignatureTask,
    TargetTask,
    assert_no_leakage,
    edge_types_between,
    make_moa_task,
    make_signature_task,
    make_target_task,
    moa_labels,
    signature_cells,
    signature_compounds,
)
from moakg.kg.connection import Neo4jConnection

SCAFFOLDS = ["c1ccccc1", "c1ccncc1", "C1CCCCC1", "c1ccc2ccccc2c1", "c1ccoc1", "c1ccsc1", "C1CCNCC1",
             "n1ccncc1", "C1CCOC1", "c1ccc2[nH]ccc2c1", "C1CC1", "c1ccc(-c2ccccc2)cc1", "O=C1CCCN1",
             "n1cncnc1", "C1CCC2CCCCC2C1"]
SUBSTITUENTS = ["C", "CC", "O", "N", "Cl", "F", "OC", "CCC", "Br", "CN"]


@dataclass
class ToyMaps:
    """The parts of the export's id maps the tasks use."""

    keys: dict[str, list[str]]
    index: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=lambda: ["repurposing_hub", "drugbank"])
    smiles: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.index = {t: {k: i for i, k in enumerate(ks)} for t, ks in self.keys.items()}


def _add(data: HeteroData, src: str, rel: str, dst: str, pairs: list[tuple[int, int]],
         attr: Tensor | None = None, source_code: Tensor | None = None) -> None:
    ei = torch.tensor(pairs, dtype=torch.long).T.reshape(2, -1)
    data[src, rel, dst].edge_index = ei
    data[dst, f"rev_{rel}", src].edge_index = ei.flip(0)
    if attr is not None:
        data[src, rel, dst].edge_attr = attr
        data[dst, f"rev_{rel}", src].edge_attr = attr
    if source_code is not None:
        data[src, rel, dst].source_code = source_code
        data[dst, f"rev_{rel}", src].source_code = source_code


def toy_graph(n_compounds: int = 150, n_classes: int = 3, n_genes: int = 40, n_cells: int = 4,
              n_bits: int = 256, z_dim: int = 32, signal: str = "fingerprint", seed: int = 0
              ) -> tuple[HeteroData, ToyMaps]:
    """A small graph of the export's shape whose MoA labels are a function of ``signal``.

    Class ``c`` of a compound sets bits of block ``c`` of the fingerprint (``signal`` 'fingerprint'
    or 'both') and shifts landmark ``z`` dims ``4c..4c+3`` of its signatures ('signature' or 'both');
    otherwise that input is noise. Class ``c`` targets genes ``3c..3c+2``; classes 0 and 1 also share
    gene 30; gene 39 is a hub of INTERACTS_WITH. One extra MoA 'rare' has 2 compounds.
    """
    rng = np.random.default_rng(seed)
    n_sig_max = n_compounds * 2
    cls = rng.permutation(np.arange(n_compounds) % n_classes)
    data = HeteroData()
    # Compounds: fingerprints, SMILES on 15 scaffolds (unrelated to the class), 2 without structure.
    fp = (rng.random((n_compounds, n_bits)) < 0.02).astype(np.float32)
    block = n_bits // (n_classes + 1)
    for i, c in enumerate(cls):
        b = c if signal in ("fingerprint", "both") else rng.integers(n_classes)
        fp[i, b * block:(b + 1) * block] = np.maximum(fp[i, b * block:(b + 1) * block],
                                                      rng.random(block) < 0.5)
    smiles: list[str | None] = [SCAFFOLDS[rng.integers(len(SCAFFOLDS))] + SUBSTITUENTS[i % len(SUBSTITUENTS)]
                                for i in range(n_compounds)]
    no_structure = [n_compounds - 1, n_compounds - 2]
    for i in no_structure:
        smiles[i] = None
        fp[i] = 0
    has_structure = torch.ones(n_compounds, dtype=torch.bool)
    has_structure[no_structure] = False
    # Signatures: 90 % of compounds, in 2 distinct cell lines each.
    sig_x, sig_of, sig_cell = [], [], []
    for i, c in enumerate(cls):
        if rng.random() < 0.1:
            continue
        for cell in rng.choice(n_cells, size=min(2, n_cells), replace=False):
            z = rng.normal(size=z_dim).astype(np.float32)
            if signal in ("signature", "both"):
                z[4 * c:4 * c + 4] += 3.0
            sig_x.append(z)
            sig_of.append(i)
            sig_cell.append(int(cell))
    n_sig = len(sig_x)
    assert n_sig <= n_sig_max
    sx = torch.tensor(np.array(sig_x))
    z_c = torch.zeros(n_compounds, z_dim)
    has_sig = torch.zeros(n_compounds, dtype=torch.bool)
    for s, i in enumerate(sig_of):
        z_c[i] += sx[s]
        has_sig[i] = True
    counts = torch.bincount(torch.tensor(sig_of), minlength=n_compounds).clamp(min=1)
    z_c /= counts.unsqueeze(1)
    data["Compound"].fp = torch.tensor(fp)
    data["Compound"].has_structure = has_structure
    data["Compound"].z = z_c
    data["Compound"].has_signature = has_sig
    data["Compound"].x = torch.cat([data["Compound"].fp, z_c], 1)
    data["Compound"].num_nodes = n_compounds
    data["Signature"].x = sx
    data["Signature"].quality = torch.rand(n_sig, 3)
    data["Signature"].num_nodes = n_sig
    for t, n in (("CellLine", n_cells), ("Gene", n_genes), ("GOTerm", 10), ("MoA", n_classes + 1)):
        data[t].num_nodes = n
        data[t].node_id = torch.arange(n)
    # Labels, one edge per source for some compounds (duplicates must not double-count).
    moa = [(i, int(c)) for i, c in enumerate(cls)] + [(0, n_classes), (1, n_classes)]
    moa += [(i, int(cls[i])) for i in range(0, n_compounds, 7)]  # second source, same pair
    _add(data, "Compound", "HAS_MOA", "MoA", moa, source_code=torch.zeros(len(moa), dtype=torch.long))
    targets = []
    for i, c in enumerate(cls):
        for g in rng.choice(3, size=rng.integers(1, 3), replace=False):
            targets.append((i, 3 * int(c) + int(g)))
        if c in (0, 1) and rng.random() < 0.3:
            targets.append((i, 30))
    targets += targets[:10]  # second source
    _add(data, "Compound", "TARGETS", "Gene", targets,
         source_code=torch.zeros(len(targets), dtype=torch.long))
    _add(data, "Compound", "HAS_SIGNATURE", "Signature", [(i, s) for s, i in enumerate(sig_of)])
    _add(data, "Signature", "IN_CELL", "CellLine", list(enumerate(sig_cell)))
    up = [(s, int(g)) for s in range(n_sig) for g in sx[s].topk(3).indices]
    down = [(s, int(g)) for s in range(n_sig) for g in (-sx[s]).topk(3).indices]
    _add(data, "Signature", "UPREGULATES", "Gene", up, attr=torch.rand(len(up), 1))
    _add(data, "Signature", "DOWNREGULATES", "Gene", down, attr=-torch.rand(len(down), 1))
    ppi = {(int(a), int(b)) for a, b in rng.integers(0, n_genes - 1, size=(40, 2)) if a != b}
    ppi |= {(g, n_genes - 1) for g in range(0, n_genes - 1, 2)}
    _add(data, "Gene", "INTERACTS_WITH", "Gene", sorted(ppi))
    _add(data, "Gene", "ANNOTATED_WITH", "GOTerm", [(g, g % 10) for g in range(n_genes)])
    _add(data, "GOTerm", "IS_A", "GOTerm", [(t, t + 1) for t in range(9)])
    _add(data, "GOTerm", "PART_OF", "GOTerm", [(0, 5)])
    keys = {"Compound": [f"CPD{i:04d}-XXXXXXXXXX-N" for i in range(n_compounds)],
            "Signature": [f"SIG{i}" for i in range(n_sig)], "CellLine": [f"CELL{i}" for i in range(n_cells)],
            "Gene": [f"G{i}" for i in range(n_genes)], "GOTerm": [f"GO:{i:07d}" for i in range(10)],
            "MoA": [f"moa {c}" for c in range(n_classes)] + ["rare"]}
    return data, ToyMaps(keys, smiles=smiles)


def _pairs_in_graph(graph: HeteroData, a: str, b: str) -> set[tuple[int, int]]:
    """All (a index, b index) pairs of a-b edges, per direction: {(dir, a, b)} flattened to one set."""
    out = set()
    for et in edge_types_between(graph, a, b):
        ei = graph[et].edge_index
        ia, ib = (ei[0], ei[1]) if et[0] == a else (ei[1], ei[0])
        out |= {(et[1], x, y) for x, y in zip(ia.tolist(), ib.tolist(), strict=True)}
    return out


def _held_pairs_absent(graph: HeteroData, a: str, b: str, pairs: list[tuple[int, int]]) -> None:
    present = _pairs_in_graph(graph, a, b)
    for rel_pairs in ({(x, y) for r, x, y in present if r.startswith("rev_")},
                      {(x, y) for r, x, y in present if not r.startswith("rev_")}):
        assert not rel_pairs & set(pairs)


# ------------------------------------------------------------------------------------------ splits
def test_random_split_exact_sizes_disjoint_and_seeded() -> None:
    items = torch.arange(100, 200)
    s = random_split(items, seed=3, val_frac=0.1, test_frac=0.2)
    assert (s.train.numel(), s.val.numel(), s.test.numel()) == (70, 10, 20)
    assert sorted(torch.cat([s.train, s.val, s.test]).tolist()) == items.tolist()
    again = random_split(items, seed=3, val_frac=0.1, test_frac=0.2)
    assert torch.equal(s.test, again.test) and torch.equal(s.train, again.train)
    assert not torch.equal(s.test, random_split(items, seed=4).test)
    rec = s.as_dict()
    assert rec["method"] == "random" and rec["seed"] == 3 and rec["n_test"] == 20
    assert len(rec["test_sha1"]) == 40


def test_murcko_scaffold() -> None:
    assert murcko_scaffold("Cc1ccccc1") == "c1ccccc1"
    assert murcko_scaffold("CCO") == ""  # acyclic: the shared empty scaffold
    assert murcko_scaffold("not a smiles") is None and murcko_scaffold(None) is None


def test_scaffold_split_test_scaffolds_unseen_in_training() -> None:
    _, maps = toy_graph()
    items = torch.arange(len(maps.smiles))
    for seed in range(3):
        s = scaffold_split(items, maps.smiles, seed=seed)
        scaf = {part: {murcko_scaffold(maps.smiles[i]) or f"none{i}" for i in getattr(s, part).tolist()}
                for part in ("train", "val", "test")}
        assert not scaf["test"] & scaf["train"] and not scaf["val"] & scaf["train"]
        assert not scaf["test"] & scaf["val"]
        assert s.test.numel() > 0 and s.val.numel() > 0 and s.train.numel() > 0.5 * items.numel()
        assert s.method == "scaffold" and s.seed == seed and s.meta["n_no_structure"] == 2
        assert torch.equal(s.test, scaffold_split(items, maps.smiles, seed=seed).test)  # deterministic
    assert not torch.equal(scaffold_split(items, maps.smiles, seed=0).test,
                           scaffold_split(items, maps.smiles, seed=1).test)


def test_butina_clusters_join_at_the_tanimoto_threshold() -> None:
    # Two analogues: their Morgan (r2, 2048 bits) Tanimoto, computed here with RDKit, decides whether
    # they share a cluster; a threshold just above 1 - Tanimoto joins them, just below keeps them apart.
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)

    def sim(a: str, b: str) -> float:
        return DataStructs.TanimotoSimilarity(*(gen.GetFingerprint(Chem.MolFromSmiles(x)) for x in (a, b)))

    aspirin, salicylic = "CC(=O)Oc1ccccc1C(=O)O", "OC(=O)c1ccccc1O"
    s = sim(aspirin, salicylic)
    assert s == pytest.approx(13 / 29)  # 13 shared of 29 set bits
    together = butina_clusters([aspirin, salicylic], threshold=1 - s + 1e-9)
    apart = butina_clusters([aspirin, salicylic], threshold=1 - s - 1e-9)
    assert together[0] == together[1] and apart[0] != apart[1]
    # the default 0.6 (Tanimoto >= 0.4): aspirin / salicylic acid (0.45) join, toluene / ethylbenzene
    # (7 / 18 = 0.39) do not
    assert sim("Cc1ccccc1", "CCc1ccccc1") == pytest.approx(7 / 18)
    default = butina_clusters([aspirin, salicylic, "Cc1ccccc1", "CCc1ccccc1"])
    assert default[0] == default[1] and default[2] != default[3] and default[0] not in default[2:]
    # Benzene shares no Morgan bit with ethanol (Tanimoto 0): its own cluster even at threshold 0.99;
    # the same molecule written twice is one cluster at threshold 0; no structure -> no cluster.
    c = butina_clusters(["CCO", "OCC", "c1ccccc1", "not a smiles", None], threshold=0.0)
    assert c[0] == c[1] and c[2] not in (c[0], None) and c[3] is None and c[4] is None
    loose = butina_clusters(["CCO", "c1ccccc1"], threshold=0.99)
    assert loose[0] != loose[1]
    assert butina_clusters([]) == []


def test_cluster_split_test_clusters_unseen_in_training() -> None:
    _, maps = toy_graph()
    items = torch.arange(len(maps.smiles))
    cluster = butina_clusters(maps.smiles, threshold=0.6)
    assert len({c for c in cluster if c is not None}) < 150  # analogues do cluster on the toy SMILES
    for seed in range(3):
        s = cluster_split(items, maps.smiles, seed=seed)
        groups = {part: {f"none{i}" if cluster[i] is None else cluster[i] for i in getattr(s, part).tolist()}
                  for part in ("train", "val", "test")}
        assert not groups["test"] & groups["train"] and not groups["val"] & groups["train"]
        assert not groups["test"] & groups["val"]
        assert sorted(torch.cat([s.train, s.val, s.test]).tolist()) == items.tolist()
        assert s.test.numel() > 0 and s.val.numel() > 0 and s.train.numel() > 0.5 * items.numel()
        assert s.method == "cluster" and s.seed == seed
        rec = s.as_dict()
        assert rec["threshold"] == 0.6 and rec["n_no_structure"] == 2
        assert rec["n_clusters"] == len({c for c in cluster if c is not None}) and rec["method"] == "cluster"
        assert torch.equal(s.test, cluster_split(items, maps.smiles, seed=seed).test)  # deterministic
    assert not torch.equal(cluster_split(items, maps.smiles, seed=0).test,
                           cluster_split(items, maps.smiles, seed=1).test)
    # a looser threshold makes fewer, bigger clusters
    assert cluster_split(items, maps.smiles, threshold=0.8).meta["n_clusters"] < rec["n_clusters"]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        cluster_split(items, maps.smiles, threshold=1.0)


def test_cell_line_split_unseen_cells() -> None:
    cell_of = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 3, -1])
    s = cell_line_split(torch.arange(10), cell_of, seed=0, val_frac=0.25, test_frac=0.25)
    cells = {p: set(cell_of[getattr(s, p)].tolist()) for p in ("train", "val", "test")}
    assert not cells["test"] & cells["train"] and not cells["val"] & cells["train"]
    assert 9 not in torch.cat([s.train, s.val, s.test]).tolist() and s.meta["n_dropped_no_cell"] == 1
    two = cell_line_split(torch.arange(8), torch.tensor([0] * 5 + [1] * 3), seed=1)
    assert two.meta["val_mode"] == "within_train_cells"
    assert not set(torch.tensor([0] * 5 + [1] * 3)[two.test].tolist()) & set(
        torch.tensor([0] * 5 + [1] * 3)[two.train].tolist())
    with pytest.raises(ValueError, match=">= 2 cell lines"):
        cell_line_split(torch.arange(3), torch.zeros(3, dtype=torch.long))


# ------------------------------------------------------------------------------------------ tasks
def test_moa_labels_dedup_and_min_per_class() -> None:
    data, maps = toy_graph()
    task = make_moa_task(data, maps, min_per_class=5)
    assert task.classes == ["moa 0", "moa 1", "moa 2"]  # 'rare' has 2 compounds
    assert task.y.shape == (150, 3) and task.y.max() == 1  # duplicate source edges count once
    assert int(task.labelled.sum()) == 150 and torch.equal(task.y.sum(1), torch.ones(150))
    assert task.class_nodes.tolist() == [0, 1, 2]
    # 'rare' (compounds 0 and 1) is a class only when both of them are training compounds
    for seed in range(3):
        t = make_moa_task(data, maps, min_per_class=2, seed=seed)
        both_train = bool(torch.isin(torch.tensor([0, 1]), t.split.train).all())
        assert ("rare" in t.classes) == both_train
    labelled_split = torch.cat([task.split.train, task.split.val, task.split.test])
    assert task.labelled[labelled_split].all() and labelled_split.numel() == 150


def _relabel_rare(data: HeteroData, rare: int, extra: list[int], only: list[int]) -> None:
    """Give MoA node ``rare`` to compounds ``extra + only`` (and to no other); ``only`` keep no other MoA."""
    et = ("Compound", "HAS_MOA", "MoA")
    kept = [(c, m) for c, m in data[et].edge_index.T.tolist() if m != rare and c not in only]
    pairs = kept + [(c, rare) for c in extra + only]
    _add(data, "Compound", "HAS_MOA", "MoA", pairs, source_code=torch.zeros(len(pairs), dtype=torch.long))


def test_moa_classes_are_counted_on_training_compounds_only() -> None:
    data, maps = toy_graph()
    rare = maps.keys["MoA"].index("rare")
    # Every compound has an MoA label, so the split is the random split of all 150 compounds.
    expected = random_split(torch.arange(150), seed=0)
    train, test = expected.train.tolist(), expected.test.tolist()
    # 'rare': 5 compounds overall (>= min_per_class 3) but 2 in training (< 3); 3 test compounds and one
    # training compound carry it alone.
    only_test, only_train = test[:3], train[:1]
    _relabel_rare(data, rare, extra=train[1:2], only=only_test + only_train)
    _, all_classes, _ = moa_labels(data, maps, min_per_class=3)
    assert "rare" in all_classes  # counted over every compound it would be a class
    task = make_moa_task(data, maps, split="random", seed=0, min_per_class=3)
    assert_no_leakage(task)
    assert task.classes == ["moa 0", "moa 1", "moa 2"] and rare not in task.class_nodes.tolist()
    # the compounds labelled only 'rare' left every part; nothing else moved
    assert set(task.split.test.tolist()) == set(test) - set(only_test)
    assert set(task.split.train.tolist()) == set(train) - set(only_train)
    assert torch.equal(task.split.val, expected.val)
    assert task.split.meta["n_dropped_no_class"] == [1, 0, 3]
    assert task.y[task.split.test].sum(1).min() >= 1  # every test compound keeps a label of the task
    assert not task.labelled[only_test + only_train].any()
    assert len(task.split.test_keys) == task.split.test.numel() == len(test) - 3
    # every class of the task has min_per_class training compounds
    assert task.y[task.split.train].sum(0).min() >= 3
    # once enough of its compounds are in training, 'rare' is a class again
    _relabel_rare(data, rare, extra=train[1:3], only=only_test + only_train)
    assert "rare" in make_moa_task(data, maps, split="random", seed=0, min_per_class=3).classes


def test_signature_classes_are_counted_on_training_signatures_compounds() -> None:
    data, maps = toy_graph(n_cells=5)
    rare = maps.keys["MoA"].index("rare")
    comp, cells = signature_compounds(data), signature_cells(data)
    # Every signature's compound has an MoA label: the split is the cell-line split of all signatures.
    expected = cell_line_split(torch.arange(comp.numel()), cells, seed=0, cell_keys=maps.keys["CellLine"])
    train_comp = set(comp[expected.train].tolist())
    test_only = sorted(set(comp[expected.test].tolist()) - train_comp - set(comp[expected.val].tolist()))
    assert len(test_only) >= 3  # compounds whose every signature is in a test cell line
    # 'rare' on 3 test-only compounds (alone) and 2 training compounds: 5 overall, 2 in training
    _relabel_rare(data, rare, extra=sorted(train_comp)[:2], only=test_only[:3])
    task = make_signature_task(data, maps, split="cell_line", seed=0, min_per_class=3)
    assert_no_leakage(task)
    assert "rare" not in task.classes and "rare" in moa_labels(data, maps, min_per_class=3)[1]
    dropped = torch.isin(comp, torch.tensor(test_only[:3]))
    gone = set(dropped.nonzero().view(-1).tolist())
    assert set(task.split.test.tolist()) == set(expected.test.tolist()) - gone
    assert task.split.meta["n_dropped_no_class"] == [0, 0, int(dropped.sum())]
    assert task.y[task.split.test].sum(1).min() >= 1
    assert task.split.meta["test_cells"] == sorted(maps.keys["CellLine"][c]
                                                   for c in cells[task.split.test].unique().tolist())


@pytest.mark.parametrize("split", ["random", "scaffold", "cluster"])
@pytest.mark.parametrize("setting", ["phenotype", "known_targets"])
def test_moa_task_no_held_out_label_in_graph(split: str, setting: str) -> None:
    data, maps = toy_graph()
    n_edges_before = {et: data[et].edge_index.size(1) for et in data.edge_types}
    task = make_moa_task(data, maps, split=split, seed=1, setting=setting)
    assert_no_leakage(task)
    held = torch.cat([task.split.val, task.split.test]).tolist()
    held_pairs = [(c, int(task.class_nodes[k])) for c in held for k in task.y[c].nonzero().view(-1).tolist()]
    assert held_pairs
    _held_pairs_absent(task.graph, "Compound", "MoA", held_pairs)
    assert not _pairs_in_graph(task.graph, "Compound", "MoA")  # no label edge at all, train included
    targets_of_test = sum(int(torch.isin(task.graph[et].edge_index[0 if et[0] == "Compound" else 1],
                                         task.split.test).sum())
                          for et in edge_types_between(task.graph, "Compound", "Gene"))
    original = sum(int(torch.isin(data[et].edge_index[0 if et[0] == "Compound" else 1],
                                  task.split.test).sum())
                   for et in edge_types_between(data, "Compound", "Gene"))
    if setting == "phenotype":
        assert targets_of_test == 0
    else:
        assert targets_of_test == original > 0
    # The caller's graph is untouched; features and other relations are shared, not copied.
    assert {et: data[et].edge_index.size(1) for et in data.edge_types} == n_edges_before
    assert task.graph["Signature", "UPREGULATES", "Gene"].edge_attr.size(0) == \
        data["Signature", "UPREGULATES", "Gene"].edge_attr.size(0)


@pytest.mark.parametrize("split", ["random", "scaffold", "cluster"])
@pytest.mark.parametrize("setting", ["phenotype", "known_targets"])
def test_target_task_no_held_out_pair_in_graph(split: str, setting: str) -> None:
    data, maps = toy_graph()
    task = make_target_task(data, maps, split=split, seed=2, setting=setting)
    assert_no_leakage(task)
    all_pairs = {tuple(p) for p in torch.cat(list(task.pos.values()), 1).T.tolist()}
    assert len(all_pairs) == sum(v.size(1) for v in task.pos.values())  # disjoint, deduplicated
    edges = data["Compound", "TARGETS", "Gene"].edge_index
    assert len(all_pairs) == len({tuple(p) for p in edges.T.tolist()})
    held = [tuple(p) for p in torch.cat([task.pos["val"], task.pos["test"]], 1).T.tolist()]
    _held_pairs_absent(task.graph, "Compound", "MoA", [])
    _held_pairs_absent(task.graph, "Compound", "Gene", held)
    assert not _pairs_in_graph(task.graph, "Compound", "MoA")
    # Every held-out compound has something to predict; every train pair is a graph edge (both ways).
    assert set(task.pos["test"][0].tolist()) == set(task.split.test.tolist())
    present = _pairs_in_graph(task.graph, "Compound", "Gene")
    train_pairs = {tuple(p) for p in task.pos["train"].T.tolist()}
    assert train_pairs == {(x, y) for r, x, y in present if r == "TARGETS"}
    assert train_pairs == {(x, y) for r, x, y in present if r == "rev_TARGETS"}
    kept_of_test = {x for x, _ in train_pairs} & set(task.split.test.tolist())
    if setting == "phenotype":
        assert not kept_of_test
    else:
        assert kept_of_test  # test compounds with >= 2 targets keep some of them
    # edge attributes follow their edges
    et = ("Compound", "TARGETS", "Gene")
    assert task.graph[et].source_code.numel() == task.graph[et].edge_index.size(1)


def test_signature_task_unseen_cell_lines() -> None:
    data, maps = toy_graph(n_cells=5)
    for setting in ("phenotype", "known_targets"):
        task = make_signature_task(data, maps, split="cell_line", seed=0, setting=setting)
        assert isinstance(task, SignatureTask)
        assert_no_leakage(task)
        cell = data["Signature", "IN_CELL", "CellLine"].edge_index
        cell_of = torch.full((data["Signature"].num_nodes,), -1)
        cell_of[cell[0]] = cell[1]
        train_cells = set(cell_of[task.split.train].tolist())
        assert train_cells and not train_cells & set(cell_of[task.split.test].tolist())
        held = torch.cat([task.split.val, task.split.test]).tolist()
        _held_pairs_absent(task.graph, "Signature", "Compound", [(s, int(task.compound[s])) for s in held])
        y_expected = make_moa_task(data, maps).y[task.compound[task.split.test]]
        assert torch.equal(task.y[task.split.test], y_expected)
        assert task.split.as_dict()["test_cells"] == task.split.meta["test_cells"]


def test_assert_no_leakage_catches_leaks() -> None:
    data, maps = toy_graph()
    moa = make_moa_task(data, maps, seed=0)
    c = int(moa.split.test[0])
    moa.graph["MoA", "rev_HAS_MOA", "Compound"].edge_index = torch.tensor([[0], [c]])
    with pytest.raises(AssertionError, match="Compound-MoA"):
        assert_no_leakage(moa)
    tgt = make_target_task(data, maps, seed=0)
    g = tgt.graph["Gene", "rev_TARGETS", "Compound"]
    g.edge_index = torch.cat([g.edge_index, tgt.pos["test"][:, :1].flip(0)], 1)
    with pytest.raises(AssertionError, match="held-out"):
        assert_no_leakage(tgt)
    pheno = make_moa_task(data, maps, setting="known_targets")
    pheno.setting = "phenotype"  # a known_targets graph claimed as phenotype leaks the test targets
    with pytest.raises(AssertionError, match="phenotype"):
        assert_no_leakage(pheno)
    overlap = make_moa_task(data, maps)
    overlap.split.train = torch.cat([overlap.split.train, overlap.split.test[:1]])
    with pytest.raises(AssertionError, match="overlaps"):
        assert_no_leakage(overlap)


def test_scaffold_split_needs_smiles() -> None:
    data, maps = toy_graph()
    maps.smiles = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="SMILES"):
        make_moa_task(data, maps, split="scaffold")
    task = make_moa_task(data, maps, split="scaffold", smiles=toy_graph()[1].smiles)
    assert isinstance(task, MoATask) and task.split.method == "scaffold"
    with pytest.raises(ValueError, match="a cluster split needs compound SMILES"):
        make_target_task(data, maps, split="cluster")
    task = make_target_task(data, maps, split="cluster", smiles=toy_graph()[1].smiles, cluster_threshold=0.5)
    assert task.split.method == "cluster" and task.split.meta["threshold"] == 0.5
    assert isinstance(make_target_task(data, maps), TargetTask)


# ------------------------------------------------------------------------------------------ real Neo4j demo
def test_demo_graph_tasks_match_cypher_counts_and_do_not_leak(conn: Neo4jConnection) -> None:
    """The bundled demo in the real Neo4j -> export -> both tasks, scaffold split, both settings."""
    from pathlib import Path

    from moakg.ingest.commands import adapters_from_config
    from moakg.ingest.runner import run_adapters
    from moakg.kg.export import export_heterodata

    demo = Path(__file__).resolve().parents[1] / "demo" / "sources.toml"
    run_adapters(conn, adapters_from_config(demo), progress=False)
    data, maps = export_heterodata(conn, cache=False, progress=False)
    rows = conn.query("MATCH (c:Compound) RETURN c.id AS id, c.smiles AS smiles")
    by_id = {r["id"]: r["smiles"] for r in rows}
    smiles = [by_id.get(k) for k in maps.keys["Compound"]]
    k = 5
    n_with_moa = conn.query("MATCH (c:Compound)-[:HAS_MOA]->(:MoA) RETURN count(DISTINCT c) AS n")[0]["n"]
    targets = conn.query("MATCH (c:Compound)-[:TARGETS]->(g:Gene) "
                         "RETURN count(DISTINCT c) AS compounds, count(DISTINCT [c.id, g.symbol]) AS pairs"
                         )[0]
    for setting in ("phenotype", "known_targets"):
        moa = make_moa_task(data, maps, split="scaffold", seed=0, min_per_class=k, setting=setting,
                            smiles=smiles)
        assert_no_leakage(moa)
        s = moa.split
        # the classes are the MoAs with >= k compounds among the split's training compounds
        train_ids = [maps.keys["Compound"][i] for i in s.train.tolist()]
        classes = conn.query(
            "MATCH (m:MoA)<-[:HAS_MOA]-(c:Compound) WHERE c.id IN $train WITH m, count(DISTINCT c) AS n "
            "WHERE n >= $k RETURN collect(m.name) AS names", train=train_ids, k=k)[0]["names"]
        counts = conn.query(
            "MATCH (m:MoA)<-[:HAS_MOA]-(c:Compound) WHERE m.name IN $names "
            "RETURN count(DISTINCT c) AS compounds, count(DISTINCT [c.id, m.name]) AS pairs",
            names=classes)[0]
        assert sorted(moa.classes) == sorted(classes) and len(classes) >= 5
        assert int(moa.labelled.sum()) == counts["compounds"] and int(moa.y.sum()) == counts["pairs"]
        assert s.train.numel() + s.val.numel() + s.test.numel() == counts["compounds"] and s.test.numel() > 0
        # the split was made over every compound with an MoA; those without a kept class left it
        assert sum(s.meta["n_dropped_no_class"]) == n_with_moa - counts["compounds"]
        scaf = {p: {murcko_scaffold(smiles[i]) or f"none{i}" for i in getattr(s, p).tolist()}
                for p in ("train", "test")}
        assert not scaf["train"] & scaf["test"]
        held = torch.cat([s.val, s.test]).tolist()
        labels = moa.y[held].nonzero()  # [(row in held, class)]
        held_labels = [(held[r], int(moa.class_nodes[j])) for r, j in labels.tolist()]
        _held_pairs_absent(moa.graph, "Compound", "MoA", held_labels)
        test = set(s.test.tolist())
        test_targets = {(x, y) for _, x, y in _pairs_in_graph(moa.graph, "Compound", "Gene") if x in test}
        expected = set() if setting == "phenotype" else {
            (x, y) for _, x, y in _pairs_in_graph(data, "Compound", "Gene") if x in test}
        assert test_targets == expected and (setting == "phenotype" or expected)
        tgt = make_target_task(data, maps, split="scaffold", seed=0, setting=setting, smiles=smiles)
        assert_no_leakage(tgt)
        assert sum(v.size(1) for v in tgt.pos.values()) == targets["pairs"]
        n_split = sum(p.numel() for p in (tgt.split.train, tgt.split.val, tgt.split.test))
        assert n_split == targets["compounds"]
        _held_pairs_absent(tgt.graph, "Compound", "Gene",
                           [tuple(p) for p in torch.cat([tgt.pos["val"], tgt.pos["test"]], 1).T.tolist()])
    # the demo is one L1000 plate: one cell line, so no honest unseen-cell-line split exists
    with pytest.raises(ValueError, match="cell lines"):
        make_signature_task(data, maps, split="cell_line")


def test_phenotype_edges_of_held_out_compounds_stay() -> None:
    """MIMICS / OPPOSES come from a compound's own signature, like its Signature node: held-out
    compounds keep them (training compounds do), while every held-out TARGETS edge goes; a MIMICS edge
    on a held-out target pair is no leak and is not removed either."""
    data, maps = toy_graph()
    targets = data["Compound", "TARGETS", "Gene"].edge_index
    mimics = [(c, (g + 1) % data["Gene"].num_nodes) for c, g in targets.T.tolist()[::2]]
    mimics += [tuple(p) for p in targets.T.tolist()[1::5]]  # some coincide with target pairs
    _add(data, "Compound", "MIMICS", "Gene", mimics)
    moa = make_moa_task(data, maps, split="scaffold", seed=1, setting="phenotype")
    assert_no_leakage(moa)
    held = torch.cat([moa.split.val, moa.split.test])
    kept = moa.graph["Compound", "MIMICS", "Gene"].edge_index
    assert int(torch.isin(kept[0], held).sum()) == sum(1 for c, _ in mimics if c in set(held.tolist())) > 0
    assert int(torch.isin(moa.graph["Compound", "TARGETS", "Gene"].edge_index[0], held).sum()) == 0
    for setting in ("phenotype", "known_targets"):
        task = make_target_task(data, maps, split="scaffold", seed=2, setting=setting)
        assert_no_leakage(task)
        assert task.graph["Compound", "MIMICS", "Gene"].edge_index.size(1) == len(mimics)
        assert task.graph["Gene", "rev_MIMICS", "Compound"].edge_index.size(1) == len(mimics)
