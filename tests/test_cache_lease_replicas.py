"""Cross-replica single-flight with real worker processes and a real redis-server.

Each replica is a process (tests/cache_replica.py) with its own runtime, half of them on
trio and half on asyncio, sharing one redis-server on a unix socket.  Every tool run
appends a line to one log file, so executions are counted across processes.  Bounded by
timeouts everywhere: a replica that hangs fails the test instead of stalling the run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cache_replica import Fleet
from redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

pytestmark = pytest.mark.slow

SECRET = "replica-secret-replica-secret"


def ask(go: str, ci: int, callers: int, tenants: tuple[str, ...] = ("acme",)) -> dict[str, Any]:
    return {"go": go, "ci": ci, "callers": callers, "tenants": list(tenants)}


def make_fleet(path: Path, server: RedisServer, tool_s: float, **redis: Any) -> Fleet:
    return Fleet(path, server.url, tool_s, secret=SECRET, **redis)


def test_replicas_times_callers_on_one_cold_key_run_it_once_per_tenant(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    fleet = make_fleet(tmp_path, redis_server, tool_s=0.3)
    try:
        fleet.start([[ask("go", 1, 20, ("acme", "globex"))] for _ in range(4)])
        fleet.go("go")
        phases = [fleet.next(index) for index in range(4)]
        stats = [fleet.next(index)["flights"] for index in range(4)]
    finally:
        fleet.close()
    answers = [answer for phase in phases for answer in phase["answers"]]
    assert len(answers) == 4 * 2 * 20
    assert all(a["ok"] and a["data"]["tenant"] == a["ask"] for a in answers)
    runs = fleet.executions()
    assert sorted(tenant for _, _, tenant, _ in runs) == ["acme", "globex"], stats  # one each
    assert sum(s["leases"] for s in stats) == 2
    assert sum(s["shared"] for s in stats) == 6


def test_a_killed_holder_is_taken_over_within_the_lease_ttl(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ttl, tool_s = 1.5, 0.4
    fleet = make_fleet(tmp_path, redis_server, tool_s=tool_s, lease_ttl=ttl)
    try:
        fleet.start([[ask("go", 2, 10)] for _ in range(3)])
        fleet.go("go")
        fleet.wait_executions(1)
        holder, _, _, started = fleet.executions()[0]
        index = next(i for i, p in enumerate(fleet.processes) if p.pid == holder)
        os.kill(holder, signal.SIGKILL)
        survivors = [i for i in range(3) if i != index]
        phases = [fleet.next(i, ttl + 10 * tool_s + 5) for i in survivors]
    finally:
        fleet.close()
    answers = [answer for phase in phases for answer in phase["answers"]]
    assert len(answers) == 20
    assert all(a["ok"] for a in answers)
    runs = fleet.executions()
    assert len(runs) == 2  # the dead holder's run, and one takeover
    assert runs[1][0] != holder
    # Answered within the lease TTL plus the tool's time of the holder's start (plus
    # polling and a loaded machine's scheduling slack).
    assert max(a["t"] for a in answers) - started <= ttl + tool_s + 0.75


@pytest.mark.parametrize("failure", ["kill", "pause"])
def test_redis_failing_mid_flight_falls_back_locally_then_sharing_resumes(
    redis_server: RedisServer, tmp_path: Path, failure: str
) -> None:
    ttl, tool_s = 20.0, 0.5
    fleet = make_fleet(tmp_path, redis_server, tool_s=tool_s, lease_ttl=ttl)
    try:
        fleet.start([[ask("go1", 3, 5), ask("go2", 4, 5)] for _ in range(3)])
        fleet.go("go1")
        fleet.wait_executions(1)
        broke = time.time()
        if failure == "kill":
            redis_server.kill()
        else:
            redis_server.pause()
        try:
            first = [fleet.next(i) for i in range(3)]
        finally:
            if failure == "kill":
                redis_server.start()
            else:
                redis_server.resume()
        during = len(fleet.executions())
        time.sleep(0.5)  # past every replica's breaker backoff
        fleet.go("go2")
        second = [fleet.next(i) for i in range(3)]
        stats = [fleet.next(i) for i in range(3)]
    finally:
        fleet.close()
    answers = [a for phase in first for a in phase["answers"]]
    assert len(answers) == 15
    assert all(a["ok"] for a in answers)
    # Nobody waited on the (20 s) lease: each replica ran the tool itself at once.
    assert max(a["t"] for a in answers) - broke < ttl / 4
    assert during == 3
    assert sum(s["flights"]["fallbacks"] for s in stats) >= 2
    resumed = [a for phase in second for a in phase["answers"]]
    assert all(a["ok"] for a in resumed)
    assert len([run for run in fleet.executions() if run[1] == 4]) == 1  # shared again


def test_an_invalidation_during_a_flight_reaches_every_replica(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    fleet = make_fleet(tmp_path, redis_server, tool_s=0.6)
    try:
        askers = [ask("go1", 5, 5), ask("go3", 5, 5)]
        invalidator = [{**ask("go2", 5, 1), "invalidate": True}, ask("go3", 5, 5)]
        fleet.start([askers, askers, invalidator])
        fleet.go("go1")
        fleet.wait_executions(1)  # the holder read version 1 and is running
        fleet.source.write_text("2")
        fleet.go("go2")
        assert fleet.next(2)["invalidated"]
        during = [fleet.next(i) for i in range(2)]
        fleet.go("go3")
        after = [fleet.next(i) for i in range(3)]
    finally:
        fleet.close()
    holder = fleet.executions()[0][0]
    for index, phase in enumerate(during):
        versions = {a["data"]["version"] for a in phase["answers"]}
        # The holder's callers got what it computed; the waiter re-ran, fresh.
        assert versions == ({1} if fleet.processes[index].pid == holder else {2})
    assert all(a["data"]["version"] == 2 for phase in after for a in phase["answers"])
    assert len(fleet.executions()) == 2
