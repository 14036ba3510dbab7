"""The TLS 1.3 stream gate (`StatelessGate`) answering from `peek_client_hello13` (its TLS
form, ``dtls`` False) and from what it remembers, against the full decoders.

Wherever `ClientHello.decode` and `client_hello_info` accept a TLS ClientHello, the peek
reads the same fields and the same `client_hello_fixed_part`; where the peek refuses one,
so do they. A gate that has answered a client's ClientHello1 and admitted its ClientHello2
(its offer's choice and its ClientHello2's rest remembered) judges every valid or mutated
hello exactly as a fresh gate does, which decodes everything in full: the same reply,
admit, drop or alert, never an exception."""

from __future__ import annotations

from helpers import NOW, client_config, server_config
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_client_hello13_peek import check_against_full_decoders

from dtlsgate.connection.stream import ClientConnection
from dtlsgate.gate.results import Refuse, Reply, StreamAdmit
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.wire.client_hello13_peek import peek_client_hello13
from dtlsgate.wire.enums import AlertDescription, NamedGroup

PEER = ("192.0.2.9", 443)
# In a ClientHello record: the record header (5) and the handshake header (4).
BODY_AT = 9
KINDS: list[dict[str, object]] = [
    {},
    {"groups": (NamedGroup.secp384r1, NamedGroup.x25519)},
    {"alpn_protocols": (b"coap", b"h2"), "server_name": "example.com"},
    {"middlebox_compat": False},
    {"psk_identity": b"id", "psk": b"k" * 32},
]


def _client(kind: dict[str, object]) -> ClientConnection:
    client = ClientConnection(client_config(**kind))  # type: ignore[arg-type]
    client.start()
    return client


def _gate() -> StatelessGate:
    return StatelessGate(server_config(stateless=True, psk={b"id": b"k" * 32}))


def _hellos(kind: dict[str, object]) -> tuple[bytes, bytes]:
    """ClientHello1 and ClientHello2 (after the compatibility ChangeCipherSpec, if any) of
    our TLS 1.3 client of ``kind``, the second after a gate's HelloRetryRequest."""
    client = _client(kind)
    hello1 = client.data_to_send()
    reply = _gate().receive(hello1, PEER, NOW)
    assert isinstance(reply, Reply)
    client.receive_data(reply.data, NOW)
    return hello1, client.data_to_send()


HELLOS = [_hellos(kind) for kind in KINDS]
RECORDS = [record for pair in HELLOS for record in pair]


def _body(record: bytes) -> bytes:
    at = 6 if record[0] == 20 else 0  # after a compatibility ChangeCipherSpec
    return record[at + BODY_AT :]


def _refit(record: bytes, body: bytes) -> bytes:
    """``record`` (a ClientHello record, maybe after a ChangeCipherSpec) with ``body`` as
    its message's body, the handshake and record lengths made to fit."""
    at = 6 if record[0] == 20 else 0
    message = record[at + 5 : at + 6] + len(body).to_bytes(3, "big") + body
    return record[: at + 3] + len(message).to_bytes(2, "big") + message


def test_real_tls_hellos_read_as_the_full_decoders_read_them() -> None:
    for record in RECORDS:
        check_against_full_decoders(_body(record), dtls=False)
    first, second = HELLOS[0]
    assert not peek_client_hello13(_body(first), (), False).needs_full
    assert peek_client_hello13(_body(second), (), False).hello2 is not None
    assert peek_client_hello13(_body(HELLOS[-1][0]), (), False).needs_full  # a PSK offer


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RECORDS), st.integers(0, 2000), st.binary(max_size=4), st.integers(0, 8))
def test_mutated_tls_hellos_read_as_the_full_decoders_read_them(
    record: bytes, at: int, noise: bytes, cut: int
) -> None:
    data = bytearray(_body(record))
    at %= len(data)
    data[at : at + len(noise)] = noise
    check_against_full_decoders(bytes(data[: len(data) - cut]), dtls=False)


def _judged_alike(data: bytes) -> None:
    """A gate that remembers every kind's offer and ClientHello2 and a fresh one judge
    ``data`` alike (their results' reprs: the same bytes, fields or alert and reason)."""
    warm = _gate()
    for hello1, hello2 in HELLOS:
        assert isinstance(warm.receive(hello1, ("10.0.0.1", 1), NOW), Reply)
        assert isinstance(warm.receive(hello2, PEER, NOW), StreamAdmit)
    expected = repr(_gate().receive(data, PEER, NOW))
    assert repr(warm.receive(data, PEER, NOW)) == expected


# Where the head's fields are (legacy_version, random, session_id) or any other byte.
_POSITIONS = st.one_of(st.integers(0, 2), st.integers(2, 40), st.integers(0, 2000))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RECORDS), _POSITIONS, st.binary(min_size=1, max_size=3), st.integers(0, 2))
@example(RECORDS[0], 1, b"\x02", 1)  # ClientHello1's legacy_version 0x0302
@example(RECORDS[1], 1, b"\x02", 1)  # ClientHello2's
def test_a_gate_that_remembers_judges_as_a_fresh_one(
    record: bytes, at: int, noise: bytes, kind: int
) -> None:
    """Set, insert or cut bytes of a real ClientHello1 or ClientHello2's body, its lengths
    made to fit: the remembered choices and ClientHello2s change nothing."""
    body = bytearray(_body(record))
    at %= len(body)
    if kind == 0:
        body[at : at + len(noise)] = noise
    elif kind == 1:
        body[at:at] = noise
    else:
        del body[at : at + len(noise)]
    _judged_alike(_refit(record, bytes(body)))


def test_valid_hellos_of_every_kind_judged_alike_by_the_remembering_gate() -> None:
    for record in RECORDS:
        _judged_alike(record)
    # The remembered paths are taken: a ClientHello1 of a known offer, a ClientHello2 of
    # a known rest, each with another random.
    warm = _gate()
    first, second = HELLOS[0]
    warm.receive(first, ("10.0.0.1", 1), NOW)
    assert isinstance(warm.receive(second, PEER, NOW), StreamAdmit)
    assert len(warm.hellos2) == 1
    other = bytearray(first)
    other[BODY_AT + 2] ^= 1  # the random
    assert isinstance(warm.receive(bytes(other), PEER, NOW), Reply)


def test_legacy_version_below_tls12_refused_by_the_remembering_gate() -> None:
    """check_tls13_client_hello's one check on the head (RFC 8446 §4.1.2), which the
    remembered paths must not skip: protocol_version, for ClientHello1 and ClientHello2."""
    warm = _gate()
    first, second = HELLOS[0]
    warm.receive(first, ("10.0.0.1", 1), NOW)
    assert isinstance(warm.receive(second, PEER, NOW), StreamAdmit)
    for record in (first, second):
        body = bytearray(_body(record))
        body[1] = 0x02  # 0x0302: TLS 1.1
        result = warm.receive(_refit(record, bytes(body)), PEER, NOW)
        assert isinstance(result, Refuse) and result.alert == AlertDescription.protocol_version


def test_records_before_client_hello_refused_for_their_type() -> None:
    """`read_client_hello`'s answers per record type, each type read once: one
    ChangeCipherSpec skipped (RFC 8446 Appendix D.4), a second one, one with another body
    or after a ClientHello's first record, an alert or application data refused with
    unexpected_message and their reasons."""
    first, _ = HELLOS[0]
    ccs = bytes((20, 3, 3, 0, 1, 1))
    split = bytes((22, 3, 3, 0, 4)) + first[5:9]  # the handshake header alone
    cases = {
        ccs + ccs + first: "ChangeCipherSpec flood",
        bytes((20, 3, 3, 0, 1, 2)) + first: "not a handshake record",
        split + ccs: "not a handshake record",
        bytes((21, 3, 3, 0, 2, 2, 10)): "not a handshake record",
        bytes((23, 3, 3, 0, 1, 0)): "not a handshake record",
    }
    for data, reason in cases.items():
        result = _gate().receive(data, PEER, NOW)
        assert isinstance(result, Refuse), (data[:12], result)
        assert (result.alert, result.detail) == (AlertDescription.unexpected_message, reason)
    assert isinstance(_gate().receive(ccs + first, PEER, NOW), Reply)
