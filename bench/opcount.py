"""Python bytecodes counted per function while a callable runs, for the benches'
``--opcodes`` modes (bench/echo_count.py, bench/record_count.py, bench/replay13.py); and
the per-record loop those record benches count, with callgrind or in bytecodes.

Counted: ``sys.settrace`` opcode events in the package's frames and in ``<string>`` frames
(the ``__init__`` that ``@frozen`` generates), keyed ``module path:function``. The tracer
slows what it counts many times over: these counts are for comparing bytecodes, never
time. bench/opcodes.py counts a whole handshake the same way, with calls and per-flight
totals of its own."""

from __future__ import annotations

import collections
import functools
import gc
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


def count_opcodes(run: Callable[[], T]) -> tuple[T, collections.Counter[str]]:
    """``run()``'s result and the bytecodes it executed, per function of ours."""
    ops: collections.Counter[str] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        filename = frame.f_code.co_filename
        if "/dtlsgate/" not in filename and filename != "<string>":
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        key = f"{filename.rsplit('/src/', 1)[-1]}:{frame.f_code.co_name}"
        if event == "call":
            ops[key] += 0

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                ops[key] += 1
            return local

        return local

    sys.settrace(tracer)
    try:
        result = run()
    finally:
        sys.settrace(None)
    return result, ops


def count_records(
    step: Callable[[int, Any], int], items: list[Any], name: str, unit: str, top: int, opcodes: bool
) -> None:
    """``functools.reduce(step, items, 0)``, each step one ``unit`` (a record, an echoed
    record) that it counts.

    Without ``opcodes``: with the cyclic collector off, so that callgrind's
    ``--toggle-collect=functools_reduce`` counts the loop alone; says how many on stderr.
    With ``opcodes``: prints the bytecodes per ``unit``, in total and for the ``top``
    functions, under ``name`` (what was counted: version, direction, side)."""
    if not opcodes:
        gc.disable()
        done = functools.reduce(step, items, 0)
        gc.enable()
        print(f"{name}: {done} {unit}s", file=sys.stderr)
        return
    done, ops = count_opcodes(lambda: functools.reduce(step, items, 0))
    total = sum(ops.values())
    print(f"{name}: {total / done:.1f} bytecodes per {unit} ({done} {unit}s)")
    for key, n in ops.most_common(top):
        print(f"  {n / done:7.1f}  {key}")
