"""Key logging (NSS format, ``SSLKEYLOGFILE``), one rule for every protocol and side: a
connection with a key log callback writes a line per secret; one without makes no `KeyLog`
action and no secret that only a line uses (the TLS 1.3 exporter secret). Both are
counted (calls, not time) over whole handshakes through the public connections, with the
contexts shared the way a server shares its gate's: a logging connection must not make a
later quiet one log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from helpers import NOW, calls_to, client_config, make_pair, make_pair13, pump, server_config

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Gate, Reply
from dtlsgate.gate.results import StreamAdmit
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.handshake.engine import KeyLog
from dtlsgate.handshake.tls13 import client as tls13_client
from dtlsgate.handshake.tls13 import server as tls13_server

KeyLogs = tuple[Callable[[str], None] | None, Callable[[str], None] | None]
PEER = ("192.0.2.1", 40000)


def dtls12() -> Callable[[KeyLogs], bool]:
    cfg = server_config()
    gate = Gate(cfg)

    def run(keylogs: KeyLogs) -> bool:
        pair = make_pair(cfg, client_config(), gate=gate, keylogs=keylogs)
        return pair.run() and pair.completed()

    return run


def dtls13(gated: bool) -> Callable[[KeyLogs], bool]:
    cfg = server_config()
    gate = Gate(cfg) if gated else None

    def run(keylogs: KeyLogs) -> bool:
        pair = make_pair13(cfg, client_config(), gate=gate, keylogs=keylogs)
        return pair.run() and pair.completed()

    return run


def tls13() -> Callable[[KeyLogs], bool]:
    server_ctx = tls13_server.ServerContext(server_config())
    client_ctx = tls13_client.ClientContext(client_config())

    def run(keylogs: KeyLogs) -> bool:
        client = ClientConnection(client_ctx.config, context=client_ctx, keylog=keylogs[0])
        server = ServerConnection(server_ctx.config, context=server_ctx, keylog=keylogs[1])
        client.start()
        pump(client, server)
        return client.handshake_complete and server.handshake_complete

    return run


def tls13_stateless() -> Callable[[KeyLogs], bool]:
    gate = StatelessGate(server_config(stateless=True, cookie_jar=CookieJar(bytes(32))))

    def run(keylogs: KeyLogs) -> bool:
        client = ClientConnection(client_config(), keylog=keylogs[0])
        client.start()
        reply = gate.receive(client.data_to_send(), PEER, NOW)
        assert isinstance(reply, Reply)
        client.receive_data(reply.data, NOW)
        admit = gate.receive(client.data_to_send(), PEER, NOW)
        assert isinstance(admit, StreamAdmit)
        server = ServerConnection.from_admit(
            gate.config, admit, NOW, context=gate.context, keylog=keylogs[1]
        )
        pump(client, server)
        return client.handshake_complete and server.handshake_complete

    return run


# (handshake, key log lines per side, whether an exporter secret is made for its line)
HANDSHAKES: dict[str, tuple[Callable[[], Callable[[KeyLogs], bool]], int, bool]] = {
    "dtls12": (dtls12, 1, False),
    "dtls13": (lambda: dtls13(gated=False), 5, True),
    "dtls13-gate": (lambda: dtls13(gated=True), 5, True),
    "tls13": (tls13, 5, True),
    "tls13-stateless": (tls13_stateless, 5, True),
}


@pytest.mark.parametrize("name", list(HANDSHAKES))
def test_only_a_connection_with_a_key_log_makes_key_log_lines(name: str) -> None:
    make, per_side, exporter = HANDSHAKES[name]
    handshake = make()
    # Each combination in turn on the same contexts: a quiet side after a logging one.
    for client_logs, server_logs in [(True, True), (False, False), (True, False), (False, True)]:
        client_lines: list[str] = []
        server_lines: list[str] = []
        keylogs: KeyLogs = (
            client_lines.append if client_logs else None,
            server_lines.append if server_logs else None,
        )
        with calls_to(KeyLog.__init__, KeySchedule.exporter_master_secret) as counts:
            assert handshake(keylogs)
        made, exporters = counts.values()
        sides = client_logs + server_logs
        assert (len(client_lines), len(server_lines)) == (
            per_side * client_logs,
            per_side * server_logs,
        )
        assert made == per_side * sides, (client_logs, server_logs)
        assert exporters == (sides if exporter else 0), (client_logs, server_logs)
        if client_logs and server_logs:
            assert sorted(client_lines) == sorted(server_lines)
