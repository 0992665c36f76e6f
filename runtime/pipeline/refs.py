"""Path references from step params to earlier results: ``$search.records[*].ci_id``.

* ``$params.keywords`` -- the run's initial params;
* ``$get.record.ci_id`` -- a key path into the result of the earlier step ``get``;
* ``$search.records[0]`` -- a list index (negative counts from the end);
* ``$search.records[*].ci_id`` -- a wildcard: the rest of the path applies to every
  element and the answers are collected in one (flattened) list;
* ``$$literal`` -- the literal string ``$literal``.

Grammar: ``"$" name ( "." name | "[" ( "*" | integer ) "]" )*`` with
``name = [A-Za-z_][A-Za-z0-9_]*``.

Pure.  :func:`parse_ref` turns text into a :class:`Ref` (syntax errors surface when a
composition is compiled); :func:`resolve_path` walks a value strictly: a missing key, an
index out of range or a wildcard over a non-list raises :class:`UnresolvedReference`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, TypeAlias

import attrs

from runtime.pipeline.state import State

__all__ = [
    "PARAMS_ROOT",
    "WILDCARD",
    "ParamTemplate",
    "Ref",
    "RefSyntaxError",
    "Segment",
    "UnresolvedReference",
    "Wildcard",
    "compile_params",
    "format_ref",
    "is_reference",
    "parse_ref",
    "resolve_path",
    "resolve_ref",
]

PARAMS_ROOT: Final = "params"
"""The root that names the run's initial params instead of a step."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[(?:(\*)|(-?[0-9]+))\]")


@attrs.frozen(slots=True, repr=False)
class Wildcard:
    """The ``[*]`` segment."""

    def __repr__(self) -> str:
        return "WILDCARD"


WILDCARD: Final = Wildcard()

Segment: TypeAlias = str | int | Wildcard


class RefSyntaxError(ValueError):
    """A reference's text does not follow the grammar.

    ``param`` is the dotted path of the param that held it, when it was found in a template.
    """

    def __init__(self, text: str, position: int, problem: str, param: str = "") -> None:
        self.text = text
        self.position = position
        self.problem = problem
        self.param = param
        where = f"{param}: " if param else ""
        super().__init__(f"{where}malformed reference {text!r} at character {position}: {problem}")


class UnresolvedReference(LookupError):
    """A reference does not lead to a value in the data it was applied to.

    ``param`` is the dotted path of the param that held it (``params.ci_ids``), empty
    when the reference was resolved outside a template.
    """

    def __init__(self, ref: str, problem: str, param: str = "") -> None:
        self.ref = ref
        self.problem = problem
        self.param = param
        where = f"{param}: " if param else ""
        super().__init__(f"{where}{ref}: {problem}")


@attrs.frozen(slots=True)
class Ref:
    """A parsed reference: ``root`` is ``params`` or a step name, ``path`` the segments."""

    root: str
    path: tuple[Segment, ...] = ()

    def __str__(self) -> str:
        return format_ref(self)

    @property
    def is_params(self) -> bool:
        return self.root == PARAMS_ROOT


def format_ref(ref: Ref) -> str:
    """The text of ``ref``; ``parse_ref(format_ref(r)) == r``."""
    parts = ["$", ref.root]
    for segment in ref.path:
        if isinstance(segment, Wildcard):
            parts.append("[*]")
        elif isinstance(segment, int):
            parts.append(f"[{segment}]")
        else:
            parts.append(f".{segment}")
    return "".join(parts)


def parse_ref(text: str) -> Ref:
    """Parse ``$root.key[0][*]...``; raises :class:`RefSyntaxError`."""
    if not text.startswith("$"):
        raise RefSyntaxError(text, 0, "a reference starts with '$'")
    root = _NAME.match(text, 1)
    if root is None:
        raise RefSyntaxError(
            text, 1, "expected 'params' or a step name (letters, digits, '_') after '$'"
        )
    position = root.end()
    path: list[Segment] = []
    while position < len(text):
        char = text[position]
        if char == ".":
            key = _NAME.match(text, position + 1)
            if key is None:
                raise RefSyntaxError(
                    text, position + 1, "expected a key (letters, digits, '_') after '.'"
                )
            path.append(key.group())
            position = key.end()
        elif char == "[":
            index = _INDEX.match(text, position)
            if index is None:
                raise RefSyntaxError(text, position, "expected '[*]' or '[<integer>]'")
            path.append(WILDCARD if index.group(1) else int(index.group(2)))
            position = index.end()
        else:
            raise RefSyntaxError(text, position, f"unexpected {char!r}; expected '.' or '['")
    return Ref(root.group(), tuple(path))


def is_reference(value: object) -> bool:
    """Whether a param value is a reference (``$...``, but not the ``$$`` escape)."""
    return isinstance(value, str) and value.startswith("$") and not value.startswith("$$")


def resolve_path(value: Any, path: Sequence[Segment], *, ref: str = "") -> Any:
    """Follow ``path`` into ``value``; raises :class:`UnresolvedReference`."""
    return _walk(value, tuple(path), 0, ref or "<value>", "")


def _walk(value: Any, path: tuple[Segment, ...], at: int, ref: str, trail: str) -> Any:
    if at == len(path):
        return value
    segment = path[at]
    here = trail or "the root"
    if isinstance(segment, Wildcard):
        if not _is_list(value):
            raise UnresolvedReference(
                ref, f"{here} is {_kind(value)}, not a list, so [*] cannot apply"
            )
        flatten = any(isinstance(s, Wildcard) for s in path[at + 1 :])
        collected: list[Any] = []
        for position, item in enumerate(value):
            found = _walk(item, path, at + 1, ref, f"{trail}[{position}]")
            if flatten:
                collected.extend(found)
            else:
                collected.append(found)
        return collected
    if isinstance(segment, int):
        if not _is_list(value):
            raise UnresolvedReference(
                ref, f"{here} is {_kind(value)}, not a list, so [{segment}] cannot apply"
            )
        if not -len(value) <= segment < len(value):
            raise UnresolvedReference(
                ref, f"index {segment} is out of range for {here} (length {len(value)})"
            )
        return _walk(value[segment], path, at + 1, ref, f"{trail}[{segment}]")
    if not isinstance(value, Mapping):
        raise UnresolvedReference(
            ref, f"{here} is {_kind(value)}, not a mapping, so .{segment} cannot apply"
        )
    if segment not in value:
        raise UnresolvedReference(ref, f"key {segment!r} not found in {here}")
    return _walk(value[segment], path, at + 1, ref, f"{trail}.{segment}")


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple)


def _kind(value: object) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


# -- templates ------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ParamTemplate:
    """Step params with references in them; call it with a :class:`State` to render.

    It is the ``params`` callable of a step compiled from data.  ``tree`` mirrors the
    declared params with every reference replaced by its :class:`Ref`.
    """

    tree: Mapping[str, Any] = attrs.field(hash=False)

    def references(self) -> Iterator[tuple[str, Ref]]:
        """Each ``(param path, Ref)`` in the template, e.g. ``("params.ci_ids", Ref(...))``."""
        yield from _references(self.tree, "params")

    def __call__(self, state: State) -> dict[str, Any]:
        rendered = _render(self.tree, state, "params")
        assert isinstance(rendered, dict)
        return rendered


def compile_params(params: Mapping[str, Any], *, where: str = "params") -> ParamTemplate:
    """Parse every reference in ``params`` (raises :class:`RefSyntaxError` naming the param)."""
    return ParamTemplate(_compile(params, where))


def _compile(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        compiled: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            compiled[key] = _compile(item, f"{where}.{key}")
        return compiled
    if isinstance(value, list | tuple):
        return [_compile(item, f"{where}[{position}]") for position, item in enumerate(value)]
    if isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    if is_reference(value):
        try:
            return parse_ref(value)
        except RefSyntaxError as error:
            raise RefSyntaxError(error.text, error.position, error.problem, where) from None
    return value


def _references(tree: Any, where: str) -> Iterator[tuple[str, Ref]]:
    if isinstance(tree, Ref):
        yield where, tree
    elif isinstance(tree, Mapping):
        for key, item in tree.items():
            yield from _references(item, f"{where}.{key}")
    elif isinstance(tree, list):
        for position, item in enumerate(tree):
            yield from _references(item, f"{where}[{position}]")


def resolve_ref(ref: Ref, state: State, *, param: str = "") -> Any:
    """The value ``ref`` names in ``state``; raises :class:`UnresolvedReference`."""
    text = format_ref(ref)
    if ref.is_params:
        root: Any = state.params
    elif ref.root in state.results:
        root = state.results[ref.root]
    else:
        raise UnresolvedReference(
            text, f"step {ref.root!r} produced no result (skipped or failed)", param
        )
    try:
        return _walk(root, ref.path, 0, text, f"${ref.root}")
    except UnresolvedReference as error:
        raise UnresolvedReference(text, error.problem, param) from None


def _render(tree: Any, state: State, where: str) -> Any:
    if isinstance(tree, Ref):
        return resolve_ref(tree, state, param=where)
    if isinstance(tree, Mapping):
        return {key: _render(item, state, f"{where}.{key}") for key, item in tree.items()}
    if isinstance(tree, list):
        return [_render(item, state, f"{where}[{position}]") for position, item in enumerate(tree)]
    return tree
