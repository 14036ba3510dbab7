"""Driving real peers and captures in tests: processes under a deadline, tshark on loopback.

Every process started here runs under ``timeout`` and is killed when the test ends, and
every wait is bounded, so a misbehaving peer fails a test instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def require(*tools: str) -> None:
    """Skip the test when a peer binary is missing (``make test`` installs them all)."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make test installs it)")


# The processes that keep each started group's id from being reused, by group leader (see
# `start`); taken out by `stop`.
_anchors: dict[subprocess.Popen[bytes], subprocess.Popen[bytes]] = {}


def start(args: list[str], *, seconds: float | None = 30, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``args`` under ``timeout -s KILL seconds`` (``seconds`` None: without it, for
    a test that signals the process itself) as the leader of a new process group, for
    `stop` to kill with everything it started. ``popen`` goes to `subprocess.Popen`.

    A group is killed by its id, which is its leader's process id, and that id is free for
    another process once the leader has been reaped and the group is empty (pid_max is
    32,768 on these machines; a suite run starts thousands of processes): a group kill after
    a test's own ``wait()`` could then hit another program's group (a helper's `timeout`
    leads one). So a second process of ours, an "anchor" (`sleep`), joins the group and is
    reaped only by `stop`, after the kill: until then the id stays in use by this group,
    whatever the test waited for, in whatever order the processes ended. (GNU timeout's own
    setpgid(0, 0) finds the group made already and keeps it.)"""
    if seconds is not None:
        args = ["timeout", "-s", "KILL", str(seconds), *args]
    proc: subprocess.Popen[bytes] = subprocess.Popen(args, process_group=0, **popen)
    # The leader is not reaped yet (nothing waited for it), so its group exists to join,
    # even if it has already exited (a zombie stays in its group).
    _anchors[proc] = subprocess.Popen(
        ["sleep", str(10 + (seconds or STARTUP_WALL_SECONDS))],
        process_group=proc.pid,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill a process started by `start` (or `process`) and everything it started: its
    whole process group, children and grandchildren (killing only ``timeout`` would orphan
    the peer, e.g. the workers of ``dtlsgate serve --workers``), then reap it. Safe in any
    order: after the test waited for the process, and when called twice. A process not
    started by `start` is only killed itself, if it has not been reaped (then its id cannot
    be another process's)."""
    anchor = _anchors.pop(proc, None)
    if anchor is not None:
        # The anchor, a child of ours not yet reaped (alive or a zombie), keeps the group's
        # id from being reused: the kill can only reach this group.
        with contextlib.suppress(ProcessLookupError):  # all of it gone (zombies) already
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL: it goes
            anchor.wait(60)
    else:
        proc.kill()  # a no-op once it has been reaped
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def end_input(proc: subprocess.Popen[bytes], seconds: float = 10) -> None:
    """Close the peer's stdin and give it ``seconds`` to exit on its own: clients such as
    ``gnutls-cli`` and ``openssl s_client -no_ign_eof`` send close_notify at end of input,
    which a kill of their process group (`stop`) would cut short."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(seconds)


# The kernel's socket tables that `wait_bound` reads, with the TCP state it waits for
# (LISTEN); a UDP socket is ready once bound.
_SOCKET_TABLES = {"udp": None, "udp6": None, "tcp": "0A", "tcp6": "0A"}


def _group_socket_inodes(pgid: int) -> set[str]:
    """The inodes of the sockets held by the processes of process group ``pgid``."""
    inodes = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:  # a process may exit while it is read
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:  # state, ppid, pgrp
                continue
            for fd in os.listdir(f"/proc/{entry}/fd"):
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[len("socket:[") : -1])
        except OSError:
            continue
    return inodes


def _group_cpu_seconds(pgid: int) -> float:
    """The CPU time (user and system) used so far by the processes of process group
    ``pgid`` (`start` makes every process it starts lead a group)."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:  # a process may exit while it is read
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # state, ppid, pgrp, ..., utime and stime (14th, 15th)
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_bound(proc: subprocess.Popen[bytes], port: int, seconds: float = 10) -> None:
    """Wait until a peer started by `process` (any process of its group: GNU timeout leads
    it) has a socket bound to UDP ``port`` or listening on TCP ``port``: peers such as
    gnutls-serv print nothing reliable before they do, and a client sent before then is
    refused. Only the peer's own sockets count, not another process's on that port.
    AssertionError when the peer exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        inodes = _group_socket_inodes(proc.pid)
        for table, state in _SOCKET_TABLES.items():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                    # sl, local address:port, remote, state, queues, timer, retransmits, uid,
                    # timeout, inode (hexadecimal port, decimal inode).
                    fields = line.split()
                    if (
                        int(fields[1].rsplit(":", 1)[1], 16) == port
                        and fields[9] in inodes
                        and (state is None or fields[3] == state)
                    ):
                        return
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited ({proc.returncode}) before binding {port}")
        time.sleep(0.02)
    raise AssertionError(f"{proc.args} did not bind port {port} in {seconds} s")


@contextlib.contextmanager
def process(
    args: list[str],
    *,
    seconds: float = 30,
    stdin: int | None = subprocess.PIPE,
    cwd: Path | None = None,
    stderr: int = subprocess.PIPE,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` under ``timeout`` (in ``cwd``, with ``env``) and make sure it is gone
    afterwards. A peer that logs much on stderr needs ``stderr=subprocess.DEVNULL`` unless
    the test reads it: a full pipe would block it."""
    proc = start(
        args, seconds=seconds, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd, env=env
    )
    try:
        yield proc
    finally:
        stop_and_close(proc)


def stop_and_close(proc: subprocess.Popen[bytes]) -> None:
    """`stop`, then close the pipes to and from the process (for a test that has read all
    it wanted: `stop` alone leaves them open for a test that reads what is left)."""
    stop(proc)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def next_line(stream: object, deadline: float) -> str | None:
    """The next line from a pipe, without its newline; None at the end of the stream (the
    writer is gone and everything it wrote has been read) or when the deadline passes first.
    A blank line is "", told apart from the end: peers print blank lines, and a loop that
    took "" from `read_line` with an exited process for the end of its output lost what was
    still in the pipe (gnutls-cli prints a blank line after "- Handshake was completed" and
    exits once the server closes: a test reading behind it on a loaded machine stopped
    there, before the echo it waited for)."""
    import select

    fd = stream.fileno()  # type: ignore[attr-defined]
    poll = select.poll()  # select() stops at descriptor 1024 (the half-open tests hold 2,000)
    poll.register(fd, select.POLLIN)
    line = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poll.poll(remaining * 1000):
            break
        byte = os.read(fd, 1)
        if not byte:
            break
        if byte == b"\n":
            return line.decode(errors="replace")
        line += byte
    # A last line without its newline still counts; nothing read means the end.
    return line.decode(errors="replace") if line else None


def read_line(stream: object, deadline: float) -> str:
    """One line from a pipe, or "" when the stream ends or the deadline passes first (for a
    test reading one known line; a loop over a peer's output uses `wait_for_line`,
    `read_until` or `converse`, which tell a blank line from the end)."""
    line = next_line(stream, deadline)
    return "" if line is None else line


def read_until(
    stream: object, found: Callable[[str], bool], deadline: float, lines: list[str]
) -> bool:
    """Lines of a pipe (a peer's stdout or stderr), each appended to ``lines``, until one
    for which ``found`` is true: True then; False when the stream ends (the peer is gone and
    all it wrote has been read) or the deadline passes first. For a test that goes on
    either way (a client that may leave without its answer); one whose line must come uses
    `wait_for_line`."""
    while (line := next_line(stream, deadline)) is not None:
        lines.append(line)
        if found(line):
            return True
    return False


def wait_for_line(stream: object, text: str, seconds: float = 15) -> str:
    """Lines of ``stream`` (a peer's stdout or stderr pipe) until one contains ``text``;
    all of them, joined (the last one holds ``text``). AssertionError, with what was read,
    when the stream ends or ``seconds`` pass first. A blank line is read past, not taken
    for the end, and the end of the stream ends the wait at once: no spinning to the
    deadline on a peer that has exited."""
    lines: list[str] = []
    if not read_until(stream, lambda line: text in line, time.monotonic() + seconds, lines):
        raise AssertionError(f"{text!r} not seen in {lines!r}")
    return "\n".join(lines)


def converse(
    proc: subprocess.Popen[bytes], exchange: tuple[tuple[bytes, str], ...], seconds: float = 20
) -> str:
    """Talk to a peer client through its standard input: for each (line, answer) of
    ``exchange``, the line written and its output read until a line starting with the
    answer; then end of input (`end_input`: clients such as ``s_client -no_ign_eof`` and
    ``gnutls-cli`` send close_notify and exit), and everything it printed, joined. A peer
    whose output ends first (it exited: a refused handshake) ends the exchange there;
    ``seconds`` bound it all. Each line goes once the answer before it is there, not after
    a fixed time: on a loaded machine an answer can take longer than any window, and a
    client whose input ended first leaves without it. An empty line writes nothing: its
    answer is only waited for (``(b"", "- Simple Client Mode")``: gnutls-cli's handshake
    done)."""
    assert proc.stdin is not None and proc.stdout is not None
    deadline, lines = time.monotonic() + seconds, []
    for line, answer in exchange:
        with contextlib.suppress(BrokenPipeError):  # it may have exited already
            proc.stdin.write(line)
            proc.stdin.flush()
        if not read_until(proc.stdout, lambda got, a=answer: got.startswith(a), deadline, lines):
            break
    end_input(proc)
    stop(proc)
    lines += proc.stdout.read().decode(errors="replace").splitlines()
    return "\n".join(lines)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(*kinds: socket.SocketKind, count: int = 1) -> int:
    """A loopback port P, with P to P + count - 1 free for each of ``kinds`` (UDP when none
    is named), for a peer a test starts on it. The port is released before the peer binds
    it: if another process bound it in between, the peer would fail to start, or this
    test's datagrams would reach the other test (the suite runs in several processes). So
    it is drawn at random from below the kernel's ephemeral range, where no socket bound to
    port 0 (every test's own sockets, every client's) can land; two tests drawing the same
    port at the same moment is what remains."""
    kinds = kinds or (socket.SOCK_DGRAM,)
    low = _ephemeral_low()
    # With no room below the ephemeral range, anywhere above the privileged ports.
    ports = range(10000, low - count) if low - count > 10000 else range(1024, 65536 - count)
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.choice(ports)
        try:
            for offset in range(count):
                for kind in kinds:
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise AssertionError(f"no free loopback port {kinds} below {low}")


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def free_tcp_port() -> int:
    return free_port(socket.SOCK_STREAM)


def openssl_dtls_client(port: int, *extra: str, version: str = "-dtls1_2") -> list[str]:
    """The command of `openssl s_client` over DTLS to 127.0.0.1:``port``, non-blocking
    (``-nbio``). On a blocking socket, s_client whose handshake write returns WANT_READ
    (after a retransmission timer fired, or a datagram it drops: a duplicate) goes on with
    the handshake in SSL_read, and that SSL_read, once the handshake is done, waits for
    application data instead of returning to standard input: a line written to it is never
    sent and a test waiting for its echo waits out its deadline (`-state` ends at "read
    finished"). Seen through a lossy proxy (3 of 20 loaded runs of 50 clients; none in 24
    with -nbio), and every time when each datagram to it came twice, as a server's
    retransmission does when s_client is slow to answer on a loaded machine (3 of 3 with
    no loss; 3 of 3 echoed with -nbio). Over TCP (TLS) there is no timer and no drop: a
    blocking handshake write returns only once the handshake is done."""
    return ["openssl", "s_client", version, "-connect", f"127.0.0.1:{port}", "-nbio", *extra]


# What a `python -m dtlsgate` process may spend before it announces that it serves, in CPU
# seconds of its own: its start-up (imports, a first run's certificate) takes about 0.2 s
# of CPU with its bytecode compiled and 0.8 s without. A wait in wall-clock time does not
# scale: on a machine loaded to 12-20 with two cores (busy loops beside a start-up at
# `nice -n 10`), those same 0.2-0.8 CPU-seconds took 6-38 s.
STARTUP_CPU_SECONDS = 10
STARTUP_WALL_SECONDS = 300


def announcement(
    proc: subprocess.Popen[bytes], *starts: str, cpu_seconds: float = STARTUP_CPU_SECONDS
) -> str:
    """The first line ``proc`` (started under ``timeout``, which leads its process group)
    writes to its stderr, checked to start with one of ``starts``: a server's "listening
    on HOST:PORT". The wait ends when the process group has used ``cpu_seconds`` of CPU
    without writing it, or when the process ends (its own ``timeout`` bounds that), each
    an AssertionError: not after a time on the wall clock, which a loaded machine stretches
    (`STARTUP_CPU_SECONDS`)."""
    import select

    assert proc.stderr is not None
    poll = select.poll()
    poll.register(proc.stderr.fileno(), select.POLLIN)
    # A backstop only: the process's own `timeout` (30-120 s) ends the pipe before it.
    deadline = time.monotonic() + STARTUP_WALL_SECONDS
    while not poll.poll(100):  # the line, or the end of the pipe
        used = _group_cpu_seconds(proc.pid)
        if used > cpu_seconds or time.monotonic() > deadline:
            raise AssertionError(f"{proc.args} used {used:.1f} s of CPU and did not start")
    # The line is written with one flush: once part of it is in the pipe, the rest is too.
    line = read_line(proc.stderr, time.monotonic() + 10)
    if not line.startswith(starts):
        # What came after it too (the process has likely ended: a traceback): a loaded run
        # failed here once on "Could not import runpy module" alone, its cause unseen.
        rest: list[str] = []
        read_until(proc.stderr, lambda _: False, time.monotonic() + 10, rest)
        raise AssertionError(f"{proc.args} did not start: {line!r}, then {rest!r}")
    return line


def announced_port(proc: subprocess.Popen[bytes], *starts: str) -> int:
    """The port of ``proc``'s announcement (`announcement`), which ends in ":PORT"."""
    return int(announcement(proc, *starts).rsplit(":", 1)[1])


# wolfSSL, the only DTLS 1.3 peer here, built from Debian's source package by
# scripts/build-wolfssl.sh (`make peers`) into a cache outside the checkout; the paths are
# the script's.
WOLFSSL_VERSION = "5.5.4"
WOLFSSL_BUILD_SECONDS = 900


def _wolfssl_paths() -> tuple[Path, Path, Path, Path]:
    cache = Path(os.environ.get("DTLSGATE_CACHE", "/var/cache/dtlsgate"))
    tree = cache / f"wolfssl-{WOLFSSL_VERSION}"
    log = cache / f"wolfssl-{WOLFSSL_VERSION}.log"
    failed = cache / f"wolfssl-{WOLFSSL_VERSION}.failed"
    return tree, tree / ".dtlsgate-built", log, failed


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no build log: {exc})"


def _wolfssl_built(stamp: Path) -> bool:
    """The stamp holds the recipe number of scripts/build-wolfssl.sh that built the tree: an
    older recipe's build counts as absent (the script then rebuilds it)."""
    script = (ROOT / "scripts" / "build-wolfssl.sh").read_text()
    recipe = next(line for line in script.splitlines() if line.startswith("RECIPE="))
    try:
        return stamp.read_text().strip() == f"recipe {recipe.split('=', 1)[1]}"
    except OSError:
        return False


def wolfssl_tree() -> Path:
    """The built wolfSSL source tree (its example programs are libtool wrappers: run them
    from there). When no build was attempted yet, run scripts/build-wolfssl.sh (bounded).
    A failed or missing build FAILS the calling test with the build log's tail, never skips
    it: a skipped peer would hide a broken build of the only DTLS 1.3 peer."""
    tree, stamp, log, failed = _wolfssl_paths()
    if not _wolfssl_built(stamp) and not failed.exists():
        script = ROOT / "scripts" / "build-wolfssl.sh"
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                ["timeout", "-s", "KILL", str(WOLFSSL_BUILD_SECONDS), "sh", str(script)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
    if not _wolfssl_built(stamp):
        pytest.fail(
            f"wolfSSL {WOLFSSL_VERSION} is not built in {tree} (scripts/build-wolfssl.sh, "
            f"`make peers`); last lines of {log}:\n{_log_tail(log)}",
            pytrace=False,
        )
    return tree


@contextlib.contextmanager
def dtlsgate_listen(seconds: float = 30) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m dtlsgate listen`` on 127.0.0.1 with a port the OS picks; yields the
    process and its port (read from its "listening on" line)."""
    args = [sys.executable, "-m", "dtlsgate", "listen", "--host", "127.0.0.1", "--port", "0"]
    with process(args, seconds=seconds, stdin=subprocess.DEVNULL) as proc:
        yield proc, announced_port(proc, "listening on ")


@dataclass(frozen=True)
class Packet:
    src_port: int
    dst_port: int
    handshake_types: tuple[int, ...]
    cookies: tuple[bytes, ...]
    message_seqs: tuple[int, ...]
    record_versions: tuple[int, ...]
    randoms: tuple[bytes, ...]
    supported_versions: tuple[int, ...]
    # The epoch-0 handshake fragments as they crossed the wire, each with its 12-byte header
    # (msg_type, length, message_seq, fragment_offset, fragment_length: RFC 6347 §4.2.2).
    handshakes: tuple[bytes, ...]


def between(packets: list[Packet], port: int, other: int) -> list[Packet]:
    """The packets between ``port`` and ``other``. A capture by port (`capture`) also holds
    whatever any process on the machine sent from or to that port number: until the peer
    binds it, the port is free, and another process's client may get it as its ephemeral
    port (seen in whole-suite runs beside other suites: two ClientHellos of somebody else's
    cookie exchange in a capture)."""
    return [p for p in packets if {p.src_port, p.dst_port} == {port, other}]


def distinct_messages(packets: list[Packet], msg_type: int) -> list[Packet]:
    """The packets that first carried each handshake fragment of ``msg_type``, in order: a
    retransmission (the flight again after its timer fired, RFC 6347 §4.2.4, RFC 9147 §5.8)
    repeats each message with its message_seq, and is left out after checking that it is
    byte-identical to the first copy (AssertionError otherwise). A message sent anew has a
    new message_seq and is listed. Pass the packets of one conversation (`between`)."""
    first: dict[tuple[int, int, bytes], bytes] = {}
    listed = []
    for p in packets:
        new = False
        for fragment in p.handshakes:
            if fragment[0] != msg_type:
                continue
            # Direction, message_seq, fragment_offset and fragment_length name the fragment.
            key = (p.src_port, p.dst_port, fragment[4:12])
            copy = first.setdefault(key, fragment)
            new |= copy is fragment
            assert copy == fragment, (
                f"handshake type {msg_type} message_seq {int.from_bytes(fragment[4:6], 'big')} "
                f"sent again with other bytes:\n{copy.hex()}\n{fragment.hex()}"
            )
        if new:
            listed.append(p)
    return listed


# A datagram the capture helpers send to themselves, on a port of their own, to see that
# the capture runs: its payload is not DTLS (no content type starts with "c").
PROBE = b"capture probe"


def _probe_until_written(pcap: Path, probe: socket.socket, deadline: float) -> None:
    """Send ``probe`` to itself until that very datagram is in ``pcap`` (dumpcap writes
    packets in the order they come, their bytes as they were): the capture filter is
    attached and every packet captured before the probe is in the file. Each probe carries
    a nonce, looked for in the file: the file merely growing is not enough, since a tshark
    running behind (a loaded machine) may still be writing earlier packets, and stopping it
    then lost a test's own (a TLS capture that held only the TCP handshake and the probes).
    AssertionError at ``deadline``."""
    sent: list[bytes] = []
    while time.monotonic() < deadline:
        sent.append(PROBE + b" " + os.urandom(8).hex().encode())
        probe.sendto(sent[-1], probe.getsockname())
        wait_until = min(deadline, time.monotonic() + 0.2)
        while time.monotonic() < wait_until:
            written = pcap.read_bytes() if pcap.exists() else b""
            if any(payload in written for payload in sent):
                return
            time.sleep(0.01)
    raise AssertionError(f"tshark did not write our probe to {pcap}")


@contextlib.contextmanager
def capture_to(pcap: Path, port: int, seconds: float = 40, transport: str = "udp") -> Iterator[int]:
    """tshark writing ``transport`` (UDP or TCP) traffic to/from ``port`` on loopback into
    ``pcap``; yields the port of the probe (`PROBE`, a UDP datagram sent from that port to
    itself, also captured: leave it out). The block starts once a probe is in the file,
    not after a fixed wait: on a loaded machine tshark took longer than 2 s to start (a
    test's capture then held nothing), and its "Capturing on" line comes before the filter
    is attached. When the block ends, a last probe in the file shows that every packet
    before it is there too."""
    require("tshark")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe_port = int(probe.getsockname()[1])
        ports = f"{transport} port {port} or udp port {probe_port}"
        args = ["tshark", "-q", "-i", "lo", "-f", ports, "-w", str(pcap)]
        with process(args, seconds=seconds, stdin=subprocess.DEVNULL) as proc:
            _probe_until_written(pcap, probe, time.monotonic() + 30)
            yield probe_port
            _probe_until_written(pcap, probe, time.monotonic() + 30)
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


@contextlib.contextmanager
def capture(port: int, seconds: float = 30) -> Iterator[list[Packet]]:
    """Capture UDP traffic on loopback to/from ``port`` with tshark. The list yielded is
    filled with the dissected packets when the block ends."""
    packets: list[Packet] = []
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "capture.pcapng"
        with capture_to(pcap, port, seconds) as probe_port:
            yield packets
        packets.extend(p for p in dissect(pcap) if probe_port not in (p.src_port, p.dst_port))


def _ints(field: str, base: int = 10) -> tuple[int, ...]:
    return tuple(int(v, base) for v in field.split(",") if v)


def _hex(field: str) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(v.replace(":", "")) for v in field.split(",") if v)


_RECORD_HEADER = struct.Struct("!BHHHIH")  # DTLSPlaintext (RFC 6347 §4.1)


def _handshake_fragments(datagram: bytes) -> tuple[bytes, ...]:
    """The handshake fragments of a datagram's epoch-0 handshake records (read here, not by
    the code under test); stops at a record that does not fit, e.g. a DTLS 1.3 unified
    header (RFC 9147 §4)."""
    fragments, pos = [], 0
    while pos + _RECORD_HEADER.size <= len(datagram):
        content_type, _, epoch, _, _, length = _RECORD_HEADER.unpack_from(datagram, pos)
        pos += _RECORD_HEADER.size
        body, pos = datagram[pos : pos + length], pos + length
        if pos > len(datagram):
            break
        while content_type == 22 and epoch == 0 and len(body) >= 12:
            end = 12 + int.from_bytes(body[9:12], "big")
            fragments.append(body[:end])
            body = body[end:]
    return tuple(fragments)


def dissect(pcap: Path) -> list[Packet]:
    fields = [
        "udp.srcport",
        "udp.dstport",
        "dtls.handshake.type",
        "dtls.handshake.cookie",
        "dtls.handshake.message_seq",
        "dtls.record.version",
        "dtls.handshake.random",
        "dtls.handshake.extensions.supported_version",
        "udp.payload",
    ]
    args = ["tshark", "-r", str(pcap), "-d", "udp.port==1-65535,dtls", "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(
        ["timeout", "60", *args], capture_output=True, check=True, text=True
    ).stdout
    packets = []
    for row in out.splitlines():
        cols = (row.split("\t") + [""] * len(fields))[: len(fields)]
        packets.append(
            Packet(
                src_port=int(cols[0]),
                dst_port=int(cols[1]),
                handshake_types=_ints(cols[2]),
                cookies=_hex(cols[3]),
                message_seqs=_ints(cols[4]),
                record_versions=_ints(cols[5], 16) if cols[5].startswith("0x") else _ints(cols[5]),
                randoms=_hex(cols[6]),
                supported_versions=_ints(cols[7], 16),
                handshakes=_handshake_fragments(bytes.fromhex(cols[8].replace(":", ""))),
            )
        )
    return packets
