"""DTLS 1.2 under hostile input, the machinery: an in-memory client/server pair driven one
datagram at a time (`Driver`), the configurations it is fuzzed in, and `deliver()`,
which feeds one datagram to one side and checks the contract for network input: a silent
drop (with every buffer within its limit), a `ProtocolError` whose alert was sent, or
`AlertReceived`; never another exception. Used by tests/test_dtls12_fuzz.py and by the
atheris target fuzz/fuzz_dtls12.py (so it imports no pytest).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from helpers import (
    CLIENT,
    NOW,
    PSK,
    PSK_ID,
    SERVER,
    alerts_in,
    client_config,
    identity_credentials,
    identity_fingerprint,
    identity_key,
    make_pair,
    server_config,
)

from dtlsgate.config import ServerConfig
from dtlsgate.connection.datagram import MAX_EARLY_RECORDS, DtlsConnection
from dtlsgate.connection.flight import (
    MAX_BUFFERED_BYTES,
    MAX_FRAGMENTS_PER_MESSAGE,
    MAX_HANDSHAKE_MESSAGE_LENGTH,
    MAX_MESSAGES_AHEAD,
)
from dtlsgate.crypto.certs import (
    load_certificate_chain,
    load_private_key,
    spki_of,
)
from dtlsgate.errors import AlertReceived, ProtocolError, UnexpectedMessage
from dtlsgate.events import SessionTicketReceived
from dtlsgate.wire.enums import (
    AlertDescription,
    CipherSuite,
    ContentType,
    HandshakeType,
    SrtpProtectionProfile,
)
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.record import encode_dtls_record, split_dtls_records

DTLS12 = 0xFEFD
MTU = 256
# Handshake types injected in every state: all DTLS 1.2 ones, TLS 1.3-only ones and two
# that exist nowhere.
INJECTED_TYPES = (*(int(t) for t in HandshakeType), 7, 99, 255)
SRTP_PROFILES = (
    SrtpProtectionProfile.SRTP_AEAD_AES_128_GCM,
    SrtpProtectionProfile.SRTP_AES128_CM_HMAC_SHA1_80,
)

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
    # The abbreviated handshake (RFC 5246 §7.3) resuming a session from a ticket.
    "resumed": (
        lambda: server_config(mtu=MTU),
        lambda: client_config(mtu=MTU, session_ticket=_session()),
    ),
    # The same by session ID, from the server's session cache (no tickets): each server
    # gets a cache of its own holding the session, so no run changes what the next finds.
    "resumed-session-id": (
        lambda: _session_id_server(),
        lambda: client_config(mtu=MTU, session_ticket=_cached_session()[0]),
    ),
    # "psk" gets an ECDHE_PSK suite (RFC 5489), the server's first choice; this one the
    # plain PSK key exchange (RFC 4279 §2) with AES-128-CCM-8, CoAP's suite (RFC 7252
    # §9.1.3.1): a ServerKeyExchange holding only the hint, other record protection.
    "psk-ccm8": (
        lambda: server_config(None, psk={PSK_ID: PSK}, psk_identity_hint=b"hint", mtu=MTU),
        lambda: client_config(
            psk=PSK,
            psk_identity=PSK_ID,
            cipher_suites=(CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,),
            mtu=MTU,
        ),
    ),
    # Raw public keys (RFC 7250) both ways, each pinned by the other end: server and client
    # certificate_type extensions, Certificates holding a SubjectPublicKeyInfo.
    "raw-public-keys": (
        lambda: server_config(
            None,
            mtu=MTU,
            private_key=identity_key(),
            raw_public_key=True,
            verify_client="required",
            pinned_keys=(spki_of(identity_key("client")),),
        ),
        lambda: client_config(
            mtu=MTU,
            cafile=None,
            server_name=None,
            private_key=identity_key("client"),
            raw_public_key=True,
            pinned_keys=(spki_of(identity_key()),),
        ),
    ),
    # Self-signed certificates both ways, each end checking the other's by its fingerprint
    # alone (RFC 8122, as WebRTC does): no cafile, no server name; no tickets either, so
    # the client waits for the server's Finished right after its flight.
    "fingerprint-client-auth": (
        lambda: server_config(
            mtu=MTU,
            verify_client="required",
            certificate_fingerprints=(identity_fingerprint("client"),),
            session_tickets=0,
        ),
        lambda: client_config(
            mtu=MTU,
            cafile=None,
            server_name=None,
            certificate_fingerprints=(identity_fingerprint(),),
            **_client_credentials("client"),
        ),
    ),
    # DTLS-SRTP (RFC 5764): use_srtp offered and answered with the server's preference.
    "srtp": (
        lambda: server_config(mtu=MTU, srtp_profiles=SRTP_PROFILES),
        lambda: client_config(mtu=MTU, srtp_profiles=SRTP_PROFILES[::-1]),
    ),
}


def _session() -> Any:
    """The session (with its ticket) of a full "ecdsa" handshake, made once."""
    global _SESSION
    if _SESSION is None:
        driver = Driver(CONFIGS["ecdsa"])
        driver.finish()
        tickets = [e for e in driver.pair.client_events if isinstance(e, SessionTicketReceived)]
        _SESSION = tickets[0].ticket
    return _SESSION


_SESSION: Any = None


@cache
def _cached_session() -> tuple[Any, bytes]:
    """The session of a full "ecdsa" handshake with a server that sends no tickets (its
    session ID), and the state that server cached under it."""
    server = server_config(mtu=MTU, session_tickets=0)
    driver = Driver((lambda: server, lambda: client_config(mtu=MTU)))
    assert driver.finish()
    (session,) = [
        e.ticket for e in driver.pair.client_events if isinstance(e, SessionTicketReceived)
    ]
    assert server.session_cache is not None
    state = server.session_cache.get(session.session_id, NOW)
    assert state is not None and not session.ticket
    return session, state


def _session_id_server() -> ServerConfig:
    """A server without tickets whose session cache (its own) holds that session."""
    session, state = _cached_session()
    config = server_config(mtu=MTU, session_tickets=0)
    assert config.session_cache is not None
    config.session_cache.put(session.session_id, state, NOW)
    return config


def _cert_pem() -> str:
    return identity_credentials()[0].decode()


def _client_credentials(name: str | None = None) -> dict[str, Any]:
    cert, key = identity_credentials(name)
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


def by_record(datagrams: Iterable[bytes]) -> list[bytes]:
    """Each record of ``datagrams`` as a datagram of its own."""
    out = []
    for d in datagrams:
        for r in split_dtls_records(d):
            out.append(
                encode_dtls_record(
                    r.content_type, r.version, r.epoch, r.sequence_number, r.fragment
                )
            )
    return out


class RecordDriver(Driver):
    """`Driver`, delivering one record per step: with flights unfragmented (the default
    MTU) that is one handshake message per step, so every state between two messages is
    reached with nothing of the next message buffered (at a small MTU, one fragment)."""

    def _collect(self) -> None:
        self.to_server.extend(by_record(d for d, _ in self.pair.client.datagrams_to_send()))
        if self.pair.server is not None:
            self.to_client.extend(by_record(d for d, _ in self.pair.server.datagrams_to_send()))


def states_passed(config: Config) -> list[tuple[str, str]]:
    """(side, state name) for each point of a `RecordDriver` run of ``config``, in order,
    from the start to the end: the states each side is in between two records."""
    driver = RecordDriver(config)
    out = []
    while True:
        for side in ("server", "client"):
            conn, _ = driver.side(side)
            if conn is not None:
                out.append((side, conn.state_name))
        if not driver.step():
            return out


def full_run(config: Config, driver_class: type[Driver] = Driver) -> Driver:
    driver = driver_class(config)
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
