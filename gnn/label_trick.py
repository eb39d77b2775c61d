"""The label trick: training compounds' labels as masked input features.

Each training epoch splits the training compounds at random into those whose labels are an input and
those whose labels are predicted (the loss is taken on the second part only), so the model learns to
predict a compound from its neighbours' labels without ever seeing its own. At evaluation every
training compound's labels are an input and no validation or test compound's is: a held-out
compound's own label never reaches its prediction (``tests/test_label_trick.py`` checks it).

The input lives on the graph as two node attributes, so a sampled subgraph or an explained subgraph
slices it with the node features; :func:`~moakg.gnn.models.model_inputs` appends them to the node
type's ``x``:

- ``label_in`` [N, C] float: the labels of the nodes whose labels are an input, zeros elsewhere;
- ``label_known`` [N] float: 1 where ``label_in`` holds a node's labels.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

LABEL_INPUT, LABEL_KNOWN = "label_in", "label_known"


def attach_label_input(graph: HeteroData, node_type: str, y: Tensor, known: Tensor) -> None:
    """Set ``graph[node_type].label_in`` = ``y`` on the rows ``known`` (long indices), 0 elsewhere, and
    ``label_known`` = their indicator, in place."""
    mask = torch.zeros(y.size(0), dtype=torch.float32)
    mask[known] = 1.0
    graph[node_type][LABEL_INPUT] = y.float() * mask.unsqueeze(1)
    graph[node_type][LABEL_KNOWN] = mask


def split_known(train: Tensor, known_frac: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(known, supervised)``: a random ``known_frac`` of ``train`` whose labels are an input this epoch,
    and the rest (at least one row), whose labels are predicted."""
    perm = train[torch.randperm(train.numel(), generator=generator)]
    n_known = min(int(round(known_frac * train.numel())), max(train.numel() - 1, 0))
    return perm[:n_known], perm[n_known:]


def label_width(graph: HeteroData, node_type: str) -> int:
    """Columns the label input adds to ``node_type``'s features (``C + 1``; 0 without a label input)."""
    store = graph[node_type]
    return int(store[LABEL_INPUT].size(1)) + 1 if LABEL_INPUT in store else 0
