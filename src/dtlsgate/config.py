"""Server and client configuration, shared by the gate, the handshakes and the adapters.

A config is built once and shared by every connection made from it. It holds settings and
long-lived keys only; nothing in it belongs to one peer. Secure defaults: extended master
secret required, certificates verified, only AEAD suites, DTLS 1.0 refused.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from dtlsgate.errors import UsageError
from dtlsgate.gate.cookie import CookieGenerate, CookieJar, CookieVerify
from dtlsgate.wire.cert_compression import parse_algorithm_names
from dtlsgate.wire.enums import SrtpProtectionProfile

if TYPE_CHECKING:
    from cryptography import x509

    from dtlsgate.crypto import CryptoProvider
    from dtlsgate.crypto.certs import Fingerprints, TrustStore
    from dtlsgate.crypto.signatures import PrivateKey

# RFC 6347 §4.1.1.1: without path MTU discovery, records should fit a conservative path.
# 1200 bytes fits IPv6's minimum MTU (1280) with the IP and UDP headers (48 bytes) and room
# for tunnels, the same default QUIC chose (RFC 9000 §14).
DEFAULT_MTU = 1200

# Limits on what a server keeps for clients (every server adapter applies them; see
# ``dtlsgate.connection.admission``). A cookie proves only that a client owns its address.
#
# Handshake deadline: the server-side handshake (Admit to Finished) over the slow links the
# tests simulate took at most 15.8 s (tests/test_dtls12_latency.py's three links, 700 seeded
# runs: one-way delays of 0.05-3 s, up to 20% loss and duplication; medians 2.4-5.6 s), and
# with real peers (openssl, gnutls, our clients) through the 0.7 s-each-way lossy proxy of
# tests/test_interop_dtls12_latency.py at most 2.6 s (two runs, 20 handshakes). But after its
# admission a server sends its flight at 0, 1, 3, 7, 15, 31 s (RFC 6347 §4.2.4.1, RFC 9147
# §5.8.2): 30 s cuts off the sixth chance, and with 30 s one of 50 openssl clients through
# tests/test_interop_dtls12_loss.py's proxy was abandoned. Over 1000 seeded links (0.05-1.8 s
# one way plus jitter, 20% loss, 10% duplication: bench/lossy_handshakes.py, twice) the
# server-side handshake took over 30 s in 1-2 (DTLS 1.2) and 1-5 (DTLS 1.3) of 1000, never
# over 45 s (at 30% loss, 1 and 3-4 of 1000 over 60 s). 60 s keeps those, and is a third
# of the ~183 s an abandoned DTLS handshake held its slot before (8 transmissions); the
# per-address limit, not this deadline, keeps one address from locking others out. (A
# first try at 60 s failed a wolfSSL DTLS 1.3 test: a stall the 30 s deadline had hidden,
# issue 12, fixed in connection/datagram13.py.)
DEFAULT_HANDSHAKE_TIMEOUT = 60.0
# Handshakes in progress in all: each may hold reassembly buffers of up to 384 KiB against a
# hostile peer (connection/flight.py MAX_BUFFERED_BYTES), so 256 bounds that to 96 MiB.
# When full, a newcomer evicts the oldest handshake of the address holding the most.
DEFAULT_MAX_HANDSHAKES = 256
# Handshakes in progress from one address: a NAT (an office, a carrier-grade NAT address)
# puts many clients behind one address, and at the limit the address's oldest handshake
# makes way for its newcomer, which kills that one if it was a real client: the limit must
# stay above what one address legitimately starts within a handshake time (20 clients at
# once from one address in tests/test_dtls12_aio.py failed with 16). 64 is a quarter of
# DEFAULT_MAX_HANDSHAKES, so one address can never fill the table on its own.
DEFAULT_MAX_HANDSHAKES_PER_ADDRESS = 64
# IPv6 addresses are counted per /64: one host or site usually holds a whole /64 (RFC 7421),
# so counting single addresses would give it 2^64 budgets.
DEFAULT_IPV6_PREFIX_LENGTH = 64
# An established association that receives nothing for this long is closed: RFC 4787 §4.3
# recommends that NATs keep an idle UDP mapping 5 minutes (at least 2), so a client silent
# longer has most likely lost the address we would answer anyway.
DEFAULT_IDLE_TIMEOUT = 300.0
# Established associations at once. An idle DTLS 1.2 association held by the asyncio server
# measures about 6.6 KiB with tracemalloc and 12 KiB of RSS with its stream
# (bench/aio_memory.py; the connection alone about 2.0 KiB traced, bench/memory.py): 4096
# keeps idle ones near 50 MiB, and bounds how many handlers (and records queued for slow
# handlers) one server runs at once.
# At the cap, new admits are refused (dropped: the client retransmits and gets in once an
# association closes); established ones are never evicted for a newcomer.
DEFAULT_MAX_ASSOCIATIONS = 4096

StatelessCookieGenerate = Callable[[Hashable | None], bytes]
StatelessCookieVerify = Callable[[Hashable | None, bytes], bool]


def check_record_size_limit(limit: int) -> None:
    """RFC 8449 §4: at least 64; in TLS 1.3 at most 2^14 + 1 (content and type byte)."""
    if not 64 <= limit <= (1 << 14) + 1:
        raise UsageError("record_size_limit must be between 64 and 16385")


# RFC 5246 §7.4.1.2 leaves the session cache to the server. A session kept for a client that
# never comes back costs about 200 bytes (its master secret and what was negotiated): 1024
# sessions are a few hundred kilobytes, and the least recently used leaves first.
DEFAULT_SESSION_CACHE_SIZE = 1024
MAX_SESSION_CACHE_SIZE = 1 << 20


class SessionCache:
    """A server's DTLS 1.2 session cache: session ID -> the session's state (opaque bytes
    here), at most ``size`` entries, each for ``lifetime`` seconds, the least recently used
    evicted first. Sans-I/O: the time is the ``now`` of the call. Shared by the connections
    of one config, like OpenSSL's per-SSL_CTX cache; nothing enters it before a handshake
    completes (the gate has verified the peer's address long before)."""

    def __init__(self, size: int, lifetime: float) -> None:
        if not 0 < size <= MAX_SESSION_CACHE_SIZE:
            raise UsageError(f"session cache size must be between 1 and {MAX_SESSION_CACHE_SIZE}")
        if lifetime <= 0:
            raise UsageError("session cache lifetime must be positive")
        self.size = size
        self.lifetime = lifetime
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, session_id: bytes, state: bytes, now: float) -> None:
        self._entries[session_id] = (now, state)
        self._entries.move_to_end(session_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, session_id: bytes, now: float) -> bytes | None:
        """The state cached under ``session_id`` when it is there and not expired."""
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        stored_at, state = entry
        if not stored_at <= now < stored_at + self.lifetime:
            del self._entries[session_id]
            return None
        self._entries.move_to_end(session_id)
        return state

    def remove(self, session_id: bytes) -> None:
        self._entries.pop(session_id, None)


#: RFC 8446 §4.2.9 modes, by value: psk_ke (0, the PSK alone) and psk_dhe_ke (1, with (EC)DHE).
PSK_KE, PSK_DHE_KE = 0, 1
#: The hashes an external TLS 1.3 PSK may be bound to (RFC 8446 §4.2.11: one per PSK; the
#: suites' hashes).
PSK_HASHES = ("sha256", "sha384")


def check_psk_options(modes: tuple[int, ...], hash_name: str) -> None:
    """TLS 1.3 PSK settings: ``psk_modes`` a non-empty ordered set of psk_ke (0) and
    psk_dhe_ke (1); ``psk_hash`` one of `PSK_HASHES`."""
    if not modes or len(set(modes)) != len(modes) or not set(modes) <= {PSK_KE, PSK_DHE_KE}:
        raise UsageError("psk_modes must list psk_ke (0) and/or psk_dhe_ke (1), once each")
    if hash_name not in PSK_HASHES:
        raise UsageError(f"psk_hash must be one of {', '.join(PSK_HASHES)}, not {hash_name!r}")


def check_srtp_profiles(profiles: tuple[int, ...]) -> tuple[int, ...]:
    """``srtp_profiles`` as `SrtpProtectionProfile` members: known ones, each once."""
    try:
        members = tuple(SrtpProtectionProfile(p) for p in profiles)
    except (ValueError, TypeError):
        known = ", ".join(p.name for p in SrtpProtectionProfile)
        raise UsageError(f"srtp_profiles takes SrtpProtectionProfile values: {known}") from None
    if len(set(members)) != len(members):
        raise UsageError("srtp_profiles names a profile twice")
    return members


def check_psk(identity: bytes, key: bytes) -> None:
    """A PSK identity of 1 to 65535 bytes (RFC 8446 §4.2.11, RFC 4279 §5.1 for DTLS 1.2) and a
    key of 1 to 255 bytes (the ticket format's bound; RFC 9257 §6 asks for 128 bits or more,
    which we leave to the application)."""
    if not isinstance(identity, bytes) or not 1 <= len(identity) <= 0xFFFF:
        raise UsageError("a PSK identity is 1 to 65535 bytes")
    if not isinstance(key, bytes) or not 1 <= len(key) <= 255:
        raise UsageError("a PSK is 1 to 255 bytes")


class VerifyClient(StrEnum):
    """Whether a server asks for a client certificate (OpenSSL's ``SSL_VERIFY_*``, Python's
    ``ssl.CERT_*``). A str enum: ``VerifyClient.REQUIRED == "required"``; the strings and
    ``ssl.CERT_NONE`` / ``CERT_OPTIONAL`` / ``CERT_REQUIRED`` (0, 1, 2) are accepted too."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"

    @classmethod
    def _missing_(cls, value: object) -> VerifyClient | None:
        # ssl.VerifyMode is an IntEnum: CERT_NONE 0, CERT_OPTIONAL 1, CERT_REQUIRED 2 (read
        # by value, so that the core does not import ssl and with it socket).
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2:
            return list(cls)[value]
        return None


def _verify_client(value: object) -> VerifyClient:
    found: VerifyClient | None = None
    if isinstance(value, str):
        found = VerifyClient._value2member_map_.get(value)  # type: ignore[assignment]
    else:
        found = VerifyClient._missing_(value)
    if found is None:
        raise UsageError(
            'verify_client must be "none", "optional" or "required" (or ssl.CERT_NONE, '
            f"CERT_OPTIONAL, CERT_REQUIRED), not {value!r}"
        )
    return found


def _load_identity(
    certfile: str | bytes, keyfile: str | bytes | None
) -> tuple[list[x509.Certificate], PrivateKey]:
    from dtlsgate.crypto.certs import load_identity

    identity = load_identity(certfile, certfile if keyfile is None else keyfile)
    return list(identity.chain), identity.private_key


def _check_credentials(
    chain: list[x509.Certificate], key: PrivateKey | None, raw_public_key: bool = False
) -> None:
    """Credentials are cryptography objects, and come as a pair (a raw public key is the
    private key's alone, RFC 7250)."""
    if not chain and key is None:
        return
    from cryptography import x509

    from dtlsgate.crypto.signatures import PrivateKey

    if raw_public_key and not chain and key is not None:
        if not isinstance(key, PrivateKey):
            raise UsageError(f"private_key of type {type(key).__name__} is not a supported key")
        return
    if not chain or key is None:
        raise UsageError("give certificate_chain and private_key together (see load_cert_chain)")
    if not all(isinstance(c, x509.Certificate) for c in chain):
        raise UsageError("certificate_chain must hold cryptography x509.Certificate objects")
    if not isinstance(key, PrivateKey):
        raise UsageError(f"private_key of type {type(key).__name__} is not a supported key")


def _verify_locations(
    current: str | bytes | None, cafile: str | None, cadata: str | bytes | None
) -> bytes:
    """``ssl.SSLContext.load_verify_locations``: trust anchors from a PEM file and/or PEM
    (str or bytes) or DER (bytes) data, added to ``current``; all of them loaded now, so a
    bad file is a UsageError here rather than a failed handshake later."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from dtlsgate.crypto.certs import load_certificate_chain

    if cafile is None and cadata is None:
        raise UsageError("load_verify_locations needs cafile or cadata")
    sources: list[str | bytes] = [s for s in (current, cafile) if s is not None]
    if isinstance(cadata, str):
        sources.append(cadata.encode("ascii", "replace"))
    elif cadata is not None and b"-----BEGIN" not in cadata:
        try:
            der = x509.load_der_x509_certificate(cadata)
        except ValueError as exc:
            raise UsageError(f"cadata is neither PEM nor a DER certificate: {exc}") from None
        sources.append(der.public_bytes(Encoding.PEM))
    elif cadata is not None:
        sources.append(cadata)
    pem = b""
    for source in sources:
        for cert in load_certificate_chain(source):
            pem += cert.public_bytes(Encoding.PEM)
    return pem


def _default_provider() -> CryptoProvider:
    from dtlsgate.crypto import DefaultProvider

    return DefaultProvider()


@dataclass
class ServerConfig:
    """What a server needs: cookies for the gate, credentials and preferences for the
    handshake.

    Cookies: by default a ``CookieJar`` with a random master key (cookies verify in this
    process only); pass ``cookie_jar=CookieJar(master_key)`` to share cookies across
    processes. ``cookie_generate(peer) -> bytes`` (at most 255 bytes) and
    ``cookie_verify(peer, cookie) -> bool`` replace the jar, with OpenSSL's meaning
    (``SSL_CTX_set_cookie_generate_cb`` / ``_verify_cb``); give both or neither.
    ``stateless_cookie_generate`` / ``_verify`` are the TLS 1.3 application part of the
    cookie (``SSL_CTX_set_stateless_cookie_generate_cb``), carried inside the jar's
    integrity-protected cookie.
    """

    cookie_jar: CookieJar | None = None
    cookie_generate: CookieGenerate | None = None
    cookie_verify: CookieVerify | None = None
    stateless_cookie_generate: StatelessCookieGenerate | None = None
    stateless_cookie_verify: StatelessCookieVerify | None = None
    # Credentials: a certificate chain (leaf first) and its private key, as cryptography
    # objects; see ``load_cert_chain``. PSKs: identity -> key.
    certificate_chain: list[x509.Certificate] = field(default_factory=list)
    private_key: PrivateKey | None = None
    psk: dict[bytes, bytes] = field(default_factory=dict)
    psk_identity_hint: bytes = b""
    # TLS 1.3 (RFC 8446 §4.2.9, §4.2.11): the hash every external PSK above is bound to, and
    # the key exchange modes we accept for any PSK (external or a ticket), preferred first;
    # (PSK_KE, PSK_DHE_KE) lets a client that offers psk_ke skip (EC)DHE.
    psk_hash: str = "sha256"
    psk_modes: tuple[int, ...] = (PSK_DHE_KE,)
    # RFC 8879: the certificate compression algorithms ("zlib", and "brotli"/"zstd" when
    # their module is importable) we accept, advertised in the CertificateRequest (TLS 1.3);
    # we compress our own certificate whenever the client asks for an algorithm we have.
    certificate_compression: tuple[str, ...] = ()
    # Preferences, most preferred first; None means the library's default order.
    cipher_suites: tuple[int, ...] | None = None
    groups: tuple[int, ...] | None = None
    signature_schemes: tuple[int, ...] | None = None
    alpn_protocols: tuple[bytes, ...] = ()
    # DTLS-SRTP (RFC 5764, DTLS 1.2 and 1.3): the SRTP protection profiles we take in use_srtp
    # (`SrtpProtectionProfile` values), most preferred first; () ignores the extension.
    srtp_profiles: tuple[int, ...] = ()
    # Client certificates: a VerifyClient (or "none", "optional", "required", or
    # ssl.CERT_*); their trust anchors: a PEM file's path or PEM bytes (see
    # ``load_verify_locations``), or client raw public keys in pinned_keys.
    verify_client: VerifyClient | str | int = VerifyClient.NONE
    cafile: str | bytes | None = None
    # Raw public keys (RFC 7250). ``raw_public_key``: present private_key's public key bare
    # to a client that accepts one (server_certificate_type); without a certificate_chain,
    # to those clients only. ``pinned_keys``: the client keys (DER SubjectPublicKeyInfo,
    # see ``crypto.certs.load_public_keys``) accepted as raw public keys; any other key is
    # refused with bad_certificate.
    raw_public_key: bool = False
    pinned_keys: tuple[bytes, ...] = ()
    # Certificate fingerprints (RFC 8122 §5, as WebRTC exchanges them): the client's
    # end-entity certificate must have one of these, each "HASH XX:XX:..." (e.g. "sha-256
    # AB:CD:..."; see ``crypto.certs.certificate_fingerprint``). They stand in for client CAs
    # (``verify_client`` takes either): without a cafile the fingerprint is the whole check
    # (no chain, name or dates); with one, both must pass.
    certificate_fingerprints: tuple[str, ...] = ()
    require_extended_master_secret: bool = True
    mtu: int = DEFAULT_MTU
    # TLS 1.3: answer every new ClientHello with a HelloRetryRequest carrying a cookie.
    stateless: bool = False
    # TLS 1.3 session tickets (RFC 8446 §4.6.1): how many NewSessionTickets to send after a
    # handshake (0: none), their lifetime in seconds, and the 32-byte key that seals them
    # (None: a random key, so tickets resume in this process only; pass the same key, e.g.
    # ``tls13.tickets.ticket_key_from_master(master_key)``, to every server of a fleet).
    session_tickets: int = 1
    # RFC 8449: the largest TLSInnerPlaintext (content, type byte and padding) we accept in
    # a protected TLS 1.3 record, advertised when the client sends record_size_limit.
    record_size_limit: int = 16385
    ticket_lifetime: int = 7200
    ticket_key: bytes | None = None
    # DTLS 1.2 resumption (RFC 5246 §7.3). Tickets (RFC 5077) when ``session_tickets`` > 0:
    # one NewSessionTicket per full handshake with a client that asks, lifetime
    # ``ticket_lifetime``, sealed under a key the cookie jar derives from its master key
    # (``CookieJar.derive_key``), so a fleet sharing the master key resumes each other's
    # sessions. For clients without tickets, a session ID cache of at most
    # ``session_cache_size`` sessions kept ``session_cache_lifetime`` seconds; 0 turns it
    # off (a fully stateless server: with tickets off too, nothing resumes).
    session_cache_size: int = DEFAULT_SESSION_CACHE_SIZE
    session_cache_lifetime: int = 7200
    session_cache: SessionCache | None = field(default=None, repr=False, compare=False)
    keylog_file: str | None = None
    provider: CryptoProvider = field(default_factory=_default_provider)
    # The DTLS versions a datagram server accepts (0xFEFC DTLS 1.3, 0xFEFD DTLS 1.2): the
    # gate answers a ClientHello offering DTLS 1.3 with a HelloRetryRequest, any other with
    # a HelloVerifyRequest (openssl's -dtls1_2 / -dtls1_3 pin one).
    dtls_versions: tuple[int, ...] = (0xFEFC, 0xFEFD)
    # DTLS 1.3 connection IDs (RFC 9147 §9): when a client offers the extension, each
    # connection gets a random CID of this many bytes for the client to send (0: none).
    connection_id_length: int = 0
    # What the server keeps for clients (the reasons for the defaults are at the constants
    # above): a handshake not completed within ``handshake_timeout`` seconds of its admission
    # is abandoned (None: only the retransmission ceiling ends it); at most
    # ``max_handshakes`` in progress, ``max_handshakes_per_address`` from one address (IPv6:
    # one network of ``ipv6_prefix_length`` bits); an association idle ``idle_timeout``
    # seconds is closed (None: never); at most ``max_associations`` established at once.
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    max_handshakes: int = DEFAULT_MAX_HANDSHAKES
    max_handshakes_per_address: int = DEFAULT_MAX_HANDSHAKES_PER_ADDRESS
    ipv6_prefix_length: int = DEFAULT_IPV6_PREFIX_LENGTH
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    max_associations: int = DEFAULT_MAX_ASSOCIATIONS
    # ``trust_store()``'s client CAs and the cafile they were loaded from.
    _trust: tuple[str | bytes | None, TrustStore] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # ``peer_fingerprints()``'s parsed fingerprints and the texts they were parsed from.
    _fingerprints: tuple[tuple[str, ...], Fingerprints | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._check_limits()
        if not 0 <= self.connection_id_length <= 20:
            raise UsageError("connection_id_length must be between 0 and 20")
        if not self.dtls_versions or not set(self.dtls_versions) <= {0xFEFC, 0xFEFD}:
            raise UsageError("dtls_versions takes 0xFEFC (DTLS 1.3) and/or 0xFEFD (DTLS 1.2)")
        if (self.cookie_generate is None) != (self.cookie_verify is None):
            raise UsageError("give both cookie_generate and cookie_verify, or neither")
        if (self.stateless_cookie_generate is None) != (self.stateless_cookie_verify is None):
            raise UsageError(
                "give both stateless_cookie_generate and stateless_cookie_verify, or neither"
            )
        if self.cookie_jar is None:
            self.cookie_jar = CookieJar(random=self.provider.random)
        self.verify_client = _verify_client(self.verify_client)
        self.certificate_fingerprints = _check_fingerprints(self)
        # Without trust anchors a client certificate could not be verified: refuse the
        # config rather than accept any certificate unverified.
        if self.verify_client != "none" and not verifies_client_certificates(self):
            raise UsageError(
                f'verify_client="{self.verify_client.value}" needs a cafile of client CAs'
                " (cafile=, or load_verify_locations() before setting verify_client),"
                " certificate_fingerprints or pinned_keys"
            )
        _check_credentials(self.certificate_chain, self.private_key, self.raw_public_key)
        if self.psk_identity_hint and not self.psk:
            raise UsageError("psk_identity_hint does not apply without psk")
        if not 256 <= self.mtu <= 65535:
            raise UsageError("mtu must be between 256 and 65535")
        if self.ticket_key is None:
            self.ticket_key = self.provider.random(32)
        if len(self.ticket_key) != 32:
            raise UsageError("ticket_key must be 32 bytes")
        check_record_size_limit(self.record_size_limit)
        check_psk_options(self.psk_modes, self.psk_hash)
        parse_algorithm_names(self.certificate_compression)
        self.srtp_profiles = check_srtp_profiles(self.srtp_profiles)
        # RFC 8446 §4.2.11: identity <1..2^16-1>; RFC 9257 §6.1: a PSK has at least 128 bits.
        for identity, key in self.psk.items():
            check_psk(identity, key)
        if not 0 <= self.session_tickets <= 16:
            raise UsageError("session_tickets must be between 0 and 16")
        # RFC 8446 §4.6.1: a ticket lifetime is at most 7 days.
        if not 0 < self.ticket_lifetime <= 604800:
            raise UsageError("ticket_lifetime must be between 1 and 604800 seconds")
        if self.session_cache is None and self.session_cache_size:
            self.session_cache = SessionCache(self.session_cache_size, self.session_cache_lifetime)

    def _check_limits(self) -> None:
        for name in ("handshake_timeout", "idle_timeout"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 86400:
                raise UsageError(f"{name} must be between 0 and 86400 seconds, or None")
        if not 1 <= self.max_handshakes <= 1_000_000:
            raise UsageError("max_handshakes must be between 1 and 1000000")
        if not 1 <= self.max_handshakes_per_address <= self.max_handshakes:
            raise UsageError("max_handshakes_per_address must be between 1 and max_handshakes")
        if not 1 <= self.ipv6_prefix_length <= 128:
            raise UsageError("ipv6_prefix_length must be between 1 and 128")
        if not 1 <= self.max_associations <= 10_000_000:
            raise UsageError("max_associations must be between 1 and 10000000")

    def load_cert_chain(self, certfile: str | bytes, keyfile: str | bytes | None = None) -> None:
        """Load a PEM certificate chain (leaf first) and its private key, like
        ``ssl.SSLContext.load_cert_chain``; each argument is a path or PEM bytes. Without
        ``keyfile`` the key is read from ``certfile``. Raises UsageError on a bad file or a
        key that does not match the certificate."""
        self.certificate_chain, self.private_key = _load_identity(certfile, keyfile)

    def load_verify_locations(
        self, cafile: str | None = None, cadata: str | bytes | None = None
    ) -> None:
        """The CAs that client certificates must chain to, as in
        ``ssl.SSLContext.load_verify_locations``: a PEM file, and/or PEM (str or bytes) or
        DER (bytes) data; repeated calls add. Raises UsageError on a bad file. Then set
        ``verify_client``."""
        self.cafile = _verify_locations(self.cafile, cafile, cadata)

    def trust_store(self) -> TrustStore:
        """The client CAs of ``cafile``, loaded at the first call and kept with the config,
        so the DTLS 1.2 and the (D)TLS 1.3 server contexts of one config share one store.
        Loaded again when ``cafile`` changed. UsageError without a cafile: a server has no
        default client CAs."""
        if not self.cafile:
            raise UsageError("no client CAs: load_verify_locations() or cafile= first")
        return _trust_store(self)

    def peer_fingerprints(self) -> Fingerprints | None:
        """``certificate_fingerprints`` parsed (`crypto.certs.parse_fingerprints`), at the
        first call and again only when they changed, so that every handshake of the config
        checks against one parsed set; None when there are none. UsageError for a bad one."""
        return _peer_fingerprints(self)

    def check_can_serve(self) -> None:
        """A server needs credentials: a certificate (and key) or a PSK. Called by the
        servers at start, since a config without them is fine for the gate alone."""
        self.verify_client = _verify_client(self.verify_client)
        _check_credentials(self.certificate_chain, self.private_key, self.raw_public_key)
        if not self.certificate_chain and not self.psk and not self.raw_public_key:
            raise UsageError(
                "a server needs a certificate (load_cert_chain), a raw public key "
                "(load_raw_public_key) or a PSK (psk=...); without one every handshake would fail"
            )
        self.peer_fingerprints()
        if self.verify_client != "none" and not verifies_client_certificates(self):
            raise UsageError(
                "verify_client needs client CAs (load_verify_locations), "
                "certificate_fingerprints or pinned_keys"
            )

    def load_raw_public_key(self, keyfile: str | bytes) -> None:
        """Load a PEM private key whose public key we present bare (RFC 7250)."""
        _load_raw_public_key(self, keyfile)


def _trust_store(config: ServerConfig | ClientConfig) -> TrustStore:
    """``config``'s trust store of its ``cafile`` (None: the system's), loaded at the first
    call and again only when ``cafile`` changed."""
    # Each read once: with a second read of ``cafile`` (or of ``_trust``), another thread
    # assigning it in between could have a store kept under a cafile it was not loaded from.
    cafile, trust = config.cafile, config._trust
    if trust is None or trust[0] != cafile:
        from dtlsgate.crypto.certs import load_trust_store

        trust = config._trust = (cafile, load_trust_store(cafile))
    return trust[1]


def _peer_fingerprints(config: ServerConfig | ClientConfig) -> Fingerprints | None:
    """``config``'s certificate_fingerprints parsed, at the first call and again only when
    they changed (compared with the tuple they were parsed from); None when there are none."""
    texts, kept = config.certificate_fingerprints, config._fingerprints  # each read once
    if kept is not None and kept[0] == texts:
        return kept[1]
    from dtlsgate.crypto.certs import parse_fingerprints

    parsed = parse_fingerprints(texts) if texts else None
    config._fingerprints = (tuple(texts), parsed)
    return parsed


def _check_fingerprints(config: ServerConfig | ClientConfig) -> tuple[str, ...]:
    """``certificate_fingerprints`` checked (UsageError for a bad one) and parsed once for
    every handshake; returned as a tuple."""
    _peer_fingerprints(config)
    return tuple(config.certificate_fingerprints)


def verifies_client_certificates(config: ServerConfig) -> bool:
    """Whether a server has something to check a client's certificate against: client CAs,
    certificate fingerprints, or raw public keys pinned (RFC 7250)."""
    return bool(config.cafile or config.certificate_fingerprints or config.pinned_keys)


def verifies_x509(config: ServerConfig | ClientConfig) -> bool:
    """Whether X.509 is a certificate type ``config`` takes from its peer when it also pins
    raw public keys (RFC 7250 §4.1): when something checks an X.509 certificate, a cafile
    or certificate fingerprints (pins alone take raw public keys only)."""
    return bool(config.cafile or config.certificate_fingerprints)


def _load_raw_public_key(config: ServerConfig | ClientConfig, keyfile: str | bytes) -> None:
    from dtlsgate.crypto.certs import load_private_key

    config.private_key = load_private_key(keyfile)
    config.raw_public_key = True


# The ClientConfig attributes whose assignment keeps what `ClientConfig.prepared` made.
_CLIENT_PER_CONNECTION = frozenset(
    {"session_ticket", "_trust", "_fingerprints", "_prepared", "_generation"}
)
# A ClientConfig's generation: a new number from this counter at every field assigned. One
# counter for every config, so that a number is never handed out twice: two threads
# assigning fields of one config at once each get their own (``next`` on a count is one C
# call), where ``self._generation + 1`` could give both the same and let an older number
# come back, and with it a context made from fields since replaced.
_generations = itertools.count(1)
T = TypeVar("T")


@dataclass
class ClientConfig:
    """What a client needs: trust anchors and the name to verify, or ``insecure=True`` asked
    for by name; PSK identity and key; preferences."""

    server_name: str | None = None
    # Trust anchors: a PEM file's path or PEM bytes (see ``load_verify_locations``); None:
    # the system's.
    cafile: str | bytes | None = None
    insecure: bool = False
    certificate_chain: list[x509.Certificate] = field(default_factory=list)
    private_key: PrivateKey | None = None
    psk_identity: bytes | None = None
    psk: bytes | None = None
    # TLS 1.3 external PSK (RFC 8446 §4.2.11): the hash ``psk`` is bound to, and the modes we
    # offer for it and for tickets, preferred first (RFC 8446 §4.2.9).
    psk_hash: str = "sha256"
    psk_modes: tuple[int, ...] = (PSK_DHE_KE,)
    # RFC 8879: the certificate compression algorithms we accept, advertised in the
    # ClientHello (TLS 1.3); off by default, which keeps the default ClientHello as it was.
    certificate_compression: tuple[str, ...] = ()
    cipher_suites: tuple[int, ...] | None = None
    groups: tuple[int, ...] | None = None
    signature_schemes: tuple[int, ...] | None = None
    alpn_protocols: tuple[bytes, ...] = ()
    # DTLS-SRTP (RFC 5764, DTLS 1.2 and 1.3): the SRTP protection profiles offered in use_srtp
    # (`SrtpProtectionProfile` values), most preferred first; () offers none.
    srtp_profiles: tuple[int, ...] = ()
    require_extended_master_secret: bool = True
    mtu: int = DEFAULT_MTU
    keylog_file: str | None = None
    provider: CryptoProvider = field(default_factory=_default_provider)
    # TLS 1.3 middlebox compatibility mode (RFC 8446 Appendix D.4): a non-empty
    # legacy_session_id and a ChangeCipherSpec before our encrypted flight.
    middlebox_compat: bool = True
    # Resumption: the session from an earlier connection's ``SessionTicketReceived`` event
    # (or its ``session`` property). TLS 1.3 (RFC 8446 §4.6.1): a
    # ``tls13.client.SessionTicket``, offered as a PSK (psk_dhe_ke). DTLS 1.2 (RFC 5246
    # §7.3, RFC 5077): a ``Dtls12Session``, offered by its ticket or its session ID.
    session_ticket: Any = None
    # RFC 8449: the largest TLSInnerPlaintext we accept in a protected TLS 1.3 record; sent
    # in every ClientHello.
    record_size_limit: int = 16385
    # Raw public keys (RFC 7250). ``pinned_keys``: the server keys (DER
    # SubjectPublicKeyInfo, see ``crypto.certs.load_public_keys``) we accept bare, offered
    # in server_certificate_type (X.509 too when a cafile is set); any other key is refused
    # with bad_certificate. ``raw_public_key``: answer a certificate request with
    # private_key's public key when the server accepts one (client_certificate_type).
    pinned_keys: tuple[bytes, ...] = ()
    raw_public_key: bool = False
    # Certificate fingerprints (RFC 8122 §5, as WebRTC exchanges them): the server's
    # end-entity certificate must have one of these, each "HASH XX:XX:..." (e.g. "sha-256
    # AB:CD:..."; see ``crypto.certs.certificate_fingerprint``). Without a cafile the
    # fingerprint is the whole check (no chain, no server name needed, no dates); with one,
    # the chain is verified for server_name as well.
    certificate_fingerprints: tuple[str, ...] = ()
    # The DTLS versions a datagram client offers (0xFEFC DTLS 1.3, 0xFEFD DTLS 1.2): with
    # both, DTLS 1.3 and a fall back to DTLS 1.2 only when the server picks it.
    dtls_versions: tuple[int, ...] = (0xFEFC, 0xFEFD)
    # DTLS 1.3 connection IDs (RFC 9147 §9): offer a random CID of this many bytes for the
    # server to send in its records (0: do not offer the extension).
    connection_id_length: int = 0
    # RFC 8446 §4.2.6: offer post-handshake authentication (the server may then ask for our
    # certificate at any time after the handshake); off by default, as in OpenSSL.
    post_handshake_auth: bool = False
    # ``trust_store()``'s anchors and the cafile they were loaded from.
    _trust: tuple[str | bytes | None, TrustStore] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # ``peer_fingerprints()``'s parsed fingerprints and the texts they were parsed from.
    _fingerprints: tuple[tuple[str, ...], Fingerprints | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # What `prepared` made: the config's generation, id and certificate chain when it was
    # made (fields assigned since, a copy of the config, or a chain changed in place, do not
    # use it), by the function that made it.
    _prepared: tuple[int, int, tuple[x509.Certificate, ...], dict[Hashable, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # Changed whenever a field is assigned (see `_generations`); 0 until then.
    _generation: int = field(default=0, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # Any field assigned (a load_* call assigns too) drops what `prepared` made from the
        # fields, so the next connection sees the change; the session ticket is read per
        # connection, and the caches are not the configuration. The new generation comes
        # after the value: whoever reads it reads the value too.
        object.__setattr__(self, name, value)
        if name not in _CLIENT_PER_CONNECTION:
            object.__setattr__(self, "_prepared", None)
            object.__setattr__(self, "_generation", next(_generations))

    def prepared(self, make: Callable[[ClientConfig], T]) -> T:
        """``make(self)``, made at the first call with ``make`` and kept with the config
        until a field is assigned or ``certificate_chain`` changes in place: what a client
        computes from its configuration alone (a DTLS 1.3 client's context), once per
        configuration instead of once per connection.

        No lock: a field that another thread assigns while ``make`` runs may or may not be
        in what ``make`` makes. That is stored under the generation read before ``make``,
        which the assignment changed, so it serves this call alone, even when stored after
        the assignment dropped what was kept."""
        generation = self._generation
        kept = self._prepared
        chain = tuple(self.certificate_chain)
        table: dict[Hashable, Any] = {}
        if kept is not None and kept[0] == generation and kept[1] == id(self) and kept[2] == chain:
            value = kept[3].get(make)
            if value is not None:
                return value  # type: ignore[no-any-return]
            table = dict(kept[3])  # a new table: a copy of this config may hold the old one
        value = table[make] = make(self)
        self._prepared = (generation, id(self), chain, table)
        return value

    def __post_init__(self) -> None:
        if not 0 <= self.connection_id_length <= 20:
            raise UsageError("connection_id_length must be between 0 and 20")
        if not self.dtls_versions or not set(self.dtls_versions) <= {0xFEFC, 0xFEFD}:
            raise UsageError("dtls_versions takes 0xFEFC (DTLS 1.3) and/or 0xFEFD (DTLS 1.2)")
        check_record_size_limit(self.record_size_limit)
        if (self.psk is None) != (self.psk_identity is None):
            raise UsageError("give both psk and psk_identity, or neither")
        if self.psk is not None and self.psk_identity is not None:
            check_psk(self.psk_identity, self.psk)
        check_psk_options(self.psk_modes, self.psk_hash)
        parse_algorithm_names(self.certificate_compression)
        self.srtp_profiles = check_srtp_profiles(self.srtp_profiles)
        if not 256 <= self.mtu <= 65535:
            raise UsageError("mtu must be between 256 and 65535")
        if self.insecure and self.cafile:
            raise UsageError("cafile does not apply with insecure=True (nothing is verified)")
        self.certificate_fingerprints = _check_fingerprints(self)
        if self.insecure and self.certificate_fingerprints:
            raise UsageError(
                "certificate_fingerprints do not apply with insecure=True (nothing is verified)"
            )
        _check_credentials(self.certificate_chain, self.private_key, self.raw_public_key)

    def trust_store(self) -> TrustStore:
        """The anchors of ``cafile`` (the system's when None), loaded at the first call and
        kept with the config: parsing a CA bundle (about 20 ms for the system's) is
        configuration work, not a connection's. Loaded again when ``cafile`` changed."""
        return _trust_store(self)

    def peer_fingerprints(self) -> Fingerprints | None:
        """``certificate_fingerprints`` parsed (`crypto.certs.parse_fingerprints`), at the
        first call and again only when they changed; None when there are none. UsageError
        for a bad one."""
        return _peer_fingerprints(self)

    def load_verify_locations(
        self, cafile: str | None = None, cadata: str | bytes | None = None
    ) -> None:
        """The trust anchors for the server's certificate, as in
        ``ssl.SSLContext.load_verify_locations``: a PEM file, and/or PEM (str or bytes) or
        DER (bytes) data; repeated calls add. Raises UsageError on a bad file."""
        self.cafile = _verify_locations(self.cafile, cafile, cadata)

    def load_cert_chain(self, certfile: str | bytes, keyfile: str | bytes | None = None) -> None:
        """Load the client certificate: a PEM chain (leaf first) and its private key, like
        ``ssl.SSLContext.load_cert_chain``; each argument is a path or PEM bytes. Without
        ``keyfile`` the key is read from ``certfile``. Raises UsageError on a bad file or a
        key that does not match the certificate."""
        self.certificate_chain, self.private_key = _load_identity(certfile, keyfile)

    def load_raw_public_key(self, keyfile: str | bytes) -> None:
        """Load a PEM private key whose public key we present bare (RFC 7250)."""
        _load_raw_public_key(self, keyfile)
