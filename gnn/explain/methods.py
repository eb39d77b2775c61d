"""Three edge explainers behind :class:`~moakg.gnn.explain.base.EdgeExplainer`.

- :class:`GNNExplainerMethod`: PyG's ``GNNExplainer`` (Ying et al. 2019), a soft edge mask trained to keep
  the prediction with few edges; importances are the mask's sigmoid values in (0, 1).
- :class:`IntegratedGradientsMethod`: PyG's ``CaptumExplainer('IntegratedGradients')`` on an all-ones edge
  mask (baseline: all edges off); importances are the positive attributions (needs ``captum``).
- :class:`SaliencyMethod`: ``d logit / d mask`` at the all-ones mask: one forward and one backward pass,
  the cheap first look.

All three explain the positive side of the prediction (the MoA class, the link): GNNExplainer is trained
against the target "positive" (PyG's phenomenon mode), so a compound predicted at p < 0.5 still gets the
edges that argue FOR the class; the gradient methods keep the attributions that raise the logit. Masks
reach every encoder (``sage``, ``rgcn``, ``hgt``) and the similarity votes through
:mod:`moakg.gnn.explain.masking`.
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
    explained_inputs,
    model_device,
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
    # One output column: the logit of the explained MoA class / link. GNNExplainer (binary
    # classification) explains the 'phenomenon' "this class is positive": in 'model' mode it would keep
    # the predicted side of 0, i.e. explain the NEGATIVE class whenever p < 0.5. Captum only accepts
    # probabilities for binary mode, so IG attributes the raw logit as a regression output ('model' mode:
    # same gradients, no sigmoid squashing).
    explanation_type = "phenomenon" if mode == "binary_classification" else "model"
    return Explainer(
        model=model, algorithm=algorithm, explanation_type=explanation_type, edge_mask_type="object",
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
    wrapped = ExplainedModel(model, sub, target)
    explainer = _pyg_explainer(wrapped, algorithm, mode)
    x, ei = explained_inputs(sub, model_device(model))
    kw = {}
    if explainer.explanation_type.value == "phenomenon":  # the positive class of every row
        kw["target"] = torch.ones(x["Compound"].size(0), 1, device=x["Compound"].device)
    _reset_masks(wrapped)
    try:
        expl = explainer(x, ei, index=sub.compound, **kw)
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
    """``d logit / d m_e`` at ``m = 1``: how fast the logit rises when one edge's message is scaled up."""

    name = "saliency"

    def explain_sub(self, model: nn.Module, sub: CompSubgraph, target: Target) -> dict[EdgeType, Tensor]:
        _, grads = mask_gradients(model, sub, target)
        return {et: (torch.zeros(sub.graph[et].edge_index.size(1)) if g is None else g)
                for et, g in grads.items()}


def mask_gradients(model: nn.Module, sub: CompSubgraph, target: Target
                   ) -> tuple[Tensor, dict[EdgeType, Tensor | None]]:
    """``(logit, {edge type: d logit / d mask})`` at the all-ones edge mask (the trained model), through
    PyG's ``set_hetero_masks``: the gradient is None for an edge type no layer reads."""
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
    return out.detach(), dict(zip(masks, grads, strict=True))


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
