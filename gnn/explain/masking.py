"""Edge masks for every encoder and for the vote layers, behind PyG's own mask interface.

PyG's explainers (``GNNExplainer``, ``CaptumExplainer``) put one mask per edge type on the model with
``set_hetero_masks``, which only reaches message-passing layers held in a ``ModuleDict`` keyed by the
edge type: the ``SAGEConv`` of each edge type in a ``HeteroConv``. Three parts of a moakg model read
edges elsewhere, and an explanation that misses them misses most of the prediction:

- the similarity votes (:class:`~moakg.gnn.similarity_vote.SimilarityVote`, in ``LabelVotes`` and
  ``LinkVotes``), which carry the label trick's "similar compounds have this MoA / target" evidence;
- ``RGCNConv`` and ``HGTConv``, which run every relation through one homogeneous layer.

:class:`MaskSlot` gives each explained edge type a ``ModuleDict`` entry where ``set_hetero_masks`` puts its
mask; :func:`attached_masks` then hands those masks to the votes (as a factor on each neighbour's weight),
to ``HGTConv`` (concatenated in the order it concatenates the edge types) and to ``RGCNConv`` (one block
per relation, in the order it propagates them). A mask value ``m_e`` scales edge ``e``'s message:
``m = 1`` is the trained model, ``m = 0`` removes the edge, the same semantics PyG uses.

Why not PyG alone: its hetero masking is tied to ``HeteroConv``; written here, with PyG's own
``explain_message`` hook for the two homogeneous convolutions (the override PyG's docs suggest).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import MethodType

import torch
from torch import Tensor, nn
from torch_geometric.nn import HGTConv, MessagePassing, RGCNConv

from moakg.gnn.link_vote import LinkVotes
from moakg.gnn.models import RGCNEncoder
from moakg.gnn.similarity_vote import TARGET_JACCARD, LabelVotes

EdgeType = tuple[str, str, str]


class MaskSlot(MessagePassing):
    """Holds one edge type's explanation mask where ``set_hetero_masks`` puts it; never propagates."""

    def __init__(self) -> None:
        super().__init__()

    def mask(self) -> Tensor | None:
        """The mask as message weights (sigmoid applied when PyG asked for it), or None when unset."""
        m = self._edge_mask if self.explain else None
        if m is None:
            return None
        return m.sigmoid() if self._apply_sigmoid else m


def mask_slots(edge_types: list[EdgeType]) -> nn.ModuleDict:
    """One :class:`MaskSlot` per edge type, keyed as ``HeteroConv`` keys its convolutions."""
    return nn.ModuleDict({"__".join(et): MaskSlot() for et in edge_types})


def slot_masks(slots: nn.ModuleDict) -> dict[EdgeType, Tensor]:
    """``{edge type: mask}`` of the slots that hold one."""
    out = {}
    for key, slot in slots.items():
        m = slot.mask()  # type: ignore[operator]
        if m is not None:
            out[tuple(key.split("__"))] = m.view(-1)
    return out


def _concat(masks: dict[EdgeType, Tensor], edges: list[tuple[EdgeType, Tensor]], ref: Tensor) -> Tensor:
    """The masks of ``edges`` (edge type, edge index) in that order; ones for an edge type without one."""
    parts = [masks[et] if et in masks else torch.ones(ei.size(1), device=ref.device, dtype=ref.dtype)
             for et, ei in edges]
    return torch.cat(parts) if parts else ref.new_ones(0)


def _rgcn_explain_message(self: RGCNConv, inputs: Tensor, dim_size: int | None) -> Tensor:
    # RGCNConv propagates relation 0, 1, ... in turn (each a boolean selection of the edges, order kept):
    # hand out the next relation's block; a single call over every edge (pyg-lib's segment matmul) gets all.
    blocks: list[Tensor] = self._relation_masks  # type: ignore[attr-defined]
    cursor = self._relation_cursor % len(blocks)  # type: ignore[attr-defined]
    if cursor == 0 and inputs.size(0) == self._edge_mask.numel() != blocks[0].numel():
        m = self._edge_mask
    else:
        m = blocks[cursor]
        self._relation_cursor = cursor + 1  # type: ignore[attr-defined]
    return inputs * m.view([-1] + [1] * (inputs.dim() - 1))


@contextmanager
def attached_masks(model: nn.Module, masks: dict[EdgeType, Tensor],
                   edges: dict[EdgeType, Tensor]) -> Iterator[None]:
    """Apply ``masks`` (``{edge type: [E_t]}`` message weights for ``edges``' edge types) to the votes,
    ``HGTConv`` and ``RGCNConv`` layers of ``model`` for the duration of the block.

    ``HeteroConv`` layers are left to PyG (``set_hetero_masks`` already masked them). Edge types without a
    mask get ones. The shared-target vote is not masked: its pairs are derived from TARGETS edges, not
    edges of the graph.
    """
    if not masks:
        yield
        return
    ref = next(iter(masks.values()))
    touched: list[tuple[nn.Module, str]] = []
    try:
        for module in model.modules():
            if isinstance(module, LabelVotes | LinkVotes):
                for rel, vote in module.votes.items():
                    if vote.similarity == TARGET_JACCARD:
                        continue
                    present = [(et, ei) for et in module.relations[rel]
                               if (ei := edges.get(et)) is not None and ei.numel()]
                    vote.edge_mask = _concat(masks, present, ref)
                    touched.append((vote, "vote"))
                if isinstance(module, LinkVotes) and module.target_edge_type in masks:
                    module.target_mask = masks[module.target_edge_type]
                    touched.append((module, "link"))
            elif isinstance(module, HGTConv):
                # HGTConv stacks the edge types in the order of the dict the encoder passes it
                present = [(et, ei) for et, ei in edges.items() if et in set(module.edge_types)]
                module.explain, module._apply_sigmoid = True, False
                module._edge_mask = _concat(masks, present, ref)
                module._loop_mask = torch.ones(module._edge_mask.numel(), dtype=torch.bool)
                touched.append((module, "conv"))
            elif isinstance(module, RGCNEncoder):
                # the blocks of RGCNEncoder.conv: relation ids in encoder order, empty types empty
                blocks = []
                for et in module.edge_types:
                    ei = edges.get(et)
                    n = 0 if ei is None else int(ei.size(1))
                    blocks.append(masks[et] if et in masks and n else ref.new_ones(n))
                for conv in module.convs:
                    conv.explain, conv._apply_sigmoid = True, False
                    conv._edge_mask = torch.cat(blocks)
                    conv._relation_masks, conv._relation_cursor = blocks, 0
                    conv.explain_message = MethodType(_rgcn_explain_message, conv)
                    touched.append((conv, "rgcn"))
        yield
    finally:
        for module, what in touched:
            if what == "vote":
                module.edge_mask = None
            elif what == "link":
                module.target_mask = None
            else:
                module.explain, module._edge_mask, module._loop_mask = False, None, None
                module._apply_sigmoid = True
                if what == "rgcn":
                    del module._relation_masks, module._relation_cursor
                    del module.explain_message  # back to the class's method
