"""The layout is the architecture (DESIGN.md): each layer imports only the layers below it,
there are no import cycles, and nothing outside ``io/`` loads socket, asyncio, selectors,
select or threading.

The layer order is written once, here. Lowest first; a module belongs to the longest prefix
that names it.

- ``wire.enums`` (the protocol's registry of numbers), ``_frozen`` and ``_memo`` import nothing
  of ours;
  ``errors`` names alerts from ``wire.enums``; the rest of ``wire`` raises ``errors``.
- ``gate.cookie`` sits below ``config``: a configuration owns its cookie jar.
- ``gate`` sits above ``handshake``: the TLS 1.3 stream gate negotiates (cipher suite, group)
  with the server engine's own rules to build its HelloRetryRequest, rather than a copy of
  them; the datagram gate needs neither. Connections are made from a gate's ``Admit``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "dtlsgate"

LAYERS: list[tuple[str, ...]] = [
    ("dtlsgate.wire.enums", "dtlsgate._frozen", "dtlsgate._memo"),
    ("dtlsgate.errors",),
    ("dtlsgate.wire",),
    ("dtlsgate.crypto",),
    ("dtlsgate.events", "dtlsgate.gate.cookie"),
    ("dtlsgate.config",),
    ("dtlsgate.record",),
    ("dtlsgate.handshake",),
    ("dtlsgate.gate",),
    ("dtlsgate.connection",),
    ("dtlsgate.io", "dtlsgate.coap"),
    ("dtlsgate.__main__",),
    ("dtlsgate",),
]

IO_MODULES = ("socket", "asyncio", "selectors", "select", "threading")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, bool]:
    """Our modules that ``module`` imports, each mapped to whether the import runs (False:
    only under ``if TYPE_CHECKING``)."""
    found: dict[str, bool] = {}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def resolve(name: str) -> str | None:
        # The longest prefix of ``name`` that is one of our modules.
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    def visit(node: ast.AST, runs: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit_stmt(stmt, False)
                for stmt in child.orelse:
                    visit_stmt(stmt, runs)
                continue
            visit_stmt(child, runs)

    def visit_stmt(node: ast.AST, runs: bool) -> None:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            if target.startswith("dtlsgate"):
                resolved = resolve(target)
                if resolved is not None and resolved != module:
                    found[resolved] = found.get(resolved, False) or runs
        visit(node, runs)

    visit(ast.parse(path.read_text()), True)
    return found


def test_every_module_is_in_a_layer_and_imports_only_lower_layers() -> None:
    modules = all_modules()
    wrong = []
    for module, path in modules.items():
        mine = layer_of(module)
        for target in imports_of(module, path, modules):
            # A package's own __init__ is the package's face, importable by its members' layer.
            if target in ("dtlsgate",):
                wrong.append(f"{module} imports the top-level package")
                continue
            theirs = layer_of(target)
            if theirs > mine:
                wrong.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    modules = all_modules()
    graph = {
        module: sorted(t for t, runs in imports_of(module, path, modules).items() if runs)
        for module, path in modules.items()
    }
    # A package's __init__ imported by its own submodule is how Python loads packages, not a
    # cycle of ours: only edges between distinct modules count, and a submodule -> parent
    # package edge is dropped.
    for module, targets in graph.items():
        graph[module] = [t for t in targets if not module.startswith(t + ".")]
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for module in graph:
        if module not in state:
            walk(module)
    assert not cycles, "\n".join(cycles)


def core_modules() -> list[str]:
    io_layer = layer_of("dtlsgate.io")
    return [m for m in all_modules() if layer_of(m) < io_layer and m != "dtlsgate.__main__"]


def test_core_imports_no_io_module() -> None:
    # What our core modules import themselves, read from the source: no socket, event loop,
    # thread or clock (time is a ``now`` argument).
    modules = all_modules()
    core = set(core_modules())
    wrong = []
    for module in sorted(core):
        tree = ast.parse(modules[module].read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in (*IO_MODULES, "time"):
                    wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


# Run in a fresh interpreter: a meta path hook notes which module's code imported each I/O
# module. ``cryptography`` itself loads socket (x509 names import email.utils) and threading
# (its OpenSSL bindings), so "in sys.modules" cannot be the criterion: the direct importer is.
_WATCH = """
import importlib, sys

IO = set(sys.argv[1].split(","))
culprits = []

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in IO and name not in sys.modules:
            frame = sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__", "").startswith(
                ("importlib", "_frozen_importlib")
            ):
                frame = frame.f_back
            importer = frame.f_globals.get("__name__", "?") if frame is not None else "?"
            if importer == "dtlsgate" or importer.startswith("dtlsgate."):
                culprits.append(f"{importer} imports {name}")
        return None

sys.meta_path.insert(0, Watch())
for module in sys.argv[2:]:
    importlib.import_module(module)
print("\\n".join(culprits))
"""


def test_core_loads_no_io_module() -> None:
    modules = ["dtlsgate", "dtlsgate.gate", *core_modules()]
    result = subprocess.run(
        [sys.executable, "-c", _WATCH, ",".join(IO_MODULES), *modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "", result.stdout


def test_the_io_watch_sees_an_io_import() -> None:
    # The watch must be able to fail: the listener (io/) imports socket itself.
    result = subprocess.run(
        [sys.executable, "-c", _WATCH, ",".join(IO_MODULES), "dtlsgate.io.listener"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "dtlsgate.io.listener imports socket" in result.stdout


def test_the_layer_checks_can_fail() -> None:
    # The checks above would pass vacuously if the walk found no imports: it finds the
    # connection's import of the record layer, and that is the right direction.
    modules = all_modules()
    found = imports_of(
        "dtlsgate.connection.datagram", modules["dtlsgate.connection.datagram"], modules
    )
    assert "dtlsgate.record.dtls12" in found
    assert layer_of("dtlsgate.record.dtls12") < layer_of("dtlsgate.connection.datagram")
    assert len(core_modules()) > 30
