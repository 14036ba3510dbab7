"""atheris fuzz target for the TLS 1.3 stateless gate (``SSL_stateless``: HelloRetryRequest
with a cookie, ClientHello2 admitted) and the server connection made from its admission, for
long runs outside ``make test``.

    pip install atheris
    python fuzz/fuzz_tls13_stateless.py /tmp/corpus_stateless -max_total_time=3600

An input is judged by a `StatelessGate` in one of three ways (byte 0):

    0  the rest of the input, as the first bytes of a client's stream (a ClientHello1)
    1  a real client's ClientHello2, carrying the cookie of the gate's real
       HelloRetryRequest, with the rest of the input XORed over it from byte 1's offset
    2  the same ClientHello2 with its cookie extension's body replaced by the rest of the
       input (forged cookies, old formats, truncations)

The gate must answer with `Reply`, `StreamAdmit`, `Drop` (incomplete) or `Refuse`, never
raise; a reply or refusal must be a whole record stream. A `StreamAdmit` continues in
``ServerConnection.from_admit``, which then gets the rest of the real client's handshake:
a `ProtocolError` with the connection closed, or `AlertReceived`, is allowed there, nothing
else. ``tests/test_fuzz_targets.py`` runs ``test_one_input`` over its seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from atheris_main import fuzz
from helpers import NOW, client_config, server_config
from tls13_hostile import feed

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.provider import DeterministicProvider
from dtlsgate.errors import ProtocolError
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Reply
from dtlsgate.gate.results import Drop, Refuse, StreamAdmit
from dtlsgate.gate.stream import StatelessGate

PEER = ("192.0.2.1", 40000)
RAW, XORED, COOKIE = range(3)
GATE = StatelessGate(server_config(stateless=True, cookie_jar=CookieJar(bytes(range(32)))))


def fresh_client() -> tuple[ClientConnection, bytes, bytes]:
    """A client (deterministic: the same bytes every time) that sent its ClientHello1 and
    got the gate's real HelloRetryRequest: it, its ClientHello1 and its ClientHello2."""
    client = ClientConnection(client_config(provider=DeterministicProvider(7)))
    client.start()
    hello1 = client.data_to_send()
    reply = GATE.receive(hello1, PEER, NOW)
    assert isinstance(reply, Reply)
    client.receive_data(reply.data, NOW)
    return client, hello1, client.data_to_send()


def judge(data: bytes) -> object:
    result = GATE.receive(data, PEER, NOW)
    if type(result) not in (Reply, StreamAdmit, Drop, Refuse):
        raise AssertionError(f"the stateless gate returned {result!r}")
    if isinstance(result, Reply | Refuse):
        out = result.data
        at = 0
        while at < len(out):  # whole TLS records, nothing else
            at += 5 + int.from_bytes(out[at + 3 : at + 5], "big")
        if at != len(out):
            raise AssertionError("a reply that is not whole records")
    return result


def with_cookie(hello2: bytes, cookie: bytes) -> bytes:
    """``hello2`` with its cookie extension's body replaced and every length fixed, or
    ``hello2`` itself when the extension is not where a real ClientHello has it."""
    # record(5) handshake(4) version(2) random(32) session_id(1+n) suites(2+n)
    # compression(1+n) extensions(2+n)
    at = 5 + 4 + 2 + 32
    at += 1 + hello2[at]
    at += 2 + int.from_bytes(hello2[at : at + 2], "big")
    at += 1 + hello2[at]
    extensions_at = at
    at += 2
    while at + 4 <= len(hello2):
        kind = int.from_bytes(hello2[at : at + 2], "big")
        length = int.from_bytes(hello2[at + 2 : at + 4], "big")
        if kind == 44:  # cookie: opaque cookie<1..2^16-1>
            body = len(cookie).to_bytes(2, "big") + cookie
            if len(body) > 0xFFFF - 64:
                return hello2
            new = hello2[:at] + (44).to_bytes(2, "big") + len(body).to_bytes(2, "big") + body
            new += hello2[at + 4 + length :]
            grow = len(body) - length
            ext_len = int.from_bytes(hello2[extensions_at : extensions_at + 2], "big") + grow
            msg_len = int.from_bytes(hello2[6:9], "big") + grow
            rec_len = int.from_bytes(hello2[3:5], "big") + grow
            if rec_len > 0xFFFF:
                return hello2
            return (
                new[:3]
                + rec_len.to_bytes(2, "big")
                + new[5:6]
                + msg_len.to_bytes(3, "big")
                + new[9:extensions_at]
                + ext_len.to_bytes(2, "big")
                + new[extensions_at + 2 :]
            )
        at += 4 + length
    return hello2


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, payload = data[0] % 3, data[2:]
    client, _, hello2 = fresh_client()
    if mode == RAW:
        judged = payload
    elif mode == XORED:
        changed = bytearray(hello2)
        start = data[1] % len(changed)
        for i, b in enumerate(payload[: len(changed) - start]):
            changed[start + i] ^= b
        judged = bytes(changed)
    else:
        judged = with_cookie(hello2, payload)
    result = judge(judged)
    if not isinstance(result, StreamAdmit):
        return
    try:
        server = ServerConnection.from_admit(GATE.config, result, NOW)
    except ProtocolError as exc:  # e.g. a key share for a group the cookie did not fix
        assert exc.alert is not None
        return
    # The real client goes on (it sent ``hello2``, whatever reached the gate); both ends
    # keep to the network-input contract.
    for _ in range(4):
        to_client = server.data_to_send()
        if to_client and not client.closed:
            feed(client, to_client)
        to_server = b"" if client.closed else client.data_to_send()
        if not to_server or server.closed:
            return
        feed(server, to_server)


def seeds() -> list[bytes]:
    _, hello1, hello2 = fresh_client()
    return [
        bytes((RAW, 0)) + hello1,
        bytes((RAW, 0)) + hello2,
        bytes((XORED, 0)) + bytes(8),
        bytes((XORED, 200)) + b"\x01",
        bytes((COOKIE, 0)) + b"\x00" * 40,
    ]


def main() -> None:
    fuzz(test_one_input, seeds, warm_up=fresh_client)


if __name__ == "__main__":
    main()
