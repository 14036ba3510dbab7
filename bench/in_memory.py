"""Our client and our server handshaking in memory, through the gate: the driver that
bench/record_count.py, bench/echo_count.py and bench/memory.py share (each passes its own
configs and addresses).

No sockets: the client's datagrams go to the gate (DTLS 1.2's HelloVerifyRequest or DTLS
1.3's HelloRetryRequest, answered to the client at once) until it admits, then to the server
connection made from the admit (`accept`, on the gate's prepared contexts, as a server
does); the server's datagrams go to the client. Everything happens at one ``now``.
"""

from __future__ import annotations

import time
from typing import Any

from dtlsgate.connection.datagram13 import accept
from dtlsgate.gate.datagram import Admit, Dtls13Admit, Gate, Reply

# Rounds (a flight each way) before a handshake counts as stuck; a DTLS 1.3 handshake with
# its HelloRetryRequest and the ACKs after it takes 5.
MAX_ROUNDS = 20


def handshake(
    client: Any,
    gate: Gate,
    peer: Any,
    server_address: Any,
    *,
    complete: bool = True,
) -> Any:
    """The server connection that ``client`` (ours, not yet connected) reaches through
    ``gate``; ``peer`` is the client's address as the server sees it, ``server_address`` the
    server's as the client sees it.

    ``complete``: until neither side has anything more to send (the handshake complete on
    both, the ACKs and tickets after it delivered), both sides' events then read. Otherwise
    the server as soon as it has sent its first flight, which the client is not given (a
    pending handshake)."""
    now = time.time()
    client.connect(now)
    server: Any = None
    for _ in range(MAX_ROUNDS):
        to_server = [d for d, _ in client.datagrams_to_send()]
        for datagram in to_server:
            if server is None:
                result = gate.receive(datagram, peer, now)
                if type(result) is Reply:
                    client.receive(result.data, server_address, now)
                elif type(result) in (Admit, Dtls13Admit):
                    server = accept(result, gate.config, gate=gate)
                    server.start(now)
            else:
                server.receive(datagram, peer, now)
        to_client = [d for d, _ in server.datagrams_to_send()] if server is not None else []
        if server is not None and not complete:
            return server
        for datagram in to_client:
            client.receive(datagram, server_address, now)
        if not to_client and not to_server:
            break
    if server is None or not server.handshake_complete or not client.handshake_complete:
        raise RuntimeError("the handshake did not complete")
    for conn in (client, server):
        while conn.next_event() is not None:
            pass
    return server
