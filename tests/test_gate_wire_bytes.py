"""The gates' replies byte for byte: HelloVerifyRequests (DTLS 1.2) and HelloRetryRequests
(TLS 1.3) for a fixed set of ClientHellos, peers and times, from a fixed cookie master key
and the deterministic provider, against the bytes recorded in tests/data/gate_wire_bytes.json.
A restructured gate must answer exactly as before; `python tests/test_gate_wire_bytes.py
--write` records them anew (only for a change of the wire that is meant)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from builders import client_hello, datagram, with_cookie
from conftest import load_hex
from helpers import client_config, server_config

from dtlsgate.config import ServerConfig
from dtlsgate.connection.stream import ClientConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.gate import Admit, Gate, Reply
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.wire.handshake import encode_dtls_handshake_fragment
from dtlsgate.wire.record import encode_dtls_record

RECORDED = Path(__file__).parent / "data" / "gate_wire_bytes.json"
MASTER = bytes(range(32))
PEERS = [("192.0.2.1", 5684), ("2001:db8::1", 5684, 0, 0), None, b"raw"]
TIMES = [1_800_000_000.0, 1_800_000_000.75, 1_800_000_301.2]


def dtls_hellos() -> dict[str, bytes]:
    hellos = {
        "openssl": load_hex("openssl_dtls12_client_hello.hex"),
        "gnutls": load_hex("gnutls_dtls12_client_hello.hex"),
        "plain": datagram(client_hello()),
        "no-extensions": datagram(client_hello(extensions=None), record_seq=7),
        "session-id": datagram(client_hello(session_id=b"\x07" * 32), record_seq=0x0102030405),
        "suites": datagram(client_hello(suites=tuple(range(1, 90)))),
    }
    body = client_hello().encode()
    fragment = encode_dtls_handshake_fragment(1, body[:60], 0, 0, len(body))
    hellos["first-fragment"] = encode_dtls_record(22, 0xFEFD, 0, 3, fragment)
    return hellos


def dtls_outputs() -> dict[str, str]:
    out: dict[str, str] = {}
    callbacks = ServerConfig(
        cookie_generate=lambda peer: b"app:" + repr(peer).encode()[:20],
        cookie_verify=lambda peer, cookie: cookie == b"app:" + repr(peer).encode()[:20],
    )
    for kind, config in (("jar", ServerConfig(cookie_jar=CookieJar(MASTER))), ("cb", callbacks)):
        gate = Gate(config)
        for name, hello in dtls_hellos().items():
            for p, peer in enumerate(PEERS):
                for t, now in enumerate(TIMES):
                    reply = gate.receive(hello, peer, now)
                    assert isinstance(reply, Reply)
                    out[f"hvr {kind} {name} peer{p} t{t}"] = reply.data.hex()
                    if name == "first-fragment":
                        continue
                    cookie = reply.data[28:]
                    admit = gate.receive(with_cookie(hello, cookie, record_seq=9), peer, now)
                    assert isinstance(admit, Admit)
                    out[f"admit {kind} {name} peer{p} t{t}"] = admit.client_hello_message.hex()
    return out


def tls13_outputs() -> dict[str, str]:
    out: dict[str, str] = {}
    gate = StatelessGate(server_config(stateless=True, cookie_jar=CookieJar(MASTER)))
    # The groups the default client offered when these bytes were recorded (x25519, P-256,
    # P-384): the default now adds the ML-KEM and FFDHE groups and an X25519MLKEM768 share,
    # which would change every ClientHello and so every cookie, not the gate.
    classic = (29, 23, 24)
    clients = {
        "default": client_config(provider=DeterministicProvider(b"c1"), groups=classic),
        "no-compat": client_config(
            provider=DeterministicProvider(b"c2"), middlebox_compat=False, groups=classic
        ),
        "p256-share": client_config(provider=DeterministicProvider(b"c3"), groups=(23, 29)),
    }
    for name, cfg in clients.items():
        client = ClientConnection(cfg)
        client.start()
        hello = client.data_to_send()
        for p, peer in enumerate(PEERS):
            for t, now in enumerate(TIMES):
                reply = gate.receive(hello, peer, now)
                assert isinstance(reply, Reply), reply
                out[f"hrr {name} peer{p} t{t}"] = reply.data.hex()
    return out


def outputs() -> dict[str, str]:
    return dtls_outputs() | tls13_outputs()


def test_replies_are_the_recorded_bytes() -> None:
    recorded = json.loads(RECORDED.read_text())
    now = outputs()
    assert sorted(now) == sorted(recorded)
    changed = [key for key in recorded if now[key] != recorded[key]]
    assert not changed, f"{len(changed)} replies differ, first: {changed[:3]}"


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    RECORDED.write_text(json.dumps(outputs(), indent=0, sort_keys=True) + "\n")
