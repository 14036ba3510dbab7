"""The gate's fixed-offset ClientHello peek (wire/client_hello_peek.py) against the full
decoder (ClientHello.decode): the same fields, and the same accept/reject on generated,
mutated and truncated bodies (a repeated extension type included). Then the record-level
peek (one pass over a datagram's first record) against the record and handshake header
decoders and the body peek."""

from __future__ import annotations

import pytest
from builders import client_hello
from conftest import load_hex
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import mutated

from dtlsgate._memo import Memo
from dtlsgate.errors import DecodeError, ProtocolError
from dtlsgate.wire.buffer import Reader
from dtlsgate.wire.client_hello_peek import (
    MAX_CLIENT_HELLO_MESSAGE_SEQ,
    ClientHelloPeek,
    ClientHelloRecordPeek,
    client_hello_from_peek,
    peek_client_hello,
    peek_client_hello_record,
)
from dtlsgate.wire.enums import ContentType, HandshakeType
from dtlsgate.wire.extensions import Extension
from dtlsgate.wire.handshake import (
    DtlsHandshakeHeader,
    encode_dtls_handshake,
    encode_dtls_handshake_fragment,
)
from dtlsgate.wire.messages import MAX_KNOWN_OFFERS, ClientHello
from dtlsgate.wire.record import encode_dtls_record, split_dtls_records

REAL_BODIES = [
    load_hex("openssl_dtls12_client_hello.hex")[25:],
    load_hex("gnutls_dtls12_client_hello.hex")[25:],
]

hellos = st.builds(
    client_hello,
    cookie=st.binary(max_size=255),
    random=st.binary(min_size=32, max_size=32),
    session_id=st.binary(max_size=32),
    version=st.integers(0, 0xFFFF),
    suites=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=60).map(tuple),
    extensions=st.none()
    | st.lists(
        st.builds(Extension, st.integers(0, 0xFFFF), st.binary(max_size=60)),
        max_size=8,
        unique_by=lambda e: e.type,
    ).map(tuple),
)


def expected_peek(hello: ClientHello) -> ClientHelloPeek:
    """The peek's fields from the decoded message: the bound fields are client_version,
    random and session_id with its length byte (everything before the cookie)."""
    assert hello.cookie is not None
    bound = (
        hello.legacy_version.to_bytes(2, "big")
        + hello.random
        + bytes((len(hello.session_id),))
        + hello.session_id
    )
    return ClientHelloPeek(hello.legacy_version, bound, hello.cookie)


def peek_or_none(body: bytes, *, whole: bool) -> ClientHelloPeek | None:
    try:
        return peek_client_hello(body, whole=whole)
    except DecodeError:
        return None


def agree(body: bytes) -> None:
    """Whatever the full decoder accepts the peek accepts with the same fields; whatever it
    rejects the peek rejects too."""
    peeked = peek_or_none(body, whole=True)
    try:
        hello = ClientHello.decode(body, dtls=True)
    except ProtocolError:
        assert peeked is None
        return
    assert peeked == expected_peek(hello)


@given(hellos)
def test_the_peek_reads_what_the_decoder_decodes(hello: ClientHello) -> None:
    body = hello.encode()
    assert peek_client_hello(body, whole=True) == expected_peek(hello)
    agree(body)


@given(hellos, st.data())
def test_a_first_fragment_is_read_up_to_the_end_of_its_cookie(
    hello: ClientHello, data: st.DataObject
) -> None:
    """A first fragment is judged exactly when it holds the whole cookie; then it gives
    the whole message's fields."""
    body = hello.encode()
    assert hello.cookie is not None
    cookie_end = 2 + 32 + 1 + len(hello.session_id) + 1 + len(hello.cookie)
    cut = data.draw(st.integers(0, len(body)))
    peeked = peek_client_hello(body[:cut], whole=False)
    if cut < cookie_end:
        assert peeked is None
    else:
        assert peeked == expected_peek(hello)


def mutated_bodies() -> st.SearchStrategy[bytes]:
    return mutated(REAL_BODIES)


@settings(max_examples=1000)
@given(mutated_bodies())
def test_mutated_real_bodies_get_the_same_verdict(body: bytes) -> None:
    agree(body)


def length_fields(body: bytes) -> list[tuple[int, int]]:
    """Where each length field of a well-formed DTLS ClientHello body is: (offset, width)."""
    fields = [(34, 1)]
    at = 35 + body[34]
    fields.append((at, 1))  # cookie
    at += 1 + body[at]
    fields.append((at, 2))  # cipher_suites
    at += 2 + int.from_bytes(body[at : at + 2], "big")
    fields.append((at, 1))  # compression_methods
    at += 1 + body[at]
    if at < len(body):
        fields.append((at, 2))  # the extensions block
        at += 2
        while at < len(body):
            fields.append((at + 2, 2))  # each extension's length
            at += 4 + int.from_bytes(body[at + 2 : at + 4], "big")
    return fields


@settings(max_examples=500)
@given(hellos, st.data())
def test_a_length_field_off_by_a_little_gets_the_same_verdict(
    hello: ClientHello, data: st.DataObject
) -> None:
    """Each length field of a generated ClientHello changed by -2..+2 (an odd suites
    length, a block that no longer fills the message, ...)."""
    body = bytearray(hello.encode())
    at, width = data.draw(st.sampled_from(length_fields(bytes(body))))
    value = int.from_bytes(body[at : at + width], "big") + data.draw(st.integers(-2, 2))
    body[at : at + width] = (value % (1 << (8 * width))).to_bytes(width, "big")
    agree(bytes(body))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bodies_get_the_same_verdict(body: bytes) -> None:
    agree(body)


def test_a_repeated_extension_is_refused_as_the_full_decoder_refuses_it() -> None:
    body = client_hello(extensions=(Extension(23, b""), Extension(23, b""))).encode()
    with pytest.raises(DecodeError, match="twice"):
        peek_client_hello(body, whole=True)
    agree(body)
    # Only a whole ClientHello is walked past its cookie: a first fragment is not.
    assert peek_client_hello(body, whole=False) is not None


PREFIX = b"\xfe\xfd" + bytes(32) + b"\x00" + b"\x00"  # version, random, no session_id or cookie


@pytest.mark.parametrize(
    "rest",
    [
        b"\x00\x03\xc0\x2b\x00\x01\x00",  # an odd cipher_suites length
        b"\x00\x00\x01\x00",  # no cipher suite
        b"\x00\x02\xc0\x2b\x00",  # no compression method
        b"\x00\x02\xc0\x2b\x01\x00\x00",  # an extensions block of one byte
        b"\x00\x02\xc0\x2b\x01\x00\x00\x03\x00\x17\x00",  # a truncated extension header
        b"\x00\x02\xc0\x2b\x01\x00\x00\x04\x00\x17\x00\x01",  # an extension past the block
        b"\x00\x02\xc0\x2b\x01\x00\x00\x00",  # an empty extensions block
        b"\x00\x02\xc0\x2b\x01\x00",  # no extensions block
    ],
)
def test_hand_made_edges_get_the_same_verdict(rest: bytes) -> None:
    agree(PREFIX + rest)


# --- the same peek one level out: a datagram's first record ----------------------------

REAL_DATAGRAMS = [
    load_hex("openssl_dtls12_client_hello.hex"),
    load_hex("gnutls_dtls12_client_hello.hex"),
]


def full_record_peek(datagram: bytes) -> ClientHelloRecordPeek | None:
    """What the full decoders read of the datagram's first record, when it is one handshake
    fragment, the first of a ClientHello, filling the record, with a body that
    `peek_client_hello` accepts as a first fragment (itself pinned to `ClientHello.decode`
    above): the record peek reads a whole ClientHello only up to its cookie too."""
    record = next(split_dtls_records(datagram), None)
    if record is None or record.content_type != ContentType.HANDSHAKE:
        return None
    if record.version >> 8 != 0xFE or record.epoch:  # not DTLS, or not epoch 0
        return None
    r = Reader(record.fragment)
    try:
        header = DtlsHandshakeHeader.decode(r)
    except DecodeError:
        return None
    if (
        header.msg_type != HandshakeType.CLIENT_HELLO
        or header.message_seq > MAX_CLIENT_HELLO_MESSAGE_SEQ
        or header.fragment_offset
        or header.fragment_length != r.remaining()
    ):
        return None
    body = peek_or_none(r.rest(), whole=False)
    if body is None:
        return None
    if header.fragment_length == header.length:  # what it reads of a well-formed whole one
        whole = peek_or_none(r.rest(), whole=True)
        assert whole is None or whole == body
    peek = ClientHelloRecordPeek(
        record.sequence_number,
        header.message_seq,
        body.bound,
        body.cookie,
        header.fragment_length == header.length,
    )
    assert peek.client_version == body.client_version  # read from ``bound``
    return peek


def record_agrees(datagram: bytes) -> ClientHelloRecordPeek | None:
    peeked = peek_client_hello_record(datagram)
    assert peeked == full_record_peek(datagram)
    if peeked is not None and peeked.whole:
        # The whole ClientHello from the peek's fields and its offer decoded (the gate's
        # ClientHello2): what the full decoder decodes, or refused alike; again from the
        # offers known.
        body = datagram[25 : 13 + int.from_bytes(datagram[11:13], "big")]
        known: Memo[bytes, ClientHello] = Memo(MAX_KNOWN_OFFERS)
        try:
            expected = ClientHello.decode(body, dtls=True)
        except ProtocolError:
            with pytest.raises(ProtocolError):
                client_hello_from_peek(peeked, body, known)
        else:
            for _ in range(2):
                assert client_hello_from_peek(peeked, body, known) == expected
    return peeked


@st.composite
def client_hello_datagrams(draw: st.DrawFn) -> bytes:
    """A ClientHello (or its first part, or another message) in a record whose header
    fields and framing vary, maybe followed by more bytes."""
    body = draw(hellos).encode()
    cut = draw(st.integers(0, len(body)))
    offset = draw(st.sampled_from([0, 0, 0, 1, 40]))
    fragment = body[offset:cut] if draw(st.booleans()) else body[offset:]
    message = encode_dtls_handshake_fragment(
        draw(st.sampled_from([HandshakeType.CLIENT_HELLO] * 4 + [2, 3])),
        fragment,
        draw(st.sampled_from([0, 1, 2, 3, 0xFFFF])),
        offset,
        len(body),
    )
    record = encode_dtls_record(
        draw(st.sampled_from([ContentType.HANDSHAKE] * 4 + [21, 23])),
        draw(st.sampled_from([0xFEFD, 0xFEFF, 0x0303])),
        draw(st.sampled_from([0, 0, 1, 0xFFFF])),
        draw(st.integers(0, (1 << 48) - 1)),
        message + draw(st.binary(max_size=3)),  # bytes after the fragment in its record
    )
    datagram = bytearray(record + draw(st.binary(max_size=20)))  # then the next record
    if draw(st.booleans()):  # one length field of either header off by a little
        at, width = draw(st.sampled_from([(11, 2), (14, 3), (22, 3)]))
        value = int.from_bytes(datagram[at : at + width], "big") + draw(st.integers(-3, 3))
        datagram[at : at + width] = (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes(datagram)


@settings(max_examples=1000)
@given(client_hello_datagrams())
def test_the_record_peek_reads_what_the_full_decoders_read(datagram: bytes) -> None:
    record_agrees(datagram)


@st.composite
def mutated_datagrams(draw: st.DrawFn) -> bytes:
    datagram = bytearray(draw(st.sampled_from(REAL_DATAGRAMS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(datagram) - 1)))
        op = draw(st.sampled_from(["set", "set-header", "cut", "insert", "delete"]))
        if op == "set" and datagram:
            datagram[at] = draw(st.integers(0, 255))
        elif op == "set-header" and len(datagram) > 25:
            datagram[draw(st.integers(0, 24))] = draw(st.integers(0, 255))
        elif op == "cut":
            del datagram[at:]
        elif op == "insert":
            datagram[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del datagram[at : at + draw(st.integers(1, 8))]
    return bytes(datagram)


@settings(max_examples=1000)
@given(mutated_datagrams())
def test_the_record_peek_agrees_on_mutated_real_datagrams(datagram: bytes) -> None:
    record_agrees(datagram)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_the_record_peek_agrees_on_random_datagrams(datagram: bytes) -> None:
    record_agrees(datagram)


@pytest.mark.parametrize("datagram", REAL_DATAGRAMS)
def test_the_record_peek_reads_real_client_hellos(datagram: bytes) -> None:
    peeked = record_agrees(datagram)
    assert peeked is not None and peeked.cookie == b""
    assert record_agrees(datagram + b"\x17\xfe\xfd") == peeked  # a record after it: unread
    # epoch (2 bytes) || sequence_number (6), read as one 64-bit integer: epoch 0, the
    # sequence number; any other epoch (or a record version not DTLS's), not read.
    numbered = record_agrees(datagram[:3] + bytes.fromhex("0000fffffffffffe") + datagram[11:])
    assert numbered is not None and numbered.sequence_number == 2**48 - 2
    assert record_agrees(datagram[:3] + bytes.fromhex("0001000000000000") + datagram[11:]) is None
    assert record_agrees(datagram[:1] + b"\x03\x03" + datagram[3:]) is None
    # message_seq (bytes 17-18): up to MAX_CLIENT_HELLO_MESSAGE_SEQ read, above it not.
    assert record_agrees(datagram[:17] + b"\x00\x02" + datagram[19:]) is not None
    assert record_agrees(datagram[:17] + b"\x00\x03" + datagram[19:]) is None


def test_a_record_longer_than_the_limit_is_not_read() -> None:
    """A DTLSPlaintext length above 2^14 + 256 makes the record garbage (RFC 6347 §4.1;
    `split_dtls_records`), even when the datagram holds it all."""
    big = client_hello(extensions=(Extension(0xFFAA, bytes(17_000)),)).encode()
    datagram = encode_dtls_record(22, 0xFEFD, 0, 0, encode_dtls_handshake(1, big, 0))
    assert record_agrees(datagram) is None
    small = client_hello(extensions=(Extension(0xFFAA, bytes(16_000)),)).encode()
    assert record_agrees(encode_dtls_record(22, 0xFEFD, 0, 0, encode_dtls_handshake(1, small, 0)))
