"""DTLS 1.3 connection ID updates after the handshake (RFC 9147 §9), in memory: the
NewConnectionId and RequestConnectionId codecs, both directions, cid_immediate and
cid_spare, requests answered with at most what was asked, a lost NewConnectionId sent again
until acknowledged, which of our CIDs are accepted when, and what a hostile peer gets."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import (
    CLIENT,
    NOW,
    SERVER,
    DatagramPair,
    client_config,
    data_events,
    make_pair13,
    pair,
    seal,
    server_config,
)
from hypothesis import given
from hypothesis import strategies as st

from dtlsgate.connection.datagram13 import (
    MAX_CID_REQUESTS_WITHOUT_DATA,
    MAX_PEER_SPARE_CIDS,
    Dtls13Connection,
)
from dtlsgate.errors import (
    AlertReceived,
    DecodeError,
    IllegalParameter,
    ProtocolError,
    StateError,
    TooManyCidsRequested,
    UnexpectedMessage,
    UsageError,
)
from dtlsgate.record.dtls13 import MAX_READ_CONNECTION_IDS, RecordDrop, connection_id_of
from dtlsgate.wire.enums import AlertDescription, ConnectionIdUsage, ContentType, HandshakeType
from dtlsgate.wire.handshake import encode_dtls_handshake, encode_handshake
from dtlsgate.wire.messages13 import NewConnectionId, RequestConnectionId

IMMEDIATE, SPARE = ConnectionIdUsage.cid_immediate, ConnectionIdUsage.cid_spare
NCID, RCID = HandshakeType.NEW_CONNECTION_ID, HandshakeType.REQUEST_CONNECTION_ID


# ---- the codecs ------------------------------------------------------------------------------


@given(
    st.lists(st.binary(max_size=255), max_size=12).map(tuple),
    st.sampled_from(ConnectionIdUsage),
)
def test_new_connection_id_round_trip(cids: tuple[bytes, ...], usage: ConnectionIdUsage) -> None:
    message = NewConnectionId(cids, usage)
    body = message.encode()
    assert NewConnectionId.decode(body) == message
    for cut in range(len(body)):  # no proper prefix decodes
        with pytest.raises(DecodeError):
            NewConnectionId.decode(body[:cut])
    with pytest.raises(DecodeError):
        NewConnectionId.decode(body + b"\x00")


@given(st.integers(0, 255))
def test_request_connection_id_round_trip(num_cids: int) -> None:
    body = RequestConnectionId(num_cids).encode()
    assert body == bytes((num_cids,))
    assert RequestConnectionId.decode(body) == RequestConnectionId(num_cids)


@pytest.mark.parametrize(
    "body, error",
    [
        (b"", DecodeError),
        (b"\x00\x00", DecodeError),  # no usage
        (b"\x00\x03\x04abc\x01", DecodeError),  # a CID running past the list
        (b"\x00\x05\x02ab\x01\x01", DecodeError),  # the list runs over the usage
        (b"\x00\x04\x01a\x01b", DecodeError),  # list ends, no usage after it
        (b"\x00\x02\x01a\x01\x00", DecodeError),  # trailing byte
        (b"\xff\xff\x01a\x01", DecodeError),  # a list longer than the message
        (b"\x00\x02\x01a\x02", IllegalParameter),  # usage 2 is not defined
        (b"\x00\x00\xff", IllegalParameter),
    ],
)
def test_hostile_new_connection_id_bodies(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        NewConnectionId.decode(body)


@pytest.mark.parametrize("body", [b"", b"\x01\x00"])
def test_hostile_request_connection_id_bodies(body: bytes) -> None:
    with pytest.raises(DecodeError):
        RequestConnectionId.decode(body)


def test_encoders_keep_to_the_bounds() -> None:
    with pytest.raises(UsageError):
        NewConnectionId((bytes(256),), SPARE).encode()  # ConnectionId<0..2^8-1>
    with pytest.raises(UsageError):
        NewConnectionId((bytes(255),) * 257, SPARE).encode()  # cids<0..2^16-1>
    with pytest.raises(UsageError):
        RequestConnectionId(256).encode()  # uint8


# ---- helpers -----------------------------------------------------------------------------------


def connected(client_cid: int = 2, server_cid: int = 4) -> DatagramPair:
    pair = make_pair13(
        server_config(connection_id_length=server_cid),
        client_config(connection_id_length=client_cid),
    )
    assert pair.run() and pair.completed()
    assert pair.server is not None
    return pair


def ends(pair: DatagramPair, sender: str) -> tuple[Dtls13Connection, Dtls13Connection]:
    """(sender, receiver) for ``sender`` "client" or "server"."""
    assert pair.server is not None
    return (pair.client, pair.server) if sender == "client" else (pair.server, pair.client)


def cids_in(datagrams: list[tuple[bytes, Any]], length: int) -> set[bytes | None]:
    return {connection_id_of(d, length) for d, _ in datagrams}


def inject(
    sender: Dtls13Connection, receiver: Dtls13Connection, msg_type: int, body: bytes
) -> bytes:
    """A handshake message protected by ``sender``'s record layer, numbered as ``receiver``
    expects next: what a hostile peer with the right keys can send."""
    fragment = encode_dtls_handshake(msg_type, body, receiver.reassembler.next_seq)
    return sender.records.protect(ContentType.HANDSHAKE, fragment)


def refused(
    pair: DatagramPair, sender: str, msg_type: int, body: bytes, error: type[ProtocolError]
) -> int:
    """Deliver the message to the other end, which must raise ``error``; the alert it sent,
    as the sender reads it."""
    conn, receiver = ends(pair, sender)
    addr = CLIENT if sender == "client" else SERVER
    with pytest.raises(error):
        receiver.receive(inject(conn, receiver, msg_type, body), addr, pair.now)
    assert receiver.closed
    back = SERVER if sender == "client" else CLIENT
    with pytest.raises(AlertReceived) as got:
        for datagram, _ in receiver.datagrams_to_send():
            conn.receive(datagram, back, pair.now)
    return got.value.description


# ---- both directions, spare and immediate --------------------------------------------------------


@pytest.mark.parametrize("sender", ["server", "client"])
def test_spare_connection_ids_are_used_when_the_peer_chooses(sender: str) -> None:
    pair = connected()
    issuer, user = ends(pair, sender)
    first = issuer.connection_ids
    new = issuer.new_connection_ids(2)
    assert len(set(new)) == 2 and all(len(c) == len(first[0]) for c in new)
    assert issuer.connection_ids == first + new  # accepted at once
    assert pair.run()
    assert user.spare_connection_ids == new and user.peer_connection_id == first[0]
    assert issuer.get_timer() is None  # acknowledged: no more retransmissions
    length = len(first[0])
    # The existing CID stays valid with cid_spare (RFC 9147 §9: "either an existing or new
    # CID MAY be used"); then the spares, in the order given.
    for expected in (first[0], new[0], new[1]):
        user.send(b"via " + expected.hex().encode())
        sent = user.datagrams_to_send()
        assert cids_in(sent, length) == {expected}
        for datagram, _ in sent:
            issuer.receive(datagram, CLIENT if user is pair.client else SERVER, pair.now)
        if expected != new[1]:
            assert user.use_next_connection_id() == new[0 if expected == first[0] else 1]
    pair.drain()
    got = data_events(pair.server_events if issuer is pair.server else pair.client_events)
    assert got == [b"via " + c.hex().encode() for c in (first[0], *new)]
    assert user.spare_connection_ids == ()
    with pytest.raises(StateError):
        user.use_next_connection_id()


@pytest.mark.parametrize("sender", ["server", "client"])
def test_immediate_connection_id_switches_at_once_and_retires_the_old(sender: str) -> None:
    pair = connected()
    issuer, user = ends(pair, sender)
    (old,) = issuer.connection_ids
    user.send(b"before")
    early = user.datagrams_to_send()  # sent under the old CID, delivered late
    (new,) = issuer.new_connection_ids(1, IMMEDIATE)
    assert pair.run()
    # The user switched on receipt: its ACK and everything after carry the new CID.
    assert user.peer_connection_id == new and user.spare_connection_ids == ()
    user.send(b"after")
    sent = user.datagrams_to_send()
    assert cids_in(sent, len(old)) == {new}
    # The issuer saw the ACK: the CID the new one replaces is retired (RFC 9147 §9: the
    # peer MUST use a new one for all future records), so the late record is dropped.
    assert issuer.connection_ids == (new,)
    drops = issuer.records.drops[RecordDrop.CONNECTION_ID]
    addr = CLIENT if user is pair.client else SERVER
    for datagram, _ in early + sent:
        issuer.receive(datagram, addr, pair.now)
    assert issuer.records.drops[RecordDrop.CONNECTION_ID] == drops + 1
    pair.drain()
    got = data_events(pair.server_events if issuer is pair.server else pair.client_events)
    assert got == [b"after"]


def test_old_connection_id_is_accepted_until_the_immediate_one_is_acknowledged() -> None:
    pair = connected()
    server, client = pair.server, pair.client
    assert server is not None
    (old,) = server.connection_ids
    (new,) = server.new_connection_ids(1, IMMEDIATE)
    for datagram, _ in server.datagrams_to_send():
        client.receive(datagram, SERVER, pair.now)
    assert client.peer_connection_id == new
    client.datagrams_to_send()  # its ACK is lost
    assert server.connection_ids == (old, new)
    client.records.write_connection_id = old  # a record that left before the switch
    client.send(b"late")
    for datagram, _ in client.datagrams_to_send():
        server.receive(datagram, CLIENT, pair.now)
    pair.drain()
    assert data_events(pair.server_events) == [b"late"]


def test_request_is_answered_with_at_most_what_was_asked() -> None:
    pair = connected()
    server, client = pair.server, pair.client
    assert server is not None
    client.request_connection_ids(2)
    with pytest.raises(StateError):  # RFC 9147 §9: not while a request is unfulfilled
        client.request_connection_ids(1)
    assert pair.run()
    assert len(client.spare_connection_ids) == 2
    assert len(server.connection_ids) == 3
    assert set(client.spare_connection_ids) <= set(server.connection_ids)
    # Our set is bounded: a request beyond its room is answered with fewer CIDs (§9 allows
    # "fewer than num_cids CIDs, including no CIDs at all").
    client.request_connection_ids(MAX_PEER_SPARE_CIDS - 2)
    assert pair.run()
    assert len(server.connection_ids) == MAX_READ_CONNECTION_IDS
    assert len(client.spare_connection_ids) == MAX_READ_CONNECTION_IDS - 1
    with pytest.raises(UsageError):  # ours are all issued
        server.new_connection_ids(1)
    client.request_connection_ids(1)
    assert pair.run()  # answered with no CID at all, and so fulfilled
    assert len(client.spare_connection_ids) == MAX_READ_CONNECTION_IDS - 1
    with pytest.raises(UsageError):  # more than the spares we keep
        client.request_connection_ids(2)
    client.request_connection_ids(1)


def test_lost_new_connection_id_is_sent_again_until_acknowledged() -> None:
    pair = connected()
    server, client = pair.server, pair.client
    assert server is not None
    (new,) = server.new_connection_ids(1)
    lost = server.datagrams_to_send()
    assert len(lost) == 1
    deadline = server.get_timer()
    assert deadline is not None
    server.handle_timer(deadline)
    again = server.datagrams_to_send()
    assert len(again) == 1 and again != lost  # the same message in a new record
    for datagram, _ in again:
        client.receive(datagram, SERVER, deadline)
    assert client.spare_connection_ids == (new,)
    ack = client.datagrams_to_send()
    assert ack
    for datagram, _ in ack:
        server.receive(datagram, CLIENT, deadline)
    assert server.get_timer() is None  # acknowledged: the retransmissions stop


def test_one_new_connection_id_outstanding_at_a_time() -> None:
    # RFC 9147 §5.8.4, §9: the second waits until the first is acknowledged.
    pair = connected()
    server = pair.server
    assert server is not None
    first = server.new_connection_ids(1)
    second = server.new_connection_ids(1)
    sent = server.datagrams_to_send()
    assert len(sent) == 1
    assert pair.run()
    assert pair.client.spare_connection_ids == first + second


def test_queued_post_handshake_messages_go_in_the_order_queued() -> None:
    # One in flight at a time (RFC 9147 §5.8.4); those waiting go first in, first out.
    pair = connected()
    server = pair.server
    assert server is not None
    queued = [server.new_connection_ids(1)[0] for _ in range(4)]
    server.key_update()
    client = pair.client
    first = client.reassembler.next_seq
    for sent in range(1, 6):
        # Each round trip delivers the next message in order: none waits ahead of a gap.
        for datagram, _ in server.datagrams_to_send():
            client.receive(datagram, SERVER, pair.now)
        assert client.reassembler.next_seq == first + sent
        for datagram, _ in client.datagrams_to_send():
            server.receive(datagram, CLIENT, pair.now)
    assert client.spare_connection_ids == tuple(queued)


def test_peer_spares_are_bounded_and_immediate_drops_older_spares() -> None:
    pair = connected()
    server, client = pair.server, pair.client
    assert server is not None
    offered = tuple(bytes((i,)) * 3 for i in range(MAX_PEER_SPARE_CIDS + 5))
    body = NewConnectionId(offered, SPARE).encode()
    client.receive(inject(server, client, NCID, body), SERVER, pair.now)
    # RFC 9147 §9: "MAY simply discard any extra CIDs": the first ones are kept, in order.
    assert client.spare_connection_ids == offered[:MAX_PEER_SPARE_CIDS]
    body = NewConnectionId((b"now", b"and", b"now"), IMMEDIATE).encode()
    client.receive(inject(server, client, NCID, body), SERVER, pair.now)
    assert client.peer_connection_id == b"now"
    assert client.spare_connection_ids == (b"and",)


# ---- misuse ------------------------------------------------------------------------------------


def test_misuse_is_refused() -> None:
    pair = make_pair13(server_config(connection_id_length=4), client_config(connection_id_length=2))
    with pytest.raises(StateError):
        pair.client.new_connection_ids(1)  # before the handshake
    with pytest.raises(StateError):
        pair.client.request_connection_ids(1)
    assert pair.run()
    client = pair.client
    with pytest.raises(UsageError):
        client.new_connection_ids(0)
    with pytest.raises(UsageError):
        client.new_connection_ids([b"abc"])  # ours are 2 bytes
    with pytest.raises(UsageError):
        client.new_connection_ids([b"ab", b"ab"])
    with pytest.raises(UsageError):
        client.new_connection_ids([client.connection_ids[0]])
    with pytest.raises(UsageError):
        client.new_connection_ids(MAX_READ_CONNECTION_IDS)  # one is in use already
    with pytest.raises(UsageError):
        client.request_connection_ids(0)
    with pytest.raises(UsageError):
        client.request_connection_ids(MAX_PEER_SPARE_CIDS + 1)
    assert client.new_connection_ids([b"ab"], IMMEDIATE) == (b"ab",)
    client.close()
    with pytest.raises(StateError):
        client.new_connection_ids(1)


def test_without_negotiated_connection_ids_the_calls_are_refused() -> None:
    pair = connected(client_cid=2, server_cid=0)
    assert pair.client.connection_ids == ()
    for conn in ends(pair, "client"):
        with pytest.raises(UsageError):
            conn.new_connection_ids(1)
        with pytest.raises(UsageError):
            conn.request_connection_ids(1)


# ---- a hostile peer ----------------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["server", "client"])
@pytest.mark.parametrize("msg_type", [NCID, RCID])
def test_messages_without_negotiated_connection_ids_are_unexpected(
    sender: str, msg_type: int
) -> None:
    # RFC 9147 §9: "If an implementation receives these messages when CIDs were not
    # negotiated, it MUST abort the connection with an 'unexpected_message' alert."
    pair = connected(client_cid=0, server_cid=0)
    body = NewConnectionId((b"abcd",), SPARE).encode() if msg_type == NCID else b"\x01"
    alert = refused(pair, sender, msg_type, body, UnexpectedMessage)
    assert alert == AlertDescription.unexpected_message


def test_new_connection_id_from_a_peer_receiving_no_cid_is_unexpected() -> None:
    # RFC 9147 §9: one "which negotiated receiving an empty CID MUST NOT send
    # NewConnectionId". Our ends never ask for an empty CID; this client stands for one that
    # did (it sends no CID to us: we put none in ours to it).
    pair = connected()
    server, client = pair.server, pair.client
    assert server is not None
    client.records.write_connection_id = b""
    body = NewConnectionId((b"ab",), SPARE).encode()
    with pytest.raises(UnexpectedMessage):  # the alert: UnexpectedMessage's, as always
        client.receive(inject(server, client, NCID, body), SERVER, pair.now)
    assert client.closed


@pytest.mark.parametrize(
    "body, error, alert",
    [
        (NewConnectionId((b"",), SPARE).encode(), IllegalParameter, "illegal_parameter"),
        (NewConnectionId((b"ab", b""), SPARE).encode(), IllegalParameter, "illegal_parameter"),
        (NewConnectionId((), IMMEDIATE).encode(), IllegalParameter, "illegal_parameter"),
        (b"\x00\x03\x02ab\x05", IllegalParameter, "illegal_parameter"),  # usage 5
        (b"\x00\x03\x05ab\x01", DecodeError, "decode_error"),  # CID longer than the list
        (b"\x00\x03\x02ab", DecodeError, "decode_error"),  # no usage
    ],
)
def test_hostile_new_connection_id(body: bytes, error: type[ProtocolError], alert: str) -> None:
    pair = connected()
    assert refused(pair, "server", NCID, body, error) == AlertDescription[alert]


def test_hostile_request_connection_id_length() -> None:
    pair = connected()
    alert = refused(pair, "client", RCID, b"\x01\x01", DecodeError)
    assert alert == AlertDescription.decode_error


def test_a_flood_of_requests_is_too_many_cids_requested() -> None:
    # RFC 9147 §9: "Endpoints MAY handle an excessive number of RequestConnectionId messages
    # by terminating the connection using a 'too_many_cids_requested' (alert number 52)".
    pair = connected()
    server, client = pair.server, pair.client
    assert server is not None
    for _ in range(MAX_CID_REQUESTS_WITHOUT_DATA):
        server.receive(inject(client, server, RCID, b"\x01"), CLIENT, pair.now)
    assert len(server.connection_ids) == MAX_READ_CONNECTION_IDS  # answers stop at the bound
    alert = refused(pair, "client", RCID, b"\x01", TooManyCidsRequested)
    assert alert == AlertDescription.too_many_cids_requested


def test_requests_interleaved_with_data_are_not_a_flood() -> None:
    pair = connected()
    server, client = pair.server, pair.client
    assert server is not None
    for _ in range(MAX_CID_REQUESTS_WITHOUT_DATA + 4):
        server.receive(inject(client, server, RCID, b"\x00"), CLIENT, pair.now)
        client.send(b"data")
        for datagram, _ in client.datagrams_to_send():
            server.receive(datagram, CLIENT, pair.now)
    assert not server.closed


def test_connection_id_messages_over_tls_are_unexpected() -> None:
    # RFC 9147 §9 defines them for DTLS 1.3 only: over TLS 1.3 they are no handshake message.
    client, server = pair()
    for msg_type, body in ((NCID, b"\x00\x03\x02ab\x01"), (RCID, b"\x01")):
        tls_client, tls_server = pair()
        record = seal(tls_client, ContentType.HANDSHAKE, encode_handshake(msg_type, body))
        with pytest.raises(UnexpectedMessage):
            tls_server.receive_data(record, NOW)
    assert not client.closed and not server.closed
