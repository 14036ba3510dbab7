"""Gate.judge on N distinct ClientHellos, for instruction counts under callgrind.

Deterministic where timings are not (the machine is shared): run it twice under
``valgrind --tool=callgrind``, with N and with 0, and divide the difference of the two
"Collected" totals by N for the instructions per ClientHello. ``hvr``: bench/listen.py's
DTLS 1.2 ClientHellos (a HelloVerifyRequest each); ``hrr``: bench/flood13.py's DTLS 1.3
ClientHello with distinct randoms and peers (a HelloRetryRequest each); ``hrr2``: the
ClientHello2 our DTLS 1.3 client sends after the gate's HelloRetryRequest, from its one
peer, judged again and again (its cookie verifies, a `Dtls13Admit` each: the second
ClientHello's path, its rest decoded once and remembered, as for the clients of one kind).
``tls`` and ``tls2``: the same two for the TLS 1.3 stream gate (`StatelessGate.receive`,
OpenSSL's ``SSL_stateless``): our TLS 1.3 client's ClientHello1 with distinct randoms and
peers (a `Reply` each), and its ClientHello2 (after the compatibility ChangeCipherSpec)
from its one peer (a `StreamAdmit` each). A warm-up of 200 calls first (the jar's keyed
states, the reply records, the DTLS 1.3 context, the remembered ClientHello2).

Usage::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/gate_calls.py hvr 2000      # and again with 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from flood13 import dtls13_hello
from helpers import NOW, SERVER, client_config, server_config
from listen import MASTER_KEY, RANDOM_AT, distinct_hellos

from dtlsgate import CookieJar, Gate, ServerConfig
from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.connection.stream import ClientConnection
from dtlsgate.gate.results import Dtls13Admit, Reply, StreamAdmit
from dtlsgate.gate.stream import StatelessGate

WARM_UP = 200
# In a TLS 1.3 ClientHello record: the record header (5), the handshake header (4) and
# legacy_version (2), then the random.
TLS_RANDOM_AT = 11


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reply", choices=["hvr", "hrr", "hrr2", "tls", "tls2"])
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    total = WARM_UP + args.count
    if args.reply in ("tls", "tls2"):
        stream(args.reply, args.count, total)
        return
    if args.reply == "hvr":
        gate = Gate(ServerConfig(cookie_jar=CookieJar(MASTER_KEY)))
        hellos = distinct_hellos(total)
        peers = [("127.0.0.1", 40000)] * total
    elif args.reply == "hrr2":
        gate = Gate(server_config())
        hellos = [client_hello2(gate)] * total
        peers = [SERVER] * total
    else:
        gate = Gate(server_config())
        template = bytearray(dtls13_hello())
        hellos = []
        for i in range(total):
            template[RANDOM_AT : RANDOM_AT + 4] = i.to_bytes(4, "big")
            hellos.append(bytes(template))
        peers = [("10.0.0.1", 1024 + i) for i in range(total)]
    answer = Dtls13Admit if args.reply == "hrr2" else bytes
    judge = gate.judge
    for hello, peer in zip(hellos, peers, strict=True):
        if type(judge(hello, peer, NOW)) is not answer:
            raise SystemExit(f"a ClientHello was not answered with {answer.__name__}")
    print(f"{args.count} of {total} ClientHellos judged after the warm-up: {args.reply}")


def stream(reply: str, count: int, total: int) -> None:
    """The ``tls`` and ``tls2`` modes: the stream gate (module docstring)."""
    gate = StatelessGate(server_config(stateless=True))
    client = ClientConnection(client_config())
    client.start()
    hello1 = client.data_to_send()
    if reply == "tls2":
        retry = gate.receive(hello1, SERVER, NOW)
        if type(retry) is not Reply:
            raise SystemExit("ClientHello1 was not answered")
        client.receive_data(retry.data, NOW)
        hellos = [client.data_to_send()] * total
        peers = [SERVER] * total
    else:
        template = bytearray(hello1)
        hellos = []
        for i in range(total):
            template[TLS_RANDOM_AT : TLS_RANDOM_AT + 4] = i.to_bytes(4, "big")
            hellos.append(bytes(template))
        peers = [("10.0.0.1", 1024 + i) for i in range(total)]
    answer = StreamAdmit if reply == "tls2" else Reply
    receive = gate.receive
    for hello, peer in zip(hellos, peers, strict=True):
        if type(receive(hello, peer, NOW)) is not answer:
            raise SystemExit(f"a ClientHello was not answered with {answer.__name__}")
    print(f"{count} of {total} ClientHellos judged after the warm-up: {reply}")


def client_hello2(gate: Gate) -> bytes:
    """Our DTLS 1.3 client's ClientHello2, after ``gate``'s HelloRetryRequest to its
    ClientHello1 (the client's address is the peer both times: the cookie binds it)."""
    client = Dtls13ClientConnection(client_config(), SERVER)
    client.connect(NOW)
    ((hello1, _),) = client.datagrams_to_send()
    retry = gate.judge(hello1, SERVER, NOW)
    if type(retry) is not bytes:
        raise SystemExit("ClientHello1 was not answered")
    client.receive(retry, SERVER, NOW)
    ((hello2, _),) = client.datagrams_to_send()
    return hello2


if __name__ == "__main__":
    main()
