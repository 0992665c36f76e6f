"""GRAPH tools: breadth-first expansion around a CI, and the shortest path between two.

Both walk the ``relations`` table one level at a time: one query per level (per chunk of
the frontier), never one per node, so a depth-3 expansion costs a handful of queries
however many CIs it reaches.  Rows are processed in sorted order, which makes the answer
(which neighbour is kept when a limit bites, which of two equal shortest paths is
returned) deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime.ops.db import Session
from runtime.ops.sql import chunks, placeholders

__all__ = ["graph_expand", "graph_path"]

Edge = tuple[int, int, str]


def _edges_touching(
    session: Session, frontier: Sequence[int], direction: str, relation_types: Sequence[str] | None
) -> list[Edge]:
    type_sql, type_args = "", []
    if relation_types:
        type_sql = f" AND type IN ({placeholders(len(relation_types))})"
        type_args = list(relation_types)
    rows: list[Edge] = []
    for chunk in chunks(frontier):
        ids = placeholders(len(chunk))
        outgoing = f"SELECT source, target, type FROM relations WHERE source IN ({ids}){type_sql}"
        incoming = f"SELECT source, target, type FROM relations WHERE target IN ({ids}){type_sql}"
        if direction == "out":
            sql, args = outgoing, [*chunk, *type_args]
        elif direction == "in":
            sql, args = incoming, [*chunk, *type_args]
        else:
            sql = f"{outgoing} UNION {incoming}"
            args = [*chunk, *type_args, *chunk, *type_args]
        rows.extend((s, t, ty) for s, t, ty in session.all(sql, args))
    return sorted(set(rows))


def _moves(edge: Edge, frontier: set[int], direction: str) -> list[tuple[int, int]]:
    """``(from, to)`` steps this edge offers out of the frontier."""
    source, target, _ = edge
    moves = []
    if direction in ("out", "both") and source in frontier:
        moves.append((source, target))
    if direction in ("in", "both") and target in frontier:
        moves.append((target, source))
    return moves


def _nodes(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for chunk in chunks(ids):
        rows = session.all(
            f"SELECT id, code, name, type FROM cis WHERE id IN ({placeholders(len(chunk))})",
            list(chunk),
        )
        for ci_id, code, name, ci_type in rows:
            found[ci_id] = {"ci_id": ci_id, "ci_code": code, "ci_name": name, "ci_type": ci_type}
    return found


def _edge_dict(edge: Edge) -> dict[str, Any]:
    return {"source": edge[0], "target": edge[1], "type": edge[2]}


def graph_expand(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    root: int = params["ci_id"]
    direction: str = params["direction"]
    max_nodes: int = params["max_nodes"]
    max_edges: int = params["max_edges"]
    visited: dict[int, int] = {root: 0}  # insertion order is BFS order
    edges: dict[Edge, None] = {}
    truncated = False
    frontier = [root]
    for level in range(1, params["depth"] + 1):
        if not frontier:
            break
        frontier_set = set(frontier)
        following: list[int] = []
        for edge in _edges_touching(session, frontier, direction, params.get("relation_types")):
            if edge in edges:
                continue
            fresh = [to for _, to in _moves(edge, frontier_set, direction) if to not in visited]
            # A node is only ever added together with the edge that reaches it, so every
            # node in the answer is connected to the root through edges in the answer.
            if len(edges) >= max_edges or len(visited) + len(set(fresh)) > max_nodes:
                truncated = True
                continue
            edges[edge] = None
            for node in fresh:
                if node not in visited:
                    visited[node] = level
                    following.append(node)
        frontier = following
    details = _nodes(session, list(visited))
    return {
        "nodes": [details[ci_id] for ci_id in visited if ci_id in details],
        "edges": [_edge_dict(edge) for edge in edges],
        "truncated": truncated,
    }


def graph_path(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    source: int = params["source"]
    target: int = params["target"]
    direction: str = params["direction"]
    not_found: dict[str, Any] = {"nodes": [], "edges": [], "hop_count": None, "found": False}
    if source == target:
        details = _nodes(session, [source])
        if source not in details:
            return not_found
        return {"nodes": [details[source]], "edges": [], "hop_count": 0, "found": True}
    # Each reached node remembers the node and edge it was first reached from.
    parents: dict[int, tuple[int, Edge] | None] = {source: None}
    frontier = [source]
    for _ in range(params["max_hops"]):
        if not frontier or target in parents:
            break
        frontier_set = set(frontier)
        following: list[int] = []
        for edge in _edges_touching(session, frontier, direction, params.get("relation_types")):
            for here, there in _moves(edge, frontier_set, direction):
                if there not in parents:
                    parents[there] = (here, edge)
                    following.append(there)
        frontier = following
    if target not in parents:
        return not_found
    path = [target]
    hops: list[Edge] = []
    step = parents[target]
    while step is not None:
        previous, edge = step
        hops.append(edge)
        path.append(previous)
        step = parents[previous]
    path.reverse()
    hops.reverse()
    details = _nodes(session, path)
    return {
        "nodes": [details[ci_id] for ci_id in path if ci_id in details],
        "edges": [_edge_dict(edge) for edge in hops],
        "hop_count": len(hops),
        "found": True,
    }
