"""``dtlsgate coap-server``: a small CoAP resource tree served over coaps (aiocoap on
dtlsgate, `dtlsgate.io.coap`), to try a CoAP client against in one line::

    dtlsgate coap-server --psk Client_identity:secretPSK
    coap-client-openssl -u Client_identity -k secretPSK coaps://127.0.0.1/time

Resources: ``/.well-known/core`` (RFC 6690), ``/time`` (the current UTC time; observable,
RFC 7641, with a notification every ``--interval`` seconds) and ``/echo`` (PUT stores a
payload, GET returns the stored one, POST answers with the payload it got; shared by every
client). Without ``--psk`` or ``--cert`` the server uses the cached self-signed certificate
of ``dtlsgate serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dtlsgate.config import ServerConfig
from dtlsgate.errors import UsageError
from dtlsgate.io.progress import format_peer

# The most /echo keeps: a PUT larger than this is refused with 4.13 Request Entity Too Large.
MAX_ECHO_SIZE = 64 * 1024
COAPS_PORT = 5684


def build_site(interval: float = 1.0) -> Any:
    """The resource tree: /.well-known/core, /time (observable) and /echo."""
    import aiocoap
    from aiocoap import resource

    class TimeResource(resource.ObservableResource):  # type: ignore[misc]
        """The current UTC time; while observed, a notification every ``interval`` s."""

        def __init__(self) -> None:
            super().__init__()
            self._timer: asyncio.TimerHandle | None = None

        def update_observation_count(self, count: int) -> None:
            if count and self._timer is None:
                self._schedule()
            elif not count and self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _schedule(self) -> None:
            self._timer = asyncio.get_running_loop().call_later(interval, self._notify)

        def _notify(self) -> None:
            self.updated_state()
            self._schedule()

        async def render_get(self, request: Any) -> Any:
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            return aiocoap.Message(payload=now.encode(), content_format=0)

    class EchoResource(resource.Resource):  # type: ignore[misc]
        """PUT stores, GET returns the stored payload, POST answers with its payload."""

        def __init__(self) -> None:
            super().__init__()
            self.stored = b""

        async def render_get(self, request: Any) -> Any:
            return aiocoap.Message(payload=self.stored)

        async def render_put(self, request: Any) -> Any:
            if len(request.payload) > MAX_ECHO_SIZE:
                return aiocoap.Message(code=aiocoap.REQUEST_ENTITY_TOO_LARGE)
            self.stored = request.payload
            return aiocoap.Message(code=aiocoap.CHANGED)

        async def render_post(self, request: Any) -> Any:
            return aiocoap.Message(code=aiocoap.CHANGED, payload=request.payload)

    site = resource.Site()
    site.add_resource(
        [".well-known", "core"], resource.WKCResource(site.get_resources_as_linkheader)
    )
    site.add_resource(["time"], TimeResource())
    site.add_resource(["echo"], EchoResource())
    return site


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtlsgate coap-server",
        description="serve /.well-known/core, /time and /echo over coaps (CoAP over DTLS)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=COAPS_PORT)
    parser.add_argument(
        "--psk",
        action="append",
        default=[],
        metavar="IDENTITY:KEY",
        help="a pre-shared key, the key as text (coap-client's -u IDENTITY -k KEY)",
    )
    parser.add_argument(
        "--psk-hex", action="append", default=[], metavar="IDENTITY:HEX", help="a PSK in hex"
    )
    parser.add_argument("--cert", help="PEM certificate chain (default without --psk: self-signed)")
    parser.add_argument("--key", help="PEM private key (default: in --cert)")
    parser.add_argument("--cafile", help="require client certificates issued by these CAs")
    parser.add_argument("--interval", type=float, default=1.0, help="/time notification period")
    return parser


def _psk_credentials(args: argparse.Namespace) -> dict[str, Any]:
    from dtlsgate.io.cli_shared import parse_psk

    pairs = []
    for text in args.psk:
        identity, sep, key = text.partition(":")
        if not sep or not identity or not key:
            raise UsageError(f"--psk wants IDENTITY:KEY, not {text!r}")
        pairs.append((identity.encode(), key.encode()))
    pairs += [parse_psk(text) for text in args.psk_hex]
    return {
        f":psk{i}": {"dtls": {"psk": key, "client-identity": identity}}
        for i, (identity, key) in enumerate(pairs)
    }


def _certificate(args: argparse.Namespace, have_psk: bool) -> tuple[str | None, str | None]:
    if args.cert:
        return args.cert, args.key
    if have_psk:
        return None, None
    from dtlsgate.io.cli_shared import self_signed_files

    cert, key = self_signed_files()
    return str(cert), str(key)


async def serve(args: argparse.Namespace) -> None:
    from dtlsgate.io import aio, coap

    credentials = _psk_credentials(args)
    certfile, keyfile = _certificate(args, bool(credentials))
    config = ServerConfig()
    if args.cafile:
        config = ServerConfig(verify_client="required", cafile=args.cafile)
    ctx = await coap.create_server_context(
        build_site(args.interval),
        bind=(args.host, args.port),
        credentials=credentials,
        certfile=certfile,
        keyfile=keyfile,
        config=config,
    )
    host, port = coap.server_address(ctx)
    print(f"serving coaps on {format_peer((host, port))}", file=sys.stderr, flush=True)
    try:
        await aio.until_stopped()
    finally:
        await ctx.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.interval <= 0:
        print("dtlsgate coap-server: --interval must be positive", file=sys.stderr)
        return 2
    try:
        import aiocoap  # noqa: F401
    except ImportError:
        print("dtlsgate coap-server needs aiocoap: pip install 'dtlsgate[coap]'", file=sys.stderr)
        return 2
    if args.cert and not Path(args.cert).is_file():
        print(f"dtlsgate coap-server: no such file {args.cert!r}", file=sys.stderr)
        return 2
    from dtlsgate.io import aio

    try:
        aio.run(serve(args))
    except UsageError as exc:
        print(f"dtlsgate coap-server: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
