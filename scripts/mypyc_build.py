"""A mypyc build of dtlsgate's hot modules, for measuring (bench/RESULTS.md, section mypyc).

Copies ``src/dtlsgate`` to ``OUT/dtlsgate``, rewrites the copy's dataclasses for mypyc and
compiles the hot modules there in place (``OUT`` is then a tree to put on ``PYTHONPATH``, or
to install from). The source tree is not touched.

The rewrite: mypyc makes a native class only of a class whose decorators it knows, and it
knows ``dataclasses.dataclass`` but not our ``@frozen``; and for a native dataclass it
compiles the methods written in the class but leaves ``dataclass``'s generated ``__init__``
interpreted, storing each field through ``object.__setattr__`` (about 1 us for four fields,
against 30 ns for a compiled ``__init__``). So each ``@frozen`` class becomes
``@dataclass(frozen=True, init=False)`` and each ``@dataclass(...)`` one gets ``init=False``,
both with an ``__init__`` written out (same parameters, defaults and default factories), which
mypyc compiles. Equality, hashing, ``repr`` and ``dataclasses.replace`` stay ``dataclass``'s.
A class whose only bases are field-less plain classes of its module (``events.Event``) is
rewritten too.

Two more rewrites of the copy, for what mypyc refuses in today's code (session 11): a
class-body annotation that narrows an attribute its base declares (``_ctx``/``_state`` of
the DTLS 1.2 connections) is dropped (`drop_narrowed`), and a type a class field names but
that is imported only under ``TYPE_CHECKING`` is imported at run time too
(`import_field_types`: mypyc fills a native dataclass's ``__annotations__`` with the type
objects, and one of a module not loaded yet crashed the import).

Tried with mypy/mypyc 2.4.1, Python 3.11.7, gcc 12.2 (bench/RESULTS.md, sections mypyc and
mypyc11: neither build gained the 20% per CPU-second the issue asks, neither was adopted).

Usage: python scripts/mypyc_build.py OUT [--opt-level N] [--only]
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Interpreted: configuration, the provider protocol, errors (exceptions deriving from
# builtin ones), I/O and CLI, the CoAP glue, package __init__s.
INTERPRETED = (
    "dtlsgate/io/",
    "dtlsgate/config.py",
    "dtlsgate/crypto/provider.py",
    "dtlsgate/errors.py",
    "dtlsgate/coap.py",
    "dtlsgate/__main__.py",
    "dtlsgate/_frozen.py",
)
DATACLASS = "_mypyc_dataclass"


def compiled_modules(tree: Path) -> list[str]:
    found = []
    for path in sorted((tree / "dtlsgate").rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        if path.name == "__init__.py" or rel.startswith(INTERPRETED):
            continue
        found.append(rel)
    return found


def _decorator_kind(node: ast.expr) -> str | None:
    target = node.func if isinstance(node, ast.Call) else node
    name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
    if name == "frozen":
        return "frozen"
    if name == "dataclass":
        return "dataclass"
    return None


def _is_classvar(annotation: ast.expr) -> bool:
    text = ast.unparse(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _init_for(cls: ast.ClassDef, source: str, frozen: bool) -> list[str] | None:
    params: list[str] = []
    body: list[str] = []
    for stmt in cls.body:
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        if _is_classvar(stmt.annotation):
            continue
        name = stmt.target.id
        ann = ast.get_source_segment(source, stmt.annotation)
        value = stmt.value
        if value is None:
            params.append(f"{name}: {ann}")
            body.append(f"self.{name} = {name}")
        elif isinstance(value, ast.Call) and _decorator_kind_name(value.func) == "field":
            # dataclasses.field(...) in a native dataclass fails at import (mypyc 1.x):
            # such a class keeps its decorator (non-native, interpreted __init__).
            return None
        else:
            params.append(f"{name}: {ann} = {ast.get_source_segment(source, value)}")
            body.append(f"self.{name} = {name}")
    ignore = "  # type: ignore[misc]" if frozen else ""
    lines = [f"def __init__({', '.join(['self', *params])}) -> None:"]
    lines += [f"    {line}{ignore}" for line in body]
    if any(isinstance(s, ast.FunctionDef) and s.name == "__post_init__" for s in cls.body):
        lines.append("    self.__post_init__()")
    if not body and len(lines) == 1:
        lines.append("    pass")
    return lines


def _decorator_kind_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def subclassed_elsewhere(tree: Path, modules: list[str]) -> dict[str, set[str]]:
    """Per module (dotted name), its classes that a class of another module derives from,
    found through ``from MODULE import NAME`` (``handshake.dtls12.client.ClientWaitFinished``
    over ``handshake.dtls12.common.WaitFinished``, session 19). Such a base keeps its
    decorator: a rewritten one would be a native class, and a subclass that stays a Python
    class cannot derive from a native one (mypyc: "Non-extension classes may not inherit
    from extension classes")."""
    found: dict[str, set[str]] = {}
    for rel in modules:
        module = ast.parse((tree / rel).read_text())
        imported = {
            alias.asname or alias.name: (node.module, alias.name)
            for node in ast.walk(module)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        for cls in ast.walk(module):
            if isinstance(cls, ast.ClassDef):
                for base in cls.bases:
                    if isinstance(base, ast.Name) and base.id in imported:
                        where, name = imported[base.id]
                        found.setdefault(where, set()).add(name)
    return found


def rewrite(source: str, kept: frozenset[str] = frozenset()) -> tuple[str, int]:
    """The module's source with its dataclasses given written-out ``__init__``s; the
    classes named in ``kept`` (bases of another module's classes) are left as they are."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, int, int, str]] = []  # (line, col, end_line, end_col, text)
    inserts: list[tuple[int, list[str], int]] = []  # (after line, lines, indent)
    count = 0
    # A class some class here derives from keeps dataclass's __init__: mypyc cannot build a
    # subclass's generated __init__ over a written-out one.
    bases_here = {
        ast.unparse(b) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for b in c.bases
    } | kept
    # A base with no fields and no decorator (events.Event: only ``__slots__ = ()``) is a
    # native class with nothing to initialise: its subclasses can be rewritten too.
    fieldless = {
        c.name
        for c in ast.walk(tree)
        if isinstance(c, ast.ClassDef)
        and not c.bases
        and not c.decorator_list
        and not any(isinstance(s, ast.AnnAssign) and not _is_classvar(s.annotation) for s in c.body)
    }
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef) or cls.name in bases_here:
            continue
        decorators = [(d, _decorator_kind(d)) for d in cls.decorator_list]
        kinds = [(d, k) for d, k in decorators if k is not None]
        if len(kinds) != 1:
            continue
        deco, kind = kinds[0]
        keywords = {k.arg: k.value for k in deco.keywords} if isinstance(deco, ast.Call) else {}
        if "init" in keywords or "kw_only" in keywords:
            continue
        if any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in cls.body):
            continue
        if any(
            isinstance(s, ast.AnnAssign) and ast.unparse(s.annotation).endswith("KW_ONLY")
            for s in cls.body
        ):
            continue
        if any(ast.unparse(b) not in fieldless for b in cls.bases):
            # A dataclass base's fields would come first: not handled. A Generic native
            # dataclass fails at import (mypyc 1.x). Such a class keeps its decorator.
            continue
        frozen = kind == "frozen" or (
            isinstance(keywords.get("frozen"), ast.Constant) and keywords["frozen"].value is True
        )
        init = _init_for(cls, source, frozen)
        if init is None:
            continue
        if kind == "frozen":
            new = f"{DATACLASS}(frozen=True, init=False)"
        else:
            args = [ast.get_source_segment(source, k) for k in deco.keywords]  # type: ignore[union-attr]
            new = f"{DATACLASS}({', '.join([*args, 'init=False'])})"
        edits.append((deco.lineno, deco.col_offset, deco.end_lineno, deco.end_col_offset, new))  # type: ignore[arg-type]
        indent = cls.body[0].col_offset
        inserts.append((cls.end_lineno, init, indent))  # type: ignore[arg-type]
        count += 1
    if not count:
        return source, 0
    # Apply from the bottom up so earlier positions stay valid.
    changes: list[tuple[int, int, object]] = [(e[0], 1, e) for e in edits] + [
        (i[0], 2, i) for i in inserts
    ]
    for _, which, change in sorted(changes, key=lambda c: (c[0], c[1]), reverse=True):
        if which == 1:
            line, col, end_line, end_col, text = change  # type: ignore[misc]
            assert line == end_line, "a decorator over several lines"
            row = lines[line - 1]
            lines[line - 1] = row[:col] + text + row[end_col:]
        else:
            after, init, indent = change  # type: ignore[misc]
            pad = " " * indent
            block = ["\n"] + [f"{pad}{line}\n" for line in init]
            lines[after:after] = block
    text = "".join(lines)
    # The alias import, after the module's docstring and __future__ imports.
    future = "from __future__ import annotations\n"
    assert future in text, "every module starts with the __future__ import"
    text = text.replace(future, future + f"\nfrom dataclasses import dataclass as {DATACLASS}\n", 1)
    return text, count


def drop_narrowed(source: str) -> tuple[str, int]:
    """The module's source without the class-body annotations that narrow an attribute a
    base class of the same module declares (``DtlsServerConnection._ctx: ServerContext``
    over ``DtlsConnection._ctx: Any``): mypyc refuses a subclass that redeclares an
    attribute's type. In the copy the subclass's methods see the base's type."""
    tree = ast.parse(source)
    declared: dict[str, dict[str, str]] = {}
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef):
            declared[cls.name] = {
                s.target.id: ast.unparse(s.annotation)
                for s in cls.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
    lines = source.splitlines(keepends=True)
    count = 0
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        inherited: dict[str, str] = {}
        for base in cls.bases:
            inherited.update(declared.get(ast.unparse(base), {}))
        for stmt in cls.body:
            if (
                isinstance(stmt, ast.AnnAssign)
                and stmt.value is None
                and isinstance(stmt.target, ast.Name)
                and inherited.get(stmt.target.id, ast.unparse(stmt.annotation))
                != ast.unparse(stmt.annotation)
            ):
                assert stmt.lineno == stmt.end_lineno, "an annotation over several lines"
                row = lines[stmt.lineno - 1]
                lines[stmt.lineno - 1] = row[: stmt.col_offset] + "pass\n"
                count += 1
    return "".join(lines), count


def import_field_types(source: str) -> tuple[str, int]:
    """The module's source with the ``if TYPE_CHECKING:`` imports that a class-body
    annotation names imported at run time as well, after that block: mypyc fills a native
    dataclass's ``__annotations__`` with the annotations' type objects, and a type whose
    module is not loaded yet is a NULL pointer (``gate.results.StreamAdmit.client_hello_info:
    ClientHelloInfo`` crashed the import); quoting the annotation does not help. Only the
    copy changes (the layering rule of tests/test_layers.py is about the source)."""
    tree = ast.parse(source)
    hidden: dict[str, tuple[ast.If, ast.ImportFrom]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    for alias in stmt.names:
                        hidden[alias.asname or alias.name] = (node, stmt)
    needed: dict[int, tuple[ast.If, list[str]]] = {}
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt in cls.body:
            if not isinstance(stmt, ast.AnnAssign):
                continue
            for name in {n.id for n in ast.walk(stmt.annotation) if isinstance(n, ast.Name)}:
                if name in hidden:
                    block, imp = hidden[name]
                    text = f"from {imp.module} import {name}"
                    lines_for = needed.setdefault(id(block), (block, []))[1]
                    if text not in lines_for:
                        lines_for.append(text)
    if not needed:
        return source, 0
    lines = source.splitlines(keepends=True)
    count = 0
    for block, imports in sorted(needed.values(), key=lambda b: b[0].lineno, reverse=True):
        end = block.end_lineno or block.lineno
        lines[end:end] = [f"{text}  # mypyc build: a field's type\n" for text in imports]
        count += len(imports)
    return "".join(lines), count


ENUM_BASES = ("enum.Enum", "Enum", "enum.IntEnum", "IntEnum")
MEMBER_INIT = "_mypyc_member_init"


def enum_inits(source: str) -> tuple[str, int]:
    """The module's source with each enum's ``__init__`` (``Hash.digest_size``,
    ``AeadAlgorithm.key_length``: attributes set per member) renamed and called on every
    member right after the class. mypyc compiles an enum's methods with a check that
    ``self`` is of the class, whose type object is not set yet while ``Enum`` builds the
    members: the import failed with "dtlsgate.crypto.aead.AeadAlgorithm object expected;
    got dtlsgate.crypto.aead.AeadAlgorithm" (session 19). Called after the class, the same
    code sets the same attributes. Only for members whose value is one constant (Enum
    passes a tuple's items as separate arguments)."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    inserts: list[tuple[int, list[str]]] = []
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or not any(
            ast.unparse(b) in ENUM_BASES for b in cls.bases
        ):
            continue
        init = next(
            (s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"),
            None,
        )
        if init is None:
            continue
        values = [
            s.value
            for s in cls.body
            if isinstance(s, ast.Assign) and ast.unparse(s.targets[0]) != "__hash__"
        ]
        assert not any(isinstance(v, ast.Tuple) for v in values), "a member with a tuple value"
        row = lines[init.lineno - 1]
        assert "def __init__(" in row, "an __init__ over several lines"
        lines[init.lineno - 1] = row.replace("def __init__(", f"def {MEMBER_INIT}(", 1)
        member = f"_member_{cls.name}"
        inserts.append(
            (
                cls.end_lineno or cls.lineno,
                [
                    "\n",
                    f"for {member} in {cls.name}:  # mypyc build: the members' __init__\n",
                    f"    {member}.{MEMBER_INIT}({member}.value)\n",
                ],
            )
        )
    for after, block in sorted(inserts, reverse=True):
        lines[after:after] = block
    return "".join(lines), len(inserts)


def patched_runtime(out: Path) -> Path:
    """A copy of mypyc's C runtime (``lib-rt``) in ``OUT/lib-rt``, with a bytes slice whose
    stop is before its start made empty: mypy/mypyc 2.4.1's ``CPyBytes_GetSlice`` clamps
    start and stop to the length but not to each other, and passes the negative length to
    ``PyBytes_FromStringAndSize`` ("SystemError: Negative size passed to
    PyBytes_FromStringAndSize"): ``peek_client_hello13``'s ``body[cookie_at + 1 :
    suites_at]``, empty for a TLS ClientHello, failed the TLS 1.3 golden transcript
    (session 19). The generated C includes the runtime's sources by ``#include <...>``; the
    copy's directory comes first on the include path (``CFLAGS`` precede the build's own
    ``-I``)."""
    import mypyc

    runtime = out / "lib-rt"
    if runtime.exists():
        shutil.rmtree(runtime)
    shutil.copytree(Path(mypyc.__file__).parent / "lib-rt", runtime)
    path = runtime / "bytes_ops.c"
    text = path.read_text()
    old = "        Py_ssize_t slice_len = endn - startn;\n"
    assert text.count(old) == 1, "mypyc's CPyBytes_GetSlice changed: check it again"
    path.write_text(
        text.replace(
            old, old + "        if (slice_len < 0) {\n            slice_len = 0;\n        }\n"
        )
    )
    return runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--opt-level", default="3")
    parser.add_argument("--only", action="store_true", help="rewrite, do not compile")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if (out / "dtlsgate").exists():
        shutil.rmtree(out / "dtlsgate")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "src" / "dtlsgate", out / "dtlsgate")
    modules = compiled_modules(out)
    bases = subclassed_elsewhere(out, modules)
    total = narrowings = imports = enums = 0
    for rel in modules:
        path = out / rel
        text, inits = enum_inits(path.read_text())
        text, narrowed = drop_narrowed(text)
        text, imported = import_field_types(text)
        dotted = rel.removesuffix(".py").replace("/", ".")
        text, count = rewrite(text, frozenset(bases.get(dotted, ())))
        if count or narrowed or imported or inits:
            path.write_text(text)
            enums += inits
            total += count
            narrowings += narrowed
            imports += imported
    # Importing dtlsgate.handshake.tls13.client (or connection.stream) first crashes the
    # compiled build (a segmentation fault in the import cycle between the compiled
    # modules); importing connection.datagram13 first does not. The package imports it.
    with open(out / "dtlsgate" / "__init__.py", "a") as init:
        init.write("\nimport dtlsgate.connection.datagram13  # noqa: E402, F401 (mypyc build)\n")
    print(
        f"{len(modules)} modules to compile, {total} dataclasses given a compiled __init__,"
        f" {narrowings} narrowing annotations dropped, {imports} field types imported,"
        f" {enums} enum __init__s called after their class"
    )
    if args.only:
        return
    env = dict(os.environ, MYPYC_OPT_LEVEL=args.opt_level, CFLAGS=f"-I{patched_runtime(out)}")
    mypyc = Path(sys.executable).parent / "mypyc"
    subprocess.run([str(mypyc), *modules], cwd=out, env=env, check=True, timeout=3600)


if __name__ == "__main__":
    main()
