"""CoAP over DTLS (``coaps://``, RFC 7252 §9) for aiocoap, on dtlsgate.

Two aiocoap message transports (``aiocoap.interfaces.MessageInterface``) and the calls that
make aiocoap contexts with them::

    ctx = await dtlsgate.coap.create_server_context(site, bind=("::", 5684), credentials={
        ":client": {"dtls": {"psk": b"secret", "client-identity": b"client"}}})
    ctx = await dtlsgate.coap.create_client_context(credentials={
        "coaps://host/*": {"dtls": {"psk": b"secret", "client-identity": b"client"}}})

The server serves every peer from one UDP socket behind the stateless gate
(`dtlsgate.io.aio.serve`, with the limits of its `ServerConfig`): a ClientHello without a
valid cookie gets a HelloVerifyRequest and nothing is kept. Each association is one
aiocoap remote, so block-wise transfers and observations never mix two associations
(RFC 7252 §9.1.2). The client opens one association per server and set of credentials, on
the first request, and reuses it.

Credentials are aiocoap's (``aiocoap.credentials``): a ``dtls`` entry (``psk`` and
``client-identity``) is a pre-shared key on either side; on the client, a ``tlscert`` entry
(``certfile``) names the CA file that verifies the server's certificate. The server's own
certificate is ``certfile``/``keyfile``; everything else (cipher suites, client certificates,
raw public keys, a cookie key shared by a fleet, limits) comes from a `ServerConfig` or
`ClientConfig`. Raw public keys (RFC 7250: ``load_raw_public_key`` for our key,
``pinned_keys`` for the peer keys accepted) are configured there only: aiocoap 0.4.17's
credentials have no entry for them.

aiocoap attaches transports by name from its own package; the one private call used here is
``Context._append_tokenmanaged_messagemanaged_transport``, checked when this module loads.
The aiocoap versions this module is tested with are `SUPPORTED_AIOCOAP`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.errors import DtlsgateError, UsageError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.io import aio

try:
    import aiocoap
    from aiocoap import error as coap_error
    from aiocoap import interfaces
    from aiocoap.credentials import CredentialsMap, CredentialsMissingError, TLSCert
    from aiocoap.message import Message
    from aiocoap.numbers import COAPS_PORT
    from aiocoap.numbers.constants import MAX_REGULAR_BLOCK_SIZE_EXP
    from aiocoap.util import hostportjoin, hostportsplit
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("dtlsgate.coap needs aiocoap: pip install 'dtlsgate[coap]'") from exc

# The aiocoap releases this module was tested with (tests/test_coap.py fails on any other).
SUPPORTED_AIOCOAP = ("0.4.17",)
# The private aiocoap call this module relies on: it adds a message transport to a context.
_APPEND_TRANSPORT = "_append_tokenmanaged_messagemanaged_transport"
# How long a client waits for a DTLS handshake before the request fails. A wrong PSK shows
# as this timeout: the server cannot decrypt the client's Finished and, as DTLS does with a
# record it cannot authenticate, drops it (RFC 6347 §4.1.2.7).
HANDSHAKE_TIMEOUT = 30.0
# aiocoap's own coaps transports would claim coaps:// requests before ours.
_TINYDTLS_TRANSPORTS = ("tinydtls", "tinydtls_server")


def aiocoap_version() -> str:
    return importlib.metadata.version("aiocoap")


def check_aiocoap() -> list[str]:
    """What is wrong with the installed aiocoap for this module: an empty list, or one line
    per problem (an untested version, a missing private call)."""
    problems = []
    version = aiocoap_version()
    if version not in SUPPORTED_AIOCOAP:
        problems.append(
            f"aiocoap {version} is installed; dtlsgate.coap is tested with aiocoap "
            f"{', '.join(SUPPORTED_AIOCOAP)} (pip install 'dtlsgate[coap]')"
        )
    if not callable(getattr(aiocoap.Context, _APPEND_TRANSPORT, None)):
        problems.append(f"aiocoap {version} has no Context.{_APPEND_TRANSPORT}")
    return problems


def _check_on_import() -> None:
    problems = check_aiocoap()
    if not callable(getattr(aiocoap.Context, _APPEND_TRANSPORT, None)):
        raise ImportError("dtlsgate.coap cannot attach to aiocoap: " + "; ".join(problems))
    for problem in problems:
        warnings.warn(problem, RuntimeWarning, stacklevel=3)


_check_on_import()


class _DtlsNetworkError(coap_error.NetworkError):  # type: ignore[misc]
    def __str__(self) -> str:
        # aiocoap's NetworkError shows only the class name; say what happened too.
        detail = f": {self.args[0]}" if self.args else ""
        return f"Network error: {type(self).__name__}{detail}"


class DtlsConnectError(_DtlsNetworkError):
    """The DTLS handshake with a coaps:// server failed (or timed out)."""


class DtlsConnectionClosed(_DtlsNetworkError):
    """The DTLS association a request or observation used ended (close_notify, a fatal
    alert, or the transport shut down)."""


class DtlsRemote(interfaces.EndpointAddress):  # type: ignore[misc]
    """One DTLS association as an aiocoap remote. Remotes compare by identity: a new
    association (even with the same address) is a new remote (RFC 7252 §9.1.2).

    ``dtls_info`` is the association's `HandshakeCompleted` (cipher suite, PSK identity, peer
    certificates); ``authenticated_claims`` holds the label of the server credential the
    client's PSK matched, as aiocoap's tinydtls server reports it."""

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False
    # A class attribute rather than the base's property: aiocoap lowers it per remote.
    maximum_block_size_exp = MAX_REGULAR_BLOCK_SIZE_EXP

    def __init__(
        self,
        interface: _Interface,
        stream: aio.DtlsStream,
        hostinfo: str,
        hostinfo_local: str | None,
        claims: Sequence[object] = (),
    ) -> None:
        self.interface = interface
        self.stream = stream
        self._hostinfo = hostinfo
        self._hostinfo_local = hostinfo_local
        self._claims = tuple(claims)

    def __repr__(self) -> str:
        return f"<DtlsRemote coaps://{self._hostinfo}{' closed' if self.closed else ''}>"

    @property
    def hostinfo(self) -> str:
        return self._hostinfo

    @property
    def hostinfo_local(self) -> str:
        if self._hostinfo_local is None:
            raise coap_error.AnonymousHost("the local address of a coaps client is not known")
        return self._hostinfo_local

    @property
    def uri_base(self) -> str:
        return "coaps://" + self.hostinfo

    @property
    def uri_base_local(self) -> str:
        return "coaps://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> object:
        # Blocks combine within one association only: its security context.
        return self

    @property
    def authenticated_claims(self) -> tuple[object, ...]:
        return self._claims

    @property
    def dtls_info(self) -> HandshakeCompleted | None:
        return self.stream.handshake_info

    @property
    def closed(self) -> bool:
        return self.stream.closed.is_set()

    def send(self, data: bytes) -> None:
        """Send one CoAP message as one record; dropped once the association has closed
        (datagram semantics: CoAP's own retransmission and errors take over)."""
        if self.closed:
            return
        with suppress(DtlsgateError):
            self.stream.send(data)


class _Interface(interfaces.MessageInterface):  # type: ignore[misc]
    """What the client and server transports share: receiving on an association."""

    def __init__(self, mman: Any, log: Any) -> None:
        self._mman: Any = mman
        self.log = log

    def send(self, message: Any) -> None:
        if self._mman is None:
            self.log.info("not sending %r: the transport is shutting down", message)
            return
        remote = message.remote
        if isinstance(remote, DtlsRemote) and remote.closed:
            # The association ended (e.g. the server refused our certificate with an alert
            # after our DTLS 1.3 Finished, when the client already counted itself
            # connected): fail the exchange now rather than let it wait for its timeout.
            # Soon, not here: aiocoap registers the exchange after this call returns.
            error = DtlsConnectionClosed(f"the DTLS association with {remote.hostinfo} ended")
            asyncio.get_running_loop().call_soon(self._mman.dispatch_error, error, remote)
            return
        remote.send(message.encode())

    async def recognize_remote(self, remote: object) -> bool:
        return isinstance(remote, DtlsRemote) and remote.interface is self and not remote.closed

    async def _receive_loop(self, remote: DtlsRemote) -> None:
        """Hand each record of ``remote`` to aiocoap as one message until the association
        ends, then fail what still waits on it."""
        stream = remote.stream
        try:
            while True:
                data = await stream.recv()
                if not data:
                    if stream.closed.is_set():
                        break
                    continue  # an empty record carries no CoAP message
                self._dispatch(remote, data)
        finally:
            # Let tasks started for the last messages begin before they are cancelled
            # (aiocoap warns about a request coroutine that never started).
            await asyncio.sleep(0)
            mman = self._mman
            if mman is not None:
                mman.dispatch_error(
                    DtlsConnectionClosed(f"the DTLS association with {remote.hostinfo} ended"),
                    remote,
                )

    def _dispatch(self, remote: DtlsRemote, data: bytes) -> None:
        try:
            message = Message.decode(data, remote)
        # aiocoap 0.4.17's decoder raises UnicodeDecodeError (a ValueError) on a string
        # option that is not UTF-8, and UnparsableMessage on the rest.
        except (coap_error.UnparsableMessage, ValueError):
            self.log.warning("ignoring an unparsable message from %s", remote.hostinfo)
            return
        mman = self._mman
        if mman is None:
            return
        try:
            mman.dispatch_message(message)
        except Exception:  # an application error must not end the association
            self.log.exception("error while handling a message from %s", remote.hostinfo)


class CoapsServerTransport(_Interface):
    """The server's message transport: one `aio.DtlsServer`, one remote per association.
    It answers requests; it does not start coaps connections (a client transport does)."""

    def __init__(self, mman: Any, log: Any, claims: Mapping[bytes, object]) -> None:
        super().__init__(mman, log)
        self._claims = dict(claims)
        self._remotes: set[DtlsRemote] = set()
        self.server: aio.DtlsServer | None = None

    async def start(
        self, host: str, port: int, config: ServerConfig, sock: Any = None
    ) -> CoapsServerTransport:
        self.server = await aio.serve(self._serve_peer, host, port, config, sock=sock)
        return self

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        assert self.server is not None, "start() first"
        return self.server.address

    async def _serve_peer(self, stream: aio.DtlsStream) -> None:
        info = stream.handshake_info
        identity = info.psk_identity if info is not None else None
        claims = (self._claims[identity],) if identity in self._claims else ()
        host, port = self.address
        remote = DtlsRemote(self, stream, _hostinfo(stream.peer), hostportjoin(host, port), claims)
        self._remotes.add(remote)
        try:
            await self._receive_loop(remote)
        finally:
            self._remotes.discard(remote)

    async def determine_remote(self, message: Any) -> None:
        return None

    async def shutdown(self) -> None:
        self._mman = None
        for remote in list(self._remotes):
            remote.stream.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class CoapsClientTransport(_Interface):
    """The client's message transport: one association per (host, port, credentials),
    opened on the first coaps:// request that needs it and reused while it lasts."""

    def __init__(
        self, mman: Any, log: Any, template: ClientConfig | None, handshake_timeout: float
    ) -> None:
        super().__init__(mman, log)
        self._template = template
        self._handshake_timeout = handshake_timeout
        self._pool: dict[tuple[object, ...], asyncio.Task[DtlsRemote]] = {}
        self._remotes: set[DtlsRemote] = set()
        self._readers: set[asyncio.Task[None]] = set()

    async def determine_remote(self, request: Any) -> DtlsRemote | None:
        if request.requested_scheme != "coaps":
            return None
        if self._mman is None:
            raise coap_error.LibraryShutdown()
        host, port = _request_target(request)
        try:
            credential = self._mman.client_credentials.credentials_from_request(request)
        except CredentialsMissingError:
            if self._template is None:
                raise
            credential = None  # the ClientConfig given alone (e.g. its cafile) applies
        config, key = _client_config(self._template, credential, host, request)
        pool_key = (host, port, key)
        task = self._pool.get(pool_key)
        if task is None or _unusable(task):
            task = asyncio.get_running_loop().create_task(self._connect(host, port, config))
            self._pool[pool_key] = task
        try:
            remote = await asyncio.shield(task)
        except (TimeoutError, DtlsgateError, OSError, ConnectionError) as exc:
            if self._pool.get(pool_key) is task:
                del self._pool[pool_key]
            hostinfo = hostportjoin(host, None if port == COAPS_PORT else port)
            why = str(exc) or f"no handshake within {self._handshake_timeout:g} s"
            raise DtlsConnectError(f"coaps://{hostinfo}: DTLS handshake failed: {why}") from exc
        wanted = request.remote.maximum_block_size_exp
        if wanted < remote.maximum_block_size_exp:
            remote.maximum_block_size_exp = wanted
        return remote

    async def _connect(self, host: str, port: int, config: ClientConfig) -> DtlsRemote:
        stream = await aio.connect(host, port, config, timeout=self._handshake_timeout)
        remote = DtlsRemote(
            self, stream, hostportjoin(host, None if port == COAPS_PORT else port), None
        )
        self._remotes.add(remote)
        reader = asyncio.get_running_loop().create_task(self._read(remote))
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)
        return remote

    async def _read(self, remote: DtlsRemote) -> None:
        try:
            await self._receive_loop(remote)
        finally:
            self._remotes.discard(remote)
            remote.stream.close()

    async def shutdown(self) -> None:
        self._mman = None
        for task in self._pool.values():
            task.cancel()
        for remote in list(self._remotes):
            remote.stream.close()
        readers = list(self._readers)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, *self._pool.values(), return_exceptions=True)
        self._pool.clear()


def _unusable(task: asyncio.Task[DtlsRemote]) -> bool:
    if not task.done():
        return False
    return task.cancelled() or task.exception() is not None or task.result().closed


def _hostinfo(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(hostportjoin(str(peer[0]), int(peer[1])))
    return str(peer)


def _request_target(request: Any) -> tuple[str, int]:
    """The (host, port) a coaps:// request goes to, as aiocoap's transports find it."""
    if request.unresolved_remote:
        host, port = hostportsplit(request.unresolved_remote)
    elif request.opt.uri_host:
        host, port = request.opt.uri_host, request.opt.uri_port
    else:
        raise ValueError("no host to send the coaps request to (no Uri-Host, no remote)")
    return str(host), int(port or COAPS_PORT)


def _client_config(
    template: ClientConfig | None, credential: object, host: str, request: Any
) -> tuple[ClientConfig, tuple[object, ...]]:
    """The ClientConfig for ``credential`` (aiocoap's ``dtls`` PSK or ``tlscert`` CA file)
    and a key that tells associations made with different credentials apart."""
    base = template if template is not None else ClientConfig()
    if credential is None:
        return dataclasses.replace(base, server_name=host), ("config",)
    if isinstance(credential, TLSCert):
        config = dataclasses.replace(base, server_name=host, cafile=credential.certfile)
        return config, ("tlscert", credential.certfile)
    as_psk = getattr(credential, "as_dtls_psk", None)
    if as_psk is None:
        raise CredentialsMissingError(
            f"the credentials for {request.get_request_uri()} are neither 'dtls' (PSK) "
            "nor 'tlscert' (a CA file), the kinds dtlsgate.coap uses"
        )
    identity, psk = as_psk()
    config = dataclasses.replace(base, server_name=host, psk_identity=identity, psk=psk)
    return config, ("psk", identity, psk)


def _credentials_map(credentials: Mapping[str, Any] | None) -> Any:
    if credentials is None:
        return CredentialsMap()
    if isinstance(credentials, CredentialsMap):
        return credentials
    loaded = CredentialsMap()
    loaded.load_from_dict(dict(credentials))
    return loaded


def server_psks(credentials: Any) -> tuple[dict[bytes, bytes], dict[bytes, object]]:
    """The PSKs of aiocoap server credentials (their ``dtls`` entries), identity -> key, and
    the label each identity's entry has (its authenticated claim)."""
    identities = []
    for item in credentials.values():
        as_psk = getattr(item, "as_dtls_psk", None)
        if as_psk is not None:
            with suppress(KeyError):
                identities.append(as_psk()[0])
    psks: dict[bytes, bytes] = {}
    claims: dict[bytes, object] = {}
    for identity in identities:
        psk, label = credentials.find_dtls_psk(identity)
        psks[bytes(identity)] = bytes(psk)
        claims[bytes(identity)] = label
    return psks, claims


def _server_config(
    config: ServerConfig | None,
    psks: Mapping[bytes, bytes],
    certfile: str | None,
    keyfile: str | None,
) -> ServerConfig:
    config = config if config is not None else ServerConfig()
    if psks:
        config = dataclasses.replace(config, psk={**config.psk, **psks})
    if certfile is not None:
        config = dataclasses.replace(config)
        config.load_cert_chain(certfile, keyfile)
    elif keyfile is not None:
        raise UsageError("keyfile needs a certfile")
    if not config.psk and not config.certificate_chain and not config.raw_public_key:
        raise UsageError(
            "a coaps server needs credentials: 'dtls' entries (PSKs), a certfile, "
            "or a ServerConfig holding one of those or a raw public key"
        )
    return config


_SERVERS: weakref.WeakKeyDictionary[Any, CoapsServerTransport] = weakref.WeakKeyDictionary()


async def _append(ctx: Any, build: Callable[[Any], Awaitable[_Interface]]) -> None:
    await getattr(ctx, _APPEND_TRANSPORT)(build)


async def create_server_context(
    site: Any,
    bind: tuple[str | None, int | None] | None = None,
    *,
    credentials: Mapping[str, Any] | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    config: ServerConfig | None = None,
    sock: Any = None,
    client_credentials: Mapping[str, Any] | None = None,
    client_config: ClientConfig | None = None,
    loggername: str = "coap-server",
) -> Any:
    """An aiocoap ``Context`` serving ``site`` over coaps on ``bind`` (host, port; default
    ``("::", 5684)``), or on the bound UDP socket ``sock``.

    ``credentials``: aiocoap server credentials; their ``dtls`` entries are the PSKs
    accepted (identity ``client-identity``, key ``psk``), and an entry's label is the
    ``authenticated_claims`` of a request that used it. ``certfile``/``keyfile``: the
    server's certificate chain and key (PEM). ``config``: a `ServerConfig` for the rest
    (a raw public key of ours, ``pinned_keys`` for client keys, ...); the PSKs and
    certificate above are added to a copy of it. The context can also make
    coaps requests, with ``client_credentials`` and ``client_config`` as in
    `create_client_context`. ``server_address(ctx)`` tells the bound address."""
    server_credentials = _credentials_map(credentials)
    psks, claims = server_psks(server_credentials)
    server_config = _server_config(config, psks, certfile, keyfile)
    host, port = bind if bind is not None else (None, None)
    loop = asyncio.get_running_loop()
    ctx = aiocoap.Context(
        loop=loop,
        serversite=site,
        loggername=loggername,
        server_credentials=server_credentials,
        client_credentials=_credentials_map(client_credentials),
    )

    async def build(mman: Any) -> CoapsServerTransport:
        transport = CoapsServerTransport(mman, ctx.log, claims)
        _SERVERS[ctx] = transport
        # aiocoap's convention: a port of None is the default port; 0 lets the OS choose.
        bound_port = COAPS_PORT if port is None else port
        return await transport.start(host or "::", bound_port, server_config, sock)

    await _append(ctx, build)
    await _append(
        ctx, lambda mman: _client_transport(mman, ctx.log, client_config, HANDSHAKE_TIMEOUT)
    )
    return ctx


async def _client_transport(
    mman: Any, log: Any, config: ClientConfig | None, handshake_timeout: float
) -> _Interface:
    return CoapsClientTransport(mman, log, config, handshake_timeout)


async def create_client_context(
    credentials: Mapping[str, Any] | None = None,
    *,
    config: ClientConfig | None = None,
    transports: Iterable[str] = (),
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    loggername: str = "coap",
) -> Any:
    """An aiocoap ``Context`` whose coaps:// requests go over dtlsgate.

    ``credentials``: aiocoap client credentials (a dict as ``load_from_dict`` takes, or a
    ``CredentialsMap``): ``{"coaps://host/*": {"dtls": {"psk": ..., "client-identity":
    ...}}}`` for a PSK, ``{"coaps://host/*": {"tlscert": {"certfile": "ca.pem"}}}`` to
    verify the server's certificate with that CA file. ``config``: a `ClientConfig` for
    the rest (cipher suites, a client certificate, raw public keys: ours and the server
    keys we pin, MTU, ...), and for a coaps:// URI that
    no credential matches (its ``cafile``, or the system's CAs). ``transports``: aiocoap's own
    transports to add for other schemes (e.g. ``["udp6"]`` for coap://).
    ``handshake_timeout``: seconds before a request whose DTLS handshake has not completed
    fails with `DtlsConnectError`."""
    if not handshake_timeout > 0:
        raise UsageError("handshake_timeout must be positive")
    names = list(transports)
    for name in names:
        if name in _TINYDTLS_TRANSPORTS:
            raise UsageError(f"transport {name!r} would take coaps:// from dtlsgate.coap")
    loop = asyncio.get_running_loop()
    if names:
        ctx = await aiocoap.Context.create_client_context(loggername=loggername, transports=names)
    else:
        ctx = aiocoap.Context(loop=loop, loggername=loggername)
    if credentials is not None:
        ctx.client_credentials = _credentials_map(credentials)
    await _append(ctx, lambda mman: _client_transport(mman, ctx.log, config, handshake_timeout))
    return ctx


def _server_transport(ctx: Any) -> CoapsServerTransport:
    transport = _SERVERS.get(ctx)
    if transport is None:
        raise UsageError("not a context made by dtlsgate.coap.create_server_context")
    return transport


def server_address(ctx: Any) -> tuple[str, int]:
    """The (host, port) a context made by `create_server_context` is bound to."""
    return _server_transport(ctx).address


def dtls_server(ctx: Any) -> aio.DtlsServer:
    """The `aio.DtlsServer` under a context made by `create_server_context`: its counters
    (``peers``, ``admits_refused``, ...) and its gate."""
    server = _server_transport(ctx).server
    assert server is not None, "the server transport starts before the context is returned"
    return server


__all__ = [
    "HANDSHAKE_TIMEOUT",
    "SUPPORTED_AIOCOAP",
    "CoapsClientTransport",
    "CoapsServerTransport",
    "DtlsConnectError",
    "DtlsConnectionClosed",
    "DtlsRemote",
    "aiocoap_version",
    "check_aiocoap",
    "create_client_context",
    "create_server_context",
    "dtls_server",
    "server_address",
]
