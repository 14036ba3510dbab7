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

``--server pyopenssl`` counts pyOpenSSL's server for the same handshakes instead. Under
valgrind the warm-up handshake is counted too (collection cannot be switched off for it):
run two counts and take the difference, or use a count large enough that it does not
matter.

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
        for _ in range(args.count):
            handshake(OurServer(config, gate), PyOpenSSLClient(cctx))
    else:
        sctx = pyopenssl_server_context()
        for _ in range(args.count):
            handshake(PyOpenSSLServer(sctx), PyOpenSSLClient(cctx))


if __name__ == "__main__":
    main()
