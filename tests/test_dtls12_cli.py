"""`dtlsgate serve` (DTLS 1.2 echo) with `dtlsgate connect` and `openssl s_client`."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from peers import announced_port, openssl_dtls_client, process, read_line, require

pytestmark = pytest.mark.interop
PSK = "Client_identity:000102030405060708090a0b0c0d0e0f"


@contextmanager
def dtlsgate_serve(cache: Path, *extra: str) -> Iterator[int]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    args = [sys.executable, "-m", "dtlsgate", "serve", "--port", "0", *extra]
    # A backstop above the tests' own bounds (two 30 s connects): under load 40 s ended the
    # server while the second client was still on its way.
    with process(args, seconds=120, stdin=subprocess.DEVNULL, env=env) as proc:
        yield announced_port(proc, "serving DTLS 1.3 and 1.2 on ")


def run_connect(port: int, lines: bytes, *extra: str) -> subprocess.CompletedProcess[bytes]:
    args = [sys.executable, "-m", "dtlsgate", "connect", f"127.0.0.1:{port}", *extra]
    return subprocess.run(["timeout", "30", *args], input=lines, capture_output=True, check=False)


def test_serve_makes_and_caches_a_self_signed_certificate(tmp_path: Path) -> None:
    with dtlsgate_serve(tmp_path) as port:
        cert = tmp_path / "dtlsgate" / "self-signed-cert.pem"
        key = tmp_path / "dtlsgate" / "self-signed-key.pem"
        assert cert.is_file() and key.stat().st_mode & 0o077 == 0
        done = run_connect(port, b"one\ntwo\n", "--cafile", str(cert), "--servername", "localhost")
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"one\ntwo\n"
        # A wrong name is refused by the verification.
        bad = run_connect(port, b"x\n", "--cafile", str(cert), "--servername", "example.com")
        assert bad.returncode == 1 and b"certificate" in bad.stderr
    first = cert.read_bytes()
    with dtlsgate_serve(tmp_path):
        assert cert.read_bytes() == first  # reused, not remade


def test_serve_psk_with_openssl_s_client(tmp_path: Path) -> None:
    require("openssl")
    with dtlsgate_serve(tmp_path, "--psk", PSK) as port:
        args = openssl_dtls_client(
            port,
            "-quiet",
            "-no_ign_eof",
            "-psk",
            PSK.split(":")[1],
            "-psk_identity",
            "Client_identity",
            "-cipher",
            "PSK-AES128-CCM8",
        )
        with process(args, seconds=20) as proc:
            assert proc.stdin is not None
            proc.stdin.write(b"coap-ish\n")
            proc.stdin.flush()
            assert read_line(proc.stdout, time.monotonic() + 15) == "coap-ish"
        done = run_connect(port, b"ours\n", "--psk", PSK)
        assert done.stdout == b"ours\n", done.stderr


def _first_use(cache: str, barrier: Any, results: Any) -> None:
    """In a forked process: the cached self-signed pair, fetched at the barrier's release,
    and whether its key is the certificate's."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
    from dtlsgate.io.cli_shared import self_signed_files

    os.environ["XDG_CACHE_HOME"] = cache
    barrier.wait(60)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    try:
        for _ in range(20):  # read again while the others may still be making theirs
            cert, key = self_signed_files()
            certificate = load_certificate_chain(str(cert))[0].public_key().public_bytes(*spki)
            if certificate != load_private_key(str(key)).public_key().public_bytes(*spki):
                results.put("a key that is not the certificate's")
                return
    except Exception as exc:  # reported to the test
        results.put(repr(exc))
        return
    results.put(True)


def test_servers_started_at_once_share_one_self_signed_pair(tmp_path: Path) -> None:
    """Several first runs at once (a fresh machine starting `dtlsgate serve` workers or
    services together; 300 loaded start-ups sharing a cache hit it once): each gets a
    complete key that matches its certificate. Before, each wrote the files in place, so
    one could read a key another had just truncated ("no PEM private key found"), or a
    certificate from one run with the key of another."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(8), context.Queue()
    procs = [
        context.Process(target=_first_use, args=(str(tmp_path), barrier, results)) for _ in range(8)
    ]
    for proc in procs:
        proc.start()
    try:
        got = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            proc.kill()
    assert got == [True] * 8
