"""Cypher, shell and path payloads in data, query parameters and file paths: stored and returned verbatim,
never executed.

The payloads travel end to end: as compound names, synonyms, MoAs, targets, disease areas and DrugBank
ids in real ingest files (read by the Repurposing Hub and DrugBank adapters through ``moakg ingest``), in
file and folder names given to the command line, as ``moakg query run`` parameters, parameter names and
query names, and as values written into Browser favourites and inline Browser queries
(:mod:`moakg.kg.browser_favorites`). "Never executed": a sentinel node and every ingested node survive,
no shell command ran (a canary file is never created, a victim file never deleted; the working folder is
the test's own), and nothing outside ``queries/`` is read as a query.

The last test is the static half: an AST scan of the package for Cypher built by string formatting,
where only names checked by :func:`moakg.kg.schema._ident` may be interpolated, outside a short list of
vetted builders.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from moakg.cli import app
from moakg.errors import UserError
from moakg.ingest.base import normalise_moa
from moakg.kg.browser_favorites import cypher_literal, favorite_script, inline_query
from moakg.kg.connection import Neo4jConnection, Neo4jSettings
from moakg.kg.queries import UnknownQueryError, load_query, run_query

ROOT = Path(__file__).resolve().parents[2]  # the repository root: the `moakg` package

#: Cypher, Python-format, shell and path payloads; ``canary`` / ``victim`` are files in the working folder
PAYLOADS = [
    "'}) DETACH DELETE n //",
    '"}) DETACH DELETE n //',
    "x'}) MATCH (m) DETACH DELETE m //",
    "\\'}) DETACH DELETE n //",
    "`}) DETACH DELETE n //`",
    "a`b``c` DETACH DELETE n",
    "$compound",
    "$run) OR true OR ($top",
    "${top}",
    "') OR true OR ('",
    "*/ MATCH (n) DETACH DELETE n /*",
    'x") RETURN 1 UNION MATCH (n) DETACH DELETE n RETURN 1 //',
    "LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l",
    "CALL dbms.killQueries(['x'])",
    ":param top => 0",
    "{top}",
    "%(top)s %s {0}",
    "; rm -rf victim #",
    "$(touch canary)",
    "`touch canary`",
    "&& touch canary",
    "|| touch canary",
    "> canary",
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/shadow",
    "~/.ssh/id_rsa",
    "file:///etc/passwd",
    "naïve ☃ 💊 \u202eevil",
]
#: the payloads also sent through `moakg query run` itself (each call builds the whole command line)
CLI_SAMPLE = [PAYLOADS[i] for i in (0, 4, 7, 17, 18, 23, 28)]
#: folder name for the input files: shell metacharacters a path might meet
SHELL_DIR = "in; rm -rf victim #$(touch canary)`touch canary`&& touch canary|| touch canary > canary 'q\" ☃"


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test's own working folder holding the victim file (a command run by accident would act here),
    and MOAKG_HOME under it (error logs)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "victim").write_text("still here")
    monkeypatch.chdir(work)
    monkeypatch.setenv("MOAKG_HOME", str(tmp_path / "home"))
    yield work
    assert not list(work.rglob("canary")), "a shell payload ran"
    assert (work / "victim").read_text() == "still here", "a shell payload ran"


def moakg(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (args, result.output)
    return result


def _tsv(path: Path, header: list[str], rows: list[list[str]], comment: str = "") -> Path:
    """A tab-separated file as the sources write them (fields with quotes or tabs quoted, Excel style)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        if comment:
            f.write(comment + "\n")
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def hub_payload_files(folder: Path) -> tuple[Path, Path, dict[str, str]]:
    """One Hub drug per payload (name, MoA, disease area, one bad target); the first three without a
    structure (keyed by their name), the last two sharing one (one compound, two names). Returns the two
    files and name -> the compound's id where known in advance."""
    drugs, samples = [], []
    n = len(PAYLOADS)
    for i, p in enumerate(PAYLOADS):
        moa = p if "|" not in p else ""
        drugs.append([p, "Phase 2", moa, f"EGFR|{p}", p.replace("|", ""), "test"])
        if i >= 3:
            carbons = min(i, n - 2)  # the last two: the same alkane
            samples.append([f"BRD-K{i:08d}-001-01-1", p, "C" * carbons, ""])
    drugs_file = _tsv(folder / "drugs $(touch canary).txt",
                      ["pert_iname", "clinical_phase", "moa", "target", "disease_area", "indication"], drugs,
                      comment="!Source\tmoakg injection test")
    samples_file = _tsv(folder / "samples `touch canary`.txt",
                        ["broad_id", "pert_iname", "smiles", "InChIKey"], samples,
                        comment="!Source\tmoakg injection test")
    return drugs_file, samples_file, {p: f"repurposing_hub:{p}" for p in PAYLOADS[:3]}


def drugbank_payload_files(folder: Path) -> list[str]:
    """DrugBank tables: one drug per payload (the payload as its DrugBank id, 'db ' + it as its name and
    category), each targeting EGFR. Returns the command-line options."""
    drugs = [[p, f"db {p}", "", "", "small molecule", "approved", p.replace("|", "")] for p in PAYLOADS]
    proteins = [[p, "target", "P00533", "1956", "Humans", "yes", "inhibitor"] for p in PAYLOADS]
    return [
        "--drugs-tsv", str(_tsv(folder / "drugbank; touch canary.tsv",
                                ["drugbank_id", "name", "inchikey", "inchi", "type", "groups", "categories"],
                                drugs)),
        "--proteins-tsv", str(_tsv(folder / "proteins && touch canary.tsv",
                                   ["drugbank_id", "category", "uniprot_id", "entrez_gene_id", "organism",
                                    "known_action", "actions"], proteins)),
        "--gene-info", str(_tsv(folder / "genes.tsv", ["GeneID", "Symbol"], [["1956", "EGFR"]])),
    ]


def _sentinel(conn: Neo4jConnection) -> int:
    return conn.query("MATCH (s:Sentinel {id: 'keep me'}) RETURN count(s) AS n")[0]["n"]


# ------------------------------------------------------------------------------------------ ingest


def test_payloads_in_ingest_files_and_paths_are_stored_and_returned_verbatim(
    conn: Neo4jConnection, cli_env: Neo4jSettings, workdir: Path
) -> None:
    conn.query("CREATE (:Sentinel {id: 'keep me'})")
    folder = workdir / SHELL_DIR
    drugs, samples, name_keyed = hub_payload_files(folder)
    moakg("ingest", "repurposing-hub", str(drugs), "--samples", str(samples))
    moakg("ingest", "drugbank", *drugbank_payload_files(folder), "--organism", "all")
    assert _sentinel(conn) == 1

    # every name, synonym, MoA, disease area and DrugBank id as written, and nothing else
    compounds = conn.query("MATCH (c:Compound) RETURN c.id AS id, c.name AS name, c.synonyms AS synonyms, "
                           "c.drugbank_id AS db, c.disease_area AS areas, c.drug_categories AS cats")
    hub = [c for c in compounds if c["db"] is None]
    assert len(hub) == len(PAYLOADS) - 1  # the last two names share a structure: one compound
    assert sorted(s for c in hub for s in c["synonyms"]) == sorted(PAYLOADS)
    assert sorted(a for c in hub for a in c["areas"]) == sorted(p.replace("|", "").strip() for p in PAYLOADS)
    for name, key in name_keyed.items():  # compounds without a structure are keyed by their name
        assert [c["id"] for c in hub if c["name"] == name] == [key]
    compound_of = {s: c for c in hub for s in c["synonyms"]}
    db = {c["db"]: c for c in compounds if c["db"] is not None}
    assert sorted(db) == sorted(PAYLOADS)
    for p in PAYLOADS:
        assert (db[p]["id"], db[p]["name"], db[p]["cats"]) == (f"drugbank:{p}", f"db {p}",
                                                                [p.replace("|", "").strip()])
    moas = conn.query("MATCH (m:MoA) RETURN m.name AS name, m.display_name AS shown")
    with_moa = [p for p in PAYLOADS if "|" not in p]
    assert sorted(m["shown"] for m in moas) == sorted(with_moa)
    assert sorted(m["name"] for m in moas) == sorted(normalise_moa(p) for p in with_moa)
    assert [g["s"] for g in conn.query("MATCH (g:Gene) RETURN g.symbol AS s")] == ["EGFR"]  # bad symbols out
    # the file paths, metacharacters and all, as given
    files = {r["s"]: r["f"] for r in conn.query("MATCH (r:IngestRun) RETURN r.source AS s, r.files AS f")}
    assert files["repurposing_hub"] == [str(drugs.resolve()), str(samples.resolve())]

    # the payloads as query parameters find their own compounds and MoAs, returned verbatim: through
    # `moakg query run` for a sample (each call builds the whole command line), run_query for all
    for p in CLI_SAMPLE:
        out = moakg("query", "run", "compound_profile", "-p", f"compound={p}", "-f", "json").output
        rows = {r["drugbank_id"]: r for r in json.loads(out)}  # the Hub's compound by name, DrugBank's by id
        assert set(rows) == {None, p}, (p, rows)
        assert (rows[None]["id"], rows[None]["name"]) == (compound_of[p]["id"], compound_of[p]["name"])
        assert (rows[p]["name"], rows[p]["targets"]) == (f"db {p}", ["EGFR"])
        assert "|" in p or normalise_moa(p) in rows[None]["moas"]
    for p in with_moa:
        rows = run_query(conn, "compounds_by_moa", moa=p)
        want = [(p, compound_of[p]["id"], ["repurposing_hub"])]
        assert [(r["moa"], r["id"], r["sources"]) for r in rows] == want

    before = conn.query("MATCH (n) WHERE NOT n:IngestRun RETURN count(n) AS n")[0]["n"]
    # a payload as a query name, a parameter name or a typed value: refused in one line, nothing run
    names = [*PAYLOADS, "../queries/graph_summary", "graph_summary\x00", "graph_summary; rm -rf victim"]
    profile = load_query("compound_profile")
    for p in names:
        with pytest.raises(UnknownQueryError, match="no query named"):
            load_query(p)
        with pytest.raises(UserError, match="has no parameter"):
            profile.bind({p: "1", "compound": "x"})
        with pytest.raises(ValueError):
            profile.param("top").convert(p)
    for p in [*CLI_SAMPLE[::3], *names[-3:]]:
        res = moakg("query", "run", p, ok=False)
        assert res.exit_code == 1 and "error: no query named" in res.output, (p, res.output)
        res = moakg("query", "run", "compound_profile", "-p", f"{p}=1", "-p", "compound=x", ok=False)
        assert res.exit_code == 1 and "has no parameter" in res.output, (p, res.output)
        res = moakg("query", "run", "compound_profile", "-p", "compound=x", "-p", f"top={p}", ok=False)
        assert res.exit_code == 1 and "expects int" in res.output, (p, res.output)
    # a path out of the working folder: read as the input file it names, refused naming it
    res = moakg("ingest", "repurposing-hub", "../" * 30 + "etc/passwd", ok=False)
    assert res.exit_code == 1 and "error: " in res.output and "etc/passwd" in res.output, res.output
    assert "Traceback" not in res.output and not (workdir.parent / "home" / "logs").exists()
    [failed] = conn.query("MATCH (r:IngestRun {status: 'failed'}) RETURN r.files AS f")
    assert failed["f"] == ["/etc/passwd"]
    assert conn.query("MATCH (n) WHERE NOT n:IngestRun RETURN count(n) AS n")[0]["n"] == before
    assert _sentinel(conn) == 1


# ------------------------------------------------------------------------------------------ browser


def _explanations(conn: Neo4jConnection) -> list[tuple[str, str, str]]:
    """One stored MoA explanation per payload: prediction = payload i, run = payload i + 1, one path of
    metapath ``mp-i``. Returns (moa, run, metapath) triples."""
    triples = [(p, PAYLOADS[(i + 1) % len(PAYLOADS)], f"mp-{i}") for i, p in enumerate(PAYLOADS)]
    conn.query("UNWIND range(0, size($t) - 1) AS i WITH i, $t[i] AS t "
               "CREATE (e:Explanation {id: 'e' + i, kind: 'moa', method: 'test', prediction: t[0], "
               "run: t[1]})-[:HAS_PATH]->(:ExplanationPath {id: 'p' + i, metapath: t[2], score: 0.5, "
               "rank: 1})",
               t=[list(t) for t in triples])
    return triples


def test_payloads_in_browser_favourites_and_inline_queries_stay_values(
    conn: Neo4jConnection, cli_env: Neo4jSettings, workdir: Path
) -> None:
    conn.query("CREATE (:Sentinel {id: 'keep me'})")
    triples = _explanations(conn)
    # every literal is the payload itself in Cypher
    each = ", ".join(cypher_literal(p) for p in PAYLOADS)
    assert conn.query(f"RETURN [{each}] AS v")[0]["v"] == PAYLOADS

    literals: list[str] = []
    for moa, run, metapath in triples:
        want = [metapath]
        params = {"moa": moa, "run": run}
        # parameters (the CLI for a sample), the query with the values written in, the favourite
        if moa in CLI_SAMPLE:
            out = moakg("query", "run", "metapaths_for_moa", "-p", f"moa={moa}", "-p", f"run={run}",
                        "-f", "json")
            assert [r["metapath"] for r in json.loads(out.output)] == want, (moa, run)
        assert [r["metapath"] for r in run_query(conn, "metapaths_for_moa", **params)] == want
        inline = conn.query(inline_query("metapaths_for_moa", params))
        assert [r["metapath"] for r in inline] == want, (moa, run)
        script = favorite_script("metapaths_for_moa", params)
        values = re.findall(r"^:param (\w+) => (.*);$", script, flags=re.M)
        assert [k for k, _ in values] == ["moa", "run", "top"]
        literals += [v for _, v in values]
    # every favourite's :param value is the payload itself (one statement for all of them)
    got = conn.query(f"RETURN [{', '.join(literals)}] AS v")[0]["v"]
    assert got == [x for moa, run, _ in triples for x in (moa, run, 10)]

    # the favourites archive, written to a path full of metacharacters, through the command line
    out = workdir / SHELL_DIR / "fav $(touch canary).zip"
    moakg("query", "favorites", "-o", str(out), "--query", "metapaths_for_moa", "--query",
          "explanation_paths", "-p", f"moa={PAYLOADS[7]}", "-p", f"run={PAYLOADS[0]}",
          "-p", f"compound={PAYLOADS[6]}")
    with zipfile.ZipFile(out) as zf:
        scripts = {n: zf.read(n).decode() for n in zf.namelist()}
    assert set(scripts) == {"metapaths_for_moa.cypher", "explanation_paths.cypher"}
    for text in scripts.values():
        for k, v in re.findall(r"^:param (\w+) => (.*);$", text, flags=re.M):
            want = {"moa": PAYLOADS[7], "run": PAYLOADS[0], "compound": PAYLOADS[6]}.get(k)
            if want is not None:
                assert conn.query(f"RETURN {v} AS v")[0]["v"] == want
    assert _sentinel(conn) == 1
    assert conn.query("MATCH (e:Explanation) RETURN count(e) AS n")[0]["n"] == len(PAYLOADS)


# ------------------------------------------------------------------------------------------ static scan

#: Call names that send their first argument to Neo4j as query text.
SINKS = {"run", "query", "execute_query"}
#: Looks like Cypher (a clause keyword) or a Cypher pattern (``-[:``, ``]->``, ``(n:``).
CYPHER = re.compile(r"\b(MATCH|MERGE|UNWIND|CREATE|DETACH|DELETE|RETURN|CALL|FOREACH|REMOVE|LOAD CSV|SHOW|"
                    r"DROP|SET|WHERE|ORDER BY|LIMIT|IS NULL|ON CREATE)\b|-\[:?|\]->|<-\[|\(\w*:$")
#: Functions whose Cypher interpolates more than ``_ident``-checked names, each read and vetted: what it
#: interpolates and why that is never data. A new function building Cypher elsewhere fails the scan.
VETTED_BUILDERS = {
    # The writer's MERGE statements: labels, keys, types and property names through _ident (from the
    # schema or the code); the pieces they join in are built in kg/writer.py from those: `_stamp(...)`
    # (`<'n' | 'rel'>.<_ident(stamp)> = $run`, `$source`), `_merge_value(...)` (`$source`, `$run` or
    # `r.props.<_ident(p)>`), `on_create` / `updated` / `union` (constants and _ident names).
    "kg/writer.py:node_query": "_stamp(...) call; label, key, union-list names through _ident",
    "kg/writer.py:rel_query": "merge = _ident(p): _merge_value(p) pairs; labels, keys, type through _ident",
    # The export's reads: labels, keys, types through _ident; `cols`, `match`, `where`, `ret`, `weight`
    # are built in the same function (or _min_weight_filter) from _ident names and $parameters.
    "kg/export_queries.py:edge_lists_query": "cols += `r.<_ident(weight)>` ...; _min_weight_filter(r)",
    "kg/export_queries.py:_edge_query": "match / where / ret / weight built above from _ident names",
    # Identity merges: `pattern` is one of two constants, formatted with t = _ident(type); `new` and
    # `merge_props` from _ident names of the schema.
    "kg/node_merge.py:move_queries": "pattern.format(t=t), new, merge_props: from _ident names",
    # DDL: the constraint / index *names* are schema labels and properties, which load_schema accepts only
    # as plain identifiers (schema._idents / _check_entry); in the patterns, labels and properties go
    # through _ident.
    "kg/schema.py:GraphSchema.constraint_statements": "label.lower(), prop: schema-validated identifiers",
    "kg/schema.py:GraphSchema.index_statements": "label.lower(), prop: schema-validated identifiers",
    # Text for people, never run by moakg: a Browser statement to paste (labels, types, keys through
    # _ident, values through cypher_literal, tested above) and a path's display form.
    "kg/explanations.py:path_query": "printed for the Browser: _ident names and cypher_literal values",
    "gnn/explain/paths.py:ExplanationPath.pretty": "display text `(Compound x)-[:T]->(...)`, not Cypher",
}


def package_files() -> list[Path]:
    """The Python files of every package pyproject.toml ships (the repository root is ``moakg``)."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    out = []
    for pkg in setup["packages"]:
        folder = ROOT.joinpath(*pkg.split(".")[1:])
        out += sorted(folder.glob("*.py"))
    return out


class _Scope:
    """Where a name in a function comes from: its assignments, loop and comprehension targets and
    parameters, in the function and the functions around it, each with its line."""

    def __init__(self, funcs: list[ast.AST]) -> None:
        self.bindings: dict[str, list[tuple[Any, int]]] = {}
        for fn in funcs:
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        self._bind(target, node.value, node.lineno)
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    self._bind(node.target, node.value, node.lineno)
                elif isinstance(node, ast.AugAssign):
                    self._bind(node.target, None, node.lineno)  # `text += ...`: unknown
                elif isinstance(node, ast.For):
                    self._bind(node.target, ("iter", node.iter), node.lineno)
                elif isinstance(node, ast.GeneratorExp | ast.ListComp | ast.SetComp | ast.DictComp):
                    for gen in node.generators:  # bound from where the comprehension starts
                        self._bind(gen.target, ("iter", gen.iter), node.lineno)
                elif isinstance(node, ast.arguments):
                    for a in [*node.posonlyargs, *node.args, *node.kwonlyargs]:
                        self.bindings.setdefault(a.arg, []).append((None, 0))  # a parameter: unknown

    def _bind(self, target: ast.AST, value: Any, line: int) -> None:
        if isinstance(target, ast.Name):
            self.bindings.setdefault(target.id, []).append((value, line))
        elif isinstance(target, ast.Tuple):
            for i, elt in enumerate(target.elts):
                if isinstance(value, ast.Tuple) and len(value.elts) == len(target.elts):
                    self._bind(elt, value.elts[i], line)
                elif isinstance(value, tuple) and value[0] == "iter":
                    self._bind(elt, ("of", value[1]), line)
                else:
                    self._bind(elt, ("of", value), line)

    def values(self, name: ast.Name) -> list[Any]:
        """What ``name`` may hold where it is used: the bindings up to that line; a parameter counts only
        when the function has not assigned the name before (``label = _ident(label)`` checks it)."""
        found = [(v, line) for v, line in self.bindings.get(name.id, []) if line <= name.lineno]
        if any(line > 0 for _, line in found):
            found = [(v, line) for v, line in found if line > 0]
        return [v for v, _ in found]


def _is_ident_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "_ident")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "_ident"))


def _maps_ident(node: ast.AST) -> bool:
    """``map(_ident, ...)``: every element is checked."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "map"
            and bool(node.args) and isinstance(node.args[0], ast.Name) and node.args[0].id == "_ident")


def _safe(node: Any, scope: _Scope, seen: frozenset[str] = frozenset()) -> bool:
    """True when the text ``node`` stands for is made only of constants and ``_ident``-checked names."""
    if node is None:
        return False
    if isinstance(node, tuple):  # ("iter", it): a loop variable over it; ("of", v): an element of v
        kind, value = node
        return _maps_ident(value) or (kind == "of" and _safe(value, scope, seen))
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | int | float) or node.value is None
    if _is_ident_call(node):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(_safe(v.value, scope, seen) for v in node.values if isinstance(v, ast.FormattedValue))
    if isinstance(node, ast.IfExp):
        return _safe(node.body, scope, seen) and _safe(node.orelse, scope, seen)
    if isinstance(node, ast.BoolOp):
        return all(_safe(v, scope, seen) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _safe(node.left, scope, seen) and _safe(node.right, scope, seen)
    if isinstance(node, ast.Tuple):
        return all(_safe(e, scope, seen) for e in node.elts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and isinstance(node.func.value, ast.Constant) and len(node.args) == 1):
        arg = node.args[0]  # ", ".join(<safe element> for x in <safe iterable>)
        if isinstance(arg, ast.GeneratorExp | ast.ListComp):
            return _safe(arg.elt, scope, seen)
        return _safe(arg, scope, seen)
    if isinstance(node, ast.Name):
        if node.id in seen:
            return True
        values = scope.values(node)
        return bool(values) and all(_safe(v, scope, seen | {node.id}) for v in values)
    return False


def _text(node: ast.AST) -> str | None:
    """The constant text of a formatted string expression (None: not one), to tell Cypher by."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
        return str(node.left.value)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)):
        return str(node.func.value.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        if isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant):
            return None  # two constants: nothing interpolated
        return "".join(c.value for c in ast.walk(node)
                       if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return None


def cypher_formatting(path: Path) -> Iterator[tuple[str, int, str, bool]]:
    """(qualified function, line, source, safe) for every formatted string in ``path`` that looks like
    Cypher or is passed straight to a query call."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def enclosing(node: ast.AST) -> list[ast.AST]:
        out = []
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
                out.append(node)
        return out

    def qualname(node: ast.AST) -> str:
        names = [getattr(n, "name", "<lambda>") for n in reversed(enclosing(node))]
        return ".".join(n for n in names) or "<module>"

    sent: set[ast.AST] = set()  # first arguments of query calls
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SINKS
                and node.args):
            sent.add(node.args[0])
    for node in ast.walk(tree):
        text = _text(node)
        parent = parents.get(node)
        if text is None or (isinstance(parent, ast.BinOp) and _text(parent) is not None):
            continue  # not formatting, or a piece of a larger formatting (scanned as that)
        if not (CYPHER.search(text) or node in sent):
            continue
        funcs = [f for f in enclosing(node) if not isinstance(f, ast.ClassDef)]
        scope = _Scope(funcs or [tree])
        by_mod_or_format = isinstance(node, ast.Call) or isinstance(getattr(node, "op", None), ast.Mod)
        safe = not by_mod_or_format and _safe(node, scope)  # % and .format: always vetted
        yield qualname(node), node.lineno, ast.unparse(node), safe
    for node in sent:  # a name sent to Neo4j that holds formatted text is checked as that text
        if isinstance(node, ast.Name):
            funcs = [f for f in enclosing(node) if not isinstance(f, ast.ClassDef)]
            scope = _Scope(funcs or [tree])
            for value in scope.values(node):
                text = _text(value) if isinstance(value, ast.AST) else None
                if text is not None and not CYPHER.search(text):
                    yield qualname(node), node.lineno, ast.unparse(value), _safe(value, scope)


def test_cypher_is_never_formatted_from_data() -> None:
    """Every f-string / % / .format / + that builds Cypher (or text a query call runs) in the package
    interpolates only constants and names checked by ``_ident``, unless its function is a vetted builder."""
    files = package_files()
    assert ROOT / "kg" / "writer.py" in files and len(files) > 40
    found: dict[str, list[tuple[int, str, bool]]] = {}
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for func, line, src, safe in cypher_formatting(path):
            found.setdefault(f"{rel}:{func}", []).append((line, src, safe))
    unvetted = {where: [(line, src) for line, src, safe in hits if not safe]
                for where, hits in found.items() if where not in VETTED_BUILDERS}
    assert {k: v for k, v in unvetted.items() if v} == {}, (
        "Cypher built by formatting with values that are not _ident-checked names: pass data as query "
        "parameters ($name), or check the name with moakg.kg.schema._ident")
    # the list stays short and true: each vetted builder still exists and still needs vetting
    needless = sorted(w for w in VETTED_BUILDERS if all(safe for *_, safe in found.get(w, [(0, "", True)])))
    assert needless == [], f"VETTED_BUILDERS entries the scan passes (or that are gone): remove {needless}"
    # and the scan sees the formatting it is meant to see
    assert any(safe for hits in found.values() for _, _, safe in hits)
    assert "kg/writer.py:run_lock" in found and all(safe for *_, safe in found["kg/writer.py:run_lock"])


def test_the_scan_catches_formatted_cypher(tmp_path: Path) -> None:
    """The scan itself: data in an f-string / % / .format / + query is caught, `_ident` names are not."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def a(conn, name):\n"
        "    conn.query(f\"MATCH (c:Compound {{name: '{name}'}}) RETURN c\")\n"
        "def b(tx, label):\n"
        "    q = 'MATCH (n:%s) RETURN n' % label\n"
        "    tx.run(q)\n"
        "def c(session, t):\n"
        "    session.run('MATCH ()-[r:{}]->() RETURN r'.format(t))\n"
        "def d(conn, where):\n"
        "    conn.query('MATCH (n) WHERE ' + where + ' RETURN n')\n"
        "def e(conn, x):\n"
        "    text = f'{x} LIMIT 1'\n"
        "    conn.query(text)\n"
        "def ok(conn, label, key):\n"
        "    label, key = _ident(label), _ident(key)\n"
        "    conn.query(f'MATCH (n:{label}) WHERE n.{key} = $v RETURN n', v=1)\n"
        "    for p in map(_ident, ['a', 'b']):\n"
        "        conn.query(f'MATCH (n) RETURN n.{p}')\n"
    )
    hits = {(func, safe) for func, _, _, safe in cypher_formatting(bad)}
    assert {f for f, safe in hits if not safe} == {"a", "b", "c", "d", "e"}
    assert {f for f, safe in hits if safe} == {"ok"}
