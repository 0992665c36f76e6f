"""runtime.testing: test your tools, compositions and policies against a live runtime.

What trio ships as ``trio.testing``, for this runtime -- public, documented and typed:

* :mod:`~runtime.testing.fakes` -- :class:`ScriptedTool`, a fake tool that plays a
  :class:`FaultPlan` (latencies, failures at call k or with a seeded probability, hangs,
  huge or unserialisable answers) and records every call;
* :mod:`~runtime.testing.runtime` -- :func:`open_test_runtime`, a runtime with seeded ids
  and no timers of its own, so one example always produces the same trace;
* :mod:`~runtime.testing.strategies` -- hypothesis strategies: params (valid and
  invalid) derived from the params schemas, intents, random compositions, fault plans;
* :mod:`~runtime.testing.stateful` -- :class:`RuntimeStateMachine`, a stateful-test base
  that drives a live runtime through an anyio blocking portal, with built-in invariants;
* :mod:`~runtime.testing.quiescence` -- :func:`assert_quiescent`, no work left behind
  (every call in flight, pipeline run, cache flight, mailbox and deferred reply);
* :mod:`~runtime.testing.clock` -- virtual time on both backends, and
  :class:`PortalTime` for loops driven through a portal;
* :mod:`~runtime.testing.pytest_plugin` -- the pytest plugin (entry point ``runtime``):
  the ``virtual_time`` marker and the runtime fixtures; not imported from here.

See docs/testing.md for a guide.
"""

from runtime.testing.clock import PortalTime, VirtualTimeLoop, virtual_time_backend_options
from runtime.testing.fakes import (
    ACTIONS,
    Action,
    CallRecord,
    FaultPlan,
    ScriptedFailure,
    ScriptedTool,
    Unserialisable,
    echo_result,
    params_key,
)
from runtime.testing.quiescence import assert_quiescent, quiescence_violations
from runtime.testing.runtime import deterministic_config, open_test_runtime, seeded_ids
from runtime.testing.stateful import BACKEND_ENV, IdleSnapshot, RuntimeStateMachine
from runtime.testing.strategies import (
    ResultPresent,
    compositions,
    fault_plans,
    intents,
    params_from_schema,
)

__all__ = [
    "ACTIONS",
    "BACKEND_ENV",
    "Action",
    "CallRecord",
    "FaultPlan",
    "IdleSnapshot",
    "PortalTime",
    "ResultPresent",
    "RuntimeStateMachine",
    "ScriptedFailure",
    "ScriptedTool",
    "Unserialisable",
    "VirtualTimeLoop",
    "assert_quiescent",
    "compositions",
    "deterministic_config",
    "echo_result",
    "fault_plans",
    "intents",
    "open_test_runtime",
    "params_from_schema",
    "params_key",
    "quiescence_violations",
    "seeded_ids",
    "virtual_time_backend_options",
]
