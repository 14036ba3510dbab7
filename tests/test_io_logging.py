"""What the servers log (logger ``dtlsgate``; the library configures nothing): an
application cookie callback that fails is logged once with its traceback and its datagrams
dropped; a TLS client's unprotected fatal alert is reported as that alert."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from builders import client_hello, datagram
from helpers import eventually
from peers import process, require, wait_for_line
from test_dtls12_aio import configs
from test_interop_tls13 import certs, our_server  # noqa: F401 - the certs fixture

from dtlsgate.config import ServerConfig
from dtlsgate.crypto.certs import make_self_signed
from dtlsgate.io import aio


def raising(peer: object) -> bytes:
    raise RuntimeError("the application's cookie store is down")


def too_long(peer: object) -> bytes:
    return bytes(256)


# aio.run: on uvloop, where the server reads through the loop's datagram transport.
@pytest.mark.parametrize("run", [asyncio.run, aio.run], ids=["asyncio", "aio.run"])
@pytest.mark.parametrize("generate", [raising, too_long], ids=["raises", "256-bytes"])
def test_a_failing_cookie_callback_is_logged_once_and_its_datagrams_dropped(
    generate: object, run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = configs()
    config = ServerConfig(
        certificate_chain=base.certificate_chain,
        private_key=base.private_key,
        cookie_generate=generate,  # type: ignore[arg-type]
        cookie_verify=lambda peer, cookie: True,
    )
    hellos = 5

    async def main() -> int:
        async with await aio.serve(lambda s: asyncio.sleep(0), "127.0.0.1", 0, config) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                for i in range(hellos):
                    sock.sendto(datagram(client_hello(), record_seq=i), server.address)
                await eventually(lambda: server.failures == hellos)
                with pytest.raises(BlockingIOError):
                    sock.recv(2048)  # nothing was answered
            return server.failures

    with caplog.at_level(logging.DEBUG, logger="dtlsgate"):
        failures = run(asyncio.wait_for(main(), 30))
    assert failures == hellos
    with_traceback = [r for r in caplog.records if r.exc_info is not None]
    assert len(with_traceback) == 1 and with_traceback[0].levelno == logging.ERROR
    assert with_traceback[0].name == "dtlsgate"
    # Nothing reached asyncio's own handler (one traceback per datagram before).
    assert not [r for r in caplog.records if r.name == "asyncio"]


@pytest.mark.interop
def test_tls_server_reports_a_clients_unprotected_alert_as_that_alert(
    certs: tuple[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    """OpenSSL's s_client refusing our certificate (-verify_return_error, another CA) sends
    "unknown ca" unprotected after the keys changed: our server says so."""
    require("openssl")
    (tmp_path / "other-ca.pem").write_bytes(make_self_signed("another CA")[0])
    with our_server(certs) as (server, port):
        args = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{port}"]
        args += ["-verify_return_error", "-CAfile", str(tmp_path / "other-ca.pem"), "-quiet"]
        with process(args, seconds=20) as client:
            client.wait(15)
        assert server.stderr is not None
        # After its start-up lines ("listening on", its certificate's "fingerprint ...").
        line = wait_for_line(server.stderr, "handshake failed", 10).splitlines()[-1]
    assert line == "handshake failed: peer sent unknown_ca", line


def test_verbose_logging_is_configured_by_the_cli_only() -> None:
    """``import dtlsgate`` adds no handler and sets no level on its logger."""
    code = (
        "import logging, dtlsgate, dtlsgate.io.aio, dtlsgate.io.aio_tls; "
        "log = logging.getLogger('dtlsgate'); "
        "print(len(log.handlers), log.level, log.propagate)"
    )
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert out.split() == ["0", "0", "True"]
