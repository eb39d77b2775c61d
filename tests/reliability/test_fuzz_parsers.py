"""Hostile input for every parser (issue 13, item 4): property-based fuzzing with Hypothesis.

Every target below is one parser fed one small valid *seed* file that Hypothesis mutates: truncations
(at any byte or line, plain or inside gzip), random bytes and text, splices, huge lines and fields,
wrong encodings (latin-1, UTF-16/32, a BOM), NaN / inf / -666 numbers, duplicated, dropped and swapped
lines (duplicate ids), other line endings, NUL bytes, corrupt gzip; XML gets deep nesting and DTDs
(internal entities, XXE, billion laughs, external DTDs) on top; GCTX gets byte-level damage and
structurally hostile HDF5 layouts. The contract, checked on every case:

* the parser ends in **success** or in a **clear error**: a :data:`moakg.errors.USER_ERRORS` instance
  whose message names the file (the fuzzed file; for sources.toml the config or the data file it
  names). Any other exception is a crash, i.e. an unhandled traceback for the user;
* parsing never writes to the graph: adapters are consumed with ``list(adapter.batches())`` while
  :class:`Neo4jConnection` refuses to be used, and a rejected input has yielded no batch at all
  (every adapter checks its input before its first batch; small inputs stay below the DrugBank XML
  flush size);
* accepted output can be written: batches are node / relationship batches whose keys and endpoints
  are set and whose list values hold no NaN / None (Neo4j cannot store them; a scalar NaN is simply
  not written);
* a *truncated* valid file either fails or gives a subset of what the whole file gives (GAF
  annotations, OBO edges, STRING / PPI pairs, signatures, compounds ...).

The example count per property is :data:`EXAMPLES` (environment variable ``MOAKG_FUZZ_EXAMPLES``,
small by default so the file runs in well under a minute; ``benchmarks/bench_fuzz.py`` runs the same
properties with many more and counts the outcomes through :data:`RECORDER`). Examples are
derandomized: CI runs the same cases every time.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from moakg.errors import USER_ERRORS
from moakg.ingest.base import InputFormatError
from moakg.ingest.commands import adapters_from_config, load_config
from moakg.ingest.consensus_matrix import ConsensusMatrixAdapter, GeneMap
from moakg.ingest.drugbank import DrugBankAdapter, iter_xml_drugs
from moakg.ingest.go import GOAdapter
from moakg.ingest.l1000 import L1000Adapter
from moakg.ingest.l1000_io import GctFile, GctxFile, write_gctx
from moakg.ingest.overexpression import OverexpressionAdapter
from moakg.ingest.repurposing_hub import RepurposingHubAdapter
from moakg.ingest.string_ppi import StringAdapter, SymbolPairAdapter
from moakg.kg.connection import Neo4jConnection
from moakg.kg.writer import NodeBatch, RelBatch, clean_row

#: Hypothesis examples per property (the benchmark raises it)
EXAMPLES = int(os.environ.get("MOAKG_FUZZ_EXAMPLES", "25"))
#: set by the benchmark: called with (target name, outcome, detail) for every case; with a recorder a
#: crash is recorded instead of raised, so one run counts every outcome
RECORDER: Callable[[str, str, str], None] | None = None

FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=list(HealthCheck),
)

# ================================================================================== seeds: valid files
GCT = """#1.3
4\t3\t2\t5
id\tpr_gene_symbol\tpr_is_lm\tSIG1\tSIG2\tSIG3
pert_id\t-666\t-666\tBRD-K00000001\tBRD-K00000002\tBRD-K00000003
pert_iname\t-666\t-666\taspirin\timatinib\tcaffeine
pert_type\t-666\t-666\ttrt_cp\ttrt_cp\ttrt_cp
cell_id\t-666\t-666\tA375\tA375\tMCF7
pert_idose\t-666\t-666\t10 uM\t500 nM\t10 \u00b5M
7157\tTP53\t1\t1.5\t-0.25\t0.0
4193\tMDM2\t1\t-2.0\t0.75\t1.25
1956\tEGFR\t1\t0.5\t2.5\t-1.5
5290\tPIK3CA\t0\t-0.125\t-3.0\t0.625
"""
SIG_INFO = """sig_id\tpert_id\tpert_iname\tpert_type\tcell_id\tpert_idose\tpert_itime\ttas\tdistil_cc_q75\t\
pct_self_rank_q25\tis_hiq\tdistil_nsample\tprovenance
SIG1\tBRD-K00000001\taspirin\ttrt_cp\tA375\t10 uM\t24 h\t0.41\t0.52\t0.03\t1\t3\tx
SIG2\tBRD-K00000002\timatinib\ttrt_cp\tA375\t500 nM\t24 h\t0.2\t0.3\t0.1\t0\t4\tx
SIG3\tBRD-K00000003\tcaffeine\ttrt_cp\tMCF7\t-666\t6 h\t-666\tnan\t1.5\t1\t2\tx
"""
GENE_INFO_L1000 = """pr_gene_id\tpr_gene_symbol\tpr_gene_title\tpr_is_lm\tpr_is_bing
7157\tTP53\ttumor protein p53\t1\t1
4193\tMDM2\tMDM2 proto-oncogene\t1\t1
1956\tEGFR\tepidermal growth factor receptor\t1\t1
5290\tPIK3CA\tphosphatidylinositol kinase\t0\t1
"""
ASPIRIN = "CC(=O)OC1=CC=CC=C1C(O)=O"
IMATINIB = "CN1CCN(CC2=CC=C(C=C2)C(=O)NC2=CC(NC3=NC=CC(=N3)C3=CN=CC=C3)=C(C)C=C2)CC1"
CAFFEINE = "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"
PERT_INFO = f"""pert_id\tcmap_name\tpert_type\tcanonical_smiles\tinchi_key\tmoa\ttarget\tx
BRD-K00000001\taspirin\ttrt_cp\t{ASPIRIN}\tBSYNRYMUTXBXSQ-UHFFFAOYSA-N\tCyclooxygenase inhibitor\t\
PTGS1|PTGS2\tx
BRD-K00000002\timatinib\ttrt_cp\t{IMATINIB}\tKTUFNOKKBVMGRW-UHFFFAOYSA-N\tBCR-ABL inhibitor\tABL1\tx
BRD-K00000003\tcaffeine\ttrt_cp\t{CAFFEINE}\tRYYVLZVUVIJVGH-UHFFFAOYSA-N\tAdenosine receptor antagonist\t\
ADORA1\tx
"""
CELL_INFO = """cell_id\tcell_lineage\tprimary_site\tx
A375\tskin\tskin\tx
MCF7\tbreast\tbreast\tx
"""
CONSENSUS = """perturbagen\t7157\t4193\t1956\t5290
DB00945\t1.25\t-0.5\t0.375\t2.125
DB00619\t-1.5\t2.0\t0.25\t-0.75
DB00201\t0.5\tNA\t-2.5\t1.0
"""
GENES_TSV = """entrez_gene_id\tsymbol\tstatus\tx
7157\tTP53\tmeasured\tx
4193\tMDM2\tmeasured\tx
1956\tEGFR\tmeasured\tx
5290\tPIK3CA\timputed\tx
"""
OVEREXPRESSION = """perturbagen\tentrez_gene_id\tz_score\tdirection\tsymbol\tstatus\tnlog10_bonferroni_pval
7157\t4193\t5.25\tup\tMDM2\tmeasured\t3.5
7157\t1956\t-4.5\tdown\tEGFR\tmeasured\t2.25
4193\t7157\t3.75\tup\tTP53\timputed\t1.5
1956\t5290\t-6.0\tdown\tPIK3CA\tmeasured\t-666
"""
OBO = """format-version: 1.2
ontology: go

[Term]
id: GO:0008150
name: biological_process
namespace: biological_process
alt_id: GO:0000004
def: "A biological process." [GOC:go_curators]

[Term]
id: GO:0009987
name: cellular process
namespace: biological_process
is_a: GO:0008150 ! biological_process

[Term]
id: GO:0005575
name: cellular_component
namespace: cellular_component

[Term]
id: GO:0005634
name: nucleus
namespace: cellular_component
is_a: GO:0005575
relationship: part_of GO:0005575

[Term]
id: GO:0000005
name: obsolete thing
namespace: biological_process
is_obsolete: true

[Typedef]
id: part_of
name: part of
is_transitive: true
"""


def _gaf(symbol: str, go_id: str, acc: str, qualifier: str = "enables", evidence: str = "IDA",
         taxon: str = "taxon:9606") -> str:
    return "\t".join(["UniProtKB", acc, symbol, qualifier, go_id, "PMID:1", evidence, "", "P", "name", "",
                      "protein", taxon, "20240101", "UniProt", "", "x"]) + "\n"


GAF = "!gaf-version: 2.2\n!generated-by: GOC\n" + "".join([
    _gaf("TP53", "GO:0009987", "P04637"),
    _gaf("TP53", "GO:0005634", "P04637", qualifier="located_in", taxon="taxon:9606|taxon:11676"),
    _gaf("TP53", "GO:0005634", "P04637", qualifier="NOT|located_in"),
    _gaf("MDM2", "GO:0000004", "Q00987", evidence="IMP"),
    _gaf("MDM2", "GO:0000005", "Q00987"),
    _gaf("EGFR", "GO:0008150", "P00533", evidence="IEA"),
    _gaf("Trp53", "GO:0009987", "P02340", taxon="taxon:10090"),
])
STRING_LINKS = """protein1 protein2 neighborhood fusion cooccurence coexpression experimental database \
textmining combined_score
9606.ENSP01 9606.ENSP02 0 0 0 62 900 900 800 999
9606.ENSP02 9606.ENSP01 0 0 0 62 900 900 800 999
9606.ENSP01 9606.ENSP03 0 0 0 0 400 0 300 720
9606.ENSP03 9606.ENSP04 0 0 0 0 0 0 150 150
9606.ENSP04 9606.ENSP05 0 0 0 0 700 0 0 701
"""
STRING_ALIASES = """## string_protein_id ## alias ## source ##
9606.ENSP01\tTP53\tBioMart_HUGO Ensembl_HGNC
9606.ENSP02\tMDM2\tBioMart_HUGO
9606.ENSP03\tEGFR\tEnsembl_UniProt_GN
9606.ENSP04\tPIK3CA\tBioMart_HUGO
9606.ENSP04\tP42336\tUniProt_AC
"""
STRING_INFO = """protein_external_id\tpreferred_name\tprotein_size\tannotation
9606.ENSP01\tTP53\t393\tCellular tumor antigen p53
9606.ENSP02\tMDM2\t491\tE3 ubiquitin-protein ligase Mdm2
9606.ENSP03\tEGFR\t1210\tEpidermal growth factor receptor
9606.ENSP05\tAKT1\t480\tRAC-alpha kinase
"""
PPI = """source_code\tsource_symbol\ttarget_code\ttarget_symbol\tpubmed\tinteraction_type\tmethod\tx
7157\tTP53\t4193\tMDM2\t123|456\tphysical\ttwo hybrid\tx
4193\tMDM2\t7157\tTP53\t789\tphysical|direct\tpull down\tx
1956\tEGFR\t5290\tPIK3CA\t-\tphysical\t-\tx
7157\tTP53\t7157\tTP53\t1\tphysical\tx\tx
"""
DB_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<drugbank xmlns="http://www.drugbank.ca" '
           'version="5.1" exported-on="2020-04-22">\n')


def _db_drug(dbid: str, name: str, smiles: str, targets: list[tuple[str, str, str]]) -> str:
    parts = "".join(
        f"""    <target position="1"><id>BE{i:07d}</id><name>{gene} protein</name><organism>{org}</organism>
      <actions><action>inhibitor</action></actions><known-action>yes</known-action>
      <polypeptide id="P{i:05d}" source="Swiss-Prot"><name>{gene}</name><gene-name>{gene}</gene-name>
        <organism ncbi-taxonomy-id="9606">{org}</organism>
        <external-identifiers><external-identifier>
          <resource>HUGO Gene Nomenclature Committee (HGNC)</resource>
          <identifier>HGNC:{i}</identifier></external-identifier></external-identifiers>
      </polypeptide></target>
""" for i, (gene, org, _) in enumerate(targets, start=1))
    return f"""<drug type="small molecule" created="2005-06-13" updated="2020-02-26">
  <drugbank-id primary="true">{dbid}</drugbank-id>
  <drugbank-id>APRD00{dbid[-3:]}</drugbank-id>
  <name>{name}</name>
  <description>{name} is a drug &amp; more.</description>
  <cas-number>50-78-2</cas-number>
  <groups><group>approved</group></groups>
  <synonyms><synonym language="english">{name} synonym</synonym></synonyms>
  <atc-codes><atc-code code="B01AC06"><level code="B01AC">x</level></atc-code></atc-codes>
  <calculated-properties>
    <property><kind>SMILES</kind><value>{smiles}</value><source>ChemAxon</source></property>
  </calculated-properties>
  <pathways><pathway><drugs><drug><drugbank-id>DB00171</drugbank-id><name>ATP</name></drug></drugs>
  </pathway></pathways>
  <targets>
{parts}  </targets>
</drug>
"""


DRUGBANK_XML = DB_HEAD + _db_drug("DB00945", "Aspirin", ASPIRIN, [("PTGS1", "Humans", ""),
                                                                   ("PTGS2", "Humans", "")]) + \
    _db_drug("DB00619", "Imatinib", IMATINIB, [("ABL1", "Humans", ""), ("ABL1", "Mouse", "")]) + \
    "</drugbank>\n"
VOCABULARY = """DrugBank ID,Accession Numbers,Common name,CAS,UNII,Synonyms,Standard InChI Key
DB00945,APRD00264,Aspirin,50-78-2,R16CO5Y76E,"Acetylsalicylic acid | ASA",BSYNRYMUTXBXSQ-UHFFFAOYSA-N
DB00619,APRD01028,Imatinib,152459-95-5,BKJ8M8G5HI,Imatinib | STI571,KTUFNOKKBVMGRW-UHFFFAOYSA-N
DB00001,"BTD00024 | BIOD00024",Lepirudin,138068-37-8,Y43GF64R34,Hirudin variant-1,
"""
DRUGBANK_TSV = """drugbank_id\tname\ttype\tgroups\tatc_codes\tcategories\tinchikey\tinchi
DB00945\tAspirin\tsmall molecule\tapproved|vet_approved\tB01AC06\tAnti-inflammatory\t\
BSYNRYMUTXBXSQ-UHFFFAOYSA-N\tInChI=1S/C9H8O4/c1-6(10)13-8-5-3-2-4-7(8)9(11)12/h2-5H,1H3,(H,11,12)
DB00201\tCaffeine\tsmall molecule\tapproved\tN06BC01\tStimulant\tRYYVLZVUVIJVGH-UHFFFAOYSA-N\t\
InChI=1S/C8H10N4O2/c1-10-4-9-6-5(10)7(13)12(3)8(14)11(6)2/h4H,1-3H3
DB00001\tLepirudin\tbiotech\tapproved\t\t\t\t
"""
PROTEINS_TSV = """drugbank_id\tcategory\tuniprot_id\tentrez_gene_id\torganism\tknown_action\tactions\tx
DB00945\ttarget\tP23219\t5742\tHuman\tyes\tinhibitor\tx
DB00945\ttarget\tP35354\t5743\tHuman\tyes\tinhibitor|acetylation\tx
DB00201\ttarget\tP30542\t134\tHuman\tyes\tantagonist\tx
DB00201\tenzyme\tP05177\t1544\tHuman\tunknown\tsubstrate\tx
DB00001\ttarget\tP00734\t2147\tHuman\tyes\tinhibitor\tx
"""
DB_GENE_INFO = """pr_gene_id\tpr_gene_symbol\tpr_is_lm
5742\tPTGS1\t0
5743\tPTGS2\t1
134\tADORA1\t0
2147\tF2\t0
"""
HUB_DRUGS = """!The Drug Repurposing Hub
!Version Date: 03/24/2020
pert_iname\tclinical_phase\tmoa\ttarget\tdisease_area\tindication
aspirin\tLaunched\tcyclooxygenase inhibitor\tPTGS1|PTGS2\t"cardiology, pain"\tpain|fever
imatinib\tLaunched\tBCR-ABL kinase inhibitor|KIT inhibitor\tABL1|KIT\toncology\tleukemia
caffeine\tLaunched\tadenosine receptor antagonist\tADORA1\tneurology\tfatigue
"""
HUB_SAMPLES = f"""!The Drug Repurposing Hub
broad_id\tpert_iname\tqc_incompatible\tpurity\tvendor\tsmiles\tInChIKey\tpubchem_cid\tx
BRD-K11111111-001-01-1\taspirin\t0\t99\tSigma\t{ASPIRIN}\tBSYNRYMUTXBXSQ-UHFFFAOYSA-N\t2244\tx
BRD-K22222222-001-01-1\timatinib\t0\t98\tSelleck\t{IMATINIB}\tKTUFNOKKBVMGRW-UHFFFAOYSA-N\t5291\tx
BRD-K33333333-001-01-1\tcaffeine\t0\t99\tSigma\t{CAFFEINE}\tRYYVLZVUVIJVGH-UHFFFAOYSA-N\t2519\tx
"""
SOURCES_TOML = """[l1000]
gct = "l1000.gct"
pert_info = "pertinfo.tsv"
top_k = 2

[repurposing_hub]
drugs = "hub_drugs.txt"
samples = "hub_samples.txt"

[drugbank]
drugs_tsv = "drugbank.tsv"
proteins_tsv = "proteins.tsv"
gene_info = "db_geneinfo.tsv"

[l1000_consensus]
matrix = "consensi.tsv"
gene_info = ["genes.tsv"]
top_k = 2

[overexpression]
table = "dysreg.tsv"
gene_info = "genes.tsv"

[string]
links = "links.txt"
aliases = "aliases.txt"
min_score = 400

[ppi]
path = "ppi.tsv"

[go]
obo = "go.obo"
gaf = "goa.gaf"
"""
#: every seed file by name (sources.toml points at these names)
SEEDS: dict[str, str] = {
    "l1000.gct": GCT, "sig_info.tsv": SIG_INFO, "geneinfo.tsv": GENE_INFO_L1000, "pertinfo.tsv": PERT_INFO,
    "cellinfo.tsv": CELL_INFO, "consensi.tsv": CONSENSUS, "genes.tsv": GENES_TSV,
    "dysreg.tsv": OVEREXPRESSION,
    "go.obo": OBO, "goa.gaf": GAF, "links.txt": STRING_LINKS, "aliases.txt": STRING_ALIASES,
    "info.txt": STRING_INFO, "ppi.tsv": PPI, "drugbank.xml": DRUGBANK_XML, "vocabulary.csv": VOCABULARY,
    "drugbank.tsv": DRUGBANK_TSV, "proteins.tsv": PROTEINS_TSV, "db_geneinfo.tsv": DB_GENE_INFO,
    "hub_drugs.txt": HUB_DRUGS, "hub_samples.txt": HUB_SAMPLES, "sources.toml": SOURCES_TOML,
}


def gctx_seed() -> bytes:
    """The GCT seed as a GCTX (HDF5) file, with a latin-1 dose as real files have."""
    g = GctFile.__new__(GctFile)
    g.path = Path("seed.gct")
    g._parse(io.StringIO(GCT))
    col = g.col_meta.copy()
    col["pert_idose"] = [b"10 \xb5M", b"500 nM", b"10 uM"]
    with tempfile.TemporaryDirectory() as d:
        p = write_gctx(Path(d) / "seed.gctx", g.values, g.row_meta, col)
        return p.read_bytes()


# ====================================================================================== mutations
_NUMBER = re.compile(rb"(?<![\w.:-])-?\d+(?:\.\d+)?(?![\w.:])")
SPECIAL_NUMBERS = [b"nan", b"NaN", b"-nan", b"inf", b"-inf", b"Infinity", b"1e999", b"-1e999", b"1e-400",
                   b"-666", b"", b"0x1A", b"1_000", b"\xd9\xa3", b"\xef\xbc\x97", b"9" * 400, b"1,5"]
HUGE = [70_000, 140_000, 1_100_000]
_DELIMS = list("\t,\"'\n\r|;:!#[]{}<>&=% -.0123456789eEnaNINFxX\\/")
hostile_text = st.text(alphabet=st.sampled_from(_DELIMS) | st.characters(), max_size=40)


def _line_bounds(data: bytes) -> list[int]:
    return [0] + [m.end() for m in re.finditer(rb"\n", data)]


def _mutate_once(draw: st.DrawFn, data: bytes, binary: bool) -> tuple[str, bytes]:
    kinds = ["splice_bytes", "random_bytes", "flip_bytes", "truncate", "empty", "zero_range"]
    if not binary:
        kinds += ["splice_text", "random_text", "huge_line", "huge_field", "latin1", "utf16", "bom",
                  "nan_inf",
                  "nan_inf", "dup_line", "dup_line", "drop_line", "swap_lines", "field", "field",
                  "line_endings", "nul", "header_only"]
    kind = draw(st.sampled_from(kinds))
    n = len(data)
    if kind == "truncate":
        return kind, data[: draw(st.integers(0, n))]
    if kind == "empty":
        return kind, b""
    if kind == "random_bytes":
        return kind, draw(st.binary(max_size=600))
    if kind == "random_text":
        return kind, draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")
    if kind == "splice_bytes":
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 64)))
        return kind, data[:i] + draw(st.binary(max_size=64)) + data[j:]
    if kind == "flip_bytes":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            if buf:
                k = draw(st.integers(0, len(buf) - 1))
                buf[k] ^= draw(st.integers(1, 255))
        return kind, bytes(buf)
    if kind == "zero_range":
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 4096)))
        return kind, data[:i] + b"\x00" * (j - i) + data[j:]
    if kind == "splice_text":
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 40)))
        return kind, data[:i] + draw(hostile_text).encode("utf-8", "surrogatepass") + data[j:]
    bounds = _line_bounds(data)
    if kind == "huge_line":
        at = draw(st.sampled_from(bounds))
        unit = draw(st.sampled_from([b"A", b"\t", b",", b'"', b"9", b"x\t", b"|", b" "]))
        return kind, data[:at] + unit * draw(st.sampled_from(HUGE)) + b"\n" + data[at:]
    if kind == "huge_field":
        at = draw(st.sampled_from(bounds[1:] or [n]))
        at = max(at - 1, 0)  # just before a newline: the last field of a line grows
        return kind, data[:at] + b"y" * draw(st.sampled_from(HUGE)) + data[at:]
    if kind == "latin1":
        text = data.decode("utf-8", "replace")
        i = draw(st.integers(0, len(text)))
        return kind, (text[:i] + draw(st.sampled_from(["\xe9", "\xb5M", "kr\xfcppel", "\xff\xfe"])) +
                      text[i:]).encode("latin-1", "replace")
    if kind == "utf16":
        enc = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
        return kind, data.decode("utf-8", "replace").encode(enc)
    if kind == "bom":
        return kind, b"\xef\xbb\xbf" + data
    if kind == "nan_inf":
        spans = [m.span() for m in _NUMBER.finditer(data)]
        if not spans:
            return kind, data
        chosen = sorted(set(draw(st.lists(st.sampled_from(spans), min_size=1, max_size=4))), reverse=True)
        for i, j in chosen:
            data = data[:i] + draw(st.sampled_from(SPECIAL_NUMBERS)) + data[j:]
        return kind, data
    lines = data.split(b"\n")
    if kind == "dup_line":
        k = draw(st.integers(0, len(lines) - 1))
        at = draw(st.integers(0, len(lines)))
        return kind, b"\n".join(lines[:at] + [lines[k]] + lines[at:])
    if kind == "drop_line":
        k = draw(st.integers(0, len(lines) - 1))
        return kind, b"\n".join(lines[:k] + lines[k + 1:])
    if kind == "swap_lines":
        a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[a], lines[b] = lines[b], lines[a]
        return kind, b"\n".join(lines)
    if kind == "field":
        k = draw(st.integers(0, len(lines) - 1))
        sep = b"\t" if b"\t" in lines[k] else (b"," if b"," in lines[k] else b" ")
        fields = lines[k].split(sep)
        f = draw(st.integers(0, len(fields) - 1))
        fields[f] = draw(hostile_text).encode("utf-8", "surrogatepass")
        lines[k] = sep.join(fields)
        return kind, b"\n".join(lines)
    if kind == "line_endings":
        ending = draw(st.sampled_from([b"\r\n", b"\r", b"\n\n", b"\x85", "\u2028".encode()]))
        return kind, data.replace(b"\n", ending)
    if kind == "nul":
        i = draw(st.integers(0, n))
        return kind, data[:i] + b"\x00" * draw(st.integers(1, 3)) + data[i:]
    if kind == "header_only":
        return kind, lines[0] + b"\n"
    raise AssertionError(kind)


def _gzip_layer(draw: st.DrawFn, data: bytes) -> tuple[str, bytes]:
    how = draw(st.sampled_from(["plain", "plain", "plain", "plain", "gzip", "gzip_truncated", "gzip_corrupt",
                                "gzip_trailing_garbage", "zip", "zip_truncated"]))
    if how == "plain":
        return "", data
    if how.startswith("zip"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("data.xml", data)
        z = buf.getvalue()
        return "+" + how, z if how == "zip" else z[: draw(st.integers(0, len(z) - 1))]
    z = gzip.compress(data, mtime=0)
    if how == "gzip_truncated":
        z = z[: draw(st.integers(0, len(z) - 1))]
    elif how == "gzip_corrupt":
        buf = bytearray(z)
        k = draw(st.integers(2, len(buf) - 1))
        buf[k] ^= draw(st.integers(1, 255))
        z = bytes(buf)
    elif how == "gzip_trailing_garbage":
        z += draw(st.binary(min_size=1, max_size=16))
    return "+" + how, z


@dataclass(frozen=True)
class Case:
    """One hostile input: how it was made and its bytes; ``prefix`` when it is a truncated seed."""

    kind: str
    data: bytes
    prefix: bool = False

    def __repr__(self) -> str:  # short in Hypothesis' falsifying-example report
        return f"Case({self.kind!r}, {len(self.data)} bytes, {self.data[:300]!r})"


@st.composite
def hostile(draw: st.DrawFn, seed: bytes, binary: bool = False,
            extra: Callable[[st.DrawFn, bytes], tuple[str, bytes]] | None = None) -> Case:
    """A hostile variant of ``seed``: a truncation (maybe gzipped), or 1-3 mutations (maybe gzipped)."""
    branch = draw(st.sampled_from(["truncate", "mutate", "mutate", "mutate"] + (["extra"] if extra else [])))
    if branch == "truncate":
        if binary or draw(st.booleans()):
            data = seed[: draw(st.integers(0, len(seed)))]
        else:
            data = seed[: draw(st.sampled_from(_line_bounds(seed)))]
        gz, out = _gzip_layer(draw, data) if not binary else ("", data)
        return Case("truncate" + gz, out, prefix=gz in ("", "+gzip", "+gzip_trailing_garbage", "+zip"))
    if branch == "extra":
        assert extra is not None
        kind, data = extra(draw, seed)
        return Case(kind, data)
    kinds, data = [], seed
    for _ in range(draw(st.integers(1, 3))):
        kind, data = _mutate_once(draw, data, binary)
        kinds.append(kind)
    gz, data = _gzip_layer(draw, data) if not binary else ("", data)
    return Case("+".join(kinds) + gz, data)


# =========================================================================================== XML extras
SECRET = "MOAKG-FUZZ-SECRET-7f3a9c"


def _with_doctype(xml: str, subset: str, root_text: str) -> bytes:
    body = xml.split("\n", 1)[1]  # after the XML declaration
    body = body.replace("<name>Aspirin</name>", f"<name>{root_text}</name>", 1)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE drugbank {subset}>\n' + body).encode()


def secret_file() -> Path:
    p = Path(tempfile.gettempdir()) / "moakg-fuzz-secret.txt"
    if not p.exists():
        p.write_text(SECRET + "\n", encoding="utf-8")
    return p


def billion_laughs(levels: int = 10) -> str:
    ents = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)]
    return "[" + "".join(ents) + "]"


def xml_attacks(draw: st.DrawFn, seed: bytes) -> tuple[str, bytes]:
    """DTD-based attacks and XML-specific damage on the DrugBank seed."""
    xml = seed.decode("utf-8")
    kind = draw(st.sampled_from(["internal_entity", "xxe", "xxe_parameter", "billion_laughs", "quadratic",
                                 "external_dtd", "deep_nesting", "deep_nesting_unclosed",
                                 "wrong_encoding_decl",
                                 "undefined_entity", "cdata_comment_pi", "nested_drugs"]))
    secret = secret_file().as_uri()
    if kind == "internal_entity":
        return kind, _with_doctype(xml, '[<!ENTITY x "hello">]', "&x;")
    if kind == "xxe":
        return kind, _with_doctype(xml, f'[<!ENTITY x SYSTEM "{secret}">]', "&x;")
    if kind == "xxe_parameter":
        return kind, _with_doctype(xml, f'[<!ENTITY % p SYSTEM "{secret}"> %p;]', "x")
    if kind == "billion_laughs":
        return kind, _with_doctype(xml, billion_laughs(draw(st.integers(3, 10))), f"&lol{2};")
    if kind == "quadratic":
        return kind, _with_doctype(xml, f'[<!ENTITY a "{"A" * 50_000}">]', "&a;" * 2_000)
    if kind == "external_dtd":
        return kind, _with_doctype(xml, f'SYSTEM "{secret}"', "x")
    if kind in ("deep_nesting", "deep_nesting_unclosed"):
        depth = draw(st.sampled_from([1_000, 50_000, 200_000]))
        inner = "<n>" * depth + ("" if kind.endswith("unclosed") else "</n>" * depth)
        return kind, xml.replace("<cas-number>", inner + "<cas-number>", 1).encode()
    if kind == "wrong_encoding_decl":
        enc = draw(st.sampled_from(["UTF-16", "ISO-8859-1", "EBCDIC-US", "nonsense", "UTF-32"]))
        xml = xml.replace('encoding="UTF-8"', f'encoding="{enc}"')
        return kind, xml.replace("Aspirin", "Asp\u00efrin").encode()
    if kind == "undefined_entity":
        return kind, xml.replace("&amp;", "&nbsp;", 1).encode()
    if kind == "cdata_comment_pi":
        return kind, xml.replace("<cas-number>", "<!-- <!DOCTYPE x> --><?pi data?><![CDATA[<!ENTITY y>]]>"
                                 "<cas-number>", 1).encode()
    # a <drug> nested in a top-level drug (like pathway drugs) and a drug without an id
    return kind, xml.replace("</drugbank>", '<drug type="x"><name>no id</name></drug></drugbank>').encode()


# =========================================================================================== targets
Batches = list[Any]


@dataclass
class Target:
    """One parser and the seed file fuzzed for it."""

    name: str
    fuzzed: str  # the seed file name that is mutated
    run: Callable[[dict[str, Path]], Iterable[Any]]  # the adapter's batches (or other parse output)
    summary: Callable[[Batches], set] | None = None  # what a truncated file may only shrink
    binary: bool = False
    extra: Callable[[st.DrawFn, bytes], tuple[str, bytes]] | None = None
    seed: Callable[[], bytes] | None = None
    files_named: Callable[[dict[str, Path]], list[Path]] | None = None  # files an error may name
    #: an error that may come after batches: GCTX values are streamed in blocks after the Gene batch (a
    #: 5 GB matrix is not read twice), so a corrupt value chunk is only found while streaming
    streamed_error: str | None = None

    def seed_bytes(self) -> bytes:
        return self.seed() if self.seed is not None else SEEDS[self.fuzzed].encode("utf-8")


def _rels(batches: Batches, *types: str) -> set:
    return {(b.rel_type, r["start"], r["end"]) for b in batches if isinstance(b, RelBatch)
            and (not types or b.rel_type in types) for r in b.rows}


def _nodes(batches: Batches, label: str, prop: str) -> set:
    return {r.get(prop) for b in batches if isinstance(b, NodeBatch) and b.label == label for r in b.rows}


def _l1000(p: dict[str, Path], **tables: str) -> Iterator[Any]:
    kw = {k: p[v] for k, v in tables.items()}
    return L1000Adapter(gct=p["l1000.gct"], top_k=2, **kw).batches()


def _sigs(batches: Batches) -> set:
    return _nodes(batches, "Signature", "sig_id")


def _gct_reader(path: Path) -> Iterator[Any]:
    g = GctFile(path)
    g.read(np.arange(g.shape[0]))
    yield from ()


def _gctx_run(p: dict[str, Path]) -> Iterator[Any]:
    yield from L1000Adapter(gctx=p["l1000.gctx"], top_k=2).batches()


def _drugbank_tsvs(p: dict[str, Path]) -> Iterator[Any]:
    return DrugBankAdapter(drugs_tsv=p["drugbank.tsv"], proteins_tsv=p["proteins.tsv"],
                           gene_info=p["db_geneinfo.tsv"]).batches()


#: yielded between two adapters of one run: each adapter is its own ingest, checked before its first batch
ADAPTER_DONE = object()


def _config_run(p: dict[str, Path]) -> Iterator[Any]:
    load_config(p["sources.toml"])
    for adapter in adapters_from_config(p["sources.toml"]):
        yield from adapter.batches()
        yield ADAPTER_DONE


def _any_file(p: dict[str, Path]) -> list[Path]:
    """Any input, or any path in their folder (a sources.toml names its own paths)."""
    return [*p.values(), next(iter(p.values())).parent]


def _gaf_pairs(batches: Batches) -> set:
    return _rels(batches, "ANNOTATED_WITH")


TARGETS: dict[str, Target] = {t.name: t for t in [
    # L1000: GCT text, GCTX, and the metadata tables (l1000_io, l1000_meta, l1000 adapter)
    Target("gct", "l1000.gct", lambda p: _l1000(p), _sigs),
    Target("gct_reader", "l1000.gct", lambda p: _gct_reader(p["l1000.gct"])),
    Target("gctx_bytes", "l1000.gctx", _gctx_run, binary=True, seed=gctx_seed,
           streamed_error="cannot read matrix values"),
    Target("l1000_sig_info", "sig_info.tsv", lambda p: _l1000(p, sig_info="sig_info.tsv"), _sigs),
    Target("l1000_gene_info", "geneinfo.tsv", lambda p: _l1000(p, gene_info="geneinfo.tsv"), _sigs),
    Target("l1000_pert_info", "pertinfo.tsv", lambda p: _l1000(p, pert_info="pertinfo.tsv"), _sigs),
    Target("l1000_cell_info", "cellinfo.tsv", lambda p: _l1000(p, cell_info="cellinfo.tsv"), _sigs),
    # consensus matrix and its gene table, over-expression table
    Target("consensus_matrix", "consensi.tsv",
           lambda p: ConsensusMatrixAdapter(p["consensi.tsv"], gene_info=p["genes.tsv"], top_k=2,
                                            genes=GeneMap()).batches(), _sigs),
    Target("consensus_gene_info", "genes.tsv",  # an empty gene table: the matrix's genes map to nothing
           lambda p: ConsensusMatrixAdapter(p["consensi.tsv"], gene_info=p["genes.tsv"], top_k=2,
                                            genes=GeneMap()).batches(), files_named=_any_file),
    Target("overexpression", "dysreg.tsv",
           lambda p: OverexpressionAdapter(p["dysreg.tsv"], genes=GeneMap()).batches(),
           lambda b: {(t, s, e) for t, s, e in _rels(b, "UPREGULATES", "DOWNREGULATES")}),
    # GO
    Target("go_obo", "go.obo", lambda p: GOAdapter(p["go.obo"]).batches(),
           lambda b: _rels(b, "IS_A", "PART_OF")),
    Target("go_gaf", "goa.gaf", lambda p: GOAdapter(p["go.obo"], gaf=p["goa.gaf"]).batches(), _gaf_pairs),
    # STRING and symbol-pair PPI tables
    Target("string_links", "links.txt",
           lambda p: StringAdapter(p["links.txt"], aliases=p["aliases.txt"], info=p["info.txt"],
                                   min_score=400).batches(), lambda b: _rels(b)),
    Target("string_aliases", "aliases.txt",
           lambda p: StringAdapter(p["links.txt"], aliases=p["aliases.txt"], min_score=400).batches(),
           lambda b: _rels(b)),
    Target("string_info", "info.txt",
           lambda p: StringAdapter(p["links.txt"], info=p["info.txt"], min_score=400).batches(),
           lambda b: _rels(b)),
    Target("ppi_tsv", "ppi.tsv", lambda p: SymbolPairAdapter(p["ppi.tsv"]).batches(), lambda b: _rels(b)),
    # DrugBank
    Target("drugbank_xml", "drugbank.xml", lambda p: DrugBankAdapter(xml=p["drugbank.xml"]).batches(),
           lambda b: _nodes(b, "Compound", "drugbank_id"), extra=xml_attacks),
    Target("drugbank_vocabulary", "vocabulary.csv",
           lambda p: DrugBankAdapter(vocabulary=p["vocabulary.csv"]).batches(),
           lambda b: _nodes(b, "Compound", "drugbank_id")),
    Target("drugbank_drugs_tsv", "drugbank.tsv", _drugbank_tsvs,
           lambda b: _nodes(b, "Compound", "drugbank_id")),
    Target("drugbank_proteins_tsv", "proteins.tsv", _drugbank_tsvs, lambda b: _rels(b, "TARGETS")),
    Target("drugbank_gene_info", "db_geneinfo.tsv", _drugbank_tsvs, lambda b: _rels(b, "TARGETS")),
    # Repurposing Hub
    Target("hub_drugs", "hub_drugs.txt",
           lambda p: RepurposingHubAdapter(p["hub_drugs.txt"], samples=p["hub_samples.txt"]).batches(),
           lambda b: _nodes(b, "MoA", "name")),
    Target("hub_samples", "hub_samples.txt",
           lambda p: RepurposingHubAdapter(p["hub_drugs.txt"], samples=p["hub_samples.txt"]).batches(),
           lambda b: {x for x in _nodes(b, "Compound", "pert_id") if x}),
    # sources.toml: load_config, adapters_from_config, and then every adapter's batches
    Target("sources_toml", "sources.toml", _config_run, files_named=_any_file),
]}


# =========================================================================================== the contract
class GraphWriteAttempt(AssertionError):
    """Parsing tried to use a Neo4j connection."""


@contextmanager
def graph_refused() -> Iterator[None]:
    """While it lasts, any use of a Neo4j connection (opening one included) raises GraphWriteAttempt."""

    def refuse(*_a: Any, **_k: Any) -> None:
        raise GraphWriteAttempt("a parser touched Neo4j")

    names = ("__init__", "query", "session", "write", "read")
    saved = {n: Neo4jConnection.__dict__[n] for n in names}
    try:
        for n in names:
            setattr(Neo4jConnection, n, refuse)
        yield
    finally:
        for n, v in saved.items():
            setattr(Neo4jConnection, n, v)


@pytest.fixture(autouse=True)
def _no_graph() -> Iterator[None]:
    with graph_refused():
        yield


def write_inputs(target: Target, folder: Path, data: bytes) -> dict[str, Path]:
    paths = {}
    for name, text in SEEDS.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    paths[target.fuzzed] = folder / target.fuzzed
    paths[target.fuzzed].write_bytes(data)
    return paths


def _check_rows(batches: Batches) -> None:
    """Accepted output is writable (as :func:`moakg.kg.writer.clean_row` prepares it): node keys and
    relationship endpoints are set, and no list value holds a missing value (Neo4j cannot store a list
    with nulls; a scalar NaN or None is simply not written)."""
    for b in batches:
        assert isinstance(b, NodeBatch | RelBatch), f"parsing yielded {type(b).__name__}, not a batch"
        what = b.label if isinstance(b, NodeBatch) else b.rel_type
        for raw in b.rows:
            r = clean_row(raw)
            if isinstance(b, NodeBatch):
                assert isinstance(r.get(b.key), str | int) and r[b.key] != "", \
                    f"{what} row without {b.key}: {raw}"
            else:
                assert r.get("start") not in (None, "") and r.get("end") not in (None, ""), \
                    f"{what} row without an endpoint: {raw}"
            for k, v in r.items():
                assert not (isinstance(v, list) and any(x is None for x in v)), \
                    f"{what}.{k}: a list with NaN: {v}"


_FULL: dict[str, set] = {}


def full_summary(target: Target) -> set:
    """What the intact seed gives (computed once per target)."""
    if target.name not in _FULL:
        assert target.summary is not None
        with tempfile.TemporaryDirectory() as d:
            paths = write_inputs(target, Path(d), target.seed_bytes())
            batches = list(target.run(paths))
        _FULL[target.name] = target.summary(batches)
        assert _FULL[target.name], f"{target.name}: the seed gives nothing to compare with"
    return _FULL[target.name]


def check_case(target: Target, case: Case) -> str:
    """Run one case; 'accepted' or 'rejected' (a clear error), else an AssertionError / the crash."""
    with tempfile.TemporaryDirectory() as d:
        paths = write_inputs(target, Path(d), case.data)
        batches: Batches = []
        this_adapter = 0  # batches the failing adapter yielded (sources.toml runs several)
        try:
            for b in target.run(paths):
                if b is ADAPTER_DONE:
                    this_adapter = 0
                    continue
                batches.append(b)
                this_adapter += 1
        except USER_ERRORS as exc:
            msg = str(exc)
            named = target.files_named(paths) if target.files_named else [paths[target.fuzzed]]
            assert any(str(p) in msg or p.name in msg for p in named), \
                f"{type(exc).__name__} does not name the file: {msg[:300]}"
            streamed = target.streamed_error is not None and target.streamed_error in msg
            assert not this_adapter or streamed, \
                f"{this_adapter} batches were yielded before the error: {msg[:200]}"
            return "rejected"
        _check_rows(batches)
        if case.prefix and target.summary is not None:
            extra = target.summary(batches) - full_summary(target)
            assert not extra, f"a truncated file gave what the whole file does not: {sorted(extra)[:5]}"
        return "accepted"


def run_case(target: Target, case: Case) -> None:
    """The property body: raises on a broken contract (tests), or records it (benchmark)."""
    if RECORDER is None:
        check_case(target, case)
        return
    start = time.perf_counter()
    try:
        outcome, detail = check_case(target, case), case.kind
    except Exception as exc:  # noqa: BLE001 - the benchmark counts every crash
        outcome = "crash"
        detail = f"{case.kind}: {type(exc).__name__}: {str(exc)[:200]} @ " + \
            traceback.extract_tb(exc.__traceback__)[-1].filename.split("/")[-1] + ":" + \
            str(traceback.extract_tb(exc.__traceback__)[-1].lineno)
    RECORDER(target.name, outcome, f"{detail} ({time.perf_counter() - start:.2f} s)")


def _strategy(target: Target) -> st.SearchStrategy[Case]:
    return hostile(target.seed_bytes(), target.binary, target.extra)


def make_property(name: str) -> Callable[..., None]:
    target = TARGETS[name]

    @FUZZ
    @given(case=st.deferred(lambda: _strategy(target)))
    def prop(case: Case) -> None:
        run_case(target, case)

    prop.__name__ = f"fuzz_{name}"
    return prop


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_hostile_input(name: str) -> None:
    make_property(name)()


# ================================================================ structured GCTX and sources.toml fuzzing
META_KINDS = ["str", "latin1", "int", "float_nan", "dup", "scalar", "2d", "empty", "group", "missing",
              "random_bytes", "short", "huge_string", "vlen_str", "bool"]
MATRIX_KINDS = ["ok", "ok", "nan_inf", "wrong_shape", "1d", "3d", "str", "scalar", "missing", "group", "int",
                "complex", "empty"]


@st.composite
def gctx_layouts(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "col_id": draw(st.sampled_from(META_KINDS)), "row_id": draw(st.sampled_from(META_KINDS)),
        "col_field": draw(st.sampled_from(META_KINDS)), "row_field": draw(st.sampled_from(META_KINDS)),
        "matrix": draw(st.sampled_from(MATRIX_KINDS)), "junk": draw(st.binary(max_size=20)),
        "meta_is_dataset": draw(st.sampled_from(["", "", "", "", "COL", "ROW"])),
        "field_name": draw(st.sampled_from(["pert_id", "pr_gene_symbol", "pr_is_lm", "pert_idose",
                                            "weird name",
                                            "cell_id"])),
    }


def _meta_data(kind: str, n: int, junk: bytes, prefix: str) -> Any:
    ids = [f"{prefix}{i}" for i in range(n)]
    return {
        "str": np.array([s.encode() for s in ids], dtype="S16"),
        "latin1": np.array([f"{s}\xb5".encode("latin-1") for s in ids], dtype="S16"),
        "int": np.arange(n, dtype=np.int64),
        "float_nan": np.array([np.nan, np.inf, -np.inf, -666.0][:n] + [1.5] * max(0, n - 4)),
        "dup": np.array([b"same"] * n, dtype="S8"),
        "scalar": np.array(b"one"),
        "2d": np.array([[s.encode()] * 2 for s in ids], dtype="S16"),
        "empty": np.array([], dtype="S4"),
        "short": np.array([s.encode() for s in ids[:-1]], dtype="S16"),
        "random_bytes": np.array([junk + bytes([i]) for i in range(n)], dtype=f"S{len(junk) + 1}"),
        "huge_string": np.array([s.encode() + b"z" * 100_000 for s in ids]),
        "vlen_str": np.array(ids, dtype=h5py.string_dtype()),
        "bool": np.array([True, False] * n)[:n],
    }.get(kind)


def write_hostile_gctx(path: Path, spec: dict[str, Any]) -> None:
    n_col, n_row = 3, 4
    with h5py.File(path, "w") as h5:
        h5.attrs["version"] = np.array([b"GCTX1.0"], dtype="S8")
        data = {
            "ok": np.arange(n_col * n_row, dtype=np.float32).reshape(n_col, n_row) - 5,
            "nan_inf": np.array([[np.nan, np.inf, -np.inf, -666.0]] * n_col, dtype=np.float32),
            "wrong_shape": np.zeros((n_row, n_col), dtype=np.float32),
            "1d": np.zeros(n_col, dtype=np.float32), "3d": np.zeros((n_col, n_row, 2), dtype=np.float32),
            "str": np.array([[b"x"] * n_row] * n_col), "scalar": np.float32(1.0),
            "int": np.ones((n_col, n_row), dtype=np.int16),
            "complex": np.ones((n_col, n_row), dtype=np.complex64), "empty": np.zeros((0, 0), np.float32),
        }.get(spec["matrix"])
        if spec["matrix"] == "group":
            h5.create_group("0/DATA/0/matrix")
        elif data is not None:
            h5.create_dataset("0/DATA/0/matrix", data=data)
        for which, n, prefix in (("COL", n_col, "SIG"), ("ROW", n_row, "")):
            name = f"0/META/{which}"
            if spec["meta_is_dataset"] == which:
                h5.create_dataset(name, data=np.arange(3))
                continue
            grp = h5.require_group(name)
            w = which.lower()
            for key, kind in (("id", spec[f"{w}_id"]), (spec["field_name"], spec[f"{w}_field"])):
                if kind == "group":
                    grp.create_group(key)
                elif kind != "missing":
                    grp.create_dataset(key, data=_meta_data(kind, n, spec["junk"], prefix))
            if which == "ROW":
                for key, value in (("pr_gene_symbol", [b"TP53", b"MDM2", b"EGFR", b"AKT1"]),
                                   ("pr_is_lm", [1, 1, 0, 1])):
                    if key not in grp:
                        grp.create_dataset(key, data=np.array(value))


GCTX_TARGET = Target("gctx_layout", "l1000.gctx", _gctx_run)


def check_gctx_layout(spec: dict[str, Any]) -> str:
    """A structurally hostile GCTX: GctxFile, reading every value, and the L1000 adapter."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "l1000.gctx"
        write_hostile_gctx(path, spec)
        try:
            g = GctxFile(path)
            g.read(np.arange(g.shape[0]))
            batches = list(L1000Adapter(gctx=path, top_k=2, all_genes=True).batches())
        except USER_ERRORS as exc:
            assert path.name in str(exc), f"{type(exc).__name__} does not name the file: {exc}"
            return "rejected"
        _check_rows(batches)
        return "accepted"


def _layout(**kw: Any) -> dict[str, Any]:
    return {"col_id": "str", "row_id": "str", "col_field": "str", "row_field": "str", "matrix": "ok",
            "junk": b"", "meta_is_dataset": "", "field_name": "pert_id", **kw}


@FUZZ
@given(spec=gctx_layouts())
# Regressions: each was an h5py / numpy exception before the GCTX checks
@example(spec=_layout(matrix="group"))  # AttributeError: 'Group' object has no attribute 'ndim'
@example(spec=_layout(row_id="group"))  # TypeError: Accessing a group is done with bytes or str
@example(spec=_layout(col_id="scalar"))  # TypeError: iteration over a 0-d array
@example(spec=_layout(matrix="str"))  # ValueError: could not convert string to float (reading values)
@example(spec=_layout(meta_is_dataset="COL"))  # a dataset where the COL group belongs
@example(spec=_layout(col_id="random_bytes", junk=b" "))  # ids ' \x00' ...: not empty, accepted
@example(spec=_layout(col_id="empty"))  # no COL ids at all: the matrix shape does not match
def _gctx_layout_property(spec: dict[str, Any]) -> None:
    if RECORDER is None:
        check_gctx_layout(spec)
        return
    try:
        outcome, detail = check_gctx_layout(spec), ""
    except Exception as exc:  # noqa: BLE001
        outcome, detail = "crash", f"{spec}: {type(exc).__name__}: {str(exc)[:200]}"
    RECORDER("gctx_layout", outcome, detail)


def test_gctx_layouts() -> None:
    _gctx_layout_property()


# -- sources.toml with typed values: every known key, any TOML value
CONFIG_KEYS: dict[str, list[str]] = {
    "l1000": ["gct", "gctx", "sig_info", "gene_info", "pert_info", "cell_info", "top_k", "all_genes",
              "compounds_only", "pert_types", "require_hiq", "require_qc_pass", "min_tas", "min_cc_q75",
              "max_pct_self_rank_q25", "pct_self_rank_scale", "level", "mad_floor", "chunk_rows"],
    "repurposing_hub": ["drugs", "samples"],
    "drugbank": ["xml", "vocabulary", "drugs_tsv", "proteins_tsv", "gene_info", "categories", "organism",
                 "strict"],
    "l1000_consensus": ["matrix", "gene_info", "id_type", "gene_type", "top_k", "create_compounds"],
    "overexpression": ["table", "gene_info"],
    "string": ["links", "info", "aliases", "min_score", "alias_sources"],
    "ppi": ["path", "source", "symbol_columns", "list_columns", "pubmed_column"],
    "go": ["obo", "gaf", "include_obsolete", "taxon", "evidence_exclude"],
}
_scalars = (st.sampled_from(sorted(SEEDS)) | st.sampled_from(["", "missing.tsv", "../../../etc/passwd", "/",
                                                              ".", "auto", "5", "trt_cp", "target", "Humans"])
            | hostile_text | st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 1, -1, 10**6])
            | st.floats(allow_nan=True, allow_infinity=True) | st.booleans())
toml_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6) | \
    st.dictionaries(st.sampled_from(["a", "path", "x"]), _scalars, max_size=2)


def toml_literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_literal(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_literal(x)}" for k, x in v.items()) + "}"


@st.composite
def toml_configs(draw: st.DrawFn) -> str:
    out = []
    for section in draw(st.lists(st.sampled_from([*CONFIG_KEYS, "nonsense"]), min_size=1, max_size=3,
                                 unique=True)):
        keys = CONFIG_KEYS.get(section, ["path"]) + ["enabled", "unknown_key"]
        out.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(keys), max_size=5, unique=True)):
            out.append(f"{key} = {toml_literal(draw(toml_values))}")
    return "\n".join(out) + "\n"


CONFIG_TYPED = Target("sources_toml_typed", "sources.toml", _config_run, files_named=_any_file)


@FUZZ
@given(text=toml_configs())
# Regressions: TypeError / AttributeError from a factory or, later, from the parsing
@example(text='[string]\nlinks = {a = 1}\n')  # Path / dict
@example(text='[go]\nobo = "go.obo"\nevidence_exclude = [1, 2]\n')  # int.strip()
@example(text='[l1000]\ngct = "l1000.gct"\ntop_k = 1.5\nchunk_rows = "9"\n')  # slice indices must be int
@example(text='[l1000_consensus]\nmatrix = "consensi.tsv"\ntop_k = 2.5\n')
@example(text='[drugbank]\ndrugs_tsv = "drugbank.tsv"\norganism = 5\n')  # int.split() while parsing
@example(text='[string]\nlinks = "links.txt"\naliases = "aliases.txt"\nmin_score = inf\n')  # int(inf)
def _config_property(text: str) -> None:
    run_case(CONFIG_TYPED, Case("typed_config", text.encode("utf-8", "surrogatepass")))


def test_sources_toml_typed_values() -> None:
    _config_property()


# ============================================================================ explicit attack and regressions
def _db_rows_text(batches: Batches) -> str:
    return repr([(b, list(b.rows)) for b in batches])


@pytest.mark.parametrize("subset", [
    '[<!ENTITY x SYSTEM "{uri}">]', '[<!ENTITY % p SYSTEM "{uri}"> %p;]', 'SYSTEM "{uri}"',
    'PUBLIC "-//X//Y" "{uri}"'])
def test_drugbank_xml_refuses_external_entities(tmp_path: Path, subset: str) -> None:
    """XXE: the secret file's content appears nowhere: not in the error, not in any output."""
    uri = secret_file().as_uri()
    path = tmp_path / "xxe.xml"
    path.write_bytes(_with_doctype(DRUGBANK_XML, subset.replace("{uri}", uri), "&x;"
                                   if "ENTITY x" in subset else "x"))
    out: Batches = []
    with pytest.raises(InputFormatError, match=r"xxe\.xml.*DOCTYPE") as err:
        out.extend(DrugBankAdapter(xml=path).batches())
    assert SECRET not in str(err.value) and SECRET not in _db_rows_text(out)
    assert not out


@pytest.mark.parametrize(("encoding", "declared"), [("utf-8", "UTF-8"), ("utf-16", "UTF-16"),
                                                     ("utf-16-be", "UTF-16BE"), ("utf-8-sig", "UTF-8")])
def test_drugbank_xml_billion_laughs_is_refused_fast(tmp_path: Path, encoding: str, declared: str) -> None:
    """Entity expansion (10^9 'lol's) is refused before any expansion, whatever the encoding."""
    path = tmp_path / "lol.xml"
    text = _with_doctype(DRUGBANK_XML, billion_laughs(10), "&lol9;").decode()
    path.write_bytes(text.replace('encoding="UTF-8"', f'encoding="{declared}"').encode(encoding))
    start = time.perf_counter()
    with pytest.raises(InputFormatError, match=r"lol\.xml.*DOCTYPE"):
        list(iter_xml_drugs(path))
    assert time.perf_counter() - start < 1.0


def test_drugbank_xml_internal_entities_are_refused_too(tmp_path: Path) -> None:
    """DrugBank never declares a DTD: any DOCTYPE is refused, even a harmless internal entity."""
    path = tmp_path / "ent.xml"
    path.write_bytes(_with_doctype(DRUGBANK_XML, '[<!ENTITY x "hello">]', "&x;"))
    with pytest.raises(InputFormatError, match=r"ent\.xml, line 2: .*DOCTYPE"):
        list(iter_xml_drugs(path))


def test_drugbank_xml_doctype_text_in_comments_and_cdata_is_data(tmp_path: Path) -> None:
    """Only a real DTD is refused: '<!DOCTYPE' in a comment (before the root too) or in CDATA is text."""
    path = tmp_path / "ok.xml"
    text = DRUGBANK_XML.replace("<drugbank ", "<!-- <!DOCTYPE drugbank [<!ENTITY x 'y'>]> -->\n<drugbank ", 1)
    path.write_text(text.replace("<cas-number>", "<![CDATA[<!ENTITY y>]]><cas-number>", 1), encoding="utf-8")
    assert [r.drugbank_id for r in iter_xml_drugs(path)] == ["DB00945", "DB00619"]


def test_drugbank_xml_deep_nesting(tmp_path: Path) -> None:
    """200,000 nested elements inside a drug: parsed (only direct children matter) in bounded time."""
    path = tmp_path / "deep.xml"
    nested = "<n>" * 200_000 + "</n>" * 200_000
    path.write_text(DRUGBANK_XML.replace("<cas-number>", nested + "<cas-number>", 1), encoding="utf-8")
    start = time.perf_counter()
    assert [r.drugbank_id for r in iter_xml_drugs(path)] == ["DB00945", "DB00619"]
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("prolog", ["<!--" + "y" * 1_100_000 + "-->", "<?pi " + "y" * 1_100_000 + "?>",
                                    " " * 1_100_000])
def test_drugbank_xml_huge_prolog_is_refused_fast(tmp_path: Path, prolog: str) -> None:
    """The DOCTYPE check reads the prolog in small pieces; a megabyte-long comment before the root would
    make expat rescan it piece after piece (seconds): a prolog over 64 KiB is refused at once."""
    path = tmp_path / "prolog.xml.gz"
    path.write_bytes(gzip.compress(DRUGBANK_XML.replace("<drugbank ", prolog + "<drugbank ", 1).encode()))
    start = time.perf_counter()
    with pytest.raises(InputFormatError, match=r"prolog\.xml\.gz, line \d+: no root element in the first 64"):
        list(iter_xml_drugs(path))
    assert time.perf_counter() - start < 1.0


def test_truncated_gaf_is_a_subset_or_an_error(tmp_path: Path) -> None:
    """Every line-prefix of the seed GAF: the annotations are a subset of the whole file's, or an error."""
    target = TARGETS["go_gaf"]
    full = full_summary(target)
    seen = set()
    for end in _line_bounds(GAF.encode()) + list(range(0, len(GAF), 37)):
        outcome = check_case(target, Case("truncate", GAF.encode()[:end], prefix=True))
        assert outcome in ("accepted", "rejected")
        seen.add(end)
    assert full and seen


def _latin1(text: str) -> bytes:
    return text.replace("cellular", "cellul\xe4r").replace("aspirin", "aspir\xefn").encode("latin-1")


#: The parser bugs the fuzzing found: (target, hostile file, a piece of the clear error it now gives).
#: Each was an unhandled exception (or silently wrong output) before its fix.
REGRESSIONS: dict[str, tuple[str, bytes, str]] = {
    # open_text: EOFError / BadGzipFile / zlib.error from a truncated or corrupt gzip stream
    "gaf-truncated-gzip": ("go_gaf", gzip.compress(GAF.encode())[:-9], "truncated or corrupt gzip"),
    "ppi-corrupt-gzip": ("ppi_tsv", b"\x1f\x8b" + b"\x00" * 20, "truncated or corrupt gzip"),
    "string-gzip-trailing-garbage": ("string_links", gzip.compress(STRING_LINKS.encode()) + b"N&",
                                     "truncated or corrupt gzip"),
    # open_text: UnicodeDecodeError from latin-1 / UTF-16 / binary bytes
    "obo-latin1": ("go_obo", _latin1(OBO), "line 13: not utf-8 text"),
    "links-utf16": ("string_links", STRING_LINKS.encode("utf-16"), "line 1: not utf-8 text"),
    "sig-info-latin1": ("l1000_sig_info", _latin1(SIG_INFO.replace("caffeine", "aspirin")), "not utf-8 text"),
    "drugbank-tsv-binary": ("drugbank_drugs_tsv", b"drugbank_id\tname\n\x82\xff\x00", "line 2: not utf-8"),
    # csv.Error: a field over csv's 131,072-character limit, a carriage return inside a line
    "vocabulary-huge-field": ("drugbank_vocabulary", VOCABULARY.replace("Aspirin", "A" * 140_000).encode(),
                              "line 2: malformed delimited text: field larger than field limit"),
    "hub-huge-field": ("hub_drugs", HUB_DRUGS.replace("fatigue", "f" * 140_000).encode(),
                       "line 6: malformed"),
    "hub-carriage-return": ("hub_samples", HUB_SAMPLES.replace("Sigma", "Sig\rma", 1).encode(),
                            "line 3: malformed"),
    # a truncated gene table gave a truncated symbol ('PTGS2' -> 'PTG') and a TARGETS edge to it
    "gene-info-cut-line": ("drugbank_gene_info", DB_GENE_INFO[: DB_GENE_INFO.index("PTGS2") + 3].encode(),
                           "line 3: expected 3 tab-separated fields"),
    # pandas took a longer first row's extra leading fields as an index: one extra field shifted every
    # column silently, a line of a million tabs took minutes and gigabytes
    "sig-info-long-first-row": ("l1000_sig_info",
                                SIG_INFO.replace("\tx\n", "\tx" + "\t" * 200_000 + "\n", 1).encode(),
                                "line 2: 200013 tab-separated fields, expected 13"),
    "sig-info-huge-header": ("l1000_sig_info", ("\t" * 200_000 + SIG_INFO).encode(),
                             "line 1: 200013 tab-separated columns in the header"),
    "cell-info-one-extra-field": ("l1000_cell_info", CELL_INFO.replace("A375\t", "A375\textra\t").encode(),
                                  "line 2: 5 tab-separated fields, expected 4"),
    # DrugBank XML: truncated gzip, a DTD (accepted, or refused only by expat's amplification limit)
    "xml-truncated-gzip": ("drugbank_xml", gzip.compress(DRUGBANK_XML.encode())[:-30], "corrupt gzip / zip"),
    "xml-empty-zip": ("drugbank_xml", b"PK\x05\x06" + b"\x00" * 18, "empty zip archive"),
    "xml-internal-entity": ("drugbank_xml", _with_doctype(DRUGBANK_XML, '[<!ENTITY x "y">]', "&x;"),
                            "DOCTYPE"),
    "xml-unknown-encoding": ("drugbank_xml", DRUGBANK_XML.replace("UTF-8", "nonsense").encode(),
                             "unsupported encoding"),
    "xml-multibyte-encoding-name": ("drugbank_xml",  # a ValueError in xml.etree itself
                                    DRUGBANK_XML.replace("UTF-8", "UTF-16-BE").encode("utf-16-be"),
                                    "unsupported encoding"),
    # sources.toml: not UTF-8; a section that is not a table; a value of the wrong type; a factory's
    # UserError that did not name the config file; a path that is a folder (IsADirectoryError)
    # GCT: a huge row count in the dimension line allocated the whole matrix before reading a row
    "gct-huge-dimensions": ("gct_reader", GCT.replace("4\t3\t2\t5", "99999999999999\t3\t2\t5").encode(),
                            "line 13: data row 5 of 99999999999999: file ends early"),
    # an empty column id became a Signature keyed '' (sig_id = '')
    "gct-empty-column-id": ("gct", GCT.replace("\tSIG2\t", "\t\t").encode(),
                            "line 3: column 5: empty column id"),
    "gct-empty-row-id": ("gct", GCT.replace("4193\tMDM2", " \tMDM2").encode(),
                         "line 10: data row 2 of 4: empty"),
    "toml-utf16": ("sources_toml", SOURCES_TOML.encode("utf-16"), "sources.toml: not UTF-8 text"),
    "toml-section-not-a-table": ("sources_toml", b"go = 5\n", "section [go]: expected a [go] table"),
    "toml-path-of-wrong-type": ("sources_toml", b'[go]\nobo = {a = 1}\n',
                                "section [go]: a value of the wrong"),
    "toml-top-k-float": ("sources_toml", b'[l1000]\ngct = "l1000.gct"\ntop_k = 1.5\n',
                         "section [l1000]: top_k must be an integer >= 1, got 1.5"),
    "toml-missing-key": ("sources_toml", b"[go]\ngaf = 'goa.gaf'\n",
                         "sources.toml, section [go]: needs 'obo'"),
    "toml-folder-path": ("sources_toml", b'[go]\nobo = "."\n', "is a folder; expected a file"),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_regressions(case: str) -> None:
    name, data, needle = REGRESSIONS[case]
    target = TARGETS[name]
    with tempfile.TemporaryDirectory() as d:
        paths = write_inputs(target, Path(d), data)
        with pytest.raises(USER_ERRORS) as err:
            list(target.run(paths))
    assert needle in str(err.value)
    assert check_case(target, Case(case, data)) == "rejected"  # and the whole contract holds


def test_infinite_qc_values_are_unparseable_not_a_crash(tmp_path: Path) -> None:
    """Regression: distil_nsample = inf raised OverflowError (int(inf)) when the signature was written;
    non-finite QC values are now unparseable (missing, counted)."""
    target = TARGETS["l1000_sig_info"]
    data = SIG_INFO.replace("\t0.41\t", "\t1e999\t").replace("\t3\tx", "\tinf\tx").encode()
    assert check_case(target, Case("inf", data)) == "accepted"
    adapter = L1000Adapter(gct=write_inputs(target, tmp_path, data)["l1000.gct"], top_k=2,
                           sig_info=tmp_path / "sig_info.tsv")
    sigs = {r["sig_id"]: r for b in adapter.batches() if isinstance(b, NodeBatch) and b.label == "Signature"
            for r in b.rows}
    assert sigs["SIG1"]["n_replicates"] is None and sigs["SIG1"]["tas"] is None
    assert sigs["SIG2"]["n_replicates"] == 4
    assert adapter.stats["unparseable_nsample"] == 1 and adapter.stats["unparseable_tas"] == 1


def test_the_graph_is_refused_while_parsing() -> None:
    """The guard the properties run under: no connection can be opened or used (so none is written)."""
    with pytest.raises(GraphWriteAttempt):
        Neo4jConnection()
    with pytest.raises(GraphWriteAttempt):
        Neo4jConnection.query(object(), "MATCH (n) DETACH DELETE n")  # type: ignore[arg-type]


def test_fuzz_hook_counts_outcomes() -> None:
    """The benchmark's recorder sees every case, crashes included, instead of a raised error."""
    global RECORDER
    seen: list[tuple[str, str, str]] = []
    RECORDER = lambda *a: seen.append(a)  # noqa: E731
    try:
        run_case(TARGETS["ppi_tsv"], Case("ok", PPI.encode()))
        run_case(TARGETS["ppi_tsv"], Case("bad", b"a\n"))
    finally:
        RECORDER = None
    assert [(t, o) for t, o, _ in seen] == [("ppi_tsv", "accepted"), ("ppi_tsv", "rejected")]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_are_valid(name: str) -> None:
    """Each intact seed is accepted (so a rejection of a mutant is about the mutation)."""
    target = TARGETS[name]
    assert check_case(target, Case("seed", target.seed_bytes())) == "accepted"

