"""Level 3/4 plates to one signature per compound x dose x time x cell: robust z-scores and MODZ.

1. **Robust z-scores** (level 3 only; level 4 is already z-scored): per plate (``det_plate``) and gene,
   ``z = (x - median) / (max(MAD, mad_floor) * 1.4826)`` with the median and MAD taken over the plate's
   vehicle wells (``pert_type = ctl_vehicle``, i.e. DMSO). The MAD floor (0.1 log2 units, as in cmapPy's
   ``robust_zscore``) stops near-constant genes from blowing up. A plate with fewer than
   ``min_vehicle_wells`` vehicle wells is z-scored against all its wells instead (CMap's "population"
   reference) and counted in the stats.
2. **MODZ consensus** (CMap's moderated z-score): the replicates of one compound x dose x time x cell
   within one brew (the replicate plates ``X1``, ``X2``, ... of a batch) are weighted by how well each
   agrees with the others: ``w_i = mean_j max(spearman(z_i, z_j), 0)`` over the other replicates,
   clipped below at 0.01 and normalised to sum 1; the signature is ``sum_i w_i z_i``. Quality:
   ``n_replicates``, ``cc_mean`` (mean pairwise Spearman correlation) and ``cc_q75`` (its 75th
   percentile, CMap's ``distil_cc_q75``); a single replicate gives ``n_replicates = 1`` and null
   ``cc_mean`` / ``cc_q75``.

Signature ids: ``<brew prefix>:<pert_id>:<dose>``, CMap's own style (``LJP005_A375_24H:BRD-K...:10``).
The brew prefix is ``brew_prefix`` if present, else the plate name up to its replicate tag
(``LJP005_A375_24H_X1_B19`` -> ``LJP005_A375_24H``), else ``<cell>_<time><unit>``; the dose is the
number as written in the input (``%g``) or ``-666`` when missing. Should two groups still share an id
(e.g. two times in one brew prefix), ``@<time><unit>`` is appended to both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moakg.ingest.l1000_io import L1000Matrix

MAD_SCALE = 1.4826
DEFAULT_MAD_FLOOR = 0.1
MIN_WEIGHT = 0.01
VEHICLE = "ctl_vehicle"
_REPLICATE_TAG = re.compile(r"_X\d+(_.*)?$")


def robust_z(values: np.ndarray, reference: np.ndarray, mad_floor: float = DEFAULT_MAD_FLOOR) -> np.ndarray:
    """Robust z-scores of ``values`` (wells x genes) against ``reference`` wells (median, floored MAD)."""
    med = np.median(reference, axis=0)
    mad = np.median(np.abs(reference - med), axis=0)
    return ((values - med) / (np.maximum(mad, mad_floor) * MAD_SCALE)).astype(np.float32)


def spearman(z: np.ndarray) -> np.ndarray:
    """Pairwise Spearman correlations between the rows of ``z`` (ties get average ranks)."""
    ranks = pd.DataFrame(z).rank(axis=1).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(ranks)
    return np.nan_to_num(np.atleast_2d(c), nan=0.0)  # a constant profile correlates with nothing


@dataclass
class Consensus:
    z: np.ndarray
    weights: np.ndarray
    n_replicates: int
    cc_mean: float | None
    cc_q75: float | None


def modz(z: np.ndarray, corr_cols: np.ndarray | None = None, min_weight: float = MIN_WEIGHT) -> Consensus:
    """MODZ consensus of replicate profiles ``z`` (replicates x genes); correlations on ``corr_cols``."""
    n = len(z)
    if n == 1:
        return Consensus(z[0].astype(np.float32), np.ones(1), 1, None, None)
    c = spearman(z if corr_cols is None else z[:, corr_cols])
    off = ~np.eye(n, dtype=bool)
    raw = np.where(off, np.clip(c, 0.0, None), 0.0).sum(axis=1) / (n - 1)
    w = np.clip(raw, min_weight, None)
    w = w / w.sum()
    upper = c[np.triu_indices(n, k=1)]
    return Consensus((w @ z).astype(np.float32), w, n, float(upper.mean()), float(np.quantile(upper, 0.75)))


def brew_prefix(sig: pd.DataFrame) -> pd.Series:
    """Batch ('brew') of each well: brew_prefix, else the plate without its replicate tag, else cell_time."""
    plate = sig.get("det_plate", pd.Series(None, index=sig.index)).fillna(sig.get("rna_plate"))
    from_plate = plate.map(lambda p: None if p is None or pd.isna(p) else _REPLICATE_TAG.sub("", p))
    fallback = [f"{c}_{_fmt(t)}{u or ''}" for c, t, u in zip(sig["cell_id"], sig["time"], sig["time_unit"],
                                                             strict=True)]
    out = sig.get("brew_prefix", pd.Series(None, index=sig.index)).astype(object)
    out = out.where(out.notna(), from_plate)
    return out.where(out.notna(), pd.Series(fallback, index=sig.index))


def _fmt(x: float | None) -> str:
    return "-666" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:g}"


def _dose_label(raw: object, dose: float | None) -> str:
    try:
        return _fmt(float(raw))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _fmt(dose)


GROUP_KEYS = ["brew", "pert_id", "dose", "dose_unit", "time", "time_unit", "cell_id"]


@dataclass
class CollapseStats:
    plates: int = 0
    vehicle_wells: int = 0
    plates_population_reference: int = 0
    replicate_wells: int = 0
    single_replicate_signatures: int = 0
    sig_id_collisions: int = 0


def collapse(
    matrix: L1000Matrix, sig: pd.DataFrame, treat: np.ndarray, row_pos: np.ndarray, level: int,
    corr_cols: np.ndarray | None = None, mad_floor: float = DEFAULT_MAD_FLOOR, min_vehicle_wells: int = 3,
    stats: CollapseStats | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Collapse wells to signatures, one brew at a time (bounded memory).

    ``sig`` is the parsed column metadata (index = well ids, in matrix column order), ``treat`` a boolean
    mask of the wells to collapse (filters applied); vehicle wells are always used as the reference.
    Yields ``(signatures, z)`` per brew: a frame with sig_id, the group keys, n_replicates, cc_mean,
    cc_q75 and ``replicate_ids``, and the consensus z-scores (signatures x ``row_pos`` genes).
    """
    stats = stats if stats is not None else CollapseStats()
    wells = sig.copy()
    wells["pos"] = np.arange(len(sig))
    wells["brew"] = brew_prefix(sig)
    wells["plate"] = wells["det_plate"].fillna(wells["rna_plate"]).fillna(wells["brew"])
    wells["vehicle"] = (wells["pert_type"] == VEHICLE).to_numpy()
    wells["treat"] = treat & ~wells["vehicle"].to_numpy()
    for brew, bw in wells.groupby("brew", sort=True):
        if not bw["treat"].any():
            continue
        z_by_pos: dict[int, np.ndarray] = {}
        for _plate, pw in bw.groupby("plate", sort=True):
            stats.plates += 1
            pos = pw["pos"].to_numpy()
            values = matrix.read(pos, row_pos)
            veh = pw["vehicle"].to_numpy()
            stats.vehicle_wells += int(veh.sum())
            if level == 3:
                if veh.sum() < min_vehicle_wells:
                    stats.plates_population_reference += 1
                    values = robust_z(values, values, mad_floor)
                else:
                    values = robust_z(values, values[veh], mad_floor)
            for p, t, v in zip(pos, pw["treat"].to_numpy(), values, strict=True):
                if t:
                    z_by_pos[int(p)] = v
        tw = bw[bw["treat"]]
        rows, zs = [], []
        for key, gw in tw.groupby(GROUP_KEYS[1:], sort=True, dropna=False):
            reps = np.stack([z_by_pos[int(p)] for p in gw["pos"]])
            cons = modz(reps, corr_cols)
            first = gw.iloc[0]
            stats.replicate_wells += len(gw)
            stats.single_replicate_signatures += int(cons.n_replicates == 1)
            rows.append({
                **dict(zip(GROUP_KEYS, (brew, *key), strict=True)),
                "sig_id": f"{brew}:{first['pert_id']}:{_dose_label(first['dose_raw'], first['dose'])}",
                "pert_iname": first["pert_iname"], "pert_type": first["pert_type"],
                "n_replicates": cons.n_replicates, "cc_mean": cons.cc_mean, "cc_q75": cons.cc_q75,
                "replicate_ids": list(gw.index),
            })
            zs.append(cons.z)
        out = pd.DataFrame(rows)
        dup = out["sig_id"].duplicated(keep=False)
        if dup.any():
            stats.sig_id_collisions += int(dup.sum())
            clash = out.loc[dup, ["sig_id", "time", "time_unit"]].itertuples(index=False)
            out.loc[dup, "sig_id"] = [f"{s}@{_fmt(t)}{u or ''}" for s, t, u in clash]
        yield out, np.stack(zs)
