"""bench/workers.py's load generator (bench/loadgen/dtlsload.c) against the real
`dtlsgate serve --workers 2`: its handshakes complete, from many source ports, and both
workers serve some. Counts only, no times. Needs gcc and OpenSSL's headers (libssl-dev),
which only the bench installs: without them the test is skipped."""

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


def test_loadgen_completes_handshakes_on_both_workers(tmp_path: Path) -> None:
    if not (shutil.which("gcc") and Path("/usr/include/openssl/evp.h").exists()):
        pytest.skip("needs gcc and libssl-dev (bench/workers.py installs them)")
    binary = tmp_path / "dtlsload"
    subprocess.run(
        ["gcc", "-O2", "-o", str(binary), str(workers.SOURCE), "-lcrypto"], check=True, timeout=120
    )
    with workers.serve(2, "psk", "-v") as (_, port, logfile):
        args = ["--port", str(port), "--psk", workers.PSK, "--clients", "8"]
        done = subprocess.run(
            [str(binary), *args, "--warmup", "0.2", "--seconds", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()
    assert done[0] == "counting"
    fields = dict(kv.split("=", 1) for kv in done[-1].split()[1:])
    assert int(fields["handshakes"]) > 0
    assert int(fields["failures"]) == 0
    assert int(fields["ports"]) > 1
    log = logfile.read_text()
    logfile.unlink()
    assert "TLS_PSK_WITH_AES_128_CCM_8" in log
    per_worker = [int(n) for n in re.findall(r"stopped: (\d+) handshakes completed", log)]
    assert len(per_worker) == 2 and min(per_worker) > 0, per_worker
