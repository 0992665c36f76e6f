"""Configuration: YAML in, frozen attrs classes out, every problem named by its key path.

The classes below *are* the schema.  One small structurer walks their type hints, so a new
setting is a new annotated field and nothing else: unknown keys, wrong types, negative
sizes or durations and unreadable files all become :class:`ConfigError` with the dotted
path of the offending key (``cache.ttl.METRIC.series``) and what is wrong with it.

Durations are written ``500ms``, ``30s``, ``5m``, ``1h`` or ``0`` (a bare number means
seconds) and held as float seconds.  :func:`config_to_dict` is the inverse of
:func:`config_from_dict`, which keeps ``config/runtime.yaml`` and the defaults in code
comparable (a test does exactly that).
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import attrs
import yaml

from runtime.errors import ConfigError

if TYPE_CHECKING:
    from runtime.cache.redis import RedisSettings

__all__ = [
    "CacheConfig",
    "Check",
    "ExecutorConfig",
    "McpConfig",
    "McpServerConfig",
    "PipelineConfig",
    "RedisConfig",
    "RuntimeConfig",
    "SelectorConfig",
    "SupervisionConfig",
    "TracerConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_duration",
]

T = TypeVar("T")
C = TypeVar("C", bound="RuntimeConfig")


class _Check:
    """Marker carried in ``Annotated`` metadata: how to validate a scalar."""

    __slots__ = ("describe", "test")

    def __init__(self, describe: str, test: typing.Callable[[Any], bool]) -> None:
        self.describe = describe
        self.test = test


Check = _Check
"""``Annotated[int, Check("at least 8", lambda v: v >= 8)]``: a checked value in a section
defined outside this module (an application's own sections, such as ``runtime.ops``')."""


class _DurationMarker:
    __slots__ = ()


_DURATION = _DurationMarker()
Seconds = Annotated[float, _DURATION]
NonNegInt = Annotated[int, _Check("a non-negative integer", lambda v: v >= 0)]
PosInt = Annotated[int, _Check("a positive integer", lambda v: v > 0)]
Fraction = Annotated[float, _Check("a number between 0 and 1", lambda v: 0.0 <= v <= 1.0)]
NonNegFloat = Annotated[float, _Check("a non-negative number", lambda v: v >= 0.0)]
NonEmptyStr = Annotated[str, _Check("a non-empty string", lambda v: bool(v.strip()))]
# Matched with separators dropped (runtime.tracer.redact): a fragment of separators only
# would be the empty fragment, which every key contains.
RedactFragments = Annotated[
    tuple[str, ...],
    _Check(
        "key fragments with a letter or digit each",
        lambda v: all(any(c.isalnum() for c in k) for k in v),
    ),
]

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
)
"""Param-name fragments whose values traces redact (``runtime.tracer.redact``)."""


def _at_most(high: int) -> _Check:
    return _Check(f"at most {high:,}", lambda v: v <= high)


# Upper bounds of every size a user can type (docs/configuration.md lists them): a value
# beyond one is a typo, and would otherwise run (or allocate) until killed.
MAX_QUESTIONS = 1_000_000
MAX_CALLERS = 1000
MAX_ENTRIES = 10_000_000
MAX_BYTES = 1 << 40
MAX_MAILBOX = 10_000_000
MAX_SEED = (1 << 63) - 1
MAX_DURATION_S = 365 * 86_400.0
QuestionCount = Annotated[NonNegInt, _at_most(MAX_QUESTIONS)]
CallerCount = Annotated[PosInt, _at_most(MAX_CALLERS)]
EntryCount = Annotated[PosInt, _at_most(MAX_ENTRIES)]
ByteCount = Annotated[PosInt, _at_most(MAX_BYTES)]
MailboxSize = Annotated[PosInt, _at_most(MAX_MAILBOX)]
Seed = Annotated[NonNegInt, _at_most(MAX_SEED)]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object, path: str = "") -> float:
    """``500ms`` / ``30s`` / ``5m`` / ``1h`` / ``0`` / a number of seconds -> float seconds."""
    if isinstance(value, bool):
        raise ConfigError(path, f"expected a duration such as 500ms, 30s, 5m, 1h; got {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            # An int beyond a float's range: YAML reads any number of digits as an int.
            raise ConfigError(path, "duration must be finite, got a number too large") from None
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            if value.strip().startswith("-"):
                raise ConfigError(path, f"duration must not be negative, got {value!r}")
            raise ConfigError(
                path, f"expected a duration such as 500ms, 30s, 5m, 1h or 0; got {value!r}"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ConfigError(
            path, f"expected a duration such as 500ms, 30s, 5m, 1h; got {type(value).__name__}"
        )
    if not math.isfinite(seconds):
        raise ConfigError(path, f"duration must be finite, got {value!r}")
    if seconds < 0:
        raise ConfigError(path, f"duration must not be negative, got {value!r}")
    if seconds > MAX_DURATION_S:
        raise ConfigError(path, f"duration must be at most 365 days (8760h), got {value!r}")
    return seconds


def _format_duration(seconds: float) -> str | float:
    """The friendliest exact spelling of ``seconds``: ``5m`` when exact, else a number."""
    if seconds == 0:
        return "0"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001)):
        count = seconds / size
        if count >= 1 and count.is_integer() and count * size == seconds:
            return f"{int(count)}{unit}"
    return seconds


# -- the schema ---------------------------------------------------------------------


@attrs.frozen(slots=True)
class ExecutorConfig:
    """How one tool call runs: its timeout, per (tool, operation) where configured."""

    default_timeout: Seconds = 30.0
    timeouts: dict[str, dict[str, Seconds]] = attrs.field(factory=dict)

    def timeout_for(self, tool_type: str, operation: str) -> float | None:
        """The timeout in seconds, or None when configured as 0 (no timeout)."""
        seconds = self.timeouts.get(tool_type, {}).get(operation, self.default_timeout)
        return seconds if seconds > 0 else None


@attrs.frozen(slots=True)
class RedisConfig:
    """The optional shared second tier (issue: Redis L2)."""

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "runtime"
    op_timeout: Seconds = 0.05
    connect_timeout: Seconds = 0.5
    secret: str | None = attrs.field(default=None, repr=False)
    failure_threshold: PosInt = 3
    backoff_initial: Seconds = 0.5
    backoff_max: Seconds = 30.0
    generation_cache: Seconds = 1.0
    max_connections: PosInt = 4
    shared_flight: bool = True
    lease_ttl: Seconds = 10.0
    lease_poll: Seconds = 0.02

    def __attrs_post_init__(self) -> None:
        # The tier's settings class owns the checks (url scheme, secret length, backoff
        # order...), so they live in one place: the settings the runtime will open the
        # tier with are built now, and only the key path is translated to this section.
        try:
            self.settings()
        except ConfigError as exc:
            field = exc.path.rsplit(".", 1)[-1].removesuffix("_s")
            raise ConfigError(f"cache.redis.{field}", exc.problem) from None

    def settings(self) -> RedisSettings:
        """The Redis tier's settings for this section (the tier suffixes durations ``_s``)."""
        # Imported here, not at the top: config is the bottom layer and must load
        # without the cache package.
        from runtime.cache.redis import RedisSettings

        values = {field.name: getattr(self, field.name) for field in attrs.fields(RedisConfig)}
        return RedisSettings(**{_REDIS_SETTING.get(k, k): v for k, v in values.items()})


_REDIS_DURATIONS = ("op_timeout", "connect_timeout", "backoff_initial", "backoff_max")
_REDIS_SETTING = {key: f"{key}_s" for key in (*_REDIS_DURATIONS, "generation_cache")}
_REDIS_SETTING.update(lease_ttl="lease_ttl_s", lease_poll="lease_poll_s")


@attrs.frozen(slots=True)
class CacheConfig:
    """The result cache: limits, TTL per (tool, operation), what is not part of a key.

    ``policy`` chooses what the in-process store evicts and admits: ``tinylfu`` (W-TinyLFU,
    frequency-aware, scan-resistant) or ``lru`` (plain least recently used).
    """

    enabled: bool = True
    max_entries: EntryCount = 10_000
    max_bytes: ByteCount = 64 * 1024 * 1024
    policy: Literal["tinylfu", "lru"] = "tinylfu"
    default_ttl: Seconds = 300.0
    ttl: dict[str, dict[str, Seconds]] = attrs.field(factory=dict)
    volatile_params: tuple[str, ...] = ("request_id", "trace_id")
    redis: RedisConfig | None = None

    def ttl_for(self, tool_type: str, operation: str) -> float:
        return self.ttl.get(tool_type, {}).get(operation, self.default_ttl)


@attrs.frozen(slots=True)
class TracerConfig:
    """The execution tracer: how much it keeps and what it never shows.

    ``batch_window``: greater than 0 turns batching on -- reports queue in the callers'
    tasks and reach the tracer a few hundred at a time (with record sinks such as the
    OpenTelemetry bridge, one wake-up per window instead), so a tool call pays no task
    switch for tracing.  Reads (stats, records, export) are never stale: each hands the
    queued reports over first.  0 turns batching off.  ``redact_keys`` are matched as
    case-insensitive substrings of param names at any depth (see ``runtime.tracer.redact``).
    """

    enabled: bool = True
    max_records: Annotated[
        int, _Check("an integer between 1 and 10,000,000", lambda v: 1 <= v <= 10_000_000)
    ] = 10_000
    mailbox_size: MailboxSize = 8192
    redact_keys: RedactFragments = DEFAULT_REDACT_KEYS
    export_dir: str = "var/traces"
    batch_window: Seconds = 0.002


@attrs.frozen(slots=True)
class ProfileConfig:
    """What a tool operation is expected to be like before anything is observed.

    Omitted fields take the same values as a tool with no profile at all.
    """

    accuracy: Fraction = 0.5
    completeness: Fraction = 0.5
    latency: Seconds = 0.1
    intent_bonus: dict[str, Fraction] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class SelectorConfig:
    """The tool selector: strategies, profiles, candidates and how fast it learns.

    Empty ``intents``/``profiles``/``strategies`` mean "the built-in defaults"; entries
    given here replace the built-in entry of the same name.  ``decay_time`` is the peak
    EWMA's time constant, ``error_decay_time``/``error_alpha`` the error rate's;
    ``failure_penalty`` inflates the latency of a failing tool by ``1 + penalty *
    error_rate`` so fast failures never look attractive; ``cold_penalty`` weighs a tool with
    calls in flight but no history.  Candidates within ``herd_margin`` of the best are
    near-top: ``choices`` 0 takes the least loaded of them, 2 is power-of-two-choices.  A
    choice counts as load for up to ``reservation_ttl`` until its call is seen to start.
    ``batch_window`` batches observations as the tracer's does; rankings are never
    delayed by it (a call ends the pause, and pending observations are applied first).
    ``exploration_share`` bounds the choices spent trying a candidate the ranking did not
    put first (one never observed, or not observed for ``exploration_refresh``), never one
    whose error rate is above ``exploration_max_error``; 0 turns exploration off.
    """

    enabled: bool = True
    default_strategy: str = "BALANCED"
    decay_time: Seconds = 10.0
    error_decay_time: Seconds = 10.0
    error_alpha: Fraction = 0.1
    failure_penalty: NonNegFloat = 4.0
    cold_penalty: NonNegFloat = 10.0
    herd_margin: Fraction = 0.05
    choices: NonNegInt = 0
    reservation_ttl: Seconds = 1.0
    exploration_share: Fraction = 0.02
    exploration_refresh: Seconds = 30.0
    exploration_max_error: Fraction = 0.2
    mailbox_size: MailboxSize = 4096
    batch_window: Seconds = 0.002
    strategies: dict[str, dict[str, NonNegFloat]] = attrs.field(factory=dict)
    intents: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    profiles: dict[str, dict[str, ProfileConfig]] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class PipelineConfig:
    """Defaults for composition runs."""

    default_deadline: Seconds = 60.0
    max_concurrency: PosInt = 16


Port = Annotated[int, _Check("a TCP port (1-65535)", lambda v: 1 <= v <= 65535)]


@attrs.frozen(slots=True)
class McpConfig:
    """The MCP server face (``python -m runtime mcp``; see docs/mcp.md).

    ``tenant`` is the tenant of every call over stdio (and over HTTP without tokens);
    ``tokens`` maps bearer tokens to tenants for HTTP: with any set, a request without a
    known token is refused.  ``host``/``port``/``path`` and ``stateless`` shape ``--http``.
    """

    tenant: NonEmptyStr = "default"
    tokens: dict[str, NonEmptyStr] = attrs.field(factory=dict)
    host: NonEmptyStr = "127.0.0.1"
    port: Port = 8765
    path: NonEmptyStr = "/mcp"
    stateless: bool = True


@attrs.frozen(slots=True)
class McpServerConfig:
    """A remote MCP server whose tools join the registry (``mcp_servers.<alias>``).

    Exactly one of ``command`` (argv of a stdio server, with ``env`` and ``cwd``) or
    ``url`` (streamable HTTP, with ``headers``).  ``timeout`` is the read timeout of a
    call that gives none; ``cache: false`` never caches its tools (otherwise tools the
    server annotates read-only and idempotent are cached, and no others).
    """

    command: tuple[NonEmptyStr, ...] = ()
    url: str | None = None
    env: dict[str, str] = attrs.field(factory=dict)
    cwd: str | None = None
    headers: dict[str, str] = attrs.field(factory=dict)
    timeout: Seconds = 30.0
    cache: bool = True

    def config_problem(self) -> str | None:
        """What is wrong beyond single values (checked by the loader, named by path)."""
        if bool(self.command) == (self.url is not None):
            return "give exactly one of command (a stdio server) or url (streamable HTTP)"
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            return f"url must be an http:// or https:// URL, got {self.url!r}"
        return None


@attrs.frozen(slots=True)
class SupervisionConfig:
    """How often a crashed actor is restarted before it is left down (OTP's intensity)."""

    max_restarts: NonNegInt = 5
    window: Seconds = 10.0


@attrs.frozen(slots=True)
class RuntimeConfig:
    """The whole configuration; every section has defaults."""

    executor: ExecutorConfig = attrs.field(factory=ExecutorConfig)
    supervision: SupervisionConfig = attrs.field(factory=SupervisionConfig)
    cache: CacheConfig = attrs.field(factory=CacheConfig)
    tracer: TracerConfig = attrs.field(factory=TracerConfig)
    selector: SelectorConfig = attrs.field(factory=SelectorConfig)
    pipeline: PipelineConfig = attrs.field(factory=PipelineConfig)
    compositions: dict[str, Any] = attrs.field(factory=dict)
    mcp: McpConfig = attrs.field(factory=McpConfig)
    mcp_servers: dict[str, McpServerConfig] = attrs.field(factory=dict)


# -- structuring ----------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        return _type_name(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is dict:
        return "a mapping"
    if origin is tuple:
        return "a list"
    if attrs.has(tp):
        return "a mapping"
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _structure(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *meta = get_args(tp)
        if any(isinstance(m, _DurationMarker) for m in meta):
            return parse_duration(value, path)
        result = _structure(base, value, path)
        for check in meta:
            if isinstance(check, _Check) and not check.test(result):
                raise ConfigError(path, f"must be {check.describe}, got {value!r}")
        return result
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        if len(non_none) == 1:
            return _structure(non_none[0], value, path)
        raise TypeError(f"unsupported config type {tp!r}")  # pragma: no cover - schema bug
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(
                path, f"must be one of {', '.join(map(repr, allowed))}; got {value!r}"
            )
        return value
    if origin is dict:
        value_type = get_args(tp)[1]
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"expected a mapping, got {type(value).__name__}")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(path, f"keys must be strings, got {key!r}")
            out[key] = _structure(value_type, item, _join(path, key))
        return out
    if origin is tuple:
        (item_type, _ellipsis) = get_args(tp)
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(path, f"expected a list, got {type(value).__name__}")
        return tuple(_structure(item_type, v, f"{path}[{i}]") for i, v in enumerate(value))
    if attrs.has(tp):
        return _structure_attrs(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, f"expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            # An int beyond a float's range: YAML reads any number of digits as an int.
            raise ConfigError(path, "expected a finite number, got one too large") from None
        if not math.isfinite(number):
            raise ConfigError(path, f"expected a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # pragma: no cover


def _structure_attrs(cls: type[T], value: Any, path: str) -> T:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a mapping, got {type(value).__name__}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            _join(path, str(key)),
            f"unknown key; expected one of: {', '.join(sorted(fields))}",
        )
    kwargs = {name: _structure(hints[name], value[name], _join(path, name)) for name in value}
    result = cls(**kwargs)
    # A section whose values are each fine may still be wrong as a whole (McpServerConfig).
    check = getattr(result, "config_problem", None)
    problem = check() if check is not None else None
    if problem:
        raise ConfigError(path, problem)
    return result


def config_from_dict(
    data: Mapping[str, Any] | None,
    schema: type[C] = RuntimeConfig,  # type: ignore[assignment]
) -> C:
    """Build a validated :class:`RuntimeConfig`; missing keys take their defaults.

    Also checks what the runtime checks when it starts (selector strategies and intents,
    compositions), so every mistake is a ``ConfigError`` with its key path here.
    ``schema`` may be a subclass of :class:`RuntimeConfig` with sections of its own
    (``runtime.ops.config.OpsRuntimeConfig`` adds ``ops:``).
    """
    config = _structure_attrs(schema, data, "")
    _check_as_at_start(config)
    return config


def _check_as_at_start(config: RuntimeConfig) -> None:
    # Imported here, not at the top: config is the bottom layer and loads without them.
    from runtime.pipeline.library import compile_compositions
    from runtime.selector.settings import SelectorSettings

    SelectorSettings.from_config(config.selector)
    compile_compositions(config.compositions)


def load_config(
    path: str | Path | None = None,
    schema: type[C] = RuntimeConfig,  # type: ignore[assignment]
) -> C:
    """Read a YAML file into a :class:`RuntimeConfig` (or ``schema``, a subclass of it);
    ``None`` gives the defaults."""
    if path is None:
        return schema()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", _yaml_problem(path, exc)) from exc
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError("", f"{path} must hold a mapping at the top, got {type(data).__name__}")
    return config_from_dict(data, schema)


def _yaml_problem(path: str | Path, exc: yaml.YAMLError) -> str:
    """``FILE:LINE:COLUMN: not valid YAML: <problem>`` (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        problem = exc.problem or exc.context or "syntax error"
        return f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}"
    return f"{path} is not valid YAML: {exc}"


def _unstructure(tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        if any(isinstance(m, _DurationMarker) for m in meta):
            return _format_duration(value)
        return _unstructure(base, value)
    if value is None:
        return None
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _unstructure(inner, value)
    if origin is dict:
        value_type = get_args(tp)[1]
        return {k: _unstructure(value_type, v) for k, v in value.items()}
    if origin is tuple:
        return [_unstructure(get_args(tp)[0], v) for v in value]
    if attrs.has(type(value)):
        hints = typing.get_type_hints(type(value), include_extras=True)
        return {
            f.name: _unstructure(hints[f.name], getattr(value, f.name))
            for f in attrs.fields(type(value))
        }
    return value


def config_to_dict(config: RuntimeConfig) -> dict[str, Any]:
    """The plain-data (YAML-ready) form of ``config``; ``config_from_dict`` inverts it."""
    result: dict[str, Any] = _unstructure(RuntimeConfig, config)
    return result
