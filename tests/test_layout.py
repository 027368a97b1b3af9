"""The layout keeps its shape: small layers, no shared private state, no import cycle.

These are the structural rules of docs/architecture.md, checked on the source: how many modules
sit directly under ``imbot/``, how long a module may grow, who may touch the Bot's and the
Context's underscore attributes, that no import cycle exists at run time, and that the
import-layer contract (``[tool.importlinter]`` in pyproject.toml) holds.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "imbot"

MAX_TOP_LEVEL_MODULES = 12
MAX_LINES = 500
MAX_LINES_IN_BOT = 400

# The two modules that own the Bot's and the Context's private state.
OWNERS = {PACKAGE / "bot" / "bot.py", PACKAGE / "bot" / "context.py"}
# Names under which imbot's code holds a Bot or a Context.
HOLDERS = {"bot", "_bot", "ctx", "_ctx", "context", "_context"}
OWN = {"self", "cls"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_at_most_twelve_modules_directly_under_imbot() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, (
        f"{len(top)} modules directly under imbot/ (at most {MAX_TOP_LEVEL_MODULES}): "
        f"{', '.join(top)}; move the new one into the layer it belongs to"
    )


def line_limit(path: Path) -> int:
    return MAX_LINES_IN_BOT if path.parent == PACKAGE / "bot" else MAX_LINES


def test_no_module_is_too_long() -> None:
    too_long = [
        f"{rel(path)}: {lines} lines (at most {line_limit(path)})"
        for path in modules()
        if (lines := line_count(path)) > line_limit(path)
    ]
    assert too_long == [], "split these modules by job:\n" + "\n".join(too_long)


BOT_OR_CONTEXT = re.compile(r"\b(Bot|Context)\b")


def annotated_holders(tree: ast.AST) -> set[str]:
    """Parameters and variables annotated as a Bot or a Context (``owner: Bot``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            name, annotation = node.arg, node.annotation
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation = node.target.id, node.annotation
        else:
            continue
        if BOT_OR_CONTEXT.search(ast.unparse(annotation)):
            names.add(name)
    return names - OWN


def holds_bot_or_context(node: ast.expr, holders: set[str]) -> bool:
    """Whether ``node`` names a Bot or a Context that is not the code's own object.

    A name in ``holders`` (``ctx``, ``bot``…), or an attribute of such a name on anything
    (``ctx.bot``, ``self._bot``, ``harness.bot``); ``self`` and ``cls`` are never a holder.
    """
    if isinstance(node, ast.Name):
        return node.id in holders
    if isinstance(node, ast.Attribute):
        return node.attr in HOLDERS
    return False


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reaches(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``(line, code)`` for each touch of a Bot's or a Context's underscore attribute."""
    holders = HOLDERS | annotated_holders(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            value = node.value
            if holds_bot_or_context(value, holders):
                yield node.lineno, ast.unparse(node)
            elif node.attr == "_bot" and not (isinstance(value, ast.Name) and value.id in OWN):
                yield node.lineno, ast.unparse(node)  # another object's Bot: router._bot
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and holds_bot_or_context(node.args[0], holders)
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
        ):
            yield node.lineno, ast.unparse(node)


def test_private_reaches_are_found_and_own_attributes_are_not() -> None:
    source = (
        "ctx._bot._loads\n"
        "await ctx._load_state()\n"
        "ctx.bot._unhandled_error(ctx, exc)\n"
        "bot._asks\n"
        "self._bot._state_store\n"
        "router._bot\n"
        "getattr(ctx, '_state')\n"
        "self._bot = bot\n"
        "self._asks\n"
        "ctx.reply\n"
        "bot.__class__\n"
        "cls._registry\n"
        "state._loaded\n"
        "def f(owner: Bot, c: Context[Any], n: int) -> None:\n"
        "    owner._handle(c._event, n._x)\n"
    )
    found = sorted(private_reaches(ast.parse(source)))
    assert found == [
        (1, "ctx._bot"),
        (1, "ctx._bot._loads"),
        (2, "ctx._load_state"),
        (3, "ctx.bot._unhandled_error"),
        (4, "bot._asks"),
        (5, "self._bot._state_store"),
        (6, "router._bot"),
        (7, "getattr(ctx, '_state')"),
        (15, "c._event"),
        (15, "owner._handle"),
    ]


def test_nothing_outside_the_bot_and_the_context_touches_their_private_attributes() -> None:
    reaches = [
        f"{rel(path)}:{line}: {code}"
        for path in modules()
        if path not in OWNERS
        for line, code in sorted(set(private_reaches(ast.parse(path.read_text(encoding="utf-8")))))
    ]
    assert reaches == [], (
        "only imbot/bot/bot.py and imbot/bot/context.py may touch the Bot's and the Context's "
        "underscore attributes; give the Context (or the services object the Bot hands it) a "
        "public method instead:\n" + "\n".join(reaches)
    )


def run_time_imports(graph: grimp.ImportGraph, module: str) -> set[str]:
    """The modules that importing ``module`` runs, directly.

    Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``: the packages above an
    imported module count, except those above ``module`` itself, which Python runs first.
    """
    above_self = set(ancestors(module))
    imported = set()
    for target in graph.find_modules_directly_imported_by(module):
        imported.add(target)
        imported.update(set(ancestors(target)) - above_self)
    imported.discard(module)
    return imported


def ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that can each reach the others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def describe_edge(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    if details:
        where = ", ".join(f"l.{detail['line_number']}" for detail in details)
        return f"{importer} -> {imported} ({where})"
    return f"{importer} -> {imported} (runs the package's __init__)"


def test_strongly_connected_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [group for group in strongly_connected(edges) if len(group) > 1] == [["a", "b", "c"]]


def test_no_import_cycle_at_run_time() -> None:
    graph = grimp.build_graph("imbot", exclude_type_checking_imports=True, cache_dir=None)
    edges = {module: run_time_imports(graph, module) for module in graph.modules}
    cycles = []
    for group in strongly_connected(edges):
        if len(group) < 2:
            continue
        members = set(group)
        links = [
            describe_edge(graph, importer, imported)
            for importer in group
            for imported in sorted(edges[importer] & members)
        ]
        cycles.append("a cycle through " + ", ".join(group) + ":\n  " + "\n  ".join(links))
    assert cycles == [], (
        "import cycles at run time (import under `if TYPE_CHECKING:` or move the shared part "
        "down a layer):\n" + "\n".join(cycles)
    )


def test_the_import_layer_contract_holds() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.is_file(), f"{lint_imports} is missing: pip install -e '.[dev]'"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        "the import-layer contract is broken (see [tool.importlinter] in pyproject.toml and "
        "docs/architecture.md):\n" + result.stdout + result.stderr
    )
