"""Interop for issue 13 items 2-5 with real peers on 127.0.0.1, each under ``timeout``: an
id-RSASSA-PSS certificate (made by ``openssl genpkey -algorithm RSA-PSS``) served and verified
with rsa_pss_pss_* against openssl s_client/s_server 3.0; TLS 1.3 external PSKs in psk_dhe_ke
and psk_ke mode with openssl (``-psk``/``-psk_identity``, ``-allow_no_dhe_kex``) and GnuTLS
(``--pskpasswd``, ``--pskusername``/``--pskkey``); post-handshake authentication with
``s_client -enable_pha`` (our server asks) and with s_server's interactive ``c`` command (our
client answers); pyOpenSSL (OpenSSL 4) for ML-DSA certificates where it can.

Our server side runs in a thread of the test over the sans-I/O `ServerConnection` (the
events, e.g. `ClientCertificateReceived`, are read from it directly); every wait is bounded."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from peers import converse, free_tcp_port, process, read_until, require, wait_bound, wait_for_line

from dtlsgate.config import PSK_DHE_KE, PSK_KE, ClientConfig, ServerConfig
from dtlsgate.connection.stream import ServerConnection
from dtlsgate.crypto.certs import load_identity
from dtlsgate.errors import AlertReceived, ProtocolError
from dtlsgate.events import (
    ClientCertificateReceived,
    ConnectionClosed,
    DataReceived,
    HandshakeCompleted,
)
from dtlsgate.io.blocking_tls import TlsSocket, connect
from dtlsgate.wire.enums import SignatureScheme

pytestmark = pytest.mark.interop
PSK_ID = "Client_identity"
PSK_HEX = "000102030405060708090a0b0c0d0e0f"
SECONDS = 20


def openssl(*args: str | Path) -> None:
    subprocess.run(["timeout", "60", "openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An RSASSA-PSS server certificate, an ECDSA one, and an ECDSA client certificate."""
    require("openssl")
    d = tmp_path_factory.mktemp("tls13more")
    out = {
        name: d / name for name in ("pss.key", "pss.pem", "ec.key", "ec.pem", "cl.key", "cl.pem")
    }
    san = "subjectAltName=DNS:localhost"
    openssl("genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", out["pss.key"])  # fmt: skip
    openssl("req", "-x509", "-key", out["pss.key"], "-out", out["pss.pem"], "-days", "30",
            "-subj", "/CN=localhost", "-addext", san)  # fmt: skip
    for key, cert, cn in (("ec.key", "ec.pem", "localhost"), ("cl.key", "cl.pem", "client")):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", out[key], "-out", out[cert], "-days", "30",
                "-subj", f"/CN={cn}", "-addext", san)  # fmt: skip
    return out


class OneServer(threading.Thread):
    """Our TLS 1.3 server for one TCP connection: echoes application data, calls
    ``on_complete(conn)`` once the handshake completes, records events; bounded in time."""

    def __init__(
        self, config: ServerConfig, on_complete: Callable[[ServerConnection], None] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.config = config
        self.on_complete = on_complete
        self.events: list[Any] = []
        self.error: BaseException | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(SECONDS)
        self.start()

    def run(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError as exc:
            self.error = exc
            return
        with sock:
            self.serve(sock)

    def serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        conn = ServerConnection(self.config)
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            if out := conn.data_to_send():
                sock.sendall(out)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            try:
                conn.receive_data(data, time.time())
            except (ProtocolError, AlertReceived) as exc:
                self.error = exc
                sock.sendall(conn.data_to_send())
                return
            while (event := conn.next_event()) is not None:
                self.events.append(event)
                if isinstance(event, HandshakeCompleted) and self.on_complete is not None:
                    self.on_complete(conn)
                elif isinstance(event, DataReceived):
                    conn.send(event.data)
                elif isinstance(event, ConnectionClosed):
                    return

    def finish(self) -> list[Any]:
        self.join(SECONDS + 5)
        self.listener.close()
        return self.events


def completed(events: list[Any]) -> HandshakeCompleted:
    return next(e for e in events if isinstance(e, HandshakeCompleted))


def s_client(port: int, *args: str | Path) -> str:
    """openssl s_client against our server (which echoes): "hello" sent and its input ended
    once the echo is back (`converse`); everything it printed, standard error too."""
    cmd = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{port}", *map(str, args)]
    with process(cmd, seconds=SECONDS, stderr=subprocess.STDOUT) as proc:
        return converse(proc, ((b"hello\n", "hello"),), seconds=SECONDS - 5)


# ---- RSASSA-PSS certificates (RFC 8446 §4.2.3: rsa_pss_pss_*) ---------------------------------


def test_openssl_s_client_verifies_our_rsassa_pss_certificate(files: dict[str, Path]) -> None:
    config = ServerConfig()
    config.load_cert_chain(str(files["pss.pem"]), str(files["pss.key"]))
    server = OneServer(config)
    text = s_client(server.port, "-CAfile", files["pss.pem"], "-verify_return_error")
    events = server.finish()
    assert completed(events).signature_scheme == SignatureScheme.rsa_pss_pss_sha256
    assert "Peer signature type: RSA-PSS" in text and "Verify return code: 0 (ok)" in text
    assert DataReceived(b"hello\n") in events


def test_our_client_verifies_openssl_s_server_rsassa_pss_certificate(
    files: dict[str, Path],
) -> None:
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-rev",
            "-cert", str(files["pss.pem"]), "-key", str(files["pss.key"]), "-naccept", "1"]  # fmt: skip
    with process(args, seconds=SECONDS, stderr=subprocess.DEVNULL) as proc:
        wait_for_line(proc.stdout, "ACCEPT")
        config = ClientConfig(server_name="localhost", cafile=str(files["pss.pem"]))
        with connect("127.0.0.1", port, config) as tls:
            info = tls.do_handshake()
            tls.sendall(b"hello\n")
            assert tls.recv() == b"olleh\n"
    assert info.signature_scheme == SignatureScheme.rsa_pss_pss_sha256


def answer_certificate_request(tls: TlsSocket) -> None:
    """Our client reads until it has answered s_server's post-handshake CertificateRequest,
    and sends the answer: it answers as soon as the record holding the request is read and
    sends nothing else unasked (the tickets before it need no answer), so the first bytes
    it has to send are that answer. Through the sans-I/O connection's own calls:
    `TlsSocket.recv` would wait for application data, and s_server sends none; it waits
    for our answer (in SSL_do_handshake) before it prints anything more. Each read and the
    whole are bounded by SECONDS."""
    deadline = time.monotonic() + SECONDS
    while not (answer := tls.conn.data_to_send()):
        remaining = deadline - time.monotonic()
        assert remaining > 0, "our client had no answer to s_server's CertificateRequest"
        tls.sock.settimeout(remaining)
        data = tls.sock.recv(65536)
        assert data, "s_server closed the connection before its CertificateRequest came"
        tls.conn.receive_data(data, time.time())
    tls.sock.sendall(answer)


# ---- external PSKs (RFC 8446 §4.2.11) ---------------------------------------------------------


def psk_client(**kw: Any) -> ClientConfig:
    return ClientConfig(psk_identity=PSK_ID.encode(), psk=bytes.fromhex(PSK_HEX), **kw)


@pytest.mark.parametrize("mode", ["psk_dhe_ke", "psk_ke"])
def test_our_client_with_openssl_s_server_psk(mode: str) -> None:
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-rev", "-nocert",
            "-psk", PSK_HEX, "-psk_identity", PSK_ID, "-naccept", "1"]  # fmt: skip
    if mode == "psk_ke":
        args.append("-allow_no_dhe_kex")
    modes = (PSK_KE,) if mode == "psk_ke" else (PSK_DHE_KE,)
    with process(args, seconds=SECONDS, stderr=subprocess.DEVNULL) as proc:
        wait_for_line(proc.stdout, "ACCEPT")
        with connect("127.0.0.1", port, psk_client(psk_modes=modes)) as tls:
            info = tls.do_handshake()
            tls.sendall(b"hello\n")
            assert tls.recv() == b"olleh\n"
    assert info.psk_identity == PSK_ID.encode() and info.peer_certificates == ()
    assert (info.group is None) == (mode == "psk_ke")


@pytest.mark.parametrize("mode", ["psk_dhe_ke", "psk_ke"])
def test_openssl_s_client_psk_with_our_server(mode: str) -> None:
    modes = (PSK_KE, PSK_DHE_KE) if mode == "psk_ke" else (PSK_DHE_KE,)
    server = OneServer(ServerConfig(psk={PSK_ID.encode(): bytes.fromhex(PSK_HEX)}, psk_modes=modes))
    extra = ["-allow_no_dhe_kex"] if mode == "psk_ke" else []
    text = s_client(server.port, "-psk", PSK_HEX, "-psk_identity", PSK_ID, *extra)
    events = server.finish()
    info = completed(events)
    assert info.psk_identity == PSK_ID.encode()
    assert (info.group is None) == (mode == "psk_ke")
    assert DataReceived(b"hello\n") in events and "hello" in text


GNUTLS_PSK_PRIORITY = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+PSK:+ECDHE-PSK:+DHE-PSK"


def test_our_client_with_gnutls_serv_psk(tmp_path: Path) -> None:
    require("gnutls-serv")
    (tmp_path / "psk.passwd").write_text(f"{PSK_ID}:{PSK_HEX}\n")
    port = free_tcp_port()
    args = ["gnutls-serv", "--echo", "-p", str(port), "--pskpasswd", str(tmp_path / "psk.passwd"),
            "--priority", GNUTLS_PSK_PRIORITY]  # fmt: skip
    with process(args, seconds=SECONDS, stderr=subprocess.DEVNULL) as proc:
        wait_bound(proc, port)
        with connect("127.0.0.1", port, psk_client()) as tls:
            info = tls.do_handshake()
            tls.sendall(b"hello\n")
            assert tls.recv() == b"hello\n"
    assert info.psk_identity == PSK_ID.encode()


def test_gnutls_cli_psk_with_our_server() -> None:
    require("gnutls-cli")
    server = OneServer(ServerConfig(psk={PSK_ID.encode(): bytes.fromhex(PSK_HEX)}))
    cmd = ["gnutls-cli", "-p", str(server.port), "127.0.0.1", "--pskusername", PSK_ID,
           "--pskkey", PSK_HEX, "--priority", GNUTLS_PSK_PRIORITY]  # fmt: skip
    with process(cmd, seconds=SECONDS, stderr=subprocess.STDOUT) as proc:
        out = converse(proc, ((b"hello\n", "hello"),), seconds=SECONDS - 5)
    events = server.finish()
    assert completed(events).psk_identity == PSK_ID.encode()
    assert DataReceived(b"hello\n") in events, out[-2000:]


# ---- post-handshake authentication (RFC 8446 §4.6.2) -----------------------------------------


def test_our_server_asks_openssl_s_client_after_the_handshake(files: dict[str, Path]) -> None:
    config = ServerConfig(cafile=str(files["cl.pem"]))
    config.load_cert_chain(str(files["ec.pem"]), str(files["ec.key"]))
    server = OneServer(config, on_complete=lambda conn: conn.request_client_certificate())
    s_client(
        server.port, "-enable_pha", "-cert", files["cl.pem"], "-key", files["cl.key"],
        "-CAfile", files["ec.pem"],
    )  # fmt: skip
    events = server.finish()
    assert server.error is None, server.error
    chain = load_identity(str(files["cl.pem"]), str(files["cl.key"])).chain_der
    assert ClientCertificateReceived(chain) in events
    assert completed(events).peer_certificates == ()  # none in the handshake itself


def test_our_client_answers_openssl_s_server_post_handshake_request(
    files: dict[str, Path],
) -> None:
    """s_server's interactive ``c`` sends a CertificateRequest after the handshake (its
    ``-verify`` also asks during it: OpenSSL 3.0 has no post-handshake-only option)."""
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
            "-cert", str(files["ec.pem"]), "-key", str(files["ec.key"]), "-verify", "1",
            "-CAfile", str(files["cl.pem"])]  # fmt: skip
    config = ClientConfig(
        server_name="localhost", cafile=str(files["ec.pem"]), post_handshake_auth=True
    )
    config.load_cert_chain(str(files["cl.pem"]), str(files["cl.key"]))
    with process(args, seconds=SECONDS) as proc:
        wait_for_line(proc.stdout, "ACCEPT")
        with connect("127.0.0.1", port, config) as tls:
            tls.do_handshake()
            wait_for_line(proc.stdout, "CIPHER is")
            assert proc.stdin is not None
            proc.stdin.write(b"c\n")
            proc.stdin.flush()
            answer_certificate_request(tls)
            # s_server waits for the answer in SSL_do_handshake and then prints its result;
            # a bad answer would end the connection with an alert instead.
            wait_for_line(proc.stdout, "SSL_do_handshake -> 1")
            tls.sendall(b"ping\n")
            wait_for_line(proc.stdout, "ping")
            assert not tls.conn.closed
        # Its verify callback ran twice: for the handshake's request and for ours. All of
        # its standard error, to its end: it exits after its one connection.
        errors: list[str] = []
        read_until(proc.stderr, lambda _: False, time.monotonic() + SECONDS, errors)
        assert sum("verify return:1" in line for line in errors) == 2, errors


# ---- ML-DSA with pyOpenSSL (OpenSSL 4 from cryptography's wheel) ------------------------------


@pytest.fixture(scope="module")
def mldsa_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from dtlsgate.crypto.certs import make_self_signed

    d = tmp_path_factory.mktemp("mldsa")
    cert, key = make_self_signed("localhost", "mldsa65")
    (d / "ml.pem").write_bytes(cert)
    (d / "ml.key").write_bytes(key)
    return str(d / "ml.pem"), str(d / "ml.key")


def pyopenssl_context(**verify: str) -> Any:
    ssl = pytest.importorskip("OpenSSL.SSL")
    ctx = ssl.Context(ssl.TLS_METHOD)
    ctx.set_min_proto_version(ssl.TLS1_3_VERSION)
    if "cafile" in verify:
        ctx.load_verify_locations(verify["cafile"])
        ctx.set_verify(ssl.VERIFY_PEER, lambda _c, _x, _n, _d, ok: ok)
    return ctx


def test_our_client_verifies_a_pyopenssl_server_mldsa_certificate(
    mldsa_files: tuple[str, str],
) -> None:
    """pyOpenSSL loads the ML-DSA-65 key from PEM files (its use_privatekey cannot take a
    cryptography ML-DSA object); our client, offering ML-DSA, verifies mldsa65 (0x0905)."""
    from dtlsgate.handshake.tls13.common import SUPPORTED_SIGNATURE_SCHEMES

    ssl = pytest.importorskip("OpenSSL.SSL")
    ctx = pyopenssl_context()
    ctx.use_certificate_file(mldsa_files[0])
    ctx.use_privatekey_file(mldsa_files[1])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(SECONDS)
    port = listener.getsockname()[1]

    def serve() -> None:
        sock, _ = listener.accept()
        sock.setblocking(True)  # pyOpenSSL reads a socket with a timeout as non-blocking
        conn = ssl.Connection(ctx, sock)
        conn.set_accept_state()
        conn.do_handshake()
        conn.sendall(conn.recv(100))
        sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    config = ClientConfig(
        server_name="localhost",
        cafile=mldsa_files[0],
        signature_schemes=SUPPORTED_SIGNATURE_SCHEMES,
    )
    with connect("127.0.0.1", port, config) as tls:
        info = tls.do_handshake()
        tls.sendall(b"hi")
        assert tls.recv() == b"hi"
    thread.join(SECONDS)
    listener.close()
    assert info.signature_scheme == SignatureScheme.mldsa65


def test_a_pyopenssl_client_verifies_our_mldsa_certificate(mldsa_files: tuple[str, str]) -> None:
    """OpenSSL 4 offers ML-DSA in its default signature_algorithms: our server signs with
    mldsa65 and pyOpenSSL's client, verifying against the certificate, completes."""
    ssl = pytest.importorskip("OpenSSL.SSL")
    config = ServerConfig()
    config.load_cert_chain(*mldsa_files)
    server = OneServer(config)
    sock = socket.create_connection(("127.0.0.1", server.port))
    conn = ssl.Connection(pyopenssl_context(cafile=mldsa_files[0]), sock)
    conn.set_tlsext_host_name(b"localhost")
    conn.set_connect_state()
    conn.do_handshake()
    conn.sendall(b"hi")
    assert conn.recv(10) == b"hi"
    conn.shutdown()
    sock.close()
    events = server.finish()
    assert completed(events).signature_scheme == SignatureScheme.mldsa65
