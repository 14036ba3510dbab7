"""The command line as a new user meets it: `dtlsgate connect` waits for the answer to its
last line, stops on Ctrl-C, says why a handshake failed; every bad input is one line on
stderr (never a traceback); an option of the other mode is an error; ``-v`` logs each
connection and a summary."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import FENCE, one_cpu
from peers import (
    announced_port,
    free_udp_port,
    process,
    read_line,
    require,
    start,
    stop,
    stop_and_close,
    wait_for_line,
)
from test_dtls12_cli import dtlsgate_serve
from udp_proxy import LossyProxy

import dtlsgate
from dtlsgate.crypto.certs import make_self_signed
from dtlsgate.io.cli import main

PSK = "Client_identity:000102030405060708090a0b0c0d0e0f"
OTHER_PSK_KEY = "0f0e0d0c0b0a09080706050403020100"
DTLSGATE = [sys.executable, "-m", "dtlsgate"]


def connect_with_late_line(ports: list[int], gap: float) -> list[tuple[bytes, bytes, int]]:
    """``dtlsgate connect -v``, one client per port, all at once: the only line goes ``gap``
    seconds after every client logged its completed handshake, and input ends right after
    it. Counted from the handshakes, not from the start: on a loaded machine start-up and
    handshake can take most of any fixed delay, and the line would no longer come late.
    Each client leads its own process group (`peers.start`), stopped whatever happens: a
    failed wait no longer leaves them running for their 40 s."""
    args = [*DTLSGATE, "connect", "--psk", PSK, "-v"]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for p in ports:
            procs.append(start([*args, f"127.0.0.1:{p}"], seconds=40, **pipes))
        deadline = time.monotonic() + 30
        for proc in procs:
            # "127.0.0.1:P: DTLS 1.3 TLS_..., full handshake 12.3 ms" (its first line with -v)
            done = read_line(proc.stderr, deadline)
            assert re.search(r"full handshake [\d.]+ ms$", done), done
        time.sleep(gap)
        results = []
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"late line\n")
            proc.stdin.close()  # input ends right after the line
            proc.stdin = None  # communicate() then only reads
        for proc in procs:
            out, err = proc.communicate(timeout=45)
            results.append((out, err, proc.returncode))
        return results
    finally:
        for proc in procs:
            stop_and_close(proc)


# ---- 1. the answer to the last line ---------------------------------------------------------


@pytest.mark.interop
def test_connect_waits_for_the_answer_to_its_last_line(tmp_path: Path) -> None:
    """The wait for answers counts from the last record sent, for a few round trips: over a
    link with 0.15 s each way the echo of a line sent well after the handshake arrives (the
    old wait, 1 s counted from the last datagram received, closed at once and lost it every
    time), and on loopback, repeated, too (the old code lost about half). The line goes
    1.5 s (2 s over the slow link) after the handshake: beyond the old 1 s."""
    with dtlsgate_serve(tmp_path, "--psk", PSK) as port:
        with (
            LossyProxy(("127.0.0.1", port), loss=0, dup=0, reorder=0, latency=0.15) as one,
            LossyProxy(("127.0.0.1", port), loss=0, dup=0, reorder=0, latency=0.15) as two,
        ):
            for out, err, rc in connect_with_late_line([one.port, two.port], 2.0):
                assert (rc, out) == (0, b"late line\n"), err
        for out, err, rc in connect_with_late_line([port] * 4, 1.5):
            assert (rc, out) == (0, b"late line\n"), err


# ---- 2. Ctrl-C -------------------------------------------------------------------------------

# Runs the CLI with uvloop hidden, so that plain asyncio is tested too.
WITHOUT_UVLOOP = (
    "import runpy, sys; sys.modules['uvloop'] = None; "
    "sys.argv = ['dtlsgate', *sys.argv[1:]]; runpy.run_module('dtlsgate', run_name='__main__')"
)


@pytest.mark.interop
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_ctrl_c_in_connect_exits_at_once_and_cleanly(tmp_path: Path, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    python = DTLSGATE if loop == "uvloop" else [sys.executable, "-c", WITHOUT_UVLOOP]
    with dtlsgate_serve(tmp_path, "--psk", PSK) as port:
        args = [*python, "connect", f"127.0.0.1:{port}", "--psk", PSK]
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"before ctrl-c\n")
            proc.stdin.flush()
            assert read_line(proc.stdout, time.monotonic() + 20) == "before ctrl-c"
            proc.send_signal(signal.SIGINT)  # stdin stays open: readline is still blocked
            rc = proc.wait(10)
            assert proc.stderr is not None
            err = proc.stderr.read()
        finally:
            proc.kill()
            proc.wait(5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                assert stream is not None
                stream.close()
    assert rc == 130, err
    assert b"Traceback" not in err and err.strip() == b"", err


# ---- 3. why a handshake failed ---------------------------------------------------------------


def run_cli(*args: str, seconds: float = 40) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["timeout", "-s", "KILL", str(seconds), *DTLSGATE, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )


def one_line(err: bytes) -> str:
    text = err.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_connect_to_a_closed_port_reports_the_icmp_port_unreachable() -> None:
    # The handshake timeout is long: the answer must come from the ICMP error, not the clock.
    done = run_cli("connect", f"127.0.0.1:{free_udp_port()}", "--psk", PSK, "--timeout", "30")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "ICMP port unreachable" in line and "nothing listens" in line, line


def client_hellos_received(silent: socket.socket) -> int:
    """Count the ClientHello transmissions that reached ``silent``, every one the test's
    thread sent so far included: a last datagram (the fence) sent to ``silent`` from the
    same thread, then ``silent`` read until it arrives (a read right after the client gave
    up could miss a last transmission whose delivery a loaded machine deferred); the caller
    keeps the thread on one CPU (`helpers.one_cpu`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(FENCE, silent.getsockname())
    silent.settimeout(30)  # a bound only: the fence must come
    count = 0
    for _ in range(1000):
        datagram = silent.recv(65536)
        if datagram == FENCE:
            return count
        header = datagram[13:25]
        if datagram[0] == 22 and header[:1] == b"\x01" and header[6:9] == b"\x00\x00\x00":
            count += 1
    raise AssertionError("more than 1000 datagrams")


# The timeouts below have two decimals on purpose: the message must name the limit the user
# set, never a measured time (a loaded machine makes 2.25 s into "2.3 s" or "2.6 s"), and
# how far the handshake got: as many flights as the silent peer received.


def test_connect_timeout_says_how_long_and_how_far() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent, one_cpu():
        silent.bind(("127.0.0.1", 0))  # receives every ClientHello, answers none
        port = silent.getsockname()[1]
        done = run_cli("connect", f"127.0.0.1:{port}", "--psk", PSK, "--timeout", "2.25")
        flights = client_hellos_received(silent)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert flights >= 1
    sent = f"{flights} flight{'s' if flights != 1 else ''} sent"
    assert f"timed out after 2.25 s ({sent})" in line, line
    assert "no answer from the server" in line, line


@pytest.mark.interop
def test_connect_with_a_wrong_psk_says_so() -> None:
    require("openssl")
    port = free_udp_port()
    server = [
        "openssl",
        "s_server",
        "-dtls1_2",
        "-accept",
        f"127.0.0.1:{port}",
        "-nocert",
        "-psk",
        OTHER_PSK_KEY,
        "-psk_identity",
        "Client_identity",
        "-cipher",
        "PSK-AES128-CCM8",
    ]
    with process(server, seconds=30) as proc:  # its stdin stays open: it keeps serving
        wait_for_line(proc.stdout, "ACCEPT")
        done = run_cli("connect", f"127.0.0.1:{port}", "--psk", PSK, "--timeout", "4")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "timed out after 4 s" in line and "wrong PSK" in line, line
    assert "ServerHelloDone" in line, line


def psk_client_config() -> dtlsgate.ClientConfig:
    """The client side of ``PSK``."""
    return dtlsgate.ClientConfig(
        psk_identity=b"Client_identity", psk=bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    )


def api_connect(api: str, port: int, timeout: float) -> None:
    import asyncio

    config = psk_client_config()
    if api == "blocking":
        dtlsgate.blocking.connect("127.0.0.1", port, config, timeout=timeout)
    else:
        asyncio.run(dtlsgate.connect("127.0.0.1", port, config, timeout=timeout))


@pytest.mark.parametrize("api", ["asyncio", "blocking"])
def test_the_api_errors_say_what_happened(api: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent, one_cpu():
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(TimeoutError) as caught:
            api_connect(api, silent.getsockname()[1], timeout=1.25)
        flights = client_hellos_received(silent)
    text = str(caught.value)
    sent = f"{flights} flight{'s' if flights != 1 else ''} sent"
    assert text.startswith("DTLS handshake with 127.0.0.1:"), text
    assert flights >= 1 and f"timed out after 1.25 s ({sent})" in text, text
    assert "no answer from the server" in text
    with pytest.raises(ConnectionRefusedError, match="ICMP port unreachable"):
        api_connect(api, free_udp_port(), timeout=30)


def api_connect_dtls12(api: str, port: int, timeout: float) -> None:
    """`api_connect` with the client offering DTLS 1.2 alone."""
    import asyncio

    config = psk_client_config()
    config.dtls_versions = (0xFEFD,)
    if api == "blocking":
        dtlsgate.blocking.connect("127.0.0.1", port, config, timeout=timeout)
    else:
        asyncio.run(dtlsgate.connect("127.0.0.1", port, config, timeout=timeout))


@pytest.mark.parametrize("api", ["blocking"])  # both faces share the message: one suffices
def test_the_api_errors_say_how_far_the_server_got(api: str) -> None:
    """A server whose gate answered, then nothing (it never accepts): it sent its
    HelloVerifyRequest, then nothing more."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)  # a bound only: both ClientHellos come
        listener = dtlsgate.Listener(
            sock, dtlsgate.ServerConfig(psk={b"Client_identity": b"k" * 16})
        )
        admitted: list[object] = []
        thread = threading.Thread(target=lambda: admitted.append(listener.listen()), daemon=True)
        thread.start()
        with pytest.raises(TimeoutError) as caught:
            api_connect_dtls12(api, sock.getsockname()[1], timeout=1.25)
        thread.join(10)
    assert admitted and admitted[0] is not None  # admitted, never accepted
    text = str(caught.value)
    assert "timed out after 1.25 s" in text, text
    assert text.endswith(": the server sent its HelloVerifyRequest, then nothing more"), text


@pytest.mark.parametrize("api", ["asyncio"])  # both faces share the message: one suffices
def test_the_api_errors_say_a_wrong_psk_is_the_likely_cause(api: str) -> None:
    """Our server with another key for the identity: it cannot decrypt our Finished and
    drops it (RFC 6347 §4.1.2.7), so the handshake times out after its whole flight."""
    from test_interop_dtls12_loss import AioEchoServer

    other = dtlsgate.ServerConfig(psk={b"Client_identity": bytes.fromhex(OTHER_PSK_KEY)})
    with AioEchoServer(other) as server, pytest.raises(TimeoutError) as caught:
        api_connect_dtls12(api, server.port, timeout=1.5)
    text = str(caught.value)
    assert "timed out after 1.5 s" in text, text
    assert "the server sent its whole flight (up to ServerHelloDone)" in text, text
    assert "our Finished went unanswered: a wrong PSK" in text, text


@pytest.mark.parametrize("api", ["blocking"])  # both faces share the message: one suffices
def test_the_api_errors_say_the_server_answered_with_nothing_a_client_expects(api: str) -> None:
    """A server answering each ClientHello with a handshake record of a type no TLS version
    defines (99), cut short after the type: the client drops each as malformed and times
    out, and the message says the server answered, but with nothing the client expects."""
    from dtlsgate.wire.record import encode_dtls_record

    stop = b"stop"
    answered = []

    def answer(sock: socket.socket) -> None:
        sock.settimeout(10)  # a bound only: the client's datagrams, then the stop, come
        for _ in range(100):
            data, peer = sock.recvfrom(65536)
            if data == stop:
                return
            answered.append(data)
            sock.sendto(encode_dtls_record(22, 0xFEFD, 0, len(answered), b"\x63"), peer)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        thread = threading.Thread(target=answer, args=(sock,), daemon=True)
        thread.start()
        try:
            with pytest.raises(TimeoutError) as caught:
                api_connect_dtls12(api, sock.getsockname()[1], timeout=0.5)
        finally:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stopper:
                stopper.sendto(stop, sock.getsockname())
            thread.join(10)
    assert answered and not thread.is_alive()
    text = str(caught.value)
    assert text.startswith("DTLS handshake with 127.0.0.1:"), text
    assert "timed out after 0.5 s" in text, text
    assert text.endswith(": the server answered, but with nothing a DTLS client expects"), text


@pytest.mark.parametrize(
    ("limit", "elapsed", "gave_up", "said"),
    [
        (2.25, 2.61, False, "2.25 s"),  # the caller's limit ran out: as the caller wrote it
        (4, 4.06, False, "4 s"),
        (1e6, 127.04, True, "127 s"),  # the connection gave up first: the measured time
        (2.25, 2.61, True, "2.6 s"),  # both at once: the connection gave up by itself
        (None, 127.04, True, "127 s"),  # no limit: only giving up ends the handshake
    ],
)
def test_the_timeout_message_names_the_limit_unless_the_connection_gave_up(
    limit: float | None, elapsed: float, gave_up: bool, said: str
) -> None:
    from dtlsgate.io.progress import HandshakeProgress

    progress = HandshakeProgress("127.0.0.1:4433")
    progress.sent()
    text = progress.timeout_message(limit, elapsed, gave_up)
    assert text.startswith(f"DTLS handshake with 127.0.0.1:4433 timed out after {said} ("), text


def test_both_faces_name_the_peer_one_way() -> None:
    """`format_peer`: how both faces' messages, the log lines and the CLI name a peer (one
    copy, where there were four)."""
    from dtlsgate.io.progress import format_peer

    assert format_peer(("127.0.0.1", 4433)) == "127.0.0.1:4433"
    assert format_peer(("::1", 4433, 0, 0)) == "[::1]:4433"  # RFC 3986 §3.2.2
    assert format_peer("a peer that is no socket address") == "a peer that is no socket address"


def give_up(api: str, address: tuple[str, int], limit: float, readings: Iterator[int]) -> str:
    """The TimeoutError's message of a client face (``api``) whose handshake with the silent
    ``address`` ran on a clock that reads ``readings``, under the caller's ``limit``."""
    import asyncio

    from dtlsgate.config import ClientConfig
    from dtlsgate.connection.datagram13 import DatagramClientConnection
    from dtlsgate.io.aio import DtlsStream
    from dtlsgate.io.blocking import DtlsSocket
    from dtlsgate.io.progress import HandshakeProgress

    config = ClientConfig(psk_identity=b"Client_identity", psk=bytes(range(16)))
    conn = DatagramClientConnection(config, address)
    progress = HandshakeProgress("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        clock = lambda: float(next(readings))  # noqa: E731
        if api == "blocking":
            dtls = DtlsSocket(conn, sock, address, clock=clock)
            dtls.progress = progress
            conn.connect(clock())
            with pytest.raises(TimeoutError) as caught:
                dtls.do_handshake(timeout=limit)
            return str(caught.value)

        async def handshake() -> None:
            loop = asyncio.get_running_loop()
            stream = DtlsStream(conn, address, lambda data, _: sock.send(data), loop, clock)
            stream.progress = progress
            conn.connect(clock())
            stream.pump()
            try:
                await stream.wait_handshake(timeout=limit)
            finally:
                stream.close()

        with pytest.raises(TimeoutError) as caught:
            asyncio.run(handshake())
        return str(caught.value)


@pytest.mark.parametrize("api", ["asyncio", "blocking"])
def test_a_connection_that_gives_up_before_the_limit_says_how_long_it_tried(api: str) -> None:
    """With a limit longer than its retransmissions, the connection gives up first (its
    last flight unanswered): the message says how long that took, not the limit. A clock
    that jumps 61 s at every reading runs the whole schedule (1, 2, ... 60 s) at once. The
    blocking face times its limit on that clock; the asyncio face on its loop's, which runs
    on real time (30 s: reached only if the connection never gave up)."""
    from dtlsgate.connection.flight import MAX_FLIGHT_TRANSMISSIONS

    limit = 1e6 if api == "blocking" else 30
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent, one_cpu():
        silent.bind(("127.0.0.1", 0))
        readings = itertools.count(1_800_000_000, 61)
        text = give_up(api, silent.getsockname(), limit, readings)
        flights = client_hellos_received(silent)
    found = re.search(r"timed out after (\d+) s \((\d+) flights sent\)", text)
    assert found is not None, text
    seconds, sent = int(found[1]), int(found[2])
    assert 1 + 2 + 4 + 8 + 16 + 32 + 60 <= seconds != limit, text
    assert sent == flights == MAX_FLIGHT_TRANSMISSIONS, (text, flights)


def test_a_blocking_connection_that_gives_up_as_its_limit_passes_says_how_long_it_tried() -> None:
    """The blocking face's limit passes on the very clock reading after the connection gave
    up: the connection gave up by itself, so the measured time, as the asyncio face says
    (before session 10 the blocking face named the limit whenever it had passed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent, one_cpu():
        silent.bind(("127.0.0.1", 0))
        # A first run counts the clock's readings from the start of do_handshake to the
        # message (the run is deterministic: the peer is silent, every wait is 0 s).
        readings = itertools.count(1_800_000_000, 61)
        first = give_up("blocking", silent.getsockname(), 1e6, readings)
        found = re.search(r"timed out after (\d+) s", first)
        assert found is not None, first
        measured = int(found[1])
        # The second: a limit that passes between the last reading before the give-up and
        # the reading the message is made with.
        readings = itertools.count(1_800_000_000, 61)
        text = give_up("blocking", silent.getsockname(), measured - 30, readings)
        client_hellos_received(silent)
    assert f"timed out after {measured} s (" in text, (text, first)


# ---- 4. bad input: one line, never a traceback -----------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli-files")
    cert, key = make_self_signed("localhost")
    _, other_key = make_self_signed("localhost")
    paths = {
        "cert": cert,
        "key": key,
        "other_key": other_key,
        "garbage": b"not PEM at all\n",
        "truncated": cert[: len(cert) // 2],
    }
    for name, data in paths.items():
        (d / f"{name}.pem").write_bytes(data)
    names = {name: str(d / f"{name}.pem") for name in paths}
    names["missing"] = str(d / "missing.pem")
    names["directory"] = str(d)
    return names


# (name, argv with {placeholders}); ports in use are filled in by the test.
BAD_INPUTS = [
    ("tls-cert-missing", "serve --tls --port 0 --cert {missing}"),
    ("tls-cert-is-a-key", "serve --tls --port 0 --cert {key} --key {key}"),
    ("tls-cert-garbage", "serve --tls --port 0 --cert {garbage} --key {key}"),
    ("tls-cert-truncated", "serve --tls --port 0 --cert {truncated} --key {key}"),
    ("tls-cert-directory", "serve --tls --port 0 --cert {directory} --key {key}"),
    ("tls-key-missing", "serve --tls --port 0 --cert {cert} --key {missing}"),
    ("tls-key-garbage", "serve --tls --port 0 --cert {cert} --key {garbage}"),
    ("tls-key-mismatch", "serve --tls --port 0 --cert {cert} --key {other_key}"),
    ("tls-key-without-cert", "serve --tls --port 0 --key {key}"),
    ("tls-cafile-garbage", "serve --tls --port 0 --cafile {garbage} --verify-client required"),
    ("tls-cafile-missing", "serve --tls --port 0 --cafile {missing} --verify-client optional"),
    ("dtls-cert-missing", "serve --port 0 --cert {missing}"),
    ("dtls-key-mismatch", "serve --port 0 --cert {cert} --key {other_key}"),
    ("dtls-cafile-garbage", "serve --port 0 --cafile {garbage} --verify-client required"),
    ("master-key-not-hex", "serve --tls --port 0 --master-key xyz"),
    ("master-key-short", "serve --port 0 --master-key 0011"),
    ("port-too-large", "serve --port 99999"),
    ("port-negative", "listen --port -1"),
    ("workers-zero", "serve --port 5999 --workers 0"),
    ("workers-port-zero", "serve --port 0 --workers 2"),
    ("mtu-too-small", "serve --port 0 --mtu 100"),
    ("host-unresolvable-serve", "serve --port 0 --host no-such-host.invalid"),
    ("host-unresolvable-serve-tls", "serve --tls --port 0 --host no-such-host.invalid"),
    ("host-unresolvable-listen", "listen --port 0 --host no-such-host.invalid"),
    ("udp-port-in-use-serve", "serve --port {udp_busy}"),
    ("udp-port-in-use-listen", "listen --port {udp_busy}"),
    ("tcp-port-in-use-serve-tls", "serve --tls --port {tcp_busy}"),
    ("connect-tls-no-port", "connect --tls 127.0.0.1"),
    ("connect-no-port", "connect localhost"),
    ("connect-port-zero", "connect 127.0.0.1:0"),
    ("connect-bad-psk", "connect 127.0.0.1:4433 --psk nocolon"),
    ("connect-cafile-missing", "connect 127.0.0.1:4433 --cafile {missing}"),
    ("connect-cafile-garbage", "connect --tls 127.0.0.1:4433 --cafile {garbage}"),
    ("connect-insecure-and-cafile", "connect 127.0.0.1:4433 --insecure --cafile {cert}"),
    ("connect-bad-timeout", "connect 127.0.0.1:4433 --timeout soon"),
    ("groups-unknown", "serve --tls --port 0 --groups x25519:curve9"),
    ("groups-empty-name", "connect --tls 127.0.0.1:4433 --groups x25519::"),
    ("ciphersuites-unknown", "serve --tls --port 0 --ciphersuites TLS_RC4"),
    ("ciphersuites-dtls-without-1.3", "serve --port 0 --ciphersuites TLS_AES_128_CCM_SHA256"),
    ("sigalgs-unknown", "connect 127.0.0.1:4433 --sigalgs rsa_md5"),
    ("psk-tls-bad", "serve --tls --port 0 --psk id:xyz"),
    ("verify-without-cafile", "serve --tls --port 0 --Verify"),
    ("cafile-without-verify", "serve --tls --port 0 --CAfile {cert}"),
    ("verify-cafile-garbage", "serve --tls --port 0 --verify --CAfile {garbage}"),
    ("pin-missing", "serve --port 0 --Verify --pin {missing}"),
    ("pin-garbage", "connect 127.0.0.1:4433 --pin {garbage}"),
    ("rawpk-key-missing", "serve --tls --port 0 --rawpk-key {missing}"),
    ("rawpk-key-is-a-cert", "serve --port 0 --rawpk-key {cert}"),
    ("rawpk-key-and-cert", "serve --port 0 --rawpk-key {key} --cert {cert}"),
    ("rawpk-key-garbage-client", "connect --tls 127.0.0.1:4433 --rawpk-key {garbage}"),
    ("sess-in-missing", "connect --dtls1_2 127.0.0.1:4433 --sess-in {missing}"),
    ("sess-in-garbage", "connect --dtls1_2 127.0.0.1:4433 --sess-in {garbage}"),
    ("sess-in-a-certificate", "connect --dtls1_2 127.0.0.1:4433 --sess-in {cert}"),
    ("sess-out-without-dtls1_2", "connect 127.0.0.1:4433 --sess-out {missing}"),
    ("key-update-every-negative", "serve --tls --port 0 --key-update-every -1"),
    ("fingerprint-malformed", "connect 127.0.0.1:4433 --fingerprint sha-256:AB"),
    ("connect-key-without-cert", "connect 127.0.0.1:4433 --key {key}"),
    ("connect-cert-garbage", "connect 127.0.0.1:4433 --cert {garbage}"),
    ("connect-rawpk-key-and-cert", "connect 127.0.0.1:4433 --rawpk-key {key} --cert {cert}"),
    ("no-command", ""),
    ("unknown-option", "serve --colour"),
]


@contextmanager
def busy_ports() -> Iterator[dict[str, int]]:
    """A UDP and a listening TCP socket on loopback, held for the test."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
    ):
        udp.bind(("127.0.0.1", 0))
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        yield {"udp_busy": udp.getsockname()[1], "tcp_busy": tcp.getsockname()[1]}


class Hung(Exception):
    pass


@contextmanager
def watchdog(limit: float) -> Iterator[None]:
    """Bound an in-process run: a command that starts serving instead of refusing its input
    is interrupted (SIGALRM) and fails the test rather than hanging it. uvloop does not let
    the handler's exception out of its loop: the test hides it (`no_uvloop`)."""

    def expired(signum: int, frame: object) -> None:
        raise Hung(f"still running after {limit} s: the input was not refused")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("argv", [a for _, a in BAD_INPUTS], ids=[n for n, _ in BAD_INPUTS])
def test_bad_input_is_one_line_never_a_traceback(
    argv: str,
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "uvloop", None)  # see watchdog()
    with busy_ports() as ports, watchdog(20):
        args = argv.format(**files, **ports).split()
        try:
            rc = main(args)
        except SystemExit as exc:  # argparse
            rc = exc.code  # type: ignore[assignment]
    captured = capsys.readouterr()
    assert rc not in (0, None), captured
    line = one_line(captured.err.encode())
    assert line.startswith("dtlsgate"), line
    assert captured.out == ""


A_FINGERPRINT = "sha-256 " + ":".join(["AB"] * 32)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--fingerprint", "md5 " + ":".join(["AB"] * 16)], "md5 is a broken hash function"),
        (["--fingerprint", "sha-256 AB"], "a sha-256 fingerprint has 32 bytes, not 1"),
        (["--insecure", "--fingerprint", A_FINGERPRINT], "--insecure and --fingerprint"),
    ],
)
def test_connect_fingerprints_are_checked_when_parsed(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["connect", "127.0.0.1:4433", *argv])
    assert exited.value.code == 2
    line = one_line(capsys.readouterr().err.encode())
    assert says in line, line


def test_serve_takes_fingerprints_for_client_certificates_with_verify_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--fingerprint`` stands in for ``--CAfile`` with ``--verify``/``--Verify``, and
    like it means nothing without them."""
    from dtlsgate.io.cli import build_parser, check_modes

    parser = build_parser()
    args = parser.parse_args(["serve", "--Verify", "--fingerprint", A_FINGERPRINT.lower()])
    check_modes(parser, args)
    assert args.fingerprint == [A_FINGERPRINT] and args.verify_client == "required"
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "0", "--fingerprint", A_FINGERPRINT])
    assert exited.value.code == 2
    line = one_line(capsys.readouterr().err.encode())
    assert "--fingerprint" in line and "needs --verify or --Verify" in line, line


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        ("serve --key-update-every 1", "--key-update-every"),
        ("serve --tls --workers 2 --port 5999", "--workers"),
        ("serve --tls --mtu 500", "--mtu"),
        ("serve --www", "--www"),
        ("serve --stateless", "--stateless"),
        ("serve --max-connections 1", "--max-connections"),
        ("connect --tls 127.0.0.1:1 --sess-out f", "--sess-out"),
        ("connect --tls 127.0.0.1:1 --sess-in f", "--sess-in"),
        ("connect 127.0.0.1:1 --no-middlebox", "--no-middlebox"),
    ],
)
def test_an_option_of_the_other_mode_is_an_error(
    argv: str, flag: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # see watchdog()
    with watchdog(20), pytest.raises(SystemExit) as exited:
        main(argv.split())
    assert exited.value.code == 2
    line = one_line(capsys.readouterr().err.encode())
    assert f"{flag} does not apply to" in line, line


@pytest.mark.parametrize(
    ("argv", "what", "valid"),
    [
        ("serve --tls --groups x25519:curve9", "group 'curve9'", "X25519MLKEM768, "),
        ("connect 127.0.0.1:1 --groups P-256:ffdhe1024", "group 'ffdhe1024'", "ffdhe2048, "),
        ("serve --tls --ciphersuites TLS_RC4", "cipher suite 'TLS_RC4'", "TLS_AES_128_CCM_SHA256"),
        ("connect --tls 127.0.0.1:1 --sigalgs rsa_md5", "signature scheme 'rsa_md5'", "mldsa65"),
    ],
)
def test_an_unknown_name_is_one_line_listing_the_valid_ones(
    argv: str, what: str, valid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--groups/--ciphersuites/--sigalgs are checked when parsed (issue 13 item 6)."""
    with pytest.raises(SystemExit) as exited:
        main(argv.split())
    assert exited.value.code == 2
    line = one_line(capsys.readouterr().err.encode())
    assert f"unknown {what}; valid: " in line and valid in line, line


def test_name_lists_take_openssl_spellings() -> None:
    from dtlsgate.io import cli_names
    from dtlsgate.wire.enums import CipherSuite, NamedGroup, SignatureScheme

    assert cli_names.groups("X25519MLKEM768:X25519,P-256:prime256v1:ffdhe2048") == (
        NamedGroup.X25519MLKEM768,
        NamedGroup.x25519,
        NamedGroup.secp256r1,
        NamedGroup.ffdhe2048,
    )
    assert cli_names.ciphersuites("tls_aes_128_ccm_8_sha256") == (
        CipherSuite.TLS_AES_128_CCM_8_SHA256,
    )
    assert cli_names.sigalgs("ed25519:rsa_pkcs1_sha256") == (
        SignatureScheme.ed25519,
        SignatureScheme.rsa_pkcs1_sha256,
    )


def test_version_and_help_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    import dtlsgate

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"dtlsgate {dtlsgate.__version__}"
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: 4433)" in shown and "(default: 1200; DTLS only)" in shown
    assert "--www" in shown and "--tls only" in shown
    assert "--Verify" in shown and "--CAfile" in shown and "--groups" in shown
    assert "--key-update-every N" in shown and "(default: 0; --tls only)" in shown
    with pytest.raises(SystemExit):
        main(["connect", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--sess-out" in shown and "--rawpk-key" in shown and "(default: 30.0)" in shown


# ---- 6. -v: one line per connection, a summary at the end -----------------------------------


@contextmanager
def verbose_psk_server(
    tmp_path: Path, command: list[str]
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``command serve`` on a free port with ``PSK`` and ``-v``, its stderr piped; the
    process and its port, once it announced itself. Killed at the end if still running."""
    # Not under `timeout` (the signal tests signal the server itself), but in a process
    # group of its own all the same, for `stop` (peers.start).
    proc = start(
        [*command, "serve", "--port", "0", "--psk", PSK, "-v"],
        seconds=None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    try:
        yield proc, announced_port(proc, "serving DTLS")
    finally:
        stop(proc)
        assert proc.stderr is not None
        proc.stderr.close()


def rest_of_stderr(proc: subprocess.Popen[bytes], seconds: float) -> tuple[int, str]:
    """Wait for ``proc`` to exit; its status and what it wrote to stderr that was not read."""
    rc = proc.wait(seconds)
    assert proc.stderr is not None
    return rc, proc.stderr.read().decode()


@pytest.mark.interop
def test_verbose_serve_logs_each_connection_and_a_summary(tmp_path: Path) -> None:
    # Under `timeout`, which sends the SIGINT below to the server and again to its group.
    with verbose_psk_server(tmp_path, ["timeout", "-s", "KILL", "60", *DTLSGATE]) as (proc, port):
        done = run_cli("connect", f"127.0.0.1:{port}", "--psk", PSK, seconds=30)
        assert done.returncode == 0, done.stderr
        logged = read_line(proc.stderr, time.monotonic() + 10)
        assert "127.0.0.1:" in logged and re.search(r": DTLS 1\.[23] TLS_", logged), logged
        assert logged.endswith(" ms"), logged
        # The client's limit only matters if it hangs: a wrong PSK fails at its Finished,
        # which a client that gave up first (a loaded machine) would never send, leaving
        # the server to log the failure only when its own handshake timeout fires.
        bad = run_cli(
            "connect", f"127.0.0.1:{port}", "--psk", "other:0011", "--dtls1_2", "--timeout", "30"
        )
        assert bad.returncode == 1
        failed = read_line(proc.stderr, time.monotonic() + 30)
        assert "DTLS handshake failed:" in failed, failed
        proc.send_signal(signal.SIGINT)
        rc, rest = rest_of_stderr(proc, 20)
    assert rc == 0, rest
    assert "stopped: 1 handshakes completed, 1 failed" in rest, rest
    assert "gate: " in rest and "admitted" in rest and "Traceback" not in rest, rest


@pytest.mark.interop
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize(
    "signals",
    [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM,), (signal.SIGTERM, signal.SIGINT)],
    ids=["ctrl-c twice", "sigterm", "sigterm then ctrl-c"],
)
def test_serve_stops_cleanly_on_a_signal_even_when_it_comes_again(
    tmp_path: Path, loop: str, signals: tuple[signal.Signals, ...]
) -> None:
    """SIGINT or SIGTERM stops `serve` with its summary and exit status 0. A second signal
    while it stops changes nothing: `timeout` sends its signal to the child and again to the
    child's process group, and a person presses Ctrl-C twice. Before, the second one could
    land in the event loop's shutdown as a KeyboardInterrupt ("Cannot close a running event
    loop", a traceback, CI run 28), or, once the loop handled it, kill the interpreter as it
    finalized (status -2). The gaps cover a second signal arriving at once, while the server
    logs its summary, and while the loop closes. The server is signalled itself (not through
    `timeout`), so each signal arrives once, when the test sends it."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    command = DTLSGATE if loop == "uvloop" else [sys.executable, "-c", WITHOUT_UVLOOP]
    for gap in (0.0, 0.005, 0.02):
        with verbose_psk_server(tmp_path, command) as (proc, port):
            # Our client in this process (a `dtlsgate connect` per gap would be another
            # interpreter start-up each); signalled once the server logged the handshake,
            # which the summary then counts.
            with dtlsgate.blocking.connect("127.0.0.1", port, psk_client_config(), timeout=30):
                pass
            wait_for_line(proc.stderr, ": DTLS 1.", 30)
            for i, signum in enumerate(signals):
                if i:
                    time.sleep(gap)
                proc.send_signal(signum)
            rc, rest = rest_of_stderr(proc, 20)
        assert rc == 0, (gap, rest)
        assert "stopped: 1 handshakes completed, 0 failed" in rest, (gap, rest)
        assert "Traceback" not in rest, (gap, rest)
