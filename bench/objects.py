"""Objects of Python classes made per DTLS 1.2 server handshake, by class and by maker.

``bench/opcodes.py`` counts bytecodes; this counts what they build. It drives the same
handshakes (a pyOpenSSL client in memory, ECDHE-ECDSA P-256, AES-128-GCM, EMS, cookie
exchange; ``--dtls13``: our DTLS 1.3 client) and, with ``sys.setprofile``, catches every
Python-level ``__init__`` or ``__new__`` that runs inside the server's calls: one object of
the class it initialises (a subclass's ``__init__`` calling its base's counts once), made by
the first frame outside the constructors. The named tuples the package makes in C
(``partial(tuple.__new__, cls)``) are counted by a wrapper put in their place for the run
("(in C)"). Objects of classes with no Python-level constructor (``cryptography``'s hash
and key objects) and the built-in ones (bytes, tuples, lists, ints, slices) are not seen
here: callgrind's call counts of CPython's allocators give those (bench/RESULTS.md, ``##
objs9``).

Usage: python bench/objects.py [--count N] [--top K] [--dtls13]
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
from types import FrameType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opcodes import run_profiled, servers

_MAKERS = ("__init__", "__new__", "__call__", "__post_init__")


def _is_namedtuple_new(code: Any) -> bool:
    return code.co_filename == "<string>" and code.co_varnames[:1] == ("_cls",)


def _where(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    return f"{path.rsplit('/src/', 1)[-1].rsplit('/lib/', 1)[-1]}:{frame.f_code.co_name}"


def _count_c_made(
    made: collections.Counter[str], makers: collections.Counter[tuple[str, str]]
) -> list[tuple[Any, str, Any]]:
    """Put a counting wrapper in place of each module-level ``partial(tuple.__new__, cls)``
    of the package; returns what to put back."""
    replaced = []
    for module in [m for n, m in sys.modules.items() if n.startswith("dtlsgate.")]:
        for name, value in list(vars(module).items()):
            if not (isinstance(value, functools.partial) and value.func is tuple.__new__):
                continue
            cls = value.args[0]
            label = f"{cls.__module__.removeprefix('dtlsgate.')}.{cls.__qualname__} (in C)"

            def counted(fields: Any, _make: Any = value, _label: str = label) -> Any:
                if sys.getprofile() is not None:
                    made[_label] += 1
                    makers[_label, _where(sys._getframe(1))] += 1
                return _make(fields)

            replaced.append((module, name, value))
            setattr(module, name, counted)
    return replaced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--dtls13", action="store_true", help="the DTLS 1.3 server handshake")
    args = parser.parse_args()
    server_class, run = servers(args.dtls13)
    made: collections.Counter[str] = collections.Counter()
    makers: collections.Counter[tuple[str, str]] = collections.Counter()

    def profiler(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        # A NamedTuple's __new__ is a lambda compiled from a string (collections.namedtuple).
        new = code.co_name == "__new__" or (code.co_name == "<lambda>" and _is_namedtuple_new(code))
        if not (new or code.co_name == "__init__") or not code.co_argcount:
            return
        first = frame.f_locals.get(code.co_varnames[0])
        cls = first if new else type(first)
        if not isinstance(cls, type):
            return
        caller = frame.f_back
        if (
            caller is not None
            and caller.f_code.co_name in ("__init__", "__new__")
            and caller.f_code.co_argcount
            and caller.f_locals.get(caller.f_code.co_varnames[0]) in (first, cls)
        ):
            return  # a base class's constructor run by the subclass's: the same object
        while caller is not None and caller.f_code.co_name in _MAKERS:
            caller = caller.f_back
        name = f"{cls.__module__.removeprefix('dtlsgate.')}.{cls.__qualname__}"
        made[name] += 1
        makers[name, _where(caller) if caller is not None else "?"] += 1

    # Named tuples the package makes in C (``partial(tuple.__new__, cls)``, as wire/record.py
    # does) run no Python-level constructor: counted by a wrapper put in their place.
    made_in_c = _count_c_made(made, makers)

    run_profiled(args.count, server_class, run, profiler)
    for module, name, maker in made_in_c:
        setattr(module, name, maker)
    n = args.count
    version = "DTLS 1.3" if args.dtls13 else "DTLS 1.2"
    total = sum(made.values()) / n
    print(f"{version} server handshake, {n} profiled: {total:.0f} objects of Python classes")
    for name, value in made.most_common(args.top):
        by = ", ".join(
            f"{where} {count / n:.0f}"
            for (cls, where), count in makers.most_common()
            if cls == name
        )
        print(f"  {value / n:5.1f}  {name}  <- {by}")


if __name__ == "__main__":
    main()
