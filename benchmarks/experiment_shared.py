"""The README's results tables on the real data in ../shared/data, in one command.

Ingests the real consensus signatures (936 DrugBank drugs x 978 landmarks) with their over-expression
table, the full Repurposing Hub and DrugBank, the hetio PPI, GO 2019 with the human GAF and the STRING
sample into a throw-away local Neo4j (or NEO4J_URI, which it clears first), derives the similarity
relationships, then runs ``moakg train``'s experiment (every GNN and every baseline on the same splits)
for each split asked for, and prints the tables ``moakg train`` prints.

    python benchmarks/experiment_shared.py --task moa --splits scaffold cluster --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from moakg.benchmarks.common import bench_connection
from moakg.derive.run import derive_similarity
from moakg.gnn.cli import print_results
from moakg.gnn.config import TrainConfig
from moakg.gnn.run import run_experiment
from moakg.ingest.commands import adapters_from_config
from moakg.ingest.runner import run_adapters
from moakg.kg.export import export_heterodata
from moakg.kg.maintenance import clear_graph
from moakg.kg.schema import init_schema

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

SHARED_SOURCES = f"""
[repurposing_hub]
drugs = "{SHARED}/repurposing_hub/repurposing_drugs_20200324.txt"
samples = "{SHARED}/repurposing_hub/repurposing_samples_20200324.txt"

[drugbank]
drugs_tsv = "{SHARED}/drugbank/drugbank.tsv"
proteins_tsv = "{SHARED}/drugbank/proteins.tsv"
gene_info = "{SHARED}/lincs/geneinfo.tsv.gz"

[l1000_consensus]
matrix = "{SHARED}/l1000_consensus/consensi-drugbank.tsv.gz"
gene_info = ["{SHARED}/lincs/geneinfo.tsv.gz", "{SHARED}/l1000_consensus/genes.tsv"]
top_k = 50
create_compounds = true

[overexpression]
table = "{SHARED}/l1000_consensus/dysreg-overexpression.tsv"
gene_info = ["{SHARED}/lincs/geneinfo.tsv.gz", "{SHARED}/l1000_consensus/genes.tsv"]

[string]
links = "{SHARED}/string/9606.protein.links.detailed.v11.0.random10k.txt"
aliases = "{SHARED}/string/9606.protein.aliases.v11.0.random10k.txt"
min_score = 700

[ppi]
path = "{SHARED}/ppi/protein-interactions.txt.gz"

[go]
obo = "{SHARED}/go/GeneOntology_2019.01.29.obo.gz"
gaf = "{SHARED}/go/GO.goa_human_2019.01.29.gz"
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="moa", choices=["moa", "target"])
    ap.add_argument("--splits", nargs="+", default=["scaffold", "cluster"])
    ap.add_argument("--settings", nargs="+", default=["phenotype", "known_targets"])
    ap.add_argument("--models", nargs="+", default=["sage"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="moakg-shared-") as tmp, bench_connection() as conn:
        init_schema(conn)
        clear_graph(conn)
        cfg_path = Path(tmp) / "sources.toml"
        cfg_path.write_text(SHARED_SOURCES)
        t0 = time.perf_counter()
        run_adapters(conn, adapters_from_config(cfg_path), progress=False)
        derive_similarity(conn, progress=False)
        print(f"ingest + derive (shared data): {time.perf_counter() - t0:.0f} s", flush=True)
        data, maps = export_heterodata(conn, cache=False, progress=False)
        for split in args.splits:
            cfg = TrainConfig(task=args.task, models=tuple(args.models), split=split,
                              settings=tuple(args.settings), seeds=tuple(args.seeds), epochs=args.epochs,
                              device=args.device, out=Path(tmp) / "runs", write=False)
            print(f"\n== {args.task}, {split} split", flush=True)
            t0 = time.perf_counter()
            result = run_experiment(conn, cfg, data=data, maps=maps, log=lambda s: print(s, flush=True))
            print_results(result)
            print(f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
