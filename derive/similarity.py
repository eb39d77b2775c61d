"""Similarity computations, by blocks of rows: never more than one ``block x n`` score matrix in memory.

Each scorer fills a ``block x n_columns`` float32 tensor for rows ``[start, stop)``; :func:`blocked_topk`
keeps, per row, the ``k`` columns with the highest score (or the highest ``|score|`` when ``signed``)
at or above ``min_score`` (torch.topk), so peak memory is one block plus the kept entries.

- :func:`tanimoto_scorer`: Tanimoto on Morgan bit vectors as a matrix product of 0/1 float32 rows
  (``|a & b| = a . b``; integer counts below 2^24 are exact in float32), ``|a & b| / (|a| + |b| - |a & b|)``.
  The same numbers as RDKit's ``BulkTanimotoSimilarity`` (tested), but one BLAS call per block instead
  of one Python list per compound (see benchmarks/bench_similarity.py).
- :func:`spearman_scorer`: Spearman correlation of consensus landmark z-vectors: rows ranked (ties
  averaged), centred and scaled to unit norm once, then one matrix product per block.
- :func:`connectivity_scorer`: compound vs genetic perturbation (overexpression) signature: the cosine
  between the compound's consensus z and the perturbation's signed z over the genes that signature
  reports (``sum z_c z_p / (||z_c|| ||z_p||)`` on those genes only; the others are unknown, not zero).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.stats import rankdata

DEFAULT_BLOCK = 2048
Scorer = Callable[[int, int], torch.Tensor]


def blocked_topk(
    scorer: Scorer, n_rows: int, n_cols: int, k: int, min_score: float, block: int = DEFAULT_BLOCK,
    signed: bool = False, exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the top-``k`` columns by score (by ``|score|`` when ``signed``) with score (``|score|``)
    ``>= min_score``; returns ``(rows, cols, scores)`` int64 / int64 / float32 arrays of the kept entries.

    ``exclude_self`` drops the diagonal (row ``i`` = column ``i``: a compound against itself). NaN scores
    (undefined) are never kept.
    """
    if k < 1 or block < 1:
        raise ValueError("k and block must be >= 1")
    out_r, out_c, out_s = [], [], []
    kk = min(k, n_cols)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        s = scorer(start, stop)
        key = s.abs() if signed else s.clone()  # one copy: s is kept for the signed values
        key.nan_to_num_(nan=-torch.inf)
        if exclude_self:
            i = torch.arange(stop - start, device=s.device)
            key[i, i + start] = -torch.inf
        if kk == 0:
            continue
        vals, cols = torch.topk(key, kk, dim=1)
        keep = vals >= min_score
        rows = torch.arange(start, stop, device=s.device)[:, None].expand_as(cols)
        out_r.append(rows[keep].cpu().numpy())
        out_c.append(cols[keep].cpu().numpy())
        out_s.append(s.gather(1, cols)[keep].float().cpu().numpy())
        del s, key
    if not out_r:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate(out_r).astype(np.int64), np.concatenate(out_c).astype(np.int64),
            np.concatenate(out_s).astype(np.float32))


def unordered_pairs(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Top-k entries of a symmetric score as unordered pairs ``(a < b)``, each once: a pair is kept when
    either end has the other among its top-k. Returns ``(a, b, score)`` sorted by ``(a, b)``."""
    a, b = np.minimum(rows, cols), np.maximum(rows, cols)
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    code = a * n + b
    _, first = np.unique(code, return_index=True)
    return a[first], b[first], scores[first]


# ----------------------------------------------------------------------------------- scorers


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def tanimoto_scorer(bits: np.ndarray | torch.Tensor, device: str | None = None) -> Scorer:
    """Tanimoto of rows ``[start, stop)`` of the 0/1 matrix ``bits`` [n, n_bits] against all rows."""
    fp = torch.as_tensor(np.asarray(bits), dtype=torch.float32, device=_device(device))
    counts = fp.sum(dim=1)

    def score(start: int, stop: int) -> torch.Tensor:
        inter = fp[start:stop] @ fp.T
        union = counts[start:stop, None] + counts[None, :] - inter
        return inter.div_(union.clamp_(min=1))  # union 0: both empty, inter 0, score 0

    return score


def rank_normalise(z: np.ndarray) -> np.ndarray:
    """Rows ranked (ties averaged), centred, scaled to unit norm (float32): their dot product is the
    Spearman correlation. A constant row (no information) becomes NaN, so it scores NaN with everything."""
    r = rankdata(np.asarray(z, dtype=np.float64), axis=1)
    r -= r.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(r, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norm > 1e-12, r / norm, np.nan)
    return out.astype(np.float32)


def spearman_scorer(z: np.ndarray, device: str | None = None) -> Scorer:
    """Spearman correlation of rows ``[start, stop)`` of ``z`` [n, genes] against all rows."""
    r = torch.as_tensor(rank_normalise(z), device=_device(device))

    def score(start: int, stop: int) -> torch.Tensor:
        return (r[start:stop] @ r.T).clamp_(-1.0, 1.0)

    return score


def signed_gene_vectors(
    signatures: Sequence[tuple[Sequence[str], Sequence[float]]], genes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Signatures given as (gene symbols, signed z) to dense ``values`` and 0/1 ``mask`` [m, len(genes)]
    over ``genes``; also how many reported genes are not among ``genes`` (left out)."""
    pos = {g: j for j, g in enumerate(genes)}
    values = np.zeros((len(signatures), len(genes)), dtype=np.float32)
    mask = np.zeros_like(values)
    outside = 0
    for i, (symbols, zs) in enumerate(signatures):
        for g, v in zip(symbols, zs, strict=True):
            j = pos.get(g)
            if j is None:
                outside += 1
                continue
            values[i, j], mask[i, j] = v, 1.0
    return values, mask, outside


def connectivity_scorer(
    z: np.ndarray, values: np.ndarray, mask: np.ndarray, min_genes: int = 5, device: str | None = None,
) -> Scorer:
    """Cosine between rows ``[start, stop)`` of ``z`` [n, genes] and each perturbation signature
    (``values``, ``mask`` [m, genes]) over the genes that signature reports; NaN where a signature
    reports fewer than ``min_genes`` of ``genes`` or the compound is flat on them."""
    dev = _device(device)
    zt = torch.as_tensor(np.nan_to_num(np.asarray(z, dtype=np.float32)), device=dev)
    v = torch.as_tensor(values, dtype=torch.float32, device=dev)
    m = torch.as_tensor(mask, dtype=torch.float32, device=dev)
    v_norm = v.norm(dim=1)
    usable = (m.sum(dim=1) >= min_genes) & (v_norm > 0)

    def score(start: int, stop: int) -> torch.Tensor:
        zb = zt[start:stop]
        num = zb @ v.T
        den = torch.sqrt((zb * zb) @ m.T) * v_norm[None, :]
        out = num / den
        out[:, ~usable] = torch.nan
        return torch.where(den > 0, out, torch.full_like(out, torch.nan)).clamp(-1.0, 1.0)

    return score


def best_per_group(scorer: Scorer, groups: np.ndarray, n_groups: int) -> Scorer:
    """Collapse columns into groups (several signatures of one perturbed gene): per row and group, the
    column score with the largest ``|score|`` (NaN when all are NaN)."""
    g = torch.as_tensor(np.asarray(groups, dtype=np.int64))

    def score(start: int, stop: int) -> torch.Tensor:
        s = scorer(start, stop)
        idx = g.to(s.device)[None, :].expand_as(s)
        fill = torch.full((s.shape[0], n_groups), torch.nan, device=s.device)
        hi = fill.clone().scatter_reduce(1, idx, torch.nan_to_num(s, nan=-torch.inf), "amax",
                                         include_self=False)
        lo = fill.scatter_reduce(1, idx, torch.nan_to_num(s, nan=torch.inf), "amin", include_self=False)
        best = torch.where(hi.abs() >= lo.abs(), hi, lo)
        return torch.where(torch.isinf(best), torch.full_like(best, torch.nan), best)

    return score
