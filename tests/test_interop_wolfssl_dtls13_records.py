"""dtlsgate's DTLS 1.3 record layer against real DTLS 1.3 records: a wolfSSL client
(tests/wolfssl_dtls13_client.py, which tells its traffic secrets) talks to wolfSSL's example
server through a relay that keeps every datagram; the record layer then opens both
directions with keys derived from those secrets.

The AES suites (GCM, CCM, CCM-8) open as they are, with and without connection IDs. The
ChaCha20 suite does not: wolfSSL 5.5.4 reads the mask's block counter in the wrong byte
order (see the last test, which shows that this is the only difference).

What wolfSSL 5.5.4 sends, seen here: DTLSPlaintext for the ClientHellos, the
HelloRetryRequest and the ServerHello; then DTLSCiphertext with the 16-bit sequence number
and the length (first byte 0x2e/0x2f: 001 0 1 1 EE), a CID when one was negotiated, and
ACK records (content type 26) inside the encryption.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import free_udp_port, process, wait_bound, wolfssl_tree

from dtlsgate.crypto.certs import make_self_signed
from dtlsgate.crypto.suites import SUITES
from dtlsgate.record.dtls13 import (
    EPOCH_APPLICATION,
    EPOCH_HANDSHAKE,
    EPOCH_PLAINTEXT,
    Dtls13Record,
    Dtls13RecordLayer,
    EpochKeys,
    RecordDrop,
)
from dtlsgate.wire.enums import CipherSuite, ContentType, ExtensionType, HandshakeType
from dtlsgate.wire.handshake import decode_dtls_handshake_fragments

pytestmark = pytest.mark.interop

CLIENT = Path(__file__).parent / "wolfssl_dtls13_client.py"
MESSAGE = "hello from wolfSSL through ctypes"
REPLY = "I hear you fa shizzle!"
# RFC 8446 §4.1.3: the ServerHello random that makes it a HelloRetryRequest.
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)


class RecordingRelay:
    """Forwards datagrams between one client and ``server_port`` on loopback and keeps each
    as (direction, bytes), direction "c2s" or "s2c"; runs at most ``seconds``."""

    def __init__(self, server_port: int, seconds: float = 30) -> None:
        self.client_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client_side.bind(("127.0.0.1", 0))
        self.port = int(self.client_side.getsockname()[1])
        self.server_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.server_side.connect(("127.0.0.1", server_port))
        self.datagrams: list[tuple[str, bytes]] = []
        self._deadline = time.monotonic() + seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client: tuple[str, int] | None = None
        sockets = [self.client_side, self.server_side]
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            ready, _, _ = select.select(sockets, [], [], 0.1)
            for sock in ready:
                if sock is self.client_side:
                    data, client = sock.recvfrom(65535)
                    self.datagrams.append(("c2s", data))
                    with contextlib.suppress(OSError):  # the server may be gone
                        self.server_side.send(data)
                else:
                    with contextlib.suppress(OSError):
                        data = sock.recv(65535)
                        self.datagrams.append(("s2c", data))
                        if client is not None:
                            self.client_side.sendto(data, client)

    def __enter__(self) -> RecordingRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client_side.close()
        self.server_side.close()


@pytest.fixture(scope="module")
def wolfssl() -> Path:
    return wolfssl_tree()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("wolfssl-dtls13")
    cert_pem, key_pem = make_self_signed("localhost", "ecdsa-p256", days=30)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


@contextlib.contextmanager
def wolfssl_session(
    tree: Path, cert: tuple[Path, Path], suite: str, cid: bytes = b"", server_cid: bytes = b""
) -> Iterator[tuple[dict[str, object], list[tuple[str, bytes]]]]:
    """One wolfSSL-to-wolfSSL DTLS 1.3 session through the relay: the client's JSON report
    (secrets, reply) and the datagrams. ``cid``: what the client asks to receive;
    ``server_cid``: what the server asks to receive (its example takes an ASCII string of at
    most 2 characters)."""
    port = free_udp_port()
    server = ["./examples/server/server", "-u", "-v", "4", "-p", str(port), "-l", suite]
    server += ["-c", str(cert[0]), "-k", str(cert[1]), "-d"]
    if server_cid:
        server += ["--cid", server_cid.decode()]
    with (
        process(
            server, seconds=25, cwd=tree, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as server_process,
        RecordingRelay(port) as relay,
    ):
        # The client retransmits anyway; waiting until the server is bound spares its first
        # timeout (one second, longer under load).
        wait_bound(server_process, port)
        args = [sys.executable, str(CLIENT), str(tree), str(relay.port), str(cert[0]), suite]
        args.append(MESSAGE)
        if cid:
            args.append(cid.hex())
        run = subprocess.run(
            ["timeout", "-s", "KILL", "20", *args],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        # Nothing after the client's exit is checked: the relay recorded each datagram before
        # passing it on, and the server's ACK of the client's Finished precedes its reply.
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-2000:]
    yield json.loads(run.stdout.decode().strip().splitlines()[-1]), list(relay.datagrams)


def layers(
    suite_id: CipherSuite, secrets: dict[str, str], cid: bytes = b"", server_cid: bytes = b""
) -> dict[str, Dtls13RecordLayer]:
    """A receiving record layer per direction, with the handshake and application keys and
    the connection ID each receiver asked for."""
    suite = SUITES[suite_id]
    out = {}
    for direction, sender in (("c2s", "CLIENT"), ("s2c", "SERVER")):
        layer = Dtls13RecordLayer(read_connection_id=cid if direction == "s2c" else server_cid)
        handshake = bytes.fromhex(secrets[f"{sender}_HANDSHAKE_TRAFFIC_SECRET"])
        application = bytes.fromhex(secrets[f"{sender}_TRAFFIC_SECRET"])
        layer.install_read(EPOCH_HANDSHAKE, EpochKeys.from_secret(suite, handshake))
        layer.install_read(EPOCH_APPLICATION, EpochKeys.from_secret(suite, application))
        out[direction] = layer
    return out


def open_all(
    datagrams: list[tuple[str, bytes]], receivers: dict[str, Dtls13RecordLayer]
) -> dict[str, list[Dtls13Record]]:
    opened: dict[str, list[Dtls13Record]] = {"c2s": [], "s2c": []}
    for direction, datagram in datagrams:
        opened[direction] += receivers[direction].receive(datagram)
    return opened


def handshake_types(records: list[Dtls13Record], epoch: int) -> list[int]:
    return [
        header.msg_type
        for r in records
        if r.epoch == epoch and r.content_type == ContentType.HANDSHAKE
        for header, _ in decode_dtls_handshake_fragments(r.fragment)
    ]


def hello_messages(records: list[Dtls13Record], msg_type: int) -> dict[int, bytes]:
    """The bodies of the plaintext (epoch 0) handshake messages of ``msg_type``, by
    message_seq: a retransmission repeats a message with its message_seq (RFC 9147 §5.8) and
    must repeat its bytes (AssertionError otherwise); a message sent anew has the next
    message_seq. Each hello travels whole here (asserted)."""
    bodies: dict[int, bytes] = {}
    for r in records:
        if r.epoch != EPOCH_PLAINTEXT or r.content_type != ContentType.HANDSHAKE:
            continue
        for header, fragment in decode_dtls_handshake_fragments(r.fragment):
            if header.msg_type == msg_type:
                assert header.is_whole, header
                body = fragment[12:]
                assert bodies.setdefault(header.message_seq, body) == body, header
    return bodies


def hello_extensions(msg_type: int, body: bytes) -> tuple[bytes, dict[int, bytes]]:
    """(random, {extension type: extension data}) of a DTLS 1.3 ClientHello or ServerHello
    body, read here rather than by the code under test (RFC 9147 §5.3 and RFC 8446 §4.1.3:
    legacy_version, random, legacy_session_id; the ClientHello's legacy_cookie,
    cipher_suites and legacy_compression_methods, or the ServerHello's cipher_suite and
    legacy_compression_method; then the extensions, which end the body)."""

    def vector(pos: int, size: int) -> tuple[bytes, int]:
        start = pos + size
        end = start + int.from_bytes(body[pos:start], "big")
        assert end <= len(body), (pos, body.hex())
        return body[start:end], end

    random = body[2:34]
    _, pos = vector(34, 1)  # legacy_session_id
    if msg_type == HandshakeType.CLIENT_HELLO:
        for size in (1, 2, 1):  # legacy_cookie, cipher_suites, legacy_compression_methods
            _, pos = vector(pos, size)
    else:
        pos += 3  # cipher_suite, legacy_compression_method
    block, end = vector(pos, 2)
    assert end == len(body), body.hex()
    extensions: dict[int, bytes] = {}
    while block:
        assert len(block) >= 4, block.hex()
        kind, length = int.from_bytes(block[:2], "big"), int.from_bytes(block[2:4], "big")
        assert 4 + length <= len(block) and kind not in extensions, block.hex()
        extensions[kind], block = block[4 : 4 + length], block[4 + length :]
    return random, extensions


def cookie_of(extensions: dict[int, bytes]) -> bytes:
    """The cookie in a cookie extension (RFC 8446 §4.2.2: ``opaque cookie<1..2^16-1>``)."""
    data = extensions[ExtensionType.cookie]
    assert len(data) >= 3 and int.from_bytes(data[:2], "big") == len(data) - 2, data.hex()
    return data[2:]


def check_cookie_exchange(c2s: list[Dtls13Record], s2c: list[Dtls13Record]) -> None:
    """The stateless exchange as it crossed the wire (RFC 9147 §5.1): ClientHello1 without
    a cookie, a HelloRetryRequest carrying one, and ClientHello2 returning exactly that
    cookie; then the real ServerHello. Each message once, retransmissions aside."""
    client_hellos = hello_messages(c2s, HandshakeType.CLIENT_HELLO)
    server_hellos = hello_messages(s2c, HandshakeType.SERVER_HELLO)
    assert sorted(client_hellos) == [0, 1], sorted(client_hellos)
    assert sorted(server_hellos) == [0, 1], sorted(server_hellos)
    _, first = hello_extensions(HandshakeType.CLIENT_HELLO, client_hellos[0])
    retry_random, retry = hello_extensions(HandshakeType.SERVER_HELLO, server_hellos[0])
    _, second = hello_extensions(HandshakeType.CLIENT_HELLO, client_hellos[1])
    server_random, _ = hello_extensions(HandshakeType.SERVER_HELLO, server_hellos[1])
    assert ExtensionType.cookie not in first, sorted(first)
    assert retry_random == HELLO_RETRY_REQUEST_RANDOM
    assert server_random != HELLO_RETRY_REQUEST_RANDOM
    cookie = cookie_of(retry)
    assert cookie_of(second) == cookie
    # ClientHello2 is ClientHello1 answered, not ClientHello1 again.
    assert client_hellos[1] != client_hellos[0]


def app_data(records: list[Dtls13Record]) -> list[bytes]:
    return [r.fragment for r in records if r.content_type == ContentType.APPLICATION_DATA]


@pytest.mark.parametrize(
    ("suite", "suite_id"),
    [
        ("TLS13-AES128-GCM-SHA256", CipherSuite.TLS_AES_128_GCM_SHA256),
        ("TLS13-AES256-GCM-SHA384", CipherSuite.TLS_AES_256_GCM_SHA384),
        ("TLS13-AES128-CCM-SHA256", CipherSuite.TLS_AES_128_CCM_SHA256),
        ("TLS13-AES128-CCM-8-SHA256", CipherSuite.TLS_AES_128_CCM_8_SHA256),
    ],
)
def test_record_layer_opens_a_wolfssl_dtls13_session(
    wolfssl: Path, cert: tuple[Path, Path], suite: str, suite_id: CipherSuite
) -> None:
    with wolfssl_session(wolfssl, cert, suite) as (report, datagrams):
        pass
    assert report.get("reply") == REPLY, report
    receivers = layers(suite_id, report["secrets"])  # type: ignore[arg-type]
    opened = open_all(datagrams, receivers)
    for direction in ("c2s", "s2c"):
        drops = receivers[direction].drops
        # Nothing fails to open; a retransmitted copy may be dropped as a replay.
        assert set(drops) <= {RecordDrop.REPLAY}, (direction, drops)
    c2s, s2c = opened["c2s"], opened["s2c"]
    # The hellos in plaintext: ClientHello1, a HelloRetryRequest with a cookie, ClientHello2
    # with that cookie, ServerHello.
    check_cookie_exchange(c2s, s2c)
    # The server's encrypted flight in epoch 2, the client's Finished in epoch 2.
    server_flight = handshake_types(s2c, EPOCH_HANDSHAKE)
    for msg_type in (
        HandshakeType.ENCRYPTED_EXTENSIONS,
        HandshakeType.CERTIFICATE,
        HandshakeType.CERTIFICATE_VERIFY,
        HandshakeType.FINISHED,
    ):
        assert msg_type in server_flight
    assert HandshakeType.FINISHED in handshake_types(c2s, EPOCH_HANDSHAKE)
    # The application data both ways in epoch 3.
    assert app_data([r for r in c2s if r.epoch == EPOCH_APPLICATION]) == [MESSAGE.encode()]
    assert app_data([r for r in s2c if r.epoch == EPOCH_APPLICATION]) == [REPLY.encode()]
    assert not app_data([r for r in c2s + s2c if r.epoch != EPOCH_APPLICATION])
    # The unified header wolfSSL writes: 16-bit sequence number and a length, no CID.
    protected = [d for _, d in datagrams if d[0] >> 5 == 0b001]
    assert protected and all(d[0] & 0x1C == 0x0C for d in protected)
    # ACKs (RFC 9147 §7) travel encrypted.
    assert any(r.content_type == ContentType.ACK for r in c2s + s2c)


def test_record_layer_opens_a_wolfssl_dtls13_session_with_connection_ids(
    wolfssl: Path, cert: tuple[Path, Path]
) -> None:
    cid, server_cid = b"\xab\xcd", b"sv"
    suite, suite_id = "TLS13-AES128-GCM-SHA256", CipherSuite.TLS_AES_128_GCM_SHA256
    with wolfssl_session(wolfssl, cert, suite, cid, server_cid) as (report, datagrams):
        pass
    assert report.get("reply") == REPLY, report
    protected = [(direction, d) for direction, d in datagrams if d[0] >> 5 == 0b001]
    for direction, expected in (("s2c", cid), ("c2s", server_cid)):
        first_records = [d for way, d in protected if way == direction]
        assert first_records, direction
        assert all(d[0] & 0x10 and d[1:3] == expected for d in first_records), direction
    receivers = layers(suite_id, report["secrets"], cid, server_cid)  # type: ignore[arg-type]
    opened = open_all(datagrams, receivers)
    for direction in ("c2s", "s2c"):
        assert set(receivers[direction].drops) <= {RecordDrop.REPLAY}, receivers[direction].drops
    assert app_data(opened["s2c"]) == [REPLY.encode()]
    assert app_data(opened["c2s"]) == [MESSAGE.encode()]


def remask_big_endian_counter(datagram: bytes, keys: dict[int, EpochKeys]) -> bytes:
    """``datagram`` with each DTLSCiphertext record's sequence number re-masked: the mask
    wolfSSL 5.5.4 applied (ChaCha20 with Ciphertext[0..3] read big-endian) taken off, the
    RFC 9147 one (read little-endian) put on. wolfSSL writes C=0, S=1, L=1 headers."""
    out = bytearray(datagram)
    pos = 0
    while pos < len(out):
        if out[pos] >> 5 != 0b001:  # DTLSPlaintext
            pos += 13 + int.from_bytes(out[pos + 11 : pos + 13], "big")
            continue
        assert out[pos] & 0x1C == 0x0C
        length = int.from_bytes(out[pos + 3 : pos + 5], "big")
        sample = bytes(out[pos + 5 : pos + 21])
        cipher = keys[out[pos] & 0x03].record_number
        wolfssl_mask = cipher.mask(sample[3::-1] + sample[4:])
        rfc_mask = cipher.mask(sample)
        for i in range(2):
            out[pos + 1 + i] ^= wolfssl_mask[i] ^ rfc_mask[i]
        pos += 5 + length
    return bytes(out)


def test_wolfssl_5_5_4_chacha20_record_numbers_read_the_counter_big_endian(
    wolfssl: Path, cert: tuple[Path, Path]
) -> None:
    """wolfSSL 5.5.4 on Linux byte-swaps the ChaCha20 block counter of its record number
    masks: src/dtls13.c reverses it under ``#ifdef BIG_ENDIAN``, which glibc's <endian.h>
    always defines (wolfSSL's own flag is BIG_ENDIAN_ORDER; fixed upstream in 2023, after
    5.5.4). RFC 9147 §4.2.3 passes Ciphertext[0..3] to the RFC 8439 §2.3 block function
    as the counter, serialised little-endian (wolfSSL's comment there says so too, and QUIC's
    identical header protection, RFC 9001 §5.4.4, spells it out). So its ChaCha20 records do
    not open in our layer; re-masked with the little-endian counter, every one opens: the
    counter's byte order is the only difference. (Until the peer is fixed, DTLS 1.3 interop
    with this wolfSSL cannot use TLS_CHACHA20_POLY1305_SHA256.)"""
    suite_name, suite_id = (
        "TLS13-CHACHA20-POLY1305-SHA256",
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    )
    with wolfssl_session(wolfssl, cert, suite_name) as (report, datagrams):
        pass
    assert report.get("reply") == REPLY, report
    secrets: dict[str, str] = report["secrets"]  # type: ignore[assignment]
    protected = sum(1 for _, d in datagrams if d[0] >> 5 == 0b001)
    receivers = layers(suite_id, secrets)
    opened = open_all(datagrams, receivers)
    assert not any(r.epoch != EPOCH_PLAINTEXT for way in opened.values() for r in way)
    failures = sum(receivers[way].drops[RecordDrop.AUTHENTICATION] for way in receivers)
    assert failures >= protected  # at least one record in each protected datagram
    suite = SUITES[suite_id]
    keys = {
        way: {
            EPOCH_HANDSHAKE: EpochKeys.from_secret(
                suite, bytes.fromhex(secrets[f"{side}_HANDSHAKE_TRAFFIC_SECRET"])
            ),
            EPOCH_APPLICATION: EpochKeys.from_secret(
                suite, bytes.fromhex(secrets[f"{side}_TRAFFIC_SECRET"])
            ),
        }
        for way, side in (("c2s", "CLIENT"), ("s2c", "SERVER"))
    }
    remasked = [(way, remask_big_endian_counter(d, keys[way])) for way, d in datagrams]
    receivers = layers(suite_id, secrets)
    opened = open_all(remasked, receivers)
    for direction in ("c2s", "s2c"):
        assert set(receivers[direction].drops) <= {RecordDrop.REPLAY}, receivers[direction].drops
    assert app_data(opened["c2s"]) == [MESSAGE.encode()]
    assert app_data(opened["s2c"]) == [REPLY.encode()]
