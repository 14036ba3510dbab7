"""Command line: ``dtlsgate listen`` (and ``python -m dtlsgate listen``).

``listen`` runs the stateless listener and prints one line per admitted ClientHello,
``admitted <host>:<port> cookie=<hex>``, flushed as it happens.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Hashable, Sequence

from dtlsgate.config import ServerConfig
from dtlsgate.io.listener import Listener


def format_peer(peer: Hashable) -> str:
    """``host:port``, with IPv6 hosts in brackets (RFC 3986 §3.2.2)."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``host:port``, IPv4 or IPv6 as the host says."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.bind(address)
    return sock


def cmd_listen(args: argparse.Namespace) -> int:
    sock = bind_udp(args.host, args.port)
    listener = Listener(sock, ServerConfig())
    host, port = sock.getsockname()[:2]
    print(f"listening on {format_peer((host, port))}", file=sys.stderr, flush=True)
    try:
        while True:
            admitted = listener.listen()
            if admitted is None:
                continue
            peer, admit = admitted
            print(f"admitted {format_peer(peer)} cookie={admit.cookie.hex()}", flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        sock.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtlsgate", description="DTLS and TLS 1.3 with a stateless listen"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listen = sub.add_parser("listen", help="run the stateless listener (DTLSv1_listen)")
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=4433)
    listen.set_defaults(func=cmd_listen)
    from dtlsgate.dtls.cli import add_dtls_arguments
    from dtlsgate.tls13.cli import add_tls_arguments

    serve = sub.add_parser("serve", help="run an echo server (DTLS 1.2; --tls: TLS 1.3 over TCP)")
    serve.add_argument("--tls", action="store_true", help="TLS 1.3 over TCP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4433)
    add_tls_arguments(serve, server=True)
    add_dtls_arguments(serve, server=True)
    serve.set_defaults(func=cmd_serve_or_connect)
    connect = sub.add_parser(
        "connect", help="connect to a server (DTLS 1.2; --tls: TLS 1.3 over TCP)"
    )
    connect.add_argument("target", metavar="HOST:PORT")
    connect.add_argument("--tls", action="store_true", help="TLS 1.3 over TCP")
    add_tls_arguments(connect, server=False)
    add_dtls_arguments(connect, server=False)
    connect.set_defaults(func=cmd_serve_or_connect)
    sub.add_parser("coap-server", help="serve CoAP over DTLS (coaps; needs dtlsgate[coap])")
    return parser


def cmd_serve_or_connect(args: argparse.Namespace) -> int:
    if args.tls:
        from dtlsgate.tls13.cli import run

        return run(args)
    from dtlsgate.dtls.cli import run as run_dtls

    return run_dtls(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["coap-server"]:
        from dtlsgate.io.coap_cli import main as coap_server

        return coap_server(argv[1:])
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
