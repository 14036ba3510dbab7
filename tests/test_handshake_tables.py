"""The one dispatch rule, checked over every state x every handshake message type of both
protocols' tables (DTLS 1.2 and TLS 1.3, server and client):

- a message absent from the state's row is unexpected_message;
- a message in the row, arriving under the protection the protocol fixes for it (the epoch
  rule, restated here from the RFCs), goes to the row's handler; under any other, it is
  unexpected_message;

first at the engine (`handler_for`, exhaustively and with Hypothesis), then through real
connections: each DTLS 1.2 state a handshake reaches is handed every message type as a
datagram, and the table's handler runs exactly when the rule says so, with the alert sent
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dtls12_hostile import (
    INJECTED_TYPES,
    Config,
    Driver,
    RecordDriver,
    _cert_pem,
    _client_credentials,
    as_datagram,
    deliver,
)
from helpers import PSK, PSK_ID, client_config, server_config
from hypothesis import given
from hypothesis import strategies as st

from dtlsgate.connection.datagram import DtlsClientConnection, DtlsServerConnection
from dtlsgate.errors import UnexpectedMessage
from dtlsgate.handshake import engine
from dtlsgate.handshake.dtls12 import client as dtls12_client
from dtlsgate.handshake.dtls12 import server as dtls12_server
from dtlsgate.handshake.dtls12.common import Established
from dtlsgate.handshake.engine import Machine, check_machine, handler_for
from dtlsgate.handshake.tls13 import client as tls13_client
from dtlsgate.handshake.tls13 import server as tls13_server
from dtlsgate.handshake.tls13.post_handshake import Connected
from dtlsgate.wire.enums import AlertDescription, CipherSuite, HandshakeType
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.record import encode_dtls_record

HT = HandshakeType
MACHINES: dict[str, Machine[Any]] = {
    "dtls12-server": dtls12_server.SERVER,
    "dtls12-client": dtls12_client.CLIENT,
    "tls13-server": tls13_server.SERVER,
    "tls13-client": tls13_client.CLIENT,
    "dtls13-server": tls13_server.DTLS_SERVER,
    "dtls13-client": tls13_client.DTLS_CLIENT,
}
EPOCHS = range(7)


def rfc_epochs(name: str, state: type, msg_type: int) -> range:
    """The epochs ``msg_type`` may arrive in while in ``state``, from the RFCs (the
    engine's numbering: see dtlsgate.handshake.engine)."""
    if name.startswith("dtls12"):
        if state is Established:
            # Declined whatever the epoch (the connection drops plaintext records itself
            # once the handshake is complete, RFC 6347 §4.1).
            return range(0, 1 << 16)
        # RFC 5246 §7.4.9: Finished is the first message protected by the new keys.
        return range(1, 2) if msg_type == HT.FINISHED else range(0, 1)
    if issubclass(state, Connected):
        # RFC 8446 §4.6: post-handshake, application keys (the post-handshake
        # authentication states are connected states too).
        return range(3, 1 << 16)
    if msg_type in (HT.CLIENT_HELLO, HT.SERVER_HELLO):
        return range(0, 1)  # RFC 8446 §2: the hellos are in the clear
    return range(2, 3)  # the rest of the handshake under the handshake traffic keys


def instance(state: type) -> object:
    # The dispatch rule reads the state's type only; its fields do not matter here.
    return object.__new__(state)


def cases() -> Iterator[tuple[str, type]]:
    for name, machine in MACHINES.items():
        for state in machine.states():
            yield name, state


@pytest.mark.parametrize("name", list(MACHINES))
def test_every_table_passes_the_engine_checks(name: str) -> None:
    assert check_machine(MACHINES[name]) == []


@pytest.mark.parametrize(("name", "state"), list(cases()), ids=lambda v: getattr(v, "__name__", v))
def test_every_message_type_in_every_state_and_epoch(name: str, state: type) -> None:
    machine = MACHINES[name]
    row = machine.row(state)
    for msg_type in range(256):
        for epoch in EPOCHS:
            legal = msg_type in row and epoch in rfc_epochs(name, state, msg_type)
            if legal:
                assert handler_for(machine, instance(state), msg_type, epoch) is row[msg_type]
                continue
            with pytest.raises(UnexpectedMessage) as raised:
                handler_for(machine, instance(state), msg_type, epoch)
            assert raised.value.alert == AlertDescription.unexpected_message


@given(
    case=st.sampled_from(list(cases())),
    msg_type=st.integers(0, 255),
    epoch=st.integers(0, (1 << 16) - 1),
)
def test_dispatch_rule_for_any_epoch(case: tuple[str, type], msg_type: int, epoch: int) -> None:
    name, state = case
    machine = MACHINES[name]
    try:
        handler = handler_for(machine, instance(state), msg_type, epoch)
    except UnexpectedMessage as exc:
        assert exc.alert == AlertDescription.unexpected_message
        assert msg_type not in machine.row(state) or epoch not in rfc_epochs(name, state, msg_type)
    else:
        assert handler is machine.row(state)[msg_type]
        assert epoch in rfc_epochs(name, state, msg_type)


def test_the_tls13_client_before_start_takes_nothing() -> None:
    # The connection's state before start() is None: a state with no row.
    for msg_type in range(256):
        with pytest.raises(UnexpectedMessage):
            handler_for(tls13_client.CLIENT, None, msg_type, 0)


# ---- through the DTLS 1.2 connections ---------------------------------------------------------


def spied(machine: Machine[Any], calls: list[tuple[str, int]]) -> Machine[Any]:
    """``machine`` with every handler recording (state name, message type) when called,
    and checking that the state it returns is one ``goes_to`` declares."""

    def wrap(state: type, msg_type: int, handler: Callable[..., Any]) -> Callable[..., Any]:
        def recording(*args: Any) -> Any:
            calls.append((state.__name__, msg_type))
            result = handler(*args)
            # Every transition the handshakes take is one the table declares (and the
            # diagrams in docs/ draw).
            assert type(result[0]) in machine.goes_to[(state, msg_type)], (state, result[0])
            return result

        return recording

    table = {
        state: {t: wrap(state, t, h) for t, h in row.items()}
        for state, row in machine.table.items()
    }
    return Machine(
        machine.name,
        machine.start,
        table,
        machine.goes_to,
        machine.epochs,
        machine.default_epochs,
        machine.after_handshake,
        machine.after_handshake_epochs,
    )


PLAIN_PSK = (CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,)


def _session() -> Any:
    """A DTLS 1.2 session (with a ticket) from a full handshake, to resume."""
    from dtlsgate.events import SessionTicketReceived

    driver = Driver((lambda: server_config(), lambda: client_config()))
    assert driver.finish()
    events = driver.pair.client_events
    return next(e.ticket for e in events if isinstance(e, SessionTicketReceived))


TABLE_CONFIGS: dict[str, Config] = {
    "ecdsa": (lambda: server_config(), lambda: client_config()),
    "client-auth": (
        lambda: server_config(verify_client="optional", cafile=_cert_pem()),
        lambda: client_config(**_client_credentials()),
    ),
    "psk-hint": (
        lambda: server_config(None, psk={PSK_ID: PSK}, psk_identity_hint=b"hint"),
        lambda: client_config(psk=PSK, psk_identity=PSK_ID, cipher_suites=PLAIN_PSK),
    ),
    "psk": (
        lambda: server_config(None, psk={PSK_ID: PSK}),
        lambda: client_config(psk=PSK, psk_identity=PSK_ID, cipher_suites=PLAIN_PSK),
    ),
    "resumed": (lambda: server_config(), lambda: client_config(session_ticket=_session())),
    "ecdhe-psk": (
        lambda: server_config(None, psk={PSK_ID: PSK}),
        lambda: client_config(
            psk=PSK,
            psk_identity=PSK_ID,
            cipher_suites=(CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256,),
        ),
    ),
}


def points(config: str) -> Iterator[tuple[int, str, str]]:
    """(records delivered, side, state name) for each state a side reaches, once each."""
    seen: set[tuple[str, str]] = set()
    driver = RecordDriver(TABLE_CONFIGS[config])
    point = 0
    while True:
        for side in ("server", "client"):
            conn, _ = driver.side(side)
            if conn is None or conn.closed or (side, conn.state_name) in seen:
                continue
            assert not conn.reassembler.holds(conn.reassembler.next_seq)
            seen.add((side, conn.state_name))
            yield point, side, conn.state_name
        if not driver.step():
            return
        point += 1


def test_the_connections_reach_every_state_but_the_servers_first() -> None:
    # The server machine starts on the gate's Admit and takes the ClientHello at once.
    reached = {(side, name) for config in TABLE_CONFIGS for _, side, name in points(config)}
    for side, machine in (("server", dtls12_server.SERVER), ("client", dtls12_client.CLIENT)):
        for state in machine.states():
            if state is not dtls12_server.ServerWaitClientHello:
                assert (side, state.__name__) in reached


@pytest.mark.parametrize("config", list(TABLE_CONFIGS))
def test_each_reached_dtls12_state_takes_exactly_its_row(
    config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    # Each connection class feeds its messages to its machine (``_machine``).
    monkeypatch.setattr(DtlsServerConnection, "_machine", spied(dtls12_server.SERVER, calls))
    monkeypatch.setattr(DtlsClientConnection, "_machine", spied(dtls12_client.CLIENT, calls))
    checked = 0
    for point, side, state_name in list(points(config)):
        machine = dtls12_server.SERVER if side == "server" else dtls12_client.CLIENT
        state = next(s for s in machine.states() if s.__name__ == state_name)
        for msg_type in INJECTED_TYPES:
            for epoch in (0, 1):
                driver = RecordDriver(TABLE_CONFIGS[config]).run(point)
                conn, peer = driver.side(side)
                assert conn is not None and conn.state_name == state_name
                if epoch == 1 and (
                    peer is None
                    or not peer.record_layer.can_write(1)
                    or not conn.record_layer.knows_epoch(1)
                ):
                    continue  # no epoch-1 keys yet (a record of it would wait unread)
                calls.clear()
                datagram = as_datagram(conn, peer, msg_type, b"", epoch)
                legal = msg_type in machine.row(state) and epoch in machine.epochs_for(
                    state, msg_type
                )
                complete = conn.handshake_complete
                outcome = deliver(conn, peer, datagram, illegal_type=not legal)
                checked += 1
                if complete and epoch == 0:
                    # RFC 6347 §4.1: after the handshake a plaintext handshake record never
                    # reaches the machine (it is forgeable): dropped, not an alert.
                    assert (outcome, calls) == ("dropped", [])
                elif legal:
                    assert calls == [(state_name, msg_type)], (state_name, msg_type, epoch)
                else:
                    assert calls == [], (state_name, msg_type, epoch)
                    assert outcome == "protocol-error", (state_name, msg_type, epoch)
    assert checked > 0


def test_engine_actions_are_the_ones_both_protocols_use() -> None:
    from dtlsgate.handshake.tls13 import common as tls13_handshake

    for name in ("SendMessage", "SendChangeCipherSpec", "InstallKey", "KeyLog", "Complete"):
        assert getattr(tls13_handshake, name) is getattr(engine, name)


# ---- through the TLS 1.3 connections ----------------------------------------------------------


def tls13_points(scenario: str) -> Iterator[tuple[str, int, str]]:
    """(side, records received, state name) for each state a side reaches between two
    records, once each."""
    from tls13_hostile import at_state

    seen: set[tuple[str, str]] = set()
    for target in ("c", "s"):
        k = 0
        while True:
            conn, following = at_state(scenario, target, k)
            fresh = (target, conn.state_name) not in seen
            if fresh and not conn.closed and not conn.reassembler.pending:
                seen.add((target, conn.state_name))
                yield target, k, conn.state_name
            if following is None:
                break
            k += 1


TLS13_SCENARIOS = ("plain", "hello_retry", "client_auth", "resumed", "post_handshake_auth")


@pytest.mark.parametrize("scenario", TLS13_SCENARIOS)
def test_each_reached_tls13_state_takes_exactly_its_row(
    scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tls13_hostile import at_state, inject

    from dtlsgate.errors import ProtocolError

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(tls13_server, "SERVER", spied(tls13_server.SERVER, calls))
    monkeypatch.setattr(tls13_client, "CLIENT", spied(tls13_client.CLIENT, calls))
    checked = 0
    for target, k, state_name in list(tls13_points(scenario)):
        machine = tls13_client.CLIENT if target == "c" else tls13_server.SERVER
        state = next((s for s in machine.states() if s.__name__ == state_name), type(None))
        for msg_type in INJECTED_TYPES:
            conn, _ = at_state(scenario, target, k)
            epoch = conn._read_epoch
            legal = msg_type in machine.row(state) and epoch in machine.epochs_for(state, msg_type)
            calls.clear()
            try:
                conn.receive_data(inject(conn, 22, bytes((msg_type, 0, 0, 0))), 0.0)
            except ProtocolError as exc:
                assert legal or isinstance(exc, UnexpectedMessage), (state_name, msg_type)
                assert legal or exc.alert == AlertDescription.unexpected_message
            else:
                assert legal, (state_name, msg_type)
            assert calls == ([(state_name, msg_type)] if legal else []), (state_name, msg_type)
            checked += 1
    assert checked > 0


def test_the_tls13_connections_reach_every_state() -> None:
    reached = {(t, name) for s in TLS13_SCENARIOS for t, _, name in tls13_points(s)}
    for target, machine in (("s", tls13_server.SERVER), ("c", tls13_client.CLIENT)):
        for state in machine.states():
            assert (target, state.__name__) in reached


def test_a_plaintext_hello_buffered_before_the_finished_is_answered_as_before() -> None:
    """A plaintext ClientHello numbered after the client's Finished, buffered while the
    handshake was still on (anyone who knows the addresses can send one), reaches the
    Established server once the Finished is in: it is declined with the no_renegotiation
    warning, as before the engine, not a fatal alert that would end the connection."""
    from builders import client_hello
    from helpers import CLIENT, NOW, alerts_in

    driver = RecordDriver(TABLE_CONFIGS["ecdsa"])
    while driver.pair.server is None or driver.pair.server.state_name != "WaitFinished":
        assert driver.step()
    server = driver.pair.server
    hello = client_hello().encode()
    forged = encode_dtls_handshake(HT.CLIENT_HELLO, hello, server.reassembler.next_seq + 1)
    server.receive(encode_dtls_record(22, 0xFEFD, 0, 900, forged), CLIENT, NOW)
    assert server.datagrams_to_send() == []  # buffered, ahead of the Finished
    while driver.to_server:  # the rest of the client's flight: its Finished
        server.receive(driver.to_server.popleft(), CLIENT, NOW)
    assert server.state_name == "Established" and not server.closed
    sent = alerts_in(server.datagrams_to_send(), driver.pair.client)
    assert sent == [AlertDescription.no_renegotiation]
