"""DTLS 1.2 under hostile input, the machinery: an in-memory client/server pair driven one
datagram at a time (`Driver`), the three configurations it is fuzzed in, and `deliver()`,
which feeds one datagram to one side and checks the contract for network input: a silent
drop (with every buffer within its limit), a `ProtocolError` whose alert was sent, or
`AlertReceived`; never another exception. Used by tests/test_dtls12_fuzz.py and by the
atheris target fuzz/fuzz_dtls12.py (so it imports no pytest).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from helpers import (
    CLIENT,
    NOW,
    PSK,
    PSK_ID,
    SERVER,
    alerts_in,
    client_config,
    make_pair,
    server_config,
)

from dtlsgate.connection.datagram import MAX_EARLY_RECORDS, DtlsConnection
from dtlsgate.connection.flight import (
    MAX_BUFFERED_BYTES,
    MAX_FRAGMENTS_PER_MESSAGE,
    MAX_HANDSHAKE_MESSAGE_LENGTH,
    MAX_MESSAGES_AHEAD,
)
from dtlsgate.errors import AlertReceived, ProtocolError, UnexpectedMessage
from dtlsgate.wire.enums import AlertDescription, ContentType, HandshakeType
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.record import encode_dtls_record, split_dtls_records

DTLS12 = 0xFEFD
MTU = 256
# Handshake types injected in every state: all DTLS 1.2 ones, TLS 1.3-only ones and two
# that exist nowhere.
INJECTED_TYPES = (*(int(t) for t in HandshakeType), 7, 99, 255)

Config = tuple[Callable[[], Any], Callable[[], Any]]
CONFIGS: dict[str, Config] = {
    "ecdsa": (lambda: server_config(mtu=MTU), lambda: client_config(mtu=MTU)),
    "ecdsa-client-auth": (
        lambda: server_config(mtu=MTU, verify_client="optional", cafile=_cert_pem()),
        lambda: client_config(mtu=MTU, **_client_credentials()),
    ),
    "psk": (
        lambda: server_config(None, psk={PSK_ID: PSK}, psk_identity_hint=b"hint", mtu=MTU),
        lambda: client_config(psk=PSK, psk_identity=PSK_ID, mtu=MTU),
    ),
}


def _cert_pem() -> str:
    from helpers import credentials

    return credentials("ecdsa-p256")[0].decode()


def _client_credentials() -> dict[str, Any]:
    from helpers import credentials

    from dtlsgate.crypto.certs import load_certificate_chain, load_private_key

    cert, key = credentials("ecdsa-p256")
    return {"certificate_chain": load_certificate_chain(cert), "private_key": load_private_key(key)}


class Driver:
    """A client/server pair delivering one datagram per ``step()``; records what each side
    received (``captured``)."""

    def __init__(self, config: Config) -> None:
        self.pair = make_pair(config[0](), config[1]())
        self.to_server: deque[bytes] = deque()
        self.to_client: deque[bytes] = deque()
        self.captured: dict[str, list[bytes]] = {"server": [], "client": []}
        self._collect()

    def _collect(self) -> None:
        self.to_server.extend(d for d, _ in self.pair.client.datagrams_to_send())
        if self.pair.server is not None:
            self.to_client.extend(d for d, _ in self.pair.server.datagrams_to_send())

    def step(self) -> bool:
        if self.to_server:
            d = self.to_server.popleft()
            self.captured["server"].append(d)
            self.pair.to_server([d])
        elif self.to_client:
            d = self.to_client.popleft()
            self.captured["client"].append(d)
            self.pair.client.receive(d, SERVER, self.pair.now)
        else:
            return False
        self._collect()
        return True

    def run(self, steps: int) -> Driver:
        for _ in range(steps):
            if not self.step():
                break
        return self

    def finish(self) -> bool:
        while self.step():
            pass
        self.pair.drain()
        return self.pair.completed()

    def side(self, name: str) -> tuple[DtlsConnection | None, DtlsConnection | None]:
        """(target, its peer) for ``name``."""
        if name == "client":
            return self.pair.client, self.pair.server
        return self.pair.server, self.pair.client


def full_run(config: Config) -> Driver:
    driver = Driver(config)
    assert driver.finish(), "the unperturbed handshake must complete"
    return driver


def plaintext_bodies(datagrams: list[bytes]) -> dict[int, list[bytes]]:
    """Whole handshake message bodies in the epoch-0 records of ``datagrams``, by type."""
    out: dict[int, list[bytes]] = {}
    for d in datagrams:
        for record in split_dtls_records(d):
            f = record.fragment
            if record.epoch != 0 or record.content_type != 22 or len(f) < 12:
                continue
            length = int.from_bytes(f[1:4], "big")
            if f[9:12] == f[1:4] and len(f) == 12 + length:
                out.setdefault(f[0], []).append(f[12:])
    return out


def deliver(
    conn: DtlsConnection,
    peer: DtlsConnection | None,
    datagram: bytes,
    *,
    illegal_type: bool = False,
) -> str:
    """Feed ``datagram``; return "dropped", "protocol-error" or "alert-received". Any other
    exception fails the test. A `ProtocolError` must have queued exactly its own alert;
    ``illegal_type`` (a message the state table does not allow) requires
    unexpected_message."""
    addr = SERVER if conn is not None and conn.peer == SERVER else CLIENT
    conn.datagrams_to_send()  # only what this datagram causes is checked below
    try:
        conn.receive(datagram, addr, NOW)
    except ProtocolError as exc:
        assert conn.closed
        assert alerts_in(conn.datagrams_to_send(), peer) == [exc.alert], exc
        if illegal_type:
            assert isinstance(exc, UnexpectedMessage), exc
            assert exc.alert == AlertDescription.unexpected_message
        return "protocol-error"
    except AlertReceived:
        assert conn.closed
        return "alert-received"
    check_bounds(conn)
    return "dropped"


def check_bounds(conn: DtlsConnection) -> None:
    reassembler = conn.reassembler
    assert reassembler.buffered_bytes() <= MAX_BUFFERED_BYTES
    assert reassembler.messages_held() <= MAX_MESSAGES_AHEAD
    assert reassembler.largest_message() <= MAX_HANDSHAKE_MESSAGE_LENGTH
    assert all(n <= MAX_FRAGMENTS_PER_MESSAGE for n in reassembler.fragment_counts().values())
    assert conn.early_records <= MAX_EARLY_RECORDS


def as_datagram(
    conn: DtlsConnection, peer: DtlsConnection | None, msg_type: int, body: bytes, epoch: int
) -> bytes:
    """The message at ``conn``'s next expected message_seq, in a record of ``epoch``."""
    message = encode_dtls_handshake(msg_type, body, conn.reassembler.next_seq)
    if epoch == 0:
        return encode_dtls_record(22, DTLS12, 0, 1000, message)
    assert peer is not None
    return peer.record_layer.protect(ContentType.HANDSHAKE, message, 1)


def legal_types(conn: DtlsConnection) -> set[int]:
    return set(conn.expected_messages)
