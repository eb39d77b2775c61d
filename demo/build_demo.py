"""Build the bundled demo data set (demo/data/) from the real public files in ../shared/data.

Every output file is a row subset of a real file, in the source's own format (no synthetic
values). The subset is chosen so that the compounds of the MoA and target tasks have L1000 signatures: the
drugs of the real consensus signature matrix (dhimmel/lincs' consensi-drugbank) that carry a label,
and the compounds of the L1000 plate LJP005_A375_24H (test_l1000.gct):

* L1000: the whole plate, its compounds' LINCS pert_info rows, the full L1000 gene table;
* L1000 consensus: the matrix rows of the consensus drugs with a Repurposing Hub MoA or target or a
  DrugBank target, the over-expression table and the gene table as they are;
* Drug Repurposing Hub: the plate compounds (by pert_id, i.e. broad_id[:13], or by name) and the Hub
  drugs of those consensus drugs (by InChIKey connectivity block, through DrugBank's InChIKey), with
  their samples; no drug without a signature is added to fill MoA classes;
* DrugBank (derived TSVs): the consensus drugs and the drugs whose InChIKey connectivity block matches
  a selected Hub sample, and their protein rows;
* interactions: the STRING random10k sample files as they are, and the hetio PPI pairs whose two
  genes are both demo genes (landmarks, targets and over-expressed genes);
* GO: the 2019 human GAF rows for demo genes, and the 2019 ontology cut to the annotated terms
  plus all their ancestors (is_a / part_of), so every annotation lands on a term.

Run from the repository root: ``python demo/build_demo.py [--shared ../shared/data]``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import shutil
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def gzip_out(path: Path, text: bool = False) -> io.IOBase:
    """A gzip file to write with no timestamp in its header, so an unchanged rebuild is byte-identical."""
    raw = gzip.GzipFile(path, "wb", compresslevel=9, mtime=0)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="") if text else raw


GZ = {"method": "gzip", "compresslevel": 9, "mtime": 0}  # pandas' to_csv, same reason


def read_hub(path: Path) -> pd.DataFrame:
    # '!' starts a comment only at the start of a line (a '!' inside a line is data).
    text = "".join(line for line in path.open(encoding="utf-8") if not line.startswith("!"))
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)


def write_hub(src: Path, dst: Path, keep: pd.Series, key_col: str) -> None:
    """Copy the comment header and the rows whose key column is in ``keep``, lines untouched."""
    # Not str.splitlines(): it also breaks at the \x0b and \x1c characters some Hub fields contain.
    with src.open(encoding="utf-8", newline="") as f:
        lines = list(f)
    header_i = next(i for i, ln in enumerate(lines) if not ln.startswith("!"))
    cols = lines[header_i].rstrip("\n").split("\t")
    k = cols.index(key_col)
    wanted = set(keep)
    body = [ln for ln in lines[header_i + 1 :] if ln.rstrip("\n").split("\t")[k] in wanted]
    dst.write_text("".join(lines[: header_i + 1] + body), encoding="utf-8")


def plate_compounds(gct: Path) -> pd.DataFrame:
    """pert_id, pert_iname, pert_type of every well of a GCT v1.3 plate (column metadata block)."""
    with gct.open() as f:
        f.readline()
        n_rows, n_cols, n_rmeta, n_cmeta = map(int, f.readline().split())
        header = f.readline().rstrip("\n").split("\t")
        meta = {}
        for _ in range(n_cmeta):
            parts = f.readline().rstrip("\n").split("\t")
            meta[parts[0]] = parts[n_rmeta + 1 :]
    wells = pd.DataFrame({"well": header[n_rmeta + 1 :], **meta})
    return wells[["pert_id", "pert_iname", "pert_type"]].drop_duplicates()


def go_subset(obo_src: Path, obo_dst: Path, gaf_src: Path, gaf_dst: Path, genes: set[str]) -> tuple[int, int]:
    """GAF rows for ``genes``; ontology cut to the annotated terms and their ancestors."""
    kept_rows, used_terms = [], set()
    with gzip.open(gaf_src, "rt", encoding="utf-8") as f:
        for line in f:
            if line.startswith("!"):
                kept_rows.append(line)
                continue
            cols = line.split("\t")
            if len(cols) > 4 and cols[2].upper() in genes:
                kept_rows.append(line)
                used_terms.add(cols[4])
    with gzip_out(gaf_dst, text=True) as f:
        f.writelines(kept_rows)

    with gzip.open(obo_src, "rt", encoding="utf-8") as f:
        text = f.read()
    head, *stanzas = re.split(r"\n(?=\[)", text)
    parents: dict[str, set[str]] = {}
    by_id: dict[str, str] = {}
    alt: dict[str, str] = {}
    for st in stanzas:
        m = re.search(r"^id: (\S+)", st, re.M)
        if not st.startswith("[Term]") or not m:
            continue
        tid = m.group(1)
        by_id[tid] = st
        for a in re.findall(r"^alt_id: (\S+)", st, re.M):
            alt[a] = tid
        ps = set(re.findall(r"^is_a: (GO:\d+)", st, re.M))
        ps |= set(re.findall(r"^relationship: part_of (GO:\d+)", st, re.M))
        parents[tid] = ps
    todo = [alt.get(t, t) for t in used_terms]
    keep: set[str] = set()
    while todo:
        t = todo.pop()
        if t in keep or t not in by_id:
            continue
        keep.add(t)
        todo.extend(parents[t])
    typedefs = [st for st in stanzas if st.startswith("[Typedef]")]
    terms = [by_id[t] for t in sorted(keep)]
    with gzip_out(obo_dst, text=True) as f:
        f.write(head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in terms + typedefs))
    return len(kept_rows), len(keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=HERE / "data")
    args = ap.parse_args()
    src, out = args.shared, args.out
    out.mkdir(parents=True, exist_ok=True)

    # L1000 plate, compressed; its compounds' pert_info rows; the full gene table.
    gct = src / "l1000" / "test_l1000.gct"
    with gct.open("rb") as fi, gzip_out(out / "LJP005_A375_24H.gct.gz") as fo:
        shutil.copyfileobj(fi, fo)
    plate = plate_compounds(gct)
    pertinfo = pd.read_csv(src / "lincs" / "pertinfo.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    pertinfo[pertinfo.pert_id.isin(plate.pert_id)].to_csv(out / "pertinfo.tsv.gz", sep="\t", index=False,
                                                                compression=GZ)
    shutil.copyfile(src / "lincs" / "geneinfo.tsv.gz", out / "geneinfo.tsv.gz")

    # Consensus signatures: which DrugBank drugs they are, and the Hub drugs that share their structure.
    cons_dir = src / "l1000_consensus"
    matrix = pd.read_csv(cons_dir / "consensi-drugbank.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    db = pd.read_csv(src / "drugbank" / "drugbank.tsv", sep="\t", dtype=str, keep_default_na=False)
    db["block"] = db.inchikey.str.replace("InChIKey=", "").str[:14]
    prot = pd.read_csv(src / "drugbank" / "proteins.tsv", sep="\t", dtype=str, keep_default_na=False)
    cons_db = db[db.drugbank_id.isin(matrix.perturbagen)]

    drugs = read_hub(src / "repurposing_hub" / "repurposing_drugs_20200324.txt")
    samples = read_hub(src / "repurposing_hub" / "repurposing_samples_20200324.txt")
    samples["pert_id"] = samples.broad_id.str[:13]
    samples["block"] = samples.InChIKey.str[:14]
    labelled = set(drugs.loc[(drugs.moa != "") | (drugs.target != ""), "pert_iname"])
    hub_of_block = samples[samples.pert_iname.isin(labelled) & (samples.block != "")]
    hub_of_block = hub_of_block.groupby("block").pert_iname.agg(set)
    cons_hub = {n for b in cons_db.block if b in hub_of_block.index for n in hub_of_block[b]}
    db_targets = set(prot.loc[prot.category == "target", "drugbank_id"])
    cons_keep = set(cons_db.loc[cons_db.block.isin(hub_of_block.index) | cons_db.drugbank_id.isin(db_targets),
                                "drugbank_id"])
    kept_matrix = matrix[matrix.perturbagen.isin(cons_keep)]
    kept_matrix.to_csv(out / "consensi-drugbank.tsv.gz", sep="\t", index=False, compression=GZ)
    for name in ("dysreg-overexpression.tsv", "genes.tsv"):
        with (cons_dir / name).open("rb") as fi, gzip_out(out / f"{name}.gz") as fo:
            shutil.copyfileobj(fi, fo)
    overexpressed = pd.read_csv(cons_dir / "dysreg-overexpression.tsv", sep="\t", dtype=str,
                                keep_default_na=False).perturbagen

    # Repurposing Hub: the plate's drugs and the consensus drugs' Hub drugs, with their samples.
    plate_names = set(plate.pert_iname.str.lower())
    on_plate = set(samples.loc[samples.pert_id.isin(plate.pert_id), "pert_iname"])
    on_plate |= set(drugs.loc[drugs.pert_iname.str.lower().isin(plate_names), "pert_iname"])
    chosen = on_plate | cons_hub
    hub_dir = src / "repurposing_hub"
    write_hub(hub_dir / "repurposing_drugs_20200324.txt", out / "repurposing_drugs.txt",
              pd.Series(sorted(chosen)), "pert_iname")
    write_hub(hub_dir / "repurposing_samples_20200324.txt", out / "repurposing_samples.txt",
              pd.Series(sorted(chosen)), "pert_iname")
    chosen_drugs = drugs[drugs.pert_iname.isin(chosen)]

    # DrugBank derived tables: the consensus drugs and those matching a chosen Hub sample's block.
    blocks = set(samples.loc[samples.pert_iname.isin(chosen), "block"]) - {""}
    db_keep = db[db.block.isin(blocks) | db.drugbank_id.isin(cons_keep)].drop(columns="block")
    db_keep.to_csv(out / "drugbank.tsv", sep="\t", index=False)
    prot_keep = prot[prot.drugbank_id.isin(db_keep.drugbank_id)]
    prot_keep.to_csv(out / "drugbank_proteins.tsv", sep="\t", index=False)

    # The demo's genes: landmarks, Hub targets and DrugBank targets (through the L1000 gene table).
    geneinfo = pd.read_csv(src / "lincs" / "geneinfo.tsv.gz", sep="\t", dtype=str, keep_default_na=False)
    genes = set(geneinfo.loc[geneinfo.is_lm == "True", "pr_gene_symbol"].str.upper())
    genes |= {t.upper() for ts in chosen_drugs.target for t in ts.split("|") if t}
    entrez = dict(zip(geneinfo.pr_gene_id, geneinfo.pr_gene_symbol.str.upper(), strict=False))
    genes |= {entrez[e] for e in prot_keep.entrez_gene_id if e in entrez}
    genes |= {entrez[e] for e in overexpressed.unique() if e in entrez}

    # Interactions: STRING samples as they are; hetio pairs among demo genes.
    for kind in ("links.detailed", "aliases"):
        name = f"9606.protein.{kind}.v11.0.random10k.txt"
        with (src / "string" / name).open("rb") as fi, gzip_out(out / f"{name}.gz") as fo:
            shutil.copyfileobj(fi, fo)
    ppi = pd.read_csv(src / "ppi" / "protein-interactions.txt.gz", sep="\t", dtype=str, keep_default_na=False)
    ppi_keep = ppi[ppi.source_symbol.str.upper().isin(genes) & ppi.target_symbol.str.upper().isin(genes)]
    ppi_keep.to_csv(out / "protein-interactions.tsv.gz", sep="\t", index=False, compression=GZ)

    n_gaf, n_terms = go_subset(
        src / "go" / "GeneOntology_2019.01.29.obo.gz", out / "go_2019-01-29_demo.obo.gz",
        src / "go" / "GO.goa_human_2019.01.29.gz", out / "goa_human_2019-01-29_demo.gaf.gz", genes,
    )
    n_moas = chosen_drugs.moa.str.split("|").explode().replace("", pd.NA).dropna().nunique()
    print(f"plate compounds: {plate[plate.pert_type != 'ctl_vehicle'].pert_id.nunique()}, "
          f"consensus signatures: {len(kept_matrix)} of {len(matrix)}, "
          f"hub drugs: {len(chosen)} ({len(on_plate)} on the plate, {len(cons_hub)} of consensus drugs), "
          f"MoAs: {n_moas}, "
          f"drugbank drugs: {len(db_keep)} ({len(prot_keep)} protein rows), genes: {len(genes)}, "
          f"ppi pairs: {len(ppi_keep)}, GAF lines: {n_gaf}, GO terms: {n_terms}")


if __name__ == "__main__":
    main()
