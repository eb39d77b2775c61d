"""The signature landscape (the L1000FWD idea): every signature's landmark z-vector in 2-D, coloured by MoA.

Reading (:func:`read_signatures`, Cypher in :func:`moakg.kg.lookups.signature_vectors`), labelling
(:func:`moa_labels`), embedding (:func:`embed`) and drawing (:func:`draw_landscape`) are separate, so
everything but the reading works without Neo4j. A signature is labelled with its compound's MoA that is
most frequent among all signatures (ties: alphabetical); the ``top_moas`` MoAs labelling the most
signatures get a colour, any other MoA is grey "other", a compound without MoA light grey "no MoA"
(details in :func:`moa_labels`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection
from moakg.kg.lookups import signature_vectors

OTHER = "other"
NO_MOA = "no MoA"
METHODS = ("pca",)
# matplotlib's tab10 then tab20's light shades, without their greys (grey means "other" / "no MoA")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
MAX_TOP_MOAS = len(PALETTE)


@dataclass(frozen=True)
class LandscapeResult:
    out: Path
    n_points: int  # signatures drawn, one point each
    n_genes: int  # length of the z-vectors
    explained: tuple[float, float]  # explained variance ratio of the two axes
    legend: list[tuple[str, int]]  # (label, points) in legend order
    sig_ids: list[str]
    coords: np.ndarray  # [n_points, 2]


def read_signatures(conn: Neo4jConnection) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """Signature ids, their z-vectors as a float matrix and their compounds' MoAs, from the graph."""
    rows = signature_vectors(conn)
    if not rows:
        raise UserError("no signatures with z_landmark in the graph; ingest L1000 first")
    lengths = Counter(len(r["z"]) for r in rows)
    if len(lengths) > 1:
        raise UserError(f"signatures' z_landmark vectors differ in length ({dict(lengths)} signatures per "
                        "length); re-ingest them against the same landmark genes")
    matrix = np.asarray([r["z"] for r in rows], dtype=np.float64)
    return [r["sig_id"] for r in rows], matrix, [list(r["moas"]) for r in rows]


def moa_labels(moas: Sequence[Sequence[str]], top_moas: int) -> tuple[list[str], list[str]]:
    """One label per signature and the coloured MoAs (most points first).

    An MoA's frequency is the number of signatures whose compound has it; each signature's own MoA is its
    most frequent one (ties: alphabetical). The ``top_moas`` MoAs that are the own MoA of the most
    signatures get a colour (so none is empty); a signature whose own MoA has none takes its most
    frequent MoA that has one, else "other"; a compound without MoA is "no MoA"."""
    freq = Counter(m for ms in moas for m in set(ms))
    rank = {m: (-freq[m], m) for m in freq}
    own = Counter(min(ms, key=rank.__getitem__) for ms in moas if ms)
    top = sorted(own, key=lambda m: (-own[m], rank[m]))[:top_moas]
    coloured = set(top)
    labels = []
    for ms in moas:
        candidates = [m for m in ms if m in coloured]
        labels.append(min(candidates, key=rank.__getitem__) if candidates else OTHER if ms else NO_MOA)
    return labels, top


#: z-scores are clipped to +-CLIP before embedding, as CMap clips level-5 z-scores: a collapsed plate's
#: robust z reaches the hundreds (a MAD near its floor), consensus z rarely passes 10, and without the
#: clip a handful of extreme plate signatures take both axes
CLIP = 10.0


def embed(matrix: np.ndarray, method: str = "pca", clip: float | None = CLIP
          ) -> tuple[np.ndarray, tuple[float, float]]:
    """2-D coordinates of the rows and the explained variance ratio of each axis (scikit-learn's PCA)
    of the z-vectors clipped to ``+-clip`` (None: unclipped)."""
    if method not in METHODS:
        raise UserError(f"unknown embedding method {method!r}; expected one of {list(METHODS)}")
    if matrix.shape[0] < 3:
        raise UserError(f"{matrix.shape[0]} signature(s) with z_landmark; a landscape needs at least 3")
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, svd_solver="full")
    z = np.nan_to_num(matrix)  # NaN z-scores (if any) count as 0, no change
    if clip is not None:
        z = np.clip(z, -clip, clip)
    coords = pca.fit_transform(z)
    ratio = pca.explained_variance_ratio_
    return coords, (float(ratio[0]), float(ratio[1]))


def draw_landscape(coords: np.ndarray, labels: Sequence[str], top: Sequence[str],
                   explained: tuple[float, float], out: Path, title: str = "",
                   size: tuple[float, float] = (10.0, 7.0), dpi: int = 120) -> list[tuple[str, int]]:
    """Scatter ``coords`` coloured by ``labels`` into the PNG ``out`` (``size`` inches x ``dpi`` pixels,
    exactly); returns the legend as (label, points drawn), whose counts add up to every point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels, dtype=object)
    groups = [(NO_MOA, "#dddddd", 10), (OTHER, "#999999", 14)]  # drawn first: the MoAs lie on top
    groups += [(m, PALETTE[i], 22) for i, m in enumerate(top)]
    fig, ax = plt.subplots(figsize=size, dpi=dpi, layout="constrained")
    drawn = {}
    for name, colour, point in groups:
        mask = labels == name
        if mask.any():
            drawn[name] = ax.scatter(coords[mask, 0], coords[mask, 1], s=point, color=colour, alpha=0.85,
                                     linewidths=0, label=f"{name} ({int(mask.sum())})")
    # the legend lists the MoAs by frequency, then "other", then "no MoA", with the points each drew
    names = [m for m in [*top, OTHER, NO_MOA] if m in drawn]
    legend = [(m, len(drawn[m].get_offsets())) for m in names]
    ax.legend(handles=[drawn[m] for m in names], loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
              frameon=False, title="MoA (signatures)", title_fontsize=9)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f} % of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f} % of variance)")
    ax.set_title(title or f"{len(labels)} signatures, landmark z-vectors, PCA")
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return legend


def signature_landscape(conn: Neo4jConnection, out: Path, top_moas: int = 10, method: str = "pca",
                        size: tuple[float, float] = (10.0, 7.0), dpi: int = 120,
                        clip: float | None = CLIP) -> LandscapeResult:
    """Read every signature with a z-vector, embed them in 2-D and draw the picture to ``out`` (PNG)."""
    if not 0 <= top_moas <= MAX_TOP_MOAS:
        raise UserError(f"--top-moas {top_moas}: expected 0 to {MAX_TOP_MOAS} (one colour each)")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"{out}: the landscape is written as PNG; name the file *.png")
    sig_ids, matrix, moas = read_signatures(conn)
    coords, explained = embed(matrix, method, clip)
    labels, top = moa_labels(moas, top_moas)
    out.parent.mkdir(parents=True, exist_ok=True)
    clipped = f", z clipped to +-{clip:g}" if clip is not None else ""
    title = f"{len(sig_ids)} signatures x {matrix.shape[1]} landmark genes ({method.upper()}{clipped})"
    legend = draw_landscape(coords, labels, top, explained, out, title=title, size=size, dpi=dpi)
    return LandscapeResult(out=out, n_points=sum(n for _, n in legend), n_genes=matrix.shape[1],
                           explained=explained, legend=legend, sig_ids=sig_ids, coords=coords)
