"""TLS 1.3 connections under hostile input, at every state of real handshakes.

A handshake between our client and server (each of tls13_hostile.py's `HANDSHAKES`: plain,
with a HelloRetryRequest, with client certificates, resumed, with post-handshake
authentication, with compressed certificates, with an external PSK in psk_dhe_ke and in
psk_ke mode, with raw public keys, by certificate fingerprints; and one per key exchange
group, fuzzed around the hellos) is replayed deterministically record by record, stopped
when one side has received ``k`` records, and that side is then fed:

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
from collections.abc import Callable
from typing import Any

import pytest
from helpers import NOW, PSK_ID, events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tls13_hostile import (
    GROUP_HANDSHAKES,
    HANDSHAKES,
    at_state,
    count_records,
    feed,
    inject,
    run,
)

from dtlsgate.errors import ProtocolError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.handshake.tls13 import client as _client
from dtlsgate.handshake.tls13 import server as _server
from dtlsgate.handshake.tls13.post_handshake import Connected
from dtlsgate.wire.enums import AlertDescription, HandshakeType, NamedGroup

# Every state of the whole handshakes; for the per-group ones, the states around the hellos
# and their key shares (the server's first two records, the client's first: the ServerHello
# or HelloRetryRequest), where the groups differ.
CASES = [
    (scenario, target, k)
    for scenario in HANDSHAKES
    for target in ("c", "s")
    for k in range(count_records(scenario, target) + 1)
] + [
    (scenario, target, k)
    for scenario in GROUP_HANDSHAKES
    for target, k in (("s", 0), ("s", 1), ("c", 0))
]
IDS = [f"{s}-{'client' if t == 'c' else 'server'}-{k}" for s, t, k in CASES]


# ---- the handshakes added for a feature negotiate it ----------------------------------------

# As both ends' HandshakeCompleted (client, server) report it: one that quietly fell back
# (to a certificate, to psk_dhe_ke) would fuzz nothing new.
NEGOTIATED: dict[str, Callable[[HandshakeCompleted, HandshakeCompleted], bool]] = {
    "plain": lambda c, s: c.group == s.group == NamedGroup.X25519MLKEM768 and not c.hello_retry,
    "hello_retry": lambda c, s: c.hello_retry and s.hello_retry,
    "client_auth": lambda c, s: bool(c.peer_certificates and s.peer_certificates),
    "resumed": lambda c, s: c.resumed and s.resumed and not c.peer_certificates,
    "psk_dhe_ke": lambda c, s: c.psk_identity == s.psk_identity == PSK_ID and c.group is not None,
    "psk_ke": lambda c, s: c.psk_identity == s.psk_identity == PSK_ID and c.group is None,
    "raw_public_keys": lambda c, s: (
        c.peer_raw_public_key is not None
        and s.peer_raw_public_key is not None
        and not (c.peer_certificates or s.peer_certificates)
    ),
    "fingerprint_client_auth": lambda c, s: bool(c.peer_certificates and s.peer_certificates),
}


@pytest.mark.parametrize("scenario", sorted(NEGOTIATED))
def test_handshake_negotiates_what_it_is_named_for(scenario: str) -> None:
    client, server = HANDSHAKES[scenario]()
    run(client, server, "s", 1 << 16)
    done = [
        [e for e in events(conn) if isinstance(e, HandshakeCompleted)] for conn in (client, server)
    ]
    assert [len(d) for d in done] == [1, 1]
    assert NEGOTIATED[scenario](done[0][0], done[1][0]), done


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
        # RFC 8446 §4.6.2: a CertificateRequest after the handshake is unexpected_message,
        # undecoded, at a client that did not send post_handshake_auth.
        refused_anyway = (
            target == "c"
            and msg_type == HandshakeType.CERTIFICATE_REQUEST
            and state is Connected
            and not conn._ctx.config.post_handshake_auth
        )
        expected = (
            AlertDescription.decode_error
            if msg_type in legal and not refused_anyway
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
        reader = conn.record_layer.read
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
