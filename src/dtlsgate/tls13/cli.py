"""``dtlsgate serve --tls`` and ``dtlsgate connect --tls``: TLS 1.3 over TCP from the
command line (an adapter: sockets and clocks live here, the protocol does not).

``serve --tls`` echoes what each client sends (``--www``: answers an HTTP GET with a small
status page, like ``openssl s_server -www``), serving connections concurrently on one
asyncio event loop (`dtlsgate.io.aio_tls`); ``--stateless``
sends every new client through the stateless HelloRetryRequest; ``--master-key`` (64 hex
digits) lets several servers accept each other's cookies. ``connect --tls HOST:PORT`` sends
its standard input and prints what comes back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.errors import AlertReceived, ProtocolError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.handshake.tls13.tickets import ticket_key_from_master
from dtlsgate.io.aio_tls import serve_tls
from dtlsgate.io.blocking_tls import connect

# How long `connect` keeps reading after its input ended, for the answers to arrive.
CONNECT_LINGER = 2.0
# A client that sends nothing for this long is dropped, so idle clients do not pile up.
CLIENT_IDLE_TIMEOUT = 10.0


def add_tls_arguments(parser: argparse.ArgumentParser, *, server: bool) -> None:
    parser.add_argument("--cert", help="PEM certificate chain (server: default self-signed)")
    parser.add_argument("--key", help="PEM private key")
    parser.add_argument("--alpn", action="append", default=[], help="ALPN protocol (repeat)")
    if server:
        parser.add_argument("--stateless", action="store_true", help="HRR with cookie first")
        parser.add_argument("--www", action="store_true", help="answer GET with a status page")
        parser.add_argument("--master-key", help="cookie master key, 64 hex digits")
        parser.add_argument("--max-connections", type=int, default=0, help="0: no limit")
    else:
        parser.add_argument("--cafile", help="trust anchors (PEM)")
        parser.add_argument("--insecure", action="store_true", help="do not verify the server")
        parser.add_argument("--servername", help="name to verify and send (default: host)")
        parser.add_argument("--no-middlebox", action="store_true", help="no compat mode")


def server_config(args: argparse.Namespace) -> ServerConfig:
    if args.cert:
        cert = Path(args.cert).read_bytes()
        key = Path(args.key or args.cert).read_bytes()
    else:
        cert, key = make_self_signed("localhost")
    ident = load_identity(cert, key)
    master = bytes.fromhex(args.master_key) if args.master_key else None
    jar = CookieJar(master) if master else None
    return ServerConfig(
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        stateless=args.stateless,
        cookie_jar=jar,
        # Servers sharing the master key also resume each other's sessions.
        ticket_key=ticket_key_from_master(master) if master else None,
        alpn_protocols=tuple(a.encode() for a in args.alpn),
    )


def www_page(info: HandshakeCompleted) -> bytes:
    body = (
        "<html><body><pre>dtlsgate TLS 1.3\n"
        f"cipher suite: {info.cipher_suite.name}\n"
        f"group: {info.group.name if info.group else '-'}\n"
        f"hello retry: {info.hello_retry}\n"
        f"resumed: {info.resumed}\n</pre></body></html>\n"
    ).encode()
    head = (
        "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, www: bool) -> None:
    """Echo what the client sends, or (``www``) answer one HTTP request; a client idle for
    CLIENT_IDLE_TIMEOUT is dropped."""
    info: HandshakeCompleted = writer.get_extra_info("tls")
    if www:
        request = b""
        while b"\r\n\r\n" not in request and b"\n\n" not in request:
            data = await asyncio.wait_for(reader.read(65536), CLIENT_IDLE_TIMEOUT)
            if not data:
                return
            request += data
        writer.write(www_page(info))
        await writer.drain()
        return
    while data := await asyncio.wait_for(reader.read(65536), CLIENT_IDLE_TIMEOUT):
        writer.write(data)
        await writer.drain()


async def serve_tls_async(args: argparse.Namespace) -> int:
    """Serve connections concurrently on one event loop; with ``--max-connections N``,
    exit once N connections have ended (handshake failures included)."""
    config = server_config(args)
    finished = 0
    all_done = asyncio.Event()

    def connection_ended() -> None:
        nonlocal finished
        finished += 1
        if args.max_connections and finished >= args.max_connections:
            all_done.set()

    def failed(exc: BaseException) -> None:
        print(f"handshake failed: {exc}", file=sys.stderr, flush=True)
        connection_ended()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info: HandshakeCompleted = writer.get_extra_info("tls")
        print(
            f"accepted {info.cipher_suite.name} {info.group.name if info.group else '-'}"
            f" hello_retry={info.hello_retry} resumed={info.resumed}",
            flush=True,
        )
        try:
            await serve_one(reader, writer, args.www)
        except (ProtocolError, AlertReceived, OSError, TimeoutError):
            pass
        finally:
            writer.close()
            connection_ended()

    server = await serve_tls(
        handle, args.host, args.port, config, on_handshake_failure=failed, reuse_address=True
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
    async with server:
        await all_done.wait()
    return 0


def cmd_serve_tls(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(serve_tls_async(args))
    except KeyboardInterrupt:
        return 0


def cmd_connect_tls(args: argparse.Namespace) -> int:
    host, _, port = args.target.rpartition(":")
    host = host.strip("[]")
    config = ClientConfig(
        server_name=args.servername or host,
        cafile=args.cafile,
        insecure=args.insecure,
        alpn_protocols=tuple(a.encode() for a in args.alpn),
        middlebox_compat=not args.no_middlebox,
    )
    try:
        tls = connect(host, int(port), config)
    except (ProtocolError, AlertReceived, OSError) as exc:
        print(f"handshake failed: {exc}", file=sys.stderr, flush=True)
        return 1
    info = tls.info
    assert info is not None
    print(
        f"connected {info.cipher_suite.name} hello_retry={info.hello_retry} resumed={info.resumed}",
        file=sys.stderr,
        flush=True,
    )
    with tls:
        data = sys.stdin.buffer.read()
        if data:
            tls.sendall(data)
        tls.sock.settimeout(CONNECT_LINGER)
        deadline = time.monotonic() + CONNECT_LINGER
        with contextlib.suppress(TimeoutError, OSError):
            while time.monotonic() < deadline and (got := tls.recv()):
                sys.stdout.buffer.write(got)
                sys.stdout.flush()
    return 0


def run(args: Any) -> int:
    """Entry from ``dtlsgate.cli`` for ``serve --tls`` / ``connect --tls``."""
    if args.command == "serve":
        return cmd_serve_tls(args)
    return cmd_connect_tls(args)
