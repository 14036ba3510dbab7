"""Hello messages and alerts as frozen dataclasses with pure decode/encode.

``decode`` takes a message *body* (the bytes after the handshake header) and rejects
trailing bytes; ``encode`` returns the body. Handshake framing is in ``handshake.py``.
ClientHello has a TLS form and a DTLS form; the DTLS form carries ``cookie``
(RFC 6347 §4.2.1), the TLS form has ``cookie=None``.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping

from dtlsgate._frozen import frozen
from dtlsgate._memo import Memo
from dtlsgate.errors import UsageError
from dtlsgate.wire.buffer import Reader, Writer, encode_vector
from dtlsgate.wire.enums import ProtocolVersion
from dtlsgate.wire.extensions import (
    Context,
    DecodedExtensions,
    Extension,
    decode_client_hello_extensions,
    decode_extensions,
    encode_extensions,
    extensions_block,
    find_extension,
)

RANDOM_LENGTH = 32
# legacy_version and random, the fixed start of both hellos (RFC 8446 §4.1.2, §4.1.3).
_VERSION_AND_RANDOM = struct.Struct(f">H{RANDOM_LENGTH}s")
_U16 = struct.Struct(">H")
# A ServerHello's cipher_suite and compression_method, after its session_id.
_SUITE_AND_COMPRESSION = struct.Struct(">HB")
MAX_SESSION_ID_LENGTH = 32
# RFC 6347 §4.2.1 (as updated by RFC 9147 §5.3): opaque cookie<0..2^8-1> in DTLS 1.2.
MAX_DTLS12_COOKIE_LENGTH = 255

# A server's clients send the same offer (the ClientHello from its cipher_suites to its end)
# in every handshake: only the random, the session_id and the cookie differ, and clients of
# one kind send one offer. Given the offers it decoded before (``known``, a `Memo` of at
# most MAX_KNOWN_OFFERS), `ClientHello.decode` decodes each distinct offer once. Only offers
# of at most MAX_KNOWN_OFFER_LENGTH bytes (a common one has 80 to 250) are kept, so that
# the memo stays small however the offers are made.
MAX_KNOWN_OFFERS = 32
MAX_KNOWN_OFFER_LENGTH = 1024

# RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello whose random is
# SHA-256("HelloRetryRequest").
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)


@frozen
class ClientHello:
    """RFC 8446 §4.1.2 / RFC 6347 §4.2.1. ``extensions`` is None when the message has no
    extensions block at all (legal before TLS 1.3)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extensions: tuple[Extension, ...] | None
    cookie: bytes | None = None
    # What the decoder read the extensions block into: the tuple above and each
    # extension's body by its type (`extension_bodies`); None for a ClientHello made
    # otherwise. Not compared.
    decoded_extensions: DecodedExtensions | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @property
    def is_dtls(self) -> bool:
        return self.cookie is not None

    @property
    def extension_bodies(self) -> Mapping[int, bytes]:
        """Each extension's body by its type, in the order received (the decoder rejects a
        type sent twice): the decoder's map when it was made for these very extensions
        (``dataclasses.replace`` may have put others in), else made from them now."""
        decoded = self.decoded_extensions
        if decoded is not None and decoded[0] is self.extensions:
            return decoded[1]
        return dict(self.extensions or ())

    def get(self, ext_type: int) -> bytes | None:
        return self.extension_bodies.get(ext_type)

    @classmethod
    def decode(
        cls, body: bytes, *, dtls: bool, known: Memo[bytes, ClientHello] | None = None
    ) -> ClientHello:
        """The ClientHello ``body``. ``known``: the offers decoded before (a server's table,
        filled here; see MAX_KNOWN_OFFERS): one of them is not decoded again, the new
        ClientHello shares its decoded fields."""
        r = Reader(body)
        legacy_version, random = r.unpack(_VERSION_AND_RANDOM)
        session_id = r.vector(1, 0, MAX_SESSION_ID_LENGTH)
        cookie = r.vector(1, 0, MAX_DTLS12_COOKIE_LENGTH) if dtls else None
        return cls.with_offer(legacy_version, random, session_id, cookie, body, r.position, known)

    @classmethod
    def with_offer(
        cls,
        legacy_version: int,
        random: bytes,
        session_id: bytes,
        cookie: bytes | None,
        body: bytes,
        start: int,
        known: Memo[bytes, ClientHello] | None = None,
    ) -> ClientHello:
        """The ClientHello with these fields before its offer (decoded already, by `decode`
        or a peek), and the offer decoded from ``body[start:]``, the rest of the message:
        once per distinct offer with ``known`` (as for `decode`)."""
        if known is not None:
            offer = body[start:]
            seen = known.get(offer)
            if seen is not None:  # the same bytes decoded before: the same fields
                return cls(
                    legacy_version,
                    random,
                    session_id,
                    seen.cipher_suites,
                    seen.compression_methods,
                    seen.extensions,
                    cookie,
                    seen.decoded_extensions,
                )
        r = Reader(body, start)
        suites = r.u16_list(2, 2, 0xFFFE)
        compression = r.vector(1, 1)
        decoded = None if r.at_end() else decode_client_hello_extensions(r)
        r.finish()
        extensions = None if decoded is None else decoded[0]
        hello = cls(
            legacy_version, random, session_id, suites, compression, extensions, cookie, decoded
        )
        if known is not None and len(offer) <= MAX_KNOWN_OFFER_LENGTH:
            known.remember(offer, hello)
        return hello

    def encode(self) -> bytes:
        w = Writer()
        w.u16(self.legacy_version)
        if len(self.random) != RANDOM_LENGTH:
            raise UsageError("random must be 32 bytes")
        w.write(self.random)
        w.vector(1, self.session_id, 0, MAX_SESSION_ID_LENGTH)
        if self.cookie is not None:
            w.vector(1, self.cookie, 0, MAX_DTLS12_COOKIE_LENGTH)
        w.u16_list(2, list(self.cipher_suites))
        w.vector(1, self.compression_methods, 1)
        if self.extensions is not None:
            encode_extensions(w, self.extensions)
        return w.getvalue()


@frozen
class HelloVerifyRequest:
    """RFC 6347 §4.2.1: server_version and cookie<0..2^8-1>."""

    server_version: int
    cookie: bytes

    @classmethod
    def decode(cls, body: bytes) -> HelloVerifyRequest:
        r = Reader(body)
        version = r.u16()
        cookie = r.vector(1, 0, MAX_DTLS12_COOKIE_LENGTH)
        r.finish()
        return cls(version, cookie)

    def encode(self) -> bytes:
        w = Writer()
        w.u16(self.server_version)
        w.vector(1, self.cookie, 0, MAX_DTLS12_COOKIE_LENGTH)
        return w.getvalue()


@frozen
class ServerHello:
    """RFC 8446 §4.1.3 (and RFC 5246 §7.4.1.3). A HelloRetryRequest is a ServerHello with
    the special random; ``decode`` checks extensions against the right context."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...] | None

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    def get(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)

    @classmethod
    def decode(cls, body: bytes, *, tls13: bool = True) -> ServerHello:
        r = Reader(body)
        legacy_version, random = r.unpack(_VERSION_AND_RANDOM)
        session_id = r.vector(1, 0, MAX_SESSION_ID_LENGTH)
        suite = r.u16()
        compression = r.u8()
        if r.at_end():
            extensions = None
        elif not tls13:
            extensions = decode_extensions(r, Context.SERVER_HELLO_TLS12)
        elif random == HELLO_RETRY_REQUEST_RANDOM:
            extensions = decode_extensions(r, Context.HELLO_RETRY_REQUEST)
        else:
            extensions = decode_extensions(r, Context.SERVER_HELLO)
        r.finish()
        return cls(legacy_version, random, session_id, suite, compression, extensions)

    def encode(self) -> bytes:
        return encode_server_hello(
            self.legacy_version,
            self.random,
            self.session_id,
            self.cipher_suite,
            self.compression_method,
            self.extensions,
        )


def encode_server_hello(
    legacy_version: int,
    random: bytes,
    session_id: bytes,
    cipher_suite: int,
    compression_method: int,
    extensions: tuple[Extension, ...] | None,
) -> bytes:
    """The body of the `ServerHello` with these fields (RFC 5246 §7.4.1.3, RFC 8446
    §4.1.3): what a server sends once per handshake, encoded without a message object."""
    start = encode_server_hello_start(legacy_version, random, session_id)
    return start + encode_server_hello_choice(cipher_suite, compression_method, extensions)


def encode_server_hello_start(legacy_version: int, random: bytes, session_id: bytes) -> bytes:
    """A ServerHello body's fields up to its session_id (`encode_server_hello`): what
    differs between two handshakes that choose alike."""
    try:
        version = _U16.pack(legacy_version)
    except struct.error:
        raise UsageError("legacy_version out of range") from None
    return version + random + encode_vector(1, session_id, 0, MAX_SESSION_ID_LENGTH)


def encode_server_hello_choice(
    cipher_suite: int, compression_method: int, extensions: tuple[Extension, ...] | None
) -> bytes:
    """A ServerHello body's fields after its session_id (`encode_server_hello`): what the
    server chose, the same bytes in every handshake that chooses alike."""
    try:
        suite_and_compression = _SUITE_AND_COMPRESSION.pack(cipher_suite, compression_method)
    except struct.error:
        raise UsageError("cipher_suite or compression_method out of range") from None
    if extensions is None:
        return suite_and_compression
    return suite_and_compression + extensions_block(extensions)


@frozen
class Alert:
    """RFC 8446 §6: level, description."""

    level: int
    description: int

    @classmethod
    def decode(cls, body: bytes) -> Alert:
        r = Reader(body)
        level = r.u8()
        description = r.u8()
        r.finish()
        return cls(level, description)

    def encode(self) -> bytes:
        return bytes((self.level, self.description))


DTLS_VERSIONS = frozenset({ProtocolVersion.DTLS10, ProtocolVersion.DTLS12, ProtocolVersion.DTLS13})
