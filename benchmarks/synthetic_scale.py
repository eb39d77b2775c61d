"""SYNTHETIC L1000 + STRING inputs at real scale, in the real file formats, for `moakg ingest all`.

Nothing written here is LINCS or STRING data: every value is random (seeded), and every name says so
(gene symbols ``SYNG00001``, compounds ``synthetic-00001`` with pert_ids ``BRD-Z00000001``, cell lines
``SYNC01``, MoAs ``synthetic moa 001``, a ``README.txt`` and a ``moakg_synthetic`` attribute in the
GCTX). What is real is the *layout*, so that moakg's ingesters read the files exactly as they read the
downloads:

* ``level5_synthetic_n<N>x<G>.gctx``: a level-5 GCTX in the GEO/CLUE layout (root attribute
  ``version = b'GCTX1.0'``; ``/0/DATA/0/matrix`` float32 z-scores stored signatures x genes, chunked
  by whole rows of ~1 MiB like moakg's ``write_gctx``, uncompressed like the real files). Row metadata
  is GEO's (``id`` = probe id, ``pr_gene_id``, ``pr_gene_symbol``, ``pr_gene_title``, ``is_lm``,
  ``is_bing``); column metadata is that of GEO's level-5 file (``pert_id``, ``pert_iname``,
  ``pert_type``, ``cell_id``, ``brew_prefix``, ``pert_idose`` as latin-1 ``b'10 \\xb5M'``,
  ``pert_itime``, ``distil_cc_q75``, ``distil_nsample``, ``distil_ss``, ``pct_self_rank_q25``,
  ``is_gold``, ``tas``). The matrix is written in blocks of rows, so memory stays near one block
  whatever ``--signatures`` is (100,000 x 12,328 float32 is 4.9 GB on disk).
* ``siginfo_synthetic.txt`` (CLUE ``siginfo_beta`` columns), ``geneinfo_synthetic.txt`` (GEO
  ``gene_info``), ``compoundinfo_synthetic.txt`` (CLUE ``compoundinfo_beta``: RDKit-valid SMILES with
  distinct InChIKeys, a MoA per compound), ``cellinfo_synthetic.txt`` (CLUE ``cellinfo_beta``).
* ``9606.protein.links.detailed.v11.0.synthetic.txt.gz`` (STRING v11 detailed links, every pair in
  both directions, sorted by protein1 as STRING ships them) and
  ``9606.protein.aliases.v11.0.synthetic.txt.gz`` (v11 aliases: a ``BioMart_HUGO Ensembl_HGNC``
  symbol row per protein, which the STRING adapter maps to the gene_info symbols, plus UniProt and
  Ensembl rows it must ignore). Some genes have two proteins (isoforms), as in STRING.
* ``sources.toml`` (``[l1000]`` and ``[string]``, paths relative to it) and ``manifest.json``: the
  arguments, the files, and the node and relationship counts the ingest must produce (computed from
  the values as they are written, e.g. ``min(top_k, genes with z > 0)`` per signature).

Size: every signature passes the adapter's default filters, and with 978 landmarks the top 50 up and
50 down z-scores always exist, so ``--signatures N`` with ``--top-k 50`` gives exactly ``100 N``
UPREGULATES + DOWNREGULATES (``--signatures 10000``: 1M; ``100000``: 10M).

    python -m moakg.benchmarks.synthetic_scale --out /tmp/moakg-scale/n100k --signatures 100000 \\
        --compounds 5000 --string-links 2000000
    moakg ingest all --config /tmp/moakg-scale/n100k/sources.toml
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from moakg.ingest.compounds import canonical_smiles, structure_inchikey
from moakg.ingest.l1000_io import COL_META, DATA_PATH, GCTX_VERSION, ROW_META

SYNTHETIC_NOTE = ("SYNTHETIC data written by moakg.benchmarks.synthetic_scale: random values in the real "
                  "file layouts, not LINCS L1000 or STRING data")
#: bytes per HDF5 chunk (whole rows of the signatures x genes dataset), as moakg's write_gctx chooses
CHUNK_BYTES = 1 << 20
#: bytes of matrix generated and written per block: bounds the generator's memory
BLOCK_BYTES = 64 << 20
DOSES_UM = (0.04, 0.12, 0.37, 1.11, 3.33, 10.0)
TIMES_H = (6, 24)
FILES = {
    "sig_info": "siginfo_synthetic.txt",
    "gene_info": "geneinfo_synthetic.txt",
    "pert_info": "compoundinfo_synthetic.txt",
    "cell_info": "cellinfo_synthetic.txt",
    "links": "9606.protein.links.detailed.v11.0.synthetic.txt.gz",
    "aliases": "9606.protein.aliases.v11.0.synthetic.txt.gz",
}


@dataclass
class ScaleSpec:
    """What to generate (the command-line arguments)."""

    out: Path
    signatures: int = 10_000
    genes: int = 12_328
    landmarks: int = 978
    compounds: int = 1_000
    cells: int = 9
    moas: int = 50
    string_links: int = 200_000
    string_min_score: int = 700
    string_keep_fraction: float = 0.5
    top_k: int = 50
    seed: int = 0
    col_meta: str = "both"  # "gctx", "table" or "both": where the signature metadata goes
    progress: bool = True

    def check(self) -> None:
        if not 1 <= self.landmarks <= self.genes:
            raise ValueError(f"need 1 <= landmarks <= genes, got {self.landmarks} and {self.genes}")
        if self.signatures < 1 or self.compounds < 1 or self.cells < 1 or self.top_k < 1:
            raise ValueError("signatures, compounds, cells and top_k must be >= 1")
        if self.moas < 0 or self.string_links < 0:
            raise ValueError("moas and string_links must be >= 0")
        if self.string_links // 2 > self.genes * (self.genes - 1) // 2:
            raise ValueError(f"{self.string_links} links need more than the {self.genes} genes' pairs")
        if not 0 <= self.string_min_score <= 1000 or not 0.0 <= self.string_keep_fraction <= 1.0:
            raise ValueError("string_min_score is 0-1000 and string_keep_fraction 0-1")
        if self.col_meta not in ("gctx", "table", "both"):
            raise ValueError(f"col_meta must be gctx, table or both, not {self.col_meta!r}")


@dataclass
class Manifest:
    """What was written, and what `moakg ingest all --config sources.toml` must make of it."""

    spec: dict[str, Any]
    files: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    expected: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


# ---------------------------------------------------------------------------------------------- helpers
def _width(n: int) -> int:
    return max(5, len(str(n)))


def _bytes_array(values: list[str], encoding: str = "utf-8") -> np.ndarray:
    """Fixed-length byte strings, the way GCTX files store text metadata."""
    items = [v.encode(encoding) for v in values]
    return np.array(items, dtype=f"S{max([len(b) for b in items] + [1])}")


def _write_tsv(path: Path, header: list[str], rows: Iterator[list[Any]] | list[list[Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(v) for v in r) + "\n")


def _gzip_text(path: Path) -> gzip.GzipFile:
    # mtime=0 and no file name in the header: the same seed gives byte-identical files. Level 1
    # because the readers do not care and the links file has millions of lines.
    return gzip.GzipFile(filename="", mode="wb", fileobj=open(path, "wb"), compresslevel=1, mtime=0)


def _dose_text(dose: float) -> str:
    return f"{dose:g}"


# ---------------------------------------------------------------------------------------------- compounds
# Distinct, RDKit-valid structures enumerated from a ring template, a ring substituent, a linker chain
# and a terminal group. Candidates that RDKit rejects or whose InChIKey connectivity block was already
# taken are skipped, so every compound is its own node (moakg merges compounds on the InChIKey and,
# across sources, on its first block).
_TEMPLATES = (
    "{b}c1ccc(cc1){a}", "{b}c1cccc(c1){a}", "{b}c1ccccc1{a}", "{b}c1ccc(nc1){a}",
    "{b}c1ccc(s1){a}", "{b}c1ccc(o1){a}", "{b}C1CCC(CC1){a}", "{b}c1cnc(nc1){a}",
)
_RING_SUBST = ("", "F", "Cl", "Br", "C", "CO", "FC(F)(F)", "N#C", "CN(C)", "O", "N")
_TERMINALS = ("C", "O", "N", "C(=O)O", "C(=O)N", "c1ccccc1", "N1CCOCC1", "C#N", "F")
_CHAIN_UNITS = ("C", "C(C)", "C(=O)", "N", "O", "C(F)", "C(O)", "S(=O)(=O)")
_HETERO = frozenset({"N", "O"})


def _chain(k: int) -> list[str] | None:
    """The k-th linker (bijective base-len(units) numeral, so lengths 0, 1, 2, ... all occur)."""
    units = []
    while k > 0:
        k -= 1
        units.append(_CHAIN_UNITS[k % len(_CHAIN_UNITS)])
        k //= len(_CHAIN_UNITS)
    if any(a in _HETERO and b in _HETERO for a, b in zip(units, units[1:], strict=False)):
        return None  # no N-O / O-O links: keep the structures chemically unremarkable
    return units


def synthetic_smiles(n: int) -> list[tuple[str, str]]:
    """``n`` (canonical SMILES, InChIKey) pairs with distinct InChIKey connectivity blocks."""
    out: list[tuple[str, str]] = []
    blocks: set[str] = set()
    per_chain = len(_TEMPLATES) * len(_RING_SUBST) * len(_TERMINALS)
    i = 0
    while len(out) < n:
        k, r = divmod(i, per_chain)
        i += 1
        units = _chain(k)
        if units is None:
            continue
        t, r = divmod(r, len(_RING_SUBST) * len(_TERMINALS))
        s, term = divmod(r, len(_TERMINALS))
        if units and units[-1] in _HETERO and _TERMINALS[term][0] in _HETERO:
            continue
        smi = _TEMPLATES[t].format(b=_RING_SUBST[s], a="".join(units) + _TERMINALS[term])
        key = structure_inchikey(smi)
        if key is None or key.split("-")[0] in blocks:
            continue
        blocks.add(key.split("-")[0])
        out.append((canonical_smiles(smi) or smi, key))
    return out


# ---------------------------------------------------------------------------------------------- generator
class SyntheticScale:
    """Writes one synthetic data set (see the module docstring); :meth:`run` returns the manifest."""

    def __init__(self, spec: ScaleSpec) -> None:
        spec.check()
        self.spec = spec
        self.out = Path(spec.out)
        self.rng = np.random.default_rng([spec.seed, 0])  # metadata; matrix blocks get their own streams
        self.manifest = Manifest({k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items()})

    @property
    def gctx_name(self) -> str:
        return f"level5_synthetic_n{self.spec.signatures}x{self.spec.genes}.gctx"

    def run(self) -> Manifest:
        self.out.mkdir(parents=True, exist_ok=True)
        self._genes()
        self._compounds()
        self._cells()
        self._signatures()
        self._write_gene_tables()
        self._write_pert_cell_tables()
        self._write_gctx()
        self._write_string()
        self._write_config()
        for name in sorted(p.name for p in self.out.iterdir() if p.is_file()):
            if name != "manifest.json":
                self.manifest.files[name] = (self.out / name).stat().st_size
        (self.out / "manifest.json").write_text(self.manifest.to_json() + "\n", encoding="utf-8")
        return self.manifest

    # ------------------------------------------------------------------ entities
    def _genes(self) -> None:
        s, w = self.spec, _width(self.spec.genes)
        self.probe_ids = [f"syn{i:0{w}d}_at" for i in range(s.genes)]
        self.symbols = [f"SYNG{i:0{w}d}" for i in range(s.genes)]
        self.entrez = np.arange(s.genes, dtype=np.int64) + 900_000_001  # outside Entrez's real range
        # Landmarks at scattered rows, as in the real files (not the first 978 rows).
        self.lm_pos = np.sort(self.rng.choice(s.genes, size=s.landmarks, replace=False))
        self.is_lm = np.zeros(s.genes, dtype=bool)
        self.is_lm[self.lm_pos] = True

    def _compounds(self) -> None:
        s = self.spec
        structures = synthetic_smiles(s.compounds)
        w = _width(s.compounds)
        self.pert_ids = [f"BRD-Z{i + 1:08d}" for i in range(s.compounds)]  # Broad-style; 'Z' is unused
        self.pert_names = [f"synthetic-{i + 1:0{w}d}" for i in range(s.compounds)]
        self.smiles = [smi for smi, _ in structures]
        self.inchikeys = [key for _, key in structures]
        self.moa_of = (self.rng.permutation(s.compounds) % s.moas) if s.moas else None

    def _cells(self) -> None:
        self.cells = [f"SYNC{i + 1:02d}" for i in range(self.spec.cells)]

    def _signatures(self) -> None:
        """Per signature: compound, cell, dose, time, plate; ids unique as CMap's are."""
        s, rng = self.spec, self.rng
        # Every compound gets signatures (round robin) when there are at least as many signatures,
        # in a shuffled order so that each block of the file mixes compounds.
        self.sig_compound = rng.permutation(np.arange(s.signatures) % s.compounds)
        combos = [(c, d, t) for c in range(s.cells) for d in range(len(DOSES_UM))
                  for t in range(len(TIMES_H))]
        seen = np.zeros(s.compounds, dtype=np.int64)
        # A compound's k-th signature takes combination perm[k % n] on plate 1 + k // n: never a repeat.
        offsets = rng.integers(0, len(combos), size=s.compounds)
        self.sig_cell = np.empty(s.signatures, dtype=np.int64)
        self.sig_dose = np.empty(s.signatures, dtype=np.int64)
        self.sig_time = np.empty(s.signatures, dtype=np.int64)
        self.sig_plate = np.empty(s.signatures, dtype=np.int64)
        stride = 7  # coprime with len(combos), so k -> offset + stride * k visits every combination
        while math.gcd(stride, len(combos)) != 1:
            stride += 2
        for j, c in enumerate(self.sig_compound):
            k = seen[c]
            seen[c] += 1
            cell, dose, time = combos[(offsets[c] + stride * k) % len(combos)]
            self.sig_cell[j], self.sig_dose[j], self.sig_time[j] = cell, dose, time
            self.sig_plate[j] = 1 + k // len(combos)
        self.brew = [f"SYN{p:03d}_{self.cells[c]}_{TIMES_H[t]}H"
                     for p, c, t in zip(self.sig_plate, self.sig_cell, self.sig_time, strict=True)]
        self.sig_ids = [f"{b}:{self.pert_ids[c]}:{_dose_text(DOSES_UM[d])}"
                        for b, c, d in zip(self.brew, self.sig_compound, self.sig_dose, strict=True)]
        assert len(set(self.sig_ids)) == len(self.sig_ids)
        n = s.signatures
        self.nsample = rng.integers(2, 11, size=n)
        self.cc_q75 = np.round(rng.uniform(-0.1, 0.9, size=n), 4)
        self.pct_self_rank = np.round(rng.uniform(0.0, 60.0, size=n), 4)  # percent, as GEO writes it
        self.tas = np.round(rng.uniform(0.0, 0.8, size=n), 4)
        self.distil_ss = np.round(rng.uniform(1.0, 6.0, size=n), 4)
        # CMap's is_gold rule; the adapter keeps every signature by default, filters are opt-in.
        self.is_gold = ((self.cc_q75 >= 0.2) & (self.pct_self_rank <= 5)).astype(np.int32)
        # Signal: each compound moves its MoA's landmark genes (plus a little of its own), scaled by
        # a per-signature strength that grows with dose; the rest is N(0, 1) noise.
        n_lm = s.landmarks
        moa_effect = np.zeros((max(s.moas, 1), n_lm), dtype=np.float32)
        for m in range(max(s.moas, 1)):
            genes = rng.choice(n_lm, size=min(20, n_lm), replace=False)
            moa_effect[m, genes] = rng.choice([-3.0, 3.0], size=len(genes))
        own = rng.standard_normal((s.compounds, n_lm), dtype=np.float32) * 0.5
        moa = self.moa_of if self.moa_of is not None else np.zeros(s.compounds, dtype=np.int64)
        self.effect = moa_effect[moa] + own
        self.strength = (rng.uniform(0.3, 1.0, size=n) * (0.5 + self.sig_dose / len(DOSES_UM))).astype(
            np.float32)

    # ------------------------------------------------------------------ tables
    def _write_gene_tables(self) -> None:
        rows = ([p, int(e), sym, f"synthetic gene {i}", str(bool(lm)), "True", str(bool(lm)),
                 "epsilon" if lm else "inferred"]
                for i, (p, e, sym, lm) in enumerate(zip(self.probe_ids, self.entrez, self.symbols, self.is_lm,
                                                        strict=True)))
        _write_tsv(self.out / FILES["gene_info"], ["pr_id", "pr_gene_id", "pr_gene_symbol", "pr_gene_title",
                                                   "is_lm", "is_l1000", "is_bing", "pr_pool_id"], rows)

    def _write_pert_cell_tables(self) -> None:
        s = self.spec
        rows = ([pid, name, "", f"synthetic moa {self.moa_of[i] + 1:03d}" if self.moa_of is not None else "",
                 smi, key, name]
                for i, (pid, name, smi, key) in enumerate(zip(self.pert_ids, self.pert_names, self.smiles,
                                                              self.inchikeys, strict=True)))
        header = ["pert_id", "cmap_name", "target", "moa", "canonical_smiles", "inchi_key",
                  "compound_aliases"]
        _write_tsv(self.out / FILES["pert_info"], header, rows)
        _write_tsv(self.out / FILES["cell_info"],
                   ["cell_iname", "cell_type", "cell_lineage", "primary_disease", "subtype"],
                   [[c, "tumor", "synthetic lineage", "synthetic disease", "-666"] for c in self.cells])
        if s.col_meta in ("table", "both"):
            cols = ["sig_id", "pert_id", "cmap_name", "pert_type", "cell_iname", "pert_dose",
                    "pert_dose_unit", "pert_idose", "pert_time", "pert_time_unit", "pert_itime",
                    "brew_prefix", "nsample", "tas", "cc_q75", "pct_self_rank_q25", "is_hiq", "qc_pass"]

            def rows_sig() -> Iterator[list[Any]]:
                for j, sid in enumerate(self.sig_ids):
                    c = self.sig_compound[j]
                    dose, time = _dose_text(DOSES_UM[self.sig_dose[j]]), TIMES_H[self.sig_time[j]]
                    yield [sid, self.pert_ids[c], self.pert_names[c], "trt_cp", self.cells[self.sig_cell[j]],
                           dose, "uM", f"{dose} uM", time, "h", f"{time} h", self.brew[j], self.nsample[j],
                           self.tas[j], self.cc_q75[j], self.pct_self_rank[j], self.is_gold[j], 1]

            _write_tsv(self.out / FILES["sig_info"], cols, rows_sig())

    # ------------------------------------------------------------------ matrix
    def _write_gctx(self) -> None:
        s = self.spec
        path = self.out / self.gctx_name
        chunk_rows = max(1, min(s.signatures, CHUNK_BYTES // (4 * s.genes)))
        block_rows = chunk_rows * max(1, BLOCK_BYTES // (chunk_rows * 4 * s.genes))  # whole chunks per write
        k = s.top_k
        counts = dict.fromkeys(("up_landmark", "down_landmark", "up_all_genes", "down_all_genes"), 0)
        with h5py.File(path, "w") as h5:
            h5.attrs["version"] = np.array([GCTX_VERSION], dtype="S8")
            h5.attrs["moakg_synthetic"] = f"{SYNTHETIC_NOTE} (seed {s.seed})"
            self._write_meta(h5)
            ds = h5.create_dataset(DATA_PATH, shape=(s.signatures, s.genes), dtype=np.float32,
                                   chunks=(chunk_rows, s.genes))
            bar = tqdm(total=s.signatures, desc="GCTX matrix", unit="sig", unit_scale=True,
                       disable=not s.progress)
            for b, lo in enumerate(range(0, s.signatures, block_rows)):
                hi = min(lo + block_rows, s.signatures)
                # One random stream per block (keyed by the block number): deterministic for a seed.
                rng = np.random.default_rng([s.seed, 1, b])
                z = rng.standard_normal((hi - lo, s.genes), dtype=np.float32)
                z[:, self.lm_pos] += self.strength[lo:hi, None] * self.effect[self.sig_compound[lo:hi]]
                ds[lo:hi] = z
                # What the adapter will write: the top k of each sign, fewer when fewer genes have it.
                for which, vals in (("landmark", z[:, self.lm_pos]), ("all_genes", z)):
                    counts[f"up_{which}"] += int(np.minimum(k, (vals > 0).sum(axis=1)).sum())
                    counts[f"down_{which}"] += int(np.minimum(k, (vals < 0).sum(axis=1)).sum())
                bar.update(hi - lo)
            bar.close()
        self.edge_counts = counts

    def _write_meta(self, h5: h5py.File) -> None:
        s = self.spec
        row = h5.require_group(ROW_META)
        row.create_dataset("id", data=_bytes_array(self.probe_ids))
        row.create_dataset("pr_gene_id", data=self.entrez.astype(np.int32))
        row.create_dataset("pr_gene_symbol", data=_bytes_array(self.symbols))
        titles = [f"synthetic gene {i}" for i in range(s.genes)]
        row.create_dataset("pr_gene_title", data=_bytes_array(titles))
        row.create_dataset("is_lm", data=self.is_lm.astype(np.int32))
        row.create_dataset("is_bing", data=self.is_lm.astype(np.int32))
        col = h5.require_group(COL_META)
        col.create_dataset("id", data=_bytes_array(self.sig_ids))
        if s.col_meta == "table":  # like CLUE's beta GCTX files: ids only, the rest in siginfo
            return
        c = self.sig_compound
        text = {
            "pert_id": [self.pert_ids[i] for i in c],
            "pert_iname": [self.pert_names[i] for i in c],
            "pert_type": ["trt_cp"] * s.signatures,
            "cell_id": [self.cells[i] for i in self.sig_cell],
            "brew_prefix": self.brew,
            "pert_itime": [f"{TIMES_H[t]} h" for t in self.sig_time],
        }
        for name, values in text.items():
            col.create_dataset(name, data=_bytes_array(values))
        # Real files hold the micro sign as one latin-1 byte (b'10 \xb5M'); the reader must decode it.
        col.create_dataset("pert_idose", data=_bytes_array(
            [f"{_dose_text(DOSES_UM[d])} \xb5M" for d in self.sig_dose], encoding="latin-1"))
        col.create_dataset("distil_cc_q75", data=self.cc_q75.astype(np.float64))
        col.create_dataset("distil_nsample", data=self.nsample.astype(np.int32))
        col.create_dataset("distil_ss", data=self.distil_ss.astype(np.float64))
        col.create_dataset("pct_self_rank_q25", data=self.pct_self_rank.astype(np.float64))
        col.create_dataset("is_gold", data=self.is_gold)
        col.create_dataset("tas", data=self.tas.astype(np.float64))

    # ------------------------------------------------------------------ STRING
    def _write_string(self) -> None:
        s = self.spec
        rng = np.random.default_rng([s.seed, 2])
        n_pairs = s.string_links // 2
        # Proteins: one per gene, a second (isoform) for 10% of genes; ids sort in protein order.
        iso = np.flatnonzero(rng.random(s.genes) < 0.10)
        prot_gene = np.concatenate([np.arange(s.genes), iso])
        prot_gene = prot_gene[rng.permutation(len(prot_gene))]  # isoforms are not all at the end
        prot_ids = [f"9606.ENSP9{i:010d}" for i in range(len(prot_gene))]  # ENSP + 11 digits, none real
        # Proteins grouped by gene (a gene's proteins are by_gene[start[g]:start[g] + n_prot[g]]).
        by_gene = np.argsort(prot_gene, kind="stable")
        n_prot = np.bincount(prot_gene, minlength=s.genes)
        start = np.concatenate([[0], np.cumsum(n_prot)[:-1]])
        self._write_aliases(prot_ids, prot_gene)
        # Distinct unordered gene pairs (never a gene with itself): one INTERACTS_WITH each when kept.
        g1, g2 = self._gene_pairs(rng, n_pairs)
        keep = rng.random(n_pairs) < s.string_keep_fraction
        combined = np.where(keep, rng.integers(s.string_min_score, 1001, size=n_pairs),
                            rng.integers(150, max(151, s.string_min_score), size=n_pairs))
        keep = combined >= s.string_min_score  # with min_score <= 150 the "low" scores pass too
        # Channel scores: a few non-zero channels, none above the combined score.
        channels = rng.integers(0, combined[:, None] + 1, size=(n_pairs, 7))
        channels[rng.random((n_pairs, 7)) < 0.6] = 0
        # Each end is one of its gene's proteins, at random (an isoform when the gene has two).
        pick = by_gene[start[g1] + (rng.random(n_pairs) * n_prot[g1]).astype(np.int64)]
        pick2 = by_gene[start[g2] + (rng.random(n_pairs) * n_prot[g2]).astype(np.int64)]
        # STRING lists each pair in both directions, with the same scores, sorted by protein1.
        p1 = np.concatenate([pick, pick2])
        p2 = np.concatenate([pick2, pick])
        order = np.lexsort((p2, p1))
        idx = np.concatenate([np.arange(n_pairs), np.arange(n_pairs)])[order]
        p1, p2 = p1[order], p2[order]
        with _gzip_text(self.out / FILES["links"]) as gz:
            gz.write(b"protein1 protein2 neighborhood fusion cooccurence coexpression experimental database "
                     b"textmining combined_score\n")
            step = 500_000
            for lo in range(0, len(p1), step):
                sl = slice(lo, lo + step)
                ch, cs = channels[idx[sl]].tolist(), combined[idx[sl]].tolist()
                lines = [f"{prot_ids[a]} {prot_ids[b]} {' '.join(map(str, c))} {t}\n"
                         for a, b, c, t in zip(p1[sl].tolist(), p2[sl].tolist(), ch, cs, strict=True)]
                gz.write("".join(lines).encode("ascii"))
        kept_genes = set(g1[keep].tolist()) | set(g2[keep].tolist())
        self.string_counts = {"interacts_with": int(keep.sum()), "string_genes": len(kept_genes),
                              "links_lines": int(len(p1)), "string_proteins": len(prot_ids)}
        self.string_genes = kept_genes

    def _gene_pairs(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` distinct unordered pairs of different genes, (smaller, larger), in random order."""
        g = self.spec.genes
        codes = np.empty(0, dtype=np.int64)
        while len(codes) < n:
            a = rng.integers(0, g, size=2 * (n - len(codes)) + 16)
            b = rng.integers(0, g, size=len(a))
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            new = (lo * g + hi)[lo != hi]
            codes = np.unique(np.concatenate([codes, new]))
        codes = rng.permutation(codes)[:n]
        return codes // g, codes % g

    def _write_aliases(self, prot_ids: list[str], prot_gene: np.ndarray) -> None:
        with _gzip_text(self.out / FILES["aliases"]) as gz:
            gz.write(b"## string_protein_id ## alias ## source ##\n")
            lines = []
            for p, g in enumerate(prot_gene.tolist()):
                sid = prot_ids[p]
                lines.append(f"{sid}\t{self.symbols[g]}\tBioMart_HUGO Ensembl_HGNC Ensembl_EntrezGene\n")
                # Aliases the adapter must not take for a symbol (not a symbol source, or an Ensembl id):
                lines.append(f"{sid}\tQ9S{p:05d}\tBLAST_UniProt_AC Ensembl_UniProt_AC\n")
                lines.append(f"{sid}\t{sid.split('.', 1)[1]}\tEnsembl_protein_id\n")
            gz.write("".join(lines).encode("ascii"))

    # ------------------------------------------------------------------ config + expectations
    def _write_config(self) -> None:
        s = self.spec
        sig_info = f'sig_info = "{FILES["sig_info"]}"\n' if s.col_meta in ("table", "both") else ""
        (self.out / "sources.toml").write_text(
            f"# {SYNTHETIC_NOTE}.\n"
            f"# Written with seed {s.seed}: {s.signatures} signatures x {s.genes} genes ({s.landmarks} "
            f"landmarks), {s.compounds} compounds, {s.string_links // 2} STRING pairs.\n"
            "# Load it with: moakg ingest all --config <this file>\n\n"
            "[l1000]\n"
            f'gctx = "{self.gctx_name}"\n'
            f"{sig_info}"
            f'gene_info = "{FILES["gene_info"]}"\n'
            f'pert_info = "{FILES["pert_info"]}"\n'
            f'cell_info = "{FILES["cell_info"]}"\n'
            f"top_k = {s.top_k}\n\n"
            "[string]\n"
            f'links = "{FILES["links"]}"\n'
            f'aliases = "{FILES["aliases"]}"\n'
            f"min_score = {s.string_min_score}\n",
            encoding="utf-8")
        (self.out / "README.txt").write_text(
            f"{SYNTHETIC_NOTE}.\nWritten by: python -m moakg.benchmarks.synthetic_scale "
            f"(seed {s.seed}); see manifest.json for the arguments and the expected graph counts.\n",
            encoding="utf-8")
        with_sig = np.unique(self.sig_compound)
        lm_symbols = {self.symbols[i] for i in self.lm_pos}
        string_symbols = {self.symbols[i] for i in self.string_genes}
        e = self.edge_counts
        self.manifest.expected = {
            "Signature": s.signatures,
            "Compound": len(with_sig),
            "CellLine": len(np.unique(self.sig_cell)),
            "MoA": len(np.unique(self.moa_of[with_sig])) if self.moa_of is not None else 0,
            "Gene": len(lm_symbols | string_symbols),
            "Gene_landmark": len(lm_symbols),
            "HAS_SIGNATURE": s.signatures,
            "IN_CELL": s.signatures,
            "HAS_MOA": len(with_sig) if self.moa_of is not None else 0,
            "UPREGULATES": e["up_landmark"],
            "DOWNREGULATES": e["down_landmark"],
            # with all_genes = true in [l1000] (every gene row, not only the landmarks):
            "UPREGULATES_all_genes": e["up_all_genes"],
            "DOWNREGULATES_all_genes": e["down_all_genes"],
            "INTERACTS_WITH": self.string_counts["interacts_with"],
            "string_links_lines": self.string_counts["links_lines"],
            "string_proteins": self.string_counts["string_proteins"],
        }


def generate(spec: ScaleSpec) -> Manifest:
    """Write the synthetic data set described by ``spec``; returns what was written and expected."""
    return SyntheticScale(spec).run()


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return str(n)


def print_manifest(m: Manifest, out: Path) -> None:
    print(f"\n{SYNTHETIC_NOTE}\nwritten to {out}:")
    for name, size in m.files.items():
        print(f"  {name:<58}{_human(size):>12}")
    print("expected after `moakg ingest all --config sources.toml`:")
    for k, v in m.expected.items():
        print(f"  {k:<28}{v:>14,}")
    up, dn = m.expected["UPREGULATES"], m.expected["DOWNREGULATES"]
    print(f"  {'Signature->Gene (up+down)':<28}{up + dn:>14,}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m moakg.benchmarks.synthetic_scale", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to write into (created; files replaced)")
    ap.add_argument("--signatures", type=int, default=10_000,
                    help="level-5 signatures (GCTX columns); each gives 2 x top_k gene edges (default 10000)")
    ap.add_argument("--genes", type=int, default=12_328, help="gene rows (default 12328, as in L1000)")
    ap.add_argument("--landmarks", type=int, default=978,
                    help="of which landmark genes, the rows the ingest uses by default (default 978)")
    ap.add_argument("--compounds", type=int, default=1_000,
                    help="distinct compounds (SMILES); signatures are dealt to them round robin "
                         "(default 1000)")
    ap.add_argument("--cells", type=int, default=9, help="cell lines (default 9)")
    ap.add_argument("--moas", type=int, default=50,
                    help="MoA classes, one per compound, driving a shared landmark signal; 0: no moa column")
    ap.add_argument("--string-links", type=int, default=200_000,
                    help="lines of the STRING links file; each gene pair is written in both directions, "
                         "so this is 2 x the pairs (odd numbers are rounded down; default 200000)")
    ap.add_argument("--string-min-score", type=int, default=700,
                    help="min_score written to sources.toml (STRING's 0-1000 scale; default 700)")
    ap.add_argument("--string-keep-fraction", type=float, default=0.5,
                    help="fraction of pairs scored at or above min_score (the rest fall below; default 0.5)")
    ap.add_argument("--top-k", type=int, default=50, help="top_k written to sources.toml (default 50)")
    ap.add_argument("--col-meta", choices=("gctx", "table", "both"), default="both",
                    help="signature metadata in the GCTX (GEO style), in a siginfo table (CLUE style, "
                         "listed in sources.toml), or both (default)")
    ap.add_argument("--seed", type=int, default=0, help="random seed: same seed, same files (default 0)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    spec = ScaleSpec(out=a.out, signatures=a.signatures, genes=a.genes, landmarks=a.landmarks,
                     compounds=a.compounds, cells=a.cells, moas=a.moas, string_links=a.string_links,
                     string_min_score=a.string_min_score, string_keep_fraction=a.string_keep_fraction,
                     top_k=a.top_k, seed=a.seed, col_meta=a.col_meta, progress=not a.no_progress)
    try:
        spec.check()
    except ValueError as exc:
        ap.error(str(exc))
    print_manifest(generate(spec), a.out)


if __name__ == "__main__":
    main()
