"""The one training configuration: every choice of ``moakg train``, the Python API, ``moakg pipeline`` and a
stored ``(:ModelRun)``, each with its default and its help text in one place.

    cfg = TrainConfig(task="moa", models=("sage", "hgt"), seeds=(0, 1), epochs=50)
    cfg = TrainConfig.from_toml("train.toml", overrides={"epochs": 10})   # flags over the file
    TrainConfig.from_dict(cfg.to_dict()) == cfg                          # what a ModelRun stores

The ``moakg train --help`` texts are the fields' ``help`` metadata (:func:`option_help`), and a TOML file
(``--config train.toml``) uses the field names as keys, so the command line, files and code cannot drift.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from moakg.errors import UserError
from moakg.gnn.models import KINDS

TASKS = ("moa", "target")
SPLITS = ("random", "scaffold", "cluster", "cell_line")
#: the compound splits that group compounds by structure, so need their SMILES
STRUCTURE_SPLITS = ("scaffold", "cluster")
SETTINGS = ("phenotype", "known_targets")
NOISE_MODES = ("uniform", "structured")
LOSSES = ("bce", "weighted", "gce", "small_loss")
TARGET_LOSSES = ("softmax", "bce")
#: above this many nodes + message edges the graph is trained in mini-batches when ``mini_batch`` is None
DEFAULT_NODE_BUDGET = 5_000_000


def _opt(default: Any, help: str, flag: str | None = None) -> Any:
    """A field with its help text (and its command-line flag where that is not ``--field-name``)."""
    meta = {"help": help, **({"flag": flag} if flag else {})}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training experiment decides: task, models, split, seeds, model shape, optimisation,
    batching and output. Field docs are in each field's ``help`` metadata (``moakg train --help``)."""

    # --- the experiment
    task: str = _opt("moa", "moa (multi-label MoA of compounds) or target (Compound->Gene links).")
    models: tuple[str, ...] = _opt(("sage",), "GNN encoder: sage, rgcn or hgt; repeat for several.",
                                   "--model")
    # scaffold by default: a random split puts close analogues of nearly every test compound in training,
    # so it measures recall of near-duplicates rather than prediction for a new chemotype.
    split: str = _opt("scaffold", "random, scaffold (Murcko, test scaffolds unseen), cluster (Butina "
                      "clusters of Morgan fingerprints, test clusters unseen) or cell_line (MoA only).")
    cluster_threshold: float = _opt(0.6, "cluster split: Butina distance threshold (1 - Tanimoto) in [0, 1); "
                                    "compounds within it of a centroid join its cluster (0.6: Tanimoto >= "
                                    "0.4).")
    settings: tuple[str, ...] = _opt(
        SETTINGS, "phenotype (held-out compounds lose their targets), known_targets, or both; repeat or "
        "give 'both' to run them side by side.", "--setting")
    seeds: tuple[int, ...] = _opt((0, 1, 2), "Seeds, one split and one model per seed; repeat: --seeds 0 "
                                  "--seeds 1.")
    min_per_class: int = _opt(5, "MoA classes need this many labelled compounds.")
    label_noise: tuple[float, ...] = _opt(
        (), "Training-label flip rate in [0, 1): BCE vs GCE vs small-loss under label noise (GCE's q and "
        "the forget rate chosen on validation), test labels clean (MoA only); repeat for several rates.")
    noise_modes: tuple[str, ...] = _opt(NOISE_MODES, "Label-noise kind: uniform or structured (a class "
                                        "sharing a target); repeat.", "--noise-mode")
    noisy_validation: bool = _opt(False, "Label-noise experiment: flip the validation labels too (same "
                                  "rate and kind), so early stopping and the choice of q / forget rate see "
                                  "noisy labels as a real user would; test labels stay clean.",
                                  "--noisy-validation/--clean-validation")
    # --- the model
    hidden: int = _opt(128, "Hidden width.")
    layers: int = _opt(2, "Message-passing layers.")
    dropout: float = _opt(0.2, "Dropout after each layer and before the MoA head.")
    heads: int = _opt(2, "HGT attention heads (must divide --hidden).")
    # 256: the MLP baselines' width; chosen on validation (demo, 5 seeds: 0.613 against 0.585 without)
    feature_mlp: int = _opt(256, "MoA: hidden width of a branch that reads the compound's own fingerprint "
                            "and signature (an MLP, no messages), fitted first by the MLP baselines' "
                            "recipe, with the votes tuned on top of it: the fp+signature MLP baseline as a "
                            "special case of the GNN; 0 = no branch.")
    # --- optimisation
    epochs: int = _opt(200, "Maximum epochs (early stopping on the validation metric).")
    patience: int = _opt(20, "Epochs without validation improvement before stopping.")
    lr: float = _opt(1e-3, "Adam learning rate.")
    weight_decay: float = _opt(0.0, "Adam weight decay.")
    loss: str = _opt("bce", "MoA loss: bce, weighted (class-weighted BCE), gce (generalized cross-entropy) "
                     "or small_loss (each step trains on the rows with the smallest loss only; "
                     "co-teaching's selection).")
    # q = 0.7 (the paper's value for single-label softmax) leaves the rare positives of 100+ one-vs-rest
    # MoA columns almost no gradient (p^q at p ~ 0.01). 0.3 is only the default of a single run: the
    # label-noise experiment (--label-noise) picks q from a grid on validation data (gnn/run.py).
    gce_q: float = _opt(0.3, "GCE exponent q in (0, 1]: 0 -> BCE, 1 -> MAE (robust, slow to fit rare "
                        "classes).")
    forget_rate: float = _opt(0.2, "small_loss: share of each step's rows with the largest loss left out, in "
                              "[0, 1) (reached after --forget-ramp epochs; the label-noise experiment "
                              "picks it on validation).")
    forget_ramp: int = _opt(10, "small_loss: epochs over which the forget rate ramps linearly from 0 to "
                            "--forget-rate (0: from the start).")
    quality_weights: bool = _opt(False, "Weight the MoA loss by signature quality (cc_mean, replicates, "
                                 "tas).", "--quality-weights/--no-quality-weights")
    # --- batching
    mini_batch: bool | None = _opt(
        False, "Sampled-neighbourhood mini-batches instead of full batch (Python API: None chooses by "
        "node_budget).", "--mini-batch/--full-batch")
    batch_size: int = _opt(256, "Seed nodes (or supervision edges) per mini-batch.")
    num_neighbors: tuple[int, ...] = _opt((15, 10), "Neighbours sampled per node, edge type and hop in "
                                          "mini-batches; repeat, one per hop.")
    node_budget: int = _opt(DEFAULT_NODE_BUDGET, "With mini_batch None: nodes + message edges above which "
                            "training is mini-batch.")
    neg_ratio: int = _opt(5, "Target task: random negative genes per positive pair (bce; softmax in "
                          "mini-batches).")
    target_loss: str = _opt("softmax", "Target task: softmax (each hidden target against every gene, a "
                            "ranking loss like the MRR it is judged by; against the sampled negatives in "
                            "mini-batches) or bce (each pair against random negatives).")
    supervision_frac: float = _opt(0.3, "Target task: share of training pairs hidden from message passing "
                                   "each epoch and predicted.")
    label_trick: bool = _opt(True, "MoA: training compounds' labels as masked input features, and votes of "
                             "the known neighbours' labels over SIMILAR_STRUCTURE / SIMILAR_SIGNATURE "
                             "edges; targets: votes of those neighbours' TARGETS edges (the tuned kNN as "
                             "a special case of the model).",
                             "--label-trick/--no-label-trick")
    moa_votes: bool = _opt(True, "Targets, with --label-trick: also vote through the MoA layer (the "
                           "structurally similar compounds' MoAs vote with the targets of the compounds "
                           "sharing them); compounds outside validation and test bring their MoAs as "
                           "input, held-out compounds never.", "--moa-votes/--no-moa-votes")
    tune_votes: bool = _opt(True, "Start the votes' gates, similarity sharpness and prior pseudo-count at "
                            "the best point of a small grid on validation data (the kNN baselines' tuning "
                            "budget).", "--tune-votes/--no-tune-votes")
    label_known_frac: float = _opt(0.5, "Label trick: share of training compounds whose labels are an input "
                                   "each epoch (the loss is on the rest).")
    target_edge_dropout: float = _opt(1.0, "MoA, phenotype setting: share of the supervised training "
                                      "compounds whose TARGETS edges are hidden each epoch (held-out "
                                      "compounds have none; 1 = all, as they; 0 = keep them).")
    device: str = _opt("cpu", "cpu, cuda, cuda:1, ...")
    # --- output
    top_k: int = _opt(10, "Predictions written per test compound.")
    baselines: bool = _opt(True, "Train and score every baseline on the same splits.",
                           "--baselines/--no-baselines")
    baseline_epochs: int = _opt(200, "Epochs of the MLP / logistic-regression baselines.")
    out: Path | None = _opt(None, "Runs directory (default $MOAKG_HOME/runs).")
    write: bool = _opt(True, "Write the ModelRun and its predictions to Neo4j.", "--write/--no-write")

    # ------------------------------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`~moakg.errors.UserError` with one clear line for a bad value or combination."""
        if self.target_loss not in TARGET_LOSSES:
            raise UserError(f"--target-loss must be one of {', '.join(TARGET_LOSSES)}, "
                            f"not {self.target_loss!r}")
        if self.task not in TASKS:
            raise UserError(f"--task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if not self.models:
            raise UserError("give at least one --model")
        bad_kind = [k for k in self.models if k not in KINDS]
        if bad_kind:
            raise UserError(f"unknown model {bad_kind[0]!r}; choose from {', '.join(KINDS)}")
        if self.split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if self.split == "cell_line" and self.task != "moa":
            raise UserError("--split cell_line is a signature-level MoA split; use it with --task moa")
        if not 0 <= self.cluster_threshold < 1:
            raise UserError(f"--cluster-threshold is a distance 1 - Tanimoto in [0, 1), got "
                            f"{self.cluster_threshold}")
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise UserError(f"--setting must be phenotype, known_targets or both, not {bad or 'nothing'}")
        if not self.seeds:
            raise UserError("give at least one --seeds value")
        if self.loss not in LOSSES:
            raise UserError(f"--loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if not 0 <= self.forget_rate < 1:
            raise UserError(f"--forget-rate is the share of rows left out, in [0, 1), got {self.forget_rate}")
        if self.forget_ramp < 0:
            raise UserError(f"--forget-ramp must be >= 0 epochs, got {self.forget_ramp}")
        if self.noisy_validation and not self.label_noise:
            raise UserError("--noisy-validation flips validation labels in the label-noise experiment; give "
                            "--label-noise rates too")
        if any(not 0 <= p < 1 for p in self.label_noise):
            raise UserError(f"--label-noise rates must be in [0, 1), got {list(self.label_noise)}")
        if self.label_noise and self.task != "moa":
            raise UserError("--label-noise flips MoA labels; use it with --task moa")
        bad_mode = [m for m in self.noise_modes if m not in NOISE_MODES]
        if bad_mode:
            raise UserError(f"--noise-mode must be uniform or structured, not {bad_mode[0]!r}")
        if self.epochs < 1 or self.hidden < 1 or self.layers < 1 or self.top_k < 0:
            raise UserError("--epochs, --hidden and --layers must be >= 1 and --top-k >= 0")
        if self.feature_mlp < 0:
            raise UserError(f"--feature-mlp is a hidden width >= 0 (0 = no branch), got {self.feature_mlp}")
        if "hgt" in self.models and (self.heads < 1 or self.hidden % self.heads):
            raise UserError(f"--heads {self.heads} must be >= 1 and divide --hidden {self.hidden} (HGT)")
        if not 0 <= self.dropout < 1 or not 0 < self.gce_q <= 1 or not 0 < self.supervision_frac <= 1:
            raise UserError("--dropout must be in [0, 1), --gce-q and --supervision-frac in (0, 1]")
        if min(self.patience, self.batch_size, self.neg_ratio, self.baseline_epochs) < 1 or self.lr <= 0:
            raise UserError("--patience, --batch-size, --neg-ratio and --baseline-epochs must be >= 1, "
                            "--lr > 0")
        if not 0 <= self.target_edge_dropout <= 1:
            raise UserError(f"--target-edge-dropout must be in [0, 1], got {self.target_edge_dropout}")
        if not 0 < self.label_known_frac < 1:
            raise UserError(f"--label-known-frac must be in (0, 1), got {self.label_known_frac}")
        if not self.num_neighbors or min(self.num_neighbors) < 1:
            raise UserError(f"--num-neighbors needs one value >= 1 per hop, got {list(self.num_neighbors)}")

    # ------------------------------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values by field name (tuples as lists, paths as strings)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """The config of ``values`` (field name -> value; missing fields keep their defaults).

        Strict: an unknown key or a value of the wrong type raises :class:`~moakg.errors.UserError`
        naming ``source`` (a file, a ModelRun) and the key.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        hints = get_type_hints(cls)
        return cls(**{k: _coerce(k, hints[k], v, source) for k, v in values.items()})

    @classmethod
    def from_toml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
        """Fields from the top level of the TOML file ``path``, then ``overrides`` (e.g. command-line flags)
        on top."""
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path}: not valid TOML ({exc})") from None
        cfg = cls.from_dict(values, source=str(path))
        return cfg.updated(overrides or {})

    def updated(self, values: Mapping[str, Any], source: str = "options") -> TrainConfig:
        """A copy with ``values`` (field name -> value, converted and checked as in :meth:`from_dict`)."""
        return TrainConfig.from_dict({**self.to_dict(), **values}, source)


# ---------------------------------------------------------------------------------------------- helpers
def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _coerce(name: str, hint: Any, value: Any, source: str) -> Any:
    """``value`` as the field's type ``hint`` (lists -> tuples, str -> Path, int -> float), else UserError."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(name, inner, value, source)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{source}: {name} must be a list, got {value!r}")
        return tuple(_coerce(name, args[0], v, source) for v in value)
    if hint is Path and isinstance(value, (str, Path)):
        return Path(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    what = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}
    raise UserError(f"{source}: {name} must be {what.get(hint, hint)}, got {value!r}")


def option_help(name: str) -> str:
    """The ``--help`` text of field ``name``: its help metadata and its default."""
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    default = f.default
    if default is None:  # the help text says what None means
        return f.metadata["help"]
    if isinstance(default, bool):
        flags = f.metadata.get("flag", "")
        shown = flags.split("/")[0 if default else 1] if "/" in flags else str(default).lower()
    elif isinstance(default, tuple):
        shown = " ".join(map(str, default)) or "none"
    else:
        shown = str(default)
    # Parentheses, not click's "[default: ...]": typer's rich help would read brackets as markup.
    return f"{f.metadata['help']} (default: {shown})"


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]
