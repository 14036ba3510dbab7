"""The command-line options of issue 13 item 6 and issue 15 items 3-4, each against a real
peer (and our own other end), every process under `timeout`:

- `serve --tls --psk / --groups`, `connect --tls --psk / --groups / --sigalgs` against
  `openssl s_client/s_server -tls1_3 -psk -groups -sigalgs`;
- `serve --Verify --CAfile`: a client without a certificate refused, one with it accepted;
- `serve --tls --key-update-every N`: the KeyUpdate seen by `openssl s_client -msg`;
- `connect --dtls1_2 --sess-out F` then `--sess-in F` resuming against `dtlsgate serve` and
  `openssl s_server -dtls1_2`;
- `--rawpk-key/--pin` between our serve and connect, and against gnutls-cli/gnutls-serv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from peers import (
    announced_port,
    converse,
    free_tcp_port,
    free_udp_port,
    openssl_dtls_client,
    process,
    read_until,
    require,
    start,
    stop,
    wait_bound,
    wait_for_line,
)
from test_interop_dtls12 import make_cert
from test_interop_raw_public_keys import DTLS12_RAWPK, gnutls_serv, key_pair

from dtlsgate.crypto.certs import make_self_signed

pytestmark = pytest.mark.interop

DTLSGATE = [sys.executable, "-m", "dtlsgate"]
KEY_HEX = "000102030405060708090a0b0c0d0e0f"
PSK = f"Client_identity:{KEY_HEX}"


@contextmanager
def serve(cache: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`dtlsgate serve --port 0 ...` (-v), its process and its port once it listens."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    # A backstop above the tests' own bounds (several 30 s connects or clients).
    args = [*DTLSGATE, "serve", "--port", "0", "-v", *extra]
    proc = start(
        args,
        seconds=120,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        yield proc, announced_port(proc, "listening on ", "serving DTLS")
    finally:
        stop(proc)  # the tests wait for it first (server_log): stop is safe after that


def server_log(proc: subprocess.Popen[bytes]) -> str:
    """What the server wrote to stderr so far (it was killed: read to the end)."""
    assert proc.stderr is not None and proc.stdout is not None
    proc.wait(5)
    return proc.stderr.read().decode() + proc.stdout.read().decode()


def connect(
    port: int, *extra: str, data: bytes = b"hello\n", cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"XDG_CACHE_HOME": str(cache)} if cache else {})}
    args = ["timeout", "30", *DTLSGATE, "connect", f"127.0.0.1:{port}", *extra]
    done = subprocess.run(args, input=data, capture_output=True, check=False, env=env)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


# What s_client prints when our server's echo of "hello" comes back.
ECHO = ((b"hello\n", "hello"),)


def s_client(port: int, *extra: str, exchange: tuple[tuple[bytes, str], ...] = ECHO) -> str:
    """`openssl s_client -tls1_3` talking to our server (`converse`: each line once the
    answer before it is back, then end of input); everything it printed, standard error
    too. A refused client exits on the alert, which ends the exchange."""
    args = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{port}", "-no_ign_eof"]
    with process([*args, *extra], seconds=30, stderr=subprocess.STDOUT) as proc:
        return converse(proc, exchange)


@contextmanager
def s_server(*extra: str, seconds: float = 25) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`openssl s_server` on a free port (UDP with -dtls1_2, else TCP)."""
    port = free_udp_port() if "-dtls1_2" in extra else free_tcp_port()
    args = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", *extra]
    with process(args, seconds=seconds, stderr=subprocess.STDOUT) as proc:
        wait_for_line(proc.stdout, "ACCEPT")
        yield proc, port


def until_line(args: list[str], last: str, seconds: float = 30) -> str:
    """Run a peer client (standard error too), send "hello", read until a line ``last``
    (or the deadline, or its exit); everything it printed. The deadline only bounds a client
    that hangs: a refused one exits on the alert, an accepted one ends the wait with its
    line (8 s, before, was a handshake and an echo through our Python server on a loaded
    machine, short for an answer that must come)."""
    with process(args, seconds=seconds + 5, stderr=subprocess.STDOUT) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        with suppress(BrokenPipeError):  # it may have exited already
            proc.stdin.write(b"hello\n")
            proc.stdin.flush()
        lines: list[str] = []
        read_until(proc.stdout, lambda line: line == last, time.monotonic() + seconds, lines)
        return "\n".join(lines)


def rest(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    proc.wait(15)
    return proc.stdout.read().decode(errors="replace")


# ---- TLS 1.3: --psk, --groups, --sigalgs -------------------------------------------------------


def test_openssl_s_client_psk_and_group_with_serve_tls(tmp_path: Path) -> None:
    """`serve --tls --psk --groups x448:secp521r1` (no certificate): openssl's client with
    -psk -groups x448 gets X448 and the PSK; our server reports the group."""
    require("openssl")
    with serve(tmp_path, "--tls", "--psk", PSK, "--groups", "x448:secp521r1") as (proc, port):
        out = s_client(port, "-psk", KEY_HEX, "-groups", "x448")
    assert "Server Temp Key: X448" in out, out
    assert "TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256" in out and "hello" in out, out
    assert "accepted TLS_AES_128_GCM_SHA256 x448" in server_log(proc)


def test_serve_tls_groups_refuses_a_client_without_them(tmp_path: Path) -> None:
    """--groups limits what the server accepts: a client offering only X25519 fails."""
    require("openssl")
    with serve(tmp_path, "--tls", "--psk", PSK, "--groups", "x448") as (proc, port):
        out = s_client(port, "-psk", KEY_HEX, "-groups", "X25519")
    assert "handshake failure" in out, out
    assert "handshake failed" in server_log(proc)


def test_connect_tls_psk_groups_against_openssl_s_server() -> None:
    """`connect --tls --psk --groups secp521r1` against `openssl s_server -tls1_3 -psk
    -nocert -rev`: the line comes back reversed; s_server saw only secp521r1 offered."""
    require("openssl")
    with s_server("-tls1_3", "-psk", KEY_HEX, "-nocert", "-naccept", "1", "-rev") as (p, port):
        done = connect(port, "--tls", "--psk", PSK, "--groups", "secp521r1")
        log = rest(p)
    assert (done.returncode, done.stdout) == (0, "olleh\n"), done.stderr
    assert "Supported groups: secp521r1" in log and "No peer certificate" in log, log


@pytest.mark.parametrize("scheme, works", [("ecdsa_secp256r1_sha256", True), ("ed25519", False)])
def test_connect_tls_sigalgs_against_openssl_s_server(
    tmp_path: Path, scheme: str, works: bool
) -> None:
    """`connect --tls --sigalgs`: an ECDSA P-256 server is accepted when we offer its scheme,
    and cannot sign when we offer only Ed25519 (a one-line handshake failure, rc 1)."""
    require("openssl")
    cert, key = make_cert(tmp_path)
    extra = ["-tls1_3", "-cert", str(cert), "-key", str(key), "-naccept", "1", "-rev"]
    with s_server(*extra) as (_, port):
        done = connect(port, "--tls", "--cafile", str(cert), "--servername", "localhost",
                       "--sigalgs", scheme)  # fmt: skip
    if works:
        assert (done.returncode, done.stdout) == (0, "olleh\n"), done.stderr
    else:
        assert done.returncode == 1 and done.stdout == "", done.stderr
        assert done.stderr.startswith("dtlsgate: handshake failed") and done.stderr.count("\n") == 1


# ---- --verify / --Verify with --CAfile -------------------------------------------------------


def client_identity(tmp_path: Path) -> tuple[Path, Path]:
    cert_pem, key_pem = make_self_signed("client", days=1)
    cert, key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def test_serve_tls_capital_verify_requires_a_client_certificate(tmp_path: Path) -> None:
    require("openssl")
    cert, key = client_identity(tmp_path)
    with serve(tmp_path, "--tls", "--Verify", "--CAfile", str(cert)) as (proc, port):
        without = s_client(port)
        with_cert = s_client(port, "-cert", str(cert), "-key", str(key))
    assert "alert certificate required" in without, without
    assert "hello" in with_cert.split("Verify return code")[-1], with_cert
    log = server_log(proc)
    assert "handshake failed: client sent no certificate" in log, log
    assert log.count("accepted TLS_AES_128_GCM_SHA256") == 1, log


def test_serve_tls_verify_requests_but_does_not_require(tmp_path: Path) -> None:
    """--verify asks (a CertificateRequest: openssl prints the signature algorithms it
    requested); a client without a certificate still gets its echo."""
    require("openssl")
    cert, _ = client_identity(tmp_path)
    with serve(tmp_path, "--tls", "--verify", "--CAfile", str(cert)) as (_, port):
        out = s_client(port)
    assert "Requested Signature Algorithms" in out, out
    assert "hello" in out.split("Verify return code")[-1], out


def test_dtls_capital_verify_with_openssl_s_client(tmp_path: Path) -> None:
    """--Verify works for DTLS too (openssl's DTLS 1.2 client)."""
    require("openssl")
    cert, key = client_identity(tmp_path)
    with serve(tmp_path, "--Verify", "--CAfile", str(cert)) as (_, port):
        args = openssl_dtls_client(port, "-quiet")
        without = until_line(args, "hello")
        with_cert = until_line([*args, "-cert", str(cert), "-key", str(key)], "hello")
    assert "hello" not in without.splitlines() and "alert" in without, without
    assert "hello" in with_cert.splitlines(), with_cert


# ---- KeyUpdate -------------------------------------------------------------------------------


def test_serve_tls_key_update_seen_by_openssl(tmp_path: Path) -> None:
    """--key-update-every 1: after echoing a line the server sends a KeyUpdate asking for one
    back (RFC 8446 §4.6.3); openssl's -msg shows it arriving after the echo, openssl's
    answer going out with its next line, and that line's echo under the new keys."""
    require("openssl")
    with serve(tmp_path, "--tls", "--key-update-every", "1") as (proc, port):
        # "again" goes once the KeyUpdate has arrived: openssl answers it with its next
        # write, so a line sent before it came would go under the old keys, unanswered.
        key_update = "<<< TLS 1.3, Handshake [length 0005], KeyUpdate"
        out = s_client(port, "-msg", exchange=((b"hello\n", key_update), (b"again\n", "again")))
    received = out.index("<<< TLS 1.3, Handshake [length 0005], KeyUpdate")
    assert out.index("hello") < received, out
    answered = out.index(">>> TLS 1.3, Handshake [length 0005], KeyUpdate", received)
    assert out.index("again", answered) > answered, out
    log = server_log(proc)
    assert "sent a KeyUpdate after 1 records" in log and "after 2 records" in log, log


# ---- --sess-out / --sess-in (DTLS 1.2) -------------------------------------------------------


def test_connect_sess_out_then_sess_in_against_serve(tmp_path: Path) -> None:
    sess = tmp_path / "sess.pem"
    cert = tmp_path / "dtlsgate" / "self-signed-cert.pem"
    with serve(tmp_path) as (proc, port):
        trust = ["--cafile", str(cert), "--servername", "localhost", "--dtls1_2", "-v"]
        first = connect(port, *trust, "--sess-out", str(sess))
        second = connect(port, *trust, "--sess-in", str(sess), data=b"again\n")
    assert (first.returncode, first.stdout) == (0, "hello\n"), first.stderr
    assert (second.returncode, second.stdout) == (0, "again\n"), second.stderr
    assert sess.read_text().startswith("-----BEGIN DTLSGATE DTLS 1.2 SESSION-----")
    assert sess.stat().st_mode & 0o077 == 0
    assert "full handshake" in first.stderr and "resumed handshake" in second.stderr
    log = server_log(proc)
    assert log.count("full handshake") == 1 and log.count("resumed handshake") == 1, log


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "no_ticket"])
def test_connect_sess_in_against_openssl_s_server(tmp_path: Path, tickets: bool) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    sess = tmp_path / "sess.pem"
    extra = ["-dtls1_2", "-cert", str(cert), "-key", str(key), "-naccept", "2"]
    with s_server(*extra, *([] if tickets else ["-no_ticket"])) as (p, port):
        trust = ["--cafile", str(cert), "--servername", "localhost", "--dtls1_2", "-v"]
        first = connect(port, *trust, "--sess-out", str(sess))
        second = connect(port, *trust, "--sess-in", str(sess))
        log = rest(p)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "full handshake" in first.stderr and "resumed handshake" in second.stderr
    assert log.count("Reused session-id") == 1, log


# ---- raw public keys -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [["--dtls1_2"], ["--dtls1_3"], ["--tls"]], ids=lambda m: m[0])
def test_rawpk_between_our_serve_and_connect(tmp_path: Path, mode: list[str]) -> None:
    """Both sides present bare keys and pin the other's (serve --Verify --pin); a connect
    pinning another key is refused (rc 1, one line)."""
    require("openssl")
    server_key, server_pub = key_pair(tmp_path, "server")
    client_key, client_pub = key_pair(tmp_path, "client")
    _, other_pub = key_pair(tmp_path, "other")
    srv = [*mode, "--rawpk-key", str(server_key), "--Verify", "--pin", str(client_pub)]
    ours = [*mode, "--rawpk-key", str(client_key)]
    with serve(tmp_path, *srv) as (proc, port):
        good = connect(port, *ours, "--pin", str(server_pub))
        bad = connect(port, *ours, "--pin", str(other_pub))
    assert (good.returncode, good.stdout) == (0, "hello\n"), good.stderr
    assert bad.returncode == 1 and "not pinned" in bad.stderr, bad.stderr
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    # The refused client told the server why (RFC 7250 §4: bad_certificate).
    assert "handshake failed: peer sent bad_certificate" in server_log(proc)


def test_gnutls_cli_rawpk_with_our_serve(tmp_path: Path) -> None:
    require("gnutls-cli", "openssl")
    server_key, _ = key_pair(tmp_path, "server")
    client_key, client_pub = key_pair(tmp_path, "client")
    srv = ["--rawpk-key", str(server_key), "--Verify", "--pin", str(client_pub), "--dtls1_2"]
    with serve(tmp_path, *srv) as (proc, port):
        ours = ["--rawpkfile", str(client_pub), "--rawpkkeyfile", str(client_key)]
        args = ["gnutls-cli", "--udp", "-p", str(port), "127.0.0.1", "--insecure"]
        out = until_line([*args, *ours, "--priority", DTLS12_RAWPK], "hello")
    assert "hello" in out.split("Simple Client Mode")[-1].splitlines(), out
    assert "full handshake" in server_log(proc)


def test_connect_rawpk_with_gnutls_serv(tmp_path: Path) -> None:
    require("gnutls-serv", "openssl")
    server_key, server_pub = key_pair(tmp_path, "server")
    client_key, _ = key_pair(tmp_path, "client")
    _, other_pub = key_pair(tmp_path, "other")
    port = free_udp_port()
    args = gnutls_serv(port, server_key, server_pub, ["--priority", DTLS12_RAWPK])
    with process(args, seconds=30, stdin=subprocess.DEVNULL) as server:
        wait_bound(server, port)
        ours = ["--dtls1_2", "--rawpk-key", str(client_key)]
        good = connect(port, *ours, "--pin", str(server_pub))
        bad = connect(port, *ours, "--pin", str(other_pub))
    assert (good.returncode, good.stdout) == (0, "hello\n"), good.stderr
    assert bad.returncode == 1 and "not pinned" in bad.stderr, bad.stderr


# ---- the same options over DTLS ----------------------------------------------------------------


def test_dtls13_ciphersuites_and_groups_between_serve_and_connect(tmp_path: Path) -> None:
    """DTLS 1.3 takes --ciphersuites (a CCM suite turned on) and --groups on both sides;
    both report the suite (the server's -v log, the client's)."""
    common = ["--dtls1_3", "--ciphersuites", "TLS_AES_128_CCM_8_SHA256", "--groups", "secp384r1"]
    with serve(tmp_path, *common) as (proc, port):
        done = connect(port, *common, "--insecure", "-v")
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
    assert "DTLS 1.3 TLS_AES_128_CCM_8_SHA256, full handshake" in done.stderr
    assert "DTLS 1.3 TLS_AES_128_CCM_8_SHA256, full handshake" in server_log(proc)


@pytest.mark.parametrize("pin", ["", "--dtls1_2", "--dtls1_3"])
def test_serve_and_connect_version_flags(tmp_path: Path, pin: str) -> None:
    """Issue 12 item 6: `serve` takes both versions by default, `--dtls1_2`/`--dtls1_3` pin
    one; `connect` offers both by default and takes the same flags. The version shows in
    each side's log line; a client pinned to a version the server is not refuses to go on."""
    flags = ("", "--dtls1_2", "--dtls1_3")
    served = {"": ("1.3", "1.2", "1.3"), "--dtls1_2": ("1.2", "1.2", None)}
    served["--dtls1_3"] = ("1.3", None, "1.3")
    versions = dict(zip(flags, served[pin], strict=True))

    def run(flag: str) -> subprocess.CompletedProcess[str]:
        # A refused client ends when its handshake times out: 3 s; the others may take long
        # on a loaded machine (their answer ends the wait).
        timeout = "3" if versions[flag] is None else "20"
        return connect(port, *([flag] if flag else []), "--insecure", "-v", "--timeout", timeout)

    with serve(tmp_path, *([pin] if pin else [])) as (proc, port), ThreadPoolExecutor(3) as pool:
        # The three clients at once: the refused one waits out its --timeout, and each
        # process's start-up is most of the rest; the checks do not depend on their order.
        runs = dict(zip(flags, pool.map(run, flags), strict=True))
    log = server_log(proc)
    for flag, version in versions.items():
        done = runs[flag]
        if version is None:
            assert done.returncode == 1 and done.stdout == "", (flag, done.stderr)
        else:
            assert (done.returncode, done.stdout) == (0, "hello\n"), (flag, done.stderr)
            assert f"DTLS {version} " in done.stderr, (flag, done.stderr)
    expected = [v for v in served[pin] if v is not None]
    assert sorted(re.findall(r": DTLS (1\.[23]) ", log)) == sorted(expected), log


def test_dtls12_groups_with_openssl_s_client(tmp_path: Path) -> None:
    """`serve --groups x448:secp384r1` (DTLS): openssl's DTLS 1.2 client offering P-256 and
    X448 gets X448 (P-256 listed for the certificate's curve, which its -groups also limits
    in TLS 1.2); one offering only P-256 is refused."""
    require("openssl")
    with serve(tmp_path, "--groups", "x448:secp384r1") as (_, port):
        args = openssl_dtls_client(port, "-brief")
        runs = [
            subprocess.run(
                ["timeout", "10", *args, "-groups", group],
                input=b"hello\n",
                capture_output=True,
                check=False,
            )
            for group in ("P-256:X448", "P-256")
        ]
    x448, p256 = runs
    assert b"Server Temp Key: X448" in x448.stderr, x448.stderr
    assert b"handshake failure" in p256.stderr, p256.stderr
