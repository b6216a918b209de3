"""Benchmark smtp-emulator against Postfix's smtp-sink (and nodemailer's
smtp-server for TLS), side by side in one run on loopback.

The server runs pinned to CPU 0 and the load generator (Postfix's
smtp-source, or bench/tls-load.js) to CPU 1. What counts is the server's
CPU time (utime + stime from /proc/PID/stat, before and after) per message
or per session, and throughput under the same load. Each measurement is
repeated --rounds times; the table shows the median with min and max.

Usage: python3 bench/bench.py [--rounds N] [--quick] [--out bench/RESULTS.md]
"""

import argparse
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EMU = os.path.join(ROOT, "build", "smtp-emulator")
CERTS = os.path.join(ROOT, "certs")
TICK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, LOAD_CPU = "0", "1"


def cpu_seconds(pid):
    """utime + stime of a process and its threads, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(host, port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %s:%d" % (host, port))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A server process pinned to the server CPU."""

    def __init__(self, kind, args=(), workers=1):
        self.kind = kind
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log",
                                               delete=False)
        pin = ["taskset", "-c", SERVER_CPU if workers == 1 else "0,1"]
        if kind == "smtp-sink":
            cmd = pin + ["smtp-sink", "-u", "nobody",
                         "127.0.0.1:%d" % self.port, "1000"]
        elif kind == "node":
            cmd = pin + ["node", os.path.join(HERE, "node-smtp-server.js"),
                         "127.0.0.1", str(self.port),
                         os.path.join(CERTS, "server.pem"),
                         os.path.join(CERTS, "server.key")]
        else:
            # The emulator as a user gets it: transcripts and metrics on,
            # logging at the default level, to a file.
            cmd = pin + [EMU, "--listen", "127.0.0.1:%d" % self.port,
                         "--hostname", "bench.test",
                         "--log-file", self.log.name,
                         "--max-messages", "1000",
                         "--workers", str(workers)] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=self.log,
                                     preexec_fn=raise_nofile)
        wait_port("127.0.0.1", self.port)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.log.name)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_load(cmd):
    t0 = time.time()
    p = subprocess.run(["taskset", "-c", LOAD_CPU] + cmd,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("load generator failed: %s\n%s"
                           % (" ".join(cmd), p.stdout + p.stderr))
    return time.time() - t0


def measure(server, load, units):
    """One round: (units per second, server CPU microseconds per unit)."""
    pid = server.proc.pid
    c0 = cpu_seconds(pid)
    wall = run_load(load)
    c1 = cpu_seconds(pid)
    return units / wall, (c1 - c0) * 1e6 / units


def rounds(n, kind, args, load_fn, units, workers=1):
    rates, cpus = [], []
    for _ in range(n):
        srv = Server(kind, args, workers)
        try:
            r, c = measure(srv, load_fn(srv.port), units)
        finally:
            srv.stop()
        rates.append(r)
        cpus.append(c)
    return rates, cpus


def stat(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt(xs, digits=0):
    m, lo, hi = stat(xs)
    f = "%%.%df" % digits
    return (f + " (" + f + "-" + f + ")") % (m, lo, hi)


def smtp_source(port, messages, persistent):
    cmd = ["smtp-source", "-s", "50", "-m", str(messages), "-l", "1024"]
    if persistent:
        cmd.insert(1, "-d")
    return cmd + ["127.0.0.1:%d" % port]


SCENARIOS = [
    ("accept", []),
    ("accept-lua", ["--scenario", os.path.join(HERE, "accept-lua.lua")]),
    ("greylisting", ["--scenario", "greylisting", "--set", "delay=0"]),
    ("spam-policy", ["--scenario", "spam-policy"]),
]


class Redis:
    """redis-server for the replica rows, without persistence. It is part
    of the server side, so it runs on the server CPU (on the load
    generator's, which smtp-source keeps busy, each reply waited for a
    time slice: half the throughput). Its own CPU time is not counted in
    the emulator's."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, "redis-server", "--port",
             str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)
        self.url = "redis://127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def idle_connections(n, workers=1):
    """RSS of the emulator holding n idle clients that read the greeting."""
    srv = Server("emulator", ["--max-connections", str(n + 100)], workers)
    raise_nofile()
    socks = []
    try:
        time.sleep(0.3)
        base = rss_kib(srv.proc.pid)
        sel = selectors.DefaultSelector()
        for i in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            socks.append(s)
            sel.register(s, selectors.EVENT_READ)
        got = 0
        deadline = time.time() + 120
        while got < n and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                data = key.fileobj.recv(512)
                if data.startswith(b"220 "):
                    got += 1
                sel.unregister(key.fileobj)
        time.sleep(0.5)
        full = rss_kib(srv.proc.pid)
        alive = srv.proc.poll() is None
        return got, base, full, alive
    finally:
        for s in socks:
            s.close()
        srv.stop()


# What the figures mean; the measurements behind it are in PROFILE.md.
EXPLAINED = """
## Where the time goes

Measured with perf (time profile) and Valgrind's callgrind (user-space
instructions, which do not move with the machine's load); details, and
what was changed and why, in [PROFILE.md](PROFILE.md).

* About 80% of both servers' CPU per message is the kernel's: on loopback
  a `write` also delivers the segment to the reader and wakes it, charged
  to the writer. Both make the same 4 reads and 4 writes per message (the
  replies are the same size); smtp-sink adds 12 `poll` and 5
  `rt_sigprocmask` calls (25 syscalls per message against the emulator's
  8.3).
* In user space the emulator (accept) executes about 25,500 instructions
  per message against smtp-sink's 61,800, and 58,000 per new session
  against smtp-sink's 596,000 (the sessions target is met with room).
  accept-lua adds four Lua hooks per message, about 6,500 instructions
  each (the argument tables and a coroutine resume per hook).
* So the per-message target (0.8x smtp-sink's CPU) leaves the emulator
  about 6-7 us of user time at its kernel time per message: accept uses
  about that much and lands around the target, depending on the kernel's
  share in the run; accept-lua, whose four hooks cost 3-7 us more, misses
  it. Closing that gap would need fewer writes per message, which a client
  waiting for each reply does not allow.
* greylisting and spam-policy stay within 1.25x of accept (one Lua hook
  with a state lookup; a body scan in C helpers).
* STARTTLS: both servers do the TLS 1.3 handshake with OpenSSL (Node's
  TLS is OpenSSL too), with the same certificate and key type; the
  difference is the work around it: the emulator's session in C against
  nodemailer's in JavaScript. (Not profiled further: the target is met.)
* --workers 2 on this machine: both workers share the one server CPU
  (the other is the load generator's), so they can only add the cost of a
  second loop and of the shared store's locks; CPU per session shows that
  overhead, not scaling. Each worker has its own SO_REUSEPORT socket,
  event loop and Lua states, and the shared parts (state store, captures,
  sessions, metrics) are locked briefly per operation, so on a machine
  with N free cores throughput should grow close to N-fold until the
  load generator or the store's lock saturates.
* Greylisting with its state in Redis adds a round trip to Redis (on the
  server CPU) at every RCPT: throughput is bound by that latency, not by
  the emulator's CPU, whose cost per message grows by the EVALSHA call.
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="fewer messages (for a smoke test)")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--idle", type=int, default=10000)
    a = ap.parse_args()
    if os.cpu_count() < 2:
        sys.exit("bench needs two CPUs (server and load generator)")
    msgs = 6000 if a.quick else 60000
    sess = 2000 if a.quick else 20000
    tls_n = 500 if a.quick else 3000
    rows = []
    print("rounds=%d messages=%d sessions=%d" % (a.rounds, msgs, sess),
          flush=True)
    redis = Redis() if shutil.which("redis-server") else None
    scenarios = list(SCENARIOS)
    if redis:
        # The same scenario with emu.state in Redis, as replicas run it.
        scenarios.append(("greylisting, state in Redis",
                          SCENARIOS[2][1] + ["--state", redis.url]))

    rates_by_row = {}

    def row(name, rates, cpus, unit):
        rates_by_row[name] = rates
        rows.append((name, fmt(rates), fmt(cpus, 1), unit,
                     statistics.median(cpus)))
        print("%-34s %22s /s   %18s us CPU per %s"
              % (name, fmt(rates), fmt(cpus, 1), unit), flush=True)

    # Messages over persistent connections, and one message per session.
    for label, persistent, units in (("message", True, msgs),
                                     ("session", False, sess)):
        r, c = rounds(a.rounds, "smtp-sink", [],
                      lambda p: smtp_source(p, units, persistent), units)
        row("smtp-sink: %ss" % label, r, c, label)
        for name, args in scenarios:
            r, c = rounds(a.rounds, "emulator", args,
                          lambda p: smtp_source(p, units, persistent), units)
            row("emulator %s: %ss" % (name, label), r, c, label)
    if redis:
        redis.stop()
    # --workers 2, sessions.
    r, c = rounds(a.rounds, "emulator", [],
                  lambda p: smtp_source(p, sess, False), sess, workers=2)
    row("emulator accept --workers 2: sessions", r, c, "session")
    # STARTTLS sessions against nodemailer's smtp-server.
    load = lambda p: ["node", os.path.join(HERE, "tls-load.js"), "127.0.0.1",
                      str(p), str(tls_n), "50"]
    r, c = rounds(a.rounds, "node", [], load, tls_n)
    row("nodemailer smtp-server: STARTTLS sessions", r, c, "TLS session")
    r, c = rounds(a.rounds, "emulator", [], load, tls_n)
    row("emulator: STARTTLS sessions", r, c, "TLS session")
    # Idle connections.
    got, base, full, alive = idle_connections(a.idle)
    per = (full - base) / max(got, 1)
    print("idle: %d/%d connections held, RSS %d KiB -> %d KiB, %.2f KiB "
          "each, server alive=%s" % (got, a.idle, base, full, per, alive),
          flush=True)

    med = {name: cpu for name, _, _, _, cpu in rows}
    rate = {name: statistics.median(rs) for name, rs in rates_by_row.items()}

    def ratio(x, y):
        return med[x] / med[y]

    ratios = [
        ("accept CPU/message vs smtp-sink", ratio(
            "emulator accept: messages", "smtp-sink: messages"), 0.8),
        ("accept-lua CPU/message vs smtp-sink", ratio(
            "emulator accept-lua: messages", "smtp-sink: messages"), 0.8),
        ("accept CPU/session vs smtp-sink", ratio(
            "emulator accept: sessions", "smtp-sink: sessions"), 1.0),
        ("accept-lua CPU/session vs smtp-sink", ratio(
            "emulator accept-lua: sessions", "smtp-sink: sessions"), 1.0),
        ("greylisting CPU/message vs accept", ratio(
            "emulator greylisting: messages", "emulator accept: messages"),
         1.25),
        ("spam-policy CPU/message vs accept", ratio(
            "emulator spam-policy: messages", "emulator accept: messages"),
         1.25),
        ("STARTTLS CPU/session vs nodemailer", ratio(
            "emulator: STARTTLS sessions",
            "nodemailer smtp-server: STARTTLS sessions"), 0.7),
        ("--workers 2 CPU/session vs 1 worker", ratio(
            "emulator accept --workers 2: sessions",
            "emulator accept: sessions"), 1.10),
    ]
    # Throughput must not fall behind smtp-sink's under the same load
    # generator (which sets the pace: smtp-source uses a whole core).
    pace = []
    for scen in ("accept", "accept-lua"):
        for unit in ("messages", "sessions"):
            pace.append(("%s %s/s vs smtp-sink" % (scen, unit[:-1]),
                         rate["emulator %s: %s" % (scen, unit)] /
                         rate["smtp-sink: %s" % unit]))
    # Throughput (higher is better) of the shared store against the local
    # one: what a replica gives up for sharing greylisting with others.
    shared = []
    for unit in ("messages", "sessions"):
        x = "emulator greylisting, state in Redis: %s" % unit
        y = "emulator greylisting: %s" % unit
        if x in rate:
            shared.append(("greylisting %s/s, Redis vs in-process" % unit[:-1],
                           rate[x] / rate[y], med[x] / med[y]))
    print()
    for name, v, target in ratios:
        print("%-42s %.2fx (target <= %.2fx) %s"
              % (name, v, target, "ok" if v <= target else "MISSED"))
    for name, v in pace:
        print("%-42s %.2fx (target >= 1.00x) %s"
              % (name, v, "ok" if v >= 1.0 else "MISSED"))
    for name, v, cpu in shared:
        print("%-42s %.2fx throughput, %.2fx CPU per unit" % (name, v, cpu))
    with open(a.out, "w") as f:
        f.write("# Benchmark results\n\n")
        f.write("Produced by `make bench` (`python3 bench/bench.py --rounds "
                "%d`) on %s, %d CPUs, %s.\n\n"
                % (a.rounds, time.strftime("%Y-%m-%d %H:%M UTC",
                                           time.gmtime()),
                   os.cpu_count(), os.uname().release))
        f.write("Server pinned to CPU 0, load generator to CPU 1, loopback. "
                "Messages: `smtp-source -d -s 50 -m %d -l 1024`; sessions: "
                "`smtp-source -s 50 -m %d -l 1024`; TLS: `node "
                "bench/tls-load.js` (%d STARTTLS sessions, TLS 1.3, 50 at a "
                "time). The emulator runs as a user gets it: transcripts and "
                "metrics on, one log line per command and reply written to a "
                "file. Medians of %d rounds, (min-max).\n\n"
                % (msgs, sess, tls_n, a.rounds))
        f.write("| Server and load | Rate per second | Server CPU (us) | per |\n")
        f.write("|---|---|---|---|\n")
        for name, r, c, unit, _ in rows:
            f.write("| %s | %s | %s | %s |\n" % (name, r, c, unit))
        f.write("\n| Ratio | Measured | Target |\n|---|---|---|\n")
        for name, v, target in ratios:
            f.write("| %s | %.2fx | <= %.2fx %s |\n"
                    % (name, v, target, "" if v <= target else "(missed)"))
        for name, v in pace:
            f.write("| %s | %.2fx | >= 1.00x %s |\n"
                    % (name, v, "" if v >= 1.0 else "(missed)"))
        if shared:
            f.write("\n| Shared state (issue 11) | Throughput | Emulator CPU "
                    "per unit |\n|---|---|---|\n")
            for name, v, cpu in shared:
                f.write("| %s | %.2fx | %.2fx |\n" % (name, v, cpu))
        f.write("\nIdle connections: %d of %d held (server alive: %s); RSS "
                "%d KiB before, %d KiB after: %.2f KiB per connection "
                "(target <= 6 KiB).\n" % (got, a.idle, alive, base, full,
                                           per))
        f.write(EXPLAINED)


if __name__ == "__main__":
    main()
