"""Start the neighbour votes where the tuned kNN baselines start: a small grid on validation data.

The votes (:class:`~moakg.gnn.similarity_vote.LabelVotes` for MoA,
:class:`~moakg.gnn.link_vote.LinkVotes` for targets) make the nearest-neighbour baselines a special case
of the model, but only at the right similarity sharpness, prior pseudo-count and gate; gradient steps
move these few parameters too slowly to get there in a run (on a synthetic graph whose targets follow
structure, 40 epochs left them where they started and the model 0.06 MRR below the tuned kNN). The kNN
baselines get a grid over k and shrinkage on validation; the votes get the same budget here: before
training, each relation's (gate, beta, kappa) is chosen on the validation metric of the votes alone,
relation by relation (structure first, then the signature vote added on top of it). Target votes also
choose how many neighbours vote (``TOP_KS``): the tuned target kNN keeps few (k = 2-4 on the demo's
validation splits), a hard cut that a smooth similarity weighting over the graph's ten nearest did not
reach (validation MRR 0.209 and 0.276 against the kNN's 0.216 and 0.283 on two demo splits). Test data are
never read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import product

import torch
from torch import nn

#: the grids (beta: how much more a closer neighbour counts; kappa: the prior's pseudo-count; gate: the
#: weight of the relation's log-odds)
BETAS: tuple[float, ...] = (1.0, 3.0, 10.0)
KAPPAS: tuple[float, ...] = (0.1, 0.5, 2.0)
GATES: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
#: neighbours that vote (0: every neighbour the graph gives), the target votes' grid: every k in 1..20,
#: the kNN baselines' budget (the graph's SIMILAR_STRUCTURE edges give a compound its 20 nearest, see
#: :class:`~moakg.derive.run.SimilarityParams`). Why every k rather than (0, 2, 4, 8) as before: on the
#: demo's five scaffold splits the coarser grid left the votes alone at mean validation MRR 0.242 against
#: 0.253 with every k in 1..10 (the structure vote 0.227 against 0.230, the tuned kNN 0.235).
TOP_KS: tuple[int, ...] = (0, *range(1, 21))
#: one relation's choice: (gate, beta, kappa, top_k)
VotePoint = tuple[float, float, float, int]


def _set(votes: nn.Module, r: int, rel: str, gate: float, beta: float, kappa: float, top_k: int) -> None:
    with torch.no_grad():
        votes.gates[r].fill_(gate)  # a row of per-class gates (MoA) or one scalar (targets)
    votes.votes[rel].set_params(beta, kappa, top_k)


def tune_votes(votes: nn.Module, val_score: Callable[[], float], first_may_close: bool = False,
               top_ks: tuple[int, ...] = (0,)) -> dict[str, VotePoint]:
    """Set each relation's (gate, beta, kappa, top_k) of ``votes`` to the grid point with the best
    ``val_score()`` (the validation metric of the model with the votes, higher is better), relation by
    relation in order, later relations on top of the earlier ones' choices; a relation whose best gate
    is 0 stays closed. The first relation stays open (it is the kNN itself) unless ``first_may_close``
    (the model has another predictor to fall back on: the MoA model's own-feature branch). ``top_ks``:
    the neighbour counts tried (default: every neighbour only). ``val_score`` must feed the votes the same
    inputs on every call: similarities (and link-vote tables) are computed once per grid point
    (``votes.fixed_inputs()``). Returns ``{relation: point}``."""
    with votes.fixed_inputs():  # the grid moves parameters only: similarities (and tables) are computed once
        return _tune(votes, val_score, first_may_close, top_ks)


def _tune(votes: nn.Module, val_score: Callable[[], float], first_may_close: bool,
          top_ks: tuple[int, ...]) -> dict[str, VotePoint]:
    chosen: dict[str, VotePoint] = {}
    for r, rel in enumerate(votes.votes):
        gates = GATES if r or first_may_close else tuple(g for g in GATES if g > 0)
        best, best_point = -math.inf, (0.0, BETAS[0], KAPPAS[0], top_ks[0])
        for gate, beta, kappa, top_k in product(gates, BETAS, KAPPAS, top_ks):
            if gate == 0 and (beta, kappa, top_k) != (BETAS[0], KAPPAS[0], top_ks[0]):
                continue  # a closed gate: beta, kappa and top_k do not matter
            _set(votes, r, rel, gate, beta, kappa, top_k)
            score = val_score()
            if score > best + 1e-9:
                best, best_point = score, (gate, beta, kappa, top_k)
        _set(votes, r, rel, *best_point)
        chosen[rel] = best_point
    return chosen
