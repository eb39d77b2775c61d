"""`moakg plot landscape`: the signatures' landmark z-vectors in 2-D (PCA), coloured by MoA."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from moakg.cli import app
from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.lookups import signature_vectors
from moakg.plots.landscape import NO_MOA, OTHER, draw_landscape, embed, moa_labels, signature_landscape

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's signature and IHDR chunk (read here, not by matplotlib)."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_labels_take_the_most_frequent_moa_then_other_and_no_moa() -> None:
    moas = [["a", "b"], ["b"], ["b", "c"], ["a"], ["c", "d"], [], ["d"], ["c"]]
    # frequency over signatures: b 3, c 3, a 2, d 2 (ties alphabetical); own MoA: b 3, c 2, a 1, d 1
    labels, top = moa_labels(moas, top_moas=2)
    assert top == ["b", "c"]
    assert labels == ["b", "b", "b", OTHER, "c", NO_MOA, OTHER, "c"]
    assert moa_labels(moas, top_moas=0) == ([OTHER] * 5 + [NO_MOA] + [OTHER] * 2, [])


def test_no_colour_is_wasted_on_an_moa_that_labels_no_signature() -> None:
    # a (3) ties c (3) in frequency, but a is never a signature's most frequent MoA (b, 5, always wins)
    moas = [["a", "b"]] * 3 + [["b"], ["c"], ["c"], ["b", "c"]]
    assert moa_labels(moas, top_moas=2) == (["b"] * 4 + ["c", "c", "b"], ["b", "c"])
    # p outranks q, but p colours fewer signatures: the signature with both takes the coloured q
    moas = [["r", "p"]] * 3 + [["r"]] * 2 + [["p", "q"], ["q"], ["q"]]
    assert moa_labels(moas, top_moas=2) == (["r"] * 5 + ["q"] * 3, ["r", "q"])


def test_draw_without_neo4j_writes_a_png_of_the_size_asked_with_every_point(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(40, 2))
    labels = ["x"] * 15 + ["y"] * 10 + [OTHER] * 9 + [NO_MOA] * 6
    legend = draw_landscape(coords, labels, ["x", "y"], (0.3, 0.1), tmp_path / "p.png", size=(5, 4), dpi=100)
    assert legend == [("x", 15), ("y", 10), (OTHER, 9), (NO_MOA, 6)]
    assert png_size(tmp_path / "p.png") == (500, 400)


def test_demo_landscape_one_point_per_signature_and_pca_matches_numpy(
    demo_conn: Neo4jConnection, cli_env: Neo4jSettings, tmp_path: Path
) -> None:
    [n] = demo_conn.query("MATCH (s:Signature) WHERE s.z_landmark IS NOT NULL RETURN count(s) AS n")
    assert n["n"] > 0

    out = tmp_path / "landscape.png"
    result = CliRunner().invoke(app, ["plot", "landscape", "--out", str(out), "--top-moas", "8"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{n['n']} signatures x 978 genes") and str(out) in result.output
    assert png_size(out) == (1200, 840)  # 10 x 7 inches at 120 dpi

    res = signature_landscape(demo_conn, tmp_path / "again.png", top_moas=8)
    assert res.n_points == n["n"] == len(res.sig_ids) == len(res.coords)
    assert len(res.legend) == 8 + 2 and sum(c for _, c in res.legend) == n["n"]
    # the first axis is numpy's first principal component (SVD of the centred matrix), up to sign
    # of the z-vectors clipped to +-10
    raw = np.asarray([r["z"] for r in signature_vectors(demo_conn)], dtype=np.float64)
    assert np.abs(raw).max() > 10  # the clip does something on the demo
    z = np.clip(raw, -10, 10)
    centred = z - z.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    pc1 = u[:, 0] * s[0]
    sign = np.sign(pc1 @ res.coords[:, 0])
    np.testing.assert_allclose(res.coords[:, 0], sign * pc1, rtol=1e-6, atol=1e-6)
    assert res.explained[0] == pytest.approx(s[0] ** 2 / (s**2).sum(), rel=1e-6)
    coords, _ = embed(raw)
    np.testing.assert_allclose(coords, res.coords)
    unclipped, _ = embed(raw, clip=None)
    assert not np.allclose(np.abs(unclipped), np.abs(coords))


def test_empty_graph_is_one_clear_line(conn: Neo4jConnection, cli_env: Neo4jSettings, tmp_path: Path) -> None:
    out = tmp_path / "landscape.png"
    result = CliRunner().invoke(app, ["plot", "landscape", "--out", str(out)])
    assert result.exit_code == 1
    assert result.stderr == "error: no signatures with z_landmark in the graph; ingest L1000 first\n"
    assert not out.exists()


def test_bad_options_are_user_errors(conn: Neo4jConnection, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--top-moas 19: expected 0 to 18"):
        signature_landscape(conn, tmp_path / "x.png", top_moas=19)
    with pytest.raises(UserError, match="name the file"):
        signature_landscape(conn, tmp_path / "x.jpg")
    with pytest.raises(UserError, match="unknown embedding method 'tsne'"):
        embed(np.zeros((5, 3)), "tsne")
