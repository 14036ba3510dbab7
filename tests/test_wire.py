"""Wire codecs: round trips, every proper prefix rejected, trailing bytes rejected, bounds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtlsgate._memo import Memo
from dtlsgate.errors import DecodeError, IllegalParameter, ProtocolError, UsageError
from dtlsgate.wire import extensions as ext
from dtlsgate.wire.buffer import Reader, Writer, whole_vector
from dtlsgate.wire.extensions import Context, Extension, KeyShareEntry
from dtlsgate.wire.handshake import (
    DtlsHandshakeHeader,
    decode_dtls_handshake_fragments,
    encode_dtls_handshake,
    encode_dtls_handshake_fragment,
    encode_handshake,
    fragment_span,
)
from dtlsgate.wire.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    Alert,
    ClientHello,
    HelloVerifyRequest,
    ServerHello,
)
from dtlsgate.wire.record import DtlsRecordHeader, TlsRecordHeader, split_dtls_records

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u48 = st.integers(0, (1 << 48) - 1)


def extensions_strategy(
    allowed: list[int] | None = None,
) -> st.SearchStrategy[tuple[Extension, ...]]:
    types = st.sampled_from(allowed) if allowed else u16
    return st.lists(
        st.builds(Extension, types, st.binary(max_size=40)), max_size=6, unique_by=lambda e: e.type
    ).map(tuple)


client_hellos = st.builds(
    ClientHello,
    legacy_version=u16,
    random=st.binary(min_size=32, max_size=32),
    session_id=st.binary(max_size=32),
    cipher_suites=st.lists(u16, min_size=1, max_size=20).map(tuple),
    compression_methods=st.binary(min_size=1, max_size=4),
    extensions=st.none() | extensions_strategy(),
    cookie=st.none() | st.binary(max_size=255),
)
server_hellos = st.builds(
    ServerHello,
    legacy_version=u16,
    random=st.binary(min_size=32, max_size=32),
    session_id=st.binary(max_size=32),
    cipher_suite=u16,
    compression_method=u8,
    extensions=st.none()
    | extensions_strategy([0xFF01, 23, 11, 16, 0, 22]),  # TLS 1.2 ServerHello extensions
)


def decoder_for(message: object) -> Callable[[bytes], Any]:
    if isinstance(message, ClientHello):
        return lambda b: ClientHello.decode(b, dtls=message.is_dtls)
    if isinstance(message, ServerHello):
        return lambda b: ServerHello.decode(b, tls13=False)
    return type(message).decode  # type: ignore[no-any-return]


def check_codec(message: Any, *, prefix_may_decode: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    encoded = message.encode()
    decode = decoder_for(message)
    assert decode(encoded) == message
    with pytest.raises(DecodeError):
        decode(encoded + b"\x00")
    for n in range(len(encoded)):
        if n in prefix_may_decode:
            continue
        with pytest.raises(ProtocolError):
            decode(encoded[:n])


def check_hello(hello: ClientHello | ServerHello) -> None:
    """A hello without extensions is legal before TLS 1.3, so the one prefix that stops
    where the extensions block begins decodes (as that hello); every other must fail."""
    if hello.extensions is None:
        check_codec(hello)
        return
    w = Writer()
    ext.encode_extensions(w, hello.extensions)
    check_codec(hello, prefix_may_decode={len(hello.encode()) - len(w)})


@given(client_hellos)
def test_client_hello_round_trip_and_prefixes(hello: ClientHello) -> None:
    check_hello(hello)


@given(server_hellos)
def test_server_hello_round_trip_and_prefixes(hello: ServerHello) -> None:
    check_hello(hello)


@given(st.builds(HelloVerifyRequest, u16, st.binary(max_size=255)))
def test_hello_verify_request_round_trip(hvr: HelloVerifyRequest) -> None:
    check_codec(hvr)


@given(st.builds(Alert, u8, u8))
def test_alert_round_trip(alert: Alert) -> None:
    check_codec(alert)


@given(st.builds(DtlsRecordHeader, u8, u16, u16, u48, st.integers(0, (1 << 14) + 256)))
def test_dtls_record_header_round_trip(header: DtlsRecordHeader) -> None:
    encoded = header.encode()
    assert DtlsRecordHeader.decode(Reader(encoded)) == header
    for n in range(len(encoded)):
        with pytest.raises(DecodeError):
            DtlsRecordHeader.decode(Reader(encoded[:n]))


def test_record_length_over_limit_is_rejected() -> None:
    with pytest.raises(DecodeError):
        DtlsRecordHeader.decode(
            Reader(DtlsRecordHeader(22, 0xFEFD, 0, 0, (1 << 14) + 257).encode())
        )
    with pytest.raises(DecodeError):
        TlsRecordHeader.decode(Reader(TlsRecordHeader(23, 0x0303, (1 << 14) + 257).encode()))


@given(st.builds(TlsRecordHeader, u8, u16, st.integers(0, (1 << 14) + 256)))
def test_tls_record_header_round_trip(header: TlsRecordHeader) -> None:
    assert TlsRecordHeader.decode(Reader(header.encode())) == header


@given(u8, st.binary(max_size=300), u16, st.data())
def test_dtls_handshake_header_round_trip(
    msg_type: int, body: bytes, seq: int, data: st.DataObject
) -> None:
    offset = data.draw(st.integers(0, 1000))
    header = DtlsHandshakeHeader(
        msg_type, offset + len(body) + data.draw(st.integers(0, 10)), seq, offset, len(body)
    )
    encoded = header.encode() + body
    [(decoded, fragment)] = decode_dtls_handshake_fragments(encoded)
    assert (decoded, fragment) == (header, encoded)


@given(u8, st.binary(max_size=300), u16, st.data())
def test_dtls_handshake_encoders_write_the_header(
    msg_type: int, body: bytes, seq: int, data: st.DataObject
) -> None:
    whole = DtlsHandshakeHeader(msg_type, len(body), seq, 0, len(body))
    assert encode_dtls_handshake(msg_type, body, seq) == whole.encode() + body
    offset = data.draw(st.integers(0, 1 << 20))
    length = offset + len(body) + data.draw(st.integers(0, 10))
    part = DtlsHandshakeHeader(msg_type, length, seq, offset, len(body))
    assert encode_dtls_handshake_fragment(msg_type, body, seq, offset, length) == (
        part.encode() + body
    )
    # fragment_span reads back where each lies in its message (what an ACK names).
    assert fragment_span(encode_dtls_handshake(msg_type, body, seq)) == (seq, 0, len(body))
    fragment = encode_dtls_handshake_fragment(msg_type, body, seq, offset, length)
    assert fragment_span(fragment) == (seq, offset, offset + len(body))


@given(u8, st.binary(max_size=300))
def test_tls_handshake_encoder_writes_the_header(msg_type: int, body: bytes) -> None:
    """RFC 8446 §4: msg_type, uint24 length, then the body; the DTLS form's type and length."""
    assert (
        encode_handshake(msg_type, body) == bytes([msg_type]) + len(body).to_bytes(3, "big") + body
    )
    dtls = encode_dtls_handshake(msg_type, body, 0)
    assert encode_handshake(msg_type, body) == dtls[:4] + body


def test_client_hello_encoder_refuses_a_short_random_as_misuse() -> None:
    # A programming error of ours (UsageError), not a peer's malformed message (DecodeError).
    for random in (bytes(31), bytes(33)):
        with pytest.raises(UsageError):
            ClientHello(0xFEFD, random, b"", (0xC02B,), b"\x00", ()).encode()


def test_tls_handshake_encoder_checks_ranges() -> None:
    for msg_type in (256, -1):
        with pytest.raises(UsageError):
            encode_handshake(msg_type, b"")
    with pytest.raises(UsageError):
        encode_handshake(1, bytes(1 << 24))


def test_dtls_handshake_encoders_check_ranges() -> None:
    for msg_type, seq in ((256, 0), (-1, 0), (1, 1 << 16), (1, -1)):
        with pytest.raises(UsageError):
            encode_dtls_handshake(msg_type, b"", seq)
        with pytest.raises(UsageError):
            encode_dtls_handshake_fragment(msg_type, b"", seq, 0, 0)
    with pytest.raises(UsageError):
        encode_dtls_handshake_fragment(1, b"x", 0, 1 << 24, (1 << 24) + 1)
    with pytest.raises(UsageError):
        encode_dtls_handshake_fragment(1, b"x", 0, 0, 1 << 24)


def test_fragment_past_message_length_is_rejected() -> None:
    bad = DtlsHandshakeHeader(1, 10, 0, 8, 5).encode() + bytes(5)
    with pytest.raises(DecodeError):
        decode_dtls_handshake_fragments(bad)


def test_split_records_stops_at_garbage() -> None:
    one = DtlsRecordHeader(22, 0xFEFD, 0, 1, 3).encode() + b"abc"
    two = DtlsRecordHeader(23, 0xFEFD, 1, 2, 1).encode() + b"z"
    records = list(split_dtls_records(one + two + b"\x16\xfe"))
    assert [r.fragment for r in records] == [b"abc", b"z"]
    assert list(split_dtls_records(one[:-1])) == []


def test_duplicate_extensions_are_illegal_parameter() -> None:
    w = Writer()
    ext.encode_extensions(w, (Extension(10, b""), Extension(10, b"")))
    with pytest.raises(IllegalParameter):
        ext.decode_extensions(Reader(w.getvalue()), Context.CLIENT_HELLO)


def test_client_hello_extension_bodies_follow_its_extensions() -> None:
    """The decoder's map of a ClientHello's extensions is what ``get`` and
    ``extension_bodies`` read, in wire order; a copy with other extensions
    (``dataclasses.replace``) reads its own, not the decoder's."""
    sent = (Extension(0xFAFA, b""), Extension(10, b"\x00\x02\x00\x17"), Extension(23, b""))
    hello = ClientHello.decode(
        ClientHello(0xFEFD, bytes(32), b"", (0xC02B,), b"\x00", sent, b"c").encode(), dtls=True
    )
    assert hello.extensions == sent
    assert list(hello.extension_bodies.items()) == list(sent)
    assert hello.get(10) == b"\x00\x02\x00\x17" and hello.get(13) is None
    same = dataclasses.replace(hello, cookie=b"")
    assert same.extension_bodies is hello.extension_bodies
    other = dataclasses.replace(hello, extensions=(Extension(13, b"\x00\x02\x04\x03"),))
    assert other.get(10) is None and other.get(13) == b"\x00\x02\x04\x03"
    assert other.extension_bodies == {13: b"\x00\x02\x04\x03"}
    assert dataclasses.replace(hello, extensions=None).extension_bodies == {}
    assert hello == ClientHello(0xFEFD, bytes(32), b"", (0xC02B,), b"\x00", sent, b"c")


def test_client_hello_offers_known_are_decoded_once_and_bounded() -> None:
    """Given the offers decoded before (a server's table), `ClientHello.decode` decodes a
    known offer (the bytes from cipher_suites on) once: the new ClientHello equals a fresh
    decode and shares the known one's decoded fields; a malformed body is refused as
    before and not kept; at most MAX_KNOWN_OFFERS offers are kept (a full table starts
    over), none longer than MAX_KNOWN_OFFER_LENGTH bytes."""
    from dtlsgate.wire.messages import MAX_KNOWN_OFFER_LENGTH, MAX_KNOWN_OFFERS

    sent = (Extension(10, b"\x00\x02\x00\x17"), Extension(23, b""))
    first = ClientHello(0xFEFD, bytes(32), b"", (0xC02B, 0xC02C), b"\x00", sent, b"")
    second = dataclasses.replace(first, random=bytes(range(32)), session_id=b"s", cookie=b"c")
    known: Memo[bytes, ClientHello] = Memo(MAX_KNOWN_OFFERS)
    decoded = [ClientHello.decode(h.encode(), dtls=True, known=known) for h in (first, second)]
    assert decoded == [first, second] and len(known) == 1
    assert decoded[1].extensions is decoded[0].extensions
    assert decoded[1].extension_bodies is decoded[0].extension_bodies
    assert decoded[1].cipher_suites is decoded[0].cipher_suites
    assert decoded[1] == ClientHello.decode(second.encode(), dtls=True)
    body = first.encode()
    with pytest.raises(DecodeError):
        ClientHello.decode(body + b"\x00", dtls=True, known=known)  # trailing byte: another offer
    offer = body[36:]  # after legacy_version, random and the empty session_id and cookie
    assert list(known) == [offer]

    offers = [dataclasses.replace(first, cipher_suites=(0xC000 + n,)) for n in range(40)]
    for n, hello in enumerate(offers):
        assert ClientHello.decode(hello.encode(), dtls=True, known=known) == hello
        assert len(known) == (n + 1) % MAX_KNOWN_OFFERS + 1  # full: started over
    assert offer not in known
    long = dataclasses.replace(first, extensions=(Extension(21, bytes(MAX_KNOWN_OFFER_LENGTH)),))
    known.clear()
    assert ClientHello.decode(long.encode(), dtls=True, known=known) == long and not known


def test_server_extension_outside_its_context_is_unsupported_extension() -> None:
    w = Writer()
    ext.encode_extensions(w, (Extension(ext.ExtensionType.cookie, b"\x00\x01x"),))
    with pytest.raises(ProtocolError) as info:
        ext.decode_extensions(Reader(w.getvalue()), Context.SERVER_HELLO)
    assert info.value.alert == 110  # unsupported_extension
    # Unknown extensions are kept in a ClientHello (the server ignores them).
    w = Writer()
    ext.encode_extensions(w, (Extension(0xFAFA, b"grease"),))
    assert ext.decode_extensions(Reader(w.getvalue()), Context.CLIENT_HELLO) == (
        Extension(0xFAFA, b"grease"),
    )


def test_hello_retry_request_is_recognised_and_checked_as_such() -> None:
    hrr = ServerHello(
        0x0303,
        HELLO_RETRY_REQUEST_RANDOM,
        b"",
        0x1301,
        0,
        (Extension(44, ext.encode_cookie(b"c")),),
    )
    decoded = ServerHello.decode(hrr.encode())
    assert decoded.is_hello_retry_request and decoded.get(44) == ext.encode_cookie(b"c")
    sh = ServerHello(0x0303, bytes(32), b"", 0x1301, 0, (Extension(44, ext.encode_cookie(b"c")),))
    with pytest.raises(ProtocolError):
        ServerHello.decode(sh.encode())  # a cookie in a ServerHello is not allowed


TYPED: list[tuple[Callable[[Any], bytes], Callable[[bytes], Any], st.SearchStrategy[Any]]] = [
    (
        ext.encode_server_name,
        ext.decode_server_name,
        st.from_regex(r"[a-z0-9.-]{1,60}", fullmatch=True),
    ),
    (
        ext.encode_u16_list_ext,
        ext.decode_u16_list_ext,
        st.lists(u16, min_size=1, max_size=30).map(tuple),
    ),
    (
        ext.encode_ec_point_formats,
        ext.decode_ec_point_formats,
        st.lists(u8, min_size=1, max_size=5).map(tuple),
    ),
    (
        ext.encode_alpn,
        ext.decode_alpn,
        st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=5).map(tuple),
    ),
    (
        ext.encode_supported_versions_ch,
        ext.decode_supported_versions_ch,
        st.lists(u16, min_size=1, max_size=10).map(tuple),
    ),
    (ext.encode_supported_versions_sh, ext.decode_supported_versions_sh, u16),
    (ext.encode_cookie, ext.decode_cookie, st.binary(min_size=1, max_size=300)),
    (
        ext.encode_key_share_ch,
        ext.decode_key_share_ch,
        st.lists(
            st.builds(KeyShareEntry, u16, st.binary(min_size=1, max_size=97)),
            max_size=4,
            unique_by=lambda e: e.group,
        ).map(tuple),
    ),
    (
        ext.encode_key_share_sh,
        ext.decode_key_share_sh,
        st.builds(KeyShareEntry, u16, st.binary(min_size=1, max_size=97)),
    ),
    (ext.encode_key_share_hrr, ext.decode_key_share_hrr, u16),
    (
        ext.encode_psk_key_exchange_modes,
        ext.decode_psk_key_exchange_modes,
        st.lists(u8, min_size=1, max_size=3).map(tuple),
    ),
    (
        ext.encode_pre_shared_key_ch,
        ext.decode_pre_shared_key_ch,
        st.integers(1, 3).flatmap(
            lambda n: st.builds(
                ext.OfferedPsks,
                st.lists(
                    st.builds(
                        ext.PskIdentity,
                        st.binary(min_size=1, max_size=40),
                        st.integers(0, 2**32 - 1),
                    ),
                    min_size=n,
                    max_size=n,
                ).map(tuple),
                st.lists(st.binary(min_size=32, max_size=48), min_size=n, max_size=n).map(tuple),
            )
        ),
    ),
    (ext.encode_renegotiation_info, ext.decode_renegotiation_info, st.binary(max_size=24)),
]


@pytest.mark.parametrize(
    ("encode", "decode", "strategy"), TYPED, ids=[t[1].__name__ for t in TYPED]
)
def test_typed_extension_round_trip_and_prefixes(
    encode: Callable[[Any], bytes], decode: Callable[[bytes], Any], strategy: st.SearchStrategy[Any]
) -> None:
    @given(strategy)
    def run(value: Any) -> None:
        encoded = encode(value)
        assert decode(encoded) == value
        with pytest.raises(ProtocolError):
            decode(encoded + b"\x00")
        # An empty server_name is the server's acknowledgement (RFC 6066 §3), so the
        # empty prefix decodes there; every other proper prefix must fail.
        first = 1 if decode is ext.decode_server_name else 0
        for n in range(first, len(encoded)):
            with pytest.raises(ProtocolError):
                decode(encoded[:n])

    run()


def test_reader_bounds() -> None:
    r = Reader(b"\x00\x03abcdef")
    sub = r.prefixed(2)
    assert sub.read(3) == b"abc" and sub.at_end()
    with pytest.raises(DecodeError):
        sub.u8()
    assert r.rest() == b"def"
    with pytest.raises(DecodeError):
        Reader(b"\x00\x05ab").vector(2)
    with pytest.raises(DecodeError):
        Reader(b"\x01a").vector(1, minimum=2)
    with pytest.raises(DecodeError):
        Reader(b"\x03abc").vector(1, maximum=2)
    with pytest.raises(DecodeError):
        Reader(b"\x00\x03abc").u16_list(2)
    with pytest.raises(UsageError):
        Reader(b"ab", 1, 5)


def test_writer_owns_lengths_and_checks_ranges() -> None:
    w = Writer()
    with w.prefixed(2):
        w.u8(1)
        with w.prefixed(1):
            w.write(b"xy")
    assert w.getvalue() == b"\x00\x04\x01\x02xy"
    with pytest.raises(UsageError):
        Writer().u8(256)
    with pytest.raises(UsageError):
        Writer().u16(-1)
    with pytest.raises(UsageError):
        Writer().vector(1, b"x" * 256)
    w = Writer()
    with pytest.raises(UsageError), w.prefixed(1, maximum=2):
        w.write(b"abc")


# --- whole_vector: an extension body that is exactly one vector ------------------------------


def test_whole_vector_takes_exactly_the_announced_bytes() -> None:
    assert whole_vector(b"\x00\x04\x00\x1d\x00\x17", 2) == b"\x00\x1d\x00\x17"
    assert whole_vector(b"\x01\x00", 1, 1) == b"\x00"
    assert whole_vector(b"\x00", 1) == b""
    for bad, prefix, minimum, maximum in [
        (b"", 1, 0, None),  # no length at all
        (b"\x00", 2, 0, None),  # half a length
        (b"\x00\x03\x00\x1d", 2, 0, None),  # length past the end
        (b"\x00\x01\x00\x1d", 2, 0, None),  # trailing byte after the vector
        (b"\x00", 1, 1, None),  # below the minimum
        (b"\x02ab", 1, 0, 1),  # above the maximum
    ]:
        with pytest.raises(DecodeError):
            whole_vector(bad, prefix, minimum, maximum)


def _names(*entries: tuple[int, bytes]) -> bytes:
    """A server_name extension body: ServerNameList of (name_type, name) entries."""
    body = b"".join(bytes((t,)) + len(n).to_bytes(2, "big") + n for t, n in entries)
    return len(body).to_bytes(2, "big") + body


def test_server_name_reads_the_one_host_name_among_other_types() -> None:
    """RFC 6066 §3: a name_type other than host_name (0) is skipped; a second host_name is
    illegal_parameter ("MUST NOT contain more than one name of the same name_type"); an
    empty body is the server's acknowledgement."""
    assert ext.decode_server_name(b"") is None
    assert ext.decode_server_name(_names((1, b"other"), (0, b"example.com"))) == "example.com"
    with pytest.raises(IllegalParameter, match="two host_name"):
        ext.decode_server_name(_names((0, b"a.example"), (0, b"b.example")))


@pytest.mark.parametrize(
    ("decode", "data", "error", "match"),
    [
        # RFC 8446 §4.2.3, §4.2.7: uint16 lists; an odd length cannot hold them.
        (ext.decode_u16_list_ext, b"\x00\x03\x00\x1d\x00", DecodeError, "odd length"),
        # RFC 8446 §4.2.1: ProtocolVersion versions<2..254>, an odd length.
        (ext.decode_supported_versions_ch, b"\x03\xfe\xfc\xfe", DecodeError, "odd length"),
        # RFC 7250 §3: one CertificateType in EncryptedExtensions or a ServerHello.
        (ext.decode_certificate_type, b"\x00\x02", DecodeError, "one type"),
        (ext.decode_certificate_type, b"", DecodeError, "one type"),
        # RFC 8449 §4: a RecordSizeLimit below 64 is illegal_parameter.
        (ext.decode_record_size_limit, b"\x00\x3f", IllegalParameter, "below 64"),
        # RFC 8446 §4.2.11: one binder per identity; two identities and one binder.
        (
            ext.decode_pre_shared_key_ch,
            b"\x00\x0e" + (b"\x00\x01a" + bytes(4)) * 2 + b"\x00\x21\x20" + bytes(32),
            IllegalParameter,
            "differ in number",
        ),
    ],
)
def test_extension_bodies_refused_with_their_alert(
    decode: Callable[[bytes], Any], data: bytes, error: type[ProtocolError], match: str
) -> None:
    with pytest.raises(error, match=match):
        decode(data)


def test_extensions_that_must_be_empty() -> None:
    """RFC 7627 §5.1 and RFC 8446 §4.2.6, §4.2.10: extended_master_secret,
    post_handshake_auth and early_data (in a ClientHello) have empty bodies."""
    ext.require_empty(b"", "early_data")
    with pytest.raises(DecodeError, match="early_data extension must be empty"):
        ext.require_empty(b"\x00", "early_data")
