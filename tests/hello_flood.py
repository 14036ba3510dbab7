"""Send a flood of ClientHellos without a cookie to a DTLS server from many loopback
addresses (127.0.0.2 and up: spoofed sources, as far as the server can tell), and count the
HelloVerifyRequests that come back. Run by the interop tests in its own process, under
``timeout``; bounded in datagrams and in time.

Usage: python hello_flood.py PORT MINIMUM SECONDS SOURCES
Sends for SECONDS, and on until MINIMUM ClientHellos went out when that takes longer (a
loaded machine sends fewer per second), but never longer than `MAX_SECONDS` nor more than
`MAX_HELLOS`. Prints ``flooding`` when it starts and ``sent N hello_verify_requests M`` when
done.

The flood keeps at most `WINDOW` ClientHellos unanswered: as fast as the server answers, so
the server is never idle for want of hellos, but its socket's receive queue never fills.
Sent open loop, a flood outruns a Python server many times over, and the kernel then drops
most datagrams to the server's port, the real clients' with the flood's (about half of them
on an idle machine, more under load): whether a client was served then depended on how
many of its handshake's transmissions the kernel happened to drop (libcoap's clients give
up after four retransmissions per handshake, whatever their -B), not on the server, which
cannot read what the kernel dropped.
"""

from __future__ import annotations

import select
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
# ClientHellos unanswered at a time. A UDP socket's default receive buffer (212,992 bytes,
# /proc/sys/net/core/rmem_default) holds 166 of these 205-byte datagrams on loopback
# (about 1,280 bytes of kernel accounting each), so the flood's share of the server's queue
# stays well below what would make the kernel drop, even after two stalls (below).
WINDOW = 64
# A window's hellos unanswered this long count as lost and the flood goes on (the server
# answers every cookie-less ClientHello it reads, so this is a starved server, not loss).
STALL_SECONDS = 2.0


def main() -> int:
    port, minimum, seconds, sources = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    socks = []
    poller = select.poll()
    for i in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.{2 + i // 250}.{2 + i % 250}", 0))
        sock.setblocking(False)
        socks.append(sock)
        poller.register(sock, select.POLLIN)
    by_fd = {sock.fileno(): sock for sock in socks}

    def collect(wait: float) -> int:
        """The HelloVerifyRequests that arrived within ``wait`` seconds, all read."""
        got = 0
        for fd, _ in poller.poll(int(wait * 1000)):
            while True:
                try:
                    data = by_fd[fd].recv(2048)
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

    print("flooding", flush=True)
    start = time.monotonic()
    deadline, limit = start + seconds, start + MAX_SECONDS
    sent = replies = lost = 0
    while sent < MAX_HELLOS and (now := time.monotonic()) < limit:
        if now >= deadline and sent >= minimum:
            break
        if sent - replies - lost >= WINDOW:
            got = collect(min(STALL_SECONDS, limit - now))
            replies += got
            # Stalled: the unanswered count as lost; a late answer to one still counts.
            lost = min(lost, sent - replies) if got else sent - replies
            continue
        try:
            socks[sent % sources].sendto(HELLO, ("127.0.0.1", port))
            sent += 1
        except (BlockingIOError, InterruptedError):
            replies += collect(0.01)
            lost = min(lost, sent - replies)
    # The answers to the last hellos (bounded).
    end = time.monotonic() + STALL_SECONDS
    while replies < sent and (now := time.monotonic()) < end:
        replies += collect(end - now)
    print(f"sent {sent} hello_verify_requests {replies}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
