"""One replica of a service sharing a Redis tier: a worker *process* for the scale-out tests.

    python tests/cache_replica.py '<job as JSON>'

The job (see :func:`main`) names the Redis tier's settings, the tool's run time, a log
file every execution appends one line to (``pid ci tenant time``), a source file the
tool reads its data version from (at its start), and *phases*.  The replica opens its
runtime, prints ``{"ready": pid}``, then for each phase waits for the phase's ``go`` file
to exist and either asks ``ci`` with ``callers`` concurrent callers per tenant or
invalidates it, and prints one JSON line per phase.  Last comes ``{"flights": ...}``.
:class:`Fleet` starts and drives R such processes from a test or a benchmark
(tests/test_cache_lease_replicas.py, benchmarks/scaleout_bench.py).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.config import CacheConfig, RedisConfig, RuntimeConfig, TracerConfig
from runtime.runtime import Runtime

GO_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 60.0
PHASE_TIMEOUT_S = 30.0


def registry(job: Mapping[str, Any]) -> ToolRegistry:
    reg = ToolRegistry()
    log = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    source = anyio.Path(job["source"])

    @reg.tool("CI", "get")
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        # The version first: once the line is logged, the data this run returns is fixed.
        version = int(await source.read_text() or 0) if await source.exists() else 0
        line = f"{os.getpid()} {params['ci_id']} {ctx.tenant_id} {time.time():.6f}\n"
        os.write(log, line.encode())  # one write(2) on O_APPEND: lines never interleave
        await anyio.sleep(job["tool_s"])
        return {"ci": params["ci_id"], "tenant": ctx.tenant_id, "version": version}

    return reg


def emit(record: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


async def wait_for(path: str) -> None:
    with anyio.fail_after(GO_TIMEOUT_S):
        while not await anyio.Path(path).exists():
            await anyio.sleep(0.001)


async def run(job: dict[str, Any]) -> None:
    redis = RedisConfig(**job["redis"])
    config = RuntimeConfig(cache=CacheConfig(redis=redis), tracer=TracerConfig(enabled=False))
    async with open_runtime(registry(job), config) as rt:
        assert rt.cache is not None
        emit({"ready": os.getpid()})
        for index, phase in enumerate(job["phases"]):
            await wait_for(phase["go"])
            params = {"ci_id": phase["ci"]}
            if phase.get("invalidate"):
                for tenant in phase["tenants"]:
                    await rt.cache.invalidate("CI", "get", params, ToolContext(tenant_id=tenant))
                emit({"phase": index, "invalidated": True})
                continue
            answers: list[dict[str, Any]] = []
            async with anyio.create_task_group() as tg:
                for tenant in phase["tenants"]:
                    for _ in range(phase["callers"]):
                        tg.start_soon(ask, rt, params, tenant, answers)
            emit({"phase": index, "answers": answers})
        report = (await rt.cache.stats()).to_dict()
        emit({"flights": report["l2"]["flights"], "l2": report["l2"]["tier"]})


async def ask(rt: Runtime, params: dict[str, Any], tenant: str, into: list[Any]) -> None:
    result = await rt.execute_result("CI", "get", params, ToolContext(tenant_id=tenant))
    into.append({"t": time.time(), "ok": result.success, "data": result.data, "ask": tenant})


class Fleet:
    """R replica processes driven phase by phase through ``go`` files."""

    def __init__(self, directory: Path, redis_url: str, tool_s: float, **redis: Any) -> None:
        self.directory = directory
        self.log = directory / "executions.log"
        self.source = directory / "source"
        self.source.write_text("1")
        self.tool_s = tool_s
        self.redis = {
            "url": redis_url,
            "op_timeout": 1.0,  # generous: a loaded box must not trip the breaker
            "failure_threshold": 1,
            "backoff_initial": 0.05,
            "backoff_max": 0.1,
            "generation_cache": 0.0,
            "lease_ttl": 5.0,
            "lease_poll": 0.02,
            **redis,
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self._lines: list[queue.Queue[dict[str, Any]]] = []

    def start(self, phases: list[list[dict[str, Any]]]) -> None:
        """One replica per entry of ``phases`` (its own phase list); wait until all are up."""
        for index, own in enumerate(phases):
            job = {
                "redis": self.redis,
                "tool_s": self.tool_s,
                "log": str(self.log),
                "source": str(self.source),
                "backend": "trio" if index % 2 else "asyncio",
                "phases": [{**phase, "go": str(self.directory / phase["go"])} for phase in own],
            }
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), json.dumps(job)],
                stdout=subprocess.PIPE,
            )
            lines: queue.Queue[dict[str, Any]] = queue.Queue()
            threading.Thread(target=self._read, args=(process, lines), daemon=True).start()
            self.processes.append(process)
            self._lines.append(lines)
        for index in range(len(phases)):
            assert "ready" in self.next(index, READY_TIMEOUT_S)

    @staticmethod
    def _read(process: subprocess.Popen[bytes], lines: queue.Queue[dict[str, Any]]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.put(json.loads(raw))

    def next(self, index: int, timeout: float = PHASE_TIMEOUT_S) -> dict[str, Any]:
        try:
            return self._lines[index].get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"replica {index} said nothing within {timeout}s") from None

    def go(self, name: str) -> float:
        (self.directory / name).touch()
        return time.time()

    def executions(self) -> list[tuple[int, int, str, float]]:
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text().splitlines()]
        return [(int(pid), int(ci), tenant, float(t)) for pid, ci, tenant, t in rows]

    def wait_executions(self, count: int, timeout: float = PHASE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while len(self.executions()) < count:
            assert time.monotonic() < deadline, f"fewer than {count} executions in {timeout}s"
            time.sleep(0.002)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


def main() -> None:
    job = json.loads(sys.argv[1])
    anyio.run(run, job, backend=job.get("backend", "asyncio"))


if __name__ == "__main__":
    main()
