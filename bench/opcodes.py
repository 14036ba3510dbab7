"""Python bytecodes and calls per DTLS 1.2 server handshake: a deterministic measure.

Timing ratios on these machines move by ±0.05 from run to run; the number of bytecodes our
server executes per handshake does not. This drives the same handshakes as
bench/handshake.py (a pyOpenSSL client in memory, ECDHE-ECDSA P-256, AES-128-GCM, EMS,
cookie exchange) and counts, with ``sys.settrace`` opcode events, what runs inside the
server's calls: in total, per server call (ClientHello1 -> HelloVerifyRequest,
ClientHello2 -> server flight, client flight -> Finished) and per function. C code (the
public-key operations, hashes, AEADs, struct) counts as the one bytecode that calls it.

By default only the package's own frames count. ``--all`` counts every Python frame but the
bench's own, the standard library's too: what the package makes Python run on its behalf
(in 3.11, ``Enum`` member reads and calls, ``abc`` instance checks, ``dataclasses``) is
invisible otherwise.

``--c-calls`` counts instead the calls the package's frames make into C functions and
methods (``sys.setprofile`` ``c_call`` events: hashlib, cryptography, struct, bytes and
builtins; a C type called as a constructor, ``bytes(x)``, is not an event), per handshake,
by kind and by function.

``--dtls13``: the DTLS 1.3 server handshake instead, as bench/handshake.py drives it (our
DTLS 1.3 client in memory, the gate's stateless HelloRetryRequest, then a
Dtls13ServerConnection; ECDHE P-256, TLS_AES_128_GCM_SHA256, ECDSA P-256 certificate).

Usage: python bench/opcodes.py [--count N] [--top K] [--all] [--c-calls] [--dtls13]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import (
    OurServer,
    OurServer13,
    PyOpenSSLClient,
    client13_config,
    client_context,
    handshake,
    handshake13,
    our_config,
)

from dtlsgate.gate.datagram import Gate

_OURS = ("/dtlsgate/", "<string>")  # the package, and dataclass-made __init__s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--all", action="store_true", help="count the standard library's frames too"
    )
    parser.add_argument("--c-calls", action="store_true", help="count calls into C instead")
    parser.add_argument("--dtls13", action="store_true", help="the DTLS 1.3 server handshake")
    args = parser.parse_args()
    server_class, run = servers(args.dtls13)
    if args.c_calls:
        count_c_calls(args.count, args.top, server_class, run)
        return
    bench_dir = os.path.dirname(os.path.abspath(__file__))

    def counted(filename: str) -> bool:
        if args.all:
            return not filename.startswith(bench_dir)
        return any(part in filename for part in _OURS)

    ops: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    per_call: collections.Counter[int] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        filename = frame.f_code.co_filename
        if not counted(filename):
            return None
        key = f"{filename.rsplit('/src/', 1)[-1].rsplit('/lib/', 1)[-1]}:{frame.f_code.co_name}"
        calls[key] += 1
        frame.f_trace_opcodes = True

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                ops[key] += 1
            return local

        return local

    feed = server_class.feed
    index = [0]

    def traced_feed(self: Any, datagrams: list[bytes]) -> list[bytes]:
        before = sum(ops.values())
        sys.settrace(tracer)
        try:
            return feed(self, datagrams)
        finally:
            sys.settrace(None)
            per_call[index[0]] += sum(ops.values()) - before
            index[0] += 1

    run()  # warm the caches
    server_class.feed = traced_feed
    for _ in range(args.count):
        index[0] = 0
        run()
    server_class.feed = feed
    n = args.count
    scope = "all Python frames" if args.all else "the package's frames"
    version = "DTLS 1.3" if args.dtls13 else "DTLS 1.2"
    total = sum(ops.values()) / n
    print(f"{version} server handshake, {n} traced, {scope}: {total:.0f} bytecodes,")
    print(f"{sum(calls.values()) / n:.0f} Python calls per handshake")
    print("per server call:", ", ".join(f"{v / n:.0f}" for _, v in sorted(per_call.items())))
    for key, value in ops.most_common(args.top):
        print(f"  {value / n:7.0f} {calls[key] / n:5.0f}  {key}")


def servers(dtls13: bool) -> tuple[Any, Callable[[], object]]:
    """The server class whose ``feed`` is counted, and one handshake with a new one."""
    config = our_config()
    gate = Gate(config)
    if dtls13:
        client_config = client13_config()
        return OurServer13, lambda: handshake13(OurServer13(config, gate), client_config)
    cctx = client_context()
    return OurServer, lambda: handshake(OurServer(config, gate), PyOpenSSLClient(cctx))


# What a C call is into, by the name of the function or of its type (the first match).
_C_KINDS = (
    ("hashlib", ("HASH.", "_hashlib.", "sha256.", "sha2.")),
    ("cryptography", ("AESGCM.", "AESCCM.", "ChaCha20Poly1305.", "EC", "ec.", "X25519", "Ed")),
    ("struct", ("Struct.", "_struct.")),
    ("bytes join", (".join",)),
    ("len, list, dict, isinstance", ("builtins.len", "list.", "dict.", "builtins.isinstance")),
)


def run_profiled(
    n: int, server_class: Any, run: Callable[[], object], profiler: Callable[..., object]
) -> None:
    """``run`` once to warm the caches, then ``n`` times with ``profiler`` set (``sys.setprofile``)
    only inside the server's ``feed`` calls."""
    feed = server_class.feed

    def profiled_feed(self: Any, datagrams: list[bytes]) -> list[bytes]:
        sys.setprofile(profiler)
        try:
            return feed(self, datagrams)
        finally:
            sys.setprofile(None)

    run()  # warm the caches
    server_class.feed = profiled_feed
    try:
        for _ in range(n):
            run()
    finally:
        server_class.feed = feed


def count_c_calls(n: int, top: int, server_class: Any, run: Callable[[], object]) -> None:
    """C functions called from the package's frames during ``n`` server handshakes."""
    calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def profiler(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call" and any(part in frame.f_code.co_filename for part in _OURS):
            bound = getattr(arg, "__self__", None)
            owner = getattr(arg, "__module__", None) or type(bound).__name__
            caller = f"{frame.f_code.co_filename.rsplit('/src/', 1)[-1]}:{frame.f_code.co_name}"
            calls[f"{owner}.{arg.__qualname__}", caller] += 1

    run_profiled(n, server_class, run, profiler)
    kinds: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for (function, _), value in calls.items():
        functions[function] += value
        kind = next((k for k, marks in _C_KINDS if any(m in function for m in marks)), "other")
        kinds[kind] += value
    version = "DTLS 1.3" if server_class is OurServer13 else "DTLS 1.2"
    print(f"{version} server handshake, {n} profiled: {sum(calls.values()) / n:.0f} C calls")
    print("by kind:", ", ".join(f"{k} {v / n:.0f}" for k, v in sorted(kinds.items())))
    for function, value in functions.most_common(top):
        print(f"  {value / n:6.1f}  {function}")
    print("by caller:")
    for (function, caller), value in calls.most_common(top):
        print(f"  {value / n:6.1f}  {function} <- {caller}")


if __name__ == "__main__":
    main()
