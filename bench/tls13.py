"""TLS 1.3 server handshakes per second: dtlsgate vs Python's ``ssl`` module, and the cost of
the stateless HelloRetryRequest round trip. One run, ratios printed (machines are noisy).

Both servers are driven the same way, in memory, by the same client (dtlsgate's, X25519,
ECDSA P-256 certificate, TLS_AES_128_GCM_SHA256): only the server's own processing of the
ClientHello and of the client's Finished is timed. ``ssl`` runs an ``SSLObject`` over
``MemoryBIO``s (OpenSSL underneath). The stateless figure times the gate answering
ClientHello1 with an HRR, admitting ClientHello2 and the server connection continuing from
the admit, against the plain server handling one ClientHello.

    .venv/bin/python bench/tls13.py [--handshakes N]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ssl
import tempfile
import time
from pathlib import Path

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.results import StreamAdmit
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.handshake.tls13.client import ClientContext
from dtlsgate.handshake.tls13.server import ServerContext
from dtlsgate.wire.enums import CipherSuite, NamedGroup

PEER = ("127.0.0.1", 1)


def setup() -> tuple[ServerConfig, ClientConfig, bytes, bytes]:
    cert, key = make_self_signed("localhost", "ecdsa-p256")
    ident = load_identity(cert, key)
    server = ServerConfig(
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        groups=(NamedGroup.x25519,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        cookie_jar=CookieJar(bytes(32)),
        # Python's ssl below sends no tickets either (num_tickets = 0).
        session_tickets=0,
    )
    # X25519 only: the default client would also send an X25519MLKEM768 share (see
    # bench/tls13_groups.py for that group).
    client = ClientConfig(
        server_name="localhost", cafile=None, insecure=True, groups=(NamedGroup.x25519,)
    )
    return server, client, cert, key


def bench_ours(server_cfg: ServerConfig, cctx: ClientContext, n: int) -> float:
    sctx = ServerContext(server_cfg)
    spent = 0.0
    for _ in range(n):
        client = ClientConnection(cctx.config, context=cctx)
        client.start()
        server = ServerConnection(server_cfg, context=sctx)
        ch = client.data_to_send()
        t = time.perf_counter()
        server.receive_data(ch, 0.0)
        flight = server.data_to_send()
        spent += time.perf_counter() - t
        client.receive_data(flight, time.time())
        fin = client.data_to_send()
        t = time.perf_counter()
        server.receive_data(fin, 0.0)
        spent += time.perf_counter() - t
        assert server.handshake_complete
    return n / spent


def bench_ssl(
    cert: bytes, key: bytes, cctx: ClientContext, server_cfg: ServerConfig, n: int
) -> float:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "c.pem").write_bytes(cert)
        (Path(d) / "k.pem").write_bytes(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(str(Path(d) / "c.pem"), str(Path(d) / "k.pem"))
    ctx.num_tickets = 0
    spent = 0.0
    for _ in range(n):
        client = ClientConnection(cctx.config, context=cctx)
        client.start()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_side=True)
        ch = client.data_to_send()
        t = time.perf_counter()
        incoming.write(ch)
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        flight = outgoing.read()
        spent += time.perf_counter() - t
        client.receive_data(flight, time.time())
        fin = client.data_to_send()
        t = time.perf_counter()
        incoming.write(fin)
        obj.do_handshake()
        spent += time.perf_counter() - t
    return n / spent


def bench_stateless(server_cfg: ServerConfig, cctx: ClientContext, n: int) -> tuple[float, float]:
    """(seconds per plain ClientHello, seconds per stateless HRR + admit + continue)."""
    sctx = ServerContext(server_cfg)
    gate = StatelessGate(server_cfg, context=sctx)
    plain = stateless = 0.0
    for _ in range(n):
        client = ClientConnection(cctx.config, context=cctx)
        client.start()
        ch1 = client.data_to_send()
        server = ServerConnection(server_cfg, context=sctx)
        t = time.perf_counter()
        server.receive_data(ch1, 0.0)
        server.data_to_send()
        plain += time.perf_counter() - t
        t = time.perf_counter()
        reply = gate.receive(ch1, PEER, time.time())
        stateless += time.perf_counter() - t
        client.receive_data(reply.data, time.time())  # type: ignore[union-attr]
        ch2 = client.data_to_send()
        t = time.perf_counter()
        admit = gate.receive(ch2, PEER, time.time())
        assert isinstance(admit, StreamAdmit)
        conn = ServerConnection.from_admit(server_cfg, admit, 0.0, context=sctx)
        conn.data_to_send()
        stateless += time.perf_counter() - t
    return plain / n, stateless / n


def timed_handshake(
    server_cfg: ServerConfig, sctx: ServerContext, client_cfg: ClientConfig
) -> tuple[float, ClientConnection]:
    """Server seconds for one handshake driven by a client with ``client_cfg``."""
    client = ClientConnection(client_cfg)
    client.start(time.time())
    server = ServerConnection(server_cfg, context=sctx)
    spent = 0.0
    for _ in range(3):
        data = client.data_to_send()
        if not data:
            break
        t = time.perf_counter()
        server.receive_data(data, time.time())
        out = server.data_to_send()
        spent += time.perf_counter() - t
        client.receive_data(out, time.time())
    assert server.handshake_complete
    return spent, client


def bench_resumption(
    server_cfg: ServerConfig, client_cfg: ClientConfig, n: int
) -> tuple[float, float]:
    """(server seconds per full handshake issuing a ticket, per resumed handshake)."""
    cfg = dataclasses.replace(server_cfg, session_tickets=1)
    sctx = ServerContext(cfg)
    full = resumed = 0.0
    for _ in range(n):
        spent, client = timed_handshake(cfg, sctx, client_cfg)
        full += spent
        ticket = next(e.ticket for e in iter(client.next_event, None) if hasattr(e, "ticket"))
        spent, client = timed_handshake(
            cfg, sctx, dataclasses.replace(client_cfg, session_ticket=ticket)
        )
        assert client.info is not None and client.info.resumed
        resumed += spent
    return full / n, resumed / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handshakes", type=int, default=300)
    n = parser.parse_args().handshakes
    server_cfg, client_cfg, cert, key = setup()
    cctx = ClientContext(client_cfg)
    ours = bench_ours(server_cfg, cctx, n)
    theirs = bench_ssl(cert, key, cctx, server_cfg, n)
    plain, stateless = bench_stateless(server_cfg, cctx, n)
    full, resumed = bench_resumption(server_cfg, client_cfg, n)
    print(f"TLS 1.3 server handshakes, X25519 + ECDSA P-256, {n} each (server time only)")
    print(f"  dtlsgate server      {ours:8.0f} handshakes/s")
    print(f"  Python ssl (OpenSSL) {theirs:8.0f} handshakes/s")
    print(f"  ratio dtlsgate/ssl   {ours / theirs:8.2f}")
    print("Stateless HelloRetryRequest (server time for the ClientHello part of a handshake)")
    print(f"  plain ClientHello            {plain * 1e6:8.0f} us")
    print(f"  HRR + admit + continue       {stateless * 1e6:8.0f} us")
    print(f"  ratio stateless/plain        {stateless / plain:8.2f}")
    print("PSK resumption, psk_dhe_ke (server time for a whole handshake)")
    print(f"  full handshake + ticket      {full * 1e6:8.0f} us")
    print(f"  resumed with the ticket      {resumed * 1e6:8.0f} us")
    print(f"  ratio resumed/full           {resumed / full:8.2f}")


if __name__ == "__main__":
    main()
