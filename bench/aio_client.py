"""What the asyncio client (`dtlsgate.io.aio.connect`) runs per echoed record, for callgrind.

This process runs the client: one DTLS 1.2 handshake (ECDHE-ECDSA P-256, AES-128-GCM, EMS,
the cookie exchange), then ``--count`` records of ``--record`` bytes, each sent once the
previous one came back; ``--connects`` times over, one association after the other (each
from a socket of its own). The server is bench/handshake_udp.py's bare loop (the gate and the
connections, no asyncio), echoing, in a child process started anew (not forked), so that
``valgrind --tool=callgrind``, which follows no child, counts the client alone. The loop is
uvloop (``--loop uvloop``, the default when it is installed, as `aio.run` picks it) or
asyncio's own. The exchange is in lockstep, the same datagrams each run; take the difference
of two counts::

    for n in 200 1200; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.$n \\
            .venv/bin/python bench/aio_client.py --count $n
    done
    # (total of cg.1200 - total of cg.200) / 1000 = instructions per echoed record
    # and per association (connect, one record, close): --count 1 --connects 2 and 12


Usage: python bench/aio_client.py [--count N] [--record BYTES] [--connects K]
[--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake_udp import STALL_SECONDS, echo_ours

from dtlsgate.config import ClientConfig
from dtlsgate.io import aio
from dtlsgate.wire.enums import CipherSuite, NamedGroup


def client_config() -> ClientConfig:
    """The handshake bench/handshake_udp.py's pyOpenSSL clients make, from our client."""
    return ClientConfig(
        insecure=True,
        dtls_versions=(0xFEFD,),
        groups=(NamedGroup.secp256r1,),
        cipher_suites=(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,),
    )


async def echoed(port: int, count: int, record: bytes, connects: int) -> float:
    """``connects`` times: connect, then ``count`` records each waited for, close; the CPU
    seconds from the first connect."""
    cpu = time.process_time()
    for _ in range(connects):
        stream = await aio.connect("127.0.0.1", port, client_config(), timeout=STALL_SECONDS)
        for _ in range(count):
            stream.send(record)
            if await stream.recv() != record:
                raise RuntimeError("the echo differs from the record")
        stream.close()
    return time.process_time() - cpu


def serve(count: int) -> None:
    """The child: the bare loop echoing ``count`` records; its port on stdout first."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    echo_ours(sock, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--record", type=int, default=1200)
    parser.add_argument("--connects", type=int, default=1)
    default_loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=default_loop)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.count)
        return
    argv = [sys.executable, __file__, "--serve", "--count", str(args.count * args.connects)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    finished = threading.Event()

    def watch() -> None:  # a server that died must not leave the client waiting
        child.wait()
        if not finished.wait(STALL_SECONDS):
            print("the server ended first; stopped", file=sys.stderr)
            os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        main_coroutine = echoed(port, args.count, os.urandom(args.record), args.connects)
        if args.loop == "uvloop":
            cpu = importlib.import_module("uvloop").run(main_coroutine)
        else:
            cpu = asyncio.run(main_coroutine)
        finished.set()
        child.wait(STALL_SECONDS)
    finally:
        child.kill()
    records = args.count * args.connects
    print(f"aio client on {args.loop}: {records} records, {cpu:.3f} CPU-seconds")


if __name__ == "__main__":
    main()
