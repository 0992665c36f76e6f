"""Selector benchmark: tail latency and errors of tool-selection strategies, in virtual time.

A discrete-event simulation (pure Python, ``heapq``, no sleeping) of K interchangeable
tools that serve one intent.  Each tool is a FIFO queue in front of a few service slots with
lognormal service times, and requests arrive as a Poisson stream.  Every strategy sees the
*same* arrival stream and the same per-request service draws (seeded), and each figure is the
median over several seeds.

Scenarios (after the Linkerd 2016 experiment and the pilot in
``research/observability-selection-composition.md`` §2.3):

- ``spike``: tool 0 serves 10x slower for the middle 30 % of the run;
- ``drift``: tool 0 slows down steadily, reaching 4x at the end;
- ``fast_failing``: tool 0 fails 8 % of its calls, and a failure returns after 10 % of
  the service time ("fast 503s look fast");
- ``stale``: the spike, with every observation (call start and finish) reaching the
  strategy 200 ms late.

Strategies: round-robin, random, P2C least-outstanding, P2C peak-EWMA (Finagle's formula:
``cost * (pending + 1)``, cost decaying toward 0 on read, with a penalty for a cold host
with pending calls), and ours: the real ``SelectorState.choose`` with its default settings
under BALANCED (``ours``) and FASTEST (``ours_fastest``), and with ``choices: 2``
(``ours_p2c``: P2C among the near-top candidates instead of the least loaded of them all).
Ours is fed the call starts and finishes exactly as the executor feeds the SelectorActor:
the caller-observed duration and whether the call succeeded.

The latency of a request is its completion minus its arrival (queueing included), for
failed requests too.  Figures: p50 / p99 / p99.9 in ms and the error rate, per scenario
and strategy.  ``p99_vs_p2c_ewma_<scenario>`` is ours (BALANCED, the default strategy)
divided by P2C peak-EWMA, and ``errors_vs_round_robin`` is ours divided by round-robin on
``fast_failing``.  Both are medians of per-seed ratios, and the goal is <= 1.0.  The same
ratios for the variants carry the suffixes ``_fastest`` and ``_p2c``.

``newcomer`` (issue 20): three tools with observed histories, then a fourth registered
that is 5x faster than the best, unprofiled (the default 100 ms prior), sequential calls
every 50 ms.  ``newcomer_discovery_calls``: calls until the newcomer serves most traffic
(the majority of the next 20; median over seeds; goal <= 50).  ``exploration_share``: the
fraction of ours' choices that explored, in the four scenarios above (the largest of the
per-scenario medians; goal <= 0.05).

Run:  .venv/bin/python benchmarks/selector_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from runtime.selector import SelectorSettings, SelectorState, ToolProfile
from runtime.selector.observations import ObservationSettings

K = 6
SLOTS = 4
UTILISATION = 0.7
SERVICE_MEDIAN_S = 0.020
SERVICE_SIGMA = 0.5
DECAY_S = 10.0
ERROR_RATE = 0.08
FAST_FAIL_FRACTION = 0.10
STALE_DELAY_S = 0.200

TOOL = "SIM"
INTENT = "SIM"


# -- workload -------------------------------------------------------------------------------


class Workload:
    """One seed's arrival stream and per-request random draws, shared by every strategy."""

    def __init__(self, seed: int, requests: int) -> None:
        rng = random.Random(seed)
        mean_service = SERVICE_MEDIAN_S * math.exp(SERVICE_SIGMA**2 / 2)
        rate = UTILISATION * K * SLOTS / mean_service
        t = 0.0
        self.arrivals: list[float] = []
        for _ in range(requests):
            t += rng.expovariate(rate)
            self.arrivals.append(t)
        self.service = [
            rng.lognormvariate(math.log(SERVICE_MEDIAN_S), SERVICE_SIGMA) for _ in range(requests)
        ]
        self.fail_draw = [rng.random() for _ in range(requests)]
        self.duration = t
        self.seed = seed


class Scenario:
    def __init__(
        self,
        name: str,
        slowdown: Callable[[int, float, float], float],
        error_tool: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.slowdown = slowdown
        self.error_tool = error_tool
        self.delay_s = delay_s


def _spike(tool: int, t: float, horizon: float) -> float:
    return 10.0 if tool == 0 and 0.35 * horizon <= t < 0.65 * horizon else 1.0


def _drift(tool: int, t: float, horizon: float) -> float:
    return 1.0 + 3.0 * min(t / horizon, 1.0) if tool == 0 else 1.0


def _steady(tool: int, t: float, horizon: float) -> float:
    return 1.0


SCENARIOS = (
    Scenario("spike", _spike),
    Scenario("drift", _drift),
    Scenario("fast_failing", _steady, error_tool=0),
    Scenario("stale", _spike, delay_s=STALE_DELAY_S),
)


# -- strategies -----------------------------------------------------------------------------


class Picker(Protocol):
    def pick(self, now: float) -> int: ...
    def started(self, tool: int, now: float) -> None: ...
    def finished(self, tool: int, rtt: float, ok: bool, now: float) -> None: ...


class RoundRobin:
    def __init__(self, rng: random.Random) -> None:
        self._next = 0

    def pick(self, now: float) -> int:
        tool = self._next
        self._next = (tool + 1) % K
        return tool

    def started(self, tool: int, now: float) -> None:
        pass

    def finished(self, tool: int, rtt: float, ok: bool, now: float) -> None:
        pass


class Random(RoundRobin):
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, now: float) -> int:
        return self._rng.randrange(K)


class P2CLeastOutstanding(RoundRobin):
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._pending = [0] * K

    def pick(self, now: float) -> int:
        a, b = self._rng.sample(range(K), 2)
        return b if self._pending[b] < self._pending[a] else a

    def started(self, tool: int, now: float) -> None:
        self._pending[tool] += 1

    def finished(self, tool: int, rtt: float, ok: bool, now: float) -> None:
        self._pending[tool] -= 1


class _FinagleMetric:
    """Finagle's PeakEwma.Metric, transcribed (times in seconds, not nanoseconds)."""

    PENALTY = float(2**47)

    def __init__(self) -> None:
        self.stamp = 0.0
        self.pending = 0
        self.cost = 0.0

    def observe(self, rtt: float, now: float) -> None:
        td = max(now - self.stamp, 0.0)
        w = math.exp(-td / DECAY_S)
        self.cost = rtt if rtt > self.cost else self.cost * w + rtt * (1.0 - w)
        self.stamp = now

    def get(self, now: float) -> float:
        self.observe(0.0, now)
        if self.cost == 0.0 and self.pending != 0:
            return self.PENALTY + self.pending
        return self.cost * (self.pending + 1)


class P2CPeakEwma(RoundRobin):
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._metrics = [_FinagleMetric() for _ in range(K)]

    def pick(self, now: float) -> int:
        a, b = self._rng.sample(range(K), 2)
        return b if self._metrics[b].get(now) < self._metrics[a].get(now) else a

    def started(self, tool: int, now: float) -> None:
        self._metrics[tool].pending += 1

    def finished(self, tool: int, rtt: float, ok: bool, now: float) -> None:
        metric = self._metrics[tool]
        metric.pending -= 1
        metric.observe(rtt, now)


def _selector_config() -> SelectorSettings:
    candidates = tuple((TOOL, f"t{k}") for k in range(K))
    profile = ToolProfile(
        accuracy=0.9, completeness=0.9, latency_prior_s=SERVICE_MEDIAN_S, intent_bonus={INTENT: 1}
    )
    return SelectorSettings(
        profiles=dict.fromkeys(candidates, profile),
        candidates={INTENT: candidates},
        observation=ObservationSettings(decay_time=DECAY_S),
    )


class Ours(RoundRobin):
    """The real selector core, fed like the SelectorActor is fed by the executor."""

    strategy = "BALANCED"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._state = SelectorState(_selector_config())
        self._ops = [f"t{k}" for k in range(K)]
        self._index = {op: k for k, op in enumerate(self._ops)}
        self._none: frozenset[tuple[str, str]] = frozenset()

    explored = 0
    picks = 0

    def pick(self, now: float) -> int:
        chosen = self._state.choose(INTENT, self.strategy, self._none, now, self._rng)
        self.picks += 1
        self.explored += chosen.explored
        return self._index[chosen.operation]

    def started(self, tool: int, now: float) -> None:
        self._state.observe_start(TOOL, self._ops[tool], now)

    def finished(self, tool: int, rtt: float, ok: bool, now: float) -> None:
        self._state.observe_finish(TOOL, self._ops[tool], rtt, ok, now)


class OursFastest(Ours):
    strategy = "FASTEST"


class OursP2C(Ours):
    """BALANCED with ``choices: 2``: power of two choices among the near-top candidates."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self._state = SelectorState(attrs.evolve(_selector_config(), choices=2))


STRATEGIES: dict[str, Callable[[random.Random], Picker]] = {
    "round_robin": RoundRobin,
    "random": Random,
    "p2c_least_outstanding": P2CLeastOutstanding,
    "p2c_peak_ewma": P2CPeakEwma,
    "ours": Ours,
    "ours_fastest": OursFastest,
    "ours_p2c": OursP2C,
}


# -- the newcomer scenario -------------------------------------------------------------------

NEWCOMER_MEDIANS_S = (0.020, 0.030, 0.040)  # the three tools with a history
NEWCOMER_SPEEDUP = 5.0  # the fourth is 5x faster than the best of them
NEWCOMER_HISTORY = 300  # calls observed before it is registered
NEWCOMER_CALLS = 400  # calls after
NEWCOMER_GAP_S = 0.05  # one call every 50 ms, sequential
NEWCOMER_WINDOW = 20  # "serves most traffic": the majority of the next 20 calls


def _newcomer_settings(operations: Sequence[str], explore: bool = True) -> SelectorSettings:
    """The real selector's defaults; the three known tools' priors are their medians, the
    newcomer is unprofiled: the neutral default profile (a 100 ms prior)."""
    candidates = tuple((TOOL, op) for op in operations)
    profiles = {
        (TOOL, f"n{k}"): ToolProfile(0.5, 0.5, median, {})
        for k, median in enumerate(NEWCOMER_MEDIANS_S)
    }
    settings = SelectorSettings(profiles=profiles, candidates={INTENT: candidates})
    return settings if explore else attrs.evolve(settings, exploration_share=0.0)


def newcomer_discovery(seed: int, explore: bool = True) -> int:
    """Calls after the fourth tool is registered until it serves most traffic.

    Three tools serve ``NEWCOMER_HISTORY`` sequential calls (the selector learns them), then
    a fourth, 5x faster than the best, joins the intent (a new settings object, the same
    observations replayed into it, as a restarted runtime would relearn them).  The figure
    is the first call index n such that the newcomer served the majority of calls
    n+1..n+20; ``NEWCOMER_CALLS`` when it never does.
    """
    rng = random.Random(seed)
    medians = {f"n{k}": median for k, median in enumerate(NEWCOMER_MEDIANS_S)}
    history: list[tuple[str, float, float]] = []
    state = SelectorState(_newcomer_settings(list(medians), explore))
    pick_rng = random.Random(seed + 1)
    now = 0.0

    def call(state: SelectorState) -> str:
        nonlocal now
        op = state.choose(INTENT, None, (), now, pick_rng).operation
        latency = rng.lognormvariate(math.log(medians[op]), SERVICE_SIGMA)
        state.observe_start(TOOL, op, now)
        state.observe_finish(TOOL, op, latency, True, now + latency)
        history.append((op, now, latency))
        now += NEWCOMER_GAP_S
        return op

    for _ in range(NEWCOMER_HISTORY):
        call(state)
    medians["new"] = min(NEWCOMER_MEDIANS_S) / NEWCOMER_SPEEDUP
    state = SelectorState(_newcomer_settings(list(medians), explore))
    for op, at, latency in history:
        state.observe_start(TOOL, op, at)
        state.observe_finish(TOOL, op, latency, True, at + latency)
    served = [call(state) == "new" for _ in range(NEWCOMER_CALLS)]
    for n in range(NEWCOMER_CALLS - NEWCOMER_WINDOW):
        if sum(served[n : n + NEWCOMER_WINDOW]) > NEWCOMER_WINDOW // 2:
            return n
    return NEWCOMER_CALLS


# -- simulation -----------------------------------------------------------------------------

_COMPLETE, _NOTIFY_START, _NOTIFY_FINISH = 0, 1, 2


def simulate(workload: Workload, scenario: Scenario, picker: Picker) -> tuple[list[float], int]:
    """Run one strategy over one workload; return every request's latency and the errors."""
    horizon = workload.duration
    delay = scenario.delay_s
    busy = [0] * K
    queues: list[deque[int]] = [deque() for _ in range(K)]
    heap: list[tuple[float, int, int, int, int, float]] = []
    seq = 0
    latencies: list[float] = [0.0] * len(workload.arrivals)
    failed = [False] * len(workload.arrivals)
    errors = 0

    def push(at: float, kind: int, tool: int, request: int, value: float = 0.0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (at, seq, kind, tool, request, value))

    def begin(request: int, tool: int, now: float) -> None:
        busy[tool] += 1
        service = workload.service[request] * scenario.slowdown(tool, now, horizon)
        if tool == scenario.error_tool and workload.fail_draw[request] < ERROR_RATE:
            failed[request] = True
            service *= FAST_FAIL_FRACTION
        push(now + service, _COMPLETE, tool, request)

    def handle(event: tuple[float, int, int, int, int, float]) -> None:
        nonlocal errors
        now, _, kind, tool, request, value = event
        if kind == _COMPLETE:
            rtt = now - workload.arrivals[request]
            latencies[request] = rtt
            errors += failed[request]
            busy[tool] -= 1
            if queues[tool]:
                begin(queues[tool].popleft(), tool, now)
            if delay:
                push(now + delay, _NOTIFY_FINISH, tool, request, rtt)
            else:
                picker.finished(tool, rtt, not failed[request], now)
        elif kind == _NOTIFY_START:
            picker.started(tool, now)
        else:
            picker.finished(tool, value, not failed[request], now)

    for request, arrival in enumerate(workload.arrivals):
        while heap and heap[0][0] <= arrival:
            handle(heapq.heappop(heap))
        tool = picker.pick(arrival)
        if delay:
            push(arrival + delay, _NOTIFY_START, tool, request)
        else:
            picker.started(tool, arrival)
        if busy[tool] < SLOTS:
            begin(request, tool, arrival)
        else:
            queues[tool].append(request)
    while heap:
        handle(heapq.heappop(heap))
    return latencies, errors


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    index = max(math.ceil(q / 100.0 * len(ordered)) - 1, 0)
    return ordered[min(index, len(ordered) - 1)]


# -- driver ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and seeds")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args(argv)
    requests = args.requests or (8_000 if args.quick else 60_000)
    seeds = args.seeds or (3 if args.quick else 5)

    began = time.perf_counter()
    # per (scenario, strategy): list over seeds of (p50, p99, p999, error_rate)
    results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    shares: dict[str, list[float]] = {}  # per scenario: ours' exploring choices / choices
    wall: dict[str, float] = dict.fromkeys(STRATEGIES, 0.0)
    for seed in range(seeds):
        workload = Workload(seed, requests)
        for scenario in SCENARIOS:
            for name, make in STRATEGIES.items():
                t0 = time.perf_counter()
                picker = make(random.Random(seed + 1))
                latencies, errors = simulate(workload, scenario, picker)
                wall[name] += time.perf_counter() - t0
                if name == "ours" and isinstance(picker, Ours):
                    shares.setdefault(scenario.name, []).append(picker.explored / picker.picks)
                ordered = sorted(latencies)
                results.setdefault((scenario.name, name), []).append(
                    (
                        percentile(ordered, 50) * 1e3,
                        percentile(ordered, 99) * 1e3,
                        percentile(ordered, 99.9) * 1e3,
                        errors / len(latencies),
                    )
                )

    figures: dict[str, float | int | str] = {"requests": requests, "seeds": seeds, "tools": K}
    print(
        f"{'scenario':<13} {'strategy':<22} {'p50 ms':>9} {'p99 ms':>10} {'p99.9 ms':>10} "
        f"{'errors':>7}"
    )
    for (scenario_name, name), runs in results.items():
        p50, p99, p999, err = (statistics.median(column) for column in zip(*runs, strict=True))
        prefix = f"{scenario_name}_{name}"
        figures[f"{prefix}_p50_ms"] = round(p50, 2)
        figures[f"{prefix}_p99_ms"] = round(p99, 2)
        figures[f"{prefix}_p999_ms"] = round(p999, 2)
        figures[f"{prefix}_error_rate"] = round(err, 5)
        print(f"{scenario_name:<13} {name:<22} {p50:9.1f} {p99:10.1f} {p999:10.1f} {err:7.2%}")

    def ratio(scenario_name: str, ours: str, anchor: str, column: int) -> float:
        pairs = zip(results[(scenario_name, ours)], results[(scenario_name, anchor)], strict=True)
        return statistics.median(a[column] / b[column] if b[column] else math.inf for a, b in pairs)

    variants = (("", "ours"), ("_fastest", "ours_fastest"), ("_p2c", "ours_p2c"))
    for suffix, ours in variants:
        for scenario in SCENARIOS:
            figures[f"p99_vs_p2c_ewma_{scenario.name}{suffix}"] = round(
                ratio(scenario.name, ours, "p2c_peak_ewma", 1), 3
            )
        figures[f"errors_vs_round_robin{suffix}"] = round(
            ratio("fast_failing", ours, "round_robin", 3), 3
        )
    for scenario_name, per_seed in shares.items():
        figures[f"exploration_share_{scenario_name}"] = round(statistics.median(per_seed), 5)
    figures["exploration_share"] = max(
        figures[f"exploration_share_{scenario.name}"]  # type: ignore[type-var]
        for scenario in SCENARIOS
    )
    newcomer = [newcomer_discovery(seed) for seed in range(seeds)]
    figures["newcomer_discovery_calls"] = int(statistics.median(newcomer))
    figures["newcomer_discovery_calls_worst"] = max(newcomer)
    # The anchor: the same scenario with exploration off (NEWCOMER_CALLS = never).
    figures["newcomer_discovery_calls_no_exploration"] = int(
        statistics.median(newcomer_discovery(seed, explore=False) for seed in range(seeds))
    )
    figures["goals_met"] = int(
        all(figures[f"p99_vs_p2c_ewma_{s.name}"] <= 1.0 for s in SCENARIOS)  # type: ignore[operator]
        and figures["errors_vs_round_robin"] <= 1.0  # type: ignore[operator]
        and figures["exploration_share"] <= 0.05  # type: ignore[operator]
        and figures["newcomer_discovery_calls"] <= 50  # type: ignore[operator]
    )
    simulated = requests * seeds * len(SCENARIOS)
    for name, seconds in wall.items():
        figures[f"sim_us_per_request_{name}"] = round(seconds / simulated * 1e6, 2)
    figures["wall_s"] = round(time.perf_counter() - began, 2)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
