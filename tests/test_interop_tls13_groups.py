"""TLS 1.3 key exchange groups against real peers on 127.0.0.1, every process under
``timeout`` and every wait bounded:

- openssl 3.0 ``s_client -groups G`` with our server, and our client with ``s_server
  -groups G``, for x448, secp521r1, ffdhe2048 and ffdhe3072 (OpenSSL 3.0 has no ML-KEM);
- gnutls-cli / gnutls-serv restricted to FFDHE2048 (``+GROUP-FFDHE2048``);
- pyOpenSSL (PyPI) on the OpenSSL 4 inside ``cryptography``'s wheel, the post-quantum peer:
  its client with our server and our client with its server negotiate X25519MLKEM768, which
  both sides report (our ``HandshakeCompleted.group``, its ``get_group_name()``).

Our side runs in-process (the blocking API, in a thread with a listening socket where it
is the server); the group is read from the handshake, not inferred from success.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from peers import free_tcp_port, process, require, wait_bound, wait_for_line

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import make_self_signed
from dtlsgate.io.blocking_tls import TlsSocket, accept, connect
from dtlsgate.wire.enums import NamedGroup

pytestmark = pytest.mark.interop
G = NamedGroup
# The groups OpenSSL 3.0's TLS 1.3 offers that we did not have before (its names).
OPENSSL_GROUPS = {
    "x448": G.x448,
    "secp521r1": G.secp521r1,
    "ffdhe2048": G.ffdhe2048,
    "ffdhe3072": G.ffdhe3072,
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("groups")
    cert, key = make_self_signed("localhost")
    (d / "cert.pem").write_bytes(cert)
    (d / "key.pem").write_bytes(key)
    return str(d / "cert.pem"), str(d / "key.pem")


@contextlib.contextmanager
def our_server(config: ServerConfig) -> Iterator[tuple[int, dict[str, Any]]]:
    """Our server in a thread: accepts one connection, echoes one read, records the
    handshake in the dict (``info``) or the exception (``error``)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    result: dict[str, Any] = {}

    def serve() -> None:
        try:
            with accept(listener, config) as tls:
                tls.sock.settimeout(20)
                result["info"] = tls.info
                data = tls.recv()
                result["data"] = data
                tls.sendall(data)
        except Exception as exc:  # reported by the test
            result["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], result
    finally:
        thread.join(25)
        listener.close()
    assert not thread.is_alive(), "our server did not finish"


def server_config(certs: tuple[str, str], **kw: Any) -> ServerConfig:
    config = ServerConfig(**kw)
    config.load_cert_chain(*certs)
    return config


# ---- openssl 3.0 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPENSSL_GROUPS))
def test_openssl_client_with_our_server(certs: tuple[str, str], name: str) -> None:
    require("openssl")
    with our_server(server_config(certs)) as (port, result):
        args = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{port}"]
        args += ["-groups", name, "-CAfile", certs[0], "-no_ign_eof"]
        with process(args, seconds=20) as client:
            assert client.stdin is not None
            client.stdin.write(b"hello over " + name.encode() + b"\n")
            client.stdin.flush()
            # s_client prints the server's key share: "Server Temp Key: X448, 448 bits",
            # "ECDH, secp521r1, 521 bits", "DH, 2048 bits".
            seen = wait_for_line(client.stdout, "hello over " + name)
    assert "error" not in result, result.get("error")
    assert result["info"].group is OPENSSL_GROUPS[name]
    temp_key = {"x448": "X448", "secp521r1": "ECDH, secp521r1"}.get(name, f"DH, {name[5:]} bits")
    assert f"Server Temp Key: {temp_key}" in seen


def our_client(port: int, certs: tuple[str, str], groups: tuple[int, ...]) -> TlsSocket:
    config = ClientConfig(server_name="localhost", cafile=certs[0], groups=groups)
    return connect("127.0.0.1", port, config, timeout=20)


@pytest.mark.parametrize("name", list(OPENSSL_GROUPS))
def test_our_client_with_openssl_server(certs: tuple[str, str], name: str) -> None:
    require("openssl")
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "1"]
    args += ["-cert", certs[0], "-key", certs[1], "-groups", name]
    with process(args, seconds=25) as server:
        wait_for_line(server.stdout, "ACCEPT")
        # Our default groups list all of them, but our shares are X25519MLKEM768 and X25519,
        # which s_server -groups NAME does not accept: it asks for NAME (HelloRetryRequest).
        config = ClientConfig(server_name="localhost", cafile=certs[0])
        with connect("127.0.0.1", port, config, timeout=20) as tls:
            assert tls.info is not None
            assert tls.info.group is OPENSSL_GROUPS[name] and tls.info.hello_retry
            tls.sendall(b"ping over " + name.encode() + b"\n")
            wait_for_line(server.stdout, "ping over " + name)
            assert server.stdin is not None
            server.stdin.write(b"pong from openssl\n")
            server.stdin.flush()
            assert b"pong from openssl" in tls.recv()


# ---- gnutls: FFDHE --------------------------------------------------------------------------------

GNUTLS_FFDHE = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-FFDHE2048"


def test_gnutls_client_with_our_server_over_ffdhe2048(certs: tuple[str, str]) -> None:
    require("gnutls-cli")
    with our_server(server_config(certs)) as (port, result):
        args = ["gnutls-cli", "-p", str(port), "127.0.0.1", "--x509cafile", certs[0]]
        args += ["--priority", GNUTLS_FFDHE]
        with process(args, seconds=20) as client:
            assert client.stdin is not None
            client.stdin.write(b"hello from gnutls\n")
            client.stdin.flush()
            seen = wait_for_line(client.stdout, "hello from gnutls")
    assert "error" not in result, result.get("error")
    assert result["info"].group is G.ffdhe2048
    assert "(DHE-FFDHE2048)" in seen


def test_our_client_with_gnutls_server_over_ffdhe2048(certs: tuple[str, str]) -> None:
    require("gnutls-serv")
    port = free_tcp_port()
    args = ["gnutls-serv", "--echo", "-p", str(port), "--x509certfile", certs[0]]
    args += ["--x509keyfile", certs[1], "--priority", GNUTLS_FFDHE]
    with process(args, seconds=25, stdin=subprocess.DEVNULL) as proc:
        wait_bound(proc, port)
        with our_client(port, certs, (G.ffdhe2048,)) as tls:
            assert tls.info is not None and tls.info.group is G.ffdhe2048
            assert not tls.info.hello_retry
            tls.sendall(b"ping over ffdhe2048\n")
            assert b"ping over ffdhe2048" in tls.recv()


# ---- pyOpenSSL on OpenSSL 4: X25519MLKEM768 --------------------------------------------------------


def blocking_with_os_timeouts(sock: socket.socket, seconds: int = 20) -> None:
    """pyOpenSSL needs a blocking socket (a Python timeout makes it non-blocking, and reads
    then raise WantReadError); the kernel's send and receive timeouts still bound every wait."""
    sock.settimeout(None)
    timeval = struct.pack("ll", seconds, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def pyopenssl() -> Any:
    SSL = pytest.importorskip("OpenSSL.SSL")
    if not hasattr(SSL.Connection, "get_group_name"):
        pytest.skip("pyOpenSSL without get_group_name")
    return SSL


def test_pyopenssl_client_with_our_server_negotiates_x25519mlkem768(
    certs: tuple[str, str],
) -> None:
    SSL = pyopenssl()
    with our_server(server_config(certs)) as (port, result):
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.load_verify_locations(certs[0])
        context.set_verify(SSL.VERIFY_PEER)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            blocking_with_os_timeouts(sock)
            conn = SSL.Connection(context, sock)
            conn.set_tlsext_host_name(b"localhost")
            conn.set_connect_state()
            conn.do_handshake()
            conn.sendall(b"hello from pyOpenSSL\n")
            assert conn.recv(100) == b"hello from pyOpenSSL\n"
            group = conn.get_group_name()
            conn.shutdown()
    assert "error" not in result, result.get("error")
    assert result["info"].group is G.X25519MLKEM768 and not result["info"].hello_retry
    assert group == "X25519MLKEM768"


def test_our_client_with_pyopenssl_server_negotiates_x25519mlkem768(
    certs: tuple[str, str],
) -> None:
    SSL = pyopenssl()
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_3_VERSION)
    context.use_certificate_file(certs[0])
    context.use_privatekey_file(certs[1])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    result: dict[str, Any] = {}

    def serve() -> None:
        try:
            sock, _ = listener.accept()
            blocking_with_os_timeouts(sock)
            with sock:
                conn = SSL.Connection(context, sock)
                conn.set_accept_state()
                conn.do_handshake()
                result["group"] = conn.get_group_name()
                conn.sendall(conn.recv(100))
                with contextlib.suppress(SSL.Error):
                    conn.shutdown()
        except Exception as exc:  # reported by the test
            result["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        config = ClientConfig(server_name="localhost", cafile=certs[0])
        with connect("127.0.0.1", listener.getsockname()[1], config, timeout=20) as tls:
            assert tls.info is not None
            assert tls.info.group is G.X25519MLKEM768 and not tls.info.hello_retry
            tls.sendall(b"ping from dtlsgate\n")
            assert tls.recv() == b"ping from dtlsgate\n"
    finally:
        thread.join(25)
        listener.close()
    assert "error" not in result, result.get("error")
    assert result["group"] == "X25519MLKEM768"
