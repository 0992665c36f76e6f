"""The command line: ``python -m runtime <command>`` (also installed as ``runtime``).

Commands:

* ``seed-db`` -- (re)build the sample CMDB, with a progress bar (refuses to replace a file
  that is not a sample CMDB);
* ``demo`` -- the operator session over the sample CMDB (builds it when absent, uses an
  existing one as it is: never resized unasked);
* ``config`` -- print the effective configuration as YAML;
* ``traces report|export`` -- the HTML report of a trace export, or another format
  (:mod:`runtime.report.cli`);
* ``mcp`` -- serve the tools over MCP, stdio or streamable HTTP (``runtime.mcp.command``).

Settings come from the configuration (``--config PATH``, else the defaults in code, which
``config/runtime.yaml`` mirrors), read with the ops suite's schema and preset
(:func:`runtime.ops.config.load_ops_config`); flags override them for one run.

Exit codes: 0 success, 2 usage error (argparse's convention: a bad flag or value), 1 the
command itself failed -- an invalid config file, an unwritable database path -- reported
as one line on stderr (``--traceback`` shows the whole story).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from runtime.config import MAX_CALLERS, MAX_QUESTIONS, MAX_SEED, config_to_dict
from runtime.errors import RuntimeFault
from runtime.ops.config import OpsRuntimeConfig, load_ops_config
from runtime.ops.generate import MAX_CIS, MAX_DAYS, MIN_CIS
from runtime.report.cli import add_traces_parser, run_traces

__all__ = ["build_parser", "main"]

PROG = "runtime"


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _non_empty(text: str) -> str:
    # Flags bypass the config's checks (they are laid over it with attrs.evolve), and an
    # empty --db or --tenant would otherwise fail much later, far from the flag.
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _add_database_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sample CMDB (defaults: the ops section of the config)")
    group.add_argument("--db", type=_non_empty, metavar="PATH", help="the SQLite database file")
    group.add_argument(
        "--cis",
        type=_int_in(MIN_CIS, MAX_CIS),
        metavar="N",
        help=f"number of CIs ({MIN_CIS}-{MAX_CIS})",
    )
    group.add_argument(
        "--days", type=_int_in(1, MAX_DAYS), metavar="D", help=f"days of history (1-{MAX_DAYS})"
    )
    group.add_argument("--seed", type=_int_in(0, MAX_SEED), metavar="S", help="generator seed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="An actor-style runtime for an operations assistant's tools.",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback when a command fails"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH", help="a YAML configuration file (default: built-in defaults)"
    )
    common.add_argument(
        "--plain", action="store_true", help="plain text output even when rich is installed"
    )
    # Also after the command, where a user appends it to the command that just failed.
    # SUPPRESS: absent here, it must not reset a --traceback given before the command.
    common.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback when a command fails",
    )

    seed = commands.add_parser(
        "seed-db",
        parents=[common],
        help="(re)build the sample CMDB",
        description=(
            "Build the deterministic sample CMDB, replacing an earlier sample CMDB at the "
            "path (never any other file); a progress bar on a terminal, plain lines otherwise."
        ),
    )
    _add_database_flags(seed)

    _add_demo_parser(commands, common)

    commands.add_parser(
        "config",
        parents=[common],
        help="print the effective configuration as YAML",
        description="Print the configuration (the file given, over the defaults) as YAML.",
    )
    add_traces_parser(commands, common)

    from runtime.mcp.command import add_parser as add_mcp_parser

    add_mcp_parser(commands, [common], _add_database_flags, _non_empty)
    return parser


def _add_demo_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run an operator session over the sample CMDB",
        description=(
            "Build the sample CMDB if absent, start the runtime, run a scripted operator "
            "session (selector, compositions, Zipf-skewed repeated questions) and report "
            "per-tool figures, database queries vs tool calls, and the exported traces."
        ),
    )
    demo.add_argument(
        "--backend", choices=("trio", "asyncio"), default="trio", help="event loop (default trio)"
    )
    demo.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object (last line)"
    )
    _add_database_flags(demo)
    session = demo.add_argument_group("session (defaults: ops.demo_* in the config)")
    session.add_argument(
        "--questions",
        type=_int_in(0, MAX_QUESTIONS),
        metavar="N",
        help=f"repeated questions to replay (0-{MAX_QUESTIONS})",
    )
    session.add_argument(
        "--callers",
        type=_int_in(1, MAX_CALLERS),
        metavar="N",
        help=f"concurrent operators (1-{MAX_CALLERS})",
    )
    session.add_argument(
        "--skew", type=_non_negative_float, metavar="S", help="Zipf exponent of question popularity"
    )
    session.add_argument(
        "--tenant", type=_non_empty, metavar="NAME", help="tenant the session asks as"
    )


def _config(args: argparse.Namespace) -> OpsRuntimeConfig:
    config = load_ops_config(args.config)
    overrides = {
        "database": getattr(args, "db", None),
        "cis": getattr(args, "cis", None),
        "days": getattr(args, "days", None),
        "seed": getattr(args, "seed", None),
        "demo_questions": getattr(args, "questions", None),
        "demo_callers": getattr(args, "callers", None),
        "demo_skew": getattr(args, "skew", None),
        "demo_tenant": getattr(args, "tenant", None),
    }
    chosen = {name: value for name, value in overrides.items() if value is not None}
    if chosen:
        config = attrs.evolve(config, ops=attrs.evolve(config.ops, **chosen))
    return config


def _seed_db(args: argparse.Namespace) -> int:
    from runtime.demo.console import progress_bar
    from runtime.ops import seed_db_main

    ops = _config(args).ops
    with progress_bar("building the sample CMDB", plain=args.plain) as progress:
        summary = seed_db_main(ops.database, ops.cis, ops.days, ops.seed, progress=progress)
    print(
        f"built {summary.path} in {summary.elapsed_s:.1f}s: {summary.cis} CIs, "
        f"{summary.relations} relations, {summary.metric_series} metric series "
        f"({summary.metric_points:,} points), {summary.events:,} events, "
        f"{summary.incidents} incidents, {summary.rules} CEP rules; "
        f"seed {summary.seed}, {summary.days} days to {summary.now_iso}"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from runtime.demo.app import print_report, report_json, run_demo
    from runtime.demo.console import progress_bar

    config = _config(args)

    def progress() -> Any:
        return progress_bar("building the sample CMDB", plain=args.plain)

    sizes = {"cis": args.cis, "days": args.days, "seed": args.seed}
    asked = {name: value for name, value in sizes.items() if value is not None}
    report = run_demo(config, backend=args.backend, progress=progress, asked=asked)
    if args.json:
        print(report_json(report))
    else:
        print_report(report, plain=args.plain)
    return 0


def _show_config(args: argparse.Namespace) -> int:
    import yaml

    document = config_to_dict(_config(args))
    redis = document["cache"].get("redis")
    if redis is not None and redis.get("secret") is not None:
        # Printed configurations get pasted into tickets and chats.  Too short to be a
        # secret, "***" fed back as config fails loudly instead of signing with it.
        redis["secret"] = "***"
    # Bearer tokens and remote servers' headers (Authorization) are secrets too.
    mcp = document["mcp"]
    mcp["tokens"] = {f"***{i}": tenant for i, tenant in enumerate(mcp["tokens"].values(), 1)}
    for server in document["mcp_servers"].values():
        server["headers"] = dict.fromkeys(server["headers"], "***")
    print(yaml.safe_dump(document, sort_keys=False), end="")
    return 0


def _mcp(args: argparse.Namespace) -> int:
    from runtime.mcp.command import run

    return run(args, _config(args))


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "seed-db": _seed_db,
    "demo": _demo,
    "config": _show_config,
    "traces": run_traces,
    "mcp": _mcp,
}


def _leaf(error: BaseException) -> BaseException:
    """The one exception behind a task group's exception group, when there is one."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status (0 ok, 1 failed, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (RuntimeFault, OSError, sqlite3.Error, ValueError, BaseExceptionGroup) as raw:
        if args.traceback:
            raise
        error = _leaf(raw)
        if isinstance(error, RuntimeFault | ValueError | OSError):
            message = str(error) or type(error).__name__
        else:
            message = f"{type(error).__name__}: {error}"
        if isinstance(error, sqlite3.Error):
            message = f"database error: {error}"
        print(f"{PROG}: error: {message.splitlines()[0] if message else message}", file=sys.stderr)
        return 1
