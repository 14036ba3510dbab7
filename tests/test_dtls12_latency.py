"""Whole DTLS 1.2 handshakes over a simulated link with latency: each datagram takes its
own delay (up to several seconds, beyond the 1 s first retransmission timeout), and may be
lost or duplicated; both ends' retransmission timers fire in simulated time.

The lossy-link tests in test_dtls12_flight.py fire timers only when the link is empty, so a
datagram there never arrives after a timer it should have beaten. Here it does, and two
things are checked besides completion: the ends go quiet once the handshake is done on
both (a client that answered the server's retransmitted last flight kept a storm going
with a server that answers the client's), and the number of datagrams stays within what
the retransmissions can explain.
"""

from __future__ import annotations

import pytest
from dtls12_hostile import CONFIGS, Config
from helpers import (
    CLIENT,
    DatagramPair,
    LatencyLink,
    StillRunning,
    client_config,
    data_events,
    make_pair,
    run_over_link,
    server_config,
)

# Datagrams both ends send in one simulated handshake: at most 21 over these seeds (a
# flight of 1-3 datagrams at this MTU, sent 1-4 times); ends that answered each other's
# retransmissions would run into MAX_EVENTS instead, and retransmitting too eagerly into this.
MAX_DATAGRAMS = 64
MAX_EVENTS = 5_000


def simulate(
    seed: int, link: LatencyLink, config: Config | None = None
) -> tuple[DatagramPair, LatencyLink, float]:
    """Run the handshake over ``link`` (helpers.run_over_link) until nothing is in flight and no
    timer is set; returns the pair, the link and the simulated time when both ends
    completed. ``config``: one of tests/dtls12_hostile.py's (default: certificates, MTU
    300)."""
    if config is None:
        pair = make_pair(server_config(mtu=300), client_config(mtu=300))
    else:
        pair = make_pair(config[0](), config[1]())
    try:
        completed_at = run_over_link(pair, link, MAX_EVENTS)
    except StillRunning as exc:
        pytest.fail(f"seed {seed}: {exc}")
    assert completed_at is not None, f"seed {seed}: the handshake did not complete"
    return pair, link, completed_at


@pytest.mark.parametrize("seed", range(40))
def test_handshake_over_a_slow_link(seed: int) -> None:
    """One-way delays of 0.3-3 s or more: every flight may arrive after the peer's timer
    fired, and its retransmission then crosses the late original."""
    link = LatencyLink(seed, min_delay=0.3, jitter=0.4 + (seed % 4) * 0.4)
    pair, link, _ = simulate(seed, link)
    assert sum(link.sent.values()) <= MAX_DATAGRAMS, link.sent
    assert pair.server is not None
    pair.client.send(b"over a slow link")
    for d, _ in pair.client.datagrams_to_send():
        pair.server.receive(d, CLIENT, pair.now)
    pair.drain()
    assert data_events(pair.server_events) == [b"over a slow link"]


@pytest.mark.parametrize("seed", range(40))
def test_handshake_over_a_slow_lossy_duplicating_link(seed: int) -> None:
    link = LatencyLink(seed, min_delay=0.05, jitter=0.6, loss=0.2, dup=0.2)
    _, link, _ = simulate(seed, link)
    assert sum(link.sent.values()) <= MAX_DATAGRAMS, link.sent


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", range(10))
def test_every_configuration_over_a_very_slow_lossy_link(name: str, seed: int) -> None:
    """Certificates, a client certificate, PSK (MTU 256): one-way delays of 1.5 s and
    more, 10% loss, 10% duplication."""
    link = LatencyLink(seed, min_delay=1.5, jitter=1.0, loss=0.1, dup=0.1)
    _, link, _ = simulate(seed, link, CONFIGS[name])
    assert sum(link.sent.values()) <= MAX_DATAGRAMS, link.sent
