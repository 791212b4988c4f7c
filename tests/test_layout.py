"""The architecture of portpack, enforced: the layers, their imports, sizes and the CLI line.

The rule is written once, as data at the top of this file (``LAYERS`` and the limits
below it); docs/how-it-works.md explains it and CONTRIBUTING.md says where things go.
Every check reads the source with :mod:`ast` (comments and strings never count) and
reports each violation with its file and line.

Which imports count: every ``import`` and ``from ... import`` anywhere in a module, at
its top, inside functions (lazy imports) and under ``if TYPE_CHECKING:``, and
``importlib.import_module("...")`` with a literal name.  A TYPE_CHECKING import does not
run, but it still makes the lower layer know about the upper one (its signatures name
the upper layer's types, mypy follows it), so it counts for the layering and for
circles.  It does not count for what the unpack side loads at run time.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import portpack

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "portpack"

#: The layers, bottom to top: a module may import its own layer and lower ones only.
#: Names are relative to portpack/; a subpackage's name covers all its modules.
LAYERS: list[tuple[str, list[str]]] = [
    # paths = the one path check; outside = the one no-follow/atomic-output helper.
    (
        "basics",
        ["errors", "progress", "streams", "units", "paths", "outside", "_platform", "_version"],
    ),
    ("conda", ["conda"]),  # the conda package format: tar stream, info/, record, files
    ("archive", ["archive"]),  # portpack and pixi-pack archive formats
    ("remote", ["remote"]),  # archives from HTTP(S) and OCI registries (standard library)
    ("install", ["install"]),  # writing one environment (destination: the only writer)
    ("unpacker", ["unpacker"]),  # orchestration: unpack(), pixi-pack, preconditions
    ("net", ["net"]),  # config, transport, auth, fetch + cache
    ("resolve", ["resolve"]),  # manifest, lockfile, solve, lock()
    ("packer", ["packer"]),  # pack() and what it needs
    ("cli", ["cli"]),  # the only code that prints, exits, touches stdout/stdin
    ("top", ["__init__", "__main__"]),  # the lazy public API and the entry point
]
#: The unpack side: with its whole import closure it runs on the standard library and
#: these only (installer lazily, for PyPI wheels), and starts fast.
UNPACK_SIDE_LAYERS = ("basics", "conda", "archive", "remote", "install", "unpacker")
UNPACK_SIDE_ENTRIES = (
    "portpack.unpacker.streaming",
    "portpack.unpacker.pixipack",
    "portpack.archive.summary",
    "portpack.install.verify",
    "portpack.cli.unpack",
)
UNPACK_SIDE_MAY_IMPORT = frozenset({"zstandard", "installer"})
#: Made unavailable when the unpack side is imported and run.
UNAVAILABLE = ("rattler", "click", "urllib3", "httpx", "yaml")

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
#: Functions allowed over MAX_FUNCTION_LINES, as "module:qualified.name" -> why: only
#: measured hot loops, where a call per item costs what benchmarks/ shows.
LONG_FUNCTIONS: dict[str, str] = {}

#: Only these may print, exit or touch the process's standard streams.
MAY_USE_TERMINAL = ("portpack.cli", "portpack.__main__")
#: The lazy public functions of portpack/__init__.py; a module or subpackage of the
#: same name would shadow them.
RESERVED_NAMES = frozenset({"lock", "pack", "unpack", "inspect", "verify"}) | {
    name for name in portpack.__all__ if name.islower() and not name.startswith("_")
}


# -- the modules and their imports ------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str  # portpack.archive.reader
    path: Path
    tree: ast.Module
    lines: int

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@dataclass(frozen=True)
class Import:
    source: Module
    target: str  # a portpack module when it names one, else the name as written
    line: int
    how: str  # "" (at import time), "lazy" (in a function) or "TYPE_CHECKING"

    def arrow(self) -> str:
        how = f", {self.how}" if self.how else ""
        return f"{self.source.name} -> {self.target} ({self.source.where}:{self.line}{how})"


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        text = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        found[name] = Module(name, path, ast.parse(text, str(path)), len(text.splitlines()))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: Module, name: str | None, level: int) -> str:
    if not level:
        return name or ""
    package = module.name.split(".")
    if not module.is_package:
        package.pop()
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _targets(module: Module, node: ast.AST) -> Iterator[tuple[str, int]]:
    known = modules()
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
        base = _absolute(module, node.module, node.level)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield (sub if sub in known else base), node.lineno
    elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        name = node.args[0].value
        if called in ("import_module", "__import__") and isinstance(name, str):
            level = len(name) - len(name.lstrip("."))
            yield _absolute(module, name.lstrip(".") or None, level), node.lineno


def imports(module: Module) -> list[Import]:
    found: list[Import] = []

    def walk(node: ast.AST, how: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    walk_one(stmt, "TYPE_CHECKING")
                for stmt in child.orelse:
                    walk_one(stmt, how)
                continue
            inner = how
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = how or "lazy"
            walk_one(child, inner)

    def walk_one(node: ast.AST, how: str) -> None:
        for target, line in _targets(module, node):
            found.append(Import(module, target, line, how))
        walk(node, how)

    walk(module.tree, "")
    return list(dict.fromkeys(found))  # one per target and line: "from m import a, b"


def internal_imports(module: Module) -> list[Import]:
    """The imports of portpack modules (a package's own ``__init__`` included)."""
    return [i for i in imports(module) if i.target in modules() and i.target != module.name]


def layer_of(name: str) -> int | None:
    relative = name.split(".")[1:] or ["__init__"]
    for number, (_, members) in enumerate(LAYERS):
        if relative[0] in members:
            return number
    return None


def layer_name(name: str) -> str:
    number = layer_of(name)
    return "no layer" if number is None else f"layer {number} {LAYERS[number][0]}"


# -- the import graph -------------------------------------------------------------------


def test_every_module_is_in_a_layer() -> None:
    unplaced = [f"{m.where}: {m.name}" for m in modules().values() if layer_of(m.name) is None]
    assert not unplaced, "modules in no layer of LAYERS (add them):\n" + "\n".join(unplaced)


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module in modules().values():
        own = layer_of(module.name)
        for imp in internal_imports(module):
            target = layer_of(imp.target)
            if own is not None and target is not None and target > own:
                upward.append(
                    f"{imp.arrow()}: {layer_name(module.name)} imports {layer_name(imp.target)}"
                )
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def _components(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each a list of module names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _circle(graph: dict[str, list[Import]], members: list[str]) -> list[Import]:
    """One shortest circle through the first of ``members``, as its arrows."""
    start, inside = members[0], set(members)
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in graph[node]:
            if edge.target == start:
                return [*paths[node], edge]
            if edge.target in inside and edge.target not in paths:
                paths[edge.target] = [*paths[node], edge]
                queue.append(edge.target)
    raise AssertionError(f"no circle through {start}")  # pragma: no cover


def test_no_import_circle() -> None:
    graph = {name: internal_imports(m) for name, m in modules().items()}
    circles = []
    for members in _components(graph):
        if len(members) > 1:
            arrows = "\n      ".join(e.arrow() for e in _circle(graph, members))
            circles.append(f"circle of {', '.join(members)}:\n      {arrows}")
    assert not circles, "import circles:\n" + "\n".join(circles)


# -- the unpack side --------------------------------------------------------------------


def _unpack_side() -> list[Module]:
    """The unpack side's layers and what the entry points load at run time."""
    known = modules()
    todo = [*(n for n in known if _on_unpack_side(n)), *UNPACK_SIDE_ENTRIES]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [i.target for i in internal_imports(known[name]) if i.how != "TYPE_CHECKING"]
    return [known[n] for n in sorted(seen)]


def _on_unpack_side(name: str) -> bool:
    number = layer_of(name)
    return number is not None and LAYERS[number][0] in UNPACK_SIDE_LAYERS


def test_unpack_side_imports_only_the_standard_library_and_zstandard() -> None:
    allowed = set(sys.stdlib_module_names) | UNPACK_SIDE_MAY_IMPORT | {"portpack"}
    wrong = [
        f"{imp.arrow()}: not the standard library, nor {', '.join(sorted(UNPACK_SIDE_MAY_IMPORT))}"
        for module in _unpack_side()
        for imp in imports(module)
        if imp.how != "TYPE_CHECKING" and imp.target.split(".")[0] not in allowed
    ]
    assert not wrong, "third-party imports on the unpack side:\n" + "\n".join(wrong)


REFUSER = """
import sys

UNAVAILABLE = set(sys.argv[1].split(","))
already = sorted(set(sys.modules) & UNAVAILABLE)
assert not already, f"loaded before the test could refuse them: {already}"
refused = []


class Refuse:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in UNAVAILABLE:
            refused.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (made unavailable)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
"""

RUN_UNPACK_SIDE = """
import importlib
import json

entries, archive, pixi_archive, out = sys.argv[2:6]
for entry in entries.split(","):
    importlib.import_module(entry)

from portpack.archive.summary import inspect
from portpack.cli.unpack import main
from portpack.install.verify import verify
from portpack.unpacker.streaming import unpack

status = main([archive, "-o", out + "/one", "-q"])
report = verify(out + "/one/env")
pixi = unpack(pixi_archive, out + "/two")
summary = inspect(archive)
print(json.dumps({
    "status": status,
    "verified": [report.checked, report.ok],
    "pixi-pack": pixi.packages,
    "inspect": [p.name for p in summary.packages],
    "refused": refused,
    "installer": "installer" in sys.modules,
}))
"""


def _portpack(*args: str | Path, cwd: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "portpack", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_unpack_side_runs_without_the_pack_side_libraries(
    fixture_channel: Path, tmp_path: Path
) -> None:
    """Import the unpack side and unpack both archive kinds with rattler, click, urllib3,
    httpx and yaml unavailable (a sys.meta_path finder refuses them), then check the
    environments as a user would."""
    _portpack("lock", "-c", fixture_channel, "hello-c", "-o", "l.lock", cwd=tmp_path)
    _portpack("pack", "-l", "l.lock", "-o", "env.tar", "--cache-dir", "c", cwd=tmp_path)
    _portpack(
        "pack",
        "-l",
        "l.lock",
        "--format",
        "pixi-pack",
        "-o",
        "pixi.tar",
        "--cache-dir",
        "c",
        cwd=tmp_path,
    )
    # -S and an explicit path: no .pth file (the editable install's finder) runs first.
    path = [str(ROOT), *(p for p in sys.path if p)]
    out = subprocess.run(
        [sys.executable, "-S", "-c", REFUSER + RUN_UNPACK_SIDE]
        + [",".join(UNAVAILABLE), ",".join(UNPACK_SIDE_ENTRIES)]
        + [str(tmp_path / n) for n in ("env.tar", "pixi.tar", "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["refused"] == [], "the unpack side tried to import these"
    assert result["status"] == 0
    checked, ok = result["verified"]
    assert ok and checked > 0
    assert "hello-c" in result["inspect"]
    assert any(d.startswith("hello-c-") for d in result["pixi-pack"])
    for prefix in ("one", "two"):
        assert (tmp_path / "out" / prefix / "env" / "bin" / "hello").is_file()
    assert not result["installer"], "installer loaded for an archive without wheels"


# -- sizes ------------------------------------------------------------------------------


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def _length(node: ast.AST) -> int:
    """Lines from ``def`` to the last line of the body (decorators not counted)."""
    end = node.end_lineno if node.end_lineno is not None else node.lineno
    return end - node.lineno + 1


def test_no_module_over_the_limit() -> None:
    long = [
        f"{m.where}: {m.lines} lines (limit {MAX_MODULE_LINES})"
        for m in modules().values()
        if m.lines > MAX_MODULE_LINES
    ]
    assert not long, "modules over the limit:\n" + "\n".join(long)


def test_no_function_over_the_limit() -> None:
    problems, seen = [], set()
    for module in modules().values():
        for qualname, node in _functions(module.tree):
            key, length = f"{module.name}:{qualname}", _length(node)
            seen.add(key)
            if length > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                problems.append(
                    f"{module.where}:{node.lineno}: {qualname}: {length} lines "
                    f"(limit {MAX_FUNCTION_LINES})"
                )
            elif key in LONG_FUNCTIONS and length <= MAX_FUNCTION_LINES:
                problems.append(f"LONG_FUNCTIONS[{key!r}]: {length} lines now, remove the entry")
    problems += [f"LONG_FUNCTIONS[{k!r}]: no such function" for k in LONG_FUNCTIONS.keys() - seen]
    problems += [
        f"LONG_FUNCTIONS[{k!r}]: no reason given" for k, v in LONG_FUNCTIONS.items() if not v
    ]
    assert not problems, "functions over the limit:\n" + "\n".join(problems)


# -- the library never prints -----------------------------------------------------------

#: What only the command line may use: builtins, module attributes (or names imported
#: from those modules), and the standard file descriptors.
TERMINAL_BUILTINS = frozenset({"print", "input", "exit", "quit", "breakpoint"})
TERMINAL_ATTRIBUTES = {
    "sys": frozenset(
        {"stdout", "stdin", "stderr", "__stdout__", "__stdin__", "__stderr__", "exit"}
    ),
    "click": frozenset({"echo", "secho", "echo_via_pager", "prompt", "confirm", "get_text_stream"}),
    "os": frozenset({"_exit"}),
}
FD_FUNCTIONS = {"open", "os.write", "os.read", "os.fdopen"}
STANDARD_FDS = (0, 1, 2)


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a module binds itself (a local ``input`` is not the builtin)."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return bound


def _terminal_uses(module: Module) -> Iterator[tuple[int, str]]:
    aliases = {}  # local name -> the module it is bound to (import sys as s)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            aliases.update((a.asname or a.name, a.name) for a in node.names)
    builtins = TERMINAL_BUILTINS - _bound_names(module.tree)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and node.module in TERMINAL_ATTRIBUTES:
            for alias in node.names:
                if alias.name in TERMINAL_ATTRIBUTES[node.module]:
                    yield node.lineno, f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = aliases.get(node.value.id, "")
            if node.attr in TERMINAL_ATTRIBUTES.get(owner, ()):
                yield node.lineno, f"{owner}.{node.attr}"
        elif isinstance(node, ast.Name) and node.id in builtins:
            yield node.lineno, f"{node.id}()"
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                yield node.lineno, "raise SystemExit"
        if isinstance(node, ast.Call) and node.args:
            called = _dotted(node.func, aliases)
            first = node.args[0]
            standard = isinstance(first, ast.Constant) and first.value in STANDARD_FDS
            if called in FD_FUNCTIONS and standard:
                yield node.lineno, f"{called}({first.value}, ...): a standard stream"


def _dotted(func: ast.expr, aliases: dict[str, str]) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{aliases.get(func.value.id, func.value.id)}.{func.attr}"
    return ""


def _within(name: str, owners: tuple[str, ...]) -> bool:
    return any(name == owner or name.startswith(owner + ".") for owner in owners)


def test_only_the_command_line_prints() -> None:
    found = [
        f"{module.where}:{line}: {what}"
        for module in modules().values()
        if not _within(module.name, MAY_USE_TERMINAL)
        for line, what in sorted(set(_terminal_uses(module)))
    ]
    assert not found, (
        "the library prints, exits or touches the standard streams (only "
        f"{', '.join(MAY_USE_TERMINAL)} may):\n" + "\n".join(found)
    )


# -- names ------------------------------------------------------------------------------


def test_no_subpackage_shadows_a_public_function() -> None:
    clashes = [
        f"{m.where}: {m.name} is named like portpack.{m.name.rsplit('.', 1)[-1]}()"
        for m in modules().values()
        if m.name.rsplit(".", 1)[-1] in RESERVED_NAMES and (m.is_package or m.name.count(".") == 1)
    ]
    assert not clashes, "modules or subpackages named like a public function:\n" + "\n".join(
        clashes
    )


# -- the map in docs/how-it-works.md ----------------------------------------------------

HOW_IT_WORKS = ROOT / "docs" / "how-it-works.md"


def _section(title: str) -> str:
    text = HOW_IT_WORKS.read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_map_names_every_module_once() -> None:
    """docs/how-it-works.md has one line per module, under its package, and no other."""
    listed, package = [], "portpack"
    for line in _section("The map").splitlines():
        heading = re.match(r"\*\*`(\w+)/`\*\*", line)
        if heading or line.startswith("**Basics**"):
            package = f"portpack.{heading.group(1)}" if heading else "portpack"
        elif item := re.match(r"- `(\w+)\.py`:", line):
            listed.append(f"{package}.{item.group(1)}")
    top = _section("The map").split("**Top**", 1)[-1]
    listed += [f"portpack.{n}" for n in ("__main__",) if f"`{n}.py`" in top]
    listed += ["portpack"] if "`__init__.py`" in top else []
    wanted = [n for n, m in modules().items() if not (m.is_package and n != "portpack")]
    problems = [f"not in the map: {n}" for n in sorted(set(wanted) - set(listed))]
    problems += [f"in the map, not in portpack/: {n}" for n in sorted(set(listed) - set(wanted))]
    problems += [
        f"twice in the map: {n}" for n in sorted({n for n in listed if listed.count(n) > 1})
    ]
    assert not problems, f"{HOW_IT_WORKS.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_documented_layers_are_the_tested_ones() -> None:
    rows = [
        r for r in _section("The layering rule").splitlines() if re.match(r"\| (\d+|top) \|", r)
    ]
    documented = [
        [
            name.removesuffix(".py").rstrip("/")
            for name in re.findall(r"`([^`]+)`", row.split("|")[2])
        ]
        for row in rows
    ]
    tested = [members for _, members in LAYERS]
    assert documented == tested, f"the layer table of {HOW_IT_WORKS.name} is not LAYERS"


#: Pages that name modules and functions; each name must exist in the code.
PAGES_NAMING_CODE = (HOW_IT_WORKS, ROOT / "CONTRIBUTING.md")
#: `paths.json`, `portpack.lock`, ...: file names, not code.
FILE_SUFFIXES = frozenset(
    [
        "py",
        "json",
        "toml",
        "yml",
        "yaml",
        "sh",
        "lock",
        "tar",
        "md",
        "conda",
        "bz2",
        "zst",
        "whl",
        "txt",
        "xsh",
        "fish",
        "nu",
    ]
)


def _top_level(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """What a module or class body defines (through if/try/with blocks too)."""
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update((t.id, node) for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(((a.asname or a.name).split(".")[0], node) for a in node.names)
        for block in ("body", "orelse", "finalbody", "handlers"):
            if isinstance(node, (ast.If, ast.Try, ast.With)) and hasattr(node, block):
                names.update(_top_level(getattr(node, block)))
    return names


def _resolve(reference: str) -> str | None:
    """The problem with a dotted name such as ``net.fetch.Fetcher.fetch_all``, if any;
    names that do not start with a portpack module (``Destination.write``) are skipped."""
    parts = reference.removeprefix("portpack.").split(".")
    by_basename = {}
    for name in modules():
        by_basename.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    owners = [
        n
        for n, m in modules().items()
        if isinstance(_top_level(m.tree.body).get(parts[0]), (ast.ClassDef, ast.FunctionDef))
    ]
    if f"portpack.{parts[0]}" in modules():
        start = "portpack"
    elif len(by_basename.get(parts[0], [])) == 1:
        start = by_basename[parts[0]][0].rsplit(".", 1)[0]
    elif len(owners) == 1 and len(parts) > 1:  # Destination.write: the one Destination
        module, rest = owners[0], parts
        return _lookup(module, rest)
    else:
        return None
    module, rest = start, parts
    while rest and f"{module}.{rest[0]}" in modules():
        module, rest = f"{module}.{rest[0]}", rest[1:]
    return _lookup(module, rest)


def _lookup(module: str, attrs: list[str]) -> str | None:
    body = modules()[module].tree.body
    for attr in attrs:
        node = _top_level(body).get(attr)
        if node is None:
            return f"{module} has no {attr!r}"
        body = getattr(node, "body", [])
    return None


def _defined_anywhere() -> set[str]:
    return {
        node.name
        for m in modules().values()
        for node in ast.walk(m.tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def test_the_docs_name_only_code_that_exists() -> None:
    problems = []
    for page in PAGES_NAMING_CODE:
        text = page.read_text(encoding="utf-8")
        where = page.relative_to(ROOT)
        for ref in sorted(set(re.findall(r"`((?:\w+\.)+\w+)(?:\(\))?`", text))):
            if ref.rsplit(".", 1)[-1] not in FILE_SUFFIXES and (problem := _resolve(ref)):
                problems.append(f"{where}: `{ref}`: {problem}")
        for name in sorted(set(re.findall(r"`(\w+)\(\)`", text)) - _defined_anywhere()):
            problems.append(f"{where}: `{name}()`: no such function in portpack/")
        for path in sorted(set(re.findall(r"`([\w/]+\.py)`", text))):
            basenames = {m.path.name for m in modules().values()}
            exists = (ROOT / path).is_file() or (PACKAGE / path).is_file()
            if not exists and not ("/" not in path and path in basenames):
                problems.append(f"{where}: `{path}`: no such file")
    assert not problems, "names in the docs that the code does not have:\n" + "\n".join(problems)
