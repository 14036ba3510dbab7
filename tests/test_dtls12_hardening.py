"""DTLS 1.2 hardening: one test per audit finding, each failing without its fix."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest
from helpers import CLIENT, NOW, SERVER, client_config, data_events, make_pair, server_config

import dtlsgate
from dtlsgate.connection.flight import Reassembler
from dtlsgate.record.dtls12 import REPLAY_WINDOW_SIZE, RecordLayer, ReplayWindow
from dtlsgate.wire.enums import ContentType
from dtlsgate.wire.handshake import DtlsHandshakeHeader, encode_dtls_handshake
from dtlsgate.wire.record import DtlsRecord, encode_dtls_record

DTLS12 = 0xFEFD
TOP_SEQUENCE_NUMBER = (1 << 48) - 1


def _established() -> object:
    pair = make_pair(server_config(), client_config())
    pair.run()
    assert pair.completed()
    return pair


# --- record layer ---------------------------------------------------------------------------


def test_replay_window_jump_to_the_top_sequence_number() -> None:
    """A record numbered 2^48 - 1 after record 5 used to shift the mask by 2^48 bits
    (MemoryError)."""
    window = ReplayWindow()
    window.accept(5)
    window.accept(TOP_SEQUENCE_NUMBER)
    assert window.is_replay(TOP_SEQUENCE_NUMBER)
    assert window.is_replay(5)  # now far below the window
    assert not window.is_replay(TOP_SEQUENCE_NUMBER - REPLAY_WINDOW_SIZE + 1)
    window.accept(TOP_SEQUENCE_NUMBER - 1)
    assert window.is_replay(TOP_SEQUENCE_NUMBER - 1)


def test_plaintext_record_cannot_move_the_epoch0_window() -> None:
    """RFC 6347 §4.1.2.6: only authenticated records update the window. A forged epoch-0
    record numbered 2^48 - 1 used to make every genuine epoch-0 record look like a replay."""
    records = RecordLayer()
    forged = DtlsRecord(ContentType.HANDSHAKE, DTLS12, 0, TOP_SEQUENCE_NUMBER, b"x")
    assert records.open(forged) is not None
    genuine = DtlsRecord(ContentType.HANDSHAKE, DTLS12, 0, 3, b"y")
    assert records.open(genuine) is not None


def test_forged_plaintext_sequence_number_does_not_stall_the_handshake() -> None:
    pair = make_pair(server_config(), client_config())
    forged = encode_dtls_record(21, DTLS12, 0, TOP_SEQUENCE_NUMBER, b"\x01\x63")  # warning
    pair.client.receive(forged, SERVER, NOW)
    pair.run()
    assert pair.completed()


@pytest.mark.parametrize("seen", [0, 5, 63, 64, 1000, TOP_SEQUENCE_NUMBER])
def test_a_window_made_with_a_seen_record_is_the_window_that_accepted_it(seen: int) -> None:
    """``ReplayWindow(seen)`` (a server's epoch-0 window, made with the admitted ClientHello's
    record seen) answers every number as a fresh window that accepted ``seen`` does, and
    goes on the same way."""
    made, accepted = ReplayWindow(seen), ReplayWindow()
    assert accepted.accept(seen)
    numbers = {0, 1, seen, seen + 1, seen + 2, seen - 1, seen - 63, seen - 64, seen + 64}
    numbers = {n for n in numbers if 0 <= n <= TOP_SEQUENCE_NUMBER}
    for n in sorted(numbers):
        assert made.is_replay(n) == accepted.is_replay(n), n
    for n in sorted(numbers):
        assert made.accept(n) == accepted.accept(n), n
    assert [made.is_replay(n) for n in sorted(numbers)] == [
        accepted.is_replay(n) for n in sorted(numbers)
    ]


def test_a_copy_of_the_admitted_client_hello_record_is_dropped_as_a_replay() -> None:
    """RFC 6347 §4.2.1: the server connection counts the ClientHello the gate admitted as
    a record seen; a copy of its datagram (duplicated by the network) is dropped at the
    record layer, not taken for the client retransmitting its flight."""
    pair = make_pair(server_config(), client_config())
    hello: list[bytes] = []
    while pair.server is None:  # ClientHello, HelloVerifyRequest, ClientHello with the cookie
        hello = [d for d, _ in pair.client.datagrams_to_send()]
        pair.to_server(hello)
    flight = pair.server.datagrams_to_send()
    dropped = pair.server.records_dropped
    for d in hello:
        pair.server.receive(d, CLIENT, pair.now)
    assert pair.server.records_dropped == dropped + 1
    assert pair.server.datagrams_to_send() == []
    for d, _ in flight:
        pair.client.receive(d, SERVER, pair.now)
    pair.run()
    assert pair.completed()


# --- connection -------------------------------------------------------------------------------


def test_plaintext_handshake_message_after_the_handshake_is_dropped() -> None:
    """A forged epoch-0 handshake message after the handshake used to reach the state
    machine and close the connection with unexpected_message."""
    pair = _established()
    for conn, addr in ((pair.server, CLIENT), (pair.client, SERVER)):
        assert conn is not None
        seq = conn.reassembler.next_seq
        for msg_type in (1, 0, 11, 20):
            message = encode_dtls_handshake(msg_type, b"", seq)
            conn.receive(encode_dtls_record(22, DTLS12, 0, 77, message), addr, NOW)
        assert not conn.closed
        assert conn.reassembler.next_seq == seq
        assert conn.datagrams_to_send() == []
    pair.client.send(b"still here")
    pair.run()
    assert data_events(pair.server_events) == [b"still here"]


def test_dropped_alert_records_are_counted() -> None:
    """An alert record that is dropped (undecodable, or in plaintext after the handshake,
    where it is forgeable) counts in ``records_dropped`` and changes nothing; an alert that
    is taken (close_notify) does not count."""
    pair = _established()
    server = pair.server
    dropped = server.records_dropped
    for seq, body in ((80, b"\x02"), (81, b"\x02\x28"), (82, b"\x01\x00")):
        server.receive(encode_dtls_record(21, DTLS12, 0, seq, body), CLIENT, NOW)
    assert server.records_dropped == dropped + 3
    assert not server.closed and server.datagrams_to_send() == []
    pair.client.close()
    pair.run()
    assert server.closed
    assert server.records_dropped == dropped + 3


# --- reassembly -------------------------------------------------------------------------------


def _header(
    seq: int, length: int, offset: int, fragment_length: int, msg_type: int = 11
) -> DtlsHandshakeHeader:
    return DtlsHandshakeHeader(msg_type, length, seq, offset, fragment_length)


def _add(reassembler: Reassembler, header: DtlsHandshakeHeader, body: bytes, epoch: int) -> None:
    """A fragment as received: its header, then its bytes."""
    reassembler.add(header, header.encode() + body, epoch)


def _lines_run(call: Callable[[], object]) -> int:
    """How many lines of Python ``call`` runs: a count of work that does not depend on how
    fast or loaded the machine is."""
    count = 0
    package = str(Path(dtlsgate.__file__).parent)

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        nonlocal count
        # Only our package's lines: a garbage collection during the call runs whatever
        # gc.callbacks the test session registered (Hypothesis has one), at random.
        if not frame.f_code.co_filename.startswith(package):
            return None
        if event == "line":
            count += 1
        return trace

    # The tracer in place (coverage.py's, when measuring) is put back afterwards: leaving
    # None would stop the measurement for every later test of the process.
    previous = sys.gettrace()
    gc.disable()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(previous)
        gc.enable()
    return count


def test_gapped_one_byte_fragments_cost_little_once_the_limit_is_reached() -> None:
    """Every fragment past MAX_FRAGMENTS_PER_MESSAGE used to rebuild and sort the whole
    list of pieces (~70 µs each: a 64 KiB datagram of them cost ~0.3 s of CPU). A fragment
    now costs the same few lines of Python whether a message holds 3 pieces or the most
    allowed: the work is counted, not timed."""
    from dtlsgate.connection.flight import (
        MAX_FRAGMENTS_PER_MESSAGE,
        MAX_HANDSHAKE_MESSAGE_LENGTH,
        MAX_MESSAGES_AHEAD,
        Reassembler,
    )

    def filled(pieces: int) -> Reassembler:
        reassembler = Reassembler()
        for i in range(pieces * MAX_MESSAGES_AHEAD):
            seq = i % MAX_MESSAGES_AHEAD
            offset = 2 * (i // MAX_MESSAGES_AHEAD)
            _add(reassembler, _header(seq, MAX_HANDSHAKE_MESSAGE_LENGTH, offset, 1), b"x", 0)
        return reassembler

    length = MAX_HANDSHAKE_MESSAGE_LENGTH
    few, full = filled(3), filled(MAX_FRAGMENTS_PER_MESSAGE + 100)
    assert full.fragments_held() == MAX_MESSAGES_AHEAD * MAX_FRAGMENTS_PER_MESSAGE
    far = 2 * MAX_FRAGMENTS_PER_MESSAGE + 1001  # beyond every piece: a new gapped piece
    for offset in (far, 1, 3):  # refused at the limit / merges two neighbours
        costs = [
            _lines_run(lambda r=r, o=offset: _add(r, _header(0, length, o, 1), b"y", 0))
            for r in (few, full)
        ]
        assert costs[1] <= costs[0] + 8, f"offset {offset}: {costs} lines"
    assert full.fragments_held() <= MAX_MESSAGES_AHEAD * MAX_FRAGMENTS_PER_MESSAGE


def test_fragments_merge_into_one_message() -> None:
    from dtlsgate.connection.flight import Reassembler

    body = bytes(range(100))
    pieces = [(50, 60), (20, 20), (0, 10), (10, 20), (5, 55), (90, 100), (60, 90)]
    reassembler = Reassembler()
    for start, stop in pieces:
        assert reassembler.pop() is None
        header = _header(0, 100, start, stop - start)
        _add(reassembler, header, body[start:stop], 0)
    message = reassembler.pop()
    assert message is not None and message.body == body


def test_plaintext_fragment_does_not_mix_into_a_protected_message() -> None:
    """RFC 6347 §4.1: a message travels in one epoch. A forged epoch-0 fragment used to be
    written into a message whose other fragments came protected in epoch 1."""
    from dtlsgate.connection.flight import Reassembler

    body = bytes(range(20))
    reassembler = Reassembler(5)
    _add(reassembler, _header(5, 20, 0, 10, 20), body[:10], 1)
    _add(reassembler, _header(5, 20, 5, 10, 20), b"X" * 10, 0)
    _add(reassembler, _header(5, 20, 10, 10, 20), body[10:], 1)
    message = reassembler.pop()
    assert message is not None
    assert (message.body, message.epoch) == (body, 1)
    # A plaintext start is replaced by the protected message.
    _add(reassembler, _header(6, 20, 0, 20, 20), b"Y" * 20, 0)
    _add(reassembler, _header(6, 20, 0, 10, 20), body[:10], 1)
    assert reassembler.pop() is None
    _add(reassembler, _header(6, 20, 10, 10, 20), body[10:], 1)
    message = reassembler.pop()
    assert message is not None
    assert (message.body, message.epoch) == (body, 1)


# --- ServerHello, Certificate and ClientHello checks ------------------------------------------


def _client_after_flight(
    messages: list[tuple[int, bytes]], config: object = None
) -> tuple[object, list[int]]:
    """A fresh client (``config``, or `client_config`'s) fed ``messages`` (type, body) in one
    plaintext record, numbered from message_seq 0 (a server without HelloVerifyRequest);
    returns the exception raised (or None) and the alerts the client sent."""
    from helpers import alerts_in

    from dtlsgate.connection.datagram import DtlsClientConnection
    from dtlsgate.errors import ProtocolError

    client = DtlsClientConnection(config or client_config(), SERVER)  # type: ignore[arg-type]
    client.connect(NOW)
    client.datagrams_to_send()
    flight = b"".join(encode_dtls_handshake(t, body, n) for n, (t, body) in enumerate(messages))
    raised: object = None
    try:
        client.receive(encode_dtls_record(22, DTLS12, 0, 0, flight), SERVER, NOW)
    except ProtocolError as exc:
        raised = exc
    return raised, alerts_in(client.datagrams_to_send())


def _server_hello(
    extensions: tuple[object, ...],
    *,
    suite: int = 0xC02B,
    version: int = DTLS12,
    compression: int = 0,
) -> tuple[int, bytes]:
    from dtlsgate.wire.messages import ServerHello

    sh = ServerHello(version, bytes(32), b"", suite, compression, tuple(extensions))  # type: ignore[arg-type]
    return 2, sh.encode()


def _client_after_server_hello(
    extensions: tuple[object, ...],
    *,
    suite: int = 0xC02B,
    version: int = DTLS12,
    compression: int = 0,
    **client_kwargs: object,
) -> tuple[object, list[int]]:
    """A fresh client fed a ServerHello with ``extensions``; returns the exception raised
    (or None) and the alerts the client sent."""
    sh = _server_hello(extensions, suite=suite, version=version, compression=compression)
    return _client_after_flight([sh], client_config(**client_kwargs))


def test_server_hello_extension_bodies_are_checked() -> None:
    """RFC 7627 §5.1, RFC 6066 §3: the server's extended_master_secret and server_name are
    empty; RFC 8422 §5.2: its ec_point_formats contains uncompressed."""
    from dtlsgate.wire.enums import AlertDescription, ExtensionType
    from dtlsgate.wire.extensions import Extension

    E = ExtensionType
    ok = (Extension(E.extended_master_secret, b""), Extension(E.ec_point_formats, b"\x01\x00"))
    raised, alerts = _client_after_server_hello(ok)
    assert raised is None and alerts == []
    cases = [
        (Extension(E.extended_master_secret, b"\x00"), AlertDescription.decode_error),
        (Extension(E.server_name, b"\x00\x00"), AlertDescription.decode_error),
        (Extension(E.ec_point_formats, b"\x01\x01"), AlertDescription.illegal_parameter),
        (Extension(E.ec_point_formats, b"\x02\x00"), AlertDescription.decode_error),
    ]
    for ext, alert in cases:
        raised, alerts = _client_after_server_hello((ext,), server_name="localhost")
        assert raised is not None, ext
        assert alerts == [alert], ext


def test_server_hello_choices_are_checked_against_our_offer() -> None:
    """RFC 6347 §4.2.1 / RFC 5246 §7.4.1.3: the version must be DTLS 1.2; §7.4.1.4: only
    extensions we offered come back; RFC 7627 §5.3: extended_master_secret when we require
    it; RFC 5746 §3.4: renegotiation_info empty on an initial handshake; RFC 7301 §3.2: one
    ALPN protocol, one of ours."""
    from dtlsgate.wire.enums import AlertDescription, ExtensionType
    from dtlsgate.wire.extensions import Extension, encode_alpn

    E, A = ExtensionType, AlertDescription
    ems = Extension(E.extended_master_secret, b"")
    alpn = {"alpn_protocols": (b"coap",)}
    cases: list[tuple[tuple[Extension, ...], dict[str, object], int]] = [
        ((ems,), {"version": 0xFEFF}, A.protocol_version),
        # §7.4.1.3: a suite we did not offer (TLS_RSA_WITH_AES_128_GCM_SHA256), and a
        # compression method other than the null one we offer.
        ((ems,), {"suite": 0x009C}, A.illegal_parameter),
        ((ems,), {"compression": 1}, A.illegal_parameter),
        # ALPN, a ServerHello extension, which this client did not offer.
        (
            (ems, Extension(E.application_layer_protocol_negotiation, encode_alpn((b"h2",)))),
            {},
            A.unsupported_extension,
        ),
        ((), {}, A.handshake_failure),
        ((ems, Extension(E.renegotiation_info, b"\x01\x00")), {}, A.handshake_failure),
        (
            (ems, Extension(E.application_layer_protocol_negotiation, encode_alpn((b"h2",)))),
            alpn,
            A.illegal_parameter,
        ),
        (
            (ems, Extension(E.application_layer_protocol_negotiation, encode_alpn((b"coap",) * 2))),
            alpn,
            A.illegal_parameter,
        ),
    ]
    for extensions, kwargs, alert in cases:
        raised, alerts = _client_after_server_hello(extensions, **kwargs)
        assert raised is not None, (extensions, kwargs)
        assert alerts == [alert], (extensions, kwargs)
    # The same without the fault: accepted.
    raised, alerts = _client_after_server_hello(
        (ems, Extension(E.application_layer_protocol_negotiation, encode_alpn((b"coap",)))), **alpn
    )
    assert raised is None and alerts == []


def test_hello_verify_request_of_another_protocol_is_protocol_version() -> None:
    """RFC 6347 §4.2.1: a HelloVerifyRequest's server_version is a DTLS one ({254, x});
    a TLS 1.2 one is refused with protocol_version."""
    from dtlsgate.wire.enums import AlertDescription
    from dtlsgate.wire.messages import HelloVerifyRequest

    hvr = HelloVerifyRequest(0x0303, b"c" * 20).encode()
    raised, alerts = _client_after_flight([(3, hvr)])
    assert raised is not None and alerts == [AlertDescription.protocol_version]
    raised, alerts = _client_after_flight([(3, HelloVerifyRequest(0xFEFF, b"c" * 20).encode())])
    assert raised is None and alerts == []


def _der(key_type: str) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from helpers import credentials

    from dtlsgate.crypto.certs import load_certificate_chain

    cert = load_certificate_chain(credentials(key_type)[0])[0]
    return cert.public_bytes(serialization.Encoding.DER)


def test_server_key_exchange_group_and_scheme_must_be_ones_we_offered() -> None:
    """RFC 8422 §5.4: the server's ECDHE group is one of our supported_groups (§5.1.1);
    RFC 5246 §7.4.3: it signs with one of our signature_algorithms. Either otherwise is
    illegal_parameter, before the signature is looked at."""
    from dtlsgate.wire.enums import AlertDescription, ExtensionType, NamedGroup, SignatureScheme
    from dtlsgate.wire.extensions import Extension
    from dtlsgate.wire.messages12 import (
        Certificate12,
        ecdhe_server_key_exchange,
        encode_ecdh_params,
    )

    G, S = NamedGroup, SignatureScheme
    sh = _server_hello((Extension(ExtensionType.extended_master_secret, b""),))
    certificate = (11, Certificate12((_der("ecdsa-p256"),)).encode())
    ours = {"groups": (G.x25519,), "signature_schemes": (S.ecdsa_secp256r1_sha256,)}
    for group, scheme in (
        (G.secp256r1, S.ecdsa_secp256r1_sha256),
        (G.x25519, S.ecdsa_secp384r1_sha384),
    ):
        point = bytes(32) if group == G.x25519 else b"\x04" + bytes(64)
        params = encode_ecdh_params(group, point)
        ske = (12, ecdhe_server_key_exchange(params, scheme, bytes(70)))
        raised, alerts = _client_after_flight([sh, certificate, ske], client_config(**ours))
        assert raised is not None, (group, scheme)
        assert alerts == [AlertDescription.illegal_parameter], (group, scheme)
    # Both ours: the signature is what is checked next (and these zeros do not verify).
    params = encode_ecdh_params(G.x25519, bytes(32))
    ske = (12, ecdhe_server_key_exchange(params, S.ecdsa_secp256r1_sha256, bytes(70)))
    raised, alerts = _client_after_flight([sh, certificate, ske], client_config(**ours))
    assert alerts == [AlertDescription.decrypt_error]


def test_x509_certificate_to_a_client_that_pins_raw_keys_only_is_unsupported() -> None:
    """RFC 7250 §4.2: a client with pinned raw public keys and no trust anchors offers only
    RawPublicKey; a server that answers with no server_certificate_type (X.509) and sends
    an X.509 certificate gets unsupported_certificate."""
    from test_raw_public_keys import rpk_client

    from dtlsgate.wire.enums import AlertDescription, ExtensionType
    from dtlsgate.wire.extensions import Extension
    from dtlsgate.wire.messages12 import Certificate12

    sh = _server_hello((Extension(ExtensionType.extended_master_secret, b""),))
    certificate = (11, Certificate12((_der("ecdsa-p256"),)).encode())
    raised, alerts = _client_after_flight([sh, certificate], rpk_client())
    assert raised is not None
    assert alerts == [AlertDescription.unsupported_certificate]


def test_certificate_with_a_key_cryptography_cannot_load_is_unsupported_certificate() -> None:
    """A certificate that parses but whose key is of an elliptic curve ``cryptography``
    does not know (the P-256 OID's last arc changed, 1.2.840.10045.3.1.9) is refused with
    unsupported_certificate, not an exception from ``public_key()``."""
    from dtlsgate.wire.enums import AlertDescription, ExtensionType
    from dtlsgate.wire.extensions import Extension
    from dtlsgate.wire.messages12 import Certificate12

    der = _der("ecdsa-p256")
    p256 = bytes.fromhex("06082a8648ce3d030107")  # OBJECT IDENTIFIER prime256v1
    assert der.count(p256) == 1
    unknown_curve = der.replace(p256, p256[:-1] + b"\x09")
    sh = _server_hello((Extension(ExtensionType.extended_master_secret, b""),))
    certificate = (11, Certificate12((unknown_curve,)).encode())
    raised, alerts = _client_after_flight([sh, certificate], client_config(insecure=True))
    assert raised is not None
    assert alerts == [AlertDescription.unsupported_certificate]


def test_server_certificate_key_must_fit_the_suite() -> None:
    """RFC 5246 §7.4.2, RFC 8422 §5.3: an RSA certificate for an ECDHE_ECDSA suite (and an
    ECDSA one for ECDHE_RSA) is refused with unsupported_certificate."""
    from helpers import alerts_in

    from dtlsgate.connection.datagram import DtlsClientConnection
    from dtlsgate.errors import BadCertificate
    from dtlsgate.wire.enums import AlertDescription, ExtensionType
    from dtlsgate.wire.extensions import Extension
    from dtlsgate.wire.messages import ServerHello
    from dtlsgate.wire.messages12 import Certificate12

    for suite, key_type in ((0xC02B, "rsa-2048"), (0xC02F, "ecdsa-p256")):
        client = DtlsClientConnection(client_config(insecure=True), SERVER)
        client.connect(NOW)
        client.datagrams_to_send()
        ems = (Extension(ExtensionType.extended_master_secret, b""),)
        sh = ServerHello(DTLS12, bytes(32), b"", suite, 0, ems).encode()
        certificate = Certificate12((_der(key_type),)).encode()
        flight = encode_dtls_handshake(2, sh, 0) + encode_dtls_handshake(11, certificate, 1)
        try:
            client.receive(encode_dtls_record(22, DTLS12, 0, 0, flight), SERVER, NOW)
        except BadCertificate as exc:
            assert exc.alert == AlertDescription.unsupported_certificate
        else:
            raise AssertionError(f"{key_type} certificate accepted for suite {suite:#06x}")
        assert alerts_in(client.datagrams_to_send()) == [AlertDescription.unsupported_certificate]


def test_client_hello_extension_bodies_are_checked() -> None:
    """RFC 7627 §5.1: extended_master_secret is empty; RFC 8422 §5.1.2: ec_point_formats
    without uncompressed is an illegal_parameter."""
    from builders import client_hello
    from helpers import alerts_in
    from test_dtls12_negative import admit

    from dtlsgate.connection.datagram import DtlsServerConnection
    from dtlsgate.errors import ProtocolError
    from dtlsgate.wire.enums import AlertDescription, ExtensionType
    from dtlsgate.wire.extensions import Extension, encode_u16_list_ext

    E = ExtensionType
    groups = Extension(E.supported_groups, encode_u16_list_ext((29, 23)))
    cases = [
        ((groups, Extension(E.extended_master_secret, b"\x00")), AlertDescription.decode_error),
        (
            (
                groups,
                Extension(E.extended_master_secret, b""),
                Extension(E.ec_point_formats, b"\x01\x01"),
            ),
            AlertDescription.illegal_parameter,
        ),
    ]
    del client_hello
    for extensions, alert in cases:
        config = server_config()
        conn = DtlsServerConnection(admit({"extensions": extensions}, config), config)
        try:
            conn.start(NOW)
        except ProtocolError as exc:
            assert exc.alert == alert
        else:
            raise AssertionError(f"{extensions} accepted")
        assert alerts_in(conn.datagrams_to_send()) == [alert]


def test_half_a_flight_does_not_stop_the_timer_forever() -> None:
    """RFC 6347 §4.2.4: the timer stops when the peer's whole flight arrived. It used to
    stop at the peer's first message, so a client that sent its Certificate and nothing
    more held the server's connection (and an asyncio peer entry) forever."""
    from dtls12_hostile import CONFIGS, Driver

    from dtlsgate.connection.flight import MAX_FLIGHT_TRANSMISSIONS, MAX_RETRANSMIT_TIMEOUT
    from dtlsgate.events import ConnectionClosed

    driver = Driver(CONFIGS["ecdsa-client-auth"])
    while driver.pair.server is None or driver.pair.server.state_name in (
        "ServerWaitClientHello",
        "ServerWaitCertificate",
    ):
        assert driver.step()
    server = driver.pair.server
    # Part of the client's flight arrived (its Finished did not).
    assert not server.handshake_complete
    now = NOW
    for _ in range(MAX_FLIGHT_TRANSMISSIONS):
        deadline = server.get_timer()
        assert deadline is not None
        now = deadline
        server.handle_timer(now)
    assert server.closed
    assert now - NOW <= MAX_FLIGHT_TRANSMISSIONS * MAX_RETRANSMIT_TIMEOUT
    events = []
    while (event := server.next_event()) is not None:
        events.append(event)
    assert [e for e in events if isinstance(e, ConnectionClosed)] == [
        ConnectionClosed(None, "handshake timed out")
    ]


def test_timers_stop_once_both_sides_completed() -> None:
    pair = _established()
    assert pair.server.get_timer() is None  # type: ignore[attr-defined]
    assert pair.client.get_timer() is None  # type: ignore[attr-defined]


# --- adapters -----------------------------------------------------------------------------


LOCAL_PEER = ("127.0.0.1", 9)  # the discard port: what the server sends goes nowhere


def _listener_and_admit() -> tuple[object, object]:
    import socket

    from builders import client_hello, datagram, with_cookie

    from dtlsgate.gate.datagram import Admit, Gate, Reply
    from dtlsgate.io.listener import Listener

    config = server_config()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    gate = Gate(config)
    first = datagram(client_hello())
    reply = gate.receive(first, LOCAL_PEER, NOW)
    assert isinstance(reply, Reply)
    result = gate.receive(with_cookie(first, reply.data[-21:]), LOCAL_PEER, NOW)
    assert isinstance(result, Admit)
    return Listener(sock, config, clock=lambda: NOW), result


def test_blocking_inbox_is_bounded() -> None:
    """Datagrams the listener routes to a DtlsSocket that is not reading used to pile up
    without limit."""
    from dtlsgate.io.blocking import MAX_INBOX_DATAGRAMS

    listener, admitted = _listener_and_admit()
    dtls = listener.accept(LOCAL_PEER, admitted, timeout=None)  # type: ignore[attr-defined]
    try:
        for i in range(10 * MAX_INBOX_DATAGRAMS):
            dtls._feed(i.to_bytes(4, "big"), LOCAL_PEER)
        assert len(dtls._inbox) == MAX_INBOX_DATAGRAMS
    finally:
        dtls.close()
        listener.sock.close()  # type: ignore[attr-defined]


def test_undrained_application_data_is_bounded() -> None:
    """A sans-I/O caller that never calls next_event() used to make the connection queue
    every record received; beyond MAX_QUEUED_DATA new data is dropped and counted, and
    draining makes room again."""
    from dtlsgate.connection.datagram import MAX_QUEUED_DATA
    from dtlsgate.events import DataReceived

    pair = _established()
    client, server = pair.client, pair.server  # type: ignore[attr-defined]
    for i in range(MAX_QUEUED_DATA + 50):
        client.send(i.to_bytes(4, "big"))
    for d, _ in client.datagrams_to_send():
        server.receive(d, CLIENT, NOW)
    assert server.data_dropped == 50
    got = []
    while (event := server.next_event()) is not None:
        assert isinstance(event, DataReceived)
        got.append(int.from_bytes(event.data, "big"))
    assert got == list(range(MAX_QUEUED_DATA))  # the oldest kept, in order
    client.send(b"after draining")
    for d, _ in client.datagrams_to_send():
        server.receive(d, CLIENT, NOW)
    assert server.next_event() == DataReceived(b"after draining")
    assert server.data_dropped == 50


def test_accept_misuse_raises_usage_error() -> None:
    import pytest

    from dtlsgate.errors import UsageError

    listener, admitted = _listener_and_admit()
    try:
        with pytest.raises(UsageError, match="not"):
            listener.accept(("192.0.2.99", 1), admitted, timeout=None)  # type: ignore[attr-defined]
        assert listener._routes == {}  # type: ignore[attr-defined]
        with pytest.raises(UsageError, match="timeout"):
            listener.accept(LOCAL_PEER, admitted, timeout=0)  # type: ignore[attr-defined]
        dtls = listener.accept(LOCAL_PEER, admitted, timeout=None)  # type: ignore[attr-defined]
        with pytest.raises(UsageError, match="already accepted"):
            listener.accept(LOCAL_PEER, admitted, timeout=None)  # type: ignore[attr-defined]
        assert listener._routes[LOCAL_PEER] is dtls  # type: ignore[attr-defined]
        dtls.close()
    finally:
        listener.sock.close()  # type: ignore[attr-defined]


def test_aio_keeps_no_state_for_100k_spoofed_peers() -> None:
    """Post-gate garbage (records of later epochs, handshake fragments, random bytes) from
    100,000 distinct addresses: no peer entry, no task, nothing sent."""
    import asyncio
    import random

    from dtlsgate.io import aio

    async def main() -> None:
        sent: list[object] = []
        server = await aio.serve(lambda s: asyncio.sleep(0), "127.0.0.1", 0, server_config())
        server.sendto = lambda data, peer: sent.append(peer)  # type: ignore[method-assign]
        rng = random.Random(7)
        kinds = [
            encode_dtls_record(23, DTLS12, 1, 5, rng.randbytes(40)),
            encode_dtls_record(22, DTLS12, 1, 9, rng.randbytes(60)),
            encode_dtls_record(22, DTLS12, 0, 3, encode_dtls_handshake(16, b"\x01x", 2)),
            encode_dtls_record(21, DTLS12, 0, 3, b"\x02\x28"),
            rng.randbytes(30),
        ]
        try:
            for i in range(100_000):
                peer = (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 1024 + i % 50_000)
                server.handle(kinds[i % len(kinds)], peer)
            assert server.peers == {}
            assert server._tasks == set()
            assert sent == []
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_records_past_the_undrained_bound_are_dropped_and_counted() -> None:
    """A caller that does not take its events holds at most MAX_QUEUED_DATA records; the
    records past it are dropped (``data_dropped``), the close still comes."""
    from dtlsgate.connection.base import MAX_QUEUED_DATA
    from dtlsgate.events import ConnectionClosed, DataReceived

    pair = make_pair(server_config(), client_config())
    assert pair.run() and pair.completed()
    server = pair.server
    for i in range(MAX_QUEUED_DATA + 3):
        pair.client.send(b"%d" % i)
        for datagram, _ in pair.client.datagrams_to_send():
            server.receive(datagram, CLIENT, NOW)
    pair.client.close()
    for datagram, _ in pair.client.datagrams_to_send():
        server.receive(datagram, CLIENT, NOW)
    taken = []
    while (event := server.next_event()) is not None:
        taken.append(event)
    assert server.data_dropped == 3
    assert data_events(taken) == [b"%d" % i for i in range(MAX_QUEUED_DATA)]
    assert isinstance(taken[-1], ConnectionClosed)
    assert sum(isinstance(e, DataReceived) for e in taken) == MAX_QUEUED_DATA
