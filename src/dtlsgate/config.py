"""Server and client configuration, shared by the gate, the handshakes and the adapters.

A config is built once and shared by every connection made from it. It holds settings and
long-lived keys only; nothing in it belongs to one peer. Secure defaults: extended master
secret required, certificates verified, only AEAD suites, DTLS 1.0 refused.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dtlsgate.errors import UsageError
from dtlsgate.gate.cookie import CookieGenerate, CookieJar, CookieVerify

if TYPE_CHECKING:
    from cryptography import x509

    from dtlsgate.crypto import CryptoProvider
    from dtlsgate.crypto.signatures import PrivateKey

# RFC 6347 §4.1.1.1: without path MTU discovery, records should fit a conservative path.
# 1200 bytes fits IPv6's minimum MTU (1280) with the IP and UDP headers (48 bytes) and room
# for tunnels, the same default QUIC chose (RFC 9000 §14).
DEFAULT_MTU = 1200

StatelessCookieGenerate = Callable[[Hashable | None], bytes]
StatelessCookieVerify = Callable[[Hashable | None, bytes], bool]


def check_record_size_limit(limit: int) -> None:
    """RFC 8449 §4: at least 64; in TLS 1.3 at most 2^14 + 1 (content and type byte)."""
    if not 64 <= limit <= (1 << 14) + 1:
        raise UsageError("record_size_limit must be between 64 and 16385")


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


def _check_credentials(chain: list[x509.Certificate], key: PrivateKey | None) -> None:
    """Credentials are cryptography objects, and come as a pair."""
    if not chain and key is None:
        return
    from cryptography import x509

    from dtlsgate.crypto.signatures import PrivateKey

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
    # Preferences, most preferred first; None means the library's default order.
    cipher_suites: tuple[int, ...] | None = None
    groups: tuple[int, ...] | None = None
    signature_schemes: tuple[int, ...] | None = None
    alpn_protocols: tuple[bytes, ...] = ()
    # Client certificates: a VerifyClient (or "none", "optional", "required", or
    # ssl.CERT_*); their trust anchors: a PEM file's path or PEM bytes (see
    # ``load_verify_locations``).
    verify_client: VerifyClient | str | int = VerifyClient.NONE
    cafile: str | bytes | None = None
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
    keylog_file: str | None = None
    provider: CryptoProvider = field(default_factory=_default_provider)

    def __post_init__(self) -> None:
        if (self.cookie_generate is None) != (self.cookie_verify is None):
            raise UsageError("give both cookie_generate and cookie_verify, or neither")
        if (self.stateless_cookie_generate is None) != (self.stateless_cookie_verify is None):
            raise UsageError(
                "give both stateless_cookie_generate and stateless_cookie_verify, or neither"
            )
        if self.cookie_jar is None:
            self.cookie_jar = CookieJar(random=self.provider.random)
        self.verify_client = _verify_client(self.verify_client)
        # Without trust anchors a client certificate could not be verified: refuse the
        # config rather than accept any certificate unverified.
        if self.verify_client != "none" and not self.cafile:
            raise UsageError(
                f'verify_client="{self.verify_client.value}" needs a cafile of client CAs'
                " (cafile=, or load_verify_locations() before setting verify_client)"
            )
        _check_credentials(self.certificate_chain, self.private_key)
        if self.psk_identity_hint and not self.psk:
            raise UsageError("psk_identity_hint does not apply without psk")
        if not 256 <= self.mtu <= 65535:
            raise UsageError("mtu must be between 256 and 65535")
        if self.ticket_key is None:
            self.ticket_key = self.provider.random(32)
        if len(self.ticket_key) != 32:
            raise UsageError("ticket_key must be 32 bytes")
        check_record_size_limit(self.record_size_limit)
        if not 0 <= self.session_tickets <= 16:
            raise UsageError("session_tickets must be between 0 and 16")
        # RFC 8446 §4.6.1: a ticket lifetime is at most 7 days.
        if not 0 < self.ticket_lifetime <= 604800:
            raise UsageError("ticket_lifetime must be between 1 and 604800 seconds")

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

    def check_can_serve(self) -> None:
        """A server needs credentials: a certificate (and key) or a PSK. Called by the
        servers at start, since a config without them is fine for the gate alone."""
        self.verify_client = _verify_client(self.verify_client)
        _check_credentials(self.certificate_chain, self.private_key)
        if not self.certificate_chain and not self.psk:
            raise UsageError(
                "a server needs a certificate (load_cert_chain) or a PSK (psk=...); "
                "without either every handshake would fail"
            )
        if self.verify_client != "none" and not self.cafile:
            raise UsageError("verify_client needs client CAs (load_verify_locations)")


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
    cipher_suites: tuple[int, ...] | None = None
    groups: tuple[int, ...] | None = None
    signature_schemes: tuple[int, ...] | None = None
    alpn_protocols: tuple[bytes, ...] = ()
    require_extended_master_secret: bool = True
    mtu: int = DEFAULT_MTU
    keylog_file: str | None = None
    provider: CryptoProvider = field(default_factory=_default_provider)
    # TLS 1.3 middlebox compatibility mode (RFC 8446 Appendix D.4): a non-empty
    # legacy_session_id and a ChangeCipherSpec before our encrypted flight.
    middlebox_compat: bool = True
    # TLS 1.3 resumption (RFC 8446 §4.6.1): a ``tls13.client.SessionTicket`` from an earlier
    # connection's ``SessionTicketReceived`` event, offered as a PSK (psk_dhe_ke).
    session_ticket: Any = None
    # RFC 8449: the largest TLSInnerPlaintext we accept in a protected TLS 1.3 record; sent
    # in every ClientHello.
    record_size_limit: int = 16385

    def __post_init__(self) -> None:
        check_record_size_limit(self.record_size_limit)
        if (self.psk is None) != (self.psk_identity is None):
            raise UsageError("give both psk and psk_identity, or neither")
        if not 256 <= self.mtu <= 65535:
            raise UsageError("mtu must be between 256 and 65535")
        if self.insecure and self.cafile:
            raise UsageError("cafile does not apply with insecure=True (nothing is verified)")
        _check_credentials(self.certificate_chain, self.private_key)

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
