"""The command line, ``dtlsgate`` (and ``python -m dtlsgate``): one parser for every mode.

- ``listen``: the bare stateless listener; one line per admitted ClientHello,
  ``admitted <host>:<port> cookie=<hex>``, flushed as it happens.
- ``serve``: a DTLS 1.2 echo server behind the gate (asyncio, uvloop when installed);
  ``serve --tls``: TLS 1.3 over TCP (echo, or ``--www`` a status page), ``--stateless``
  sends every new client through the HelloRetryRequest cookie first. Without ``--cert``
  (and, for DTLS, without ``--psk``) a self-signed certificate is made on the first run and
  kept in ``$XDG_CACHE_HOME/dtlsgate`` (by default ``~/.cache/dtlsgate``).
- ``connect HOST:PORT``: sends each line of standard input as one record and prints what
  comes back (``--tls``: TLS 1.3 over TCP).

``--fingerprint 'sha-256 AB:...'`` (repeatable) accepts a peer certificate by its
fingerprint (RFC 8122) instead of, or besides, a CA file; a ``serve`` or ``connect`` that
presents a certificate prints its own fingerprint on standard error when it starts
(``fingerprint sha-256 AB:...``), for the user to hand to the peer.

An option that does not apply to the chosen mode is an error that says so. Every failure
is one line on standard error, never a traceback: rc 2 for a bad command line or
configuration, 1 for a failure at run time, 130 when interrupted (Ctrl-C). ``-v`` logs one
line per connection through `logging` (the library's logger ``dtlsgate``; the library
itself configures nothing), and a summary of the counters when a server stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.errors import DtlsgateError, UsageError
from dtlsgate.io import cli_names
from dtlsgate.io.cli_shared import fingerprint, psk, self_signed_files, why
from dtlsgate.io.progress import format_peer
from dtlsgate.wire.enums import ProtocolVersion, SrtpProtectionProfile

log = logging.getLogger("dtlsgate")

DTLS, TLS = "dtls", "tls"
BOTH = frozenset({DTLS, TLS})
DTLS_ONLY, TLS_ONLY = frozenset({DTLS}), frozenset({TLS})
MODE_NAMES = {DTLS: "DTLS 1.2 (without --tls)", TLS: "TLS 1.3 (--tls)"}

# After its input ended, DTLS `connect` waits for the answers to its last records: this many
# round trips (estimated from the handshake: three round trips with the cookie exchange)
# after the last datagram sent or received, at least CONNECT_LINGER_MIN seconds and never
# more than CONNECT_LINGER_MAX in all.
CONNECT_LINGER_ROUND_TRIPS = 4
HANDSHAKE_ROUND_TRIPS = 3
CONNECT_LINGER_MIN = 1.0
CONNECT_LINGER_MAX = 10.0
# How long TLS `connect` keeps reading after its input ended, for the answers to arrive.
TLS_CONNECT_LINGER = 2.0
# A TLS client that sends nothing for this long is dropped, so idle clients do not pile up.
CLIENT_IDLE_TIMEOUT = 10.0
# The largest record `connect` sends: longer lines go as several records (RFC 6347 §4.1).
MAX_RECORD = 16384
MASTER_KEY_HEX_DIGITS = 64


class ExitCode:
    OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


# ---- argument types: each rejects a bad value with a sentence ------------------------------


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (0 or more)")
    return int(text)


def mtu(text: str) -> int:
    if not text.isdigit() or not 256 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not an MTU between 256 and 65535")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0-3600]")
    return value


def master_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) * 2 != MASTER_KEY_HEX_DIGITS:
        raise argparse.ArgumentTypeError(f"wants {MASTER_KEY_HEX_DIGITS} hex digits (32 bytes)")
    return key


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"wants HOST:PORT (e.g. 127.0.0.1:4433), not {text!r}")
    if host.startswith("["):
        host = host[1:].removesuffix("]")
    return host, int(port)


# ---- the parser ------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: ...``, rc 2)."""

    def error(self, message: str) -> Any:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Applies:
    flag: str
    modes: frozenset[str]
    default: Any


# For each command, each mode-bound option: where it applies and its real default (argparse
# sees None, so that "given" and "not given" can be told apart).
APPLIES: dict[str, dict[str, Applies]] = {}


def option(
    parser: argparse.ArgumentParser,
    command: str,
    *flags: str,
    modes: frozenset[str] = BOTH,
    default: Any = None,
    help: str,
    **kwargs: Any,
) -> None:
    notes = []
    # (0 is a default to show; False, as in `0 in (False,)`, is not.)
    if default is not None and not isinstance(default, bool) and default not in ([], ()):
        notes.append(f"default: {default}")
    if modes != BOTH:
        notes.append("DTLS only" if modes == DTLS_ONLY else "--tls only")
    text = help + (f" ({'; '.join(notes)})" if notes else "")
    action = parser.add_argument(*flags, default=None, help=text, **kwargs)
    APPLIES.setdefault(command, {})[action.dest] = Applies(flags[0], modes, default)


def add_dtls_versions(parser: argparse.ArgumentParser, command: str) -> None:
    """openssl's flag names: pin one DTLS version (both are spoken by default)."""
    versions = parser.add_mutually_exclusive_group()
    for flag, version, name in (("--dtls1_2", 0xFEFD, "1.2"), ("--dtls1_3", 0xFEFC, "1.3")):
        versions.add_argument(
            flag,
            action="store_const",
            const=(version,),
            dest="dtls_versions",
            default=None,
            help=f"DTLS {name} only (default: both; DTLS only)",
        )
    APPLIES.setdefault(command, {})["dtls_versions"] = Applies(
        "--dtls1_2/--dtls1_3", DTLS_ONLY, (0xFEFC, 0xFEFD)
    )


def add_common(parser: argparse.ArgumentParser, command: str, *, host: bool) -> None:
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log each connection (-vv: more)"
    )
    if host:
        option(parser, command, "--host", default="127.0.0.1", help="address to bind")
        option(parser, command, "--port", type=port_number, default=4433, help="port to bind")


def add_algorithms(o: Callable[..., None]) -> None:
    """openssl's -ciphersuites, -groups and -sigalgs, each a list checked when parsed."""
    suites = ":".join(s.name for s in cli_names.TLS13_SUITES)
    o(
        "--ciphersuites",
        type=cli_names.ciphersuites,
        metavar="LIST",
        help=f"TLS 1.3 / DTLS 1.3 suites, preferred first, of {suites}"
        " (default: the GCM and ChaCha20 ones; DTLS: with --dtls1_3)",
    )
    o(
        "--groups",
        type=cli_names.groups,
        metavar="LIST",
        help="key exchange groups, preferred first, e.g. X25519MLKEM768:x25519:secp256r1"
        " (default: all for TLS, the curves for DTLS)",
    )
    o("--sigalgs", type=cli_names.sigalgs, metavar="LIST", help="signature schemes, e.g. ed25519")
    o(
        "--use-srtp",
        type=cli_names.srtp_profiles,
        default=(),
        modes=DTLS_ONLY,
        metavar="LIST",
        help="DTLS-SRTP protection profiles, preferred first (RFC 5764),"
        " e.g. SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM",
    )


def add_raw_public_keys(o: Callable[..., None], pinned: str) -> None:
    """RFC 7250: our key presented bare, and the peers' keys we accept bare."""
    o("--rawpk-key", metavar="FILE", help="present this PEM private key's public key (RFC 7250)")
    o("--pin", action="append", metavar="FILE", help=f"{pinned}: PEM public keys (repeat)")


def add_fingerprints(o: Callable[..., None], whose: str) -> None:
    """RFC 8122: the peer certificates we accept by their fingerprint."""
    o(
        "--fingerprint",
        action="append",
        type=fingerprint,
        metavar="FP",
        help=f"accept a {whose} certificate with this fingerprint, e.g. 'sha-256 AB:CD:...'"
        " (RFC 8122; no CA needed; repeat)",
    )


def add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve", help="an echo server (DTLS 1.3 and 1.2; --tls: TLS 1.3 over TCP)"
    )
    serve.add_argument("--tls", action="store_true", help="TLS 1.3 over TCP instead of DTLS")
    add_common(serve, "serve", host=True)
    o = functools.partial(option, serve, "serve")
    o("--cert", metavar="FILE", help="PEM certificate chain, leaf first (default: self-signed)")
    o("--key", metavar="FILE", help="PEM private key (default: read from --cert)")
    o("--cafile", "--CAfile", metavar="FILE", help="CAs for client certificates (PEM)")
    o(
        "--verify-client",
        choices=["none", "optional", "required"],
        default="none",
        help="ask for a client certificate",
    )
    for flag, level, what in (
        ("--verify", "optional", "request"),
        ("--Verify", "required", "require"),
    ):
        serve.add_argument(
            flag,
            action="store_const",
            const=level,
            dest="verify_client",
            help=f"{what} a client certificate (--verify-client {level};"
            " needs --CAfile, --fingerprint or --pin)",
        )
    o("--alpn", action="append", metavar="PROTO", help="ALPN protocol (repeat)")
    o("--master-key", type=master_key, metavar="HEX", help="cookie master key, 64 hex digits")
    o("--psk", action="append", type=psk, metavar="IDENTITY:HEX", help="PSK (repeat)")
    add_algorithms(o)
    add_raw_public_keys(o, "accepted client keys")
    add_fingerprints(o, "client")
    o("--mtu", type=mtu, default=1200, modes=DTLS_ONLY, help="path MTU for handshake flights")
    o("--workers", type=positive_int, default=1, modes=DTLS_ONLY, help="processes on one port")
    add_dtls_versions(serve, "serve")
    o("--stateless", action="store_true", modes=TLS_ONLY, help="HRR with a cookie first")
    o("--www", action="store_true", modes=TLS_ONLY, help="answer GET with a status page")
    o(
        "--max-connections",
        type=count,
        default=0,
        modes=TLS_ONLY,
        help="exit after N connections (0: never)",
    )
    o(
        "--key-update-every",
        type=count,
        default=0,
        modes=TLS_ONLY,
        metavar="N",
        help="send a KeyUpdate (update_requested) after every N records echoed (0: never)",
    )
    serve.set_defaults(func=cmd_serve)


def add_connect(sub: Any) -> None:
    connect = sub.add_parser("connect", help="a client (DTLS 1.3 or 1.2; --tls: TLS 1.3 over TCP)")
    connect.add_argument("target", metavar="HOST:PORT", type=host_port, help="the server")
    connect.add_argument("--tls", action="store_true", help="TLS 1.3 over TCP instead of DTLS")
    add_common(connect, "connect", host=False)
    o = functools.partial(option, connect, "connect")
    o("--cafile", metavar="FILE", help="trust anchors, PEM (default: the system's)")
    o("--insecure", action="store_true", help="do not verify the server")
    o("--cert", metavar="FILE", help="PEM client certificate chain, leaf first (if asked for)")
    o("--key", metavar="FILE", help="PEM private key (default: read from --cert)")
    o("--servername", metavar="NAME", help="name to verify and send (default: HOST)")
    o("--alpn", action="append", metavar="PROTO", help="ALPN protocol (repeat)")
    o("--timeout", type=seconds, default=30.0, help="seconds for the handshake")
    o("--psk", type=psk, metavar="IDENTITY:HEX", help="pre-shared key")
    add_algorithms(o)
    add_raw_public_keys(o, "accepted server keys")
    add_fingerprints(o, "server")
    o("--sess-out", metavar="FILE", modes=DTLS_ONLY, help="save the session (DTLS 1.2) to FILE")
    o("--sess-in", metavar="FILE", modes=DTLS_ONLY, help="resume the session saved in FILE")
    o("--mtu", type=mtu, default=1200, modes=DTLS_ONLY, help="path MTU for handshake flights")
    o("--no-middlebox", action="store_true", modes=TLS_ONLY, help="no middlebox compat mode")
    o(
        "--keymatexport",
        metavar="LABEL",
        help="print keying material exported for LABEL (RFC 5705, RFC 8446 §7.5), e.g."
        " EXTRACTOR-dtls_srtp",
    )
    o("--keymatexportlen", type=positive_int, default=20, metavar="N", help="its length")
    add_dtls_versions(connect, "connect")
    connect.set_defaults(func=cmd_connect)


def build_parser() -> Parser:
    parser = Parser(prog="dtlsgate", description="DTLS and TLS 1.3 with a stateless listen")
    parser.add_argument("--version", action="version", version=f"dtlsgate {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listen = sub.add_parser("listen", help="the bare stateless listener (DTLSv1_listen)")
    add_common(listen, "listen", host=True)
    listen.set_defaults(func=cmd_listen, tls=False)
    add_serve(sub)
    add_connect(sub)
    # Parsed by dtlsgate.io.coap_cli itself (see main); listed here for --help.
    sub.add_parser("coap-server", help="serve CoAP over DTLS (coaps; needs dtlsgate[coap])")
    return parser


def package_version() -> str:
    """The installed distribution's version (the CLI sits below the package's face, so it
    does not import ``dtlsgate.__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dtlsgate")
    except PackageNotFoundError:
        return "(not installed)"


def check_modes(parser: Parser, args: argparse.Namespace) -> None:
    """Fill in the defaults; an option given for a mode it does not apply to is an error."""
    prog = f"{parser.prog} {args.command}"

    def error(message: str) -> None:
        parser.exit(ExitCode.USAGE, f"{prog}: error: {message} (see {prog} --help)\n")

    mode = TLS if args.tls else DTLS
    for dest, applies in APPLIES.get(args.command, {}).items():
        value = getattr(args, dest)
        if value is None:
            default = applies.default
            setattr(args, dest, list(default) if isinstance(default, list) else default)
        elif mode not in applies.modes:
            error(f"{applies.flag} does not apply to {MODE_NAMES[mode]}")
    for dest in ("alpn", "psk", "pin", "fingerprint"):
        if getattr(args, dest, None) is None:
            setattr(args, dest, [])
    if args.command in ("serve", "connect"):
        if args.key and not args.cert:
            error("--key needs --cert")
        if args.rawpk_key and args.cert:
            error("--rawpk-key and --cert are two kinds of credentials: give one")
    if args.command == "serve":
        if args.workers > 1 and args.port == 0:
            error("--workers needs a fixed --port (not 0)")
        checks = args.cafile or args.pin or args.fingerprint
        if args.verify_client != "none" and not checks:
            error("--verify/--Verify needs --CAfile with the client CAs (or --fingerprint, --pin)")
        if checks and args.verify_client == "none":
            error("--CAfile, --fingerprint or --pin (client keys) needs --verify or --Verify")
    if args.command == "connect":
        if args.insecure and args.cafile:
            error("--insecure and --cafile contradict each other")
        if args.insecure and args.fingerprint:
            error("--insecure and --fingerprint contradict each other")
        if (args.sess_out or args.sess_in) and args.dtls_versions != (0xFEFD,):
            error("--sess-out/--sess-in need --dtls1_2 (sessions are resumed in DTLS 1.2)")
    if not args.tls and getattr(args, "ciphersuites", None) and args.dtls_versions != (0xFEFC,):
        error("--ciphersuites names DTLS 1.3 suites: add --dtls1_3")


# ---- shared pieces ---------------------------------------------------------------------------


def bind_udp(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A UDP socket bound to ``host:port``; a failure is a UsageError naming the address."""
    where = format_peer((host, port))
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    except OSError as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {why(exc)}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot bind UDP {where}: {exc.strerror or why(exc)}") from None
    return sock


def setup_logging(verbose: int) -> None:
    """The CLI configures the library's logger: warnings always, -v each connection."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s dtlsgate: %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.WARNING if not verbose else logging.INFO if verbose == 1 else 0)


def algorithms(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration's algorithm lists (None: the library's defaults)."""
    return {
        "cipher_suites": args.ciphersuites,
        "groups": args.groups,
        "signature_schemes": args.sigalgs,
        "srtp_profiles": args.use_srtp,
    }


def load(flag: str, path: str, loader: Callable[[str], Any]) -> Any:
    """``loader(path)``; a UsageError names the option and the file."""
    try:
        return loader(path)
    except UsageError as exc:
        raise UsageError(f"{flag} {path}: {exc}") from None


def pinned_keys(args: argparse.Namespace) -> tuple[bytes, ...]:
    from dtlsgate.crypto.certs import load_public_keys

    keys: list[bytes] = []
    for path in args.pin:
        found = load("--pin", path, load_public_keys)
        if not found:
            raise UsageError(f"--pin {path}: no public key found")
        keys += found
    return tuple(keys)


def server_config(args: argparse.Namespace, key: bytes | None) -> ServerConfig:
    """The server's configuration from the command line; every credential problem is a
    UsageError that names the file."""
    from dtlsgate.gate.cookie import CookieJar
    from dtlsgate.handshake.tls13.tickets import ticket_key_from_master

    config = ServerConfig(
        cookie_jar=CookieJar(key) if key else None,
        # Servers sharing the master key also resume each other's sessions.
        ticket_key=ticket_key_from_master(key) if key else None,
        psk=dict(args.psk),
        alpn_protocols=tuple(a.encode() for a in args.alpn),
        stateless=bool(args.stateless),
        mtu=args.mtu,
        dtls_versions=args.dtls_versions,
        pinned_keys=pinned_keys(args),
        certificate_fingerprints=tuple(args.fingerprint),
        **algorithms(args),
    )
    if args.rawpk_key:
        load("--rawpk-key", args.rawpk_key, config.load_raw_public_key)
    elif args.cert or not args.psk:
        load_cert(args, config)
    if args.cafile:
        load("--CAfile", args.cafile, config.load_verify_locations)
    config.verify_client = args.verify_client
    return config


def client_config(args: argparse.Namespace) -> ClientConfig:
    host = args.target[0]
    identity, key = args.psk if args.psk else (None, None)
    config = ClientConfig(
        server_name=args.servername or host,
        insecure=args.insecure,
        psk=key,
        psk_identity=identity,
        alpn_protocols=tuple(a.encode() for a in args.alpn),
        mtu=args.mtu,
        middlebox_compat=not args.no_middlebox,
        dtls_versions=args.dtls_versions,
        pinned_keys=pinned_keys(args),
        certificate_fingerprints=tuple(args.fingerprint),
        session_ticket=load("--sess-in", args.sess_in, read_session) if args.sess_in else None,
        **algorithms(args),
    )
    if args.cafile:
        load("--cafile", args.cafile, config.load_verify_locations)
    if args.rawpk_key:
        load("--rawpk-key", args.rawpk_key, config.load_raw_public_key)
    elif args.cert:
        load_cert(args, config)
    return config


def load_cert(args: argparse.Namespace, config: ServerConfig | ClientConfig) -> None:
    """``--cert`` and ``--key`` (or the cached self-signed pair when ``--cert`` is absent)
    into ``config``; a UsageError names both files."""
    cert, keyfile = (args.cert, args.key) if args.cert else map(str, self_signed_files())
    try:
        config.load_cert_chain(cert, keyfile)
    except UsageError as exc:
        raise UsageError(f"--cert {cert} / --key {keyfile or cert}: {exc}") from None


def announce_fingerprint(config: ServerConfig | ClientConfig) -> None:
    """Our certificate's fingerprint on stderr, a start-up line like "listening on" (after
    it: tests and scripts read that one first), for the user to hand to the peer (SDP's
    ``a=fingerprint``, RFC 8122): ``fingerprint sha-256 AB:...``; nothing without one."""
    from dtlsgate.crypto.certs import certificate_fingerprint

    if config.certificate_chain:
        line = f"fingerprint {certificate_fingerprint(config.certificate_chain[0])}"
        print(line, file=sys.stderr, flush=True)


def read_session(path: str) -> Any:
    """A session saved by ``--sess-out``; a UsageError for a file that holds none."""
    from dtlsgate.errors import DecodeError
    from dtlsgate.handshake.dtls12.resume import Dtls12Session

    try:
        with open(path, encoding="ascii") as f:
            return Dtls12Session.from_pem(f.read())
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the session: {why(exc)}") from None
    except DecodeError as exc:
        raise UsageError(f"not a session saved by --sess-out: {why(exc)}") from None


def write_session(path: str, stream: Any) -> None:
    """Save the connection's DTLS 1.2 session for ``--sess-in``, or say there is none."""
    session = getattr(stream.connection, "session", None)
    if session is None:
        print(f"dtlsgate: no session to save in {path}", file=sys.stderr, flush=True)
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(session.to_pem())
    except OSError as exc:
        raise UsageError(f"--sess-out {path}: cannot write the session: {why(exc)}") from None


# ---- listen ----------------------------------------------------------------------------------


def cmd_listen(args: argparse.Namespace) -> int:
    from dtlsgate.io.listener import Listener

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
        return ExitCode.OK
    finally:
        gate = listener.gate
        log.info("stopped: %s", gate_summary(gate.replies, gate.admits, gate.drops))
        sock.close()


def gate_summary(replies: int, admits: int, drops: Any) -> str:
    dropped = ", ".join(f"{getattr(k, 'name', k)} {v}" for k, v in sorted(drops.items(), key=str))
    return f"gate: {replies} replies, {admits} admitted, dropped: {dropped or 'none'}"


# ---- serve (DTLS) ----------------------------------------------------------------------------


async def _echo(stream: Any) -> None:
    """Echo each record until the peer closes. Records that came with its close_notify are
    read but not answered: the association is gone, nothing can be sent on it."""
    while (data := await stream.recv()) and not stream.closed.is_set():
        stream.send(data)


async def _serve_dtls(config: ServerConfig, sock: socket.socket, announce: bool) -> None:
    from dtlsgate.io import aio

    server = await aio.serve(_echo, config=config, sock=sock)
    if announce:
        names: dict[int, str] = {ProtocolVersion.DTLS13: "1.3", ProtocolVersion.DTLS12: "1.2"}
        versions = " and ".join(names.get(v, hex(v)) for v in config.dtls_versions)
        where = format_peer(server.address)
        print(f"serving DTLS {versions} on {where}", file=sys.stderr, flush=True)
        announce_fingerprint(config)
    try:
        await aio.until_stopped()
    finally:
        gate = server.gate
        log.info(
            "stopped: %d handshakes completed, %d failed, %d admits refused (busy), "
            "%d datagrams raised; %s",
            server.handshakes_completed,
            server.handshakes_failed,
            server.admits_refused,
            server.failures,
            gate_summary(gate.replies, gate.admits, gate.drops),
        )
        server.close()
        await server.wait_closed()


def _worker(args: argparse.Namespace, config: ServerConfig, inherited: socket.socket) -> None:
    from dtlsgate.io import aio

    inherited.close()
    try:
        sock = bind_udp(args.host, args.port, reuse_port=True)
        aio.run(_serve_dtls(config, sock, announce=False))
    except KeyboardInterrupt:
        pass
    except UsageError as exc:
        print(f"dtlsgate: worker {os.getpid()}: {why(exc)}", file=sys.stderr, flush=True)


def serve_dtls(args: argparse.Namespace) -> int:
    from dtlsgate.io import aio

    # --workers: every process verifies the others' cookies, so they share one master key.
    key = args.master_key or (os.urandom(32) if args.workers > 1 else None)
    config = server_config(args, key)
    sock = bind_udp(args.host, args.port, reuse_port=args.workers > 1)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_worker, args=(args, config, sock), daemon=True)
        for _ in range(args.workers - 1)
    ]
    for w in workers:
        w.start()
    aio.run(_serve_dtls(config, sock, announce=True))
    return ExitCode.OK


# ---- serve --tls (TLS 1.3 over TCP) ----------------------------------------------------------


def www_page(info: Any) -> bytes:
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


async def serve_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, www: bool, key_update_every: int = 0
) -> None:
    """Echo what the client sends, or (``www``) answer one HTTP request; a client idle for
    CLIENT_IDLE_TIMEOUT is dropped. ``key_update_every``: after every that many records
    echoed, a KeyUpdate asking the client to update too (RFC 8446 §4.6.3)."""
    if www:
        request = b""
        while b"\r\n\r\n" not in request and b"\n\n" not in request:
            data = await asyncio.wait_for(reader.read(65536), CLIENT_IDLE_TIMEOUT)
            if not data:
                return
            request += data
        writer.write(www_page(writer.get_extra_info("tls")))
        await writer.drain()
        return
    echoed = 0
    while data := await asyncio.wait_for(reader.read(65536), CLIENT_IDLE_TIMEOUT):
        writer.write(data)
        echoed += 1
        if key_update_every and echoed % key_update_every == 0:
            writer.get_extra_info("tls_connection").key_update(request_peer=True)
            writer.write(b"")  # sends what the connection queued: the KeyUpdate
            log.info("sent a KeyUpdate after %d records", echoed)
        await writer.drain()


@dataclass
class TlsCounters:
    accepted: int = 0
    failed: int = 0
    finished: int = 0


async def serve_tls_async(args: argparse.Namespace, config: ServerConfig) -> int:
    """Serve connections concurrently on one event loop; with ``--max-connections N``,
    exit once N connections have ended (handshake failures included)."""
    from dtlsgate.errors import AlertReceived, ProtocolError
    from dtlsgate.io.aio import until_stopped
    from dtlsgate.io.aio_tls import limits_of, serve_tls

    counters = TlsCounters()
    all_done = asyncio.Event()

    def connection_ended() -> None:
        counters.finished += 1
        if args.max_connections and counters.finished >= args.max_connections:
            all_done.set()

    def failed(exc: BaseException) -> None:
        counters.failed += 1
        print(f"handshake failed: {why(exc)}", file=sys.stderr, flush=True)
        connection_ended()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counters.accepted += 1
        info = writer.get_extra_info("tls")
        print(
            f"accepted {info.cipher_suite.name} {info.group.name if info.group else '-'}"
            f" hello_retry={info.hello_retry} resumed={info.resumed}",
            flush=True,
        )
        try:
            await serve_one(reader, writer, args.www, args.key_update_every)
        except (ProtocolError, AlertReceived, OSError, TimeoutError):
            pass
        finally:
            writer.close()
            connection_ended()

    try:
        server = await serve_tls(
            handle, args.host, args.port, config, on_handshake_failure=failed, reuse_address=True
        )
    except OSError as exc:
        where = format_peer((args.host, args.port))
        raise UsageError(f"cannot serve TCP on {where}: {exc.strerror or why(exc)}") from None
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on {format_peer((host, port))}", file=sys.stderr, flush=True)
    announce_fingerprint(config)
    try:
        async with server:
            try:
                await until_stopped(all_done.wait())
            finally:
                # Before the server's wait_closed, which waits for them (Python 3.12.1 on).
                limits_of(server).close_all()
    finally:
        log.info("stopped: %d accepted, %d handshakes failed", counters.accepted, counters.failed)
    return ExitCode.OK


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.tls:
        return serve_dtls(args)
    config = server_config(args, args.master_key)
    return asyncio.run(serve_tls_async(args, config))


# ---- connect (DTLS 1.2) ----------------------------------------------------------------------


def read_stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]) -> None:
    """Feed the lines of standard input into ``queue`` (None at its end) from a daemon
    thread. It reads the file descriptor itself, so it holds no lock of ``sys.stdin``: an
    interrupted program exits at once instead of waiting for a line (asyncio's default
    executor would join the blocked thread at exit)."""

    def put(item: bytes | None) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody reads any more
            return False
        return True

    def run() -> None:
        fd, pending = sys.stdin.fileno(), b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    put(pending)
                put(None)
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not put(line + b"\n"):
                    return

    threading.Thread(target=run, name="dtlsgate-stdin", daemon=True).start()


async def connect_dtls(args: argparse.Namespace) -> int:
    from dtlsgate.io import aio

    loop = asyncio.get_running_loop()
    host, port = args.target
    config = client_config(args)
    announce_fingerprint(config)
    began = loop.time()
    stream = await aio.connect(host, port, config, timeout=args.timeout)
    print_exported(args, stream.handshake_info, stream.connection)
    if args.sess_out:
        write_session(args.sess_out, stream)
    # RFC 6347 §4.2.4 bounds nothing here: the answer to our last record takes a round
    # trip and the server's own time; the handshake's duration measures both.
    round_trip = (loop.time() - began) / HANDSHAKE_ROUND_TRIPS
    linger = max(CONNECT_LINGER_MIN, CONNECT_LINGER_ROUND_TRIPS * round_trip)
    activity = [loop.time()]  # the last datagram sent or received
    out = sys.stdout.buffer

    async def printer() -> None:
        while data := await stream.recv():
            activity[0] = loop.time()
            out.write(data)
            out.flush()

    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    read_stdin_lines(loop, lines)
    printing = asyncio.create_task(printer())
    try:
        while (line := await lines.get()) is not None and not printing.done():
            for start in range(0, len(line), MAX_RECORD):
                stream.send(line[start : start + MAX_RECORD])
            activity[0] = loop.time()
        # Input ended: wait until `linger` passed without a datagram either way.
        end = loop.time() + CONNECT_LINGER_MAX
        while not printing.done() and loop.time() < min(end, activity[0] + linger):
            await asyncio.sleep(0.02)
    finally:
        stream.close()
        printing.cancel()
    return ExitCode.OK


def print_exported(args: argparse.Namespace, info: Any, conn: Any) -> None:
    """On stderr, as openssl's s_client prints them: the DTLS-SRTP profile agreed on, and
    with ``--keymatexport`` the keying material exported for its label."""
    if info is not None and info.srtp_profile is not None:
        name = SrtpProtectionProfile(info.srtp_profile).name
        print(f"SRTP profile: {name}", file=sys.stderr, flush=True)
    if args.keymatexport:
        material = conn.export_keying_material(args.keymatexport.encode(), args.keymatexportlen)
        print(f"Keying material: {material.hex().upper()}", file=sys.stderr, flush=True)


# ---- connect --tls ---------------------------------------------------------------------------


def connect_tls(args: argparse.Namespace) -> int:
    from dtlsgate.io.blocking_tls import connect

    host, port = args.target
    config = client_config(args)
    announce_fingerprint(config)
    tls = connect(host, port, config, timeout=args.timeout)
    info = tls.info
    assert info is not None
    print(
        f"connected {info.cipher_suite.name} hello_retry={info.hello_retry} resumed={info.resumed}",
        file=sys.stderr,
        flush=True,
    )
    print_exported(args, info, tls.conn)
    with tls:
        data = sys.stdin.buffer.read()
        if data:
            tls.sendall(data)
        tls.sock.settimeout(TLS_CONNECT_LINGER)
        deadline = time.monotonic() + TLS_CONNECT_LINGER
        with contextlib.suppress(TimeoutError, OSError):
            while time.monotonic() < deadline and (got := tls.recv()):
                sys.stdout.buffer.write(got)
                sys.stdout.flush()
    return ExitCode.OK


def cmd_connect(args: argparse.Namespace) -> int:
    from dtlsgate.io import aio

    try:
        if args.tls:
            return connect_tls(args)
        return aio.run(connect_dtls(args))
    except UsageError:
        raise
    except (DtlsgateError, OSError, TimeoutError) as exc:
        prefix = "handshake failed: " if args.tls else ""
        print(f"dtlsgate: {prefix}{why(exc)}", file=sys.stderr, flush=True)
        return ExitCode.FAILED


# ---- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["coap-server"]:
        from dtlsgate.io.coap_cli import main as coap_server

        return coap_server(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    check_modes(parser, args)
    setup_logging(args.verbose)
    run: Callable[[argparse.Namespace], int] = args.func
    try:
        return run(args)
    except KeyboardInterrupt:
        # Ctrl-C: a server's normal way to stop where the loop cannot handle it (see
        # aio.until_stopped); a client was interrupted.
        return ExitCode.OK if args.command != "connect" else ExitCode.INTERRUPTED
    except UsageError as exc:
        print(f"dtlsgate: {why(exc)}", file=sys.stderr, flush=True)
        return ExitCode.USAGE
    except (DtlsgateError, OSError) as exc:
        print(f"dtlsgate: {why(exc)}", file=sys.stderr, flush=True)
        return ExitCode.FAILED


def entry() -> int:
    """The ``dtlsgate`` program: `main` on the process's command line; the exit status.

    Once the command is over, SIGINT and SIGTERM are ignored: the process is exiting. A
    second stop signal (Ctrl-C pressed twice, or `timeout`, which sends its signal to the
    child and again to the child's process group) would otherwise kill the interpreter as
    it finalizes (status -2 after a clean stop) or print a traceback from its shutdown."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(entry())
