"""``moakg explain``: explain one prediction of a trained run (paths written back to Neo4j), and
``moakg explain evaluate``: fidelity, sparsity and known-target recovery over the run's test compounds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moakg.errors import UserError

METHOD_HELP = ("saliency (default: finds planted mechanism paths, fast) | ig | gnnexplainer")
EVALUATE_HELP = ("gnnexplainer | ig | saliency | metapath (the Rephetio-style metapath logistic regression "
                 "fitted on the run's split, explaining its own predictions); repeat for several")


def plot_paths(res: object, path: Path) -> Path:
    """Draw the explanation's paths (networkx + matplotlib): node colour by label, edge width by weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    for p in res.paths.best:  # type: ignore[attr-defined]
        names = [f"{t}\n{k[:28]}" for t, k in zip(p.node_types, p.node_keys, strict=True)]
        for t, n in zip(p.node_types, names, strict=True):
            g.add_node(n, label=t)
        for i, (rel, fwd, w) in enumerate(zip(p.rel_types, p.forward, p.weights, strict=True)):
            a, b = (names[i], names[i + 1]) if fwd else (names[i + 1], names[i])
            old = g.edges[a, b]["weight"] if g.has_edge(a, b) else 0.0
            g.add_edge(a, b, rel=rel, weight=max(old, w))
    colours = {"Compound": "#e07a5f", "Signature": "#81b29a", "Gene": "#3d85c6", "GOTerm": "#f2cc8f",
               "CellLine": "#9c89b8", "MoA": "#d62828"}
    fig, ax = plt.subplots(figsize=(11, 7))
    pos = nx.spring_layout(g, seed=0, k=1.2)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=900,
                           node_color=[colours.get(g.nodes[n]["label"], "#bbbbbb") for n in g.nodes])
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=6)
    widths = [0.5 + 4 * g.edges[e]["weight"] for e in g.edges]
    nx.draw_networkx_edges(g, pos, ax=ax, width=widths, arrows=True, arrowsize=12, node_size=900)
    nx.draw_networkx_edge_labels(g, pos, ax=ax, font_size=6,
                                 edge_labels={e: g.edges[e]["rel"] for e in g.edges})
    ax.set_title(f"{res.compound} -> {res.prediction} ({res.method}; edge width = importance)",  # type: ignore
                 fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(v: object) -> object:
    return round(v, 4) if isinstance(v, float) else v


def add_cli(app: typer.Typer) -> None:
    """Register the top-level ``moakg explain`` group (``explain`` itself, and ``explain evaluate``)."""
    explain_app = typer.Typer(help="Path explanations of a trained run's predictions (written to Neo4j).",
                              invoke_without_command=True)
    app.add_typer(explain_app, name="explain")

    @explain_app.callback()
    def explain_cmd(
        ctx: typer.Context,
        run: Annotated[str | None, typer.Option("--run", help="ModelRun.id (query model_runs).")] = None,
        compound: Annotated[str | None, typer.Option("--compound", help="Compound.id to explain.")] = None,
        moa: Annotated[str | None, typer.Option("--moa", help="MoA to explain (default: top one).")] = None,
        target: Annotated[str | None, typer.Option("--target", help="Gene symbol (default: top).")] = None,
        method: Annotated[str, typer.Option(help=METHOD_HELP)] = "saliency",
        top_k: Annotated[int, typer.Option("--top-k", help="Paths to keep.")] = 5,
        max_length: Annotated[int, typer.Option("--max-length", help="Longest path (relationships).")] = 3,
        epochs: Annotated[int | None, typer.Option(help="GNNExplainer epochs (default 100).")] = None,
        steps: Annotated[int | None, typer.Option(help="Integrated-gradients steps (default 50).")] = None,
        plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of the paths.")] = None,
        no_write: Annotated[bool, typer.Option("--no-write", help="Do not store in Neo4j.")] = False,
        all_test: Annotated[bool, typer.Option(
            "--all-test", help="Explain the top prediction of every held-out compound with a signature "
            "and store each (instead of --compound).")] = False,
    ) -> None:
        """Explain one prediction: top-k typed paths from the compound, fidelity, stored in Neo4j."""
        if ctx.invoked_subcommand is not None:
            return
        from moakg.console import connect, fail, print_table
        from moakg.gnn.explain.loading import load_run
        from moakg.gnn.explain.pipeline import explain_prediction, write_result

        kw = _method_kwargs(method, epochs, steps)
        if run and all_test:
            if compound or moa or target or plot:
                raise fail("--all-test explains each compound's top prediction: drop --compound, --moa, "
                           "--target and --plot")
            _explain_all_test(run, method, top_k, max_length, kw, no_write)
            return
        if not run or not compound:
            raise fail("give --run and --compound, or --run and --all-test (or a subcommand: moakg explain "
                       "evaluate --run R)")
        with connect() as conn:
            try:
                loaded = load_run(conn, run)
                res = explain_prediction(loaded, compound, moa=moa, gene=target, method=method, k=top_k,
                                         max_length=max_length, method_kwargs=kw)
                eid = None if no_write else write_result(conn, res)
            except UserError as exc:
                raise fail(str(exc)) from None
        f = res.fidelity
        typer.echo(f"{res.compound}: {res.kind} {res.prediction!r} p={res.probability:.3f} "
                   f"({res.method}, {res.seconds:.1f} s, computation subgraph {res.sub.num_edges()} edges)")
        if res.kind == "target" and not res.paths.to_target:
            typer.echo("no path reaches the predicted gene within --max-length; paths ending anywhere:")
        print_table(res.rows())
        typer.echo(f"fidelity+ {f.fidelity_plus:.4f}  fidelity- {f.fidelity_minus:.4f}  "
                   f"characterization {f.characterization:.4f}  sparsity {f.sparsity:.4f}  "
                   f"({f.n_edges} message edges)")
        if eid:
            typer.echo(f"stored as (:Explanation {{id: '{eid}'}}); draw it: "
                       "moakg query run explanation_paths "
                       f"-p run={run} -p compound={compound} -p top={top_k}")
        if plot:
            typer.echo(f"plot: {plot_paths(res, plot)}")

    @explain_app.command("evaluate")
    def evaluate_cmd(
        run: Annotated[str, typer.Option("--run", help="ModelRun.id.")],
        method: Annotated[list[str] | None, typer.Option("--method", help=EVALUATE_HELP)] = None,
        top_k: Annotated[int, typer.Option("--top-k", help="Paths per compound.")] = 5,
        max_length: Annotated[int, typer.Option("--max-length")] = 3,
        epochs: Annotated[int | None, typer.Option(help="GNNExplainer epochs (default 100).")] = None,
        steps: Annotated[int | None, typer.Option(help="Integrated-gradients steps (default 50).")] = None,
        limit: Annotated[int | None, typer.Option(help="At most this many test compounds.")] = None,
        per_compound: Annotated[bool, typer.Option("--per-compound", help="Print each compound.")] = False,
    ) -> None:
        """Signed fidelity+/-, characterization, sparsity, known-target recovery and MoA consistency (against
        random-metapath and degree-matched random paths, with permutation p-values) of the top prediction
        of every held-out compound with a signature."""
        from moakg.console import connect, fail, print_table
        from moakg.gnn.explain.loading import load_run
        from moakg.gnn.explain.pipeline import METAPATH_METHOD, evaluate_explainer, evaluate_metapath_model

        methods = method or ["saliency"]
        table = []
        with connect() as conn:
            try:
                loaded = load_run(conn, run)
            except UserError as exc:
                raise fail(str(exc)) from None
        from moakg.gnn.explain.pipeline import with_signature

        test = with_signature(loaded, loaded.task.split.test.tolist())
        compounds = test[:limit] if limit else test
        for m in methods:
            try:
                if m == METAPATH_METHOD:
                    rows, summary = evaluate_metapath_model(loaded, top_k, compounds, progress=True)
                else:
                    rows, summary = evaluate_explainer(loaded, m, top_k, max_length, compounds,
                                                       method_kwargs=_method_kwargs(m, epochs, steps),
                                                       progress=True)
            except UserError as exc:
                raise fail(str(exc)) from None
            if per_compound:
                print_table([{k: _fmt(v) for k, v in r.items()} for r in rows])
            table.append(summary)
        fid_rows, check_rows = evaluation_tables(table)
        typer.echo(f"{loaded.run_id} ({loaded.model_kind}, {loaded.kind}): signed fidelity over the "
                   "held-out compounds with a signature")
        print_table(fid_rows)
        typer.echo("paths against random paths of the same metapaths and degree-matched random paths "
                   "(p: paired permutation test, one-sided)")
        print_table(check_rows)


def evaluation_tables(summaries: list[dict]) -> tuple[list[dict], list[dict]]:
    """The printed tables of ``explain evaluate``: fidelity per method, and one row per method and path
    check (known-target recovery, MoA consistency) with both random baselines."""
    fid = [{k: _fmt(s.get(k)) for k in ("method", "n_explained", "n_no_edges", "fidelity_plus",
                                          "fidelity_minus", "characterization", "sparsity")}
           for s in summaries]
    checks = []
    for s in summaries:
        for name in ("recovery", "consistency"):
            if name not in s:
                continue
            lo, hi = s[f"{name}_ci"]
            checks.append({"method": s["method"], "check": name, "n": s[f"{name}_n"],
                           "rate": _fmt(s[name]), "ci95": f"[{lo:.3f}, {hi:.3f}]",
                           "first_rank": _fmt(s[f"{name}_first_rank"]),
                           "random_metapath": _fmt(s[f"{name}_random_metapath"]),
                           "p_metapath": _p(s[f"{name}_random_metapath_p"]),
                           "degree_matched": _fmt(s[f"{name}_degree_matched"]),
                           "p_degree": _p(s[f"{name}_degree_matched_p"])})
    return fid, checks


def _p(p: float) -> str:
    return "nan" if p != p else (f"{p:.0e}" if p < 1e-3 else f"{p:.3f}")


def _explain_all_test(run: str, method: str, top_k: int, max_length: int, kw: dict, no_write: bool) -> None:
    """``moakg explain --all-test``: every held-out compound with a signature, one progress bar, each
    explanation written as it is made (a re-run replaces them: the writes are idempotent)."""
    from tqdm.auto import tqdm

    from moakg.console import connect, fail, print_table
    from moakg.gnn.explain.loading import load_run
    from moakg.gnn.explain.pipeline import explain_prediction, with_signature, write_result

    with connect() as conn:
        try:
            loaded = load_run(conn, run)
        except UserError as exc:
            raise fail(str(exc)) from None
        keys = loaded.maps.keys["Compound"]
        test = with_signature(loaded, loaded.task.split.test.tolist())
        rows = []
        for c in tqdm(test, desc=f"explain {method}", unit="compound"):
            res = explain_prediction(loaded, keys[c], method=method, k=top_k, max_length=max_length,
                                     method_kwargs=kw)
            if not res.paths.best:
                continue
            if not no_write:
                write_result(conn, res)
            top = res.paths.best[0]
            rows.append({"compound": res.compound, "prediction": res.prediction,
                         "p": round(res.probability, 3),
                         "fidelity_plus": round(res.fidelity.fidelity_plus, 3),
                         "top_metapath": top.metapath})
    print_table(rows)
    typer.echo(f"{len(rows)} of {len(test)} held-out compounds with a signature explained"
               + ("" if no_write else f"; stored, see: moakg query run explanation_paths -p run={run}"))


def _method_kwargs(method: str, epochs: int | None, steps: int | None) -> dict[str, int]:
    kw: dict[str, int] = {}
    if method == "gnnexplainer" and epochs:
        kw["epochs"] = epochs
    if method == "ig" and steps:
        kw["n_steps"] = steps
    return kw
