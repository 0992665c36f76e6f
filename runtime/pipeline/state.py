"""What a step sees: the run's initial params and every earlier step's result, by name.

The original pipeline handed each step only the previous step's result, so a third step
could not use the first one's answer.  Here a step reads anything that finished before it
started.  A :class:`State` is a read-only snapshot taken when the step (or its parallel
group) starts, so steps running side by side see the same world and cannot observe each
other's results half-way through a group.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

__all__ = ["State"]


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(slots=True)
class State:
    """A read-only snapshot: ``params`` (the run's input) and ``results`` (step -> data).

    ``state["search"]`` is the result of the step named ``search``; ``"search" in state``
    tells whether that step produced one (a skipped or failed step did not).
    """

    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    results: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)

    def __getitem__(self, step: str) -> Any:
        return self.results[step]

    def __contains__(self, step: object) -> bool:
        return step in self.results

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def get(self, step: str, default: Any = None) -> Any:
        return self.results.get(step, default)
