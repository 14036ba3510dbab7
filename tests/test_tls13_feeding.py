"""TLS over a byte stream does not care how the bytes are cut: the same bytes fed whole, one
byte at a time, or in chunks that end inside a record (each carrying the start of the next:
trailing data) give the same events and the same bytes back.

A reference handshake between deterministic ends records what each side sent; fresh ends
with the same deterministic providers then get the peer's bytes cut in other ways.
"""

from __future__ import annotations

import itertools
from typing import Any

from helpers import NOW, client_config, events, server_config
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.events import ConnectionClosed, DataReceived, HandshakeCompleted


def new_server() -> ServerConnection:
    return ServerConnection(server_config(provider=DeterministicProvider(b"feeding server")))


def new_client() -> ClientConnection:
    client = ClientConnection(client_config(provider=DeterministicProvider(b"feeding client")))
    client.start()
    return client


def reference() -> tuple[bytes, bytes, list[Any], list[Any]]:
    """A whole connection in the usual rhythm: client bytes, server bytes and each side's
    events. The client says hello after the handshake and then closes."""
    client, server = new_client(), new_server()
    client_out, server_out = bytearray(), bytearray()
    client_events: list[Any] = []
    server_events: list[Any] = []
    for _ in range(8):
        chunk = client.data_to_send()
        client_out += chunk
        if chunk:
            server.receive_data(chunk, NOW)
        server_events += events(server)
        answer = server.data_to_send()
        server_out += answer
        if answer:
            client.receive_data(answer, NOW)
        client_events += events(client)
        if client.handshake_complete and server.handshake_complete and not chunk and not answer:
            break
    assert client.handshake_complete and server.handshake_complete
    client.send(b"hello")
    client.close()
    chunk = client.data_to_send()
    client_out += chunk
    server.receive_data(chunk, NOW)
    server_events += events(server)
    server_out += server.data_to_send()
    return bytes(client_out), bytes(server_out), client_events, server_events


CLIENT_BYTES, SERVER_BYTES, CLIENT_EVENTS, SERVER_EVENTS = reference()


def test_the_reference_connection_is_what_the_checks_expect() -> None:
    assert [type(e) for e in SERVER_EVENTS] == [HandshakeCompleted, DataReceived, ConnectionClosed]
    assert SERVER_EVENTS[1] == DataReceived(b"hello")
    assert isinstance(CLIENT_EVENTS[0], HandshakeCompleted)


def feed_server(chunks: list[bytes]) -> tuple[bytes, list[Any]]:
    server = new_server()
    out = bytearray()
    got: list[Any] = []
    for chunk in chunks:
        server.receive_data(chunk, NOW)
        got += events(server)
        out += server.data_to_send()
    return bytes(out), got


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def test_the_client_bytes_whole_give_the_same_server() -> None:
    assert feed_server([CLIENT_BYTES]) == (SERVER_BYTES, SERVER_EVENTS)


def test_the_client_bytes_one_at_a_time_give_the_same_server() -> None:
    chunks = [CLIENT_BYTES[i : i + 1] for i in range(len(CLIENT_BYTES))]
    assert feed_server(chunks) == (SERVER_BYTES, SERVER_EVENTS)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CLIENT_BYTES) - 1), max_size=12))
def test_the_client_bytes_cut_anywhere_give_the_same_server(points: list[int]) -> None:
    # Chunks that end inside a record carry the start of the next: trailing data.
    assert feed_server(cut(CLIENT_BYTES, points)) == (SERVER_BYTES, SERVER_EVENTS)


def feed_client(chunks: list[bytes]) -> tuple[bytes, list[Any]]:
    client = new_client()
    out = bytearray(client.data_to_send())
    got: list[Any] = []
    for chunk in chunks:
        client.receive_data(chunk, NOW)
        got += events(client)
        out += client.data_to_send()
    return bytes(out), got


def test_the_server_bytes_whole_or_byte_by_byte_give_the_same_client() -> None:
    whole = feed_client([SERVER_BYTES])
    by_byte = feed_client([SERVER_BYTES[i : i + 1] for i in range(len(SERVER_BYTES))])
    assert whole == by_byte
    assert whole[1] == CLIENT_EVENTS
    # What the client sent in the reference before it said hello is what it sends here.
    assert CLIENT_BYTES.startswith(whole[0])
    assert len(whole[0]) > 0


def test_trailing_bytes_after_a_close_are_not_taken_as_data() -> None:
    # Bytes after close_notify are never application data (RFC 8446 §6.1).
    out, got = feed_server([CLIENT_BYTES + b"\x17\x03\x03\x00\x05trail"])
    assert [e for e in got if isinstance(e, DataReceived)] == [DataReceived(b"hello")]
    assert out.startswith(SERVER_BYTES)
