"""GRAPH.expand and GRAPH.path, checked against a breadth-first search in Python over
every relation read directly."""

from __future__ import annotations

import itertools
import sqlite3
from collections import deque
from typing import Any

import pytest
from ops_fixtures import (  # noqa: F401
    call,
    fixture_ops_db,
    fixture_ops_db_path,
    fixture_registry,
    fixture_sql,
)

from runtime.ops import OpsDatabase
from runtime.tools import ToolRegistry

pytestmark = pytest.mark.anyio

Edge = tuple[int, int, str]


def _relations(sql: sqlite3.Connection, types: list[str] | None = None) -> list[Edge]:
    rows = sql.execute("SELECT source, target, type FROM relations").fetchall()
    return [r for r in rows if types is None or r[2] in types]


def _distances(edges: list[Edge], start: int, direction: str) -> dict[int, int]:
    neighbours: dict[int, set[int]] = {}
    for source, target, _ in edges:
        if direction in ("out", "both"):
            neighbours.setdefault(source, set()).add(target)
        if direction in ("in", "both"):
            neighbours.setdefault(target, set()).add(source)
    distance = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for other in neighbours.get(node, ()):
            if other not in distance:
                distance[other] = distance[node] + 1
                queue.append(other)
    return distance


def _hub(sql: sqlite3.Connection) -> int:
    hub: int = sql.execute(
        "SELECT target FROM relations GROUP BY target ORDER BY COUNT(*) DESC, target LIMIT 1"
    ).fetchone()[0]
    return hub


@pytest.mark.parametrize("direction", ["out", "in", "both"])
@pytest.mark.parametrize("depth", [1, 2, 3])
async def test_expand_reaches_exactly_the_cis_within_depth(
    registry: ToolRegistry, sql: sqlite3.Connection, direction: str, depth: int
) -> None:
    root = _hub(sql)
    result = await call(
        registry,
        "GRAPH",
        "expand",
        {"ci_id": root, "depth": depth, "direction": direction, "max_nodes": 500},
    )
    distance = _distances(_relations(sql), root, direction)
    expected = {node for node, d in distance.items() if d <= depth}
    nodes = [n["ci_id"] for n in result["nodes"]]
    assert result["truncated"] is False
    assert nodes[0] == root
    assert set(nodes) == expected
    # BFS order: distances never decrease along the node list.
    assert [distance[n] for n in nodes] == sorted(distance[n] for n in nodes)
    for edge in result["edges"]:
        assert edge["source"] in expected
        assert edge["target"] in expected
    if direction != "out":
        assert len(nodes) > 1  # a hub has dependents


async def test_expand_follows_only_the_asked_relation_types(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    types = ["runs_on", "connected_to"]
    root = _hub(sql)
    result = await call(
        registry, "GRAPH", "expand", {"ci_id": root, "depth": 3, "relation_types": types}
    )
    expected = {n for n, d in _distances(_relations(sql, types), root, "both").items() if d <= 3}
    assert {n["ci_id"] for n in result["nodes"]} == expected
    assert {e["type"] for e in result["edges"]} <= set(types)


@pytest.mark.parametrize(("max_nodes", "max_edges"), [(5, 400), (200, 4), (1, 400)])
async def test_limits_truncate_and_keep_the_answer_connected(
    registry: ToolRegistry, sql: sqlite3.Connection, max_nodes: int, max_edges: int
) -> None:
    root = _hub(sql)
    result = await call(
        registry,
        "GRAPH",
        "expand",
        {"ci_id": root, "depth": 3, "max_nodes": max_nodes, "max_edges": max_edges},
    )
    nodes = {n["ci_id"] for n in result["nodes"]}
    assert result["truncated"] is True
    assert len(nodes) <= max_nodes
    assert len(result["edges"]) <= max_edges
    # Every node is reachable from the root through the returned edges.
    edges = [(e["source"], e["target"], e["type"]) for e in result["edges"]]
    assert set(_distances(edges, root, "both")) == nodes


async def test_expand_of_a_missing_ci_is_empty(registry: ToolRegistry) -> None:
    result = await call(registry, "GRAPH", "expand", {"ci_id": 9999})
    assert result == {"nodes": [], "edges": [], "truncated": False}


async def test_expand_costs_one_query_per_level_plus_the_node_details(
    registry: ToolRegistry, ops_db: OpsDatabase, sql: sqlite3.Connection
) -> None:
    await call(registry, "GRAPH", "expand", {"ci_id": _hub(sql), "depth": 3})
    assert ops_db.queries_by_tool() == {"GRAPH.expand": 4}


PAIRS = [(1, 50), (7, 27), (60, 8), (21, 59), (12, 12)]


@pytest.mark.parametrize(("source", "target"), PAIRS)
@pytest.mark.parametrize("direction", ["both", "out"])
async def test_path_is_a_shortest_path(
    registry: ToolRegistry, sql: sqlite3.Connection, source: int, target: int, direction: str
) -> None:
    result = await call(
        registry,
        "GRAPH",
        "path",
        {"source": source, "target": target, "direction": direction, "max_hops": 8},
    )
    distance = _distances(_relations(sql), source, direction).get(target)
    if distance is None:
        assert result == {"nodes": [], "edges": [], "hop_count": None, "found": False}
        return
    assert result["found"] is True
    assert result["hop_count"] == distance == len(result["edges"])
    path = [n["ci_id"] for n in result["nodes"]]
    assert path[0] == source
    assert path[-1] == target
    relations = set(_relations(sql))
    for (here, there), edge in zip(itertools.pairwise(path), result["edges"], strict=True):
        assert (edge["source"], edge["target"], edge["type"]) in relations
        if direction == "out":
            assert (edge["source"], edge["target"]) == (here, there)
        else:
            assert {edge["source"], edge["target"]} == {here, there}


async def test_path_beyond_max_hops_is_not_found(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    far: list[Any] = []
    for source in range(1, 61):
        for target, d in _distances(_relations(sql), source, "both").items():
            if d >= 3:
                far.append((source, target, d))
    source, target, d = far[0]
    short = await call(
        registry, "GRAPH", "path", {"source": source, "target": target, "max_hops": d - 1}
    )
    enough = await call(
        registry, "GRAPH", "path", {"source": source, "target": target, "max_hops": d}
    )
    assert short == {"nodes": [], "edges": [], "hop_count": None, "found": False}
    assert enough["hop_count"] == d


async def test_path_with_missing_endpoints_is_not_found(registry: ToolRegistry) -> None:
    not_found = {"nodes": [], "edges": [], "hop_count": None, "found": False}
    assert await call(registry, "GRAPH", "path", {"source": 9999, "target": 1}) == not_found
    assert await call(registry, "GRAPH", "path", {"source": 9999, "target": 9999}) == not_found
