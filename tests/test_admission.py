"""The admission table (dtlsgate.connection.admission): handshakes in progress bounded per
address, in all and in time; which one makes way for a newcomer (issue 10 part 1)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.config import ServerConfig
from dtlsgate.connection.admission import AdmissionTable, FinishedHellos, address_of
from dtlsgate.errors import UsageError
from dtlsgate.gate.reassembly import ClientHelloReassembly


def table(
    per_address: int = 2, total: int = 4, timeout: float | None = 10.0
) -> AdmissionTable[int]:
    return AdmissionTable(per_address=per_address, total=total, timeout=timeout)


def test_addresses_ipv4_per_address_ipv6_per_prefix() -> None:
    assert address_of(("192.0.2.1", 1)) == address_of(("192.0.2.1", 2))
    assert address_of(("192.0.2.1", 1)) != address_of(("192.0.2.2", 1))
    # An IPv4-mapped IPv6 address counts as its IPv4 address.
    assert address_of(("::ffff:192.0.2.1", 1, 0, 0)) == address_of(("192.0.2.1", 9))
    a, b = ("2001:db8:1:2::1", 1, 0, 0), ("2001:db8:1:2:ffff::9", 7, 0, 0)
    assert address_of(a) == address_of(b)
    assert address_of(a) != address_of(("2001:db8:1:3::1", 1, 0, 0))
    assert address_of(a, 128) != address_of(b, 128)
    assert address_of(("fe80::1%eth0", 1, 0, 2)) == address_of(("fe80::2", 1, 0, 2))
    # The stream servers' peers are bare IP strings; other peers count as themselves.
    assert address_of("192.0.2.1") == address_of(("192.0.2.1", 5))
    assert address_of(None) is None
    assert address_of(("not an ip", 1)) == ("not an ip", 1)
    assert address_of(b"unix-socket") == b"unix-socket"


# The IPv4 spellings sockets give are read without `ipaddress`; these pin that the result
# is `ipaddress`'s in every case (the values, the IPv4-mapped spellings, and what is not an
# IPv4 address by its strict rules).
_192_0_2_1 = ("ipv4", 0xC0000201)


@pytest.mark.parametrize(
    "host",
    [
        "192.0.2.1",
        "192.0.2.1%eth0",
        "::ffff:192.0.2.1",
        "::ffff:192.0.2.1%eth0",
        "::FFFF:192.0.2.1",
        "::ffff:c000:201",
        "0:0:0:0:0:ffff:192.0.2.1",
        "0000:0000:0000:0000:0000:FFFF:C000:0201",
    ],
)
def test_an_ipv4_address_in_any_spelling_is_its_32_bits(host: str) -> None:
    assert address_of((host, 1)) == address_of((host, 1, 0, 0), 128) == _192_0_2_1
    assert address_of(host) == _192_0_2_1


@pytest.mark.parametrize(
    "host",
    [
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3.256",
        "1.2.3.1000",
        "1.2.3",
        "1.2.3.4.5",
        "1..3.4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.4\n",
        "+1.2.3.4",
        "1.2.3.4/32",
        "\u0661.2.3.4",  # an Arabic-Indic digit one
        "::ffff:01.2.3.4",
        "::ffff:1.2.3.256",
        "::ffff:1.2.3",
        "",
    ],
)
def test_a_string_that_is_no_ip_address_counts_as_the_peer_itself(host: str) -> None:
    assert address_of((host, 1)) == (host, 1)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 128))
def test_ipv4_addresses_are_their_value(value: int, prefix: int) -> None:
    text = str(ipaddress.IPv4Address(value))
    assert address_of((text, 1), prefix) == ("ipv4", value)
    assert address_of((f"::ffff:{text}", 1, 0, 0), prefix) == ("ipv4", value)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**128 - 1), st.integers(1, 128), st.booleans())
def test_ipv6_addresses_are_their_network(value: int, prefix: int, exploded: bool) -> None:
    ip = ipaddress.IPv6Address(value)
    expected = ("ipv6", value >> (128 - prefix), prefix)
    if ip.ipv4_mapped is not None:
        expected = ("ipv4", value & 0xFFFFFFFF)
    assert address_of((ip.exploded if exploded else str(ip), 1, 0, 0), prefix) == expected


def test_at_the_per_address_limit_the_oldest_of_that_address_makes_way() -> None:
    t = table(per_address=2, total=10)
    assert t.admit(1, ("10.0.0.1", 1), 0.0) == []
    assert t.admit(2, ("10.0.0.2", 1), 1.0) == []
    assert t.admit(3, ("10.0.0.1", 2), 2.0) == []
    assert t.admit(4, ("10.0.0.1", 3), 3.0) == [1]
    assert list(t) == [2, 3, 4] and t.evicted_per_address == 1
    assert t.count(("10.0.0.1", 0)) == 2


def test_when_full_the_oldest_of_the_busiest_address_makes_way() -> None:
    t = table(per_address=3, total=4)
    t.admit(1, ("10.0.0.1", 1), 0.0)
    t.admit(2, ("10.0.0.2", 1), 1.0)
    t.admit(3, ("10.0.0.2", 2), 2.0)
    t.admit(4, ("10.0.0.3", 1), 3.0)
    # 10.0.0.2 holds the most: its oldest goes, not 1 (the oldest overall).
    assert t.admit(5, ("10.0.0.4", 1), 4.0) == [2]
    # Now every address holds one: the oldest overall goes.
    assert t.admit(6, ("10.0.0.5", 1), 5.0) == [1]
    assert t.evicted_when_full == 2


def test_deadline_expires_old_handshakes_only() -> None:
    t = table(per_address=4, total=8, timeout=10.0)
    t.admit(1, ("10.0.0.1", 1), 0.0)
    t.admit(2, ("10.0.0.2", 1), 5.0)
    assert t.next_deadline() == 10.0
    assert t.expire(9.9) == []
    assert t.expire(10.0) == [1]
    assert t.next_deadline() == 15.0
    t.finish(2)
    t.finish(2)  # finishing twice is fine
    assert t.next_deadline() is None and len(t) == 0 and t.expired == 1
    assert table(timeout=None).expire(1e9) == []


def test_misuse() -> None:
    with pytest.raises(UsageError):
        table(per_address=5, total=4)
    with pytest.raises(UsageError):
        table(timeout=0)
    with pytest.raises(UsageError):
        AdmissionTable(per_address=1, total=1, timeout=None, ipv6_prefix=0)
    t = table()
    t.admit(1, None, 0.0)
    with pytest.raises(UsageError):
        t.admit(1, None, 0.0)


def test_for_server_takes_the_config_limits() -> None:
    config = ServerConfig(
        max_handshakes=9, max_handshakes_per_address=3, handshake_timeout=7.0, ipv6_prefix_length=48
    )
    t: AdmissionTable[int] = AdmissionTable.for_server(config)
    assert (t.total, t.per_address, t.timeout, t.ipv6_prefix) == (9, 3, 7.0, 48)


def test_limits_are_read_only() -> None:
    # They live in the PerAddress bookkeeping that enforces them: a limit assigned on the
    # table would not reach it (aio.serve's max_handshaking did that, and had no effect).
    t = table()
    for name in ("total", "per_address"):
        with pytest.raises(AttributeError):
            setattr(t, name, 1)
    reassembly = ClientHelloReassembly(per_address=2, total=3)
    assert (reassembly.per_address, reassembly.total) == (2, 3)
    for name in ("total", "per_address"):
        with pytest.raises(AttributeError):
            setattr(reassembly, name, 1)


# A run of operations: admit a new key from one of a few addresses, finish an existing one,
# or let time pass and expire.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 5)),
        st.tuples(st.just("finish"), st.integers(0, 40)),
        st.tuples(st.just("wait"), st.floats(0, 6)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    operations=OPERATIONS,
    per_address=st.integers(1, 4),
    extra=st.integers(0, 5),
)
def test_bounds_always_hold_and_the_newcomer_always_gets_a_slot(
    operations: list[tuple[str, float]], per_address: int, extra: int
) -> None:
    """Against a model (a list of (key, address) oldest first): after every operation the
    table holds at most ``total`` and at most ``per_address`` per address; an admitted key
    is always in; what it evicts is exactly one, and the oldest of its own address at the
    limit, otherwise (table full) the oldest of the address holding the most."""
    total = per_address + extra
    t = table(per_address=per_address, total=total, timeout=10.0)
    model: list[tuple[int, str, float]] = []
    now = 0.0
    next_key = 0
    for op, arg in operations:
        if op == "admit":
            address = f"10.0.0.{int(arg)}"
            same = [k for k, a, _ in model if a == address]
            expected: list[int] = []
            if len(same) >= per_address:
                expected = [same[0]]
            elif len(model) >= total:
                counts = {a: sum(1 for _, b, _ in model if b == a) for _, a, _ in model}
                most = max(counts.values())
                expected = [next(k for k, a, _ in model if counts[a] == most)]
            key, next_key = next_key, next_key + 1
            assert t.admit(key, (address, 1000 + key), now) == expected
            model = [m for m in model if m[0] not in expected] + [(key, address, now)]
            assert key in t
        elif op == "finish":
            t.finish(int(arg))
            model = [m for m in model if m[0] != int(arg)]
        else:
            now += arg
            gone = t.expire(now)
            assert sorted(gone) == sorted(k for k, _, at in model if at <= now - 10.0)
            model = [m for m in model if m[0] not in gone]
        assert list(t) == [k for k, _, _ in model]
        assert len(t) <= total
        for _, address, _ in model:
            assert t.count((address, 0)) <= per_address


def test_finished_hellos_expire_with_the_cookie_and_are_bounded() -> None:
    hellos = FinishedHellos(max_age=60.0, limit=2)
    hellos.add(("192.0.2.1", 1), b"r1", 100.0)
    assert hellos.is_copy(("192.0.2.1", 1), b"r1", 160.0)
    assert not hellos.is_copy(("192.0.2.1", 1), b"r2", 160.0)  # a restarted client
    assert not hellos.is_copy(("192.0.2.1", 2), b"r1", 160.0)  # another peer
    assert not hellos.is_copy(("192.0.2.1", 1), b"r1", 160.5)  # its cookie expired
    assert len(hellos) == 0 and hellos.dropped == 1
    for port in range(3):
        hellos.add(("192.0.2.1", port), b"r", 200.0)
    assert len(hellos) == 2 and not hellos.is_copy(("192.0.2.1", 0), b"r", 200.0)
