"""Behaviour on the wire, pinned: deterministic DTLS 1.2 and TLS 1.3 handshakes whose every
datagram (DTLS) or byte chunk (TLS) is recorded in ``tests/data/wire_golden.txt``.

Each handshake runs with a seeded `DeterministicProvider` on both sides, a fixed ``now``
and the certificates committed under ``tests/data/golden/`` (generated once; nothing here
generates a key). Only deterministic signatures are used: ECDSA with RFC 6979 nonces,
Ed25519, and RSA PKCS#1 v1.5 (RSA-PSS salts are random). A restructuring of the protocol
code must reproduce the file byte for byte.

The file holds, per case, one line per transmission: the direction, the length and the
SHA-256 of the bytes. To write it afresh after a change that is meant to alter the wire
(a new cookie layout, say), run either of

    DTLSGATE_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/test_wire_golden.py
    .venv/bin/python tests/test_wire_golden.py --regenerate

and commit the new file with the reason in the commit message.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsClientConnection, DtlsServerConnection
from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.events import HandshakeCompleted, SessionTicketReceived
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Admit, Gate, Reply
from dtlsgate.gate.results import StreamAdmit
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.wire.enums import CipherSuite, NamedGroup, SignatureScheme

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "wire_golden.txt"
CERTS = DATA / "golden"
REGENERATE = os.environ.get("DTLSGATE_REGENERATE_GOLDEN") == "1"

NOW = 1_800_000_000.0
CLIENT = ("192.0.2.10", 40000)
SERVER = ("192.0.2.1", 4433)
PSK_ID = b"Client_identity"
PSK = bytes(range(16))
MAX_ROUNDS = 100

Log = list[str]


def pem(name: str) -> bytes:
    return (CERTS / f"{name}.pem").read_bytes()


def cert_only(name: str) -> str:
    text = pem(name).decode()
    return text[: text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")]


def record(log: Log, direction: str, data: bytes) -> None:
    log.append(f"{direction} {len(data)} {hashlib.sha256(data).hexdigest()}")


# ---- DTLS 1.2 ---------------------------------------------------------------------------------


def dtls_server_config(identity: str | None = "server-ecdsa", **kw: Any) -> ServerConfig:
    kw.setdefault("provider", DeterministicProvider(b"golden-server"))
    kw.setdefault("cookie_jar", CookieJar(bytes(32)))
    config = ServerConfig(**kw)
    if identity is not None:
        config.load_cert_chain(pem(identity))
    return config


def dtls_client_config(identity: str | None = "server-ecdsa", **kw: Any) -> ClientConfig:
    kw.setdefault("provider", DeterministicProvider(b"golden-client"))
    if identity is not None:
        kw.setdefault("cafile", cert_only(identity))
        kw.setdefault("server_name", "localhost")
    return ClientConfig(**kw)


def run_dtls12(
    server_cfg: ServerConfig,
    client_cfg: ClientConfig,
    drop: Callable[[str, int], bool] = lambda direction, index: False,
    sessions: list[Any] | None = None,
) -> Log:
    """Drive one handshake and a data exchange; ``drop(direction, index)`` loses the
    index-th datagram sent in that direction. Timers fire when both sides are quiet. The
    client's resumable sessions go to ``sessions``."""
    log: Log = []
    now = NOW
    gate = Gate(server_cfg)
    client = DtlsClientConnection(client_cfg, SERVER)
    server: DtlsServerConnection | None = None
    sent = {"c>s": 0, "s>c": 0}
    done = {"client": False, "server": False, "data": False}

    def lost(direction: str) -> bool:
        index = sent[direction]
        sent[direction] += 1
        return drop(direction, index)

    client.connect(now)
    for _ in range(MAX_ROUNDS):
        c_out = [d for d, _ in client.datagrams_to_send()]
        for d in c_out:
            record(log, "c>s", d)
            if lost("c>s"):
                continue
            if server is None:
                result = gate.receive(d, CLIENT, now)
                if isinstance(result, Reply):
                    record(log, "gate", result.data)
                    client.receive(result.data, SERVER, now)
                elif isinstance(result, Admit):
                    server = DtlsServerConnection(result, server_cfg)
                    server.start(now)
            else:
                server.receive(d, CLIENT, now)
        s_out = [d for d, _ in server.datagrams_to_send()] if server is not None else []
        for d in s_out:
            record(log, "s>c", d)
            if not lost("s>c"):
                client.receive(d, SERVER, now)
        for name, conn in (("client", client), ("server", server)):
            while conn is not None and (event := conn.next_event()) is not None:
                if isinstance(event, HandshakeCompleted):
                    done[name] = True
                    resumed = " resumed" if event.resumed else ""
                    log.append(f"{name} complete suite={event.cipher_suite:#06x}{resumed}")
                elif isinstance(event, SessionTicketReceived) and sessions is not None:
                    sessions.append(event.ticket)
        if done["client"] and done["server"] and not done["data"]:
            done["data"] = True
            assert server is not None
            client.send(b"ping")
            server.send(b"pong")
            continue
        if not c_out and not s_out:
            timers = [t for t in (client.get_timer(), server and server.get_timer()) if t]
            if not timers:
                break
            now = max(now, min(timers))
            log.append(f"timer +{now - NOW:g}")
            client.handle_timer(now)
            if server is not None:
                server.handle_timer(now)
    assert done == {"client": True, "server": True, "data": True}
    return log


def run_dtls12_resumed() -> Log:
    """A full handshake, then the abbreviated one (RFC 5246 §7.3) resuming its ticket."""
    sessions: list[Any] = []
    log = run_dtls12(dtls_server_config(), dtls_client_config(), sessions=sessions)
    (session,) = sessions
    # New seeds: the same ones would draw the same randoms, and so the same keys again.
    server = dtls_server_config(provider=DeterministicProvider(b"golden-server-2"))
    client = dtls_client_config(
        provider=DeterministicProvider(b"golden-client-2"), session_ticket=session
    )
    return log + run_dtls12(server, client)


def dtls12_cases() -> dict[str, Callable[[], Log]]:
    rsa_pkcs1 = (SignatureScheme.rsa_pkcs1_sha256,)
    return {
        "dtls12-ecdsa": lambda: run_dtls12(dtls_server_config(), dtls_client_config()),
        "dtls12-rsa": lambda: run_dtls12(
            dtls_server_config("server-rsa", signature_schemes=rsa_pkcs1),
            dtls_client_config("server-rsa", signature_schemes=rsa_pkcs1),
        ),
        "dtls12-ed25519": lambda: run_dtls12(
            dtls_server_config("server-ed25519"), dtls_client_config("server-ed25519")
        ),
        "dtls12-client-certificate": lambda: run_dtls12(
            dtls_server_config(verify_client="required", cafile=cert_only("client-ecdsa")),
            client_with_certificate(dtls_client_config()),
        ),
        "dtls12-psk": lambda: run_dtls12(
            dtls_server_config(None, psk={PSK_ID: PSK}, psk_identity_hint=b"hint"),
            dtls_client_config(
                None,
                psk_identity=PSK_ID,
                psk=PSK,
                cipher_suites=(CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,),
            ),
        ),
        "dtls12-ecdhe-psk": lambda: run_dtls12(
            dtls_server_config(None, psk={PSK_ID: PSK}),
            dtls_client_config(
                None,
                psk_identity=PSK_ID,
                psk=PSK,
                cipher_suites=(CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256,),
            ),
        ),
        "dtls12-small-mtu": lambda: run_dtls12(
            dtls_server_config("server-rsa", signature_schemes=rsa_pkcs1, mtu=256),
            dtls_client_config("server-rsa", signature_schemes=rsa_pkcs1, mtu=256),
        ),
        # The server's first flight and the client's Finished flight are lost once each:
        # both come again on the retransmission timer (RFC 6347 §4.2.4).
        "dtls12-loss": lambda: run_dtls12(
            dtls_server_config(),
            dtls_client_config(),
            drop=lambda direction, index: (direction, index) in {("s>c", 0), ("c>s", 3)},
        ),
        "dtls12-resumed": run_dtls12_resumed,
    }


def client_with_certificate(config: ClientConfig) -> ClientConfig:
    config.load_cert_chain(pem("client-ecdsa"))
    return config


# ---- TLS 1.3 ----------------------------------------------------------------------------------


def tls_server_config(**kw: Any) -> ServerConfig:
    kw.setdefault("provider", DeterministicProvider(b"golden-tls-server"))
    kw.setdefault("cookie_jar", CookieJar(bytes(range(32))))
    config = ServerConfig(**kw)
    config.load_cert_chain(pem("server-ecdsa"))
    return config


def tls_client_config(**kw: Any) -> ClientConfig:
    kw.setdefault("provider", DeterministicProvider(b"golden-tls-client"))
    # The groups the default client offered when the file was recorded. The default now
    # sends an X25519MLKEM768 share, whose ML-KEM ciphertext cryptography draws at random:
    # no run in another process could repeat those bytes.
    kw.setdefault("groups", (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1))
    kw.setdefault("cafile", cert_only("server-ecdsa"))
    kw.setdefault("server_name", "localhost")
    return ClientConfig(**kw)


def pump_tls(log: Log, client: TlsConnection, server: TlsConnection) -> None:
    for _ in range(MAX_ROUNDS):
        to_server = client.data_to_send()
        if to_server:
            record(log, "c>s", to_server)
            server.receive_data(to_server, NOW)
        to_client = server.data_to_send()
        if to_client:
            record(log, "s>c", to_client)
            client.receive_data(to_client, NOW)
        if not to_server and not to_client:
            return
    raise AssertionError("TLS 1.3 pair still talking")


def finish_tls(log: Log, client: TlsConnection, server: TlsConnection) -> list[Any]:
    pump_tls(log, client, server)
    client.send(b"ping")
    server.send(b"pong")
    pump_tls(log, client, server)
    tickets = []
    for name, conn in (("client", client), ("server", server)):
        while (event := conn.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                log.append(f"{name} complete resumed={event.resumed} hrr={event.hello_retry}")
            elif isinstance(event, SessionTicketReceived):
                tickets.append(event.ticket)
    return tickets


def run_tls13(server_cfg: ServerConfig, client_cfg: ClientConfig) -> tuple[Log, list[Any]]:
    log: Log = []
    client = ClientConnection(client_cfg)
    server = ServerConnection(server_cfg)
    client.start(NOW)
    tickets = finish_tls(log, client, server)
    assert client.handshake_complete and server.handshake_complete
    return log, tickets


def run_tls13_stateless(server_cfg: ServerConfig, client_cfg: ClientConfig) -> Log:
    """ClientHello1 -> the stateless gate's HelloRetryRequest -> ClientHello2 admitted."""
    log: Log = []
    gate = StatelessGate(server_cfg)
    client = ClientConnection(client_cfg)
    client.start(NOW)
    hello1 = client.data_to_send()
    record(log, "c>s", hello1)
    reply = gate.receive(hello1, CLIENT, NOW)
    assert isinstance(reply, Reply)
    record(log, "gate", reply.data)
    client.receive_data(reply.data, NOW)
    hello2 = client.data_to_send()
    record(log, "c>s", hello2)
    admit = gate.receive(hello2, CLIENT, NOW)
    assert isinstance(admit, StreamAdmit)
    server = ServerConnection.from_admit(server_cfg, admit, NOW)
    finish_tls(log, client, server)
    assert client.handshake_complete and server.handshake_complete
    return log


def tls13_resumption() -> Log:
    server_cfg = tls_server_config(session_tickets=2)
    first, tickets = run_tls13(server_cfg, tls_client_config())
    assert len(tickets) == 2
    second, _ = run_tls13(
        server_cfg,
        tls_client_config(
            session_ticket=tickets[-1], provider=DeterministicProvider(b"golden-resume")
        ),
    )
    return [*first, "-- resumed --", *second]


def tls13_cases() -> dict[str, Callable[[], Log]]:
    return {
        "tls13-ecdsa": lambda: run_tls13(tls_server_config(), tls_client_config())[0],
        # A first key share the server does not want: a HelloRetryRequest in-connection.
        "tls13-hrr": lambda: run_tls13(
            tls_server_config(),
            tls_client_config(groups=(NamedGroup.secp384r1, NamedGroup.x25519)),
        )[0],
        "tls13-stateless": lambda: run_tls13_stateless(
            tls_server_config(stateless=True), tls_client_config()
        ),
        "tls13-client-certificate": lambda: run_tls13(
            tls_server_config(verify_client="required", cafile=cert_only("client-ecdsa")),
            client_with_certificate(tls_client_config()),
        )[0],
        "tls13-resumption": tls13_resumption,
    }


# ---- the golden file --------------------------------------------------------------------------


def all_cases() -> dict[str, Callable[[], Log]]:
    return {**dtls12_cases(), **tls13_cases()}


def render() -> str:
    lines: list[str] = []
    for name, run in all_cases().items():
        lines.append(f"case {name}")
        lines.extend(run())
    return "\n".join(lines) + "\n"


def load_golden() -> dict[str, list[str]]:
    cases: dict[str, list[str]] = {}
    current: list[str] = []
    for line in GOLDEN.read_text().splitlines():
        if line.startswith("case "):
            current = cases.setdefault(line[5:], [])
        else:
            current.append(line)
    return cases


def test_golden_file_covers_every_case() -> None:
    if REGENERATE:
        GOLDEN.write_text(render())
    assert list(load_golden()) == list(all_cases())


@pytest.mark.parametrize("name", list(all_cases()))
def test_wire_bytes_match_the_golden_file(name: str) -> None:
    if REGENERATE:
        pytest.skip("regenerating")
    assert all_cases()[name]() == load_golden()[name]


def test_a_run_is_deterministic() -> None:
    # The same case twice in one process: nothing depends on state left by the first run
    # (a cache that changed what is sent would show here).
    run = all_cases()["dtls12-client-certificate"]
    assert run() == run()


if __name__ == "__main__":
    if "--regenerate" not in sys.argv[1:]:
        sys.exit("usage: python tests/test_wire_golden.py --regenerate")
    GOLDEN.write_text(render())
    print(f"wrote {GOLDEN}")
