"""Builders for test datagrams: DTLS ClientHellos with chosen fields."""

from __future__ import annotations

from dtlsgate.wire.enums import CipherSuite, ExtensionType, ProtocolVersion
from dtlsgate.wire.extensions import Extension, encode_u16_list_ext
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages import ClientHello
from dtlsgate.wire.record import encode_dtls_record


def client_hello(
    *,
    cookie: bytes = b"",
    random: bytes = bytes(range(32)),
    session_id: bytes = b"",
    version: int = ProtocolVersion.DTLS12,
    suites: tuple[int, ...] = (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,),
    extensions: tuple[Extension, ...] | None = (
        Extension(ExtensionType.supported_groups, encode_u16_list_ext((29, 23))),
        Extension(ExtensionType.extended_master_secret, b""),
    ),
    compression_methods: bytes = b"\x00",
) -> ClientHello:
    return ClientHello(version, random, session_id, suites, compression_methods, extensions, cookie)


def datagram(
    hello: ClientHello,
    *,
    message_seq: int = 0,
    record_seq: int = 0,
    epoch: int = 0,
    record_version: int = ProtocolVersion.DTLS10,
) -> bytes:
    message = encode_dtls_handshake(1, hello.encode(), message_seq)
    return encode_dtls_record(22, record_version, epoch, record_seq, message)


def with_cookie(first: bytes, cookie: bytes, *, message_seq: int = 1, record_seq: int = 1) -> bytes:
    """The second ClientHello a client sends after a HelloVerifyRequest: ``first`` with
    the cookie filled in, next message_seq and record sequence number."""
    from dtlsgate.wire.buffer import Reader
    from dtlsgate.wire.handshake import DtlsHandshakeHeader
    from dtlsgate.wire.record import DtlsRecordHeader

    r = Reader(first)
    header = DtlsRecordHeader.decode(r)
    hs = DtlsHandshakeHeader.decode(r)
    hello = ClientHello.decode(r.read(hs.fragment_length), dtls=True)
    import dataclasses

    hello2 = dataclasses.replace(hello, cookie=cookie)
    message = encode_dtls_handshake(1, hello2.encode(), message_seq)
    return encode_dtls_record(22, header.version, 0, record_seq, message)
