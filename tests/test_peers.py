"""The test harness's own process handling (tests/peers.py): `stop` kills what a peer
started and nothing else, whatever the test waited for first."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

import pytest
from peers import process, read_line, start, stop

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def exited(pid_fd: int, seconds: float) -> bool:
    """Whether the process of ``pid_fd`` (os.pidfd_open) exits within ``seconds``."""
    return bool(select.select([pid_fd], [], [], seconds)[0])


def test_stop_after_the_test_reaped_the_peer_spares_a_group_given_its_id() -> None:
    """A peer the test waited for (reaped) and whose group is empty: its id must not go to
    another process until `stop`, or stop's group kill would reach that process's group.
    The kernel is asked (ns_last_pid) to give the next process exactly that id; a process
    group of another program is then made with whatever id it got. Before `start`'s
    anchor, the id was free: the other group got it and stop killed it."""
    if not os.access(NS_LAST_PID, os.W_OK):
        pytest.skip(f"{NS_LAST_PID} is not writable here (needs CAP_SYS_ADMIN)")
    with process(["true"], seconds=30, stdin=subprocess.DEVNULL) as proc:
        assert proc.wait(30) == 0
        taken: list[subprocess.Popen[bytes]] = []
        try:
            # Another process on the machine may take the id first: a few tries.
            for _ in range(5):
                with open(NS_LAST_PID, "w") as last:
                    last.write(str(proc.pid - 1))
                other = subprocess.Popen(["sleep", "60"], process_group=0)
                taken.append(other)
                if other.pid == proc.pid:
                    break
            stop(proc)
            # Each other process ended by our SIGTERM, not by stop's SIGKILL (a status
            # read after a kill, not a look at whether it still runs, which a process
            # killed a moment ago may still do).
            for other in taken:
                other.terminate()
            ended = [other.wait(30) for other in taken]
            assert ended == [-signal.SIGTERM] * len(taken), "stop killed another group"
            assert proc.pid not in [other.pid for other in taken], "the peer's id was free"
        finally:
            for other in taken:
                other.kill()
                other.wait(30)


def test_stop_kills_what_the_peer_left_in_its_group_after_the_test_reaped_it() -> None:
    """The peer (sh) exits leaving a child behind in its group; the test waits for the
    peer (reaping `timeout`); stop still kills the child."""
    with process(["sh", "-c", "sleep 60 & echo $!"], seconds=30, stdin=subprocess.DEVNULL) as proc:
        left = int(read_line(proc.stdout, time.monotonic() + 30))
        assert proc.wait(30) == 0
        pid_fd = os.pidfd_open(left)
        try:
            assert not exited(pid_fd, 0)
            stop(proc)
            stop(proc)  # twice: a no-op
            assert exited(pid_fd, 30), "the peer's child outlived stop"
        finally:
            os.close(pid_fd)


def test_stop_kills_the_group_of_a_peer_started_without_timeout() -> None:
    """`start(..., seconds=None)` (a test that signals the process itself): the process
    leads its group all the same, and stop kills it and its children, running or not."""
    proc = start(
        ["sh", "-c", "sleep 60 & echo $!; exec sleep 60"],
        seconds=None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        left = int(read_line(proc.stdout, time.monotonic() + 30))
        pid_fd = os.pidfd_open(left)
        try:
            stop(proc)
            assert proc.returncode == -9
            assert exited(pid_fd, 30), "the process's child outlived stop"
        finally:
            os.close(pid_fd)
    finally:
        assert proc.stdout is not None
        proc.stdout.close()
