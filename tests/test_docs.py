"""The documentation is kept honest: API coverage, the configuration reference, examples.

* Every public name in ``runtime.__all__`` appears in ``docs/*.md`` as inline code
  (`` `name` ``, `` `name(...)` `` or `` `runtime.name` ``).
* ``docs/configuration.md`` documents every configuration key and nothing else.  Its
  reference rows are Markdown table rows whose first cell is one code span holding a key
  path (`` `cache.max_entries` ``).  Attrs sections are recursed into (optional ones too,
  such as ``cache.redis``); a mapping-valued key such as ``cache.ttl`` is one key, and
  rows below it may document its inner shape with ``<placeholders>``
  (`` `cache.ttl.<TOOL>.<operation>` ``).  A row's default cell, when it is a code span,
  must equal the default (as YAML).
* Every ```` ```python ```` block in ``docs/*.md`` runs, each in a fresh interpreter with a
  timeout, unless the line before it (blank lines aside) is ``<!-- not-run -->``.
* ```` ```yaml ```` blocks preceded by ``<!-- config -->`` are valid configurations,
  compositions included.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import attrs
import pytest
import yaml

import runtime
from runtime import config_from_dict, config_to_dict
from runtime.ops.config import OpsRuntimeConfig
from runtime.pipeline import compile_compositions

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOT_RUN = "<!-- not-run -->"
CONFIG_MARK = "<!-- config -->"
EXAMPLE_TIMEOUT_S = 60


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


# -- (a) every public name is documented --------------------------------------------------

_CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def documented_names(text: str) -> set[str]:
    """Names written as inline code: `name`, `name(...)`, `runtime.name`."""
    names = set()
    for span in _CODE_SPAN.findall(text):
        head = re.match(r"(?:runtime\.)?([A-Za-z_][A-Za-z0-9_]*)(?:\(.*\))?$", span.strip())
        if head:
            names.add(head.group(1))
    return names


def undocumented(public: list[str], text: str) -> list[str]:
    found = documented_names(text)
    return sorted(name for name in public if name not in found)


def all_docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in doc_files())


def test_every_public_name_is_documented() -> None:
    missing = undocumented(list(runtime.__all__), all_docs_text())
    assert not missing, f"public names not documented in docs/*.md: {', '.join(missing)}"


def test_the_name_check_notices_a_missing_name() -> None:
    text = "Use `open_runtime(registry)` and `runtime.Step`; Runtime is prose only."
    assert undocumented(["open_runtime", "Step", "Runtime", "Parallel"], text) == [
        "Parallel",
        "Runtime",
    ]


# -- (b) the configuration reference --------------------------------------------------------

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)$")
_KEY_PATH = re.compile(r"^[a-z_]+(\.([A-Za-z_][A-Za-z0-9_]*|<[^>]+>))*$")


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` from a type hint."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(tp) if a is not type(None)]
            if len(options) != 1:
                return tp
            tp = options[0]
        else:
            return tp


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def config_key_paths(cls: type = OpsRuntimeConfig, prefix: str = "") -> list[str]:
    """Every key a configuration can set: attrs sections recursed, mappings as one key."""
    paths = []
    for name, hint in _hints(cls).items():
        path = f"{prefix}{name}"
        inner = _unwrap(hint)
        if attrs.has(inner):
            if inner is not hint:  # an optional section (cache.redis): the key itself too
                paths.append(path)
            paths.extend(config_key_paths(inner, f"{path}."))
        else:
            paths.append(path)
    return paths


def resolves(path: str) -> bool:
    """Whether ``path`` names a key, or (with ``<placeholders>``) a key inside a mapping."""
    tp: Any = OpsRuntimeConfig
    for segment in path.split("."):
        tp = _unwrap(tp)
        if tp is Any:
            return True
        if segment.startswith("<"):
            if get_origin(tp) is dict:
                tp = get_args(tp)[1]
                continue
            if get_origin(tp) is tuple:
                tp = get_args(tp)[0]
                continue
            return False
        if not attrs.has(tp) or segment not in _hints(tp):
            return False
        tp = _hints(tp)[segment]
    return True


def reference_rows(text: str) -> dict[str, list[str]]:
    """Key path -> the row's other cells, for every reference row of the document."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if match and _KEY_PATH.match(match.group(1)):
            cells = [cell.strip() for cell in match.group(2).rstrip().rstrip("|").split("|")]
            assert match.group(1) not in rows, f"{match.group(1)} is documented twice"
            rows[match.group(1)] = cells
    return rows


def _every_section(cls: type = OpsRuntimeConfig) -> dict[str, Any]:
    """Config data that turns every optional section on, with its defaults."""
    return {
        name: _every_section(_unwrap(hint))
        for name, hint in _hints(cls).items()
        if attrs.has(_unwrap(hint))
    }


def default_of(path: str) -> Any:
    """The default at ``path``; inside an optional section, that section's own default."""
    for data in (
        config_to_dict(OpsRuntimeConfig()),
        config_to_dict(config_from_dict(_every_section(), OpsRuntimeConfig)),
    ):
        value: Any = data
        for segment in path.split("."):
            if not isinstance(value, Mapping) or segment not in value:
                break
            value = value[segment]
        else:
            return value
    raise KeyError(path)


def test_config_reference_documents_every_key() -> None:
    rows = reference_rows((DOCS / "configuration.md").read_text(encoding="utf-8"))
    missing = [path for path in config_key_paths() if path not in rows]
    assert not missing, f"keys missing from docs/configuration.md: {', '.join(missing)}"


def test_config_reference_documents_only_real_keys() -> None:
    rows = reference_rows((DOCS / "configuration.md").read_text(encoding="utf-8"))
    unknown = [path for path in rows if not resolves(path)]
    assert not unknown, f"docs/configuration.md documents unknown keys: {', '.join(unknown)}"


def test_config_reference_defaults_match_the_code() -> None:
    rows = reference_rows((DOCS / "configuration.md").read_text(encoding="utf-8"))
    wrong = []
    for path, cells in rows.items():
        if "<" in path or len(cells) < 2:
            continue
        default = re.fullmatch(r"`([^`]*)`", cells[1])
        if default is None:
            continue
        if yaml.safe_load(default.group(1)) != default_of(path):
            wrong.append(f"{path}: documented {default.group(1)!r}, is {default_of(path)!r}")
    assert not wrong, "stale defaults in docs/configuration.md:\n" + "\n".join(wrong)


def test_the_key_walk_sees_sections_and_rejects_strays() -> None:
    paths = config_key_paths()
    assert "cache.redis" in paths
    assert "cache.redis.url" in paths
    assert "cache.ttl" in paths
    assert "cache.ttl.CI" not in paths
    assert resolves("cache.ttl.<TOOL>.<operation>")
    assert resolves("selector.profiles.<TOOL>.<operation>.accuracy")
    assert not resolves("selector.profiles.<TOOL>.<operation>.speed")
    assert not resolves("cache.max_entries.<x>")
    assert not resolves("cache.colour")
    sample = "| `cache.enabled` | bool | `true` | on |\n| `not a key` | x |\n"
    assert list(reference_rows(sample)) == ["cache.enabled"]


# -- (c) the examples run ----------------------------------------------------------------------


def fenced_blocks(text: str, language: str) -> Iterator[tuple[int, str, str]]:
    """``(line, code, marker)`` for each block; ``marker`` is the comment line before it."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == f"```{language}":
            start = index
            body = []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            before = start - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            marker = lines[before].strip() if before >= 0 else ""
            yield start + 1, "\n".join(body) + "\n", marker
        index += 1


def python_examples() -> dict[str, str]:
    """Runnable examples by id (``file.md:line``)."""
    examples = {}
    for path in doc_files():
        for line, code, marker in fenced_blocks(path.read_text(encoding="utf-8"), "python"):
            if marker != NOT_RUN:
                examples[f"{path.name}:{line}"] = code
    return examples


def run_example(code: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every example run once, a few at a time (each in its own interpreter and directory)."""
    examples = python_examples()
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(run_example, code, tmp_path_factory.mktemp("example"))
            for name, code in examples.items()
        }
        return {name: future.result() for name, future in futures.items()}


def test_docs_have_runnable_examples() -> None:
    assert len(python_examples()) >= 10


@pytest.mark.parametrize("name", sorted(python_examples()))
def test_async_examples_are_complete_programs(name: str) -> None:
    code = python_examples()[name]
    if "await " in code or "async " in code:
        assert re.search(r"\b(anyio|trio|asyncio)\.run\(", code), (
            f"{name}: an async example must run itself (anyio.run, trio.run or asyncio.run)"
        )


@pytest.mark.parametrize("name", sorted(python_examples()))
def test_example_runs(name: str, example_runs: dict[str, Any]) -> None:
    done = example_runs[name]
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"


def config_examples() -> list[Any]:
    examples = []
    for path in doc_files():
        for line, code, marker in fenced_blocks(path.read_text(encoding="utf-8"), "yaml"):
            if marker == CONFIG_MARK:
                examples.append(pytest.param(code, id=f"{path.name}:{line}"))
    return examples


@pytest.mark.parametrize("text", config_examples())
def test_config_example_is_valid(text: str) -> None:
    data = yaml.safe_load(text)
    assert isinstance(data, Mapping)
    config = config_from_dict(data, OpsRuntimeConfig)
    compile_compositions(config.compositions)  # compiled at start-up, checked here too


def test_not_run_marker_excludes_a_block() -> None:
    text = "a\n\n<!-- not-run -->\n```python\nraise SystemExit(1)\n```\n\n```python\nx = 1\n```\n"
    markers = [marker for _, _, marker in fenced_blocks(text, "python")]
    assert markers == [NOT_RUN, "```"]


# -- the benchmark report's bookkeeping ----------------------------------------------------


def _run_all() -> Any:
    """benchmarks/run_all.py as a module, its parts imported as a script's would be (from
    its own directory, put first on the path only while it loads)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_all", module)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_run_all_reads_the_last_json_line_only() -> None:
    run_all = _run_all()
    assert run_all.last_json('noise\n{"a": 1}\nx\n{"b": 2}\n\n') == {"b": 2}
    assert run_all.last_json('{"a": 1}\nnot json\n') is None
    assert run_all.last_json("[1, 2]\n") is None
    assert run_all.last_json("") is None


def test_run_all_judges_goals_met_missed_missing_and_aliases() -> None:
    run_all = _run_all()
    goal = run_all.Goal("b", "ratio", "<=", 1.5, "floor", ours="us", anchor="floor_us")
    assert run_all.judge(goal, {"ratio": 1.5, "us": 3, "floor_us": 2}).status == "met"
    assert run_all.judge(goal, {"ratio": 1.51}).status == "missed"
    assert run_all.judge(goal, {"ratio": "1.2"}).status == "missing"
    assert run_all.judge(goal, None).status == "missing"
    exact = run_all.Goal("b", "runs", "==", 1, "one run", ratio=False, aliases=("runs_old",))
    verdict = run_all.judge(exact, {"runs_old": 1})
    assert (verdict.status, verdict.key) == ("met", "runs_old")
    assert run_all.judge(exact, {"runs": 2}).status == "missed"


def test_run_all_explains_a_miss_only_when_the_goal_is_missed() -> None:
    run_all = _run_all()
    goal = run_all.Goal("b", "ratio", "<=", 1.5, "floor", when_missed="the timer floor")
    plain = run_all.Goal("b", "other", "<=", 1.5, "floor")
    missed = [run_all.judge(goal, {"ratio": 2.0}), run_all.judge(plain, {"other": 2.0})]
    text = "\n".join(run_all.missed_notes(missed))
    assert "`ratio` (issue #0): the timer floor" in text
    assert "`other`" not in text  # nothing investigated, nothing claimed
    assert run_all.missed_notes([run_all.judge(goal, {"ratio": 1.0})]) == []


def test_every_goal_belongs_to_an_expected_benchmark() -> None:
    run_all = _run_all()
    assert {goal.benchmark for goal in run_all.GOALS} <= set(run_all.EXPECTED)
    figures = [(goal.benchmark, goal.figure) for goal in run_all.GOALS]
    assert len(figures) == len(set(figures))


# -- links between the documents ---------------------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in _LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        missing_anchor = bool(anchor) and linked.suffix == ".md" and linked.exists()
        if not linked.exists() or (missing_anchor and anchor not in anchors(linked)):
            broken.append(target)
    return broken


def test_links_between_documents_resolve() -> None:
    broken = {p.name: broken_links(p) for p in doc_files()}
    broken = {name: links for name, links in broken.items() if links}
    assert not broken, f"broken links: {broken}"


def test_slugs_follow_github() -> None:
    assert slug("The demo: `python -m runtime demo`") == "the-demo-python--m-runtime-demo"
    assert slug("`execute_best`: run the best, fall back on failure") == (
        "execute_best-run-the-best-fall-back-on-failure"
    )
