"""bench/workers.py's load generator (bench/loadgen/dtlsload.c) against the real
`dtlsgate serve --workers 2`, and against the bench's C contender (bench/loadgen/dtlsserve.c,
OpenSSL's libssl, two processes on one port): its handshakes complete, from many source ports,
and both workers serve some. Counts only, no times. Needs gcc and OpenSSL's headers
(libssl-dev), which only the bench installs: without them the tests are skipped."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import workers

pytestmark = pytest.mark.interop


def compiled(tmp: pytest.TempPathFactory, source: Path, *libs: str) -> Path:
    if not (shutil.which("gcc") and Path("/usr/include/openssl/ssl.h").exists()):
        pytest.skip("needs gcc and libssl-dev (bench/workers.py installs them)")
    binary = tmp.mktemp(source.stem) / source.stem
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source), *libs], check=True, timeout=120)
    return binary


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compiled(tmp_path_factory, workers.SOURCE, "-lcrypto")


@pytest.fixture(scope="module")
def c_stack(tmp_path_factory: pytest.TempPathFactory) -> workers.Stack:
    """bench/loadgen/dtlsserve.c, the bench's C contender."""
    binary = compiled(tmp_path_factory, workers.CSERVER, "-lssl", "-lcrypto")
    return workers.Stack("openssl", str(binary))


def load(binary: Path, port: int, *extra: str) -> dict[str, str]:
    """One second of dtlsload's handshakes; its counts."""
    args = ["--port", str(port), "--clients", "8", *extra]
    done = subprocess.run(
        [str(binary), *args, "--warmup", "0.2", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert done[0] == "counting"
    return dict(kv.split("=", 1) for kv in done[-1].split()[1:])


def test_loadgen_completes_handshakes_on_both_workers(loadgen: Path) -> None:
    with workers.serve(2, "psk", "-v") as (_, port, logfile):
        fields = load(loadgen, port, "--psk", workers.PSK)
    assert int(fields["handshakes"]) > 0
    assert int(fields["failures"]) == 0
    assert int(fields["ports"]) > 1
    log = logfile.read_text()
    logfile.unlink()
    assert "TLS_PSK_WITH_AES_128_CCM_8" in log
    per_worker = [int(n) for n in re.findall(r"stopped: (\d+) handshakes completed", log)]
    assert len(per_worker) == 2 and min(per_worker) > 0, per_worker


@pytest.mark.parametrize("suite", ["psk", "cert"])
def test_c_contender_serves_on_both_processes(
    loadgen: Path, c_stack: workers.Stack, suite: str
) -> None:
    """dtlsserve.c, two processes on one port: both complete handshakes, in both suites."""
    with workers.serve(2, suite, stack=c_stack) as (_, port, logfile):
        fields = load(loadgen, port, *(["--psk", workers.PSK] if suite == "psk" else []))
    assert int(fields["handshakes"]) > 0
    assert int(fields["failures"]) == 0 and int(fields["abandoned"]) == 0
    assert int(fields["ports"]) > 1
    log = logfile.read_text()
    logfile.unlink()
    per_process = [
        (int(n), int(f))
        for n, f in re.findall(r"stopped: (\d+) handshakes completed, (\d+) failed", log)
    ]
    assert len(per_process) == 2, log
    assert min(n for n, _ in per_process) > 0 and max(f for _, f in per_process) == 0, log


def test_c_contender_shares_its_cookie_secret(c_stack: workers.Stack) -> None:
    """16 clients get their HelloVerifyRequests from two dtlsserve processes; the forked
    one stops; the other must answer every ClientHello carrying a cookie."""
    with workers.serve(2, "cert", stack=c_stack) as (server, port, logfile):
        held = workers.held_client_hellos(port, 16)
        workers.stop_workers(server)
        answered = 0
        for sock, hello in held:
            sock.send(hello)
            reply = sock.recv(65535)
            answered += reply[0] == 22 and reply[13] == 2  # a ServerHello
            sock.close()
    log = logfile.read_text()
    logfile.unlink()
    # The stopped process's summary comes first: it minted some of the cookies.
    minted = [int(n) for n in re.findall(r"(\d+) HelloVerifyRequests", log)]
    assert len(minted) == 2 and minted[0] > 0 and sum(minted) == len(held), log
    assert answered == len(held)
