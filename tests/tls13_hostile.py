"""TLS 1.3 under hostile input, the machinery: deterministic in-memory handshakes between
our client and server (`HANDSHAKES`: plain, with a HelloRetryRequest, with client
certificates, resumed, with post-handshake authentication, with compressed certificates,
with an external PSK in either mode, with raw public keys, by certificate fingerprints) and
one per key exchange group (with and without a HelloRetryRequest), replayed record by record
to any point (`at_state`); `inject` makes a record as the peer would send it then, `feed`
delivers data and checks the contract for network input (success, a `ProtocolError` with the
connection closed, or `AlertReceived`). Used by tests/test_tls13_fuzz.py and by the atheris
target fuzz/fuzz_tls13.py (so it imports no pytest).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from helpers import (
    NOW,
    PSK,
    PSK_ID,
    client_config,
    credentials,
    identity_fingerprint,
    identity_key,
    server_config,
)

from dtlsgate.config import PSK_DHE_KE, PSK_KE
from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.crypto.certs import (
    load_certificate_chain,
    load_identity,
    load_private_key,
    spki_of,
)
from dtlsgate.crypto.provider import DeterministicProvider
from dtlsgate.errors import AlertReceived, ProtocolError
from dtlsgate.events import SessionTicketReceived
from dtlsgate.wire.enums import NamedGroup

DatagramPair = tuple[ClientConnection, ServerConnection]


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


def plain() -> DatagramPair:
    return (
        ClientConnection(client_config(provider=DeterministicProvider(1))),
        ServerConnection(server_config(provider=DeterministicProvider(2))),
    )


def hello_retry() -> DatagramPair:
    cfg = client_config(
        provider=DeterministicProvider(1), groups=(NamedGroup.secp384r1, NamedGroup.x25519)
    )
    return ClientConnection(cfg), ServerConnection(server_config(provider=DeterministicProvider(2)))


def client_auth() -> DatagramPair:
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


class AskingServer(ServerConnection):
    """A server that asks for the client's certificate (post-handshake authentication, RFC
    8446 §4.6.2) as soon as its handshake completes: the scenario drives the states it
    enters through the API like any other."""

    asked = False

    def receive_data(self, data: bytes, now: float) -> None:
        super().receive_data(data, now)
        if self.handshake_complete and not self.asked and not self.closed:
            self.asked = True
            self.request_client_certificate()


def post_handshake_auth() -> DatagramPair:
    ident = load_identity(*credentials("ed25519"))
    ccfg = client_config(
        provider=DeterministicProvider(1),
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        post_handshake_auth=True,
    )
    scfg = server_config(provider=DeterministicProvider(2), cafile=credentials("ed25519")[0])
    return ClientConnection(ccfg), AskingServer(scfg)


def compressed_certificates() -> DatagramPair:
    """Client certificates, both Certificates sent as zlib CompressedCertificates (RFC 8879)."""
    ident = load_identity(*credentials("ed25519"))
    ccfg = client_config(
        provider=DeterministicProvider(1),
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        certificate_compression=("zlib",),
    )
    scfg = server_config(
        provider=DeterministicProvider(2),
        verify_client="required",
        cafile=credentials("ed25519")[0],
        certificate_compression=("zlib",),
    )
    return ClientConnection(ccfg), ServerConnection(scfg)


def resumed() -> DatagramPair:
    # The ticket's key comes from the server's deterministic provider: same seed, same key.
    ccfg = client_config(provider=DeterministicProvider(1), session_ticket=resumption_ticket())
    return ClientConnection(ccfg), ServerConnection(
        server_config(provider=DeterministicProvider(2))
    )


def external_psk(modes: tuple[int, ...]) -> Callable[[], DatagramPair]:
    """An external PSK (RFC 8446 §4.2.11) and no certificate anywhere: a server that
    accepts psk_ke and psk_dhe_ke, a client offering ``modes`` (the server takes the
    client's first)."""

    def make() -> DatagramPair:
        ccfg = client_config(
            provider=DeterministicProvider(1), psk=PSK, psk_identity=PSK_ID, psk_modes=modes
        )
        scfg = server_config(
            None,
            provider=DeterministicProvider(2),
            psk={PSK_ID: PSK},
            psk_modes=(PSK_KE, PSK_DHE_KE),
        )
        return ClientConnection(ccfg), ServerConnection(scfg)

    return make


def raw_public_keys() -> DatagramPair:
    """Raw public keys (RFC 7250) both ways, each pinned by the other end: the
    certificate_type extensions, Certificates holding a SubjectPublicKeyInfo."""
    server_key, client_key = identity_key(), identity_key("client")
    ccfg = client_config(
        provider=DeterministicProvider(1),
        cafile=None,
        server_name=None,
        private_key=client_key,
        raw_public_key=True,
        pinned_keys=(spki_of(server_key),),
    )
    scfg = server_config(
        None,
        provider=DeterministicProvider(2),
        private_key=server_key,
        raw_public_key=True,
        verify_client="required",
        pinned_keys=(spki_of(client_key),),
    )
    return ClientConnection(ccfg), ServerConnection(scfg)


def fingerprint_client_auth() -> DatagramPair:
    """Self-signed certificates both ways, each end checking the other's by its
    fingerprint alone (RFC 8122, as WebRTC does): no cafile, no server name."""
    client_cert, client_key = credentials("ecdsa-p256", "client")
    ccfg = client_config(
        provider=DeterministicProvider(1),
        cafile=None,
        server_name=None,
        certificate_chain=load_certificate_chain(client_cert),
        private_key=load_private_key(client_key),
        certificate_fingerprints=(identity_fingerprint(),),
    )
    scfg = server_config(
        provider=DeterministicProvider(2),
        verify_client="required",
        certificate_fingerprints=(identity_fingerprint("client"),),
    )
    return ClientConnection(ccfg), ServerConnection(scfg)


def one_group(group: NamedGroup) -> Callable[[], DatagramPair]:
    """A client offering only ``group`` (and its share) to a server with the defaults."""

    def make() -> DatagramPair:
        cfg = client_config(provider=DeterministicProvider(1), groups=(group,))
        server = ServerConnection(server_config(provider=DeterministicProvider(2)))
        return ClientConnection(cfg), server

    return make


def retry_to(group: NamedGroup) -> Callable[[], DatagramPair]:
    """A client sending an X25519 share to a server that accepts only ``group``: a
    HelloRetryRequest for ``group``, then its share in ClientHello2."""

    def make() -> DatagramPair:
        cfg = client_config(provider=DeterministicProvider(1), groups=(NamedGroup.x25519, group))
        scfg = server_config(provider=DeterministicProvider(2), groups=(group,))
        return ClientConnection(cfg), ServerConnection(scfg)

    return make


#: Whole handshakes, fuzzed at every state. "plain" uses the default groups: X25519MLKEM768.
HANDSHAKES: dict[str, Callable[[], DatagramPair]] = {
    "plain": plain,
    "hello_retry": hello_retry,
    "client_auth": client_auth,
    "resumed": resumed,
    "post_handshake_auth": post_handshake_auth,
    "compressed_certificates": compressed_certificates,
    "psk_dhe_ke": external_psk((PSK_DHE_KE,)),
    "psk_ke": external_psk((PSK_KE,)),
    "raw_public_keys": raw_public_keys,
    "fingerprint_client_auth": fingerprint_client_auth,
}
#: One handshake per other group, for the key shares: fuzzed in the hellos.
GROUP_HANDSHAKES: dict[str, Callable[[], DatagramPair]] = {
    **{
        f"group_{g.name}": one_group(g)
        for g in (
            NamedGroup.x448,
            NamedGroup.secp521r1,
            NamedGroup.ffdhe2048,
            NamedGroup.SecP256r1MLKEM768,
            NamedGroup.SecP384r1MLKEM1024,
            NamedGroup.MLKEM768,
            NamedGroup.MLKEM1024,
        )
    },
    "hrr_ffdhe2048": retry_to(NamedGroup.ffdhe2048),
    "hrr_X25519MLKEM768": retry_to(NamedGroup.X25519MLKEM768),
}
SCENARIOS: dict[str, Callable[[], DatagramPair]] = {**HANDSHAKES, **GROUP_HANDSHAKES}


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


def inject(conn: TlsConnection, content_type: int, payload: bytes) -> bytes:
    """A record as the peer would send it now: protected with a copy of the key the
    connection reads with (so the connection's own sequence number lines up)."""
    reader = conn.record_layer.read
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
