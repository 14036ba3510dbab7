"""A tinydtls DTLS 1.2 client (PyPI ``DTLSSocket``), run by the interop tests in its own
process under ``timeout``: PSK with TLS_PSK_WITH_AES_128_CCM_8, as CoAP devices use it.

Usage: python tinydtls_client.py PORT IDENTITY PSK_HEX LINE...
Connects to ::ffff:127.0.0.1:PORT (tinydtls wants IPv6 addresses), sends each LINE as one
record and prints each record it gets back as ``got:<repr>``; prints ``connected`` once the
handshake completes. Exits 0 when every line got an answer, 1 otherwise. Every wait is
bounded.
"""

from __future__ import annotations

import select
import socket
import sys
import time

from DTLSSocket import dtls  # type: ignore[import-not-found]

# tinydtls event code for "handshake complete" (DTLS_EVENT_CONNECTED).
DTLS_EVENT_CONNECTED = 0x1DE
WAIT = 10.0


def main() -> int:
    port, identity, psk_hex, *lines = sys.argv[1:]
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    events: list[int] = []
    received: list[bytes] = []

    def write(addr: tuple[str, int], data: bytes) -> int:
        return sock.sendto(data, (addr[0], addr[1], 0, 0))

    def read(addr: tuple[str, int], data: bytes) -> int:
        received.append(bytes(data))
        return len(data)

    def event(level: int, code: int) -> int:
        events.append(code)
        return 0

    # DTLSSocket keeps a bare char* to pskId: the bytes object must outlive the context.
    psk_id = identity.encode()
    ctx = dtls.DTLS(
        read=read, write=write, event=event, pskId=psk_id, pskStore={psk_id: bytes.fromhex(psk_hex)}
    )

    def pump(until: float, done: object) -> bool:
        while time.monotonic() < until:
            if done():  # type: ignore[operator]
                return True
            ready, _, _ = select.select([sock], [], [], 0.2)
            if ready:
                data, src = sock.recvfrom(65535)
                ctx.handleMessageAddr(src[0], src[1], data)
            else:
                ctx.checkRetransmit()
        return bool(done())  # type: ignore[operator]

    session = ctx.connect("::ffff:127.0.0.1", int(port))
    if not session or not pump(time.monotonic() + WAIT, lambda: DTLS_EVENT_CONNECTED in events):
        print(f"handshake failed: events {[hex(e) for e in events]}", flush=True)
        return 1
    print("connected", flush=True)
    for i, line in enumerate(lines):
        ctx.write(session, line.encode())
        if not pump(time.monotonic() + WAIT, lambda i=i: len(received) > i):
            print("no answer", flush=True)
            return 1
        print(f"got:{received[i]!r}", flush=True)
    ctx.close(session)
    pump(time.monotonic() + 0.3, lambda: False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
