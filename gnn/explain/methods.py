"""Three edge explainers behind :class:`~moakg.gnn.explain.base.EdgeExplainer`.

- :class:`GNNExplainerMethod`: PyG's ``GNNExplainer`` (Ying et al. 2019), a soft edge mask trained to keep
  the prediction with few edges; importances are the mask's sigmoid values in (0, 1).
- :class:`IntegratedGradientsMethod`: PyG's ``CaptumExplainer('IntegratedGradients')`` on an all-ones edge
  mask (baseline: all edges off); importances are ``|attribution|`` (needs the ``captum`` package).
- :class:`SaliencyMethod`: ``|d logit / d mask|`` at the all-ones mask: one forward and one backward pass,
  the cheap first look.

All three only mask edges through PyG's per-edge-type message-passing modules (``HeteroConv`` of
``SAGEConv``), so they explain ``sage`` encoders; RGCN and HGT run their relations through one homogeneous
``MessagePassing`` call, where a per-edge-type mask cannot be attached (they raise
:class:`~moakg.errors.UserError`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.explain import Explainer
from torch_geometric.explain.algorithm import CaptumExplainer, GNNExplainer
from torch_geometric.explain.algorithm.utils import clear_masks, set_hetero_masks
from torch_geometric.nn import MessagePassing

from moakg.errors import UserError
from moakg.gnn.explain.base import (
    CompSubgraph,
    EdgeExplainer,
    EdgeType,
    ExplainedModel,
    Target,
    encoder_of,
    explained_inputs,
    model_device,
)


def _check_maskable(model: nn.Module) -> None:
    kind = encoder_of(model).kind
    if kind != "sage":
        raise UserError(
            f"edge explanations need per-edge-type message passing (HeteroConv); a {kind!r} encoder runs "
            "every relation through one homogeneous layer, so its edges cannot be masked per type yet"
        )


def _reset_masks(model: nn.Module) -> None:
    """Remove every edge mask from the model's message-passing layers.

    Why more than ``clear_masks``: once a ``Parameter`` mask was set (GNNExplainer does), ``_edge_mask``
    stays registered in the layer's ``_parameters``, and PyG's ``set_masks`` then wraps any later mask
    into a fresh ``Parameter`` -- cut off from Captum's inputs ("differentiated Tensor ... not used").
    """
    clear_masks(model)
    for module in model.modules():
        if isinstance(module, MessagePassing) and "_edge_mask" in module._parameters:
            del module._parameters["_edge_mask"]
            module._edge_mask = None


def _pyg_explainer(model: nn.Module, algorithm: torch.nn.Module, mode: str) -> Explainer:
    # 'model' explanations: explain what the model predicts (not a ground-truth label). One output column:
    # the logit of the explained MoA class / link. GNNExplainer treats it as binary classification (its
    # loss keeps the predicted side of 0); Captum only accepts probabilities for that mode, so IG
    # attributes the raw logit as a regression output instead (same gradients, no sigmoid squashing).
    return Explainer(
        model=model, algorithm=algorithm, explanation_type="model", edge_mask_type="object",
        node_mask_type=None, model_config=dict(mode=mode, task_level="node", return_type="raw"),
    )


def _masks(explanation: object, edge_types: list[EdgeType]) -> dict[EdgeType, Tensor]:
    out = {}
    for et in edge_types:
        try:
            out[et] = explanation[et]["edge_mask"]
        except KeyError:
            continue
    return out


def _explain_with_pyg(model: nn.Module, sub: CompSubgraph, target: Target, algorithm: nn.Module,
                      mode: str) -> dict[EdgeType, Tensor]:
    """Run a PyG explainer ``algorithm`` on the wrapped model over ``sub``; importances per edge type.

    Leftover masks are removed before and after: once GNNExplainer has set a Parameter mask, PyG wraps
    later masks into new Parameters and Captum then fails with "differentiated Tensor ... not used".
    """
    _check_maskable(model)
    wrapped = ExplainedModel(model, sub, target)
    explainer = _pyg_explainer(wrapped, algorithm, mode)
    x, ei = explained_inputs(sub, model_device(model))
    _reset_masks(wrapped)
    try:
        expl = explainer(x, ei, index=sub.compound)
    finally:
        _reset_masks(wrapped)
    return _masks(expl, list(ei))


class GNNExplainerMethod(EdgeExplainer):
    """PyG ``GNNExplainer`` with an object-level edge mask (``epochs`` optimisation steps, Adam ``lr``)."""

    name = "gnnexplainer"

    def __init__(self, epochs: int = 100, lr: float = 0.01, seed: int = 0) -> None:
        self.epochs, self.lr, self.seed = epochs, lr, seed

    def explain_sub(self, model: nn.Module, sub: CompSubgraph, target: Target) -> dict[EdgeType, Tensor]:
        torch.manual_seed(self.seed)  # the mask starts random: seeded for reproducible explanations
        algorithm = GNNExplainer(epochs=self.epochs, lr=self.lr)
        return _explain_with_pyg(model, sub, target, algorithm, "binary_classification")


class IntegratedGradientsMethod(EdgeExplainer):
    """Integrated gradients of the logit w.r.t. the edge mask, from all edges off to all on (Captum)."""

    name = "ig"

    def __init__(self, n_steps: int = 50) -> None:
        self.n_steps = n_steps

    def explain_sub(self, model: nn.Module, sub: CompSubgraph, target: Target) -> dict[EdgeType, Tensor]:
        algorithm = CaptumExplainer("IntegratedGradients", n_steps=self.n_steps)
        return _explain_with_pyg(model, sub, target, algorithm, "regression")


class SaliencyMethod(EdgeExplainer):
    """``|d logit / d m_e|`` at ``m = 1``: how fast the logit moves when one edge's message is scaled."""

    name = "saliency"

    def explain_sub(self, model: nn.Module, sub: CompSubgraph, target: Target) -> dict[EdgeType, Tensor]:
        _check_maskable(model)
        wrapped = ExplainedModel(model, sub, target)
        x, ei = explained_inputs(sub, model_device(model))
        masks = {et: torch.ones(e.size(1), device=e.device, requires_grad=True) for et, e in ei.items()}
        _reset_masks(wrapped)
        set_hetero_masks(wrapped, masks, ei, apply_sigmoid=False)
        try:
            out = wrapped(x, ei)[sub.compound, 0]
            grads = torch.autograd.grad(out, list(masks.values()), allow_unused=True)
        finally:
            _reset_masks(wrapped)
        return {et: (torch.zeros_like(m) if g is None else g) for (et, m), g in zip(masks.items(), grads,
                                                                                     strict=True)}


METHODS: dict[str, type[EdgeExplainer]] = {
    GNNExplainerMethod.name: GNNExplainerMethod,
    IntegratedGradientsMethod.name: IntegratedGradientsMethod,
    SaliencyMethod.name: SaliencyMethod,
}


def make_explainer(name: str, **kwargs: object) -> EdgeExplainer:
    """An explainer by CLI name (``gnnexplainer`` | ``ig`` | ``saliency``); ``kwargs`` go to its class."""
    if name not in METHODS:
        raise UserError(f"unknown explanation method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](**kwargs)  # type: ignore[arg-type]
