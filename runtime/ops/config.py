"""The ops suite's configuration: the core's schema plus an ``ops:`` section, preset applied.

:class:`OpsRuntimeConfig` is :class:`~runtime.config.RuntimeConfig` with one more section,
:class:`OpsConfig` (which sample CMDB to use, and the demo session's shape).  Its limits are
the generator's own (``runtime.ops.generate`` MIN_CIS, MAX_CIS, MAX_DAYS), so a bad
``ops.cis`` is named by its key path at load time.  :func:`load_ops_config` and
:func:`ops_config_from_dict` read a file or mapping with that schema and lay
:data:`~runtime.ops.preset.OPS_PRESET` under it; they are what the faces (CLI, MCP command,
example service) use, and ``config/runtime.yaml`` is their default file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import attrs

from runtime.config import (
    CallerCount,
    Check,
    NonEmptyStr,
    NonNegFloat,
    PosInt,
    QuestionCount,
    RuntimeConfig,
    Seed,
    config_from_dict,
    load_config,
)
from runtime.ops.generate import DEFAULT_CIS, DEFAULT_DAYS, DEFAULT_SEED, MAX_CIS, MAX_DAYS, MIN_CIS
from runtime.ops.preset import OPS_PRESET
from runtime.preset import apply_preset

__all__ = [
    "OpsConfig",
    "OpsRuntimeConfig",
    "load_ops_config",
    "ops_config_from_dict",
    "ops_defaults",
]

CiCount = Annotated[
    PosInt,
    Check(f"at least {MIN_CIS}", lambda v: v >= MIN_CIS),
    Check(f"at most {MAX_CIS:,}", lambda v: v <= MAX_CIS),
]
HistoryDays = Annotated[PosInt, Check(f"at most {MAX_DAYS}", lambda v: v <= MAX_DAYS)]


@attrs.frozen(slots=True)
class OpsConfig:
    """The reference ops tool suite, its embedded SQLite CMDB, and the demo session.

    ``database``, ``cis``, ``days`` and ``seed`` say which sample CMDB to use; the demo
    (``python -m runtime demo``) builds it there when it is absent or was built with other
    sizes.  The sizes default to the generator's own, so the CLI and the library describe
    the same estate.  The ``demo_*`` settings shape the scripted operator session: the
    tenant it asks as, how many repeated questions it replays after the scripted ones, the
    Zipf exponent of their popularity and how many operators ask at once.
    """

    database: NonEmptyStr = "var/cmdb.sqlite"
    cis: CiCount = DEFAULT_CIS
    days: HistoryDays = DEFAULT_DAYS
    seed: Seed = DEFAULT_SEED
    # A tenant is part of every cache key; ToolContext refuses a blank one.
    demo_tenant: NonEmptyStr = "ops-demo"
    demo_questions: QuestionCount = 2000
    demo_skew: NonNegFloat = 1.1
    demo_callers: CallerCount = 8


@attrs.frozen(slots=True)
class OpsRuntimeConfig(RuntimeConfig):
    """The runtime's configuration with the ops suite's ``ops:`` section."""

    ops: OpsConfig = attrs.field(factory=OpsConfig)


def ops_defaults() -> OpsRuntimeConfig:
    """The defaults with the ops preset applied (what ``config/runtime.yaml`` spells out)."""
    return apply_preset(OpsRuntimeConfig(), OPS_PRESET)


def ops_config_from_dict(data: Mapping[str, Any] | None) -> OpsRuntimeConfig:
    """:func:`runtime.config_from_dict` with the ``ops:`` section, preset applied."""
    return apply_preset(config_from_dict(data, OpsRuntimeConfig), OPS_PRESET)


def load_ops_config(path: str | Path | None = None) -> OpsRuntimeConfig:
    """:func:`runtime.load_config` with the ``ops:`` section, preset applied."""
    return apply_preset(load_config(path, OpsRuntimeConfig), OPS_PRESET)
