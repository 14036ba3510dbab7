"""Issue 10 parts 2 and 4 against real peers, every process under ``timeout`` on 127.0.0.1:
``openssl s_client -sigalgs rsa_pkcs1_sha256`` refused with handshake_failure by our TLS 1.3
server holding an RSA certificate (RFC 8446 §4.2.3); client certificates without
subjectAltName, and a plain ``openssl req -x509`` one that is itself the server's trust
anchor, accepted by our DTLS 1.2 (``dtlsgate.serve``) and TLS 1.3 (``serve_tls``) servers;
our clients accepting a plain ``openssl req -x509`` server certificate given as their CA
file (RFC 5280 §6.1). The certificates are made by the openssl command, as users make them."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import credentials
from peers import free_tcp_port, free_udp_port, process, require, wait_for_line
from test_interop_dtls12 import openssl_s_server, run_s_client, talk_to_server
from test_interop_dtls12_loss import AioEchoServer
from test_interop_tls13 import PYTHON, our_client, our_server

from dtlsgate import serve_tls
from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.crypto.certs import load_identity

pytestmark = pytest.mark.interop


def openssl(*args: str) -> None:
    subprocess.run(["timeout", "60", "openssl", *args], check=True, capture_output=True)


def req_x509(directory: Path, name: str, cn: str = "localhost") -> tuple[str, str]:
    """A plain ``openssl req -x509``: self-signed, CA:TRUE, no subjectAltName."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", f"/CN={cn}")  # fmt: skip
    return str(cert), str(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """``plain``: a plain ``openssl req -x509`` certificate; ``ca`` and ``device``: a CA
    and a client certificate it issued without subjectAltName, as devices often carry;
    ``server``: an RSA server certificate (with SAN)."""
    require("openssl")
    d = tmp_path_factory.mktemp("conformance")
    out = {"plain": req_x509(d, "plain"), "ca": req_x509(d, "ca", "Test Device CA")}
    device_cert, device_key, csr = d / "device.pem", d / "device.key", d / "device.csr"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(device_key), "-out", str(csr), "-subj", "/CN=device-42")  # fmt: skip
    ext = d / "device.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    openssl("x509", "-req", "-in", str(csr), "-CA", out["ca"][0], "-CAkey", out["ca"][1],
            "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(device_cert))  # fmt: skip
    out["device"] = (str(device_cert), str(device_key))
    rsa_cert, rsa_key = credentials("rsa-2048")
    (d / "rsa.pem").write_bytes(rsa_cert)
    (d / "rsa.key").write_bytes(rsa_key)
    out["server"] = (str(d / "rsa.pem"), str(d / "rsa.key"))
    return out


# ---- RFC 8446 §4.2.3: no RSASSA-PKCS1-v1_5 in a TLS 1.3 CertificateVerify ---------------------


def test_openssl_offering_only_pkcs1_gets_handshake_failure(
    pki: dict[str, tuple[str, str]],
) -> None:
    """Our server with an RSA certificate cannot sign for a client offering only
    rsa_pkcs1_sha256: handshake_failure on the wire (it used to sign with PKCS#1 v1.5,
    which OpenSSL itself then refuses)."""
    require("openssl")
    with our_server(pki["server"]) as (server, port):
        args = ["openssl", "s_client", "-tls1_3", "-sigalgs", "rsa_pkcs1_sha256"]
        args += ["-connect", f"127.0.0.1:{port}", "-CAfile", pki["server"][0]]
        with process(args, seconds=20, stdin=subprocess.DEVNULL) as client:
            _, err = client.communicate(timeout=20)
        assert client.returncode != 0
        assert b"alert handshake failure" in err
        _, server_err = server.communicate(timeout=20)
    assert b"no signature scheme fits our key" in server_err


# ---- client certificates as deployed, against our servers -----------------------------------


def client_auth_config(cafile: str) -> ServerConfig:
    ident = load_identity(*credentials("ecdsa-p256"))
    return ServerConfig(
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        verify_client="required",
        cafile=cafile,
    )


# (client certificate, the server's trust anchors)
CLIENT_CERTS = {"no_san": ("device", "ca"), "self_signed_ca": ("plain", "plain")}


@pytest.mark.parametrize("case", CLIENT_CERTS)
def test_openssl_dtls12_client_certificate_as_deployed(
    pki: dict[str, tuple[str, str]], case: str
) -> None:
    require("openssl")
    cert, anchors = CLIENT_CERTS[case]
    with AioEchoServer(client_auth_config(pki[anchors][0])) as server:
        extra = ["-cert", pki[cert][0], "-key", pki[cert][1]]
        assert run_s_client(server.port, extra) == "echo:hello from openssl"


class TlsEchoServer:
    """`serve_tls` on its own thread and loop, echoing lines; records handshake failures."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.failures: list[BaseException] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(b"echo:" + line)
                await writer.drain()
            writer.close()

        async def main() -> None:
            server = await serve_tls(
                echo, "127.0.0.1", 0, self.config, on_handshake_failure=self.failures.append
            )
            self.port = server.sockets[0].getsockname()[1]
            self.stopping = asyncio.Event()
            self.ready.set()
            await self.stopping.wait()
            server.close()
            await server.wait_closed()

        self.loop.run_until_complete(main())

    def __enter__(self) -> TlsEchoServer:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)


@pytest.mark.parametrize("case", CLIENT_CERTS)
def test_openssl_tls13_client_certificate_as_deployed(
    pki: dict[str, tuple[str, str]], case: str
) -> None:
    require("openssl")
    cert, anchors = CLIENT_CERTS[case]
    with TlsEchoServer(client_auth_config(pki[anchors][0])) as server:
        args = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{server.port}"]
        args += ["-quiet", "-no_ign_eof", "-cert", pki[cert][0], "-key", pki[cert][1]]
        with process(args, seconds=20) as client:
            assert client.stdin is not None
            client.stdin.write(b"hello from openssl\n")
            client.stdin.flush()
            wait_for_line(client.stdout, "echo:hello from openssl", 15)
    assert server.failures == []


# ---- our clients, a plain `openssl req -x509` server certificate as the CA file --------------


def test_our_dtls12_client_with_a_plain_req_x509_server(pki: dict[str, tuple[str, str]]) -> None:
    cert, key = pki["plain"]
    port = free_udp_port()
    with openssl_s_server(port, ["-cert", cert, "-key", key]) as proc:
        config = ClientConfig(server_name="localhost", cafile=cert)
        assert talk_to_server(proc, port, config) == b"hello from the server\n"


def test_our_tls13_client_with_a_plain_req_x509_server(pki: dict[str, tuple[str, str]]) -> None:
    require("openssl")
    cert, key = pki["plain"]
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "1"]
    args += ["-cert", cert, "-key", key]
    with process(args, seconds=25) as server:
        wait_for_line(server.stdout, "ACCEPT")
        result: dict[str, bytes] = {}
        thread = threading.Thread(
            target=lambda: result.update(out=our_client(port, pki["plain"], b"ping\n"))
        )
        thread.start()
        wait_for_line(server.stdout, "ping", 15)
        assert server.stdin is not None
        server.stdin.write(b"pong from openssl\n")
        server.stdin.flush()
        thread.join(25)
    assert b"pong from openssl" in result["out"]


def test_our_tls13_client_still_refuses_a_req_x509_server_it_does_not_trust(
    pki: dict[str, tuple[str, str]],
) -> None:
    require("openssl")
    cert, key = pki["plain"]
    port = free_tcp_port()
    args = ["openssl", "s_server", "-tls1_3", "-accept", f"127.0.0.1:{port}", "-naccept", "1"]
    args += ["-cert", cert, "-key", key]
    with process(args, seconds=25) as server:
        wait_for_line(server.stdout, "ACCEPT")
        connect = ["timeout", "20", *PYTHON, "connect", "--tls"]
        connect += [f"127.0.0.1:{port}", "--cafile", pki["ca"][0], "--servername", "localhost"]
        out = subprocess.run(connect, input=b"", capture_output=True, timeout=25)
    assert out.returncode != 0 and b"handshake failed" in out.stderr
