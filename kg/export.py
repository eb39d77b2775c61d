"""Neo4j -> ``torch_geometric.data.HeteroData`` with id maps: whole graph or k hops around compounds.

Node types, edge types, reverse names and edge weights come from the schema (``kg/schema.toml``, via
:func:`moakg.kg.schema.current_schema`): every node label with ``export = true`` and every relationship
with role ``message`` or ``label`` between them; the Cypher is generated per label / type by
:mod:`moakg.kg.export_queries`. Node order is sorted by key (deterministic). Edge types are
``(src_label, REL_TYPE, dst_label)``; every one also gets an explicit reverse ``(dst, "rev_REL_TYPE", src)``
(the schema's ``reverse`` name) with the same attributes. Reverses are added here rather than with
``ToUndirected`` so that same-type relations keep their direction (``IS_A`` child -> parent vs
``rev_IS_A``); a model that wants Gene-INTERACTS_WITH-Gene undirected can still apply ``ToUndirected``.

Per edge type: ``edge_index`` [2, E] long, ``edge_attr`` [E, 1] float (the schema's ``weight`` property
times ``scale``, ``missing`` where an edge has none, 1.0 for relationships without a weight: z for
UP/DOWNREGULATES, combined_score / 1000 for INTERACTS_WITH) and ``source_code`` [E] int8 indexing
:attr:`IdMaps.sources`. Label relationships (``HAS_MOA``) are exported like any other: the models never
pass messages on them (:meth:`moakg.kg.schema.GraphSchema.is_message_edge`). Features: see
:mod:`moakg.kg.export_features`; Gene, GOTerm, MoA and CellLine have none, only ``num_nodes`` and
``node_id`` (every type has ``node_id``).

Exports are cached under ``MOAKG_HOME/cache/export`` keyed by the spec and the (id, status, ended) of
every IngestRun, so an unchanged graph loads in a second; a run still ``running`` disables the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from torch_geometric.data import HeteroData
from tqdm.auto import tqdm

from moakg.errors import UserError
from moakg.kg.connection import Neo4jConnection
from moakg.kg.export_features import (
    QUALITY_FIELDS,
    compound_features,
    landmark_genes,
    run_batched,
    signature_features,
)
from moakg.kg.export_queries import edges_from_query, edges_to_query, node_keys_query
from moakg.kg.local_server import moakg_home
from moakg.kg.queries import load_query
from moakg.kg.schema import PACKAGED_SCHEMA, current_schema

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # part of the cache key: bump when the exported layout changes
#: the packaged schema's exported labels and relationships (the code itself reads current_schema())
DEFAULT_LABELS: tuple[str, ...] = PACKAGED_SCHEMA.export_labels
REL_ENDPOINTS: dict[str, tuple[str, str]] = PACKAGED_SCHEMA.exported_rels


@dataclass(frozen=True)
class ExportSpec:
    """What to export. ``labels=None``: every exported label of the schema; ``rels=None``: every message and
    label relationship of the schema between the included labels.

    Compound set: ``compound_ids`` and/or ``moa`` (union of both; neither = no compound set). With a set,
    ``hops=k`` keeps the nodes within k hops (either direction, over the included relations, after
    ``min_string_score``), and ``hops=None`` keeps just those compounds plus every node of the other labels.
    Edges are always those among the kept nodes. ``min_string_score`` is in STRING units (0-1000) and only
    drops INTERACTS_WITH edges that have a combined_score (hetio ``ppi`` edges have none and stay).
    """

    labels: tuple[str, ...] | None = None
    rels: tuple[str, ...] | None = None
    compound_ids: tuple[str, ...] | None = None
    moa: str | None = None
    hops: int | None = None
    min_string_score: float | None = None
    fingerprint_radius: int = 2
    fingerprint_bits: int = 2048
    batch_size: int = 10000  # streaming only: not part of the cache key

    def __post_init__(self) -> None:
        # lists from callers become tuples so the spec is hashable and its JSON is stable
        schema = current_schema()
        labels, rels = schema.export_labels, schema.exported_rels
        object.__setattr__(self, "labels", tuple(labels if self.labels is None else self.labels))
        if self.rels is not None:
            object.__setattr__(self, "rels", tuple(self.rels))
        if self.compound_ids is not None:
            object.__setattr__(self, "compound_ids", tuple(self.compound_ids))
        unknown = [label for label in self.labels if label not in labels]
        if unknown:
            raise UserError(f"unknown label(s) {unknown}; choose from {list(labels)} ({schema.path})")
        for rel in self.rels or ():
            if rel not in rels:
                raise UserError(f"unknown relationship type {rel!r}; choose from {list(rels)} "
                                f"({schema.path})")
            missing = [x for x in rels[rel] if x not in self.labels]
            if missing:
                raise UserError(f"relationship {rel} needs label(s) {missing}, which are not exported")
        for rel in self.edge_rels:
            option = schema.rel(rel).min_weight
            if option and not hasattr(self, option):
                raise UserError(f"{schema.path}: [relationships.{rel}] min_weight = {option!r} is not an "
                                "ExportSpec option")
        if (self.compound_ids is not None or self.moa) and "Compound" not in self.labels:
            raise UserError("a compound set (compound_ids / moa) needs the Compound label")
        if self.hops is not None and self.hops < 0:
            raise UserError("hops must be >= 0")

    @property
    def edge_rels(self) -> list[str]:
        """The relations exported, in schema order."""
        rels = current_schema().exported_rels
        chosen = self.rels if self.rels is not None else tuple(rels)
        return [r for r in rels if r in chosen and all(x in self.labels for x in rels[r])]

    def min_weight(self, rel: str) -> float | None:
        """The threshold on ``rel``'s weight property (the spec option its schema entry names), or None."""
        option = current_schema().rel(rel).min_weight
        return getattr(self, option) if option else None

    @property
    def has_compound_set(self) -> bool:
        return self.compound_ids is not None or bool(self.moa)

    def key_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("batch_size")
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.key_dict(), sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class IdMaps:
    """``keys[label][i]`` is the key of node ``i``; ``index[label][key]`` is its index."""

    keys: dict[str, list[str]]
    sources: list[str]  # source_code -> source name
    landmark_genes: list[str]  # column j of every z vector
    quality_fields: list[str] = field(default_factory=lambda: list(QUALITY_FIELDS))
    graph_state: list[dict[str, Any]] = field(default_factory=list)  # IngestRuns at export time
    cache_hit: bool = False
    index: dict[str, dict[str, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {label: {k: i for i, k in enumerate(ks)} for label, ks in self.keys.items()}

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("index", "cache_hit")}


def default_cache_dir() -> Path:
    return moakg_home() / "cache" / "export"


def graph_state(conn: Neo4jConnection) -> list[dict[str, Any]]:
    return conn.query(load_query("export_graph_state").text)


def node_keys(conn: Neo4jConnection, label: str, batch_size: int, progress: bool = True) -> list[str]:
    """All keys of ``label`` in key order, by keyset paging (each page an index range seek)."""
    text, out, last = node_keys_query(label), [], ""
    with tqdm(desc=f"{label} keys", unit="nodes", disable=not progress, leave=False) as bar:
        while True:
            page = [r["key"] for r in conn.query(text, label=label, last=last, limit=batch_size)]
            out += page
            bar.update(len(page))
            if len(page) < batch_size:
                return sorted(out)  # sorted by Python too: the node order must not depend on the collation
            last = page[-1]


def _seed_compounds(conn: Neo4jConnection, spec: ExportSpec) -> set[str]:
    seeds: set[str] = set()
    if spec.compound_ids:
        rows = conn.query("UNWIND $ids AS k MATCH (c:Compound {id: k}) RETURN c.id AS key",
                          ids=list(spec.compound_ids))
        found = {r["key"] for r in rows}
        unknown = sorted(set(spec.compound_ids) - found)
        if unknown:
            raise UserError(f"{len(unknown)} compound id(s) not in the graph, e.g. {unknown[:5]}")
        seeds |= found
    if spec.moa:
        moa = {r["key"] for r in conn.query(load_query("export_moa_compounds").text, moa=spec.moa)}
        if not moa:
            raise UserError(f"no compound has the mechanism of action {spec.moa!r} (MoA.name)")
        seeds |= moa
    return seeds


def _k_hop(conn: Neo4jConnection, spec: ExportSpec, seeds: set[str], progress: bool) -> dict[str, set[str]]:
    """Breadth-first search from the seed compounds, over both directions of every included relation."""
    seen: dict[str, set[str]] = {label: set() for label in spec.labels}
    seen["Compound"] |= seeds
    frontier = {label: set(v) for label, v in seen.items()}
    for hop in range(spec.hops or 0):
        new: dict[str, set[str]] = {label: set() for label in spec.labels}
        for rel in spec.edge_rels:
            src, dst = current_schema().exported_rels[rel]
            # out-edges of frontier nodes give their end nodes (column 1), in-edges their start nodes (0)
            for query, start, other, col in ((edges_from_query(rel), src, dst, 1),
                                             (edges_to_query(rel), dst, src, 0)):
                keys = sorted(frontier[start])
                for row in run_batched(conn, query, keys, spec.batch_size, f"hop {hop + 1} {rel}", progress,
                                       min_weight=spec.min_weight(rel)):
                    new[other].add(row[col])
        frontier = {label: new[label] - seen[label] for label in spec.labels}
        for label in spec.labels:
            seen[label] |= frontier[label]
    return seen


def _select_nodes(conn: Neo4jConnection, spec: ExportSpec, progress: bool) -> dict[str, list[str]]:
    if not spec.has_compound_set:
        return {label: node_keys(conn, label, spec.batch_size, progress) for label in spec.labels}
    seeds = _seed_compounds(conn, spec)
    if spec.hops is None:
        keys = {label: node_keys(conn, label, spec.batch_size, progress) for label in spec.labels
                if label != "Compound"}
        return {"Compound": sorted(seeds), **keys}
    return {label: sorted(v) for label, v in _k_hop(conn, spec, seeds, progress).items()}


def _edges(
    conn: Neo4jConnection, spec: ExportSpec, rel: str, keys: dict[str, list[str]],
    index: dict[str, dict[str, int]], sources: dict[str, int], progress: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``edge_index`` [2, E], ``edge_attr`` [E, 1], ``source_code`` [E] of one relation among the kept nodes,
    sorted by (src, dst, source) so that two exports of the same graph are identical."""
    decl = current_schema().rel(rel)
    src_label, dst_label = decl.endpoints
    s_idx, d_idx = index[src_label], index[dst_label]
    rows_s: list[int] = []
    rows_d: list[int] = []
    weights: list[float] = []
    codes: list[int] = []
    rows = run_batched(conn, edges_from_query(rel), keys[src_label], spec.batch_size, rel, progress,
                       min_weight=spec.min_weight(rel))
    for s, d, w, source in rows:
        j = d_idx.get(d)
        if j is None:  # end node outside the subgraph
            continue
        rows_s.append(s_idx[s])
        rows_d.append(j)
        weights.append(decl.missing if w is None else float(w) * decl.scale)
        codes.append(sources.setdefault(source or "", len(sources)))
    s_arr, d_arr = np.asarray(rows_s, np.int64), np.asarray(rows_d, np.int64)
    c_arr = np.asarray(codes, np.int64)
    order = np.lexsort((c_arr, d_arr, s_arr))
    edge_index = torch.from_numpy(np.stack([s_arr[order], d_arr[order]]).reshape(2, -1))
    attr = torch.from_numpy(np.nan_to_num(np.asarray(weights, np.float32)[order]).reshape(-1, 1))
    return edge_index, attr, torch.from_numpy(c_arr[order])


def _export(conn: Neo4jConnection, spec: ExportSpec, progress: bool) -> tuple[HeteroData, IdMaps]:
    keys = _select_nodes(conn, spec, progress)
    index = {label: {k: i for i, k in enumerate(ks)} for label, ks in keys.items()}
    landmarks = landmark_genes(conn) if {"Compound", "Signature"} & set(spec.labels) else []
    data = HeteroData()
    for label in spec.labels:
        n = len(keys[label])
        data[label].num_nodes = n
        data[label].node_id = torch.arange(n)
    if "Compound" in spec.labels:
        feats = compound_features(conn, keys["Compound"], len(landmarks), spec.fingerprint_radius,
                                  spec.fingerprint_bits, spec.batch_size, progress)
        for name, value in feats.items():
            data["Compound"][name] = value
    if "Signature" in spec.labels:
        for name, value in signature_features(conn, keys["Signature"], len(landmarks), spec.batch_size,
                                              progress).items():
            data["Signature"][name] = value
    # Codes are assigned on first sight, then renumbered in name order so they do not depend on edge order.
    seen: dict[str, int] = {}
    raw = {rel: _edges(conn, spec, rel, keys, index, seen, progress) for rel in spec.edge_rels}
    names = sorted(seen)
    remap = torch.tensor([names.index(s) for s in seen] or [0], dtype=torch.int64)
    for rel, (edge_index, attr, codes) in raw.items():
        decl = current_schema().rel(rel)
        code = remap[codes].to(torch.int8)
        forward, backward = data[decl.edge_type()], data[decl.edge_type(reverse=True)]
        forward.edge_index, forward.edge_attr, forward.source_code = edge_index, attr, code
        backward.edge_index, backward.edge_attr = edge_index.flip(0), attr.clone()
        backward.source_code = code.clone()
    return data, IdMaps(keys=keys, sources=names, landmark_genes=landmarks)


def export_heterodata(
    conn: Neo4jConnection, spec: ExportSpec | None = None, cache: bool = True, cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[HeteroData, IdMaps]:
    """Export the graph (or the spec's subgraph) as ``HeteroData`` plus :class:`IdMaps`.

    With ``cache`` (default) the result is read from / written to ``cache_dir`` (default
    :func:`default_cache_dir`) under a key of the spec and the graph's IngestRuns; ``maps.cache_hit`` says
    which happened.
    """
    spec = spec or ExportSpec()
    state = graph_state(conn)
    path = None
    if cache:
        # the schema's exported relationships decide the edge types and weights: part of the key
        rels = [repr(current_schema().rel(r)) for r in spec.edge_rels]
        blob = json.dumps([EXPORT_VERSION, conn.settings.uri, conn.database, spec.key_dict(), rels, state],
                          sort_keys=True, default=str)
        path = (cache_dir or default_cache_dir()) / f"{hashlib.sha256(blob.encode()).hexdigest()[:32]}.pt"
        if path.exists():
            try:
                data, maps, _ = load_export(path)
                maps.cache_hit = True
                log.info("export cache hit: %s", path)
                return data, maps
            except Exception as exc:  # a truncated or stale file is re-exported, not fatal
                log.warning("ignoring unreadable export cache %s (%s)", path, exc)
    data, maps = _export(conn, spec, progress)
    maps.graph_state = state
    # An ingest still running means the graph may change under the same run ids: do not cache that.
    if path is not None and all(r["status"] != "running" for r in state):
        save_export(path, data, maps, spec)
    return data, maps


def save_export(path: Path, data: HeteroData, maps: IdMaps, spec: ExportSpec) -> Path:
    """``torch.save`` of {'data', 'maps', 'spec', 'version'}; written to a temporary file, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"version": EXPORT_VERSION, "data": data, "maps": maps.as_dict(), "spec": asdict(spec)}, tmp)
    tmp.replace(path)
    return path


def load_export(path: Path) -> tuple[HeteroData, IdMaps, ExportSpec]:
    """Read what :func:`save_export` wrote (a pickle: load only files you trust)."""
    blob = torch.load(Path(path), weights_only=False)
    if blob.get("version") != EXPORT_VERSION:
        raise UserError(f"{path}: export format {blob.get('version')}, expected {EXPORT_VERSION}; "
                        "export it again with this version of moakg")
    return blob["data"], IdMaps(**blob["maps"]), ExportSpec(**blob["spec"])


def summary_rows(data: HeteroData) -> list[dict[str, Any]]:
    rows = [{"kind": "node", "type": t, "count": data[t].num_nodes} for t in data.node_types]
    rows += [{"kind": "edge", "type": " ".join(t), "count": data[t].num_edges} for t in data.edge_types]
    return rows


def _split(values: list[str] | None) -> tuple[str, ...] | None:
    """Options given as repeats and/or comma-separated lists."""
    return tuple(v.strip() for x in values for v in x.split(",") if v.strip()) if values else None


ListOpt = list[str] | None


def add_cli(app: typer.Typer) -> None:
    """Register the top-level ``moakg export`` command on ``app``."""

    @app.command("export")
    def export_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output file (torch.save), e.g. graph.pt.")],
        moa: Annotated[str | None, typer.Option(help="Seed set: compounds with this MoA.name.")] = None,
        compound: Annotated[ListOpt, typer.Option("--compound", help="Seed Compound.id, repeatable.")] = None,
        hops: Annotated[int | None, typer.Option(help="Keep nodes within K hops of the seeds.")] = None,
        labels: Annotated[ListOpt, typer.Option(help="Node labels, default all exported.")] = None,
        rels: Annotated[ListOpt, typer.Option(help="Relationship types, default all between labels.")] = None,
        min_string_score: Annotated[float | None, typer.Option(help="Min STRING score, 0-1000.")] = None,
        fingerprint_bits: Annotated[int, typer.Option(help="Morgan fingerprint length.")] = 2048,
        fingerprint_radius: Annotated[int, typer.Option(help="Morgan radius.")] = 2,
        batch_size: Annotated[int, typer.Option(help="Keys per streamed query.")] = 10000,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the cache.")] = False,
        cache_dir: Annotated[Path | None, typer.Option(help="Default MOAKG_HOME/cache/export.")] = None,
    ) -> None:
        """Export the graph (or k hops around compounds) to a PyG HeteroData file with id maps."""
        from moakg.console import connect, print_table

        # UserErrors (bad options, unknown compounds, no graph) reach the top-level handler: one line
        spec = ExportSpec(
            labels=_split(labels), rels=_split(rels), compound_ids=_split(compound), moa=moa, hops=hops,
            min_string_score=min_string_score, fingerprint_radius=fingerprint_radius,
            fingerprint_bits=fingerprint_bits, batch_size=batch_size,
        )
        start = time.perf_counter()
        with connect() as conn:
            data, maps = export_heterodata(conn, spec, cache=not no_cache, cache_dir=cache_dir)
        save_export(out, data, maps, spec)
        print_table(summary_rows(data))
        how = "from cache" if maps.cache_hit else "exported"
        size = out.stat().st_size / 1e6
        typer.echo(f"{how} in {time.perf_counter() - start:.1f} s -> {out} ({size:.1f} MB)")
