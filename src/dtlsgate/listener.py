"""Blocking-socket adapter for the gate: OpenSSL's ``DTLSv1_listen()`` on a UDP socket.

``Listener(sock, config).listen()`` reads datagrams from an unconnected UDP socket, answers
each ClientHello without a valid cookie with a HelloVerifyRequest, ignores what the gate
drops, and returns ``(peer, admit)`` for the first ClientHello whose cookie verifies. On a
non-blocking socket (or one with a timeout) it returns None when no datagram is waiting:
OpenSSL's non-fatal 0. This module and the other adapters are the only code that touches
sockets and clocks.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Hashable
from contextlib import suppress

from dtlsgate.config import ServerConfig
from dtlsgate.errors import UsageError
from dtlsgate.gate import Admit, Gate, Reply

# The largest UDP payload (IPv4: 65535 - 20 - 8). A ClientHello larger than the buffer
# would be truncated by the kernel and then dropped as malformed, so read it whole.
MAX_DATAGRAM = 65507


class Listener:
    """Stateless listen on ``sock`` (an unconnected ``SOCK_DGRAM`` socket, IPv4 or IPv6)."""

    def __init__(
        self,
        sock: socket.socket,
        config: ServerConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sock.type != socket.SOCK_DGRAM:
            raise UsageError("Listener needs a SOCK_DGRAM (UDP) socket")
        self.sock = sock
        self.config = config if config is not None else ServerConfig()
        self.gate = Gate(self.config)
        # Wall-clock time: cookies carry a timestamp that other servers of a fleet check.
        self._clock = clock
        self._buffer = bytearray(MAX_DATAGRAM)

    def listen(self) -> tuple[Hashable, Admit] | None:
        """Serve the gate until a ClientHello is admitted; return ``(peer, admit)``.

        Returns None when the socket has no datagram waiting (non-blocking socket, or a
        socket timeout expired). Errors of the socket itself propagate."""
        sock, buffer, receive, clock = self.sock, self._buffer, self.gate.receive, self._clock
        view = memoryview(buffer)
        while True:
            try:
                n, peer = sock.recvfrom_into(buffer)
            except (BlockingIOError, InterruptedError, TimeoutError):
                return None
            result = receive(view[:n].tobytes(), peer, clock())
            if type(result) is Reply:
                # A full send buffer loses a reply; the client retransmits its ClientHello.
                with suppress(BlockingIOError, InterruptedError):
                    sock.sendto(result.data, peer)
            elif type(result) is Admit:
                return peer, result
