"""The TLS 1.3 server handshake (RFC 8446 §2, §4): states, the table of legal messages per
state, and one handler per (state, message).

Each state holds only the data valid in it. ``TABLE[state type][message type]`` is the
handler; a message type absent from a state's row is an unexpected_message (§4, "a peer
which receives a handshake message in an unexpected order MUST abort"). Handlers return the
next state and the `Action`s for the record layer. The transcript is fed the bytes received.

Resumption (RFC 8446 §2.2, psk_dhe_ke only): a ClientHello offering one of our tickets
(`dtlsgate.handshake.tls13.tickets`, stateless, sealed with ``config.ticket_key``) that is fresh and
whose binder verifies is answered with pre_shared_key in the ServerHello and only
EncryptedExtensions and Finished; any other offer is ignored (a full handshake). After the
client's Finished the server sends ``config.session_tickets`` NewSessionTickets. 0-RTT is
never accepted: offered early data is skipped (``MAX_EARLY_DATA_SKIP``, §4.2.10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from dtlsgate._frozen import frozen
from dtlsgate._memo import Memo
from dtlsgate.crypto.certs import Fingerprints
from dtlsgate.crypto.exporters import Tls13Exporter
from dtlsgate.crypto.hashes import (
    Hash,
    TranscriptHash,
    constant_time_equal,
    message_hash_from_digest,
)
from dtlsgate.crypto.kex import respond
from dtlsgate.crypto.signatures import certificate_verify_content
from dtlsgate.crypto.suites import SuiteInfo, suite_info
from dtlsgate.errors import (
    CertificateRequired,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    MissingExtension,
    NoApplicationProtocol,
    UnsupportedCertificate,
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
    ClientAuthenticated,
    ClientHelloInfo,
    Complete,
    HandshakeInfo,
    Keys,
    OwnRecordLimit,
    PeerRecordLimit,
    SendChangeCipherSpec,
    SendMessage,
    SkipEarlyData,
    Tls13Context,
    UseConnectionIds,
    Versions,
    application_keylog,
    client_hello_fixed_part,
    compressed,
    compressed_certificate_message,
    compression_algorithm,
    decode_client_hello,
    expect,
    handshake_keylog,
    hello_retry_request,
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
from dtlsgate.handshake.tls13.post_handshake import (
    Connected,
    PendingAuth,
    WaitPostHandshakeCertificate,
    WaitPostHandshakeCertificateVerify,
    WaitPostHandshakeFinished,
    for_dtls,
    key_update_handler,
    moved,
)
from dtlsgate.handshake.tls13.tickets import (
    TicketSealer,
    TicketState,
    binder,
    binders_equal,
    truncate,
)
from dtlsgate.wire.cert_compression import encode_compress_certificate, parse_algorithm_names
from dtlsgate.wire.enums import (
    AlertDescription,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    PskKeyExchangeMode,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    Extension,
    KeyShareEntry,
    decode_connection_id,
    encode_alpn,
    encode_connection_id,
    encode_key_share_sh,
    encode_supported_versions_sh,
    encode_u16_list_ext,
    encode_use_srtp,
    pick_srtp_profile,
)
from dtlsgate.wire.handshake import TLS_HANDSHAKE_HEADER_LENGTH
from dtlsgate.wire.messages import RANDOM_LENGTH, ClientHello, encode_server_hello
from dtlsgate.wire.messages13 import (
    Certificate,
    CertificateEntry,
    CertificateRequest,
    EncryptedExtensions,
    Finished,
    encode_certificate_verify,
    encode_new_session_ticket,
)

_A = AlertDescription
_E = ExtensionType
_H = HandshakeType
# RFC 8446 §4.2.10: when a client sends 0-RTT data we reject, we skip that many bytes of
# its early-data records at most (the max_early_data_size a server would have allowed in
# its tickets; ours allow none, so only a client resuming a ticket from elsewhere sends
# any). 64 KiB bounds the decryption attempts one connection can cost us.
MAX_EARLY_DATA_SKIP = 1 << 16
# RFC 8446 §4.2.11 lets a client offer many PSK identities; clients offer their newest
# ticket or a few. Trying at most 4 bounds the ticket decryptions one ClientHello can cost.
MAX_PSK_IDENTITIES_TRIED = 4
# The server's choice without a PSK remembered per offer (`choose`): a `Memo` of at most
# MAX_CHOICES offers, each of at most MAX_CHOICE_ITEMS suites, groups, signature schemes
# and ALPN names, and MAX_CHOICE_ALPN_BYTES bytes of names (a common offer has 20 to 40
# items and none or a few short names).
# Keyed by the decoded fields, the only form the engine has (a TLS ClientHello is decoded
# whole); the DTLS 1.3 gate keeps its own, keyed by the offer's bytes before any decoding
# (`DtlsGate13.choose`), and its misses come here. A refusal is kept there, not here: a
# spoofed datagram costs its sender nothing, so the gate must not redo the work per copy,
# while an offer reaches the engine only after a TCP connection or a verified cookie, and
# one the DTLS gate refused never does.
MAX_CHOICES = 32
MAX_CHOICE_ITEMS = 128
MAX_CHOICE_ALPN_BYTES = 512
# In a HelloRetryRequest message: the handshake header, legacy_version and random, then the
# session_id's length byte (RFC 8446 §4.1.3).
_SESSION_ID_AT = TLS_HANDSHAKE_HEADER_LENGTH + 2 + RANDOM_LENGTH + 1


class ServerContext(Tls13Context):
    """Long-lived per-config data: credentials in wire form and preferences (what a client's
    shares with it: `Tls13Context`). ``log_keys``, ``logging_keys()``: `KeyLogging`."""

    def __init__(self, config: Any, *, versions: Versions = TLS_VERSIONS) -> None:
        super().__init__(config, versions)
        chain = config.certificate_chain
        self.chain_der = tuple(c.public_bytes(Encoding.DER) for c in chain)
        self.key = config.private_key
        # RFC 8446 §4.2.3, §4.4.3: RSA signs with RSASSA-PSS only in TLS 1.3 (no PKCS#1),
        # with rsa_pss_pss_* when the certificate names id-RSASSA-PSS, else rsa_pss_rsae_*.
        schemes = certificate_schemes(chain, self.key)
        if config.signature_schemes:
            # The configured schemes, in their order, that our key can sign with.
            schemes = tuple(SignatureScheme(s) for s in config.signature_schemes if s in schemes)
        self.key_schemes = schemes
        # What our CertificateRequest offers, and so what a client may sign with.
        self.request_schemes: tuple[int, ...] = (
            config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES
        )
        self.trust: Any = None
        self.fingerprints: Fingerprints | None = None
        # Client CAs and client certificate fingerprints (RFC 8122): for client
        # certificates in the handshake, and for post-handshake authentication (RFC 8446
        # §4.6.2), which either alone enables.
        self.client_cas: Any = None
        if config.cafile:
            self.client_cas = config.trust_store()  # once per config, shared with DTLS 1.2
        self.client_fingerprints = config.peer_fingerprints()  # parsed once per config
        if config.verify_client != "none":
            self.trust = self.client_cas
            self.fingerprints = self.client_fingerprints
        self.sealer = TicketSealer(config.ticket_key, self.provider)
        # RFC 8879: what we accept from clients, advertised in our CertificateRequests.
        self.compression = parse_algorithm_names(config.certificate_compression)
        self.psk_hash = Hash(config.psk_hash)
        # Our Certificate message per (raw public key, compression algorithm): the same
        # bytes in every handshake, encoded (and compressed) at the first that needs it.
        self._certificates: dict[tuple[bool, int | None], bytes] = {}
        # Our EncryptedExtensions per what it says (`encrypted_extensions`): a handful per
        # config, the ALPN protocol being one of ours.
        self._encrypted_extensions: dict[tuple[object, ...], bytes] = {}
        # The stateless HelloRetryRequest per shape (`retry_request`): (suite, group or
        # None, session_id length, cookie length) -> the message before the session_id and
        # between it and the cookie. A handful per config: our suites and groups, session_ids
        # of 0 to 32 bytes, the lengths of our own cookies.
        self._retry_requests: dict[tuple[int, int | None, int, int], tuple[bytes, bytes]] = {}
        # The ServerHello per shape (`server_hello`): (suite, group, session_id length, key
        # share length, selected PSK identity, connection ID length) -> the message around
        # the random, session_id, key share and connection ID. A handful per config: our
        # suites and groups (a group's share has one length), session_ids of 0 to 32 bytes,
        # the first MAX_PSK_IDENTITIES_TRIED identities, our own connection ID length.
        self._server_hellos: dict[tuple[object, ...], tuple[bytes, bytes, bytes, bytes]] = {}
        # `choose`'s answer without a PSK, per offer.
        self.choices: Memo[tuple[object, ...], Choice] = Memo(MAX_CHOICES)

    def certificate(self, raw: bool, peer_algorithms: tuple[int, ...]) -> bytes:
        """Our Certificate message (RFC 8446 §4.4.2): the chain, or our key's
        SubjectPublicKeyInfo when ``raw`` (RFC 7250); compressed with the first algorithm we
        have among the client's (RFC 8879 §3)."""
        algorithm = compression_algorithm(peer_algorithms)
        encoded = self._certificates.get((raw, algorithm))
        if encoded is None:
            entries = rpk.own_entries(self.chain_der, self.key, raw)
            body = Certificate(b"", tuple(CertificateEntry(d) for d in entries)).encode()
            encoded = compressed_certificate_message(body, algorithm)
            self._certificates[raw, algorithm] = encoded
        return encoded

    def encrypted_extensions(
        self,
        info: ClientHelloInfo,
        alpn: bytes | None,
        server_type: int | None,
        client_type: int | None,
        srtp_profile: int | None,
    ) -> bytes:
        """Our EncryptedExtensions message (`encrypted_extensions`), the same bytes in every
        handshake that says the same: encoded at the first."""
        name_used = info.server_name is not None
        size_limit = info.record_size_limit is not None
        key = (name_used, alpn, size_limit, server_type, client_type, srtp_profile)
        encoded = self._encrypted_extensions.get(key)
        if encoded is None:
            encoded = encrypted_extensions(
                self, name_used, alpn, size_limit, server_type, client_type, srtp_profile
            )
            self._encrypted_extensions[key] = encoded
        return encoded

    def server_hello(
        self,
        random: bytes,
        session_id: bytes,
        suite: int,
        group: int | None,
        share: bytes | None,
        psk_index: int | None,
        cid: bytes | None,
    ) -> bytes:
        """`server_hello`, made from the message of its shape, encoded at the first, with
        the random, session_id, our key share and connection ID put in: the rest (the
        header, the suite, the extensions' framing, the version chosen) is the same bytes
        in every handshake of that shape."""
        share_length = None
        if group is None or share is None:
            share = b""  # no key_share (`server_hello` sends one only with both)
        else:
            share_length = len(share)
        cid_length = None if cid is None else len(cid)
        shape = (suite, group, len(session_id), share_length, psk_index, cid_length)
        parts = self._server_hellos.get(shape)
        if parts is None:
            parts = _server_hello_parts(self.versions, *shape)
            self._server_hellos[shape] = parts
        return b"".join(
            (parts[0], random, parts[1], session_id, parts[2], share, parts[3], cid or b"")
        )

    def retry_request(
        self, session_id: bytes, suite: int, group: int | None, cookie: bytes
    ) -> bytes:
        """`hello_retry_request` with a cookie, as a stateless retry sent it: made from the
        message of its shape, encoded at the first, with the session_id and cookie put in
        (the cookie is the last field of the last extension)."""
        shape = (suite, group, len(session_id), len(cookie))
        parts = self._retry_requests.get(shape)
        if parts is None:
            hrr = hello_retry_request(
                bytes(len(session_id)), suite, group, bytes(len(cookie)), self.versions
            )
            after = _SESSION_ID_AT + len(session_id)
            parts = (hrr[:_SESSION_ID_AT], hrr[after : len(hrr) - len(cookie)])
            self._retry_requests[shape] = parts
        return b"".join((parts[0], session_id, parts[1], cookie))


# ---- states -------------------------------------------------------------------------------


@dataclass(slots=True)
class ServerStart:
    """Waiting for the first ClientHello."""


#: The state every server connection starts in: a `ServerStart` holds nothing (no field, no
#: slot to set), so one object serves them all instead of one made per connection.
SERVER_START = ServerStart()


@dataclass(slots=True)
class WaitClientHello2:
    """A HelloRetryRequest was sent (statefully); the second ClientHello must repeat the first
    but for the key_share (RFC 8446 §4.1.2)."""

    client_hello1_fixed: bytes  # `client_hello_fixed_part` of ClientHello1
    suite: int
    group: NamedGroup
    transcript: TranscriptHash
    cookie: bytes | None = None  # the HelloRetryRequest's cookie (ours never has one)


@dataclass(slots=True)
class WaitClientCertificate:
    """Our flight went with a CertificateRequest (RFC 8446 §4.3.2)."""

    keys: Keys
    suite: SuiteInfo
    app: AppSecrets
    info: HandshakeInfo
    raw_public_key: bool = False  # RFC 7250: we asked for a raw public key


@dataclass(slots=True)
class WaitClientCertificateVerify:
    keys: Keys
    suite: SuiteInfo
    app: AppSecrets
    info: HandshakeInfo
    peer_key: PeerKey


@dataclass(slots=True)
class WaitClientFinished:
    keys: Keys
    suite: SuiteInfo
    app: AppSecrets
    info: HandshakeInfo
    # Transcript-Hash through our Finished, what the client's Finished covers when it sent
    # nothing before it (RFC 8446 §4.4.4): the application secrets' hash, kept so that it
    # is not computed twice; None after a client certificate.
    transcript_hash: bytes | None = None


ServerState = (
    ServerStart
    | WaitClientHello2
    | WaitClientCertificate
    | WaitClientCertificateVerify
    | WaitClientFinished
    | Connected
    | WaitPostHandshakeCertificate
    | WaitPostHandshakeCertificateVerify
    | WaitPostHandshakeFinished
)


# ---- negotiation ------------------------------------------------------------------------------


@frozen
class Choice:
    """What the server picked from a ClientHello (RFC 8446 §4.1.1)."""

    suite: int
    group: NamedGroup | None  # None: psk_ke, no (EC)DHE (RFC 8446 §4.2.9)
    scheme: SignatureScheme | None  # None: a PSK authenticates
    alpn: bytes | None


@frozen
class PskCandidate:
    """A PSK the client offered that we hold (RFC 8446 §4.2.11): ``index`` of its identity,
    the key and its hash, the suite a ticket fixes (None for an external PSK: any of our
    suites with its hash), and the key exchange mode we chose for it (§4.2.9)."""

    index: int
    psk: bytes
    hash: Hash
    suite: int | None
    mode: int
    external_identity: bytes | None = None


@frozen
class AcceptedPsk:
    """A PSK whose binder verified (RFC 8446 §4.2.11)."""

    index: int
    psk: bytes
    external_identity: bytes | None = None


def psk_mode(ctx: ServerContext, info: ClientHelloInfo, dhe_only: bool) -> int | None:
    """Our most preferred PSK mode the client offers (RFC 8446 §4.2.9); psk_dhe_ke only
    after a HelloRetryRequest, which asked for a key share."""
    # RFC 8446 §4.2.9: a ClientHello with pre_shared_key must have psk_key_exchange_modes.
    expect(bool(info.psk_modes), "pre_shared_key without psk_modes", MissingExtension)
    ours = (PskKeyExchangeMode.psk_dhe_ke,) if dhe_only else ctx.config.psk_modes
    return next((m for m in ours if m in info.psk_modes), None)


def find_psk(
    ctx: ServerContext,
    hello: ClientHello,
    info: ClientHelloInfo,
    now: float,
    suites: tuple[int, ...],
    dhe_only: bool = False,
) -> PskCandidate | None:
    """The first offered identity that is one of our external PSKs (with a suite of its
    hash that both offer) or one of our tickets, fresh (age and lifetime, RFC 8446 §4.6.1),
    for a suite both still offer. Tickets resume only without client certificates (a
    ticket does not carry the client's identity). Any other offer is ignored and a full
    handshake follows (§4.2.11)."""
    offer = info.psk
    if offer is None:
        return None
    mode = psk_mode(ctx, info, dhe_only)
    if mode is None:
        return None
    # Each identity costs a dict lookup and an AEAD open: only the first few are tried.
    for index, identity in enumerate(offer.identities[:MAX_PSK_IDENTITIES_TRIED]):
        key = ctx.config.psk.get(identity.identity)
        if key is not None:
            # RFC 8446 §4.2.11: an external PSK is used only with a suite of its hash.
            if any(s in hello.cipher_suites and suite_info(s).hash is ctx.psk_hash for s in suites):
                return PskCandidate(index, key, ctx.psk_hash, None, mode, identity.identity)
            continue
        if ctx.config.verify_client != "none":
            continue
        state = ctx.sealer.open(identity.identity)
        if state is None or not state.age_ok(identity.obfuscated_ticket_age, now):
            continue
        if state.suite in hello.cipher_suites and state.suite in suites:
            hash = suite_info(state.suite).hash
            return PskCandidate(index, state.psk, hash, state.suite, mode)
    return None


def check_binder(
    found: PskCandidate | None,
    info: ClientHelloInfo,
    prefix: TranscriptHash | None,
    raw: bytes,
    suite: int,
    versions: Versions = TLS_VERSIONS,
) -> AcceptedPsk | None:
    """Verify the binder of the PSK we chose (RFC 8446 §4.2.11.2) over the transcript
    ``prefix`` (None, or message_hash and the HelloRetryRequest) and the ClientHello
    truncated before its binders; a binder that does not verify is decrypt_error (§6.2)."""
    if found is None or info.psk is None:
        return None
    schedule = versions.schedule(suite_info(suite), found.psk)
    external = found.external_identity is not None
    expected = binder(schedule, prefix, truncate(raw, info.psk), external=external)
    if not binders_equal(info.psk.binders[found.index], expected):
        raise DecryptError("PSK binder does not verify")
    return AcceptedPsk(found.index, found.psk, found.external_identity)


def choose(
    ctx: ServerContext, hello: ClientHello, info: ClientHelloInfo, psk: PskCandidate | None
) -> Choice:
    """Suite, group, signature scheme and ALPN protocol, in our order of preference; with a
    PSK the suite is the ticket's or one of the PSK's hash (RFC 8446 §4.2.11), no signature
    is made, and psk_ke needs no group (§4.2.9).

    Without a PSK the choice depends on the configuration and on the offer alone: its
    suites, groups, signature schemes, ALPN names (read only when we have protocols) and
    whether key_share is present (not the shares, random, session_id or cookie). It is made
    once per offer (``ctx.choices``); a refused offer raises each time and is not kept."""
    key = None
    if psk is None:
        alpn = info.alpn if ctx.config.alpn_protocols else None
        key = (hello.cipher_suites, info.groups, info.shares is None, info.signature_schemes, alpn)
        known = ctx.choices.get(key)
        if known is not None:
            return known
    suites = ctx.suites
    if psk is not None:
        suites = (psk.suite,) if psk.suite is not None else ctx.suites
        suites = tuple(s for s in suites if suite_info(s).hash is psk.hash)
    suite = next((s for s in suites if s in hello.cipher_suites), None)
    expect(suite is not None, "no TLS 1.3 cipher suite in common", HandshakeFailure)
    if psk is None:
        # RFC 8446 §9.2: a ClientHello for a certificate handshake must carry these.
        expect(bool(info.signature_schemes), "no signature_algorithms", MissingExtension)
    group = None
    if psk is None or psk.mode == PskKeyExchangeMode.psk_dhe_ke:
        expect(bool(info.groups), "no supported_groups", MissingExtension)
        # RFC 8446 §9.2: supported_groups without key_share is missing_extension; an empty
        # key_share is legal (the client lets us pick a group: a HelloRetryRequest follows).
        expect(info.shares is not None, "no key_share", MissingExtension)
        group = next((g for g in ctx.groups if g in info.groups), None)
        expect(group is not None, "no group in common", HandshakeFailure)
    scheme = None
    if psk is None:
        scheme = next((s for s in ctx.key_schemes if s in info.signature_schemes), None)
        expect(scheme is not None, "no signature scheme fits our key", HandshakeFailure)
    alpn = None
    if ctx.config.alpn_protocols and info.alpn:
        alpn = next((p for p in ctx.config.alpn_protocols if p in info.alpn), None)
        # RFC 7301 §3.2: no protocol in common is fatal.
        expect(alpn is not None, "no ALPN protocol in common", NoApplicationProtocol)
    assert suite is not None
    choice = Choice(suite, group, scheme, alpn)
    if key is not None and _small_offer(hello, info):
        ctx.choices.remember(key, choice)
    return choice


def _small_offer(hello: ClientHello, info: ClientHelloInfo) -> bool:
    """Whether `choose` may remember this offer (MAX_CHOICE_ITEMS, MAX_CHOICE_ALPN_BYTES)."""
    items = len(hello.cipher_suites) + len(info.groups) + len(info.signature_schemes)
    alpn = info.alpn
    return items + len(alpn) <= MAX_CHOICE_ITEMS and sum(map(len, alpn)) <= MAX_CHOICE_ALPN_BYTES


def retried(choice: Choice, suite: int, group: int) -> Choice:
    """``choice`` with the suite and group our HelloRetryRequest fixed (RFC 8446 §4.1.4):
    the same object when it names them already (the remembered choice for the offer)."""
    if choice.suite == suite and choice.group == group:
        return choice
    return Choice(suite, NamedGroup(group), choice.scheme, choice.alpn)


# ---- handlers -----------------------------------------------------------------------------


def on_client_hello(
    ctx: ServerContext, state: ServerStart, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    """The first ClientHello: a HelloRetryRequest when the client has no key share for the
    group we want (RFC 8446 §4.1.4), else our whole first flight."""
    hello, info = decode_client_hello(body, ctx.versions)
    found = find_psk(ctx, hello, info, now, ctx.suites)
    choice = choose(ctx, hello, info, found)
    share = info.share_for(choice.group) if choice.group is not None else None
    skip: Actions = [SkipEarlyData(MAX_EARLY_DATA_SKIP)] if info.early_data else []
    if choice.group is not None and share is None:
        # RFC 8446 §4.2.8: a group the client offered a share for cannot be asked again
        # (checked by construction: we ask only when there is no share for it).
        hrr = hello_retry_request(hello.session_id, choice.suite, choice.group, None, ctx.versions)
        transcript = TranscriptHash.after_hello_retry(suite_info(choice.suite).hash, raw)
        transcript.update(hrr)
        actions: Actions = [*skip, SendMessage(hrr)]
        # RFC 8446 Appendix D.4: the compatibility CCS follows our first handshake message
        # (never in DTLS 1.3, RFC 9147 §5).
        if hello.session_id and not ctx.versions.dtls:
            actions.append(SendChangeCipherSpec())
        fixed = client_hello_fixed_part(hello)
        return WaitClientHello2(fixed, choice.suite, choice.group, transcript), actions
    psk = check_binder(found, info, None, raw, choice.suite, ctx.versions)
    transcript = TranscriptHash(suite_info(choice.suite).hash, raw)
    next_state, flight = server_flight(ctx, hello, info, choice, share, transcript, False, psk)
    return next_state, [*skip, *flight]


def check_second_client_hello(
    hello: ClientHello, info: ClientHelloInfo, suite: int, group: int, requested: bool
) -> bytes:
    """RFC 8446 §4.1.2 / §4.2.8: ClientHello2 keeps the chosen suite; when the HRR named a
    group it carries exactly one share, for that group; otherwise it still has a share for
    the group we chose. Returns that share."""
    expect(suite in hello.cipher_suites, "ClientHello2 dropped the suite", IllegalParameter)
    if requested:
        one = len(info.shares or ()) == 1
        expect(one, "ClientHello2 needs one key share", IllegalParameter)
    share = info.share_for(group)
    share = present(share, "ClientHello2 has no share for our group", IllegalParameter)
    expect(group in info.groups, "share for an unoffered group", IllegalParameter)
    return share


def on_client_hello2(
    ctx: ServerContext, state: WaitClientHello2, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    """The second ClientHello after our (stateful) HelloRetryRequest."""
    hello, info = decode_client_hello(body, ctx.versions)
    # RFC 8446 §4.1.2: the client MUST send the same ClientHello but for the listed changes
    # (key_share, early_data, cookie, pre_shared_key, padding); anything else is
    # illegal_parameter. The cookie is the HRR's, copied (§4.2.2), or absent with it.
    same = client_hello_fixed_part(hello) == state.client_hello1_fixed
    expect(same, "ClientHello2 differs from ClientHello1", IllegalParameter)
    expect(info.cookie == state.cookie, "cookie is not the HRR's", IllegalParameter)
    share = check_second_client_hello(hello, info, state.suite, state.group, True)
    found = psk_after_retry(ctx, hello, info, state.suite, now)
    choice = retried(choose(ctx, hello, info, found), state.suite, state.group)
    psk = check_binder(found, info, state.transcript, raw, state.suite, ctx.versions)
    state.transcript.update(raw)
    flight = server_flight(ctx, hello, info, choice, share, state.transcript, True, psk)
    # RFC 8446 §4.2.10: no early data after a HelloRetryRequest; stop skipping.
    return flight[0], [SkipEarlyData(0), *flight[1]]


def psk_after_retry(
    ctx: ServerContext, hello: ClientHello, info: ClientHelloInfo, suite: int, now: float
) -> PskCandidate | None:
    """After a HelloRetryRequest the suite is fixed, and the HRR asked for a key share: a
    PSK is used only with that suite, in psk_dhe_ke mode."""
    # RFC 8446 §4.2.10: a ClientHello2 must not offer early data (illegal_parameter).
    expect(not info.early_data, "early_data in ClientHello2", IllegalParameter)
    return find_psk(ctx, hello, info, now, (suite,), dhe_only=True)


def server_flight(
    ctx: ServerContext,
    hello: ClientHello,
    info: ClientHelloInfo,
    choice: Choice,
    client_share: bytes | None,
    transcript: TranscriptHash,
    after_hrr: bool,
    psk: AcceptedPsk | None,
) -> tuple[ServerState, Actions]:
    """ServerHello, then EncryptedExtensions, [CertificateRequest], Certificate,
    CertificateVerify and Finished under the handshake key (RFC 8446 §2); with a
    resumption PSK (psk_dhe_ke, §2.2) only EncryptedExtensions and Finished."""
    suite = suite_info(choice.suite)
    versions = ctx.versions
    schedule = versions.schedule(suite, psk.psk if psk is not None else None)
    group: NamedGroup | None = None
    our_share: bytes | None = None
    if choice.group is None or client_share is None:
        # RFC 8446 §4.2.9 psk_ke: no key_share; §7.1: zeros for the (EC)DHE input.
        schedule.enter_handshake(None)
    else:
        # Our share and the secret: a key pair of our own, or for ML-KEM an encapsulation
        # to the client's key; an invalid client share is illegal_parameter (§4.2.8).
        group = choice.group
        our_share, shared = respond(group, client_share, ctx.provider)
        schedule.enter_handshake(shared)
    cids = connection_ids(ctx, hello)
    sh_raw = ctx.server_hello(
        ctx.provider.random(32),
        hello.session_id,
        choice.suite,
        group,
        our_share,
        None if psk is None else psk.index,
        None if cids is None else cids.read,
    )
    transcript.update(sh_raw)
    actions: Actions = [SendMessage(sh_raw)]
    if cids is not None:
        actions.append(cids)
    if hello.session_id and not after_hrr and not versions.dtls:
        actions.append(SendChangeCipherSpec())
    keys = Keys.after_server_hello(schedule, transcript, hello.random)
    actions.extend(handshake_keylog(ctx.log_keys, keys))
    actions.append(install(True, keys, suite.aead, keys.server_handshake))
    actions.append(install(False, keys, suite.aead, keys.client_handshake))
    info_out = HandshakeInfo(
        suite.suite,
        choice.group,
        None if psk is not None else choice.scheme,
        choice.alpn,
        info.server_name,
        (),
        after_hrr,
        psk is not None and psk.external_identity is None,
        None if psk is None else psk.external_identity,
        info.post_handshake_auth,
        None,
        srtp_profile(ctx, info),
    )
    return encrypted_flight(ctx, info, choice, keys, suite, info_out, actions)


def srtp_profile(ctx: ServerContext, info: ClientHelloInfo) -> int | None:
    """Our most preferred SRTP protection profile among those the client offered in
    use_srtp (RFC 5764 §4.1.1), in DTLS 1.3 only (SRTP runs over datagrams); None without
    one in common."""
    if not info.srtp_profiles or not ctx.versions.dtls:
        return None
    return pick_srtp_profile(ctx.config.srtp_profiles, info.srtp_profiles)


def server_hello(
    versions: Versions,
    random: bytes,
    session_id: bytes,
    suite: int,
    group: int | None,
    share: bytes | None,
    psk_index: int | None,
    cid: bytes | None,
) -> bytes:
    """Our ServerHello message (RFC 8446 §4.1.3): our key share when there is one (none
    for psk_ke, §4.2.9), the selected PSK identity, and our DTLS 1.3 connection ID (RFC
    9147 §9). `ServerContext.server_hello` makes the same bytes from parts kept per shape."""
    extensions = [Extension(_E.supported_versions, encode_supported_versions_sh(versions.version))]
    if group is not None and share is not None:
        share_ext = encode_key_share_sh(KeyShareEntry(group, share))
        extensions.insert(0, Extension(_E.key_share, share_ext))
    if psk_index is not None:
        # RFC 8446 §4.2.11: uint16 selected_identity.
        extensions.insert(0, Extension(_E.pre_shared_key, psk_index.to_bytes(2, "big")))
    if cid is not None:
        extensions.append(Extension(_E.connection_id, encode_connection_id(cid)))
    body = encode_server_hello(
        versions.legacy_version, random, session_id, suite, 0, tuple(extensions)
    )
    return message(_H.SERVER_HELLO, body)


def _server_hello_parts(
    versions: Versions,
    suite: int,
    group: int | None,
    sid_length: int,
    share_length: int | None,
    psk_index: int | None,
    cid_length: int | None,
) -> tuple[bytes, bytes, bytes, bytes]:
    """`server_hello` of one shape encoded with zeros for its random, session_id, key share
    and connection ID, cut around them: the header and legacy_version; the session_id's
    length; from the session_id's end to the key_exchange (the key_share extension's last
    field, or where it would be); from there to the connection ID (the last extension's
    last field: after supported_versions, 6 bytes, and the connection_id extension's type,
    length and cid length, 5)."""
    whole = server_hello(
        versions,
        bytes(RANDOM_LENGTH),
        bytes(sid_length),
        suite,
        group,
        None if share_length is None else bytes(share_length),
        psk_index,
        None if cid_length is None else bytes(cid_length),
    )
    random_at = TLS_HANDSHAKE_HEADER_LENGTH + 2
    session_id_at = random_at + RANDOM_LENGTH + 1
    cid_at = len(whole) - (cid_length or 0)
    share_end = cid_at - (0 if cid_length is None else 5) - 6
    share_at = share_end - (share_length or 0)
    return (
        whole[:random_at],
        whole[random_at + RANDOM_LENGTH : session_id_at],
        whole[session_id_at + sid_length : share_at],
        whole[share_end:cid_at],
    )


def connection_ids(ctx: ServerContext, hello: ClientHello) -> UseConnectionIds | None:
    """DTLS 1.3 connection IDs (RFC 9147 §9): when the client offered the extension and we
    use them, a random CID of ours (in the ServerHello) and the client's."""
    length = getattr(ctx.config, "connection_id_length", 0)
    if not ctx.versions.dtls or not length:
        return None  # without looking for the client's offer
    offered = hello.get(_E.connection_id)
    if offered is None:
        return None
    return UseConnectionIds(ctx.provider.random(length), decode_connection_id(offered))


def encrypted_extensions(
    ctx: ServerContext,
    name_used: bool,
    alpn: bytes | None,
    size_limit: bool,
    server_type: int | None,
    client_type: int | None,
    srtp_profile: int | None,
) -> bytes:
    """Our EncryptedExtensions message (RFC 8446 §4.3.1): the certificate types chosen
    (RFC 7250), whether the client's server_name was used, the ALPN protocol chosen,
    whether both send record_size_limit (RFC 8449), and the SRTP protection profile chosen
    (DTLS 1.3; RFC 5764 §4.1.1, no MKI)."""
    extensions = rpk.echoes(server_type, client_type)
    if name_used:
        # RFC 6066 §3: an empty server_name acknowledges the name was used.
        extensions.append(Extension(_E.server_name, b""))
    if alpn is not None:
        extensions.append(Extension(_E.application_layer_protocol_negotiation, encode_alpn([alpn])))
    if size_limit:
        limit = ctx.config.record_size_limit.to_bytes(2, "big")
        extensions.append(Extension(_E.record_size_limit, limit))
    if srtp_profile is not None:
        extensions.append(Extension(_E.use_srtp, encode_use_srtp((srtp_profile,))))
    return message(_H.ENCRYPTED_EXTENSIONS, EncryptedExtensions(tuple(extensions)).encode())


def encrypted_flight(
    ctx: ServerContext,
    info: ClientHelloInfo,
    choice: Choice,
    keys: Keys,
    suite: SuiteInfo,
    info_out: HandshakeInfo,
    actions: Actions,
) -> tuple[ServerState, Actions]:
    if info.record_size_limit is not None:
        # RFC 8449 §4: both sent the extension: each honours the other's limit.
        actions.append(PeerRecordLimit(info.record_size_limit))
        actions.append(OwnRecordLimit(ctx.config.record_size_limit))
    # RFC 8446 §2.2: a resumed handshake authenticates with the PSK, no certificates.
    request = ctx.config.verify_client != "none" and not info_out.psk_authenticated
    # RFC 7250 §4.2: the certificate types, chosen from the client's lists.
    server_type = None if info_out.psk_authenticated else rpk.server_type(ctx.config, info)
    client_type = rpk.client_type(ctx.config, info) if request else None
    srtp = info_out.srtp_profile
    messages = [ctx.encrypted_extensions(info, choice.alpn, server_type, client_type, srtp)]
    keys.transcript.update(messages[0])
    if not info_out.psk_authenticated:
        raw = server_type == rpk.RAW
        compress = info.compress_algorithms
        messages.extend(certificate_messages(ctx, keys, choice, request, compress, raw))
    # RFC 8446 §4.4.4: the Finished body is verify_data alone.
    fin = message(_H.FINISHED, keys.finished(server=True))
    keys.transcript.update(fin)
    actions.extend(SendMessage(m) for m in [*messages, fin])
    keys.schedule.enter_master()
    th = keys.transcript.digest()
    app = AppSecrets(
        keys.schedule.client_application_traffic_secret(th),
        keys.schedule.server_application_traffic_secret(th),
        b"",
        th,
    )
    actions.extend(application_keylog(ctx.log_keys, keys, app, th))
    # RFC 8446 §2: the server may send application data right after its Finished.
    actions.append(install(True, keys, suite.aead, app.server))
    if request:
        raw_client = client_type == rpk.RAW
        return WaitClientCertificate(keys, suite, app, info_out, raw_client), actions
    return WaitClientFinished(keys, suite, app, info_out, th), actions


def certificate_request(ctx: ServerContext, context: bytes) -> bytes:
    """A CertificateRequest (RFC 8446 §4.3.2) with our signature schemes and, when we accept
    compressed certificates, compress_certificate (RFC 8879 §3)."""
    schemes = encode_u16_list_ext(list(ctx.request_schemes))
    extensions = [Extension(_E.signature_algorithms, schemes)]
    if ctx.compression:
        extensions.append(
            Extension(_E.compress_certificate, encode_compress_certificate(ctx.compression))
        )
    cr = CertificateRequest(context, tuple(extensions))
    return message(_H.CERTIFICATE_REQUEST, cr.encode())


def certificate_messages(
    ctx: ServerContext,
    keys: Keys,
    choice: Choice,
    request: bool,
    compress: tuple[int, ...],
    raw: bool = False,
) -> list[bytes]:
    """[CertificateRequest], Certificate (compressed with an algorithm of ``compress``, the
    client's, when we have one: RFC 8879) and CertificateVerify, fed to the transcript."""
    messages = []
    if request:
        messages.append(certificate_request(ctx, b""))
    messages.append(ctx.certificate(raw, compress))
    for m in messages:
        keys.transcript.update(m)
    # RFC 8446 §4.4.3: sign the transcript through Certificate.
    content = certificate_verify_content(keys.transcript.digest(), server=True)
    scheme = present(choice.scheme, "no signature scheme", InternalError)
    signature = ctx.provider.sign(ctx.key, scheme, content)
    cv = message(_H.CERTIFICATE_VERIFY, encode_certificate_verify(scheme, signature))
    keys.transcript.update(cv)
    return [*messages, cv]


def on_client_certificate(
    ctx: ServerContext, state: WaitClientCertificate, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    cert = Certificate.decode(body)
    # RFC 8446 §4.4.2: the context echoes the CertificateRequest's (empty here).
    expect(cert.request_context == b"", "certificate_request_context", IllegalParameter)
    state.keys.transcript.update(raw)
    if not cert.entries:
        # RFC 8446 §4.4.2.4: no certificate; the server decides.
        expect(
            ctx.config.verify_client != "required",
            "client sent no certificate",
            CertificateRequired,
        )
        return WaitClientFinished(state.keys, state.suite, state.app, state.info), []
    if state.raw_public_key:
        peer_key = rpk.peer_raw_key(cert.chain_der, ctx.config.pinned_keys)
        info = replace(state.info, peer_raw_public_key=cert.chain_der[0])
        return WaitClientCertificateVerify(state.keys, state.suite, state.app, info, peer_key), []
    # Pins only (no cafile): an X.509 certificate is not a type we take (RFC 7250 §4.2).
    trust, fingerprints = ctx.trust, ctx.fingerprints
    checked = trust is not None or fingerprints is not None
    expect(checked, "no trust anchors for X.509", UnsupportedCertificate)
    peer_key = check_peer_certificate(cert.chain_der, None, trust, fingerprints, now)
    info = replace(state.info, peer_certificates=cert.chain_der)
    return WaitClientCertificateVerify(state.keys, state.suite, state.app, info, peer_key), []


def on_client_certificate_verify(
    ctx: ServerContext, state: WaitClientCertificateVerify, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    verify_certificate_verify(
        ctx.provider,
        state.peer_key,
        body,
        state.keys.transcript.digest(),
        server=False,
        offered=ctx.request_schemes,
    )
    state.keys.transcript.update(raw)
    return WaitClientFinished(state.keys, state.suite, state.app, state.info), []


def on_client_finished(
    ctx: ServerContext, state: WaitClientFinished, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    keys = state.keys
    fin = Finished.decode(body, keys.schedule.hash.digest_size)
    th = state.transcript_hash
    if th is None:
        th = keys.transcript.digest()
    expected = keys.schedule.finished_verify_data(keys.client_handshake, th)
    # RFC 8446 §4.4.4: a wrong verify_data is decrypt_error.
    if not constant_time_equal(fin.verify_data, expected):
        raise DecryptError("client Finished does not verify")
    keys.transcript.update(raw)
    # The resumption master secret (RFC 8446 §7.1) serves only the tickets we issue now.
    resumption = b""
    if issues_tickets(ctx):
        resumption = keys.schedule.resumption_master_secret(keys.transcript.digest())
    app = AppSecrets(state.app.client, state.app.server, resumption, state.app.transcript_hash)
    actions: Actions = [install(False, keys, state.suite.aead, app.client)]
    exporter = Tls13Exporter(keys.schedule, state.app.transcript_hash)
    actions.append(Complete(state.info, None, exporter))
    actions.extend(SendMessage(t) for t in new_session_tickets(ctx, state, resumption, now))
    pha = state.info.post_handshake_auth
    connected = Connected(
        keys.schedule, state.suite, app, app.client, app.server, 0, keys.transcript, pha
    )
    return connected, actions


# ---- post-handshake client authentication (RFC 8446 §4.6.2) --------------------------------

#: RFC 8446 §4.6.2: the certificate_request_context must be unique within the connection;
#: 16 random bytes are (and say nothing about earlier requests).
PHA_CONTEXT_LENGTH = 16


def request_certificate(ctx: ServerContext, state: Connected) -> tuple[ServerState, Actions]:
    """Send a CertificateRequest after the handshake; the caller checked the client sent
    post_handshake_auth and that we have client CAs."""
    context = ctx.provider.random(PHA_CONTEXT_LENGTH)
    raw = certificate_request(ctx, context)
    assert state.transcript is not None  # every Connected of ours has it
    transcript = state.transcript.copy()
    transcript.update(raw)
    pending = PendingAuth(context, transcript)
    return moved(WaitPostHandshakeCertificate, state, pending=pending), [SendMessage(raw)]


def _pending(state: Any) -> PendingAuth:
    pending: PendingAuth | None = state.pending
    return present(pending, "no certificate request pending", InternalError)


def on_post_handshake_certificate(
    ctx: ServerContext, state: WaitPostHandshakeCertificate, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    pending = _pending(state)
    cert = Certificate.decode(body)
    # RFC 8446 §4.4.2: the context echoes the CertificateRequest's.
    expect(cert.request_context == pending.context, "request context", IllegalParameter)
    pending.transcript.update(raw)
    if not cert.entries:
        # RFC 8446 §4.4.2.4: no certificate; the server decides.
        expect(
            ctx.config.verify_client != "required",
            "client sent no certificate",
            CertificateRequired,
        )
        return moved(WaitPostHandshakeFinished, state, pending=pending), []
    pending.peer_key = check_peer_certificate(
        cert.chain_der, None, ctx.client_cas, ctx.client_fingerprints, now
    )
    pending.chain = cert.chain_der
    return moved(WaitPostHandshakeCertificateVerify, state, pending=pending), []


def on_post_handshake_certificate_verify(
    ctx: ServerContext,
    state: WaitPostHandshakeCertificateVerify,
    body: bytes,
    raw: bytes,
    now: float,
) -> tuple[ServerState, Actions]:
    pending = _pending(state)
    digest = pending.transcript.digest()
    offered = ctx.request_schemes
    verify_certificate_verify(
        ctx.provider, pending.peer_key, body, digest, server=False, offered=offered
    )
    pending.transcript.update(raw)
    return moved(WaitPostHandshakeFinished, state, pending=pending), []


def on_post_handshake_finished(
    ctx: ServerContext, state: WaitPostHandshakeFinished, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    """RFC 8446 §4.4.4: the Finished key of post-handshake messages is the client's
    current application traffic secret."""
    pending = _pending(state)
    fin = Finished.decode(body, state.schedule.hash.digest_size)
    digest = pending.transcript.digest()
    if not constant_time_equal(
        fin.verify_data, state.schedule.finished_verify_data(state.read_secret, digest)
    ):
        raise DecryptError("post-handshake Finished does not verify")
    return moved(Connected, state), [ClientAuthenticated(pending.chain)]


def issues_tickets(ctx: ServerContext) -> bool:
    """Whether we send NewSessionTickets after the handshake (RFC 8446 §4.6.1): when
    configured, and not with client certificates (a ticket does not carry the client's
    identity)."""
    config = ctx.config
    return bool(config.session_tickets > 0 and config.verify_client == "none")


def new_session_tickets(
    ctx: ServerContext, state: WaitClientFinished, resumption: bytes, now: float
) -> list[bytes]:
    """NewSessionTicket messages (RFC 8446 §4.6.1), each with its own nonce and
    ticket_age_add, the PSK sealed into the ticket. None when we would not resume them
    (client certificates: the ticket does not carry the client's identity)."""
    cfg = ctx.config
    if not issues_tickets(ctx):
        return []
    out = []
    for i in range(cfg.session_tickets):
        nonce = i.to_bytes(1, "big")
        age_add = int.from_bytes(ctx.provider.random(4), "big")
        psk = state.keys.schedule.resumption_psk(resumption, nonce)
        alpn = state.info.alpn_protocol or b""
        ticket_state = TicketState(
            state.suite.suite, int(now * 1000), cfg.ticket_lifetime, age_add, psk, alpn
        )
        ticket = ctx.sealer.seal(ticket_state)
        nst = encode_new_session_ticket(cfg.ticket_lifetime, age_add, nonce, ticket)
        out.append(message(_H.NEW_SESSION_TICKET, nst))
    return out


# ---- stateless continuation ------------------------------------------------------------------


def after_stateless_retry(
    ctx: ServerContext, admit: Any, now: float
) -> tuple[ServerState, Actions]:
    """Continue from a ClientHello2 whose cookie verified (``gate.results.StreamAdmit``): the
    transcript is rebuilt from the cookie (RFC 8446 §4.4.1: message_hash(Hash(ClientHello1)),
    then the HelloRetryRequest as we sent it, then ClientHello2); nothing else was kept.
    ClientHello2 is the admit's, as the gate decoded it."""
    hello, info = admit.client_hello, admit.client_hello_info
    suite, group = admit.cipher_suite, admit.group
    share = check_second_client_hello(hello, info, suite, group, admit.key_share_requested)
    hrr_group = group if admit.key_share_requested else None
    hrr = ctx.retry_request(hello.session_id, suite, hrr_group, admit.cookie)
    transcript = TranscriptHash(
        suite_info(suite).hash, message_hash_from_digest(admit.client_hello1_digest)
    )
    transcript.update(hrr)
    found = psk_after_retry(ctx, hello, info, suite, now)
    message = admit.client_hello_message
    psk = check_binder(found, info, transcript, message, suite, ctx.versions)
    transcript.update(admit.client_hello_message)
    choice = retried(choose(ctx, hello, info, found), suite, group)
    return server_flight(ctx, hello, info, choice, share, transcript, True, psk)


Handler = Callable[[ServerContext, Any, bytes, bytes, float], tuple[ServerState, Actions]]

#: The one table of legal messages per state (RFC 8446 §2, Appendix A.2).
TABLE: dict[type, dict[int, Handler]] = {
    ServerStart: {_H.CLIENT_HELLO: on_client_hello},
    WaitClientHello2: {_H.CLIENT_HELLO: on_client_hello2},
    WaitClientCertificate: {
        _H.CERTIFICATE: on_client_certificate,
        _H.COMPRESSED_CERTIFICATE: compressed(on_client_certificate),
    },
    WaitClientCertificateVerify: {_H.CERTIFICATE_VERIFY: on_client_certificate_verify},
    WaitClientFinished: {_H.FINISHED: on_client_finished},
    Connected: {_H.KEY_UPDATE: key_update_handler},
    WaitPostHandshakeCertificate: {
        _H.CERTIFICATE: on_post_handshake_certificate,
        _H.COMPRESSED_CERTIFICATE: compressed(on_post_handshake_certificate),
        _H.KEY_UPDATE: key_update_handler,
    },
    WaitPostHandshakeCertificateVerify: {
        _H.CERTIFICATE_VERIFY: on_post_handshake_certificate_verify,
        _H.KEY_UPDATE: key_update_handler,
    },
    WaitPostHandshakeFinished: {
        _H.FINISHED: on_post_handshake_finished,
        _H.KEY_UPDATE: key_update_handler,
    },
}

#: The server as an engine `Machine`: the table above, where each handler may go, and the
#: epoch rule (`dtlsgate.handshake.tls13.common.EPOCHS`).
SERVER: Machine[Handler] = Machine(
    name="TLS 1.3 server",
    start=(ServerStart,),
    table=TABLE,
    goes_to={
        (ServerStart, _H.CLIENT_HELLO): (
            WaitClientHello2,
            WaitClientCertificate,
            WaitClientFinished,
        ),
        (WaitClientHello2, _H.CLIENT_HELLO): (WaitClientCertificate, WaitClientFinished),
        (WaitClientCertificate, _H.CERTIFICATE): (
            WaitClientCertificateVerify,
            WaitClientFinished,
        ),
        (WaitClientCertificate, _H.COMPRESSED_CERTIFICATE): (WaitClientCertificateVerify,),
        (WaitClientCertificateVerify, _H.CERTIFICATE_VERIFY): (WaitClientFinished,),
        (WaitClientFinished, _H.FINISHED): (Connected,),
        (Connected, _H.KEY_UPDATE): (Connected,),
        (WaitPostHandshakeCertificate, _H.CERTIFICATE): (
            WaitPostHandshakeCertificateVerify,
            WaitPostHandshakeFinished,
        ),
        (WaitPostHandshakeCertificate, _H.COMPRESSED_CERTIFICATE): (
            WaitPostHandshakeCertificateVerify,
        ),
        (WaitPostHandshakeCertificate, _H.KEY_UPDATE): (WaitPostHandshakeCertificate,),
        (WaitPostHandshakeCertificateVerify, _H.CERTIFICATE_VERIFY): (WaitPostHandshakeFinished,),
        (WaitPostHandshakeCertificateVerify, _H.KEY_UPDATE): (WaitPostHandshakeCertificateVerify,),
        (WaitPostHandshakeFinished, _H.FINISHED): (Connected,),
        (WaitPostHandshakeFinished, _H.KEY_UPDATE): (WaitPostHandshakeFinished,),
    },
    epochs=EPOCHS,
    default_epochs=HANDSHAKE_EPOCHS,
    after_handshake=frozenset(
        {
            Connected,
            WaitPostHandshakeCertificate,
            WaitPostHandshakeCertificateVerify,
            WaitPostHandshakeFinished,
        }
    ),
    after_handshake_epochs=APPLICATION_EPOCHS,
    calls={(Connected, "request_client_certificate()"): (WaitPostHandshakeCertificate,)},
)

#: The DTLS 1.3 server: the same, with the connection ID messages after the handshake
#: (RFC 9147 §9).
DTLS_SERVER = for_dtls(SERVER, "DTLS 1.3 server")
