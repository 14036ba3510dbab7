"""Resumed against full DTLS 1.2 handshakes per second, on our server and on pyOpenSSL's, in
one run (issue 15).

The setup of bench/handshake.py (one pyOpenSSL DTLS client on memory BIOs, ECDHE-ECDSA P-256,
AES-128-GCM, extended master secret, the cookie exchange included; only the server's calls
timed), plus the abbreviated handshake (RFC 5246 §7.3): the client offers a session saved
from an earlier full handshake with that server (``set_session``), which both servers resume
from its session ticket (ours: sealed under a key the cookie jar derives, nothing stored;
pyOpenSSL: OpenSSL's own tickets). Each resumed handshake is checked to be abbreviated (the
server sent no Certificate). Rounds alternate the four measurements; figures are medians.

Usage: python bench/resumption.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from handshake import (
    OurServer,
    PyOpenSSLClient,
    PyOpenSSLServer,
    client_context,
    our_config,
    pyopenssl_server_context,
)
from OpenSSL import SSL

from dtlsgate.gate.datagram import Gate
from dtlsgate.wire.record import split_dtls_records

Server = OurServer | PyOpenSSLServer
CERTIFICATE = 11


def handshake(server: Server, client: PyOpenSSLClient) -> tuple[float, bool]:
    """One handshake: the seconds spent in the server, and whether it sent a Certificate."""
    spent, certificate = 0.0, False
    to_server = client.step([])
    for _ in range(20):
        t = time.perf_counter()
        to_client = server.feed(to_server)
        spent += time.perf_counter() - t
        for d in to_client:
            for r in split_dtls_records(d):
                if r.content_type == 22 and r.epoch == 0 and r.fragment[:1] == b"\x0b":
                    certificate = True
        to_server = client.step(to_client)
        if server.done and not to_server:
            return spent, certificate
    raise RuntimeError("handshake did not complete")


def closed(client: PyOpenSSLClient) -> None:
    """Mark the client's connection closed cleanly: OpenSSL marks the session of a connection
    freed without a shutdown not resumable (ssl_clear_bad_session), which would end the
    resumptions after the first."""
    client.conn.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)


def rate(make: Callable[[], Server], cctx: SSL.Context, count: int, resume: bool) -> float:
    session = None
    if resume:
        client = PyOpenSSLClient(cctx)
        handshake(make(), client)
        session = client.conn.get_session()
        closed(client)
    spent = 0.0
    for _ in range(count):
        client = PyOpenSSLClient(cctx)
        if session is not None:
            client.conn.set_session(session)
        seconds, certificate = handshake(make(), client)
        closed(client)
        if certificate == resume:
            raise RuntimeError(f"expected a {'resumed' if resume else 'full'} handshake")
        spent += seconds
    return count / spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    cctx, sctx = client_context(), pyopenssl_server_context()
    config = our_config()
    gate = Gate(config)
    names = ("dtlsgate full", "dtlsgate resumed", "pyopenssl full", "pyopenssl resumed")
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for resume in (False, True):
            kind = "resumed" if resume else "full"
            ours = rate(lambda: OurServer(config, gate), cctx, args.count, resume)
            rates[f"dtlsgate {kind}"].append(ours)
            theirs = rate(lambda: PyOpenSSLServer(sctx), cctx, args.count, resume)
            rates[f"pyopenssl {kind}"].append(theirs)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    print(f"DTLS 1.2 handshakes, server side only, {args.count} x {args.rounds} rounds")
    print("(ECDHE-ECDSA P-256, AES-128-GCM, EMS, cookie exchange; pyOpenSSL client in memory;")
    print(" resumed: the abbreviated handshake from a session ticket)")
    for name in names:
        print(f"  {name:18} median {statistics.median(rates[name]):8.0f}/s")
    print(f"  dtlsgate resumed / full         = {ratio('dtlsgate resumed', 'dtlsgate full'):.2f}")
    print(f"  pyopenssl resumed / full        = {ratio('pyopenssl resumed', 'pyopenssl full'):.2f}")
    print(
        f"  dtlsgate / pyopenssl, resumed   = {ratio('dtlsgate resumed', 'pyopenssl resumed'):.2f}"
    )
    print(f"  dtlsgate / pyopenssl, full      = {ratio('dtlsgate full', 'pyopenssl full'):.2f}")


if __name__ == "__main__":
    main()
