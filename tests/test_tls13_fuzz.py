"""TLS 1.3 connections under hostile input, at every state of real handshakes.

A handshake between our client and server (plain, with a HelloRetryRequest, with client
certificates, resumed) is replayed deterministically record by record, stopped when one
side has received ``k`` records, and that side is then fed:

- an exhaustive check of the legal-message tables: every handshake message type in every
  state, with an empty body: a type absent from the state's row of ``TABLE`` must be
  unexpected_message (RFC 8446 §4), a type present must reach its handler (which fails to
  decode the empty body: decode_error);
- Hypothesis input: random bytes, random records (protected with the keys the side reads
  with, so they reach the handshake), and mutations of the record that really came next.
  The outcome is always either success or a `ProtocolError` (with the alert queued) or an
  `AlertReceived`; never another exception.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tls13_helpers import NOW, client_config, credentials, server_config

from dtlsgate.crypto.certs import load_identity
from dtlsgate.crypto.provider import DeterministicProvider
from dtlsgate.errors import AlertReceived, ProtocolError
from dtlsgate.tls13 import client as _client
from dtlsgate.tls13 import server as _server
from dtlsgate.tls13.connection import (
    ClientConnection,
    ServerConnection,
    SessionTicketReceived,
    TlsConnection,
)
from dtlsgate.wire.enums import AlertDescription, HandshakeType, NamedGroup

Pair = tuple[ClientConnection, ServerConnection]


def split_records(data: bytes) -> list[bytes]:
    out = []
    while data:
        length = int.from_bytes(data[3:5], "big")
        out.append(data[: 5 + length])
        data = data[5 + length :]
    return out


@functools.cache
def resumption_ticket() -> Any:
    client, server = plain()
    run(client, server, "s", 99)
    tickets = []
    while (event := client.next_event()) is not None:
        if isinstance(event, SessionTicketReceived):
            tickets.append(event.ticket)
    return tickets[-1]


def plain() -> Pair:
    return (
        ClientConnection(client_config(provider=DeterministicProvider(1))),
        ServerConnection(server_config(provider=DeterministicProvider(2))),
    )


def hello_retry() -> Pair:
    cfg = client_config(
        provider=DeterministicProvider(1), groups=(NamedGroup.secp384r1, NamedGroup.x25519)
    )
    return ClientConnection(cfg), ServerConnection(server_config(provider=DeterministicProvider(2)))


def client_auth() -> Pair:
    ident = load_identity(*credentials("ed25519"))
    ccfg = client_config(
        provider=DeterministicProvider(1),
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
    )
    scfg = server_config(
        provider=DeterministicProvider(2),
        verify_client="required",
        cafile=credentials("ed25519")[0],
    )
    return ClientConnection(ccfg), ServerConnection(scfg)


def resumed() -> Pair:
    # The ticket's key comes from the server's deterministic provider: same seed, same key.
    ccfg = client_config(provider=DeterministicProvider(1), session_ticket=resumption_ticket())
    return ClientConnection(ccfg), ServerConnection(
        server_config(provider=DeterministicProvider(2))
    )


SCENARIOS: dict[str, Callable[[], Pair]] = {
    "plain": plain,
    "hello_retry": hello_retry,
    "client_auth": client_auth,
    "resumed": resumed,
}


def run(client: ClientConnection, server: ServerConnection, target: str, k: int) -> bytes | None:
    """Deliver records one at a time until ``target`` ("c" or "s") has received ``k`` of
    them; returns the record it would have received next (None at the end)."""
    client.start(NOW)
    conns: dict[str, TlsConnection] = {"c": client, "s": server}
    pending: dict[str, list[bytes]] = {"s": split_records(client.data_to_send()), "c": []}
    got = 0
    moved = True
    while moved:
        moved = False
        for dst, other in (("s", "c"), ("c", "s")):
            while pending[dst]:
                if dst == target and got == k:
                    return pending[dst][0]
                conns[dst].receive_data(pending[dst].pop(0), NOW)
                got += dst == target
                pending[other] += split_records(conns[dst].data_to_send())
                moved = True
    return None


def at_state(scenario: str, target: str, k: int) -> tuple[TlsConnection, bytes | None]:
    client, server = SCENARIOS[scenario]()
    following = run(client, server, target, k)
    return (client if target == "c" else server), following


def count_records(scenario: str, target: str) -> int:
    k = 0
    while at_state(scenario, target, k)[1] is not None:
        k += 1
    return k


CASES = [
    (scenario, target, k)
    for scenario in SCENARIOS
    for target in ("c", "s")
    for k in range(count_records(scenario, target) + 1)
]
IDS = [f"{s}-{'client' if t == 'c' else 'server'}-{k}" for s, t, k in CASES]


def inject(conn: TlsConnection, content_type: int, payload: bytes) -> bytes:
    """A record as the peer would send it now: protected with a copy of the key the
    connection reads with (so the connection's own sequence number lines up)."""
    reader = conn._records.read
    if reader is None:
        return bytes((content_type, 3, 3)) + len(payload).to_bytes(2, "big") + payload
    return copy.copy(reader).seal(content_type, payload)


def feed(conn: TlsConnection, data: bytes) -> None:
    """The fuzz rule: success, or a protocol error with the connection closed, or a fatal
    alert from the 'peer'; anything else propagates and fails the test."""
    try:
        conn.receive_data(data, NOW)
    except ProtocolError as exc:
        assert exc.alert is not None
        assert conn.closed
    except AlertReceived:
        assert conn.closed


# ---- exhaustive: every message type in every state ------------------------------------------

TABLES = {"c": _client.TABLE, "s": _server.TABLE}
MESSAGE_TYPES = [*HandshakeType, 7, 99, 253, 255]


@pytest.mark.parametrize(("scenario", "target", "k"), CASES, ids=IDS)
def test_every_message_type_in_every_state(scenario: str, target: str, k: int) -> None:
    state = type(at_state(scenario, target, k)[0]._state)
    legal = TABLES[target].get(state, {})
    for msg_type in MESSAGE_TYPES:
        conn, _ = at_state(scenario, target, k)
        message = bytes((msg_type, 0, 0, 0))  # an empty body
        with pytest.raises(ProtocolError) as info:
            conn.receive_data(inject(conn, 22, message), NOW)
        expected = (
            AlertDescription.decode_error
            if msg_type in legal
            else AlertDescription.unexpected_message
        )
        assert info.value.alert == expected, (state.__name__, msg_type)


def test_every_table_state_is_reached() -> None:
    reached: dict[str, set[type]] = {"c": set(), "s": set()}
    for scenario, target, k in CASES:
        reached[target].add(type(at_state(scenario, target, k)[0]._state))
    assert set(_client.TABLE) <= reached["c"]
    assert set(_server.TABLE) <= reached["s"]


# ---- Hypothesis: random and mutated records at each state -----------------------------------

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
record_types = st.one_of(st.sampled_from([20, 21, 22, 23]), st.integers(0, 255))


@st.composite
def mutated(draw: st.DrawFn, content: bytes) -> bytes:
    data = bytearray(content)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "extend", "length"]))
        if kind == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= draw(st.integers(1, 255))
        elif kind == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif kind == "extend":
            data += draw(st.binary(max_size=40))
        elif kind == "length" and len(data) >= 4:
            data[1:4] = draw(st.integers(0, (1 << 24) - 1)).to_bytes(3, "big")
    return bytes(data)


@pytest.mark.parametrize(("scenario", "target", "k"), CASES, ids=IDS)
@FUZZ
@given(data=st.data())
def test_fuzzed_input_at_each_state(scenario: str, target: str, k: int, data: Any) -> None:
    conn, following = at_state(scenario, target, k)
    choice = data.draw(st.sampled_from(["raw", "records", "mutated"]))
    if choice == "raw":
        feed(conn, data.draw(st.binary(max_size=300)))
        return
    if choice == "mutated" and following is not None:
        reader = conn._records.read
        if reader is None or following[0] != 23:
            # A plaintext record (a ClientHello, a ServerHello, the compatibility CCS).
            body = data.draw(mutated(following[5:]))
            feed(conn, following[:3] + len(body).to_bytes(2, "big") + body)
            return
        content_type, content = copy.copy(reader).open(following[:5], following[5:])
        feed(conn, inject(conn, content_type, data.draw(mutated(content))))
        return
    records = data.draw(
        st.lists(
            st.tuples(
                record_types,
                st.one_of(
                    st.binary(max_size=200),
                    st.builds(
                        lambda t, body: bytes((t,)) + len(body).to_bytes(3, "big") + body,
                        st.sampled_from(MESSAGE_TYPES),
                        st.binary(max_size=120),
                    ),
                ),
            ),
            min_size=1,
            max_size=3,
        )
    )
    feed(conn, b"".join(inject(conn, t, payload) for t, payload in records))
