"""DTLS 1.2 handshakes per second with ``dtlsgate serve --workers 1`` and ``--workers 2``,
next to a C server's 1 and 2 processes and the host's own scaling of CPU-bound work.

``--workers N`` runs N server processes on one UDP port (SO_REUSEPORT; one shared cookie
master key, so each verifies the others' cookies). This bench starts the real command and
loads it with ``bench/loadgen/dtlsload.c``, a C load generator (compiled here with gcc
against libcrypto; see its header): K concurrent full handshakes from rotating source
ports, close_notify after each. On a 2-core machine the generator shares the cores with
the workers, so it was written to cost a fraction of what a server spends per handshake;
this bench measures that fraction and prints it.

Two loads, each in rounds that alternate the worker counts (1, 2, then 2, 1, ...):
- ``psk``:  TLS_PSK_WITH_AES_128_CCM_8 (no public-key work on either side);
- ``cert``: ECDHE-ECDSA (x25519, P-256 certificate) with AES-128-GCM.
Per round: handshakes per second after a warm-up, the CPU each process used in the
counted window (each worker from /proc, the generator from its getrusage; user and
system), the load average, the CPU the rest of the machine used and the CPU the hypervisor
took from it (steal time; both from /proc/stat).

What bounds the ratio: per handshake the server spends ``s`` CPU-seconds and the generator
``g``. One worker can use one core (the generator runs on the other); two workers and the
generator share two, so at most ``2 / (1 + g/s)`` times the one-worker rate. The bench
prints that ceiling next to the measured ratio.

Two comparisons say how much of the rest is the host's (``--stacks``, ``--host-work``):
- ``openssl``: ``bench/loadgen/dtlsserve.c``, a DTLS 1.2 server all in C on OpenSSL's
  libssl, in the same shape (N processes on one port with SO_REUSEPORT, one cookie secret
  made before the fork; OpenSSL's stateless ``DTLSv1_listen``, then ``SSL_do_handshake``
  over memory BIOs), the same suites, the same generator, in the same alternating rounds.
  Its handshake costs the server about a third of ours, so the generator's share ``g/s`` is
  larger and its ceiling lower: compare each ratio with its own ceiling. It gets more
  concurrent clients (``--c-clients``): with as many as ours, its workers waited for
  datagrams (the context switches "waiting" per handshake).
- the host, no network: the same CPU-bound work in 1 process and in 2 at once (one session,
  boosted like the servers): a whole DTLS 1.2 handshake in memory, a pyOpenSSL client against
  our server (``dtlsgate``) or against pyOpenSSL's (``pyopenssl``; bench/handshake.py), and
  ``openssl speed -elapsed [-multi 2]`` of ``ecdsap256`` signatures and ``sha256`` over
  1 KiB: the most that two cores of this host give any server over one.
The last lines print the three ratios side by side. Next to each server's ratio and
ceiling they print what two workers would serve on two cores of their own, the generator
elsewhere: ``2 x`` the ratio of its handshakes per server CPU-second with two workers to
that with one (each worker then a whole core, at the CPU cost per handshake it had here with
two). A projection, not a measurement: it keeps what two workers cost each other here (the
kernel's work, the shared caches, the generator's interruptions), so it errs low.

Before measuring, a check with two workers: that both serve (each worker's handshake
count, from its summary at SIGINT), that the clients come from many source ports, and
that the cookie key is shared: 16 clients get their HelloVerifyRequests, one worker is
then stopped (its summary says how many of those it sent), and every ClientHello carrying
a cookie, those minted by the stopped worker too, must be answered with a ServerHello by
the other.

``--idle-generator`` runs the generator under the SCHED_IDLE policy: it gets a core only
when no worker wants it, so it never preempts a worker between two datagrams (each
preemption leaves the worker's caches to be refilled: bench/RESULTS.md, lead20). The
generator then stands in better for clients on other machines, which cost the server's
cores nothing; its share of the cores, and so the ceiling, is the same.

On a shared machine the figure means little: with other work on the cores, Linux's
autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled) gives the server's session,
all its workers together, one share of the CPU next to each other busy session, so two
workers get about what one got. The bench prints the load average and the cores the rest
of the machine used in each round; run it on a quiet machine. ``--boost N`` (root) renices
the server's and the generator's autogroups by -N for the rounds, so that on a busy machine
they take the cores from the other sessions: an approximation of a quiet machine that slows
everything else while it runs.

Usage: python bench/workers.py [--seconds 5] [--rounds 3] [--clients 64] [--loads psk,cert]
[--c-clients 256] [--stacks dtlsgate,openssl] [--host-work dtlsgate,pyopenssl,ecdsap256,sha256]
[--host-seconds 3] [--boost N] [--idle-generator] (about 5 minutes with the defaults). Needs
gcc and OpenSSL's headers (libssl-dev); as root it installs them with apt-get when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "loadgen" / "dtlsload.c"
CSERVER = HERE / "loadgen" / "dtlsserve.c"
DTLSGATE = str(Path(sys.executable).with_name("dtlsgate"))
PSK = "bench:000102030405060708090a0b0c0d0e0f"
TICK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 60.0


def build(source: Path, *libs: str) -> Path:
    """Compile a C tool of bench/loadgen (kept in the cache directory until its source
    changes); apt-get gcc and libssl-dev as root when missing."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dtlsgate"
    binary = cache / source.stem
    stamp = cache / f"{source.stem}.source"
    if binary.exists() and stamp.exists() and stamp.read_bytes() == source.read_bytes():
        return binary
    if not (shutil.which("gcc") and Path("/usr/include/openssl/evp.h").exists()):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit(
                "bench/workers.py needs gcc and OpenSSL's headers: apt-get install gcc libssl-dev"
            )
        print("installing gcc and libssl-dev (apt-get)", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "gcc", "libssl-dev"], check=True, timeout=600
        )
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-o", str(binary), str(source), *libs], check=True, timeout=120
    )
    stamp.write_bytes(source.read_bytes())
    return binary


def build_loadgen() -> Path:
    return build(SOURCE, "-lcrypto")


@dataclass(frozen=True)
class Stack:
    """A server command that runs N processes on one UDP port (SO_REUSEPORT, one shared
    cookie key), all in one process group, each saying "serving" on stderr once bound and
    "stopped: N handshakes completed" at SIGINT."""

    name: str
    binary: str

    def command(self, workers: int, load: str, port: int) -> list[str]:
        where = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        if self.name == "dtlsgate":
            return [self.binary, "serve", *where, *(["--psk", PSK] if load == "psk" else [])]
        if load == "psk":
            return [self.binary, *where, "--psk", PSK]
        from dtlsgate.io.cli_shared import self_signed_files  # dtlsgate serve's own files

        cert, key = self_signed_files()
        return [self.binary, *where, "--cert", str(cert), "--key", str(key)]


OURS = Stack("dtlsgate", DTLSGATE)


def c_stack() -> Stack:
    """bench/loadgen/dtlsserve.c: the same shape as ``dtlsgate serve --workers N``, all C."""
    return Stack("openssl", str(build(CSERVER, "-lssl", "-lcrypto")))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (the workers of one ``dtlsgate serve``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    pids.append(int(entry))
    return sorted(pids)


def cpu_times(pids: list[int]) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of each process."""
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) / TICK, int(fields[12]) / TICK)
    return out


def switches(pids: list[int]) -> tuple[int, int]:
    """Context switches of the processes together: (voluntary: it waited for a datagram,
    involuntary: the scheduler gave its core to another)."""
    voluntary = involuntary = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    voluntary += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    involuntary += int(line.split()[1])
    return voluntary, involuntary


def autogroups(pids: list[int]) -> set[str]:
    """The scheduler's autogroups of the processes (CPU is shared between these first)."""
    groups = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            groups.add(Path(f"/proc/{pid}/autogroup").read_text().split()[0])
    return groups


def machine_busy() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, from /proc/stat: busy is
    what its own processes and the kernel ran (user, nice, system, irq, softirq); stolen is
    the time its virtual CPUs wanted to run and the hypervisor ran something else (steal).
    On this workplace's VMs steal is near 0 with the cores idle and up to 0.6 cores with both
    busy (bench/RESULTS.md, session 25): it is not "the rest of the machine"."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def worker_pidfds(server: subprocess.Popen[bytes]) -> list[int]:
    """pidfds of the processes of ``server``'s group other than ``server`` itself (the forked
    workers), for signals that reach those processes only: a pid read from /proc is free
    for another process once its own has exited and been reaped (by the server, not by
    us), and pid_max is 32,768 here. Each pidfd is kept only if, after it was opened, the
    process is still in the group and alive (so the /proc read was of the pidfd's
    process). The group's id is ours while ``server`` is not reaped (see `serve`)."""
    assert server.returncode is None, "the server was reaped: its group id is not ours"
    pidfds = []
    for pid in group_pids(server.pid):
        if pid == server.pid:
            continue
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # gone already
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            signal.pidfd_send_signal(fd, 0)  # still alive: the line above was its own
        except (OSError, ProcessLookupError):
            os.close(fd)
            continue
        if int(fields[2]) == server.pid:
            pidfds.append(fd)
        else:
            os.close(fd)
    return pidfds


def stop_workers(server: subprocess.Popen[bytes]) -> None:
    """SIGINT to each forked worker of ``server`` (a worker then logs its summary and
    exits), through pidfds (`worker_pidfds`), and wait up to 10 s for them to exit."""
    pidfds = worker_pidfds(server)
    try:
        waiting = select.poll()
        for fd in pidfds:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                signal.pidfd_send_signal(fd, signal.SIGINT)
            waiting.register(fd, select.POLLIN)  # readable once the process has exited
        deadline = time.monotonic() + 10
        left = len(pidfds)
        while left and time.monotonic() < deadline:
            for fd, _ in waiting.poll(max(0.0, deadline - time.monotonic()) * 1000):
                waiting.unregister(fd)
                left -= 1
    finally:
        for fd in pidfds:
            os.close(fd)


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` has exited, without reaping it (unlike ``poll()``): until it is
    reaped its pid, and so its group's id, cannot be another process's."""
    if proc.returncode is not None:
        return True
    info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


@contextlib.contextmanager
def serve(
    workers: int, load: str, *extra: str, stack: Stack = OURS
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``dtlsgate serve --workers N`` (or ``stack``'s server) on a free port, its stderr in a
    file; stopped with SIGINT (each worker then logs its summary; ours with ``-v``) and,
    failing that, SIGKILL. The server is reaped only at the end (`exited` does not reap):
    until then its pid and its group's id are ours, and the group is signalled by that id,
    the workers through pidfds."""
    port = free_port()
    args = stack.command(workers, load, port)
    with tempfile.NamedTemporaryFile(prefix="dtlsgate-serve-", suffix=".log", delete=False) as log:
        logfile = Path(log.name)
    with open(logfile, "wb") as err:
        server = subprocess.Popen([*args, *extra], stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while b"serving" not in logfile.read_bytes() or len(group_pids(server.pid)) < workers:
            if exited(server) or time.monotonic() > deadline:
                sys.exit(f"{args[0]} did not start: {logfile.read_text()}")
            time.sleep(0.05)
        time.sleep(0.3)  # the forked workers bind after they start
        yield server, port, logfile
    finally:
        # The forked workers first: the main process's exit would end them (daemons) before
        # they log their summaries.
        stop_workers(server)
        with contextlib.suppress(ProcessLookupError):  # not reaped: a zombie at worst
            os.kill(server.pid, signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # not reaped: the group is still ours
            server.wait(10)


@dataclass
class Round:
    stack: str
    load: str
    workers: int
    rate: float
    worker_cpu: list[tuple[float, float]]  # (user, system) seconds per worker in the window
    gen_cpu: tuple[float, float]
    handshakes: int
    ports: int
    other_cpu: float  # cores the rest of the machine used
    stolen: float  # cores the hypervisor took from the machine (steal time)
    loadavg: float
    failures: str
    switches: tuple[int, int]  # the workers' context switches in the window

    @property
    def server_cpu(self) -> float:
        return sum(u + s for u, s in self.worker_cpu)

    @property
    def gen_share(self) -> float:
        """Generator CPU over server CPU per handshake (g/s)."""
        return sum(self.gen_cpu) / self.server_cpu if self.server_cpu else 0.0


def one_round(
    loadgen: Path, load: str, workers: int, args: argparse.Namespace, stack: Stack = OURS
) -> Round:
    with serve(workers, load, stack=stack) as (server, port, logfile):
        pids = group_pids(server.pid)
        if args.pin:  # worker i on CPU i: no migrations between the two cores
            cpus = sorted(os.sched_getaffinity(0))
            for i, pid in enumerate(pids):
                os.sched_setaffinity(pid, {cpus[i % len(cpus)]})
        clients = args.clients if stack is OURS else args.c_clients
        cmd = [str(loadgen), "--port", str(port), "--clients", str(clients)]
        cmd += [
            "--warmup",
            str(args.warmup),
            "--seconds",
            str(args.seconds),
            "--nap",
            str(args.nap),
        ]
        if load == "psk":
            cmd += ["--psk", PSK]
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
        if args.idle_generator:  # it runs only on a core no worker wants (before "counting")
            os.sched_setscheduler(gen.pid, os.SCHED_IDLE, os.sched_param(0))
        spin = None
        if args.spin and workers == 1:  # the other core busy with a loop that touches nothing
            spin = subprocess.Popen(
                [sys.executable, "-c", "while True: pass"], start_new_session=True
            )
        if args.boost:
            for p in (server, gen, spin):  # the server's autogroup, the generator's, the loop's
                if p is not None:
                    Path(f"/proc/{p.pid}/autogroup").write_text(str(-args.boost))
        try:
            assert gen.stdout is not None
            if gen.stdout.readline().strip() != "counting":
                sys.exit("dtlsload did not start counting")
            cpu0, busy0, sw0 = cpu_times(pids), machine_busy(), switches(pids)
            done = gen.stdout.readline()
            cpu1, busy1, sw1 = cpu_times(pids), machine_busy(), switches(pids)
            gen.wait(30)
        finally:
            for p in (gen, spin):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
    logfile.unlink()
    if not done.startswith("done "):
        sys.exit(f"dtlsload: {done!r}")
    fields = dict(kv.split("=", 1) for kv in done.split()[1:])
    seconds = float(fields["seconds"])
    handshakes = int(fields["handshakes"])
    worker_cpu = [
        (cpu1[p][0] - cpu0[p][0], cpu1[p][1] - cpu0[p][1]) for p in pids if p in cpu0 and p in cpu1
    ]
    gen_cpu = (float(fields["user"]), float(fields["sys"]))
    ours = sum(u + s for u, s in worker_cpu) + sum(gen_cpu)
    other = max(0.0, (busy1[0] - busy0[0]) - ours) / seconds
    stolen = (busy1[1] - busy0[1]) / seconds
    failures = "resent={resent} abandoned={abandoned} failures={failures} stray={stray}".format(
        **fields
    )
    return Round(
        stack.name,
        load,
        workers,
        handshakes / seconds,
        worker_cpu,
        gen_cpu,
        handshakes,
        int(fields["ports"]),
        other,
        stolen,
        os.getloadavg()[0],
        failures,
        (sw1[0] - sw0[0], sw1[1] - sw0[1]),
    )


def show(r: Round, seconds: float) -> None:
    per_worker = " ".join(f"{(u + s) / seconds:.2f}({s / seconds:.2f})" for u, s in r.worker_cpu)
    gen_u, gen_s = r.gen_cpu
    print(
        f"  {r.stack:8} {r.load:4} --workers {r.workers}: {r.rate:6.0f} handshakes/s;"
        f" cores (of which system): workers {per_worker},"
        f" generator {(gen_u + gen_s) / seconds:.2f}({gen_s / seconds:.2f}),"
        f" rest of machine {r.other_cpu:.2f}, taken by the hypervisor {r.stolen:.2f};"
        f" per handshake: server"
        f" {r.server_cpu / r.handshakes * 1e6:.0f} us,"
        f" generator {sum(r.gen_cpu) / r.handshakes * 1e6:.0f} us"
        f" (g/s {r.gen_share:.2f}); workers' context switches per handshake"
        f" {r.switches[0] / r.handshakes:.2f} waiting"
        f" + {r.switches[1] / r.handshakes:.2f} preempted;"
        f" load avg {r.loadavg:.1f}; {r.ports} source ports; {r.failures}",
        flush=True,
    )


# ---- the check: both workers serve, one cookie key -------------------------------------


def held_client_hellos(port: int, count: int) -> list[tuple[socket.socket, bytes]]:
    """``count`` pyOpenSSL clients, each on its own socket, that sent a ClientHello and got
    a HelloVerifyRequest: their second ClientHello, with the cookie, not sent yet."""
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    held = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        conn = SSL.Connection(ctx, None)
        conn.set_connect_state()
        with contextlib.suppress(SSL.WantReadError):
            conn.do_handshake()
        sock.send(conn.bio_read(65535))
        hello_verify = sock.recv(65535)
        if hello_verify[13] != 3:  # handshake type: HelloVerifyRequest
            sys.exit("the server did not answer with a HelloVerifyRequest")
        conn.bio_write(hello_verify)
        with contextlib.suppress(SSL.WantReadError):
            conn.do_handshake()
        held.append((sock, conn.bio_read(65535)))
    return held


def check(loadgen: Path, clients: int) -> None:
    """Both workers serve; the clients come from many ports; the cookie key is shared."""
    print("check: dtlsgate serve --workers 2", flush=True)
    with serve(2, "psk", "-v") as (server, port, logfile):
        groups = autogroups(group_pids(server.pid))
        cmd = [str(loadgen), "--port", str(port), "--clients", str(clients), "--psk", PSK]
        out = subprocess.run(
            [*cmd, "--warmup", "0.5", "--seconds", "2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    done = dict(kv.split("=", 1) for kv in out.splitlines()[-1].split()[1:])
    counts = [
        int(n) for n in re.findall(r"stopped: (\d+) handshakes completed", logfile.read_text())
    ]
    logfile.unlink()
    print(
        f"  both workers serve: handshakes per worker {counts} (each one's summary);"
        f" the generator: {done['handshakes']} in 2 s from {done['ports']} source ports,"
        f" {done['failures']} failed; the workers' autogroups: {', '.join(sorted(groups)) or '-'}",
        flush=True,
    )
    # 16 clients get their HelloVerifyRequests; then the forked worker stops (its summary
    # says how many of them it answered) and the main process, alone on the port, must
    # admit every ClientHello carrying a cookie, those minted by the stopped worker too.
    with serve(2, "cert", "-v") as (server, port, logfile):
        held = held_client_hellos(port, 16)
        stop_workers(server)
        minted = re.search(r"gate: (\d+) replies", logfile.read_text())
        answered = 0
        for sock, hello in held:
            sock.send(hello)
            with contextlib.suppress(OSError):
                reply = sock.recv(65535)
                answered += reply[0] == 22 and reply[13] == 2  # a ServerHello
            sock.close()
    logfile.unlink()
    by_other = int(minted.group(1)) if minted else 0
    print(
        f"  one cookie key: {by_other} of the {len(held)} HelloVerifyRequests came from the"
        f" worker then stopped; {answered} of {len(held)} ClientHellos with their cookies"
        f" answered with a ServerHello by the other",
        flush=True,
    )
    if len(counts) != 2 or min(counts) == 0 or not by_other or answered != len(held):
        sys.exit("check failed")


# ---- the host's own scaling: CPU-bound work, no network --------------------------------

HOST_WORK = ("dtlsgate", "pyopenssl", "ecdsap256", "sha256")
BURN_WARMUP = 0.5


def burn_op(kind: str) -> Callable[[], object]:
    """One operation of ``kind``: a whole DTLS 1.2 handshake in memory (bench/handshake.py:
    a pyOpenSSL client against our server, or against pyOpenSSL's), client side included."""
    import handshake as inmemory  # bench/handshake.py

    from dtlsgate.gate.datagram import Gate

    cctx = inmemory.client_context()
    if kind == "dtlsgate":
        config = inmemory.our_config()
        gate = Gate(config)
        return lambda: inmemory.handshake(
            inmemory.OurServer(config, gate), inmemory.PyOpenSSLClient(cctx)
        )
    sctx = inmemory.pyopenssl_server_context()
    return lambda: inmemory.handshake(
        inmemory.PyOpenSSLServer(sctx), inmemory.PyOpenSSLClient(cctx)
    )


def burn(kind: str, procs: int, seconds: float) -> None:
    """(This file run with ``--burn``.) ``procs`` processes, this one and ``procs - 1``
    forked, repeat ``kind``'s operation for ``seconds`` together after a warm-up; prints
    ``done ops=N seconds=S cpu=C`` (C: their CPU seconds in that window, from getrusage)."""
    op = burn_op(kind)
    start = time.monotonic() + BURN_WARMUP
    pipes: list[int] = []
    for _ in range(procs):
        read, write = os.pipe()
        if len(pipes) == procs - 1 or os.fork() == 0:
            while time.monotonic() < start:
                op()
            cpu0, ops = resource.getrusage(resource.RUSAGE_SELF), 0
            while time.monotonic() < start + seconds:
                op()
                ops += 1
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
            os.write(write, f"{ops} {cpu}".encode())
            if len(pipes) < procs - 1:
                os._exit(0)
        os.close(write)
        pipes.append(read)
    results = [os.read(r, 100).split() for r in pipes]
    ops, cpu = sum(int(n) for n, _ in results), sum(float(c) for _, c in results)
    print(f"done ops={ops} seconds={seconds} cpu={cpu}", flush=True)


@dataclass
class HostRound:
    kind: str
    procs: int
    rate: float  # operations per second, all processes together
    cores: float  # CPU seconds per second, all processes together

    @property
    def us_each(self) -> float:
        """Microseconds per operation in each process (its CPU time when it has a core)."""
        return self.procs / self.rate * 1e6


def host_round(kind: str, procs: int, args: argparse.Namespace) -> HostRound:
    """``kind``'s work in ``procs`` processes at once, in a session of their own (boosted
    as the servers are): our --burn child, or ``openssl speed -elapsed -multi``."""
    seconds = args.host_seconds
    if kind in ("ecdsap256", "sha256"):
        cmd = ["openssl", "speed", "-elapsed", "-mr", "-seconds", str(max(1, round(seconds)))]
        cmd += ["-multi", str(procs)] if procs > 1 else []
        cmd += ["-bytes", "1024", kind] if kind == "sha256" else [kind]
    else:
        cmd = [sys.executable, __file__, "--burn", kind, "--procs", str(procs)]
        cmd += ["--host-seconds", str(seconds)]
    # The children's CPU: every earlier child of this process has been waited for, and
    # openssl waits for its own (-multi), so the difference is this command's alone.
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    if args.boost:
        with contextlib.suppress(OSError):
            Path(f"/proc/{proc.pid}/autogroup").write_text(str(-args.boost))
    try:
        out, _ = proc.communicate(timeout=60 + 4 * seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - started
    cores = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall
    if kind == "ecdsap256":  # the last "+F4:index:bits:signs/s:verifies/s" sums the children
        line = [x for x in out.splitlines() if x.startswith("+F4:")][-1]
        return HostRound(kind, procs, float(line.split(":")[3]), cores)
    if kind == "sha256":  # the last "+F:index:sha256:bytes/s" (1024-byte blocks), summed
        line = [x for x in out.splitlines() if x.startswith("+F:")][-1]
        return HostRound(kind, procs, float(line.split(":")[3]) / 1024, cores)
    fields = dict(kv.split("=", 1) for kv in out.split()[1:])
    return HostRound(kind, procs, int(fields["ops"]) / seconds, float(fields["cpu"]) / seconds)


def host_scaling(args: argparse.Namespace) -> dict[str, float]:
    """The host's ceiling for any server: CPU-bound work in 1 process against 2 at once."""
    kinds = [k for k in args.host_work.split(",") if k]
    if not kinds:
        return {}
    print(
        f"host, no network: the same work in 1 process and in 2 at once, {args.rounds} rounds"
        f" of {args.host_seconds:.0f} s (operations per second, CPU per operation)",
        flush=True,
    )
    rounds: dict[str, dict[int, list[HostRound]]] = {k: {1: [], 2: []} for k in kinds}
    for i in range(args.rounds):
        for kind in kinds:
            for procs in (1, 2) if i % 2 == 0 else (2, 1):
                r = host_round(kind, procs, args)
                rounds[kind][procs].append(r)
                print(
                    f"  {kind:9} {procs} process{'es' if procs > 1 else '  '}:"
                    f" {r.rate:10.0f}/s, {r.us_each:8.2f} us each in each process,"
                    f" cores used {r.cores:.2f};"
                    f" load avg {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    ratios = {}
    for kind, by in rounds.items():
        each = [b.rate / a.rate for a, b in zip(by[1], by[2], strict=True)]
        slower = statistics.median(b.us_each / a.us_each for a, b in zip(by[1], by[2], strict=True))
        ratios[kind] = statistics.median(each)
        print(
            f"  {kind}: 2 processes / 1 = {ratios[kind]:.2f}"
            f" (rounds: {', '.join(f'{x:.2f}' for x in each)});"
            f" each operation takes x{slower:.2f} as long with both cores busy",
            flush=True,
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="counted seconds per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before counting")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64, help="concurrent handshakes")
    parser.add_argument(
        "--c-clients",
        type=int,
        default=256,
        help="concurrent handshakes against the C server (3 times as fast as ours: with 64,"
        " its workers waited for datagrams)",
    )
    parser.add_argument("--loads", default="psk,cert", help="psk, cert or both")
    parser.add_argument(
        "--nap",
        type=int,
        default=500,
        help="the generator's nap in us when few datagrams wait (fewer wake-ups)",
    )
    parser.add_argument(
        "--spin",
        action="store_true",
        help="with one worker, a busy loop on the other core (what a busy second core costs)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin each worker to a CPU of its own (the generator is left to the scheduler)",
    )
    parser.add_argument(
        "--idle-generator",
        action="store_true",
        help="run the generator under SCHED_IDLE, so that it never preempts a worker",
    )
    parser.add_argument("--no-check", action="store_true", help="skip the two-worker check")
    parser.add_argument(
        "--boost",
        type=int,
        default=0,
        metavar="N",
        help="as root on a busy machine: nice -N for the server's and the generator's"
        " autogroups, so that they take the cores from other sessions (default 0: off)",
    )
    parser.add_argument(
        "--stacks",
        default="dtlsgate,openssl",
        help="servers: dtlsgate (dtlsgate serve) and openssl (bench/loadgen/dtlsserve.c)",
    )
    parser.add_argument(
        "--host-work",
        default=",".join(HOST_WORK),
        help="CPU-bound work run in 1 and 2 processes, no network ('' for none): "
        + ", ".join(HOST_WORK),
    )
    parser.add_argument("--host-seconds", type=float, default=3.0, help="per host round")
    parser.add_argument("--burn", help=argparse.SUPPRESS)
    parser.add_argument("--procs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.burn:
        burn(args.burn, args.procs, args.host_seconds)
        return
    # Started in the background of a non-interactive shell (`python bench/workers.py &`),
    # this process and every server it starts would ignore SIGINT: the workers would never
    # log their summaries and the check would fail. A handler is reset in the children.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    loads = args.loads.split(",")
    stacks = [OURS if name == "dtlsgate" else c_stack() for name in args.stacks.split(",") if name]
    loadgen = build_loadgen()
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    if not args.no_check:
        check(loadgen, args.clients)
    results: dict[tuple[str, str], dict[int, list[Round]]] = {
        (stack.name, load): {1: [], 2: []} for stack in stacks for load in loads
    }
    print(
        f"rounds: {args.rounds} per load and server, {args.seconds:.0f} s counted after"
        f" {args.warmup:.0f} s,"
        f" {args.clients} concurrent clients ({args.c_clients} for the C server),"
        f" autogroup boost {args.boost}"
        " (cores used: total (system))",
        flush=True,
    )
    for i in range(args.rounds):
        for load in loads:
            for stack in stacks:
                for workers in (1, 2) if i % 2 == 0 else (2, 1):
                    r = one_round(loadgen, load, workers, args, stack)
                    results[stack.name, load][workers].append(r)
                    show(r, args.seconds)
    host = host_scaling(args)
    print("summary (medians over rounds):")
    served, ceiling, own_cores = {}, {}, {}
    for (name, load), by_workers in results.items():
        one, two = by_workers[1], by_workers[2]
        ratios = [b.rate / a.rate for a, b in zip(one, two, strict=True)]
        share = statistics.median(r.gen_share for r in one + two)
        per_cpu = {
            w: statistics.median(r.handshakes / r.server_cpu for r in rs)
            for w, rs in by_workers.items()
        }
        served[name, load] = statistics.median(ratios)
        ceiling[name, load] = 2 / (1 + share)
        own_cores[name, load] = 2 * per_cpu[2] / per_cpu[1]
        seconds = args.seconds
        used = statistics.median((r.server_cpu + sum(r.gen_cpu)) / seconds for r in two)
        stolen = {w: statistics.median(r.stolen for r in rs) for w, rs in by_workers.items()}
        print(
            f"  {name} {load}: --workers 1 {statistics.median(r.rate for r in one):.0f}/s,"
            f" --workers 2 {statistics.median(r.rate for r in two):.0f}/s,"
            f" ratio {statistics.median(ratios):.2f}"
            f" (rounds: {', '.join(f'{x:.2f}' for x in ratios)});"
            f" generator/server CPU per handshake {share:.2f}, so at most {2 / (1 + share):.2f};"
            f" handshakes per server CPU-second {per_cpu[1]:.0f} and {per_cpu[2]:.0f};"
            f" cores used by the workers and the generator with 2 workers {used:.2f};"
            f" cores taken by the hypervisor with 1 worker {stolen[1]:.2f}, with 2"
            f" {stolen[2]:.2f}"
        )
    print("2 against 1, side by side (medians of round ratios):")
    for load in loads:
        line = ", ".join(
            f"{n} {served[n, load]:.2f} (its ceiling {ceiling[n, load]:.2f};"
            f" on cores of its own {own_cores[n, load]:.2f})"
            for n in (s.name for s in stacks)
        )
        print(f"  served over UDP, {load}: {line}")
    if host:
        print("  host CPU-bound, no network: " + ", ".join(f"{k} {v:.2f}" for k, v in host.items()))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
