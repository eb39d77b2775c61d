"""The synthetic scale data set (benchmarks/synthetic_scale.py) ingests into exactly what it says it wrote."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from moakg.benchmarks.synthetic_scale import ScaleSpec, generate
from moakg.ingest.commands import adapters_from_config
from moakg.ingest.l1000_io import GctxFile
from moakg.ingest.runner import run_adapters
from moakg.kg.connection import Neo4jConnection

TINY = {"signatures": 40, "genes": 30, "landmarks": 10, "compounds": 8, "cells": 3, "moas": 3,
        "string_links": 50, "top_k": 5, "seed": 0, "progress": False}


def _count(conn: Neo4jConnection, pattern: str) -> int:
    return conn.query(f"MATCH {pattern} RETURN count(*) AS n")[0]["n"]


@pytest.mark.parametrize("col_meta", ["table", "gctx"])  # "both" reads the two paths together
def test_tiny_synthetic_set_ingests_to_the_expected_counts(
    conn: Neo4jConnection, tmp_path: Path, col_meta: str
) -> None:
    out = tmp_path / "synthetic"
    manifest = generate(ScaleSpec(out=out, col_meta=col_meta, **TINY))
    e = manifest.expected
    # top_k 5 of 10 landmarks: some signatures have fewer than 5 z-scores of one sign, so the expected
    # count is the generator's own min(k, n) per signature, not simply 2 x 5 x 40.
    assert 0 < e["UPREGULATES"] <= 40 * 5 and 0 < e["DOWNREGULATES"] <= 40 * 5
    assert 0 < e["INTERACTS_WITH"] < 25  # 50 lines = 25 pairs, some of them below min_score

    adapters = adapters_from_config(out / "sources.toml")
    reports = run_adapters(conn, adapters, progress=False)
    assert [r.status for r in reports] == ["completed", "completed"]
    lincs, string = adapters
    assert lincs.stats["level"] == 5 and lincs.stats["signatures"] == 40
    for key in ("structure_unparseable", "compounds_without_pert_info", "unknown_gene_symbols",
                "duplicate_gene_rows", "nan_values_as_zero", "missing_dose", "missing_time"):
        assert lincs.stats.get(key, 0) == 0, (key, lincs.stats[key])
    assert string.stats["links_unmapped"] == 0 and string.stats["self_links"] == 0
    assert string.stats["links_read"] == 50
    assert _count(conn, "(:Signature)") == e["Signature"] == 40
    assert _count(conn, "(:Compound)") == e["Compound"] == 8
    assert _count(conn, "(:CellLine)") == e["CellLine"]
    assert _count(conn, "(:MoA)") == e["MoA"]
    assert _count(conn, "(:Gene)") == e["Gene"]
    assert _count(conn, "(:Gene {is_landmark: true})") == e["Gene_landmark"] == 10
    for rel in ("HAS_SIGNATURE", "IN_CELL", "HAS_MOA", "UPREGULATES", "DOWNREGULATES", "INTERACTS_WITH"):
        assert _count(conn, f"()-[:{rel}]->()") == e[rel], rel
    # STRING's proteins mapped to gene_info's symbols (no other genes), and every structure parsed.
    assert _count(conn, "(g:Gene) WHERE NOT g.symbol STARTS WITH 'SYNG'") == 0
    assert _count(conn, "(c:Compound) WHERE c.id STARTS WITH 'lincs:'") == 0
    dose = conn.query("MATCH (s:Signature) RETURN DISTINCT s.dose_unit AS u")
    assert [r["u"] for r in dose] == ["uM"]  # the latin-1 'µM' of the GCTX decoded


def test_same_seed_same_files_and_gctx_layout(tmp_path: Path) -> None:
    def digest(folder: Path) -> dict[str, str]:
        # manifest.json records the output folder; every other file must be byte-identical
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
                if p.name != "manifest.json"}

    a = generate(ScaleSpec(out=tmp_path / "a", **TINY))
    b = generate(ScaleSpec(out=tmp_path / "b", **TINY))
    assert a.expected == b.expected
    da = digest(tmp_path / "a")
    assert da == digest(tmp_path / "b")
    generate(ScaleSpec(out=tmp_path / "c", **{**TINY, "seed": 1}))
    gctx = "level5_synthetic_n40x30.gctx"
    assert digest(tmp_path / "c")[gctx] != da[gctx]

    g = GctxFile(tmp_path / "a" / "level5_synthetic_n40x30.gctx")
    assert g.shape == (40, 30)
    assert {"pert_id", "cell_id", "pert_idose", "distil_cc_q75", "is_gold"} <= set(g.col_meta.columns)
    assert g.row_meta["is_lm"].astype(int).sum() == 10
    assert g.col_meta["pert_idose"].str.endswith("\xb5M").all()
