"""Fuzz every input parser with many hostile cases and count what happens to them.

Runs the properties of ``tests/reliability/test_fuzz_parsers.py`` (the same targets, seeds, mutations
and contract as the CI subset) with ``--examples`` Hypothesis examples per parser instead of the few
CI uses, and records every case instead of stopping at the first failure:

* ``accepted``: the parser succeeded and its output passed the checks (writable batches, no NaN, a
  truncated file gives a subset of the whole file's output);
* ``rejected``: a clear error, a :data:`moakg.errors.USER_ERRORS` instance naming the file, raised
  before any batch;
* ``crashes``: anything else (an unhandled exception, or a broken contract); must be 0. The distinct
  crash signatures are listed after the table.

    python -m moakg.benchmarks.bench_fuzz                    # 500 examples per parser
    python -m moakg.benchmarks.bench_fuzz --examples 2000 --only go_gaf drugbank_xml
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import resource
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType

TEST_FILE = Path(__file__).resolve().parents[1] / "tests" / "reliability" / "test_fuzz_parsers.py"
STRUCTURED = ("gctx_layout", "sources_toml_typed")


def load_properties(examples: int) -> ModuleType:
    """The test module, imported with its example count set to ``examples``."""
    os.environ["MOAKG_FUZZ_EXAMPLES"] = str(examples)
    spec = importlib.util.spec_from_file_location("moakg_fuzz_parsers", TEST_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=500, help="Hypothesis examples per parser")
    ap.add_argument("--only", nargs="*", help="run only these targets (names as in the table)")
    ap.add_argument("--crashes", type=int, default=5, help="crash signatures listed per parser")
    ap.add_argument("--memory-gb", type=float, default=6.0,
                    help="address-space limit of this process: a case that needs more fails with MemoryError "
                         "(a crash) instead of taking the machine's memory; 0 = no limit")
    args = ap.parse_args(argv)
    if args.memory_gb > 0:
        limit = int(args.memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    # Hostile input makes the parsers warn (no GAF version header, obonet's missing OBO header ...):
    # thousands of cases, so the warnings are silenced and only the outcomes counted.
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    fz = load_properties(args.examples)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    crashes: dict[str, Counter[str]] = defaultdict(Counter)
    slowest: dict[str, tuple[float, str]] = {}

    def record(target: str, outcome: str, detail: str) -> None:
        counts[target][outcome] += 1
        if outcome == "crash":
            crashes[target][detail.rsplit(" (", 1)[0]] += 1
        seconds = float(detail.rsplit("(", 1)[-1].split(" s)")[0]) if detail.endswith(" s)") else 0.0
        if seconds > slowest.get(target, (0.0, ""))[0]:
            slowest[target] = (seconds, detail.rsplit(" (", 1)[0][:60])

    fz.RECORDER = record
    runs = [(name, fz.make_property(name)) for name in sorted(fz.TARGETS)]
    runs += [("gctx_layout", fz._gctx_layout_property), ("sources_toml_typed", fz._config_property)]
    if args.only:
        runs = [(n, p) for n, p in runs if n in args.only]
    seconds: dict[str, float] = {}
    total = time.perf_counter()
    for name, prop in runs:
        start = time.perf_counter()
        with fz.graph_refused():  # parsing never touches Neo4j
            prop()
        seconds[name] = time.perf_counter() - start
        c = counts[name]
        print(f"  {name}: {sum(c.values())} cases, {c['crash']} crashes, {seconds[name]:.1f} s",
              file=sys.stderr, flush=True)

    head = f"{'parser':<24} {'cases':>6} {'accepted':>9} {'rejected (clear error)':>23} {'crashes':>8} " \
           f"{'seconds':>8}  slowest case"
    print(f"\nfuzzing with {args.examples} Hypothesis examples per parser\n")
    print(head)
    print("-" * len(head))
    for name, _ in runs:
        c = counts[name]
        slow = slowest.get(name, (0.0, ""))
        print(f"{name:<24} {sum(c.values()):>6} {c['accepted']:>9} {c['rejected']:>23} {c['crash']:>8} "
              f"{seconds[name]:>8.1f}  {slow[0]:.2f} s {slow[1]}")
    all_c = sum((counts[n] for n, _ in runs), Counter())
    print("-" * len(head))
    print(f"{'total':<24} {sum(all_c.values()):>6} {all_c['accepted']:>9} {all_c['rejected']:>23} "
          f"{all_c['crash']:>8} {time.perf_counter() - total:>8.1f}")
    for name, sigs in crashes.items():
        print(f"\ncrashes in {name}:")
        for sig, n in sigs.most_common(args.crashes):
            print(f"  {n:>4} x {sig}")
    return 1 if all_c["crash"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
