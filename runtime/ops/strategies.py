"""Hypothesis strategies for the ops suite: its tools' params and its intents.

Built on the generic strategies of :mod:`runtime.testing.strategies` with the suite's own
data (:data:`~runtime.ops.params.PARAMS_SCHEMAS`, :data:`~runtime.ops.preset.OPS_CANDIDATES`),
so a new field or bound in an ops schema shows up in the generated inputs unasked.
Needs hypothesis (the ``test`` extra), as ``runtime.testing`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from runtime.ops.params import PARAMS_SCHEMAS
from runtime.ops.preset import OPS_CANDIDATES
from runtime.selector.intents import Candidate, Intent
from runtime.testing.strategies import intents, params_from_schema

__all__ = ["ops_intents", "ops_params"]


def ops_params(tool_type: str, operation: str, *, invalid: bool = False) -> st.SearchStrategy[Any]:
    """Params of an ops tool, derived from ``PARAMS_SCHEMAS[(tool_type, operation)]``.

    Valid examples pass ``validate_params``; with ``invalid=True`` every example is
    rejected by it with ``InvalidParams`` (some are not even mappings).
    """
    key = (str(tool_type), operation)
    if key not in PARAMS_SCHEMAS:
        known = ", ".join(f"{t}.{o}" for t, o in sorted(PARAMS_SCHEMAS))
        raise KeyError(f"no params schema for {key[0]}.{key[1]}; known: {known}")
    return params_from_schema(PARAMS_SCHEMAS[key], invalid=invalid)


def ops_intents(
    candidates: Mapping[str, Sequence[Candidate]] = OPS_CANDIDATES, *, with_params: bool = True
) -> st.SearchStrategy[Intent]:
    """Intents of the ops suite, with params valid for one of each intent's candidates."""
    return intents(candidates, schemas=PARAMS_SCHEMAS, with_params=with_params)
