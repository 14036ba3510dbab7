"""Machine instructions per TLS 1.3 server handshake, counted by callgrind: bench/tls13.py's
configurations (X25519, ECDSA P-256, TLS_AES_128_GCM_SHA256, no tickets), our client and
server in memory in this process, every server call made through ``operator.call`` so that
``--toggle-collect=_operator_call`` counts the server alone. Run it twice and take the
difference, as bench/handshake_callgrind.py::

    for n in 10 110; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --toggle-collect=_operator_call \\
            --callgrind-out-file=cg.$n .venv/bin/python bench/tls13_callgrind.py --count $n
    done
    # (total of cg.110 - total of cg.10) / 100 = instructions per server handshake

Usage: python bench/tls13_callgrind.py [--count N]
"""

from __future__ import annotations

import argparse
import operator
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tls13 import setup

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.handshake.tls13.client import ClientContext
from dtlsgate.handshake.tls13.server import ServerContext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    server_cfg, client_cfg, _, _ = setup()
    cctx, sctx = ClientContext(client_cfg), ServerContext(server_cfg)
    for _ in range(args.count):
        client = ClientConnection(cctx.config, context=cctx)
        client.start()
        server = operator.call(ServerConnection, server_cfg, context=sctx)
        operator.call(server.receive_data, client.data_to_send(), 0.0)
        client.receive_data(operator.call(server.data_to_send), 0.0)
        operator.call(server.receive_data, client.data_to_send(), 0.0)
        assert server.handshake_complete
    print(f"{args.count} TLS 1.3 handshakes completed")


if __name__ == "__main__":
    main()
