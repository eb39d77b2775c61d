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

How it reads Neo4j: per label, the node keys with their internal ids (``id(n)``; keyset pages in key order,
then sorted by Python so that the order does not depend on the collation), or, for a compound set, the ids
of the selected keys. Then, per relationship type, the edges leaving the kept start nodes as one row per
start node and source: the start id, the source name and two lists, the end nodes' ids and the (scaled)
weights (:func:`moakg.kg.export_queries.edge_lists_query`). The driver decodes those lists of numbers far
faster than one record of key strings per edge (benchmarks/bench_export.py: about ten times the edges per
second), and numpy maps the ids to node indices through a lookup array per label: no Python object per
edge outlives one block of rows, so memory is bounded by the output tensors. Internal ids are only
meaningful within one read of the graph: they are never saved, and they can be reused after a node is
deleted. The export's queries run in several read transactions, so **a write to the graph during an
export is not supported** (the result may mix the two states, or map an edge to a reused id); ingests
record IngestRuns, and the cache below is keyed by them.

Exports are cached under ``MOAKG_HOME/cache/export`` keyed by the spec and the (id, status, ended) of
every IngestRun, so an unchanged graph loads in a second; a run still ``running`` disables the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import torch
import typer
from neo4j import READ_ACCESS, ManagedTransaction
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
from moakg.kg.export_queries import (
    edge_lists_query,
    edges_from_query,
    edges_to_query,
    node_ids_query,
    node_keys_query,
)
from moakg.kg.local_server import moakg_home
from moakg.kg.queries import load_query
from moakg.kg.schema import PACKAGED_SCHEMA, current_schema

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def _read(conn: Neo4jConnection, work: Callable[[ManagedTransaction], T]) -> T:
    """One read transaction (retried on transient errors) whose results the server streams whole
    (``fetch_size=-1``) instead of pausing every 1,000 records for the client to ask for more."""
    with conn.session(fetch_size=-1, default_access_mode=READ_ACCESS) as s:  # a lost server: one line
        return s.execute_read(work)


def node_keys(
    conn: Neo4jConnection, label: str, batch_size: int, progress: bool = True,
) -> tuple[list[str], np.ndarray]:
    """All keys of ``label`` in key order and their nodes' internal ids (int64, same order), by keyset
    paging (each page an index range seek, returned as two lists)."""
    text, keys, ids, last = node_keys_query(label), [], [], ""
    with tqdm(desc=f"{label} keys", unit="nodes", disable=not progress, leave=False) as bar:
        while True:
            page = conn.query(text, last=last, limit=batch_size)[0]
            keys += page["keys"]
            ids += page["ids"]
            bar.update(len(page["keys"]))
            if len(page["keys"]) < batch_size:
                break
            last = page["keys"][-1]
    # sorted by Python too: the node order must not depend on the collation
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return [keys[i] for i in order], np.asarray(ids, np.int64)[np.asarray(order, np.int64)]


def node_ids(conn: Neo4jConnection, label: str, keys: list[str], batch_size: int) -> np.ndarray:
    """The internal ids of the ``label`` nodes with these keys, in their order (-1: no such node)."""
    ids = np.full(len(keys), -1, np.int64)
    where = {k: i for i, k in enumerate(keys)}
    text = node_ids_query(label)
    for i in range(0, len(keys), batch_size):
        found = conn.query(text, keys=keys[i : i + batch_size])[0]
        ids[[where[k] for k in found["keys"]]] = found["ids"]
    return ids


class _Positions:
    """Internal node id -> index of the node in its label's export order, -1 for a node not exported.

    A dense array indexed by id when the ids are dense enough (record-format stores number nodes from 0),
    else a sorted search, so that sparse ids cannot make it huge."""

    def __init__(self, ids: np.ndarray) -> None:
        index = np.flatnonzero(ids >= 0)
        ids = ids[index]
        self.top = int(ids.max()) + 1 if len(ids) else 0
        self.dense: np.ndarray | None = None
        if self.top <= 4 * len(ids) + (1 << 20):
            self.dense = np.full(self.top, -1, np.int32)
            self.dense[ids] = index
        else:
            order = np.argsort(ids)
            self.sorted_ids, self.index = ids[order], index[order].astype(np.int32)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        out = np.full(len(ids), -1, np.int32)
        if self.dense is not None:
            inside = ids < self.top
            out[inside] = self.dense[ids[inside]]
        elif len(self.sorted_ids):
            j = np.minimum(np.searchsorted(self.sorted_ids, ids), len(self.sorted_ids) - 1)
            hit = self.sorted_ids[j] == ids
            out[hit] = self.index[j[hit]]
        return out


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


def _select_nodes(
    conn: Neo4jConnection, spec: ExportSpec, progress: bool,
) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """Per label: the kept keys in export order and their nodes' internal ids."""
    if not spec.has_compound_set:
        listed = {label: node_keys(conn, label, spec.batch_size, progress) for label in spec.labels}
    else:
        seeds = _seed_compounds(conn, spec)
        if spec.hops is None:
            chosen = {"Compound": sorted(seeds)}
            others = [label for label in spec.labels if label != "Compound"]
        else:
            chosen = {label: sorted(v) for label, v in _k_hop(conn, spec, seeds, progress).items()}
            others = []
        listed = {label: (ks, node_ids(conn, label, ks, spec.batch_size)) for label, ks in chosen.items()}
        listed |= {label: node_keys(conn, label, spec.batch_size, progress) for label in others}
    return {label: v[0] for label, v in listed.items()}, {label: v[1] for label, v in listed.items()}


#: the edges of one block of start nodes: source names, then (src index, dst index, weight, source code)
#: with ``names[code]`` the source of each edge
_Part = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_FLUSH_EDGES = 1 << 16  # the Python lists of one block become numpy arrays every this many edges


def _edge_block(
    tx: ManagedTransaction, query: str, chunk: list[int], params: dict[str, Any], missing: float | None,
    src_pos: _Positions, dst_pos: _Positions,
) -> _Part:
    """Run the edge-list query over one block of start ids; keep the edges whose end node is exported.

    Rows carry weights unless ``missing`` is given (a relationship without a weight: every edge gets it)."""
    names: dict[str, int] = {}
    src: list[int] = []
    codes: list[int] = []
    dsts: list[list[int]] = []
    ws: list[list[float]] = []
    done: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        lens = np.fromiter(map(len, dsts), np.int64, len(dsts))
        n = int(lens.sum())
        d = dst_pos(np.fromiter(chain.from_iterable(dsts), np.int64, n))
        keep = d >= 0
        s = src_pos(np.repeat(np.asarray(src, np.int64), lens))
        c = np.repeat(np.asarray(codes, np.int16), lens)
        if missing is None:
            w = np.fromiter(chain.from_iterable(ws), np.float64, n).astype(np.float32)
        else:
            w = np.full(n, missing, np.float32)
        done.append((s[keep], d[keep], w[keep], c[keep]))
        for rows in (src, codes, dsts, ws):
            rows.clear()

    size = 0
    for rec in tx.run(query, ids=chunk, **params):
        src.append(rec[0])
        codes.append(names.setdefault(rec[1], len(names)))
        dsts.append(rec[2])
        if missing is None:
            ws.append(rec[3])
        size += len(rec[2])
        if size >= _FLUSH_EDGES:
            flush()
            size = 0
    flush()
    s, d, w, c = (np.concatenate(x) for x in zip(*done, strict=True))
    return list(names), s, d, w, c


def _edges(
    conn: Neo4jConnection, spec: ExportSpec, rel: str, ids: dict[str, np.ndarray],
    pos: dict[str, _Positions], progress: bool,
) -> _Part:
    """The edges of one relation among the kept nodes, in stream order, with ``names`` only the sources
    that have an edge here."""
    decl = current_schema().rel(rel)
    src_label, dst_label = decl.endpoints
    query, params = edge_lists_query(rel), {}
    if decl.min_weight:
        params["min_weight"] = spec.min_weight(rel)
    if decl.weight:
        params |= {"scale": decl.scale, "missing": decl.missing}
    missing = None if decl.weight else decl.missing
    start = ids[src_label][ids[src_label] >= 0].tolist()  # in export order
    parts: list[_Part] = []
    with tqdm(total=len(start), desc=rel, unit="nodes", disable=not progress, leave=False) as bar:
        for i in range(0, len(start), spec.batch_size):
            chunk = start[i : i + spec.batch_size]

            def work(tx: ManagedTransaction, chunk: list[int] = chunk) -> _Part:
                return _edge_block(tx, query, chunk, params, missing, pos[src_label], pos[dst_label])

            parts.append(_read(conn, work))
            bar.update(len(chunk))
    names: dict[str, int] = {}
    codes = [np.zeros(0, np.int16)]
    for part_names, *_, c in parts:  # a block's codes -> this relation's
        remap = np.asarray([names.setdefault(n, len(names)) for n in part_names] or [0], np.int16)
        codes.append(remap[c])
    code = np.concatenate(codes)
    s, d = (np.concatenate([np.zeros(0, np.int32)] + [p[k] for p in parts]) for k in (1, 2))
    w = np.concatenate([np.zeros(0, np.float32)] + [p[3] for p in parts])
    # keep the sources of kept edges only (a row's edges may all end outside the kept nodes)
    used, code = np.unique(code, return_inverse=True)
    every = list(names)
    return [every[i] for i in used], s, d, w, code.astype(np.int16)


def _edge_tensors(
    s: np.ndarray, d: np.ndarray, w: np.ndarray, code: np.ndarray, n_src: int, n_dst: int, n_codes: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``edge_index`` [2, E], ``edge_attr`` [E, 1] (NaN -> 0) and ``source_code`` [E] int8, sorted by (src,
    dst, source) so that two exports of the same graph are identical."""
    if n_src * n_dst * max(n_codes, 1) < 1 << 62:  # one int64 key: one stable sort, faster than lexsort
        key = (s.astype(np.int64) * n_dst + d) * n_codes + code
        order = np.argsort(key, kind="stable")
        del key
    else:
        order = np.lexsort((code, d, s))
    edge_index = torch.from_numpy(np.stack([s[order], d[order]]).astype(np.int64).reshape(2, -1))
    attr = torch.from_numpy(np.nan_to_num(w[order]).reshape(-1, 1))
    return edge_index, attr, torch.from_numpy(code[order].astype(np.int8))


def _export(conn: Neo4jConnection, spec: ExportSpec, progress: bool) -> tuple[HeteroData, IdMaps]:
    keys, ids = _select_nodes(conn, spec, progress)
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
    pos = {label: _Positions(v) for label, v in ids.items()}
    raw = {rel: _edges(conn, spec, rel, ids, pos, progress) for rel in spec.edge_rels}
    # source codes index the sorted names of the sources that have an edge in the export
    names = sorted({n for rel_names, *_ in raw.values() for n in rel_names})
    for rel in spec.edge_rels:
        rel_names, s, d, w, code = raw.pop(rel)  # each relation's arrays go once its tensors are made
        decl = current_schema().rel(rel)
        remap = np.asarray([names.index(n) for n in rel_names] or [0], np.int64)
        src, dst = decl.endpoints
        edge_index, attr, code_t = _edge_tensors(s, d, w, remap[code], len(keys[src]), len(keys[dst]),
                                                 len(names))
        forward, backward = data[decl.edge_type()], data[decl.edge_type(reverse=True)]
        forward.edge_index, forward.edge_attr, forward.source_code = edge_index, attr, code_t
        backward.edge_index, backward.edge_attr = edge_index.flip(0), attr.clone()
        backward.source_code = code_t.clone()
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
    # (also `staged`: a bulk load whose relationships are not imported yet)
    if path is not None and all(r["status"] in ("completed", "failed") for r in state):
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
