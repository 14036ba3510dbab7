"""``dtlsgate serve`` and ``dtlsgate connect`` for DTLS 1.2 (an adapter: sockets, clocks,
files and processes live here, the protocol does not).

``serve`` is an echo server behind the stateless gate, on asyncio (uvloop when installed).
Without ``--cert`` (and without ``--psk``) it makes a self-signed certificate on the first run
and keeps it in the per-user cache directory (``$XDG_CACHE_HOME/dtlsgate``, by default
``~/.cache/dtlsgate``). ``--workers N`` runs N processes on one port (SO_REUSEPORT) that share
one cookie master key, so each verifies the others' cookies.

``connect HOST:PORT`` sends each line of its standard input as one record, prints what
comes back, and exits when its input ended and the answers stopped coming.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
from pathlib import Path

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.errors import DtlsgateError, UsageError
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.io import aio

# After its input ended, `connect` waits this long for the last answers (seconds without
# data), and never longer than CONNECT_MAX_LINGER in all.
CONNECT_LINGER = 1.0
CONNECT_MAX_LINGER = 5.0


def add_dtls_arguments(parser: argparse.ArgumentParser, *, server: bool) -> None:
    """The DTLS options (``--cert``, ``--key``, ``--cafile`` ... come from the shared set)."""
    parser.add_argument(
        "--psk", action="append", default=[], metavar="IDENTITY:HEX", help="pre-shared key"
    )
    parser.add_argument("--mtu", type=int, default=1200, help="path MTU for handshake flights")
    # openssl's flag names: pin one version (both are spoken by default).
    versions = parser.add_mutually_exclusive_group()
    versions.add_argument(
        "--dtls1_2",
        action="store_const",
        const=(0xFEFD,),
        dest="dtls_versions",
        help="DTLS 1.2 only",
    )
    versions.add_argument(
        "--dtls1_3",
        action="store_const",
        const=(0xFEFC,),
        dest="dtls_versions",
        help="DTLS 1.3 only",
    )
    if server:
        parser.add_argument("--workers", type=int, default=1, help="processes on one port")


def parse_psk(text: str) -> tuple[bytes, bytes]:
    identity, sep, key = text.rpartition(":")
    try:
        value = bytes.fromhex(key)
    except ValueError:
        value = b""
    if not sep or not identity or not value:
        raise UsageError(f"--psk wants IDENTITY:HEX, not {text!r}")
    return identity.encode(), value


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dtlsgate"


def self_signed_files() -> tuple[Path, Path]:
    """The cached self-signed certificate and key, made on first use (key mode 0600)."""
    directory = cache_dir()
    cert, key = directory / "self-signed-cert.pem", directory / "self-signed-key.pem"
    if not (cert.is_file() and key.is_file()):
        directory.mkdir(parents=True, exist_ok=True)
        cert_pem, key_pem = make_self_signed("localhost", days=365)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        cert.write_bytes(cert_pem)
    return cert, key


def server_config(args: argparse.Namespace, master_key: bytes) -> ServerConfig:
    psk = dict(parse_psk(p) for p in args.psk)
    kwargs: dict[str, object] = {}
    if args.cert or not psk:
        if args.cert:
            cert, key = Path(args.cert), Path(args.key or args.cert)
        else:
            cert, key = self_signed_files()
        identity = load_identity(cert, key)
        kwargs["certificate_chain"] = list(identity.chain)
        kwargs["private_key"] = identity.private_key
    return ServerConfig(
        cookie_jar=CookieJar(master_key),
        psk=psk,
        alpn_protocols=tuple(a.encode() for a in args.alpn),
        mtu=args.mtu,
        dtls_versions=args.dtls_versions or (0xFEFC, 0xFEFD),
        **kwargs,  # type: ignore[arg-type]
    )


async def _echo(stream: aio.DtlsStream) -> None:
    while data := await stream.recv():
        stream.send(data)


async def _serve_forever(args: argparse.Namespace, master_key: bytes, announce: bool) -> None:
    config = server_config(args, master_key)
    server = await aio.serve(_echo, args.host, args.port, config, reuse_port=args.workers > 1)
    if announce:
        host, port = server.address
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        print(f"serving DTLS 1.2 on {shown}", file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await server.wait_closed()


def _worker(args: argparse.Namespace, master_key: bytes) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        aio.run(_serve_forever(args, master_key, announce=False))


def serve(args: argparse.Namespace) -> int:
    master_key = bytes.fromhex(args.master_key) if args.master_key else os.urandom(32)
    if args.workers > 1:
        if args.port == 0:
            raise UsageError("--workers needs a fixed --port")
        context = multiprocessing.get_context("fork")
        workers = [
            context.Process(target=_worker, args=(args, master_key), daemon=True)
            for _ in range(args.workers - 1)
        ]
        for w in workers:
            w.start()
    try:
        aio.run(_serve_forever(args, master_key, announce=True))
    except KeyboardInterrupt:
        return 0
    return 0


def client_config(args: argparse.Namespace, host: str) -> ClientConfig:
    psk_identity, psk = parse_psk(args.psk[0]) if args.psk else (None, None)
    return ClientConfig(
        server_name=args.servername or host,
        cafile=args.cafile,
        insecure=args.insecure,
        psk=psk,
        psk_identity=psk_identity,
        alpn_protocols=tuple(a.encode() for a in args.alpn),
        mtu=args.mtu,
        dtls_versions=args.dtls_versions or (0xFEFC, 0xFEFD),
    )


async def _connect(args: argparse.Namespace) -> int:
    host, sep, port = args.target.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"connect wants HOST:PORT, not {args.target!r}")
    host = host.strip("[]")
    stream = await aio.connect(host, int(port), client_config(args, host))
    loop = asyncio.get_running_loop()
    out = sys.stdout.buffer

    last_data = [loop.time()]

    async def printer() -> None:
        while data := await stream.recv():
            last_data[0] = loop.time()
            out.write(data)
            out.flush()

    printing = asyncio.create_task(printer())
    try:
        while line := await loop.run_in_executor(None, sys.stdin.buffer.readline):
            stream.send(line)
        # Input ended: wait for the answers until CONNECT_LINGER passes without any.
        end = loop.time() + CONNECT_MAX_LINGER
        while loop.time() < end and not printing.done():
            if loop.time() - last_data[0] >= CONNECT_LINGER:
                break
            await asyncio.sleep(0.05)
    finally:
        stream.close()
        printing.cancel()
    return 0


def connect(args: argparse.Namespace) -> int:
    try:
        return aio.run(_connect(args))
    except (DtlsgateError, OSError, TimeoutError) as exc:
        print(f"dtlsgate: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    try:
        return serve(args) if args.command == "serve" else connect(args)
    except UsageError as exc:
        print(f"dtlsgate: {exc}", file=sys.stderr)
        return 2


__all__ = ["add_dtls_arguments", "run"]
