"""Send a flood of ClientHellos without a cookie to a DTLS server from many loopback
addresses (127.0.0.2 and up: spoofed sources, as far as the server can tell), and count the
HelloVerifyRequests that come back. Run by the interop tests in its own process, under
``timeout``; bounded in datagrams and in time.

Usage: python hello_flood.py PORT MINIMUM SECONDS SOURCES
Sends for SECONDS, and on until MINIMUM ClientHellos went out when that takes longer (a
loaded machine sends fewer per second), but never longer than `MAX_SECONDS` nor more than
`MAX_HELLOS`. Prints ``flooding`` when it starts and ``sent N hello_verify_requests M`` when
done.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

HELLO = bytes.fromhex(
    (Path(__file__).parent / "data" / "openssl_dtls12_client_hello.hex").read_text().strip()
)
# Offsets in a DTLS record holding a handshake message: content type, then the handshake type.
CONTENT_TYPE, HANDSHAKE_TYPE = 0, 13
# Bounds whatever the arguments and the machine's speed: MINIMUM hellos on a machine so
# loaded that it sends fewer than 250 a second are not waited for.
MAX_SECONDS = 20.0
MAX_HELLOS = 1_000_000


def drain(socks: list[socket.socket]) -> int:
    got = 0
    for sock in socks:
        while True:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            if (
                len(data) > HANDSHAKE_TYPE
                and data[CONTENT_TYPE] == 22
                and data[HANDSHAKE_TYPE] == 3
            ):
                got += 1
    return got


def main() -> int:
    port, minimum, seconds, sources = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    socks = []
    for i in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.{2 + i // 250}.{2 + i % 250}", 0))
        sock.setblocking(False)
        socks.append(sock)
    print("flooding", flush=True)
    start = time.monotonic()
    deadline, limit = start + seconds, start + MAX_SECONDS
    sent = replies = 0
    while sent < MAX_HELLOS and (now := time.monotonic()) < limit:
        if now >= deadline and sent >= minimum:
            break
        try:
            socks[sent % sources].sendto(HELLO, ("127.0.0.1", port))
            sent += 1
        except (BlockingIOError, InterruptedError):
            replies += drain(socks)
        if sent % 64 == 0:
            replies += drain(socks)
    time.sleep(0.3)
    replies += drain(socks)
    print(f"sent {sent} hello_verify_requests {replies}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
