"""CPU instructions per DTLS 1.2 server handshake, counted by callgrind: deterministic.

Drives the handshakes of bench/handshake.py (a pyOpenSSL client in memory, ECDHE-ECDSA
P-256, AES-128-GCM, EMS, cookie exchange) and calls the server only through
``operator.call``, so that callgrind, told to collect inside that one C function, counts the
server's instructions alone (Python, ``cryptography``, OpenSSL, the allocator), not the
client's. One warm-up handshake runs before collection is meaningful; ``--count``
handshakes are counted:

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=_operator_call \\
        --callgrind-out-file=/tmp/cg.out python bench/callgrind_handshake.py --count 20
    callgrind_annotate /tmp/cg.out | head   # "PROGRAM TOTALS" / count = per handshake

``--server pyopenssl`` counts pyOpenSSL's server for the same handshakes instead. The warm-up
handshake is counted too that way; a difference of two counts removes it. Where the toggle
misbehaves (it stops counting after the first call with the mypyc build), count everything
between two marks, client included (the same instructions for both builds of the server):

    valgrind --tool=callgrind --zero-before=os_getppid --dump-before=os_getpgrp \
        --callgrind-out-file=/tmp/cg.out python bench/callgrind_handshake.py --count 20
    # /tmp/cg.out.1 holds the counted handshakes (count of them, warm-up excluded)

Usage: python bench/callgrind_handshake.py [--count N] [--server ours|pyopenssl]
"""

from __future__ import annotations

import argparse
import operator
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from handshake import (
    OurServer,
    PyOpenSSLClient,
    PyOpenSSLServer,
    client_context,
    our_config,
    pyopenssl_server_context,
)

from dtlsgate.gate.datagram import Gate


def handshake(server: OurServer | PyOpenSSLServer, client: PyOpenSSLClient) -> None:
    to_server = client.step([])
    for _ in range(20):
        to_client = operator.call(server.feed, to_server)
        to_server = client.step(to_client)
        if server.done and not to_server:
            return
    raise RuntimeError("handshake did not complete")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--server", choices=("ours", "pyopenssl"), default="ours")
    args = parser.parse_args()
    cctx = client_context()
    if args.server == "ours":
        config = our_config()
        gate = Gate(config)

        def make() -> OurServer | PyOpenSSLServer:
            return OurServer(config, gate)
    else:
        sctx = pyopenssl_server_context()

        def make() -> OurServer | PyOpenSSLServer:
            return PyOpenSSLServer(sctx)

    handshake(make(), PyOpenSSLClient(cctx))  # warm-up
    os.getppid()  # mark: --zero-before=os_getppid
    for _ in range(args.count):
        handshake(make(), PyOpenSSLClient(cctx))
    os.getpgrp()  # mark: --dump-before=os_getpgrp


if __name__ == "__main__":
    main()
