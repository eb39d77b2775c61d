"""Time of the target votes' validation grid (:func:`moakg.gnn.vote_tuning.tune_votes`) with the vote
layer's ``fixed_inputs()`` cache against the same grid recomputing every similarity and link-vote table
at each point (the way it ran before the cache), measured in the same run on the same task.

The task is the README's: the target task on the graph ``make demo`` loads (the local Neo4j, or
``NEO4J_URI``), Murcko scaffold split, phenotype setting, seeds ``--seeds``; the model a fresh ``sage``
link predictor with the MoA-mediated votes, as ``moakg train --task target`` builds it. Both modes run
the grid over ``--top-ks`` (default a part of the real grid, so that the uncached mode stays within
minutes: it takes about 20 times as long), and the table says whether they chose the same grid points
with the same validation MRR (they must: the cache changes how, not what).

    ~/.venvs/moakg/bin/python benchmarks/bench_vote_grid.py [--seeds 0 1] [--top-ks 0 2 4]
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

from moakg.gnn import tasks
from moakg.gnn.config import TrainConfig
from moakg.gnn.fit import seed_all
from moakg.gnn.train import build_model, model_graph
from moakg.gnn.train_target import TargetTrainer
from moakg.kg.connection import Neo4jConnection
from moakg.kg.export import export_heterodata
from moakg.kg.lookups import compound_smiles


def grid_run(task: tasks.TargetTask, seed: int, top_ks: tuple[int, ...],
             cached: bool) -> tuple[float, dict, float]:
    """``(seconds, chosen points, validation MRR)`` of the trainer's grid search (``_tune_votes``, over
    ``top_ks``) on a fresh model of ``task``."""
    cfg = TrainConfig(task="target", hidden=64, lr=1e-3, tune_votes=False)
    gen = seed_all(seed)
    graph = model_graph(task, cfg)
    model = build_model(task, graph, cfg, "sage")
    trainer = TargetTrainer(task, graph, model, cfg, seed, False, torch.device("cpu"), gen)
    if not cached:
        model.votes.fixed_inputs = nullcontext  # instance attribute: this model's grid recomputes everything
    start = time.perf_counter()
    chosen = trainer._tune_votes(top_ks)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        val = trainer.evaluate("val", trainer.predict(task.split.val), ranking_only=True)["mrr"]
    return seconds, chosen, val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--top-ks", type=int, nargs="+", default=[0, 2, 4],
                    help="neighbour counts the grid tries (the real grid: 0 and 1 to 10)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with Neo4jConnection() as conn:
        data, maps = export_heterodata(conn, progress=False)
        smiles = compound_smiles(conn, maps.keys["Compound"])
    rows = []
    for seed in args.seeds:
        task = tasks.make_target_task(data, maps, "scaffold", seed, "phenotype", smiles)
        base_s, base_choice, base_val = grid_run(task, seed, tuple(args.top_ks), cached=False)
        new_s, new_choice, new_val = grid_run(task, seed, tuple(args.top_ks), cached=True)
        same = base_choice == new_choice and abs(base_val - new_val) < 1e-9
        rows.append((seed, base_s, new_s, base_s / new_s, new_val, "yes" if same else "NO"))
    print(f"target vote grid, scaffold split, phenotype; top_k in {args.top_ks}; 2 threads")
    print(f"{'seed':>4}  {'recomputed s':>12}  {'cached s':>9}  {'speed-up':>8}  {'val MRR':>8}  same choice")
    for seed, base_s, new_s, ratio, val, same in rows:
        print(f"{seed:>4}  {base_s:>12.1f}  {new_s:>9.1f}  {ratio:>7.1f}x  {val:>8.4f}  {same}")


if __name__ == "__main__":
    main()
