"""Every Python block of README.md runs as written, each in its own process under a deadline,
in a directory holding ``ca.pem`` (a private CA), ``cert.pem`` and ``key.pem`` (a
``localhost`` certificate it signed).

The harness changes only addresses: the README's ports (4433, 8443, 5684) become free ones
and ``0.0.0.0`` becomes ``127.0.0.1`` (tests stay on loopback). A comment before a block
says what else it needs:

- ``<!-- readme-test: serves -->``: a server that runs until stopped; it is started first
  and stays up for the ``client`` blocks;
- ``<!-- readme-test: client -->``: needs that server;
- ``<!-- readme-test: listens -->``: waits for one DTLS client and ends; the harness sends
  ``dtlsgate connect`` at it;
- ``<!-- readme-test: skip (why) -->``: not run here; the comment says where it is tested;
- no comment: runs alone and must end by itself.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from peers import ROOT, free_port, require, stop, wait_bound
from peers import start as start_process

BLOCK = re.compile(r"(?:<!-- readme-test: (\w+)[^>]*-->\n)?```python\n(.*?)```", re.DOTALL)
README_PORTS = ("4433", "8443", "5684")
DEADLINE = 30  # seconds for any one block


def blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    return [(tag or "alone", code) for tag, code in BLOCK.findall(text)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, and cert.pem/key.pem for localhost signed by it (made with openssl)."""
    require("openssl")
    d = tmp_path_factory.mktemp("readme")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca_ext += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    ca = ["-keyout", "ca-key.pem", "-out", "ca.pem", "-subj", "/CN=dtlsgate README CA"]
    leaf = ["-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial"]
    for args in (
        ["req", "-x509", *ec, *ca, "-days", "30", *ca_ext],
        ["req", *ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", *leaf, "-out", "cert.pem", "-days", "30", "-extfile", "leaf.ext"],
    ):
        subprocess.run(["timeout", "30", "openssl", *args], cwd=d, capture_output=True, check=True)
    return d


def localised(code: str, ports: dict[str, int]) -> str:
    for readme_port, port in ports.items():
        code = code.replace(readme_port, str(port))
    return code.replace('"0.0.0.0"', '"127.0.0.1"')


def start(code: str, cwd: Path) -> subprocess.Popen[str]:
    return start_process(  # type: ignore[return-value]
        [sys.executable, "-c", code],
        seconds=DEADLINE,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=DEADLINE + 5)
    finally:
        stop(proc)  # type: ignore[arg-type]  # what it started, and the group's anchor
    return proc.returncode, out, err


def run(code: str, cwd: Path) -> str:
    """Run a block to its end."""
    rc, out, err = finish(start(code, cwd))
    if rc != 0:
        raise AssertionError(f"README block failed (rc {rc}):\n{code}\n{err}")
    return out


@contextmanager
def running(code: str, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    proc = start(code, cwd)
    try:
        yield proc
    finally:
        stop(proc)  # type: ignore[arg-type]
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def poke(port: int, cwd: Path, block: subprocess.Popen[str]) -> None:
    """A DTLS 1.2 client (the blocks show the HelloVerifyRequest exchange) at a ``listens``
    block, once the block's socket is bound."""
    wait_bound(block, port, DEADLINE)  # type: ignore[arg-type]
    args = [sys.executable, "-m", "dtlsgate", "connect", f"127.0.0.1:{port}"]
    args += ["--cafile", "ca.pem", "--servername", "localhost", "--timeout", "10", "--dtls1_2"]
    subprocess.run(
        ["timeout", "20", *args], input=b"ping\n", cwd=cwd, capture_output=True, check=False
    )


def test_the_readme_has_the_blocks_this_test_expects() -> None:
    tags = [tag for tag, _ in blocks()]
    assert tags.count("serves") == 1 and tags.count("client") >= 2 and "listens" in tags
    assert len(tags) >= 8


@pytest.mark.interop
def test_every_python_block_in_the_readme_runs(workdir: Path) -> None:
    ports = {p: free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM) for p in README_PORTS}
    found = blocks()
    server = next(localised(code, ports) for tag, code in found if tag == "serves")
    outputs = []
    with running(server, workdir) as proc:
        # Its clients start once it is bound: one sent earlier is refused (ICMP).
        wait_bound(proc, ports["4433"], DEADLINE)  # type: ignore[arg-type]
        for tag, code in found:
            if tag == "client":
                outputs.append(run(localised(code, ports), workdir))
        assert proc.poll() is None, "the README server stopped"
    for tag, code in found:
        if tag == "alone":
            outputs.append(run(localised(code, ports), workdir))
        elif tag == "listens":
            with running(localised(code, ports), workdir) as proc:
                poke(ports["4433"], workdir, proc)
                rc, out, err = finish(proc)
                assert rc == 0, f"README block failed (rc {rc}):\n{code}\n{err}"
                outputs.append(out)
    text = "\n".join(outputs)
    assert text.count("b'hello'") == 2  # the asyncio and the blocking client
    assert "b'coap' TLS_PSK_WITH_AES_128_CCM_8" in text  # what the README claims
    assert "b'hello\\n' hello retry: True" in text  # the stateless TLS 1.3 server
    # The WebRTC-style pair: the profile agreed on, the same SRTP keys on both ends.
    assert "SRTP_AES128_CM_HMAC_SHA1_80 True True" in text
    assert "admitted ('127.0.0.1', " in text and "echoed b'ping\\n'" in text
