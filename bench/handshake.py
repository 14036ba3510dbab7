"""Full DTLS handshakes per second: our DTLS 1.2 server against a pyOpenSSL DTLS server,
and our DTLS 1.3 server against both.

Both servers are driven the same way, in-process with no sockets: pyOpenSSL DTLS clients
(memory BIOs, ECDHE-ECDSA P-256, AES-128-GCM, extended master secret) handshake with each
server in turn, cookie exchange included (ours: the gate, then a connection from its
Admit; pyOpenSSL: ``DTLSv1_listen`` with cookie callbacks computing the same HMAC as our
cookie jar, then ``do_handshake``). Only the server's calls are timed. Rounds alternate the
two servers so machine noise hits both alike; the figure is the median of per-round ratios.

``--in-flight K`` (4 by default, as many as bench/handshake_udp.py's clients): K handshakes
run in lockstep. Each step gives every server its client's datagrams, one server after
another, then every client its answer; so the server meets K handshakes' datagrams back to
back, as a server under load reads them from its socket. With K = 1 the whole of a
pyOpenSSL client's step (its OpenSSL work and its Python) runs on the same core between
every two server calls, and evicts what the server had in the caches: an interpreted
server, whose working set (the interpreter's code and data, the bytecode, the objects) is
larger than a C server's, loses more to that (bench/RESULTS.md, lead20: the same
instructions, more cache misses). Over UDP (bench/handshake_udp.py) the clients run in
another process on the other core and never come between the server's calls. With K > 1
the same rounds also measure K = 1 and print its ratio: the figure this bench gave before
session 20.

DTLS 1.3 (RFC 9147): pyOpenSSL has no DTLS 1.3, so our DTLS 1.3 clients drive our DTLS 1.3
server in memory, the same shape, K in flight: the gate's stateless HelloRetryRequest, then
a connection from its Dtls13Admit (ECDHE P-256, ECDSA P-256 certificate,
TLS_AES_128_GCM_SHA256, ACKs); again only the server's calls are timed, in the same rounds.

With ``--group x25519`` both servers' ECDHE group is X25519 instead of P-256 (ours by its
config; pyOpenSSL's by OpenSSL's default group order, X25519 first, since pyOpenSSL's
``set_tmp_ecdh`` takes only the named curves), and the first handshakes of each server are
checked: their ServerKeyExchange must name X25519. Issue 14's in-memory row is the default,
P-256; X25519 is for comparison (cryptography's P-256 keys cost exports that pyOpenSSL's
server does not pay: RESULTS, ecdhe13).

Usage: python bench/handshake.py [--count N] [--rounds R] [--group secp256r1 | x25519]
                                 [--in-flight K]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

from OpenSSL import SSL, crypto

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsServerConnection
from dtlsgate.connection.datagram13 import Dtls13ClientConnection, Dtls13ServerConnection
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Admit, Dtls13Admit, Gate, GateResult, Reply
from dtlsgate.wire.enums import CipherSuite, ContentType, HandshakeType, NamedGroup
from dtlsgate.wire.handshake import DTLS_HANDSHAKE_HEADER_LENGTH, decode_dtls_handshake_fragments
from dtlsgate.wire.record import split_dtls_records

PEER = ("127.0.0.1", 40000)
SERVER_ADDRESS = ("127.0.0.1", 4433)
# Handshakes in flight by default: as many as bench/handshake_udp.py's clients (--clients).
IN_FLIGHT = 4
MASTER_KEY = bytes(range(32))
CIPHER = b"ECDHE-ECDSA-AES128-GCM-SHA256"
CERT_PEM, KEY_PEM = make_self_signed("localhost", "ecdsa-p256")


def read_all(conn: SSL.Connection) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(conn.bio_read(65535))
        except SSL.WantReadError:
            return out


def client_context() -> SSL.Context:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_cipher_list(CIPHER)
    ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    return ctx


class PyOpenSSLClient:
    def __init__(self, ctx: SSL.Context) -> None:
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_connect_state()

    def step(self, incoming: list[bytes]) -> list[bytes]:
        for d in incoming:
            self.conn.bio_write(d)
        with contextlib.suppress(SSL.WantReadError):
            self.conn.do_handshake()
        return read_all(self.conn)


def our_config(group: NamedGroup = NamedGroup.secp256r1) -> ServerConfig:
    """Our server's: P-256 unless ``group`` (the ECDHE group, bench/handshake_callgrind.py
    --group)."""
    identity = load_identity(CERT_PEM, KEY_PEM)
    return ServerConfig(
        cookie_jar=CookieJar(MASTER_KEY),
        certificate_chain=list(identity.chain),
        private_key=identity.private_key,
        groups=(group,),
    )


ServerConnection = DtlsServerConnection | Dtls13ServerConnection


class OurServer:
    """The gate, then a DtlsServerConnection from its Admit."""

    def __init__(self, config: ServerConfig, gate: Gate) -> None:
        self.config, self.gate = config, gate
        self.conn: ServerConnection | None = None

    def feed(self, datagrams: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        now = time.time()
        for d in datagrams:
            if self.conn is None:
                result = self.gate.receive(d, PEER, now)
                if type(result) is Reply:
                    out.append(result.data)
                else:
                    self.conn = self.admitted(result)
                    if self.conn is not None:
                        self.conn.start(now)
            else:
                self.conn.receive(d, PEER, now)
        if self.conn is not None:
            out += [d for d, _ in self.conn.datagrams_to_send()]
        return out

    def admitted(self, result: GateResult) -> ServerConnection | None:
        """The connection for the gate's ``result`` when it admits, else None."""
        if type(result) is not Admit:
            return None
        return DtlsServerConnection(result, self.config, self.gate.dtls12_context)

    @property
    def done(self) -> bool:
        return self.conn is not None and self.conn.handshake_complete


def pyopenssl_server_context(group: NamedGroup = NamedGroup.secp256r1) -> SSL.Context:
    """pyOpenSSL's server: P-256, or with X25519 OpenSSL's default group order (X25519 first;
    ``set_tmp_ecdh`` names only curves of the EC family)."""
    jar = CookieJar(MASTER_KEY)
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(crypto.load_certificate(crypto.FILETYPE_PEM, CERT_PEM))
    ctx.use_privatekey(crypto.load_privatekey(crypto.FILETYPE_PEM, KEY_PEM))
    if group is NamedGroup.secp256r1:
        ctx.set_tmp_ecdh(crypto.get_elliptic_curve("prime256v1"))
    ctx.set_cipher_list(CIPHER)
    ctx.set_cookie_generate_callback(lambda _c: jar.mint(PEER, time.time()))
    ctx.set_cookie_verify_callback(lambda _c, k: jar.verify(PEER, time.time(), k) is not None)
    return ctx


class PyOpenSSLServer:
    """``DTLSv1_listen`` on a memory BIO until a cookie verifies, then ``do_handshake``."""

    def __init__(self, ctx: SSL.Context) -> None:
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_accept_state()
        self.listening = True
        self.done = False

    def feed(self, datagrams: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for d in datagrams:
            self.conn.bio_write(d)
            if self.listening:
                try:
                    self.conn.DTLSv1_listen()
                    self.listening = False
                except SSL.WantReadError:
                    out += read_all(self.conn)
                    continue
            try:
                self.conn.do_handshake()
                self.done = True
            except SSL.WantReadError:
                pass
        return out + read_all(self.conn)


def server_key_exchange_group(datagrams: list[bytes]) -> int | None:
    """The named group of the ServerKeyExchange in a server's plaintext DTLS 1.2 flight
    (RFC 8422 ECParameters: curve_type named_curve (3), then the group), or None."""
    for datagram in datagrams:
        for record in split_dtls_records(datagram):
            if record.content_type != ContentType.HANDSHAKE or record.epoch != 0:
                continue
            for header, fragment in decode_dtls_handshake_fragments(record.fragment):
                body = fragment[DTLS_HANDSHAKE_HEADER_LENGTH:]
                if header.msg_type == HandshakeType.SERVER_KEY_EXCHANGE and body[:1] == b"\x03":
                    return int.from_bytes(body[1:3])
    return None


Pair = tuple[OurServer | PyOpenSSLServer, PyOpenSSLClient]


def handshakes(pairs: list[Pair], expect_group: NamedGroup | None = None) -> float:
    """Run the handshakes of ``pairs`` (each a server and its client) in lockstep; return the
    seconds spent inside the servers. Each step gives every server still handshaking its
    client's datagrams, one server after another, then every client its server's answer: a
    server with ``len(pairs)`` handshakes in flight meets their datagrams back to back, as
    it reads them from its socket under load. With ``expect_group``, every server's
    ServerKeyExchange must name that group."""
    to_server = [client.step([]) for _, client in pairs]
    seen_group: list[int | None] = [None] * len(pairs)
    live = list(range(len(pairs)))
    spent = 0.0
    for _ in range(20):
        t = time.perf_counter()
        to_client = [pairs[i][0].feed(to_server[i]) for i in live]
        spent += time.perf_counter() - t
        still = []
        for i, answer in zip(live, to_client, strict=True):
            server, client = pairs[i]
            if expect_group is not None and seen_group[i] is None:
                seen_group[i] = server_key_exchange_group(answer)
            to_server[i] = client.step(answer)
            if not server.done or to_server[i]:
                still.append(i)
            elif expect_group is not None and seen_group[i] != expect_group:
                raise RuntimeError(f"the server chose group {seen_group[i]}, not {expect_group}")
        live = still
        if not live:
            return spent
    raise RuntimeError("handshake did not complete")


def handshake(
    server: OurServer | PyOpenSSLServer,
    client: PyOpenSSLClient,
    expect_group: NamedGroup | None = None,
) -> float:
    """Run one handshake alone; return the seconds spent inside the server. With
    ``expect_group``, the server's ServerKeyExchange must name that group."""
    return handshakes([(server, client)], expect_group)


class OurServer13(OurServer):
    """The gate's stateless HelloRetryRequest, then a Dtls13ServerConnection from its
    Dtls13Admit on the gate's prepared context."""

    def admitted(self, result: GateResult) -> ServerConnection | None:
        if type(result) is not Dtls13Admit:
            return None
        return Dtls13ServerConnection.from_admit(
            result, self.config, context=self.gate.dtls13_context
        )


def client13_config(group: NamedGroup = NamedGroup.secp256r1) -> ClientConfig:
    """Our DTLS 1.3 client's: ECDHE P-256 (or ``group``), TLS_AES_128_GCM_SHA256, no
    verification."""
    return ClientConfig(
        insecure=True,
        dtls_versions=(0xFEFC,),
        groups=(group,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
    )


def handshakes13(servers: list[OurServer13], client_config: ClientConfig) -> float:
    """DTLS 1.3 handshakes, our client and our server, one client per server, in lockstep as
    in ``handshakes``; the seconds inside the servers."""
    now = time.time()
    clients = [Dtls13ClientConnection(client_config, SERVER_ADDRESS) for _ in servers]
    for client in clients:
        client.connect(now)
    live = list(range(len(servers)))
    spent = 0.0
    for _ in range(20):
        to_server = [[d for d, _ in clients[i].datagrams_to_send()] for i in live]
        t = time.perf_counter()
        to_client = [
            servers[i].feed(datagrams) for i, datagrams in zip(live, to_server, strict=True)
        ]
        spent += time.perf_counter() - t
        still = []
        for i, sent, answer in zip(live, to_server, to_client, strict=True):
            for d in answer:
                clients[i].receive(d, SERVER_ADDRESS, now)
            if not servers[i].done or sent or answer:
                still.append(i)
        live = still
        if not live:
            return spent
    raise RuntimeError("DTLS 1.3 handshake did not complete")


def handshake13(server: OurServer13, client_config: ClientConfig) -> float:
    """One DTLS 1.3 handshake alone; the seconds inside the server."""
    return handshakes13([server], client_config)


def in_batches(count: int, in_flight: int) -> list[int]:
    """``count`` handshakes as batch sizes of ``in_flight`` (the last one smaller)."""
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    return [min(in_flight, count - done) for done in range(0, count, in_flight)]


def rate13(
    config: ServerConfig,
    gate: Gate,
    count: int,
    group: NamedGroup = NamedGroup.secp256r1,
    in_flight: int = 1,
) -> float:
    """DTLS 1.3 handshakes per second inside the server, ``in_flight`` at a time."""
    client_config = client13_config(group)
    spent = sum(
        handshakes13([OurServer13(config, gate) for _ in range(size)], client_config)
        for size in in_batches(count, in_flight)
    )
    return count / spent


def rate(
    make: Callable[[], OurServer | PyOpenSSLServer],
    cctx: SSL.Context,
    count: int,
    group: NamedGroup = NamedGroup.secp256r1,
    in_flight: int = 1,
) -> float:
    """Handshakes per second inside the server, ``in_flight`` at a time; the first batch's
    group is checked."""
    spent, check = 0.0, group
    for size in in_batches(count, in_flight):
        spent += handshakes([(make(), PyOpenSSLClient(cctx)) for _ in range(size)], check)
        check = None
    return count / spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--group", choices=["secp256r1", "x25519"], default="secp256r1")
    parser.add_argument(
        "--in-flight", type=int, default=IN_FLIGHT, help="handshakes in lockstep (see above)"
    )
    args = parser.parse_args()
    if args.in_flight < 1:
        parser.error("--in-flight must be at least 1")
    group = NamedGroup[args.group]
    name = {NamedGroup.secp256r1: "P-256", NamedGroup.x25519: "X25519"}[group]
    cctx, sctx = client_context(), pyopenssl_server_context(group)
    config = our_config(group)
    gate = Gate(config)
    flights = [args.in_flight] if args.in_flight == 1 else [args.in_flight, 1]
    ours: dict[int, list[float]] = {k: [] for k in flights}
    theirs: dict[int, list[float]] = {k: [] for k in flights}
    ours13: list[float] = []
    for _ in range(args.rounds):
        for k in flights:
            ours[k].append(rate(lambda: OurServer(config, gate), cctx, args.count, group, k))
            theirs[k].append(rate(lambda: PyOpenSSLServer(sctx), cctx, args.count, group, k))
        ours13.append(rate13(config, gate, args.count, group, args.in_flight))

    def ratio(a: list[float], b: list[float]) -> float:
        return statistics.median(x / y for x, y in zip(a, b, strict=True))

    k = args.in_flight
    print(f"DTLS 1.2 full handshakes, server side only, {args.count} x {args.rounds} rounds")
    print(f"(ECDHE {name}, ECDSA P-256, AES-128-GCM, EMS, cookie exchange; pyOpenSSL clients")
    print(f" in memory, {k} in flight)")
    print(f"  dtlsgate   median {statistics.median(ours[k]):8.0f}/s  best {max(ours[k]):8.0f}/s")
    print(
        f"  pyopenssl  median {statistics.median(theirs[k]):8.0f}/s  best {max(theirs[k]):8.0f}/s"
    )
    print(f"  dtlsgate / pyopenssl = {ratio(ours[k], theirs[k]):.2f} (median of round ratios)")
    if k != 1:
        print(
            "  one at a time (a client's whole step between the server's calls), same rounds:"
            f" {statistics.median(ours[1]):.0f} vs {statistics.median(theirs[1]):.0f}/s,"
            f" dtlsgate / pyopenssl = {ratio(ours[1], theirs[1]):.2f}"
        )
    print(f"DTLS 1.3 full handshakes, server side only (stateless HRR, ECDHE {name}, AES-128-GCM,")
    print(f"ECDSA P-256 certificate; our DTLS 1.3 clients in memory, {k} in flight), same rounds")
    print(f"  dtlsgate 1.3  median {statistics.median(ours13):8.0f}/s  best {max(ours13):8.0f}/s")
    print(f"  dtlsgate 1.3 / dtlsgate 1.2 = {ratio(ours13, ours[k]):.2f}")
    print(f"  dtlsgate 1.3 / pyopenssl 1.2 = {ratio(ours13, theirs[k]):.2f}")


if __name__ == "__main__":
    main()
