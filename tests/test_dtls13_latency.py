"""Whole DTLS 1.3 handshakes, our client to our server through the gate (its stateless
HelloRetryRequest), over a simulated link with latency (helpers.LatencyLink: one-way delays
of 0.3 s to 2 s and more, so every flight may arrive after the peer's 1 s timer fired and
cross its retransmission), loss, duplication and the reordering the jitter makes; both
ends' timers fire in simulated time, and no server handshake deadline applies (the
sans-I/O connections have none).

Checked besides completion on both ends: they go quiet afterwards (no storm of answers to
retransmissions: `run_over_link` would run out of events), and the datagrams stay within
what the retransmissions explain. Issue 12 was found here: a server whose ServerHello took
the record number of the gate's HRR took the client's ACK of a duplicate HRR for an ACK of
its lost ServerHello, and never sent it again (seed 37 stalled for good).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dtls12_hostile import _cert_pem, _client_credentials
from helpers import (
    PSK,
    PSK_ID,
    LatencyLink,
    StillRunning,
    client_config,
    make_pair13,
    run_over_link,
    server_config,
)

from dtlsgate.events import HandshakeCompleted

MTU = 300  # the server's certificate flight in 3-4 datagrams, PSK's ClientHello2 in 2
# Both ends together sent at most 63 datagrams in one handshake over these seeds (median
# 37): flights of 1-4 datagrams sent up to 6 times, the ACKs and the resends they cause
# (RFC 9147 §7.3), the NewSessionTicket.
MAX_DATAGRAMS = 100
MAX_EVENTS = 5_000

CONFIGS: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "certificate": (lambda: server_config(mtu=MTU), lambda: client_config(mtu=MTU)),
    "client-certificate": (
        lambda: server_config(mtu=MTU, verify_client="required", cafile=_cert_pem()),
        lambda: client_config(mtu=MTU, **_client_credentials()),
    ),
    "psk": (
        lambda: server_config(None, psk={PSK_ID: PSK}, mtu=MTU),
        lambda: client_config(psk=PSK, psk_identity=PSK_ID, mtu=MTU),
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", range(50))
def test_handshake_over_a_slow_lossy_link(name: str, seed: int) -> None:
    """20% loss and 10% duplication each way; the one-way delay at least 0.3-2 s."""
    link = LatencyLink(seed, min_delay=0.3 + (seed % 5) * 0.4, jitter=0.5, loss=0.2, dup=0.1)
    server_cfg, client_cfg = CONFIGS[name]
    pair = make_pair13(server_cfg(), client_cfg(), gated=True)
    try:
        completed_at = run_over_link(pair, link, MAX_EVENTS)
    except StillRunning as exc:
        pytest.fail(f"seed {seed}: {exc}")
    assert completed_at is not None, (pair.client.state_name, pair.server.state_name)
    done = [e for e in pair.client_events if isinstance(e, HandshakeCompleted)]
    assert len(done) == 1 and done[0].hello_retry
    assert sum(link.sent.values()) <= MAX_DATAGRAMS, link.sent
