"""TLS 1.3 server handshakes per second with X25519MLKEM768 against X25519: dtlsgate's server,
and pyOpenSSL's (OpenSSL 4 from ``cryptography``'s wheel) for the same two groups. One run,
rounds interleaved, ratios printed (machines are noisy).

As in bench/tls13.py, every server is driven in memory by dtlsgate's client (ECDSA P-256
certificate, TLS_AES_128_GCM_SHA256, no tickets, the client offering only the group under
test) and only the server's own processing of the ClientHello and of the client's Finished
is timed. pyOpenSSL runs an ``SSL.Connection`` over memory BIOs. pyOpenSSL has no call to
choose groups: its context's list is set with ``SSL_CTX_set1_groups_list`` (spelled
``SSL_CTX_set1_curves_list`` in the bindings) on the ``SSL_CTX`` pointer it wraps.

    .venv/bin/python bench/tls13_groups.py [--handshakes N] [--rounds R]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.handshake.tls13.client import ClientContext
from dtlsgate.handshake.tls13.server import ServerContext
from dtlsgate.wire.enums import CipherSuite, NamedGroup

GROUPS = {"X25519MLKEM768": NamedGroup.X25519MLKEM768, "X25519": NamedGroup.x25519}


def server_config(cert: bytes, key: bytes, group: NamedGroup) -> ServerConfig:
    ident = load_identity(cert, key)
    return ServerConfig(
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        groups=(group,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        session_tickets=0,
    )


def client_context(group: NamedGroup) -> ClientContext:
    return ClientContext(ClientConfig(server_name="localhost", insecure=True, groups=(group,)))


def ours(cert: bytes, key: bytes, group: NamedGroup) -> Callable[[int], float]:
    config = server_config(cert, key, group)
    sctx = ServerContext(config)
    cctx = client_context(group)

    def run(n: int) -> float:
        spent = 0.0
        for _ in range(n):
            client = ClientConnection(cctx.config, context=cctx)
            client.start()
            server = ServerConnection(config, context=sctx)
            hello = client.data_to_send()
            t = time.perf_counter()
            server.receive_data(hello, 0.0)
            flight = server.data_to_send()
            spent += time.perf_counter() - t
            client.receive_data(flight, time.time())
            finished = client.data_to_send()
            t = time.perf_counter()
            server.receive_data(finished, 0.0)
            spent += time.perf_counter() - t
            assert server.info is not None and server.info.group is group
        return n / spent

    return run


def pyopenssl(cert: bytes, key: bytes, group: NamedGroup, name: str) -> Callable[[int], float]:
    from cryptography import x509
    from cryptography.hazmat.bindings.openssl.binding import Binding
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.use_certificate(x509.load_pem_x509_certificate(cert))
    ctx.use_privatekey(load_pem_private_key(key, None))  # type: ignore[arg-type]
    ctx.set_tls13_ciphersuites(b"TLS_AES_128_GCM_SHA256")
    ctx.set_options(SSL.OP_NO_TICKET)
    lib: Any = Binding().lib
    context_pointer = ctx._context  # type: ignore[attr-defined]
    if lib.SSL_CTX_set1_curves_list(context_pointer, name.encode()) != 1:
        raise SystemExit(f"pyOpenSSL's OpenSSL refuses the group list {name}")
    cctx = client_context(group)

    def run(n: int) -> float:
        spent = 0.0
        for _ in range(n):
            client = ClientConnection(cctx.config, context=cctx)
            client.start()
            conn = SSL.Connection(ctx, None)
            conn.set_accept_state()
            hello = client.data_to_send()
            t = time.perf_counter()
            conn.bio_write(hello)
            with contextlib.suppress(SSL.WantReadError):
                conn.do_handshake()
            flight = conn.bio_read(1 << 16)
            spent += time.perf_counter() - t
            client.receive_data(flight, time.time())
            finished = client.data_to_send()
            t = time.perf_counter()
            conn.bio_write(finished)
            conn.do_handshake()
            spent += time.perf_counter() - t
            assert (conn.get_group_name() or "").lower() == name.lower()
        return n / spent

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handshakes", type=int, default=100, help="per round and contender")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    cert, key = make_self_signed("localhost", "ecdsa-p256")
    contenders = {}
    for name, group in GROUPS.items():
        contenders[("dtlsgate", name)] = ours(cert, key, group)
        contenders[("pyOpenSSL", name)] = pyopenssl(cert, key, group, name)
    rates: dict[tuple[str, str], list[float]] = {k: [] for k in contenders}
    ratios: dict[str, list[float]] = {"dtlsgate": [], "pyOpenSSL": []}
    for run in contenders.values():
        run(10)  # warm up
    for _ in range(args.rounds):
        got = {k: run(args.handshakes) for k, run in contenders.items()}
        for k, rate in got.items():
            rates[k].append(rate)
        for who in ratios:
            ratios[who].append(got[(who, "X25519MLKEM768")] / got[(who, "X25519")])
    print(
        f"TLS 1.3 server handshakes per second (server time only), ECDSA P-256, "
        f"{args.handshakes} x {args.rounds} rounds; medians"
    )
    for (who, name), values in rates.items():
        print(f"  {who:9} {name:15} {statistics.median(values):8.0f} handshakes/s")
    for who, values in ratios.items():
        print(f"  {who:9} X25519MLKEM768 / X25519 = {statistics.median(values):.2f}")
    for name in GROUPS:
        ours_rate = statistics.median(rates[("dtlsgate", name)])
        theirs = statistics.median(rates[("pyOpenSSL", name)])
        print(f"  dtlsgate / pyOpenSSL with {name}: {ours_rate / theirs:.2f}")


if __name__ == "__main__":
    main()
