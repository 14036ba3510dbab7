"""Full DTLS handshakes per second: our DTLS 1.2 server against a pyOpenSSL DTLS server,
and our DTLS 1.3 server against both.

Both servers are driven the same way, in-process with no sockets: one pyOpenSSL DTLS client
(memory BIOs, ECDHE-ECDSA P-256, AES-128-GCM, extended master secret) handshakes with each
server in turn, cookie exchange included (ours: the gate, then a connection from its
Admit; pyOpenSSL: ``DTLSv1_listen`` with cookie callbacks computing the same HMAC as our
cookie jar, then ``do_handshake``). Only the server's calls are timed. Rounds alternate the
two servers so machine noise hits both alike; the figure is the median of per-round ratios.

DTLS 1.3 (RFC 9147): pyOpenSSL has no DTLS 1.3, so our DTLS 1.3 client drives our DTLS 1.3
server in memory, the same shape: the gate's stateless HelloRetryRequest, then a
connection from its Dtls13Admit (ECDHE P-256, ECDSA P-256 certificate,
TLS_AES_128_GCM_SHA256, ACKs); again only the server's calls are timed, in the same rounds.

With ``--group x25519`` both servers' ECDHE group is X25519 instead of P-256 (ours by its
config; pyOpenSSL's by OpenSSL's default group order, X25519 first, since pyOpenSSL's
``set_tmp_ecdh`` takes only the named curves), and the first handshake of each server is
checked: its ServerKeyExchange must name X25519. Issue 14's in-memory row is the default,
P-256; X25519 is for comparison (cryptography's P-256 keys cost exports that pyOpenSSL's
server does not pay: RESULTS, ecdhe13).

Usage: python bench/handshake.py [--count N] [--rounds R] [--group secp256r1 | x25519]
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


def handshake(
    server: OurServer | PyOpenSSLServer,
    client: PyOpenSSLClient,
    expect_group: NamedGroup | None = None,
) -> float:
    """Run one handshake; return the seconds spent inside the server. With ``expect_group``,
    the server's ServerKeyExchange must name that group."""
    spent = 0.0
    to_server = client.step([])
    seen_group = None
    for _ in range(20):
        t = time.perf_counter()
        to_client = server.feed(to_server)
        spent += time.perf_counter() - t
        if expect_group is not None and seen_group is None:
            seen_group = server_key_exchange_group(to_client)
        to_server = client.step(to_client)
        if server.done and not to_server:
            if expect_group is not None and seen_group != expect_group:
                raise RuntimeError(f"the server chose group {seen_group}, not {expect_group}")
            return spent
    raise RuntimeError("handshake did not complete")


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


def handshake13(server: OurServer13, client_config: ClientConfig) -> float:
    """One DTLS 1.3 handshake, our client and our server; the seconds inside the server."""
    client = Dtls13ClientConnection(client_config, ("127.0.0.1", 4433))
    client.connect(time.time())
    spent = 0.0
    for _ in range(20):
        to_server = [d for d, _ in client.datagrams_to_send()]
        t = time.perf_counter()
        to_client = server.feed(to_server)
        spent += time.perf_counter() - t
        for d in to_client:
            client.receive(d, ("127.0.0.1", 4433), time.time())
        if server.done and not to_client and not to_server:
            return spent
    raise RuntimeError("DTLS 1.3 handshake did not complete")


def rate13(
    config: ServerConfig, gate: Gate, count: int, group: NamedGroup = NamedGroup.secp256r1
) -> float:
    client_config = client13_config(group)
    spent = sum(handshake13(OurServer13(config, gate), client_config) for _ in range(count))
    return count / spent


def rate(
    make: Callable[[], OurServer | PyOpenSSLServer],
    cctx: SSL.Context,
    count: int,
    group: NamedGroup = NamedGroup.secp256r1,
) -> float:
    """Handshakes per second inside the server; the first one's group is checked."""
    spent = handshake(make(), PyOpenSSLClient(cctx), group)
    spent += sum(handshake(make(), PyOpenSSLClient(cctx)) for _ in range(count - 1))
    return count / spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--group", choices=["secp256r1", "x25519"], default="secp256r1")
    args = parser.parse_args()
    group = NamedGroup[args.group]
    name = {NamedGroup.secp256r1: "P-256", NamedGroup.x25519: "X25519"}[group]
    cctx, sctx = client_context(), pyopenssl_server_context(group)
    config = our_config(group)
    gate = Gate(config)
    ours, theirs, ours13 = [], [], []
    for _ in range(args.rounds):
        ours.append(rate(lambda: OurServer(config, gate), cctx, args.count, group))
        theirs.append(rate(lambda: PyOpenSSLServer(sctx), cctx, args.count, group))
        ours13.append(rate13(config, gate, args.count, group))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    ratios13 = [a / b for a, b in zip(ours13, ours, strict=True)]
    ratios13_theirs = [a / b for a, b in zip(ours13, theirs, strict=True)]
    print(f"DTLS 1.2 full handshakes, server side only, {args.count} x {args.rounds} rounds")
    print(f"(ECDHE {name}, ECDSA P-256, AES-128-GCM, EMS, cookie exchange; pyOpenSSL client")
    print(" in memory)")
    print(f"  dtlsgate   median {statistics.median(ours):8.0f}/s  best {max(ours):8.0f}/s")
    print(f"  pyopenssl  median {statistics.median(theirs):8.0f}/s  best {max(theirs):8.0f}/s")
    print(f"  dtlsgate / pyopenssl = {statistics.median(ratios):.2f} (median of round ratios)")
    print(f"DTLS 1.3 full handshakes, server side only (stateless HRR, ECDHE {name}, AES-128-GCM,")
    print("ECDSA P-256 certificate; our DTLS 1.3 client in memory), same rounds")
    print(f"  dtlsgate 1.3  median {statistics.median(ours13):8.0f}/s  best {max(ours13):8.0f}/s")
    print(f"  dtlsgate 1.3 / dtlsgate 1.2 = {statistics.median(ratios13):.2f}")
    print(f"  dtlsgate 1.3 / pyopenssl 1.2 = {statistics.median(ratios13_theirs):.2f}")


if __name__ == "__main__":
    main()
