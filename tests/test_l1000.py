"""L1000 ingest against real Neo4j: the real LJP005 plate, GEO- and CLUE-style level 5 GCTX files written
here in the real layout (values synthetic, ids and structures real), the real cmapPy/cmapR GCTX files,
bad input, and the robust z / MODZ arithmetic."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from moakg.ingest.base import InputFormatError
from moakg.ingest.l1000 import L1000Adapter, from_config
from moakg.ingest.l1000_consensus import modz, robust_z, spearman
from moakg.ingest.l1000_io import GctFile, GctxFile, read_gctx, write_gctx
from moakg.ingest.l1000_meta import dose_in_um, to_float
from moakg.kg.connection import Neo4jConnection

K = 50


def _count(conn: Neo4jConnection, pattern: str) -> int:
    return conn.query(f"MATCH {pattern} RETURN count(*) AS n")[0]["n"]


def _graph_counts(conn: Neo4jConnection) -> dict[str, int]:
    labels = ["Compound", "Signature", "CellLine", "Gene", "MoA"]
    rels = ["HAS_SIGNATURE", "IN_CELL", "UPREGULATES", "DOWNREGULATES", "HAS_MOA", "TARGETS"]
    out = {lb: _count(conn, f"(:{lb})") for lb in labels}
    out.update({r: _count(conn, f"()-[:{r}]->()") for r in rels})
    return out


def _read_gct_with_pandas(path: Path, n_col_meta: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Independent parse of a GCT 1.3 file: (column metadata, data block with row metadata)."""
    block = pd.read_csv(path, sep="\t", skiprows=2, index_col=0, dtype=str, keep_default_na=False)
    col_meta = block.iloc[:n_col_meta].T
    return col_meta[col_meta.index.str.contains(":")], block.iloc[n_col_meta:]


# ------------------------------------------------------------------------------------------ (a) real plate
def test_real_plate_collapses_and_counts_match_pandas(conn: Neo4jConnection, shared_data: Path) -> None:
    gct = shared_data / "l1000" / "test_l1000.gct"
    pert_info = shared_data / "lincs" / "pertinfo.tsv.gz"
    gene_info = shared_data / "lincs" / "geneinfo.tsv.gz"
    cm, data = _read_gct_with_pandas(gct, 35)
    cp = cm[cm["pert_type"] == "trt_cp"]
    n_sigs = len(cp[["pert_id", "pert_dose", "pert_time", "cell_id"]].drop_duplicates())
    n_compounds = cp["pert_id"].nunique()
    landmarks = data[data["pr_is_lmark"] == "1"]["pr_gene_symbol"].str.upper().nunique()
    perts = pd.read_csv(pert_info, sep="\t", dtype=str, keep_default_na=False).set_index("pert_id")
    with_smiles = perts.reindex(cp["pert_id"].unique())["canonical_smiles"].fillna("").ne("").sum()

    adapter = L1000Adapter(gct=gct, pert_info=pert_info, gene_info=gene_info, top_k=K)
    report = adapter.ingest(conn, progress=False)
    counts = _graph_counts(conn)
    assert counts["Signature"] == n_sigs == 328  # one well per compound x dose on this plate
    assert counts["Compound"] == n_compounds == 55
    assert counts["HAS_SIGNATURE"] == counts["IN_CELL"] == n_sigs
    assert counts["CellLine"] == cm["cell_id"].nunique() == 1
    assert _count(conn, "(g:Gene {is_landmark: true})") == counts["Gene"] == landmarks == 978
    assert counts["UPREGULATES"] == counts["DOWNREGULATES"] == K * n_sigs  # no ties at rank K here
    assert _count(conn, "(c:Compound) WHERE c.id STARTS WITH 'lincs:'") == n_compounds - with_smiles
    assert adapter.stats["vehicle_wells"] == (cm["pert_type"] == "ctl_vehicle").sum() == 26
    assert adapter.stats["wells_filtered_pert_type"] == (cm["pert_type"] == "trt_poscon").sum()
    assert adapter.stats["single_replicate_signatures"] == n_sigs
    assert report.counts.rels_missing_endpoint == 0

    # The stored z-vector is the robust z against the plate's DMSO wells, genes sorted by symbol.
    values = data.iloc[:, 11:].astype(float)
    dmso = values.loc[:, cm.index[cm["pert_type"] == "ctl_vehicle"]]
    med = dmso.median(axis=1)
    mad = (dmso.sub(med, axis=0)).abs().median(axis=1).clip(lower=0.1) * 1.4826
    well = cp[(cp["pert_iname"] == "vemurafenib") & (cp["pert_dose"] == "10")].index[0]
    z = ((values[well] - med) / mad).set_axis(data["pr_gene_symbol"].str.upper()).sort_index()
    sig_id = "LJP005_A375_24H:BRD-K56343971:10"
    sig = conn.query("MATCH (c:Compound)-[:HAS_SIGNATURE]->(s:Signature {sig_id: $id}) "
                     "RETURN s, c.name AS name", id=sig_id)[0]
    assert sig["name"] == "vemurafenib"
    s = sig["s"]
    assert (s["n_replicates"], s.get("cc_mean"), s["dose"], s["dose_unit"]) == (1, None, 10.0, "uM")
    assert (s["time"], s["time_unit"], s["cell_id"], s["level"]) == (24.0, "h", "A375", 3)
    np.testing.assert_allclose(s["z_landmark"], z.to_numpy(), atol=2e-4)
    top = conn.query("MATCH (:Signature {sig_id: $id})-[r:UPREGULATES]->(g) RETURN g.symbol AS g, r.z AS z, "
                     "r.rank AS rank ORDER BY rank", id=sig_id)
    assert [t["g"] for t in top] == z.sort_values(ascending=False, kind="stable").index[:K].tolist()

    again = L1000Adapter(gct=gct, pert_info=pert_info, gene_info=gene_info, top_k=K)
    again = again.ingest(conn, progress=False)
    assert _graph_counts(conn) == counts
    assert again.counts.nodes_created == 0 and again.counts.rels_created == 0
    run = conn.query("MATCH (r:IngestRun {id: $id}) RETURN r.status AS status, r.stats AS stats",
                     id=again.run_id)
    assert run[0]["status"] == "completed" and json.loads(run[0]["stats"])["signatures"] == n_sigs


# ------------------------------------------------------------------------------------------ (b) level 5 GCTX
def _real_genes(shared_data: Path, n_lm: int, n_other: int) -> pd.DataFrame:
    gi = pd.read_csv(shared_data / "lincs" / "geneinfo.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    gi = gi[gi["pr_gene_id"].str.fullmatch(r"\d+") & gi["pr_gene_symbol"].ne("")]
    gi = gi.drop_duplicates("pr_gene_id").drop_duplicates("pr_gene_symbol")
    lm, other = gi[gi["is_lm"] == "True"].head(n_lm), gi[gi["is_lm"] == "False"].head(n_other)
    return pd.concat([lm, other])


def _real_perts(shared_data: Path, n: int) -> pd.DataFrame:
    pi = pd.read_csv(shared_data / "lincs" / "pertinfo.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    return pi[(pi["pert_type"] == "trt_cp") & pi["canonical_smiles"].ne("")].head(n)


def _write_tsv(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, sep="\t", index=False)
    return path


def _level5_case(tmp: Path, shared_data: Path, beta: bool) -> dict:
    """A level-5 GCTX (ids only in the file, as in the GEO and CLUE releases) plus its tables."""
    rng = np.random.default_rng(7 if beta else 3)
    genes = _real_genes(shared_data, 30, 10)
    perts = _real_perts(shared_data, 4)
    cells = ["A375", "MCF7"]
    rows = []
    for i in range(12):
        p = perts.iloc[i % 4]
        rows.append({"sig_id": f"CPC{i:03d}_{cells[i % 2]}_24H:{p.pert_id}-001-01-1:10", "pert_id": p.pert_id,
                     "pert_iname": p.pert_iname, "pert_type": "trt_cp", "cell_id": cells[i % 2],
                     "pert_dose": "10" if i != 5 else "-666", "pert_dose_unit": "um" if i != 5 else "-666",
                     "pert_time": "24", "pert_time_unit": "h", "tas": f"{0.05 * i:.2f}",
                     "cc_q75": f"{0.1 + 0.05 * i:.2f}", "pct": 0.01 * i, "hiq": str(int(i % 3 != 0))})
    rows[7]["tas"] = "-666"
    rows[11].update(pert_type="trt_sh", pert_id="TRCN0000000001", pert_iname="TP53")  # a non-compound row
    sig = pd.DataFrame(rows)
    sig["pct"] = sig["pct"] * (100 if beta else 1)  # percent in this beta pipeline, a fraction in GEO
    sig.loc[3, "pct"] = -666
    matrix = rng.normal(size=(len(sig), len(genes))).astype(np.float32)
    row_ids = genes["pr_gene_id"].tolist()
    path = write_gctx(tmp / ("beta.gctx" if beta else "geo.gctx"), matrix, pd.DataFrame(index=row_ids),
                      pd.DataFrame(index=sig["sig_id"]))
    lm = genes["is_lm"] == "True"
    if beta:
        sig_t = sig.rename(columns={"pert_iname": "cmap_name", "cell_id": "cell_iname",
                                    "pct": "pct_self_rank_q25", "hiq": "is_hiq"})
        sig_t["qc_pass"] = "1"
        gene_t = pd.DataFrame({"gene_id": genes["pr_gene_id"], "gene_symbol": genes["pr_gene_symbol"],
                               "ensembl_id": "", "feature_space": np.where(lm, "landmark", "inferred")})
        moa = ["EGFR inhibitor", "Tubulin  inhibitor", "EGFR inhibitor", ""]
        targets = [["EGFR", "ERBB2"], ["TUBB"], [""], [""]]  # compoundinfo_beta: one row per target
        comp = pd.DataFrame([{"pert_id": p.pert_id, "cmap_name": p.pert_iname, "target": t, "moa": moa[i],
                              "canonical_smiles": p.canonical_smiles, "inchi_key": p.inchi_key[9:],
                              "compound_aliases": ""}
                             for i, p in enumerate(perts.itertuples()) for t in targets[i]])
        cell_t = pd.DataFrame({"cell_iname": cells, "cellosaurus_id": ["CVCL_0132", "CVCL_0031"],
                               "cell_lineage": ["skin", "breast"],
                               "primary_disease": ["melanoma", "breast cancer"]})
        files = {"sig_info": [_write_tsv(tmp / "siginfo_beta.txt", sig_t)],
                 "gene_info": _write_tsv(tmp / "geneinfo_beta.txt", gene_t),
                 "pert_info": _write_tsv(tmp / "compoundinfo_beta.txt", comp),
                 "cell_info": _write_tsv(tmp / "cellinfo_beta.txt", cell_t)}
    else:
        info = sig[["sig_id", "pert_id", "pert_iname", "pert_type", "cell_id", "pert_dose", "pert_dose_unit",
                    "pert_time", "pert_time_unit"]].assign(
            pert_idose=[f"{d} um" if d != "-666" else "-666" for d in sig["pert_dose"]], pert_itime="24 h")
        metrics = sig[["sig_id", "pert_id", "tas", "cc_q75", "pct", "hiq"]].rename(
            columns={"cc_q75": "distil_cc_q75", "pct": "pct_self_rank_q25", "hiq": "is_gold"})
        metrics["distil_nsample"] = "3"
        gene_t = pd.DataFrame({"pr_gene_id": genes["pr_gene_id"], "pr_gene_symbol": genes["pr_gene_symbol"],
                               "pr_gene_title": "", "pr_is_lm": lm.astype(int), "pr_is_bing": 1})
        pert_t = perts[["pert_id", "pert_iname", "pert_type", "canonical_smiles", "inchi_key"]]
        cell_t = pd.DataFrame({"cell_id": cells, "cell_type": "tumor", "primary_site": ["skin", "breast"]})
        files = {"sig_info": [_write_tsv(tmp / "sig_info.txt", info),
                              _write_tsv(tmp / "sig_metrics.txt", metrics)],
                 "gene_info": _write_tsv(tmp / "gene_info.txt", gene_t),
                 "pert_info": _write_tsv(tmp / "pert_info.txt", pert_t),
                 "cell_info": _write_tsv(tmp / "cell_info.txt", cell_t)}
    return {"gctx": path, "sig": sig, "genes": genes, "matrix": matrix, "perts": perts, "files": files}


@pytest.mark.parametrize("beta", [False, True], ids=["geo", "clue_beta"])
def test_level5_gctx_filters_and_counts(conn: Neo4jConnection, shared_data: Path, tmp_path: Path,
                                        beta: bool) -> None:
    case = _level5_case(tmp_path, shared_data, beta)
    sig = case["sig"]
    tas, _ = to_float(sig["tas"])
    pct = to_float(sig["pct"].astype(str))[0] * (1 if beta else 100)
    min_tas, max_pct, k = 0.1, 5.0, 5
    keep = sig["pert_type"].eq("trt_cp")
    expected = {"filtered_pert_type": int((~keep).sum())}
    expected["filtered_tas_missing"] = int((keep & tas.isna()).sum())
    keep &= tas.notna()
    expected["filtered_tas"] = int((keep & (tas < min_tas)).sum())
    keep &= tas >= min_tas
    expected["filtered_pct_self_rank_q25_missing"] = int((keep & pct.isna()).sum())
    keep &= pct.notna()
    expected["filtered_pct_self_rank_q25"] = int((keep & (pct > max_pct)).sum())
    keep &= pct <= max_pct
    assert min(expected.values()) >= 1 and keep.sum() >= 3  # every filter is exercised

    adapter = L1000Adapter(gctx=case["gctx"], **case["files"], top_k=k, min_tas=min_tas,
                           max_pct_self_rank_q25=max_pct)
    adapter.ingest(conn, progress=False)
    for key, n in expected.items():
        assert adapter.stats.get(key, 0) == n, key
    assert adapter.stats["pct_self_rank_q25_scale"] == ("percent" if beta else "fraction")
    n_lm = int((case["genes"]["is_lm"] == "True").sum())
    counts = _graph_counts(conn)
    assert counts["Signature"] == keep.sum() == counts["HAS_SIGNATURE"] == counts["IN_CELL"]
    assert counts["Compound"] == sig[keep]["pert_id"].nunique()
    assert counts["UPREGULATES"] == counts["DOWNREGULATES"] == k * keep.sum()
    assert _count(conn, "(g:Gene {is_landmark: true})") == n_lm
    assert adapter.stats["missing_dose"] == int((keep & sig["pert_dose"].eq("-666")).sum())

    # The stored vector is the file's row for that signature: landmark genes ordered by symbol.
    i = int(np.flatnonzero(keep.to_numpy())[0])
    lm = case["genes"]["is_lm"].eq("True").to_numpy()
    order = np.argsort(case["genes"]["pr_gene_symbol"].to_numpy()[lm], kind="stable")
    stored = conn.query("MATCH (s:Signature {sig_id: $id}) RETURN s", id=sig["sig_id"][i])[0]["s"]
    np.testing.assert_allclose(stored["z_landmark"], case["matrix"][i, lm][order], atol=1e-4)
    assert stored["pct_self_rank_q25"] == pytest.approx(pct[i])
    cell = conn.query("MATCH (c:CellLine {cell_id: 'MCF7'}) RETURN c")[0]["c"]
    if beta:
        assert cell["lineage"] == "breast" and stored["is_hiq"] is (sig["hiq"][i] == "1")
        kept_perts = set(sig[keep]["pert_id"])
        p = case["perts"]["pert_id"].tolist()
        want_moa = {(p[0], "egfr inhibitor"), (p[1], "tubulin inhibitor"), (p[2], "egfr inhibitor")}
        want_targets = {(p[0], "EGFR"), (p[0], "ERBB2"), (p[1], "TUBB")}
        assert counts["HAS_MOA"] == len({x for x in want_moa if x[0] in kept_perts})
        assert counts["TARGETS"] == len({x for x in want_targets if x[0] in kept_perts})
        assert counts["MoA"] == len({m for pid, m in want_moa if pid in kept_perts})
    else:
        assert cell["primary_site"] == "breast" and stored["n_replicates"] == 3
        assert counts["HAS_MOA"] == counts["TARGETS"] == 0


def test_from_config_and_all_genes(conn: Neo4jConnection, shared_data: Path, tmp_path: Path) -> None:
    case = _level5_case(tmp_path, shared_data, beta=False)
    section = {k: (v.name if isinstance(v, Path) else [x.name for x in v]) for k, v in case["files"].items()}
    adapter = from_config({"gctx": case["gctx"].name, **section, "top_k": 3, "all_genes": True,
                           "compounds_only": False}, tmp_path)
    adapter.ingest(conn, progress=False)
    n = len(case["sig"])
    assert _count(conn, "(:Signature)") == n  # the trt_sh row is kept too, without a Compound
    assert _count(conn, "()-[:HAS_SIGNATURE]->()") == n - 1
    assert adapter.stats["signatures_without_compound"] == 1
    assert _count(conn, "(:Gene)") == len(case["genes"])
    lens = conn.query("MATCH (s:Signature) RETURN DISTINCT size(s.z_landmark) AS n")
    assert lens == [{"n": int((case["genes"]["is_lm"] == "True").sum())}]
    with pytest.raises(ValueError, match="unknown keys"):
        from_config({"gctx": "x.gctx", "topk": 3}, tmp_path)


def test_real_modz_gctx_with_embedded_metadata(conn: Neo4jConnection, shared_data: Path) -> None:
    path = shared_data / "l1000" / "modzs_n25x50.gctx"
    with h5py.File(path) as h5:
        pert_type = [x.decode() for x in h5["0/META/COL/pert_type"][()]]
        pert_ids = {x.decode() for x in h5["0/META/COL/pert_id"][()]}
        n_lm = int(h5["0/META/ROW/is_lm"][()].sum())
    adapter = L1000Adapter(gctx=path, top_k=5)
    adapter.ingest(conn, progress=False)
    assert _count(conn, "(:Signature)") == pert_type.count("trt_cp") == 25
    assert _count(conn, "(:Compound)") == len(pert_ids)
    assert _count(conn, "(:Gene {is_landmark: true})") == n_lm == 50
    assert adapter.stats["pct_self_rank_q25_scale"] == "percent" and adapter.stats["level"] == 5
    doses = conn.query("MATCH (s:Signature) RETURN DISTINCT s.dose AS d, s.dose_unit AS u ORDER BY d")
    # '500 nM', '3 <b5>M' and '10 <b5>M' (cmapR's rendering of latin-1 'µM')
    assert doses == [{"d": 0.5, "u": "uM"}, {"d": 3.0, "u": "uM"}, {"d": 10.0, "u": "uM"}]


# ------------------------------------------------------------------------------------------ (c) readers
def test_real_gctx_files_read(shared_data: Path) -> None:
    path = shared_data / "l1000" / "modzs_n25x50.gctx"
    values, rows, cols = read_gctx(path)
    assert values.shape == (25, 50) and values.dtype == np.float32
    assert rows.loc["200814_at", "pr_gene_symbol"] == "PSME1" and cols["pert_itime"].iloc[0] == "24 h"
    with h5py.File(path) as h5:
        raw = h5["0/DATA/0/matrix"][()]
    np.testing.assert_allclose(values, raw, rtol=1e-6)
    cids = cols.index[[20, 3, 7]].tolist()
    sub, sub_rows, sub_cols = read_gctx(path, cids=cids, rids=rows.index[[5, 1]].tolist(), chunk_rows=2)
    np.testing.assert_allclose(sub, raw[[20, 3, 7]][:, [5, 1]], rtol=1e-6)
    assert sub_cols.index.tolist() == cids and sub_rows.index.tolist() == rows.index[[5, 1]].tolist()

    big = shared_data / "l1000" / "col_meta_only_example_n355x355.gctx"
    values, rows, cols = read_gctx(big, chunk_rows=64)
    assert values.shape == (355, 355) and cols.shape == (355, 50) and rows.shape == (355, 0)
    assert cols["pert_type"].value_counts()["ctl_vehicle"] >= 1 and cols["pert_dose"].iloc[0] == "-666"

    plate = GctFile(shared_data / "l1000" / "test_l1000.gct")
    assert plate.shape == (377, 978) and plate.col_meta.shape[1] == 35 and plate.row_meta.shape[1] == 11


def test_write_gctx_real_layout_and_latin1(tmp_path: Path) -> None:
    rows = pd.DataFrame({"pr_gene_symbol": ["PSME1", "ATF1", "RHEB"], "is_lm": [1, 1, 0]},
                        index=["5720", "466", "6009"])
    cols = pd.DataFrame({"pert_idose": [b"10 \xb5M", b"500 nM"], "pert_type": ["trt_cp", "trt_cp"]},
                        index=["P1:BRD-A00000001:10", "P1:BRD-A00000001:0.5"])
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = write_gctx(tmp_path / "w.gctx", matrix, rows, cols)
    with h5py.File(path) as h5:
        assert h5.attrs["version"][0] == b"GCTX1.0"
        ds = h5["0/DATA/0/matrix"]
        assert ds.shape == (2, 3) and ds.dtype == np.float32 and ds.chunks[1] == 3
    g = GctxFile(path)
    assert g.col_meta["pert_idose"].tolist() == ["10 µM", "500 nM"]
    assert dose_in_um(None, None, g.col_meta["pert_idose"].iloc[0]) == (10.0, "uM")
    assert dose_in_um(None, None, "500 nM") == (0.5, "uM")
    np.testing.assert_array_equal(g.read([1, 0]), matrix[[1, 0]])


def test_gct_v12_reads(tmp_path: Path) -> None:
    path = tmp_path / "small.gct"
    path.write_text("#1.2\n2\t3\nName\tDescription\tA\tB\tC\ng1\tgene one\t1\t2\t3\ng2\tgene two\t4\t5\t6\n")
    g = GctFile(path)
    assert g.shape == (3, 2)
    np.testing.assert_array_equal(g.read([0, 1, 2]), [[1, 4], [2, 5], [3, 6]])
    assert g.row_meta["Description"].tolist() == ["gene one", "gene two"]



def test_gct_missing_values_are_nan_and_counted(tmp_path: Path) -> None:
    """CMap GCT files write missing values as NA, NaN, an empty cell or -666 (cmapPy reads them as NaN)."""
    path = tmp_path / "p100_like.gct"
    path.write_text("#1.3\n3\t4\t1\t1\nid\tsym\tA\tB\tC\tD\nkind\tna\tx\ty\tz\tw\n"
                    "g1\tX\t1\tNA\t3\t-666\ng2\tY\tNaN\t5\t\t6\ng3\tZ\t7\t8\t9\t10\n")
    g = GctFile(path)
    assert g.missing_values == 4
    want = np.array([[1, np.nan, 3, np.nan], [np.nan, 5, np.nan, 6], [7, 8, 9, 10]], dtype=np.float32).T
    np.testing.assert_array_equal(g.read([0, 1, 2, 3]), want)  # NaN == NaN in assert_array_equal
    assert g.col_meta["kind"].tolist() == ["x", "y", "z", "w"]


# ------------------------------------------------------------------------------------------ (d) bad input
def test_gct_text_named_gctx_is_rejected(conn: Neo4jConnection, shared_data: Path) -> None:
    path = shared_data / "l1000" / "test_l1000.gctx"
    with pytest.raises(InputFormatError, match="looks like GCT text") as err:
        L1000Adapter(gctx=path).ingest(conn, progress=False)
    assert err.value.path == path and str(path) in str(err.value)
    assert _count(conn, "(:Signature)") == 0 and _count(conn, "(:Gene)") == 0


def test_truncated_hdf5_names_the_file(tmp_path: Path) -> None:
    path = write_gctx(tmp_path / "cut.gctx", np.ones((200, 50), np.float32),
                      pd.DataFrame(index=[str(i) for i in range(50)]),
                      pd.DataFrame(index=[f"s{i}" for i in range(200)]))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFormatError, match="corrupt or truncated HDF5") as err:
        read_gctx(path)
    assert str(path) in str(err.value)


def test_ids_not_matching_metadata(shared_data: Path, tmp_path: Path) -> None:
    case = _level5_case(tmp_path, shared_data, beta=False)
    info = tmp_path / "sig_info_short.txt"
    full = pd.read_csv(case["files"]["sig_info"][0], sep="\t", dtype=str)
    full.iloc[2:].to_csv(info, sep="\t", index=False)
    with pytest.raises(InputFormatError, match="column ids are not sig_ids") as err:
        list(L1000Adapter(gctx=case["gctx"], **{**case["files"], "sig_info": [info]}).batches())
    assert str(case["gctx"]) in str(err.value) and case["sig"]["sig_id"][0] in str(err.value)

    genes = case["files"]["gene_info"]
    pd.read_csv(genes, sep="\t", dtype=str).iloc[1:].to_csv(genes, sep="\t", index=False)
    with pytest.raises(InputFormatError, match="row ids are not in gene_info") as err:
        list(L1000Adapter(gctx=case["gctx"], **case["files"]).batches())
    assert str(genes) in str(err.value) and case["genes"]["pr_gene_id"].iloc[0] in str(err.value)

    with pytest.raises(InputFormatError, match="expected a sig_info table") as err:
        list(L1000Adapter(gctx=case["gctx"], sig_info=genes, gene_info=genes).batches())
    assert str(genes) in str(err.value)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("#1.4\n1\t1\n", 1, "version line"),
        ("#1.3\n2\t2\t1\n", 2, "4 integer dimensions"),
        ("#1.3\n2\t2\t1\t0\nid\tsym\tA\n", 3, "header has 3 fields"),
        ("#1.3\n2\t2\t1\t0\nid\tsym\tA\tB\ng1\tX\t1\t2\ng2\tY\t1\tfoo\n", 5, "non-numeric value 'foo'"),
        ("#1.3\n3\t2\t1\t0\nid\tsym\tA\tB\ng1\tX\t1\t2\ng2\tY\t1\t2\n", 6, "file ends early"),
    ],
    ids=["version", "dims", "header", "value", "short"],
)
def test_malformed_gct_names_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.gct.gz"
    with gzip.open(path, "wt") as f:
        f.write(text)
    with pytest.raises(InputFormatError, match=message) as err:
        GctFile(path)
    assert err.value.path == path and err.value.where == line


# ------------------------------------------------------------------------------------------ (e) z / MODZ
def test_robust_z_and_modz_on_a_hand_made_plate(conn: Neo4jConnection, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n_genes, symbols = 40, [f"GENE{i:02d}" for i in range(40)]
    signal = rng.normal(0, 2, n_genes)
    plates, wells, cols = [], [], []
    for rep in (1, 2, 3):
        plate = f"TST001_MCF7_6H_X{rep}_B1"
        for w in range(8):  # vehicle wells
            wells.append(8 + rng.normal(0, 0.3, n_genes))
            cols.append((plate, f"A{w:02d}", "DMSO", "DMSO", "ctl_vehicle", "-666"))
        # replicates 1 and 2 carry the compound's signal; replicate 3 is noise (a failed well)
        effect = signal if rep < 3 else rng.normal(0, 2, n_genes)
        wells.append(8 + effect * 0.3 + rng.normal(0, 0.05, n_genes))
        cols.append((plate, "B01", "BRD-K00000001", "testinib", "trt_cp", "10"))
        plates.append(plate)
    x = np.array(wells)
    meta = pd.DataFrame(cols, columns=["det_plate", "det_well", "pert_id", "pert_iname", "pert_type",
                                       "pert_dose"])
    meta["pert_dose_unit"] = np.where(meta["pert_dose"] == "-666", "-666", "um")
    meta["pert_time"], meta["pert_time_unit"], meta["cell_id"] = "6", "h", "MCF7"
    ids = [f"{p}:{w}" for p, w in zip(meta["det_plate"], meta["det_well"], strict=True)]
    lines = ["#1.3", f"{n_genes}\t{len(ids)}\t2\t{meta.shape[1]}",
             "\t".join(["id", "pr_gene_symbol", "pr_is_lm", *ids])]
    lines += ["\t".join([c, "na", "na", *meta[c]]) for c in meta.columns]
    lines += ["\t".join([f"p{g}", symbols[g], "1", *map(str, x[:, g])]) for g in range(n_genes)]
    path = tmp_path / "plate.gct"
    path.write_text("\n".join(lines) + "\n")

    # robust z against each plate's vehicle wells, then MODZ by hand
    z = []
    for rep in range(3):
        block = x[rep * 9 : rep * 9 + 9]
        med = np.median(block[:8], axis=0)
        mad = np.maximum(np.median(np.abs(block[:8] - med), axis=0), 0.1) * 1.4826
        z.append((block[8] - med) / mad)
        np.testing.assert_allclose(robust_z(block[8:], block[:8])[0], z[-1], rtol=1e-5)
    z = np.array(z)
    cons = modz(z)
    ranks = np.argsort(np.argsort(z, axis=1), axis=1)
    corr = np.corrcoef(ranks)
    np.testing.assert_allclose(spearman(z), corr, atol=1e-9)
    raw = np.clip([(corr[i].clip(0).sum() - 1) / 2 for i in range(3)], 0.01, None)
    np.testing.assert_allclose(cons.weights, raw / raw.sum(), atol=1e-9)
    # the two agreeing replicates dominate; the failed well counts little
    assert cons.weights[0] > 0.4 and cons.weights[1] > 0.4 and cons.weights[2] < 0.1
    assert cons.cc_mean == pytest.approx(corr[np.triu_indices(3, 1)].mean())

    adapter = L1000Adapter(gct=path, top_k=5)
    adapter.ingest(conn, progress=False)
    assert adapter.stats["level"] == 3 and adapter.stats["plates"] == 3
    sig = conn.query("MATCH (s:Signature) RETURN s")
    assert len(sig) == 1
    s = sig[0]["s"]
    assert s["sig_id"] == "TST001_MCF7_6H:BRD-K00000001:10" and s["n_replicates"] == 3
    assert s["cc_mean"] == pytest.approx(cons.cc_mean, abs=1e-9)
    np.testing.assert_allclose(s["z_landmark"], cons.z, atol=2e-4)  # symbols GENE00.. are already sorted


def test_cli_help() -> None:
    import typer
    from typer.testing import CliRunner

    from moakg.ingest.l1000 import add_cli

    app = typer.Typer()
    add_cli(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the app into `l1000`
        pass

    result = CliRunner().invoke(app, ["l1000", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "--max-pct-self-rank-q25" in result.output and "MODZ" in result.output
