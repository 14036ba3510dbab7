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
from dtlsgate.crypto.hashes import TranscriptHash, message_hash_from_digest
from dtlsgate.crypto.kex import respond, tls13_groups
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.crypto.signatures import certificate_verify_content, schemes_for_key
from dtlsgate.crypto.suites import SuiteInfo, suite_info
from dtlsgate.errors import DecryptError
from dtlsgate.handshake.engine import Machine
from dtlsgate.handshake.tls13 import raw_public_keys as rpk
from dtlsgate.handshake.tls13.common import (
    APPLICATION_EPOCHS,
    DEFAULT_GROUPS,
    DEFAULT_SIGNATURE_SCHEMES,
    DEFAULT_SUITES,
    EPOCHS,
    HANDSHAKE_EPOCHS,
    LEGACY_VERSION,
    TLS13,
    Actions,
    AppSecrets,
    ClientHelloInfo,
    Complete,
    HandshakeInfo,
    Keys,
    OwnRecordLimit,
    PeerRecordLimit,
    SendChangeCipherSpec,
    SendMessage,
    SkipEarlyData,
    application_keylog,
    client_hello_fixed_part,
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
    check_peer_certificate,
    verify_certificate_verify,
)
from dtlsgate.handshake.tls13.post_handshake import Connected, key_update_handler
from dtlsgate.handshake.tls13.tickets import (
    TicketSealer,
    TicketState,
    binder,
    binders_equal,
    truncate,
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
    encode_alpn,
    encode_key_share_sh,
    encode_supported_versions_sh,
    encode_u16_list_ext,
)
from dtlsgate.wire.messages import ClientHello, ServerHello
from dtlsgate.wire.messages13 import (
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    EncryptedExtensions,
    Finished,
    NewSessionTicket,
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


class ServerContext:
    """Long-lived per-config data: credentials in wire form and preferences."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.provider = config.provider
        self.suites: tuple[int, ...] = config.cipher_suites or DEFAULT_SUITES
        self.groups: tuple[int, ...] = tls13_groups(config.groups or DEFAULT_GROUPS)
        chain = config.certificate_chain
        self.chain_der = tuple(c.public_bytes(Encoding.DER) for c in chain)
        self.key = config.private_key
        # RFC 8446 §4.2.3, §4.4.3: RSA signs with RSASSA-PSS only in TLS 1.3 (no PKCS#1).
        self.key_schemes = (
            tuple(schemes_for_key(self.key, tls13=True)) if self.key is not None else ()
        )
        self.trust: Any = None
        if config.verify_client != "none" and config.cafile:
            from dtlsgate.crypto.certs import load_trust_store

            self.trust = load_trust_store(config.cafile)
        self.sealer = TicketSealer(config.ticket_key, self.provider)


# ---- states -------------------------------------------------------------------------------


@dataclass(slots=True)
class ServerStart:
    """Waiting for the first ClientHello."""


@dataclass(slots=True)
class WaitClientHello2:
    """A HelloRetryRequest was sent (statefully); the second ClientHello must repeat the first
    but for the key_share (RFC 8446 §4.1.2)."""

    client_hello1_fixed: bytes  # `client_hello_fixed_part` of ClientHello1
    suite: int
    group: int
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


ServerState = (
    ServerStart
    | WaitClientHello2
    | WaitClientCertificate
    | WaitClientCertificateVerify
    | WaitClientFinished
    | Connected
)


# ---- negotiation ------------------------------------------------------------------------------


@frozen
class Choice:
    """What the server picked from a ClientHello (RFC 8446 §4.1.1)."""

    suite: int
    group: int
    scheme: SignatureScheme
    alpn: bytes | None


@frozen
class Resumption:
    """A ticket the client offered that opened and is fresh: ``index`` of its identity."""

    index: int
    state: TicketState


@frozen
class AcceptedPsk:
    """A resumption PSK whose binder verified (RFC 8446 §4.2.11)."""

    index: int
    psk: bytes


def find_ticket(
    ctx: ServerContext, hello: ClientHello, info: ClientHelloInfo, now: float
) -> Resumption | None:
    """The first offered identity that is one of our tickets, fresh (age and lifetime,
    RFC 8446 §4.6.1), for a suite the client still offers. We resume only with psk_dhe_ke
    (§4.2.9) and without client certificates (a ticket does not carry the client's
    identity); otherwise the offer is ignored and a full handshake follows (§4.2.11)."""
    offer = info.psk
    if offer is None or ctx.config.verify_client != "none":
        return None
    if PskKeyExchangeMode.psk_dhe_ke not in info.psk_modes:
        return None
    # Each identity costs an AEAD open: only the first few are tried.
    for index, identity in enumerate(offer.identities[:MAX_PSK_IDENTITIES_TRIED]):
        state = ctx.sealer.open(identity.identity)
        if state is None or not state.age_ok(identity.obfuscated_ticket_age, now):
            continue
        if state.suite in hello.cipher_suites and state.suite in ctx.suites:
            return Resumption(index, state)
    return None


def check_binder(
    found: Resumption | None,
    info: ClientHelloInfo,
    prefix: TranscriptHash | None,
    raw: bytes,
) -> AcceptedPsk | None:
    """Verify the binder of the ticket we chose (RFC 8446 §4.2.11.2) over the transcript
    ``prefix`` (None, or message_hash and the HelloRetryRequest) and the ClientHello
    truncated before its binders; a binder that does not verify is decrypt_error (§6.2)."""
    if found is None or info.psk is None:
        return None
    schedule = KeySchedule.for_suite(suite_info(found.state.suite), psk=found.state.psk)
    expected = binder(schedule, prefix, truncate(raw, info.psk))
    if not binders_equal(info.psk.binders[found.index], expected):
        raise DecryptError("PSK binder does not verify")
    return AcceptedPsk(found.index, found.state.psk)


def choose(ctx: ServerContext, hello: ClientHello, info: ClientHelloInfo) -> Choice:
    """Suite, group, signature scheme and ALPN protocol, in our order of preference."""
    suite = next((s for s in ctx.suites if s in hello.cipher_suites), None)
    expect(suite is not None, "no TLS 1.3 cipher suite in common", _A.handshake_failure)
    # RFC 8446 §9.2: a ClientHello for a certificate handshake must carry these.
    expect(bool(info.signature_schemes), "no signature_algorithms", _A.missing_extension)
    expect(bool(info.groups), "no supported_groups", _A.missing_extension)
    # RFC 8446 §9.2: supported_groups without key_share is missing_extension; an empty
    # key_share is legal (the client lets us pick a group: a HelloRetryRequest follows).
    expect(info.shares is not None, "no key_share", _A.missing_extension)
    group = next((g for g in ctx.groups if g in info.groups), None)
    expect(group is not None, "no group in common", _A.handshake_failure)
    scheme = next((s for s in ctx.key_schemes if s in info.signature_schemes), None)
    expect(scheme is not None, "no signature scheme fits our key", _A.handshake_failure)
    alpn = None
    if ctx.config.alpn_protocols and info.alpn:
        alpn = next((p for p in ctx.config.alpn_protocols if p in info.alpn), None)
        # RFC 7301 §3.2: no protocol in common is fatal.
        expect(alpn is not None, "no ALPN protocol in common", _A.no_application_protocol)
    assert suite is not None and group is not None and scheme is not None
    return Choice(suite, group, SignatureScheme(scheme), alpn)


# ---- handlers -----------------------------------------------------------------------------


def on_client_hello(
    ctx: ServerContext, state: ServerStart, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    """The first ClientHello: a HelloRetryRequest when the client has no key share for the
    group we want (RFC 8446 §4.1.4), else our whole first flight."""
    hello, info = decode_client_hello(body)
    choice = choose(ctx, hello, info)
    found = find_ticket(ctx, hello, info, now)
    if found is not None:
        # RFC 8446 §4.2.11: the suite's hash must be the ticket's: resume with its suite.
        choice = Choice(found.state.suite, choice.group, choice.scheme, choice.alpn)
    share = info.share_for(choice.group)
    skip: Actions = [SkipEarlyData(MAX_EARLY_DATA_SKIP)] if info.early_data else []
    if share is None:
        # RFC 8446 §4.2.8: a group the client offered a share for cannot be asked again
        # (checked by construction: we ask only when there is no share for it).
        hrr = hello_retry_request(hello.session_id, choice.suite, choice.group, None)
        transcript = TranscriptHash.after_hello_retry(suite_info(choice.suite).hash, raw)
        transcript.update(hrr)
        actions: Actions = [*skip, SendMessage(hrr)]
        # RFC 8446 Appendix D.4: the compatibility CCS follows our first handshake message.
        if hello.session_id:
            actions.append(SendChangeCipherSpec())
        fixed = client_hello_fixed_part(hello)
        return WaitClientHello2(fixed, choice.suite, choice.group, transcript), actions
    psk = check_binder(found, info, None, raw)
    transcript = TranscriptHash(suite_info(choice.suite).hash, raw)
    next_state, flight = server_flight(ctx, hello, info, choice, share, transcript, False, psk)
    return next_state, [*skip, *flight]


def check_second_client_hello(
    hello: ClientHello, info: ClientHelloInfo, suite: int, group: int, requested: bool
) -> bytes:
    """RFC 8446 §4.1.2 / §4.2.8: ClientHello2 keeps the chosen suite; when the HRR named a
    group it carries exactly one share, for that group; otherwise it still has a share for
    the group we chose. Returns that share."""
    expect(suite in hello.cipher_suites, "ClientHello2 dropped the suite", _A.illegal_parameter)
    if requested:
        one = len(info.shares or ()) == 1
        expect(one, "ClientHello2 needs one key share", _A.illegal_parameter)
    share = info.share_for(group)
    share = present(share, "ClientHello2 has no share for our group", _A.illegal_parameter)
    expect(group in info.groups, "share for an unoffered group", _A.illegal_parameter)
    return share


def on_client_hello2(
    ctx: ServerContext, state: WaitClientHello2, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    """The second ClientHello after our (stateful) HelloRetryRequest."""
    hello, info = decode_client_hello(body)
    # RFC 8446 §4.1.2: the client MUST send the same ClientHello but for the listed changes
    # (key_share, early_data, cookie, pre_shared_key, padding); anything else is
    # illegal_parameter. The cookie is the HRR's, copied (§4.2.2), or absent with it.
    same = client_hello_fixed_part(hello) == state.client_hello1_fixed
    expect(same, "ClientHello2 differs from ClientHello1", _A.illegal_parameter)
    expect(info.cookie == state.cookie, "cookie is not the HRR's", _A.illegal_parameter)
    share = check_second_client_hello(hello, info, state.suite, state.group, True)
    choice = choose(ctx, hello, info)
    choice = Choice(state.suite, state.group, choice.scheme, choice.alpn)
    psk = check_binder(
        ticket_for_suite(ctx, hello, info, state.suite, now), info, state.transcript, raw
    )
    state.transcript.update(raw)
    flight = server_flight(ctx, hello, info, choice, share, state.transcript, True, psk)
    # RFC 8446 §4.2.10: no early data after a HelloRetryRequest; stop skipping.
    return flight[0], [SkipEarlyData(0), *flight[1]]


def ticket_for_suite(
    ctx: ServerContext, hello: ClientHello, info: ClientHelloInfo, suite: int, now: float
) -> Resumption | None:
    """After a HelloRetryRequest the suite is fixed: a ticket resumes only with it."""
    # RFC 8446 §4.2.10: a ClientHello2 must not offer early data (illegal_parameter).
    expect(not info.early_data, "early_data in ClientHello2", _A.illegal_parameter)
    found = find_ticket(ctx, hello, info, now)
    return found if found is not None and found.state.suite == suite else None


def server_flight(
    ctx: ServerContext,
    hello: ClientHello,
    info: ClientHelloInfo,
    choice: Choice,
    client_share: bytes,
    transcript: TranscriptHash,
    after_hrr: bool,
    psk: AcceptedPsk | None,
) -> tuple[ServerState, Actions]:
    """ServerHello, then EncryptedExtensions, [CertificateRequest], Certificate,
    CertificateVerify and Finished under the handshake key (RFC 8446 §2); with a
    resumption PSK (psk_dhe_ke, §2.2) only EncryptedExtensions and Finished."""
    suite = suite_info(choice.suite)
    # Our share and the secret: a key pair of our own, or for ML-KEM an encapsulation to the
    # client's key; an invalid client share is illegal_parameter (RFC 8446 §4.2.8).
    group = NamedGroup(choice.group)
    our_share, shared = respond(group, client_share, ctx.provider)
    schedule = KeySchedule.for_suite(suite, psk=psk.psk if psk is not None else None)
    schedule.enter_handshake(shared)
    server_share = KeyShareEntry(group, our_share)
    extensions = [
        Extension(_E.key_share, encode_key_share_sh(server_share)),
        Extension(_E.supported_versions, encode_supported_versions_sh(TLS13)),
    ]
    if psk is not None:
        # RFC 8446 §4.2.11: uint16 selected_identity.
        extensions.insert(0, Extension(_E.pre_shared_key, psk.index.to_bytes(2, "big")))
    sh = ServerHello(
        LEGACY_VERSION,
        ctx.provider.random(32),
        hello.session_id,
        choice.suite,
        0,
        tuple(extensions),
    )
    sh_raw = message(_H.SERVER_HELLO, sh.encode())
    transcript.update(sh_raw)
    actions: Actions = [SendMessage(sh_raw)]
    if hello.session_id and not after_hrr:
        actions.append(SendChangeCipherSpec())
    keys = Keys.after_server_hello(schedule, transcript, hello.random)
    actions.extend(handshake_keylog(keys))
    actions.append(install(True, keys, suite.aead, keys.server_handshake))
    actions.append(install(False, keys, suite.aead, keys.client_handshake))
    info_out = HandshakeInfo(
        CipherSuite(choice.suite),
        NamedGroup(choice.group),
        None if psk is not None else choice.scheme,
        choice.alpn,
        info.server_name,
        (),
        after_hrr,
        psk is not None,
    )
    return encrypted_flight(ctx, info, choice, keys, suite, info_out, actions)


def encrypted_extensions(
    ctx: ServerContext, info: ClientHelloInfo, choice: Choice, types: list[Extension]
) -> bytes:
    extensions: list[Extension] = list(types)
    if info.server_name is not None:
        # RFC 6066 §3: an empty server_name acknowledges the name was used.
        extensions.append(Extension(_E.server_name, b""))
    if choice.alpn is not None:
        extensions.append(
            Extension(_E.application_layer_protocol_negotiation, encode_alpn([choice.alpn]))
        )
    if info.record_size_limit is not None:
        limit = ctx.config.record_size_limit.to_bytes(2, "big")
        extensions.append(Extension(_E.record_size_limit, limit))
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
    request = ctx.config.verify_client != "none" and not info_out.resumed
    # RFC 7250 §4.2: the certificate types, chosen from the client's lists.
    server_type = None if info_out.resumed else rpk.server_type(ctx.config, info)
    client_type = rpk.client_type(ctx.config, info) if request else None
    types = rpk.echoes(server_type, client_type)
    messages = [encrypted_extensions(ctx, info, choice, types)]
    keys.transcript.update(messages[0])
    if not info_out.resumed:
        raw = server_type == rpk.RAW
        messages.extend(certificate_messages(ctx, keys, choice, request, raw))
    fin = message(_H.FINISHED, Finished(keys.finished(server=True)).encode())
    keys.transcript.update(fin)
    actions.extend(SendMessage(m) for m in [*messages, fin])
    keys.schedule.enter_master()
    th = keys.transcript.digest()
    app = AppSecrets(
        keys.schedule.client_application_traffic_secret(th),
        keys.schedule.server_application_traffic_secret(th),
    )
    actions.extend(application_keylog(keys, app))
    # RFC 8446 §2: the server may send application data right after its Finished.
    actions.append(install(True, keys, suite.aead, app.server))
    if request:
        raw_client = client_type == rpk.RAW
        return WaitClientCertificate(keys, suite, app, info_out, raw_client), actions
    return WaitClientFinished(keys, suite, app, info_out), actions


def certificate_messages(
    ctx: ServerContext, keys: Keys, choice: Choice, request: bool, raw: bool = False
) -> list[bytes]:
    """[CertificateRequest], Certificate and CertificateVerify, fed to the transcript."""
    messages = []
    if request:
        schemes = encode_u16_list_ext(list(DEFAULT_SIGNATURE_SCHEMES))
        cr = CertificateRequest(b"", (Extension(_E.signature_algorithms, schemes),))
        messages.append(message(_H.CERTIFICATE_REQUEST, cr.encode()))
    entries = rpk.own_entries(ctx.chain_der, ctx.key, raw)
    cert = Certificate(b"", tuple(CertificateEntry(d) for d in entries))
    messages.append(message(_H.CERTIFICATE, cert.encode()))
    for m in messages:
        keys.transcript.update(m)
    # RFC 8446 §4.4.3: sign the transcript through Certificate.
    content = certificate_verify_content(keys.transcript.digest(), server=True)
    signature = ctx.provider.sign(ctx.key, choice.scheme, content)
    cv = message(_H.CERTIFICATE_VERIFY, CertificateVerify(choice.scheme, signature).encode())
    keys.transcript.update(cv)
    return [*messages, cv]


def on_client_certificate(
    ctx: ServerContext, state: WaitClientCertificate, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    cert = Certificate.decode(body)
    # RFC 8446 §4.4.2: the context echoes the CertificateRequest's (empty here).
    expect(cert.request_context == b"", "certificate_request_context", _A.illegal_parameter)
    state.keys.transcript.update(raw)
    if not cert.entries:
        # RFC 8446 §4.4.2.4: no certificate; the server decides.
        expect(
            ctx.config.verify_client != "required",
            "client sent no certificate",
            _A.certificate_required,
        )
        return WaitClientFinished(state.keys, state.suite, state.app, state.info), []
    if state.raw_public_key:
        peer_key = rpk.peer_raw_key(cert.chain_der, ctx.config.pinned_keys)
        info = replace(state.info, peer_raw_public_key=cert.chain_der[0])
        return WaitClientCertificateVerify(state.keys, state.suite, state.app, info, peer_key), []
    # Pins only (no cafile): an X.509 certificate is not a type we take (RFC 7250 §4.2).
    expect(ctx.trust is not None, "no trust anchors for X.509", _A.unsupported_certificate)
    peer_key = check_peer_certificate(cert.chain_der, None, ctx.trust, now)
    info = _replace_certs(state.info, cert.chain_der)
    return WaitClientCertificateVerify(state.keys, state.suite, state.app, info, peer_key), []


def on_client_certificate_verify(
    ctx: ServerContext, state: WaitClientCertificateVerify, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    verify_certificate_verify(
        ctx.provider, state.peer_key, body, state.keys.transcript.digest(), server=False
    )
    state.keys.transcript.update(raw)
    return WaitClientFinished(state.keys, state.suite, state.app, state.info), []


def on_client_finished(
    ctx: ServerContext, state: WaitClientFinished, body: bytes, raw: bytes, now: float
) -> tuple[ServerState, Actions]:
    keys = state.keys
    fin = Finished.decode(body, keys.schedule.hash.digest_size)
    # RFC 8446 §4.4.4: a wrong verify_data is decrypt_error.
    if not _equal(fin.verify_data, keys.finished(server=False)):
        raise DecryptError("client Finished does not verify")
    keys.transcript.update(raw)
    resumption = keys.schedule.resumption_master_secret(keys.transcript.digest())
    app = AppSecrets(state.app.client, state.app.server, resumption)
    actions: Actions = [install(False, keys, state.suite.aead, app.client)]
    actions.append(Complete(state.info))
    actions.extend(SendMessage(t) for t in new_session_tickets(ctx, state, resumption, now))
    return Connected(keys.schedule, state.suite, app, app.client, app.server), actions


def new_session_tickets(
    ctx: ServerContext, state: WaitClientFinished, resumption: bytes, now: float
) -> list[bytes]:
    """NewSessionTicket messages (RFC 8446 §4.6.1), each with its own nonce and
    ticket_age_add, the PSK sealed into the ticket. None when we would not resume them
    (client certificates: the ticket does not carry the client's identity)."""
    cfg = ctx.config
    if cfg.verify_client != "none":
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
        nst = NewSessionTicket(cfg.ticket_lifetime, age_add, nonce, ctx.sealer.seal(ticket_state))
        out.append(message(_H.NEW_SESSION_TICKET, nst.encode()))
    return out


def _equal(a: bytes, b: bytes) -> bool:
    from dtlsgate.crypto.hashes import constant_time_equal

    return constant_time_equal(a, b)


def _replace_certs(info: HandshakeInfo, chain: tuple[bytes, ...]) -> HandshakeInfo:
    import dataclasses

    return dataclasses.replace(info, peer_certificates=chain)


# ---- stateless continuation ------------------------------------------------------------------


def after_stateless_retry(
    ctx: ServerContext, admit: Any, now: float
) -> tuple[ServerState, Actions]:
    """Continue from a ClientHello2 whose cookie verified (``gate.results.StreamAdmit``): the
    transcript is rebuilt from the cookie (RFC 8446 §4.4.1: message_hash(Hash(ClientHello1)),
    then the HelloRetryRequest as we sent it, then ClientHello2); nothing else was kept."""
    hello, info = decode_client_hello(admit.client_hello_message[4:])
    suite, group = admit.cipher_suite, admit.group
    share = check_second_client_hello(hello, info, suite, group, admit.key_share_requested)
    hrr_group = group if admit.key_share_requested else None
    hrr = hello_retry_request(hello.session_id, suite, hrr_group, admit.cookie)
    transcript = TranscriptHash(
        suite_info(suite).hash, message_hash_from_digest(admit.client_hello1_digest)
    )
    transcript.update(hrr)
    found = ticket_for_suite(ctx, hello, info, suite, now)
    psk = check_binder(found, info, transcript, admit.client_hello_message)
    transcript.update(admit.client_hello_message)
    choice = choose(ctx, hello, info)
    choice = Choice(suite, group, choice.scheme, choice.alpn)
    return server_flight(ctx, hello, info, choice, share, transcript, True, psk)


Handler = Callable[[ServerContext, Any, bytes, bytes, float], tuple[ServerState, Actions]]

#: The one table of legal messages per state (RFC 8446 §2, Appendix A.2).
TABLE: dict[type, dict[int, Handler]] = {
    ServerStart: {_H.CLIENT_HELLO: on_client_hello},
    WaitClientHello2: {_H.CLIENT_HELLO: on_client_hello2},
    WaitClientCertificate: {_H.CERTIFICATE: on_client_certificate},
    WaitClientCertificateVerify: {_H.CERTIFICATE_VERIFY: on_client_certificate_verify},
    WaitClientFinished: {_H.FINISHED: on_client_finished},
    Connected: {_H.KEY_UPDATE: key_update_handler},
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
        (WaitClientCertificateVerify, _H.CERTIFICATE_VERIFY): (WaitClientFinished,),
        (WaitClientFinished, _H.FINISHED): (Connected,),
        (Connected, _H.KEY_UPDATE): (Connected,),
    },
    epochs=EPOCHS,
    default_epochs=HANDSHAKE_EPOCHS,
    after_handshake=frozenset({Connected}),
    after_handshake_epochs=APPLICATION_EPOCHS,
)
