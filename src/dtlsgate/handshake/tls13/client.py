"""The TLS 1.3 client handshake (RFC 8446 §2, §4): states, the table of legal messages per
state, one handler per (state, message).

Like the server, each state holds only its own data and ``TABLE`` is the one place that
says which message may come next. The client sends its middlebox-compatibility
ChangeCipherSpec right before its encrypted flight (RFC 8446 Appendix D.4 allows this or
before ClientHello2), which also completes against servers that reject a CCS between the
two hellos (OpenSSL 3.0 ``s_server -stateless``).

Resumption: ``ClientConfig.session_ticket`` (a `SessionTicket` from an earlier
connection's ``SessionTicketReceived`` event) is offered as our one PSK identity, with its
binder (RFC 8446 §4.2.11.2), recomputed after a HelloRetryRequest; when the ServerHello
selects it the server sends no Certificate (§2.2). We never send early data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dtlsgate._frozen import frozen
from dtlsgate.crypto.exporters import Tls13Exporter
from dtlsgate.crypto.hashes import Hash, TranscriptHash, constant_time_equal
from dtlsgate.crypto.kex import KeyShare, initial_key_share_groups
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.crypto.signatures import certificate_verify_content
from dtlsgate.crypto.suites import SuiteInfo, suite_info
from dtlsgate.errors import (
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    MissingExtension,
    ProtocolVersionError,
    UnexpectedMessage,
    UnsupportedCertificate,
    UnsupportedExtension,
    UsageError,
)
from dtlsgate.handshake.engine import Machine
from dtlsgate.handshake.tls13 import raw_public_keys as rpk
from dtlsgate.handshake.tls13.common import (
    APPLICATION_EPOCHS,
    DEFAULT_SIGNATURE_SCHEMES,
    EPOCHS,
    HANDSHAKE_EPOCHS,
    TLS_VERSIONS,
    Actions,
    AppSecrets,
    Complete,
    HandshakeInfo,
    InstallKey,
    Keys,
    OwnRecordLimit,
    PeerRecordLimit,
    SendChangeCipherSpec,
    SendMessage,
    TicketReceived,
    Tls13Context,
    UseConnectionIds,
    Versions,
    application_keylog,
    certificate_message,
    compressed,
    expect,
    handshake_keylog,
    install,
    message,
    present,
)
from dtlsgate.handshake.tls13.peer_auth import (
    PeerKey,
    certificate_schemes,
    check_peer_certificate,
    verify_certificate_verify,
)
from dtlsgate.handshake.tls13.post_handshake import Connected, for_dtls, key_update_handler
from dtlsgate.handshake.tls13.tickets import fill_binders
from dtlsgate.wire.cert_compression import (
    decode_compress_certificate,
    encode_compress_certificate,
    parse_algorithm_names,
)
from dtlsgate.wire.enums import (
    AlertDescription,
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    PskKeyExchangeMode,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    Extension,
    KeyShareEntry,
    OfferedPsks,
    PskIdentity,
    chosen_srtp_profile,
    decode_alpn,
    decode_connection_id,
    decode_cookie,
    decode_key_share_hrr,
    decode_key_share_sh,
    decode_pre_shared_key_sh,
    decode_record_size_limit,
    decode_supported_versions_sh,
    decode_u16_list_ext,
    encode_alpn,
    encode_connection_id,
    encode_cookie,
    encode_key_share_ch,
    encode_pre_shared_key_ch,
    encode_psk_key_exchange_modes,
    encode_server_name,
    encode_supported_versions_ch,
    encode_u16_list_ext,
    encode_use_srtp,
)
from dtlsgate.wire.messages import ClientHello, ServerHello
from dtlsgate.wire.messages13 import (
    Certificate,
    CertificateEntry,
    CertificateRequest,
    EncryptedExtensions,
    Finished,
    NewSessionTicket,
    encode_certificate_verify,
)

_A = AlertDescription
_E = ExtensionType
_H = HandshakeType


class ClientContext(Tls13Context):
    """Per-config data of a client: preferences, trust anchors, our credentials (what a
    server's shares with it: `Tls13Context`), the ClientHello's extensions that depend on
    them. What one connection has of its own (the session ticket it offers, a DTLS 1.3
    connection ID) goes to `start` and into the states, so a context can serve every
    connection of its config (a DTLS 1.3 client's is prepared once per config).
    ``log_keys``, ``logging_keys()``: `KeyLogging`."""

    def __init__(self, config: Any, *, versions: Versions = TLS_VERSIONS) -> None:
        super().__init__(config, versions)
        # Offering DTLS 1.2 too (``versions.fallback``): its suites and the extensions a
        # DTLS 1.2 server needs, set by the connection that can fall back.
        self.fallback_suites: tuple[int, ...] = ()
        self.fallback_extensions: tuple[Extension, ...] = ()
        # The ClientHello's extensions that depend on the configuration alone
        # (`hello_extensions`), encoded at the first ClientHello of this context.
        self.hello_extensions: _HelloExtensions | None = None
        self.server_name: str | None = config.server_name
        self.trust: Any = None
        # The server certificate's fingerprints (RFC 8122), parsed once per config.
        self.fingerprints = config.peer_fingerprints()
        by_fingerprint = self.fingerprints is not None
        # An external PSK without a server name to verify nor a fingerprint: the PSK must
        # authenticate the server, a certificate handshake is refused.
        self.psk_only = (
            config.psk is not None
            and not config.insecure
            and not self.server_name
            and not by_fingerprint
        )
        # Without a cafile, pins and fingerprints are the whole check: RFC 7250 raw public
        # keys against the pins (pins alone take nothing else), X.509 by its fingerprint.
        no_ca = (bool(config.pinned_keys) or by_fingerprint) and not config.cafile
        if not config.insecure and not self.psk_only and not no_ca:
            if not self.server_name:
                raise UsageError("a client needs server_name to verify, or insecure=True")
            self.trust = config.trust_store()  # loaded once per config
        self.external: PskOffer | None = None
        if config.psk is not None:
            self.external = external_offer(self, config.psk_identity, config.psk, config.psk_hash)
        self.chain_der: tuple[bytes, ...] = tuple(
            c.public_bytes(_der()) for c in config.certificate_chain
        )
        self.key = config.private_key
        self.key_schemes = certificate_schemes(config.certificate_chain, self.key)
        # RFC 9147 §5: DTLS 1.3 has no middlebox compatibility mode.
        self.middlebox_compat: bool = config.middlebox_compat and not versions.dtls
        # RFC 8879: what we accept, advertised in our ClientHello.
        self.compression = parse_algorithm_names(config.certificate_compression)


def prepared_context(config: Any, versions: Versions = TLS_VERSIONS) -> ClientContext:
    """A context of ``config`` with its ClientHello's extensions encoded, for every
    connection of the config to share (`ClientConfig.prepared` keeps it)."""
    ctx = ClientContext(config, versions=versions)
    hello_extensions(ctx)
    return ctx


def session_ticket(config: Any) -> SessionTicket | None:
    """The session ticket ``config`` holds for a connection to offer, checked."""
    ticket = config.session_ticket
    if ticket is not None and not isinstance(ticket, SessionTicket):
        raise UsageError("session_ticket must be a SessionTicket from SessionTicketReceived")
    return ticket


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


# ---- states -------------------------------------------------------------------------------


@dataclass(slots=True)
class WaitServerHello:
    """Our ClientHello is out. After a HelloRetryRequest, ``retry`` holds the transcript so far
    (message_hash, HRR, ClientHello2) and ``retry_suite`` the suite the HRR chose."""

    hello: ClientHello
    raw: bytes
    shares: dict[int, KeyShare]
    retry: TranscriptHash | None = None
    retry_suite: int | None = None
    offer: PskOffer | None = None
    connection_id: bytes | None = None  # DTLS 1.3: the CID we asked for (RFC 9147 §9)


@frozen
class PskOffer:
    """The PSK we offer as our one identity (RFC 8446 §4.2.11): a ticket, or an external PSK
    (``external``), with a suite of its hash to compute the binder with."""

    identity: bytes
    obfuscated_age: int
    psk: bytes
    suite: int
    external: bool = False
    dtls: bool = False  # a DTLS 1.3 PSK: the "dtls13" labels (RFC 9147 §5.9)

    @property
    def hash(self) -> Any:
        return suite_info(self.suite).hash

    def placeholder(self) -> OfferedPsks:
        identity = PskIdentity(self.identity, self.obfuscated_age)
        return OfferedPsks((identity,), (bytes(self.hash.digest_size),))

    def schedule(self) -> KeySchedule:
        return KeySchedule.for_suite(suite_info(self.suite), self.psk, self.dtls)


def external_offer(ctx: ClientContext, identity: bytes, psk: bytes, hash_name: str) -> PskOffer:
    """Our external PSK as an offer: RFC 8446 §4.2.11 binds it to one hash, so to our suites
    of that hash; its obfuscated_ticket_age is 0."""
    hash = Hash(hash_name)
    suite = next((s for s in ctx.suites if suite_info(s).hash is hash), None)
    if suite is None:
        raise UsageError(f"no cipher suite with {hash_name} to use the PSK with")
    return PskOffer(identity, 0, psk, suite, external=True, dtls=ctx.versions.dtls)


@dataclass(slots=True)
class WaitEncryptedExtensions:
    keys: Keys
    suite: SuiteInfo
    info: HandshakeInfo
    offered: frozenset[int]  # extension types in our ClientHello


@dataclass(slots=True)
class WaitCertificateOrRequest:
    keys: Keys
    suite: SuiteInfo
    info: HandshakeInfo
    raw_public_key: bool = False  # RFC 7250: the server chose a raw public key
    own_raw: bool = False  # RFC 7250: the server takes our raw public key


@dataclass(slots=True)
class WaitCertificate:
    """The server sent a CertificateRequest (RFC 8446 §4.3.2)."""

    keys: Keys
    suite: SuiteInfo
    info: HandshakeInfo
    request: CertificateRequest
    raw_public_key: bool = False  # RFC 7250: the server chose a raw public key
    own_raw: bool = False  # RFC 7250: the server takes our raw public key


@dataclass(slots=True)
class WaitCertificateVerify:
    keys: Keys
    suite: SuiteInfo
    info: HandshakeInfo
    request: CertificateRequest | None
    peer_key: PeerKey
    # What the server's Certificate puts in ``info``, with the signature scheme once its
    # CertificateVerify verified (one copy of ``info`` made, not two): its chain as
    # received, or its raw public key (RFC 7250).
    peer_certificates: tuple[bytes, ...]
    peer_raw_public_key: bytes | None
    own_raw: bool = False  # RFC 7250: the server takes our raw public key


@dataclass(slots=True)
class WaitFinished:
    keys: Keys
    suite: SuiteInfo
    info: HandshakeInfo
    request: CertificateRequest | None
    own_raw: bool = False  # RFC 7250: the server takes our raw public key


ClientState = (
    WaitServerHello
    | WaitEncryptedExtensions
    | WaitCertificateOrRequest
    | WaitCertificate
    | WaitCertificateVerify
    | WaitFinished
    | Connected
)


# ---- ClientHello ------------------------------------------------------------------------------


def client_hello(
    ctx: ClientContext,
    random: bytes,
    session_id: bytes,
    shares: dict[int, KeyShare],
    cookie: bytes | None = None,
    offer: OfferedPsks | None = None,
    connection_id: bytes | None = None,
) -> ClientHello:
    """Our ClientHello (RFC 8446 §4.1.2): the extensions of `hello_extensions` (the same
    in both of a connection's ClientHellos) around the ones that change or are the
    connection's own: the key_share, the cookie, the DTLS 1.3 ``connection_id`` we ask
    the server to send (RFC 9147 §9; None: not offered) and the PSK."""
    before_shares, before_cookie, after_cookie = hello_extensions(ctx)
    entries = [KeyShareEntry(g, s.public_bytes) for g, s in shares.items()]
    ext = [*before_shares, Extension(_E.key_share, encode_key_share_ch(entries)), *before_cookie]
    if cookie is not None:
        ext.append(Extension(_E.cookie, encode_cookie(cookie)))
    ext.extend(after_cookie)
    if connection_id is not None:
        ext.append(Extension(_E.connection_id, encode_connection_id(connection_id)))
    if offer is not None:
        # RFC 8446 §4.2.11: pre_shared_key MUST be the last extension.
        ext.append(Extension(_E.pre_shared_key, encode_pre_shared_key_ch(offer)))
    versions = ctx.versions
    # RFC 9147 §5.3: the DTLS form, with an empty legacy_cookie.
    legacy_cookie = b"" if versions.dtls else None
    return ClientHello(
        versions.legacy_version,
        random,
        session_id,
        (*ctx.suites, *ctx.fallback_suites),
        b"\x00",
        tuple(ext),
        legacy_cookie,
    )


# A ClientHello's extensions that depend on the context alone, in the order sent: those
# before the key_share, those between it and the cookie, those after the cookie.
_HelloExtensions = tuple[tuple[Extension, ...], tuple[Extension, ...], tuple[Extension, ...]]


def hello_extensions(ctx: ClientContext) -> _HelloExtensions:
    """The extensions `client_hello` puts around the key_share, the cookie, a DTLS 1.3
    connection ID and the PSK, encoded at the first ClientHello of a context and kept in
    it for the second (RFC 8446 §4.1.2: ClientHello2 repeats ClientHello1 but for those;
    after a HelloRetryRequest, as a stateless DTLS 1.3 server sends, they are not encoded
    again). A DTLS 1.3 client's context is prepared once per configuration: its
    connections share one encoding."""
    if ctx.hello_extensions is not None:
        return ctx.hello_extensions
    cfg = ctx.config
    ext: list[Extension] = []
    if ctx.server_name and not _is_ip(ctx.server_name):
        # RFC 6066 §3: literal IP addresses are not sent as server names.
        ext.append(Extension(_E.server_name, encode_server_name(ctx.server_name)))
    ext.append(Extension(_E.supported_groups, encode_u16_list_ext(list(ctx.groups))))
    schemes = cfg.signature_schemes or DEFAULT_SIGNATURE_SCHEMES
    ext.append(Extension(_E.signature_algorithms, encode_u16_list_ext(list(schemes))))
    offered = [ctx.versions.version, *ctx.versions.fallback]
    ext.append(Extension(_E.supported_versions, encode_supported_versions_ch(offered)))
    before_shares = tuple(ext)
    modes = encode_psk_key_exchange_modes(list(cfg.psk_modes))
    ext = [Extension(_E.psk_key_exchange_modes, modes)]
    if cfg.alpn_protocols:
        ext.append(
            Extension(_E.application_layer_protocol_negotiation, encode_alpn(cfg.alpn_protocols))
        )
    if cfg.srtp_profiles and ctx.versions.dtls:
        # RFC 5764 §4.1.1, with no MKI: for DTLS 1.3 (answered in the EncryptedExtensions)
        # and the DTLS 1.2 handshake this ClientHello may also offer.
        ext.append(Extension(_E.use_srtp, encode_use_srtp(cfg.srtp_profiles)))
    before_cookie = tuple(ext)
    ext = []
    if ctx.compression:
        # RFC 8879 §3: the algorithms we can decompress a server certificate with.
        data = encode_compress_certificate(ctx.compression)
        ext.append(Extension(_E.compress_certificate, data))
    if cfg.post_handshake_auth:
        # RFC 8446 §4.2.6: we answer a CertificateRequest after the handshake.
        ext.append(Extension(_E.post_handshake_auth, b""))
    # RFC 8449 §4: the largest TLSInnerPlaintext we accept.
    ext.append(Extension(_E.record_size_limit, cfg.record_size_limit.to_bytes(2, "big")))
    # RFC 7250 §4.1: the server's raw public key, when we have pins; our own, when we have
    # one (once: a DTLS 1.2 fallback offer already carries client_certificate_type).
    fallback = {e.type for e in ctx.fallback_extensions}
    ext.extend(e for e in rpk.offers(cfg) if e.type not in fallback)
    ext.extend(ctx.fallback_extensions)
    ctx.hello_extensions = (before_shares, before_cookie, tuple(ext))
    return ctx.hello_extensions


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def psk_offer(
    ctx: ClientContext, ticket: SessionTicket | None, now: float | None
) -> PskOffer | None:
    """Our ``ticket``, when it may be offered: still within its lifetime, for the server
    name it was issued under and a suite we still offer (RFC 8446 §4.6.1, §4.2.11);
    otherwise our external PSK, if we have one."""
    if ticket is None:
        return ctx.external
    if now is None:
        raise UsageError("start(now) needs the current time to offer a session ticket")
    age_ms = int((now - ticket.received_at) * 1000)
    if not 0 <= age_ms <= ticket.ticket.ticket_lifetime * 1000:
        return ctx.external
    if ticket.server_name != ctx.server_name or ticket.suite not in ctx.suites:
        return ctx.external
    if ticket.dtls != ctx.versions.dtls:
        return ctx.external  # its PSK was derived with the other protocol's labels
    # RFC 8446 §4.2.11.1: obfuscated_ticket_age = age in ms + ticket_age_add mod 2^32.
    age = (age_ms + ticket.ticket.ticket_age_add) & 0xFFFFFFFF
    return PskOffer(ticket.ticket.ticket, age, ticket.psk, ticket.suite, dtls=ticket.dtls)


def hello_message(
    ctx: ClientContext, hello: ClientHello, offer: PskOffer | None, prefix: TranscriptHash | None
) -> bytes:
    """The ClientHello message, its binder filled in when it offers a PSK (§4.2.11.2)."""
    raw = message(_H.CLIENT_HELLO, hello.encode())
    if offer is None:
        return raw
    return fill_binders(raw, offer.placeholder(), offer.schedule(), prefix, external=offer.external)


def hello_as_sent(
    ctx: ClientContext, hello: ClientHello, raw: bytes, offer: PskOffer | None
) -> ClientHello:
    """The ClientHello the message ``raw`` carries, kept in the state: ``hello`` itself when
    ``raw`` is its encoding as it is; decoded from ``raw`` when `hello_message` filled in
    binders (a PSK offer), so that the state holds the binders sent."""
    if offer is None:
        return hello
    return ClientHello.decode(raw[4:], dtls=ctx.versions.dtls)


def start(
    ctx: ClientContext,
    now: float | None = None,
    ticket: SessionTicket | None = None,
    connection_id: bytes | None = None,
) -> tuple[WaitServerHello, Actions]:
    """The first flight: one ClientHello with key shares for our first group (and our first
    elliptic curve when that is ML-KEM based: `initial_key_share_groups`), and ``ticket``
    as a PSK when it may be offered (``now`` dates its age); a DTLS 1.3 client's
    ``connection_id`` asked for (RFC 9147 §9)."""
    offer = psk_offer(ctx, ticket, now)
    shares = {
        group: ctx.provider.generate_key_share(NamedGroup(group))
        for group in initial_key_share_groups(ctx.groups)
    }
    # RFC 8446 Appendix D.4: in compatibility mode, a non-empty legacy_session_id.
    session_id = ctx.provider.random(32) if ctx.middlebox_compat else b""
    placeholder = offer.placeholder() if offer is not None else None
    random = ctx.provider.random(32)
    hello = client_hello(ctx, random, session_id, shares, None, placeholder, connection_id)
    raw = hello_message(ctx, hello, offer, None)
    hello = hello_as_sent(ctx, hello, raw, offer)
    state = WaitServerHello(hello, raw, shares, offer=offer, connection_id=connection_id)
    return state, [SendMessage(raw)]


# ---- handlers ---------------------------------------------------------------------------------


def _check_server_hello(ctx: ClientContext, state: WaitServerHello, sh: ServerHello) -> None:
    """Checks common to a ServerHello and a HelloRetryRequest (RFC 8446 §4.1.3, §4.1.4)."""
    version = sh.get(_E.supported_versions)
    # RFC 8446 §4.2.1: a ServerHello without supported_versions negotiates TLS 1.2 or
    # older, which we did not offer.
    version = present(version, "server chose TLS 1.2 or older", ProtocolVersionError)
    versions = ctx.versions
    chosen = decode_supported_versions_sh(version)
    expect(chosen == versions.version, "not (D)TLS 1.3", IllegalParameter)
    expect(sh.legacy_version == versions.legacy_version, "legacy_version", ProtocolVersionError)
    expect(sh.session_id == state.hello.session_id, "session id echo", IllegalParameter)
    expect(sh.cipher_suite in ctx.suites, "suite we did not offer", IllegalParameter)
    expect(sh.compression_method == 0, "compression", IllegalParameter)


def on_server_hello(
    ctx: ClientContext, state: WaitServerHello, body: bytes, raw: bytes, now: float
) -> tuple[ClientState, Actions]:
    sh = ServerHello.decode(body)
    _check_server_hello(ctx, state, sh)
    if sh.is_hello_retry_request:
        return on_hello_retry_request(ctx, state, sh, raw)
    if state.retry_suite is not None:
        # RFC 8446 §4.1.4: the ServerHello must pick the suite the HRR announced.
        expect(sh.cipher_suite == state.retry_suite, "suite changed", IllegalParameter)
    suite = suite_info(sh.cipher_suite)
    psk = accepted_psk(state, sh, suite)
    # A PSK-only client (no server name to verify a certificate against) needs the PSK.
    expect(psk is not None or not ctx.psk_only, "server refused our PSK", HandshakeFailure)
    schedule = ctx.versions.schedule(suite, psk.psk if psk is not None else None)
    group = server_key_share(ctx, state, sh, schedule, psk is not None)
    transcript = state.retry or TranscriptHash(suite.hash, state.raw)
    transcript.update(raw)
    keys = Keys.after_server_hello(schedule, transcript, state.hello.random)
    actions: Actions = [*handshake_keylog(ctx.log_keys, keys)]
    info = HandshakeInfo(
        CipherSuite(sh.cipher_suite),
        group,
        None,
        None,
        ctx.server_name,
        (),
        state.retry is not None,
        psk is not None and not psk.external,
        psk.identity if psk is not None and psk.external else None,
    )
    actions.append(install(False, keys, suite.aead, keys.server_handshake))
    if ctx.versions.dtls:
        # RFC 9147 §7: an ACK goes in the epoch of the records it names or a later one. With
        # our handshake key now rather than at our Finished, the parts of the server's
        # flight that arrived (epoch 2) are acknowledged while the rest is still missing,
        # and the server resends only the rest (§7.1); TLS keeps its key change for the
        # middlebox-compatibility ChangeCipherSpec (RFC 8446 §D.4).
        actions.append(install(True, keys, suite.aead, keys.client_handshake))
    cid = sh.get(_E.connection_id)
    if cid is not None:
        # RFC 9146 §3: only in answer to ours (else unsupported_extension).
        mine = present(state.connection_id, "connection_id not offered", UnsupportedExtension)
        actions.append(UseConnectionIds(mine, decode_connection_id(cid)))
    offered = frozenset(e.type for e in state.hello.extensions or ())
    return WaitEncryptedExtensions(keys, suite, info, offered), actions


def server_key_share(
    ctx: ClientContext,
    state: WaitServerHello,
    sh: ServerHello,
    schedule: KeySchedule,
    with_psk: bool,
) -> NamedGroup | None:
    """Enter the handshake secret with the server's key share, or without one in psk_ke
    mode (RFC 8446 §4.2.9: only with a PSK, in a mode we offered); returns the group."""
    modes = ctx.config.psk_modes
    share_data = sh.get(_E.key_share)
    if share_data is None:
        psk_ke = with_psk and PskKeyExchangeMode.psk_ke in modes
        expect(psk_ke, "ServerHello without key_share", MissingExtension)
        schedule.enter_handshake(None)
        return None
    if with_psk:
        dhe = PskKeyExchangeMode.psk_dhe_ke in modes
        expect(dhe, "key_share with a psk_ke-only PSK", IllegalParameter)
    entry = decode_key_share_sh(share_data)
    ours = state.shares.get(entry.group)
    ours = present(ours, "key share for a group we did not send", IllegalParameter)
    schedule.enter_handshake(ours.exchange(entry.key_exchange))
    return NamedGroup(entry.group)


def accepted_psk(state: WaitServerHello, sh: ServerHello, suite: SuiteInfo) -> PskOffer | None:
    """Our offer when the ServerHello selected it (RFC 8446 §4.2.11: the identity must be
    one we offered and the suite's hash the PSK's, else illegal_parameter)."""
    data = sh.get(_E.pre_shared_key)
    if data is None:
        return None
    selected = decode_pre_shared_key_sh(data)
    offer = state.offer
    expect(selected == 0, "selected_identity", IllegalParameter)
    offer = present(offer, "selected_identity", IllegalParameter)
    expect(suite.hash == offer.hash, "suite hash is not the PSK's", IllegalParameter)
    return offer


def on_hello_retry_request(
    ctx: ClientContext, state: WaitServerHello, hrr: ServerHello, raw: bytes
) -> tuple[ClientState, Actions]:
    """RFC 8446 §4.1.4: answer a HelloRetryRequest with ClientHello2."""
    # RFC 8446 §4.1.4: a second HelloRetryRequest is unexpected_message.
    expect(state.retry is None, "second HelloRetryRequest", UnexpectedMessage)
    group_data = hrr.get(_E.key_share)
    cookie_data = hrr.get(_E.cookie)
    shares = dict(state.shares)
    if group_data is not None:
        group = decode_key_share_hrr(group_data)
        # RFC 8446 §4.2.8: the group must be one we offered, without a share already sent.
        expect(group in ctx.groups, "HRR group not offered", IllegalParameter)
        expect(group not in state.shares, "HRR for a group we sent", IllegalParameter)
        shares = {group: ctx.provider.generate_key_share(NamedGroup(group))}
    # RFC 8446 §4.1.4: an HRR that would not change the ClientHello is illegal_parameter.
    expect(group_data is not None or cookie_data is not None, "empty HRR", IllegalParameter)
    cookie = decode_cookie(cookie_data) if cookie_data is not None else None
    first = state.hello
    hash = suite_info(hrr.cipher_suite).hash
    # RFC 8446 §4.1.4: keep the PSK only if its hash is the suite's the HRR chose.
    offer = state.offer if state.offer is not None and state.offer.hash == hash else None
    placeholder = offer.placeholder() if offer is not None else None
    cid = state.connection_id
    hello2 = client_hello(ctx, first.random, first.session_id, shares, cookie, placeholder, cid)
    transcript = TranscriptHash.after_hello_retry(hash, state.raw)
    transcript.update(raw)
    raw2 = hello_message(ctx, hello2, offer, transcript)
    hello2 = hello_as_sent(ctx, hello2, raw2, offer)
    transcript.update(raw2)
    retry = WaitServerHello(hello2, raw2, shares, transcript, hrr.cipher_suite, offer, cid)
    return retry, [SendMessage(raw2)]


def on_encrypted_extensions(
    ctx: ClientContext, state: WaitEncryptedExtensions, body: bytes, raw: bytes, now: float
) -> tuple[ClientState, Actions]:
    ee = EncryptedExtensions.decode(body)
    # RFC 8446 §4.2: an extension response to an extension we did not send aborts the
    # handshake with unsupported_extension.
    unsolicited = [e.type for e in ee.extensions if e.type not in state.offered]
    expect(not unsolicited, f"unsolicited extensions {unsolicited}", UnsupportedExtension)
    actions: Actions = []
    info = state.info
    alpn_data = ee.get(_E.application_layer_protocol_negotiation)
    if alpn_data is not None:
        chosen = decode_alpn(alpn_data)
        # RFC 7301 §3.1: exactly one protocol, one that we offered.
        ok = len(chosen) == 1 and chosen[0] in ctx.config.alpn_protocols
        expect(ok, "server chose an ALPN protocol we did not offer", IllegalParameter)
        info = dataclasses.replace(info, alpn_protocol=chosen[0])
    srtp = chosen_srtp_profile(ee.get(_E.use_srtp), ctx.config.srtp_profiles)
    if srtp is not None:
        info = dataclasses.replace(info, srtp_profile=srtp)
    limit = ee.get(_E.record_size_limit)
    if limit is not None:
        # RFC 8449 §4: both sent the extension: each honours the other's limit.
        actions.append(PeerRecordLimit(decode_record_size_limit(limit)))
        actions.append(OwnRecordLimit(ctx.config.record_size_limit))
    state.keys.transcript.update(raw)
    if info.psk_authenticated:
        # RFC 8446 §2.2: a PSK handshake has no Certificate or CertificateVerify.
        return WaitFinished(state.keys, state.suite, info, None), actions
    offered = {e.type: e.data for e in rpk.offers(ctx.config)}
    raw_key = rpk.chosen_raw(
        ee.get(_E.server_certificate_type), offered.get(_E.server_certificate_type)
    )
    # RFC 7250 §4.2: the type of the certificate we send if asked (X.509 without an echo).
    own_raw = rpk.chosen_raw(
        ee.get(_E.client_certificate_type), offered.get(_E.client_certificate_type)
    )
    return WaitCertificateOrRequest(state.keys, state.suite, info, raw_key, own_raw), actions


def on_certificate_request(
    ctx: ClientContext, state: WaitCertificateOrRequest, body: bytes, raw: bytes, now: float
) -> tuple[ClientState, Actions]:
    request = CertificateRequest.decode(body)
    # RFC 8446 §4.3.2: signature_algorithms MUST be present; the context is empty during
    # the handshake.
    expect(
        request.get(_E.signature_algorithms) is not None,
        "CertificateRequest without signature_algorithms",
        MissingExtension,
    )
    expect(request.request_context == b"", "certificate_request_context", IllegalParameter)
    state.keys.transcript.update(raw)
    return WaitCertificate(
        state.keys, state.suite, state.info, request, state.raw_public_key, state.own_raw
    ), []


def on_certificate(
    ctx: ClientContext,
    state: WaitCertificateOrRequest | WaitCertificate,
    body: bytes,
    raw: bytes,
    now: float,
) -> tuple[ClientState, Actions]:
    cert = Certificate.decode(body)
    expect(cert.request_context == b"", "certificate_request_context", IllegalParameter)
    # RFC 8446 §4.4.2.4: a server's Certificate is never empty (decode_error).
    if not cert.entries:
        raise DecodeError("server sent an empty Certificate")
    request = state.request if isinstance(state, WaitCertificate) else None
    info = state.info
    raw_key: bytes | None
    if state.raw_public_key:
        peer_key = rpk.peer_raw_key(cert.chain_der, ctx.config.pinned_keys)
        chain, raw_key = info.peer_certificates, cert.chain_der[0]
    else:
        # Pins only (no cafile): an X.509 certificate is not a type we take (RFC 7250 §4.2).
        trust, fingerprints = ctx.trust, ctx.fingerprints
        no_anchors = trust is None and fingerprints is None and bool(ctx.config.pinned_keys)
        expect(not no_anchors, "X.509 certificate without trust anchors", UnsupportedCertificate)
        peer_key = check_peer_certificate(cert.chain_der, ctx.server_name, trust, fingerprints, now)
        chain, raw_key = cert.chain_der, info.peer_raw_public_key
    state.keys.transcript.update(raw)
    return WaitCertificateVerify(
        state.keys, state.suite, info, request, peer_key, chain, raw_key, state.own_raw
    ), []


def on_certificate_verify(
    ctx: ClientContext, state: WaitCertificateVerify, body: bytes, raw: bytes, now: float
) -> tuple[ClientState, Actions]:
    scheme = verify_certificate_verify(
        ctx.provider,
        state.peer_key,
        body,
        state.keys.transcript.digest(),
        server=True,
        offered=ctx.config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES,
    )
    state.keys.transcript.update(raw)
    info = dataclasses.replace(
        state.info,
        peer_certificates=state.peer_certificates,
        peer_raw_public_key=state.peer_raw_public_key,
        signature_scheme=scheme,
    )
    return WaitFinished(state.keys, state.suite, info, state.request, state.own_raw), []


def on_finished(
    ctx: ClientContext, state: WaitFinished, body: bytes, raw: bytes, now: float
) -> tuple[ClientState, Actions]:
    keys = state.keys
    fin = Finished.decode(body, keys.schedule.hash.digest_size)
    # RFC 8446 §4.4.4: a wrong verify_data is decrypt_error.
    if not constant_time_equal(fin.verify_data, keys.finished(server=True)):
        raise DecryptError("server Finished does not verify")
    keys.transcript.update(raw)
    keys.schedule.enter_master()
    th = keys.transcript.digest()
    client_app = keys.schedule.client_application_traffic_secret(th)
    server_app = keys.schedule.server_application_traffic_secret(th)
    # Over the transcript through the server Finished, like the secrets themselves.
    app_secrets = AppSecrets(client_app, server_app)
    actions: Actions = [*application_keylog(ctx.log_keys, keys, app_secrets, th)]
    if ctx.middlebox_compat:
        actions.append(SendChangeCipherSpec())
    if not ctx.versions.dtls:  # DTLS installed it at the ServerHello
        actions.append(install(True, keys, state.suite.aead, keys.client_handshake))
    if state.request is not None:
        answer = client_certificate(ctx, keys.transcript, state.request, state.own_raw)
        actions.extend(SendMessage(m) for m in answer)
    mine = message(_H.FINISHED, Finished(keys.finished(server=False)).encode())
    keys.transcript.update(mine)
    actions.append(SendMessage(mine))
    resumption = keys.schedule.resumption_master_secret(keys.transcript.digest())
    app = AppSecrets(client_app, server_app, resumption, th)
    actions.append(install(True, keys, state.suite.aead, client_app))
    actions.append(install(False, keys, state.suite.aead, server_app))
    actions.append(Complete(state.info, None, Tls13Exporter(keys.schedule, th)))
    pha = ctx.config.post_handshake_auth
    connected = Connected(
        keys.schedule, state.suite, app, server_app, client_app, 0, keys.transcript, pha
    )
    return connected, actions


def on_post_handshake_certificate_request(
    ctx: ClientContext, state: Connected, body: bytes, raw: bytes, now: float
) -> tuple[ClientState, Actions]:
    """RFC 8446 §4.6.2: answer a CertificateRequest after the handshake with Certificate,
    CertificateVerify (when we have a fitting certificate) and Finished, over the
    handshake's transcript followed by the request; the Finished key is our current
    application traffic secret (§4.4)."""
    # RFC 8446 §4.6.2: without our post_handshake_auth it is unexpected_message.
    expect(ctx.config.post_handshake_auth, "CertificateRequest", UnexpectedMessage)
    request = CertificateRequest.decode(body)
    expect(
        request.get(_E.signature_algorithms) is not None,
        "CertificateRequest without signature_algorithms",
        MissingExtension,
    )
    transcript = present(state.transcript, "no transcript", InternalError).copy()
    transcript.update(raw)
    messages = client_certificate(ctx, transcript, request)
    verify_data = state.schedule.finished_verify_data(state.write_secret, transcript.digest())
    messages.append(message(_H.FINISHED, Finished(verify_data).encode()))
    return state, [SendMessage(m) for m in messages]


def client_certificate(
    ctx: ClientContext,
    transcript: TranscriptHash,
    request: CertificateRequest,
    raw: bool = False,
) -> list[bytes]:
    """Certificate and CertificateVerify for a CertificateRequest, fed to ``transcript``
    (RFC 8446 §4.4.2.4: an empty Certificate when we have nothing fitting; §4.4.2: the
    request's context echoed). ``raw``: the server chose our raw public key (RFC 7250 §3:
    one CertificateEntry holding our SubjectPublicKeyInfo)."""
    offered = decode_u16_list_ext(request.get(_E.signature_algorithms) or b"\x00\x00", 0)
    scheme = None
    own = rpk.own_entries(ctx.chain_der, ctx.key, raw) if ctx.key is not None else ()
    if own:
        # RFC 8446 §4.4.3: never RSASSA-PKCS1-v1_5 in a TLS 1.3 CertificateVerify; §4.2.3:
        # the scheme fits the certificate's key type.
        scheme = next((s for s in ctx.key_schemes if s in offered), None)
    entries = tuple(CertificateEntry(d) for d in own) if scheme else ()
    body = Certificate(request.request_context, entries).encode()
    # RFC 8879 §3: compressed with an algorithm the server's request lists, when we have one.
    asked = request.get(_E.compress_certificate)
    algorithms = decode_compress_certificate(asked) if asked is not None and entries else ()
    cert = certificate_message(body, algorithms)
    transcript.update(cert)
    if scheme is None:
        return [cert]
    content = certificate_verify_content(transcript.digest(), server=False)
    signature = ctx.provider.sign(ctx.key, SignatureScheme(scheme), content)
    cv = message(_H.CERTIFICATE_VERIFY, encode_certificate_verify(scheme, signature))
    transcript.update(cv)
    return [cert, cv]


@frozen
class SessionTicket:
    """A ticket and the resumption PSK it stands for (RFC 8446 §4.6.1)."""

    ticket: NewSessionTicket
    psk: bytes
    suite: CipherSuite
    received_at: float
    server_name: str | None = None
    dtls: bool = False  # issued over DTLS 1.3 (its PSK has the "dtls13" labels)


def on_new_session_ticket(
    ctx: ClientContext, state: Connected, body: bytes, raw: bytes, now: float
) -> tuple[ClientState, Actions]:
    nst = NewSessionTicket.decode(body)
    psk = state.schedule.resumption_psk(state.app.resumption, nst.ticket_nonce)
    dtls = ctx.versions.dtls
    ticket = SessionTicket(nst, psk, state.suite.suite, now, ctx.server_name, dtls)
    return state, [TicketReceived(ticket)]


Handler = Callable[[ClientContext, Any, bytes, bytes, float], tuple[ClientState, Actions]]

#: The one table of legal messages per state (RFC 8446 §2, Appendix A.1).
TABLE: dict[type, dict[int, Handler]] = {
    WaitServerHello: {_H.SERVER_HELLO: on_server_hello},
    WaitEncryptedExtensions: {_H.ENCRYPTED_EXTENSIONS: on_encrypted_extensions},
    WaitCertificateOrRequest: {
        _H.CERTIFICATE_REQUEST: on_certificate_request,
        _H.CERTIFICATE: on_certificate,
        _H.COMPRESSED_CERTIFICATE: compressed(on_certificate),
    },
    WaitCertificate: {
        _H.CERTIFICATE: on_certificate,
        _H.COMPRESSED_CERTIFICATE: compressed(on_certificate),
    },
    WaitCertificateVerify: {_H.CERTIFICATE_VERIFY: on_certificate_verify},
    WaitFinished: {_H.FINISHED: on_finished},
    Connected: {
        _H.NEW_SESSION_TICKET: on_new_session_ticket,
        _H.KEY_UPDATE: key_update_handler,
        _H.CERTIFICATE_REQUEST: on_post_handshake_certificate_request,
    },
}

#: The client as an engine `Machine`: the table above, where each handler may go, and the
#: epoch rule (`dtlsgate.handshake.tls13.common.EPOCHS`).
CLIENT: Machine[Handler] = Machine(
    name="TLS 1.3 client",
    start=(WaitServerHello,),
    table=TABLE,
    goes_to={
        # A HelloRetryRequest is a ServerHello: the client waits for the real one.
        (WaitServerHello, _H.SERVER_HELLO): (WaitEncryptedExtensions, WaitServerHello),
        (WaitEncryptedExtensions, _H.ENCRYPTED_EXTENSIONS): (
            WaitCertificateOrRequest,
            WaitFinished,
        ),
        (WaitCertificateOrRequest, _H.CERTIFICATE_REQUEST): (WaitCertificate,),
        (WaitCertificateOrRequest, _H.CERTIFICATE): (WaitCertificateVerify,),
        (WaitCertificateOrRequest, _H.COMPRESSED_CERTIFICATE): (WaitCertificateVerify,),
        (WaitCertificate, _H.CERTIFICATE): (WaitCertificateVerify,),
        (WaitCertificate, _H.COMPRESSED_CERTIFICATE): (WaitCertificateVerify,),
        (WaitCertificateVerify, _H.CERTIFICATE_VERIFY): (WaitFinished,),
        (WaitFinished, _H.FINISHED): (Connected,),
        (Connected, _H.NEW_SESSION_TICKET): (Connected,),
        (Connected, _H.KEY_UPDATE): (Connected,),
        (Connected, _H.CERTIFICATE_REQUEST): (Connected,),
    },
    epochs=EPOCHS,
    default_epochs=HANDSHAKE_EPOCHS,
    after_handshake=frozenset({Connected}),
    after_handshake_epochs=APPLICATION_EPOCHS,
)

#: The DTLS 1.3 client: the same, with the connection ID messages after the handshake
#: (RFC 9147 §9).
DTLS_CLIENT = for_dtls(CLIENT, "DTLS 1.3 client")


__all__ = [
    "CLIENT",
    "DTLS_CLIENT",
    "TABLE",
    "ClientContext",
    "InstallKey",
    "SessionTicket",
    "start",
]
