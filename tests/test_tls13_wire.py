"""TLS 1.3 message codecs and the stream record layer: round trips, RFC 8448 §3 bytes,
no proper prefix decodes, and the record-level limits."""

from __future__ import annotations

import pytest
import rfc8448 as v
from hypothesis import given
from hypothesis import strategies as st

from dtlsgate.crypto.aead import Aead, AeadAlgorithm
from dtlsgate.errors import (
    BadRecordMac,
    DecodeError,
    IllegalParameter,
    ProtocolError,
    RecordOverflow,
    UnexpectedMessage,
    UsageError,
)
from dtlsgate.record.tls13 import (
    MAX_PLAINTEXT,
    HandshakeReassembler,
    RecordProtection,
    StreamRecordLayer,
)
from dtlsgate.wire.enums import AlertDescription, ContentType, KeyUpdateRequest
from dtlsgate.wire.extensions import Extension, KeyShareEntry, encode_key_share_sh
from dtlsgate.wire.messages13 import (
    Ack,
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    KeyUpdate,
    NewSessionTicket,
    encode_ack,
    encode_certificate_verify,
    encode_new_session_ticket,
)

BODY = 4  # handshake header length


def test_rfc8448_messages_decode_and_reencode() -> None:
    ee = EncryptedExtensions.decode(v.ENCRYPTED_EXTENSIONS[BODY:])
    assert [e.type for e in ee.extensions] == [10, 28, 0]
    assert ee.encode() == v.ENCRYPTED_EXTENSIONS[BODY:]
    cert = Certificate.decode(v.CERTIFICATE[BODY:])
    assert cert.request_context == b"" and len(cert.entries) == 1
    assert len(cert.chain_der[0]) == 432
    assert cert.encode() == v.CERTIFICATE[BODY:]
    cv = CertificateVerify.decode(v.CERTIFICATE_VERIFY[BODY:])
    assert cv.algorithm == 0x0804 and len(cv.signature) == 128
    assert cv.encode() == v.CERTIFICATE_VERIFY[BODY:]
    fin = Finished.decode(v.SERVER_FINISHED[BODY:], 32)
    assert fin.encode() == v.SERVER_FINISHED[BODY:]
    nst = NewSessionTicket.decode(v.NEW_SESSION_TICKET[BODY:])
    assert nst.ticket_lifetime == 30 and nst.ticket_nonce == b"\x00\x00"
    assert nst.extensions == (Extension(42, b"\x00\x00\x04\x00"),)
    assert nst.encode() == v.NEW_SESSION_TICKET[BODY:]


ext = st.builds(Extension, st.sampled_from([0, 10, 16, 28]), st.binary(max_size=20))
exts = st.lists(ext, max_size=3, unique_by=lambda e: e.type).map(tuple)


@given(st.binary(max_size=255), st.lists(st.binary(min_size=1, max_size=40), max_size=3))
def test_certificate_round_trip(context: bytes, certs: list[bytes]) -> None:
    msg = Certificate(context, tuple(CertificateEntry(c) for c in certs))
    assert Certificate.decode(msg.encode()) == msg


@given(exts)
def test_encrypted_extensions_round_trip(extensions: tuple[Extension, ...]) -> None:
    msg = EncryptedExtensions(extensions)
    assert EncryptedExtensions.decode(msg.encode()) == msg


@given(st.binary(max_size=8))
def test_certificate_request_round_trip(context: bytes) -> None:
    msg = CertificateRequest(context, (Extension(13, b"\x00\x02\x04\x03"),))
    assert CertificateRequest.decode(msg.encode()) == msg


@given(st.integers(0, 0xFFFF), st.binary(max_size=300))
def test_certificate_verify_round_trip(alg: int, sig: bytes) -> None:
    msg = CertificateVerify(alg, sig)
    assert CertificateVerify.decode(msg.encode()) == msg


@given(
    st.integers(0, 604800),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=255),
    st.binary(min_size=1, max_size=100),
)
def test_new_session_ticket_round_trip(life: int, add: int, nonce: bytes, ticket: bytes) -> None:
    msg = NewSessionTicket(life, add, nonce, ticket)
    assert NewSessionTicket.decode(msg.encode()) == msg


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)), max_size=8))
def test_ack_round_trip(numbers: list[tuple[int, int]]) -> None:
    """RFC 9147 §7: RecordNumber record_numbers<0..2^16-1>, each a uint64 epoch and a uint64
    sequence_number."""
    body = encode_ack(numbers)
    assert body == Ack(tuple(numbers)).encode()
    assert body == (16 * len(numbers)).to_bytes(2, "big") + b"".join(
        e.to_bytes(8, "big") + n.to_bytes(8, "big") for e, n in numbers
    )
    assert Ack.decode(body) == Ack(tuple(numbers))


def test_ack_encoder_checks_ranges() -> None:
    for numbers in ([(2**64, 0)], [(0, -1)], [(0, 0)] * 4096):
        with pytest.raises(UsageError):
            encode_ack(numbers)


def test_messages_a_server_sends_per_handshake_encoded_without_an_object() -> None:
    """`encode_certificate_verify`, `encode_new_session_ticket` (the codecs' own: the classes'
    ``encode`` calls them, and the RFC 8448 test above pins those bytes) and
    `encode_key_share_sh` refuse what does not fit, as the Writer they replaced did."""
    cv = CertificateVerify.decode(v.CERTIFICATE_VERIFY[BODY:])
    assert encode_certificate_verify(cv.algorithm, cv.signature) == v.CERTIFICATE_VERIFY[BODY:]
    nst = NewSessionTicket.decode(v.NEW_SESSION_TICKET[BODY:])
    fields = (nst.ticket_lifetime, nst.ticket_age_add, nst.ticket_nonce, nst.ticket)
    assert encode_new_session_ticket(*fields, nst.extensions) == v.NEW_SESSION_TICKET[BODY:]
    for bad in (
        lambda: encode_certificate_verify(0x10000, b"s"),
        lambda: encode_certificate_verify(0x0403, bytes(0x10000)),
        lambda: encode_new_session_ticket(2**32, 0, b"", b"t"),
        lambda: encode_new_session_ticket(0, -1, b"", b"t"),
        lambda: encode_new_session_ticket(0, 0, bytes(256), b"t"),
        lambda: encode_new_session_ticket(0, 0, b"", b""),
        lambda: encode_key_share_sh(KeyShareEntry(0x10000, b"k")),
        lambda: encode_key_share_sh(KeyShareEntry(23, b"")),
    ):
        with pytest.raises(UsageError):
            bad()


def test_key_update_and_end_of_early_data() -> None:
    for req in KeyUpdateRequest:
        assert KeyUpdate.decode(KeyUpdate(req).encode()) == KeyUpdate(req)
    with pytest.raises(IllegalParameter):
        KeyUpdate.decode(b"\x02")
    assert EndOfEarlyData.decode(b"") == EndOfEarlyData()
    with pytest.raises(DecodeError):
        EndOfEarlyData.decode(b"\x00")


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (EncryptedExtensions, v.ENCRYPTED_EXTENSIONS[BODY:]),
        (Certificate, v.CERTIFICATE[BODY:]),
        (CertificateVerify, v.CERTIFICATE_VERIFY[BODY:]),
        (NewSessionTicket, v.NEW_SESSION_TICKET[BODY:]),
    ],
)
def test_no_proper_prefix_and_no_trailing_bytes(cls: type, data: bytes) -> None:
    for n in range(len(data)):
        with pytest.raises(ProtocolError):
            cls.decode(data[:n])
    with pytest.raises(DecodeError):
        cls.decode(data + b"\x00")


def test_finished_length_is_the_hash_length() -> None:
    with pytest.raises(DecodeError):
        Finished.decode(bytes(31), 32)


def test_ticket_lifetime_above_seven_days_is_illegal() -> None:
    body = NewSessionTicket(604801, 0, b"", b"t").encode()
    with pytest.raises(IllegalParameter):
        NewSessionTicket.decode(body)


def test_server_extension_in_wrong_message_is_refused() -> None:
    # key_share (51) may not appear in EncryptedExtensions (RFC 8446 §4.2).
    body = EncryptedExtensions((Extension(51, b""),)).encode()
    with pytest.raises(ProtocolError) as info:
        EncryptedExtensions.decode(body)
    assert info.value.alert == AlertDescription.unsupported_extension


# ---- record layer ---------------------------------------------------------------------------


def protection(key: bytes, iv: bytes, seq: int = 0) -> RecordProtection:
    p = RecordProtection(Aead(AeadAlgorithm.AES_128_GCM, key), iv)
    p.sequence = seq
    return p


def test_rfc8448_server_flight_record_byte_for_byte() -> None:
    flight = v.ENCRYPTED_EXTENSIONS + v.CERTIFICATE + v.CERTIFICATE_VERIFY + v.SERVER_FINISHED
    sealed = protection(v.SERVER_HS_KEY, v.SERVER_HS_IV).seal(ContentType.HANDSHAKE, flight)
    assert sealed == v.SERVER_FLIGHT_RECORD
    layer = StreamRecordLayer()
    layer.read = protection(v.SERVER_HS_KEY, v.SERVER_HS_IV)
    layer.feed(v.SERVER_FLIGHT_RECORD)
    record = layer.next_record()
    assert record is not None
    assert (record.content_type, record.fragment) == (ContentType.HANDSHAKE, flight)


def test_rfc8448_client_finished_and_application_data_records() -> None:
    client_hs = protection(v.CLIENT_HS_KEY, v.CLIENT_HS_IV)
    assert client_hs.seal(ContentType.HANDSHAKE, v.CLIENT_FINISHED) == v.CLIENT_FINISHED_RECORD
    client_app = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV)
    assert client_app.seal(ContentType.APPLICATION_DATA, v.APPLICATION_DATA) == (
        v.CLIENT_APP_RECORD
    )
    server_app = protection(v.SERVER_APP_KEY, v.SERVER_APP_IV, seq=1)
    assert server_app.seal(ContentType.APPLICATION_DATA, v.APPLICATION_DATA) == (
        v.SERVER_APP_RECORD
    )


def test_wrong_sequence_is_bad_record_mac() -> None:
    layer = StreamRecordLayer()
    layer.read = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV, seq=1)
    layer.feed(v.CLIENT_APP_RECORD)
    with pytest.raises(BadRecordMac):
        layer.next_record()


def test_records_byte_by_byte_and_coalesced() -> None:
    layer = StreamRecordLayer()
    layer.read = protection(v.SERVER_HS_KEY, v.SERVER_HS_IV)
    for b in v.SERVER_FLIGHT_RECORD[:-1]:
        layer.feed(bytes((b,)))
        assert layer.next_record() is None
    layer.feed(v.SERVER_FLIGHT_RECORD[-1:])
    record = layer.next_record()
    assert record is not None and record.content_type == ContentType.HANDSHAKE


def test_padding_is_removed_and_all_padding_is_refused() -> None:
    w = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV)
    layer = StreamRecordLayer()
    layer.read = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV)
    layer.feed(w.seal(ContentType.APPLICATION_DATA, b"hi\x00", padding=100))
    record = layer.next_record()
    assert record is not None and record.fragment == b"hi\x00"
    # A TLSInnerPlaintext of zeros only has no content type (RFC 8446 §5.4).
    header = bytes((23, 3, 3, 0, 16 + 5))
    raw = w._aead.seal(w._nonce(), bytes(5), header)
    layer.feed(header + raw)
    with pytest.raises(UnexpectedMessage):
        layer.next_record()


def test_record_overflow_on_ciphertext_and_plaintext_length() -> None:
    layer = StreamRecordLayer()
    layer.feed(bytes((23, 3, 3)) + (MAX_PLAINTEXT + 257).to_bytes(2, "big"))
    with pytest.raises(RecordOverflow) as info:
        layer.next_record()
    assert info.value.alert == AlertDescription.record_overflow
    layer = StreamRecordLayer()
    layer.feed(
        bytes((22, 3, 3)) + (MAX_PLAINTEXT + 1).to_bytes(2, "big") + bytes(MAX_PLAINTEXT + 1)
    )
    with pytest.raises(RecordOverflow):
        layer.next_record()


def test_record_size_limit_applies_both_ways() -> None:
    sender = StreamRecordLayer()
    sender.write = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV)
    sender.send_limit = 64
    out = sender.encode(ContentType.APPLICATION_DATA, bytes(200))
    receiver = StreamRecordLayer()
    receiver.read = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV)
    receiver.receive_limit = 64
    receiver.feed(out)
    sizes = []
    while (record := receiver.next_record()) is not None:
        sizes.append(len(record.fragment))
    assert sizes == [63, 63, 63, 11]
    big = StreamRecordLayer()
    big.write = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV)
    receiver.feed(big.encode(ContentType.APPLICATION_DATA, bytes(64)))
    receiver.read.sequence = 0
    with pytest.raises(RecordOverflow):
        receiver.next_record()


def test_change_cipher_spec_dropped_only_when_allowed() -> None:
    layer = StreamRecordLayer()
    layer.feed(layer.change_cipher_spec())
    assert layer.next_record() is None and layer.buffered == 0
    layer.feed(bytes((20, 3, 3, 0, 1, 2)))
    with pytest.raises(UnexpectedMessage):
        layer.next_record()
    layer = StreamRecordLayer()
    layer.ccs_allowed = False
    layer.feed(layer.change_cipher_spec())
    with pytest.raises(UnexpectedMessage):
        layer.next_record()


def test_plaintext_record_rules() -> None:
    layer = StreamRecordLayer()
    layer.feed(bytes((23, 3, 3, 0, 1, 0)))
    with pytest.raises(UnexpectedMessage):
        layer.next_record()
    layer = StreamRecordLayer()
    layer.feed(bytes((22, 3, 3, 0, 0)))
    with pytest.raises(UnexpectedMessage):
        layer.next_record()
    layer = StreamRecordLayer()
    layer.read = protection(v.CLIENT_APP_KEY, v.CLIENT_APP_IV)
    layer.feed(bytes((22, 3, 3, 0, 1, 1)))
    with pytest.raises(UnexpectedMessage):
        layer.next_record()


def test_handshake_reassembly_across_and_within_records() -> None:
    flight = v.ENCRYPTED_EXTENSIONS + v.CERTIFICATE + v.CERTIFICATE_VERIFY
    hs = HandshakeReassembler()
    got = []
    for i in range(0, len(flight), 7):
        hs.feed(flight[i : i + 7])
        while (m := hs.next_message()) is not None:
            got.append(m[2])
    assert got == [v.ENCRYPTED_EXTENSIONS, v.CERTIFICATE, v.CERTIFICATE_VERIFY]
    assert not hs.pending
