#!/usr/bin/python3
"""Soak test (issue 9): run the emulator for SOAK_MINUTES under a mixed
load, print its health every minute, and fail on growth, death or an
impossible answer.

    make soak                      30 minutes (mk/soak.mk)
    make soak SOAK_MINUTES=2       a short run
    /usr/bin/python3 tests/soak/soak.py --minutes 2 [--bin PATH] [--out FILE]

The emulator (build/smtp-emulator, or EMU_BIN / --bin) gets one listener
per scenario (`--listen 127.0.0.1:0=NAME` for every name --list-scenarios
prints), one default listener whose scenario the load switches through
`PUT /api/v1/scenario`, and the control API. It keeps at most 200
messages and 200 session records (--max-messages, --max-sessions), so its
store is full after a few seconds and its memory should then stay flat.

The load, all at once:
  - Postfix's smtp-source against the accept listener, in rounds;
  - Python clients (threads), each session on a random listener doing one
    of: a plain transaction, PIPELINING, STARTTLS, AUTH PLAIN, BDAT,
    a slow client (a byte at a time), garbage (NULs, 8-bit bytes, bare
    LF, a 3000-byte line), an abrupt end (FIN or RST) in the middle of a
    command or of the DATA, an idle client the server must time out;
  - API readers (sessions, transcripts, messages, metrics, scenarios).

Every minute a row: sessions so far (the emulator's count), client
errors by exception type, replies by class, RSS and descriptors of the
process. At the end (clients stopped and their connections gone) it fails
with exit status 1 when:
  - the emulator died, or did not exit 0 on SIGTERM;
  - descriptors are not back to where they were before the load (+-5:
    listeners, the API socket, the log and the epoll set are all there
    is once the clients are gone; anything more is a leak);
  - RSS grew by more than 10% + 5 MB over its level after the first
    minute (the store is full by then, so what follows is steady state:
    a leak of 20 bytes per session shows over a 30-minute run, while
    malloc's arenas and Lua's collector cycles stay well inside);
  - any client saw something impossible: a malformed reply (not
    `ddd[ -]text` CRLF, mixed codes in one reply, a code outside
    200-599), a plain transaction on a scenario with a fixed answer
    (every one but greylisting, rate-limit and chance) that differs from
    the first one made at start-up, smtp-source failing against the
    accept listener, an API error on a valid request, or no answer for
    longer than the idle timeout (a hang).
The per-minute table and the verdict go to tests/soak/RESULTS.md."""

import argparse
import base64
import collections
import json
import os
import random
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from helpers import Emulator  # noqa: E402

IDLE = 10  # --idle-timeout: also how long a client waits before "hang"
HANG = IDLE + 10
MAX_STORE = 200
# Scenarios whose answer to the same plain transaction may change over
# time (counters, first attempts, dice): only the generic checks apply.
VARYING = {"greylisting", "rate-limit", "chance"}
SETS = [  # make the defaults more eventful
    "abrupt-eof.at=body", "abrupt-eof.mode=reset",
    "abrupt-eof.after_bytes=512",
    "tarpit.greeting=0.3", "tarpit.rcpt=0.5",
    "chance.p_drop=0.05", "chance.p_reply=0.1", "chance.p_delay=0.05",
    "chance.delay=1",
]
API_SWITCH = ["accept", "greylisting", "spam-policy", "tarpit", "postfix",
              "gmail", "triggers", "router"]
RSS_PCT, RSS_MB, FD_SLACK = 10, 5, 5
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


class Impossible(Exception):
    """Something the emulator must never do."""


class Closed(Exception):
    """The server ended the connection (FIN or RST)."""


# ------------------------------------------------------------ one client

class Conn:
    def __init__(self, port, tls_ctx=None):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=HANG)
        self.buf = b""
        self.tls_ctx = tls_ctx

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(repr(e))

    def _line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise Impossible("reply line over 64 KiB: %r"
                                 % self.buf[:100])
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Impossible("hang: no reply in %d s (idle timeout "
                                 "%d s)" % (HANG, IDLE))
            except (ConnectionResetError, ssl.SSLError, OSError) as e:
                raise Closed(repr(e))
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """One whole reply: (code, [lines]); checks its form."""
        lines, code = [], None
        while True:
            line = self._line()
            m = re.fullmatch(rb"([2-5]\d\d)([ -].*)?", line, re.S)
            if not m or b"\n" in line or b"\r" in line:
                raise Impossible("malformed reply line %r" % line[:200])
            if code is not None and int(m.group(1)) != code:
                raise Impossible("mixed codes in one reply: %r + %r"
                                 % (lines, line))
            code = int(m.group(1))
            lines.append(line.decode("utf-8", "replace"))
            if not m.group(2) or m.group(2).startswith(b" "):
                return code, lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self):
        self.sock = self.tls_ctx.wrap_socket(self.sock,
                                             server_hostname="localhost")
        self.buf = b""

    def close(self, rst=False):
        try:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass


def body(rng, n):
    lines = [b"Subject: soak %d" % rng.randrange(10**9), b"From: s@soak.test",
             b""]
    while sum(len(x) + 2 for x in lines) < n:
        lines.append(b"." * rng.randrange(2) + b"soak line " +
                     b"y" * rng.randrange(70))
    return lines


def stuffed(lines):
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                    for ln in lines) + b".\r\n"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sessions = 0
        self.behaviours = collections.Counter()
        self.errors = collections.Counter()  # client-side, by type
        self.replies = collections.Counter()  # 2xx, 3xx, ...
        self.impossible = []

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                getattr(self, k).update(v)

    def bad(self, what):
        with self.lock:
            self.impossible.append("%s %s" % (time.strftime("%H:%M:%S"),
                                              what))

    def snapshot(self):
        with self.lock:
            return (self.sessions, dict(self.errors), dict(self.replies),
                    len(self.impossible))


class Session:
    """One session of one behaviour on one listener; records the codes."""

    def __init__(self, port, scenario, rng, stats, tls_ctx):
        self.port, self.scenario, self.rng = port, scenario, rng
        self.stats, self.tls_ctx = stats, tls_ctx
        self.codes = []  # (stage, code) in order; ("end", "closed")
        self.c = None
        self.ehlo = []

    def r(self, stage, line=None, payload=None):
        if payload is not None:
            self.c.send(payload)
        code, lines = self.c.reply() if line is None else self.c.cmd(line)
        self.codes.append((stage, code))
        self.stats.add(replies=["%dxx" % (code // 100)])
        return code, lines

    def ehlo_has(self, word):
        return any(ln[4:].upper().startswith(word) for ln in self.ehlo)

    def start(self):
        self.c = Conn(self.port, self.tls_ctx)
        code, _ = self.r("greeting")
        if code != 220:
            return False
        code, self.ehlo = self.r("ehlo", "EHLO soak.client.test")
        return code == 250

    def transaction(self, pipelining=False, bdat=False, slow=False,
                    size=(1000, 4000)):
        rng = self.rng
        sender = "s%d@soak.test" % rng.randrange(20)
        rcpt = "r%d@example.org" % rng.randrange(20)
        lines = body(rng, rng.randint(*size))
        if pipelining and self.ehlo_has("PIPELINING"):
            self.c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n%s\r\n"
                        % (sender, rcpt, "DATA" if not bdat else "NOOP"))
            codes = [self.r(st)[0] for st in ("mail", "rcpt", "data")]
            if codes[0] != 250 or codes[1] != 250 or \
                    codes[2] not in (354, 250):
                if codes[2] == 354:
                    self.r("message", payload=b".\r\n")
                return
            if bdat:
                self.send_bdat(lines)
            else:
                self.r("message", payload=stuffed(lines))
            return
        for stage, line in (("mail", "MAIL FROM:<%s>" % sender),
                            ("rcpt", "RCPT TO:<%s>" % rcpt)):
            if slow:
                for ch in line + "\r\n":
                    self.c.send(ch)
                    time.sleep(rng.uniform(0.001, 0.02))
                code = self.r(stage)[0]
            else:
                code = self.r(stage, line)[0]
            if code != 250:
                return
        if bdat and self.ehlo_has("CHUNKING"):
            self.send_bdat(lines)
            return
        if self.r("data", "DATA")[0] != 354:
            return
        data = stuffed(lines)
        if slow:
            for i in range(0, len(data), 97):
                self.c.send(data[i:i + 97])
                time.sleep(rng.uniform(0.001, 0.01))
            self.r("message")
        else:
            self.r("message", payload=data)

    def send_bdat(self, lines):
        data = b"".join(ln + b"\r\n" for ln in lines)
        half = len(data) // 2
        code = self.r("bdat", payload=b"BDAT %d\r\n" % half + data[:half])[0]
        if code != 250:
            return
        self.r("message", payload=b"BDAT %d LAST\r\n" % (len(data) - half) +
               data[half:])

    def quit(self):
        try:
            self.r("quit", "QUIT")
        except Closed:
            pass


def behaviour_plain(s):
    if s.start():
        s.transaction()
        s.quit()


def behaviour_pipelining(s):
    if s.start():
        s.transaction(pipelining=True)
        s.transaction(pipelining=True)
        s.quit()


def behaviour_bdat(s):
    if s.start():
        s.transaction(bdat=True, pipelining=s.rng.random() < 0.5)
        s.quit()


def behaviour_slow(s):
    if s.start():
        s.transaction(slow=True, size=(200, 2000))
        s.quit()


def behaviour_starttls(s):
    if not s.start():
        return
    if not s.ehlo_has("STARTTLS"):
        s.transaction()
        return s.quit()
    if s.r("starttls", "STARTTLS")[0] != 220:
        return s.quit()
    try:
        s.c.starttls()
    except (ssl.SSLError, OSError) as e:
        # tls-faults and cert-restriction break handshakes on purpose.
        raise Closed("handshake: %r" % e)
    code, s.ehlo = s.r("ehlo", "EHLO soak.client.test")
    if code == 250:
        s.transaction(pipelining=s.rng.random() < 0.5)
    s.quit()


def behaviour_auth(s):
    if not s.start():
        return
    if s.ehlo_has("STARTTLS") and s.rng.random() < 0.5:
        if s.r("starttls", "STARTTLS")[0] == 220:
            try:
                s.c.starttls()
            except (ssl.SSLError, OSError) as e:
                raise Closed("handshake: %r" % e)
            code, s.ehlo = s.r("ehlo", "EHLO soak.client.test")
            if code != 250:
                return s.quit()
    if s.ehlo_has("AUTH"):
        cred = base64.b64encode(b"\0alice\0secret").decode()
        s.r("auth", "AUTH PLAIN " + cred)
    s.transaction()
    s.quit()


def behaviour_garbage(s):
    if not s.start():
        return
    rng = s.rng
    parts = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))),
             b"\x00\x00NOOP\x00\r\n", b"\xff\xfe\xfd\r\n", b"bare\nLF\n",
             b"x" * 3000 + b"\r\n", b"MAIL FROM:<\x00@x>\r\n",
             b"RCPT TO:<" + b"a" * 600 + b"@x>\r\n", b"\r\n\r\n",
             b"HELO\r\n", b"DATA\r\n"]
    rng.shuffle(parts)
    # DATA may be accepted if MAIL and RCPT were: end it, then QUIT.
    s.c.send(b"".join(parts[:rng.randint(2, len(parts))]) +
             b"\r\n.\r\nQUIT\r\n")
    try:
        for _ in range(200):
            s.r("garbage")
    except Closed:
        return
    raise Impossible("200 replies to a few lines of garbage")


def behaviour_abort_cmd(s):
    if not s.start():
        return
    s.c.send(s.rng.choice([b"MAIL FROM:<a@b", b"RCPT", b"EH", b"AUTH PL"]))
    time.sleep(s.rng.uniform(0, 0.05))
    s.c.close(rst=s.rng.random() < 0.5)


def behaviour_abort_data(s):
    if not s.start():
        return
    if s.r("mail", "MAIL FROM:<x@soak.test>")[0] != 250 or \
            s.r("rcpt", "RCPT TO:<y@example.org>")[0] != 250 or \
            s.r("data", "DATA")[0] != 354:
        return s.quit()
    data = stuffed(body(s.rng, 3000))
    s.c.send(data[:s.rng.randrange(1, len(data) - 3)])
    time.sleep(s.rng.uniform(0, 0.05))
    s.c.close(rst=s.rng.random() < 0.5)


def behaviour_idle(s):
    """Say nothing: the server must close with 421 after the idle
    timeout, not keep the connection forever."""
    s.c = Conn(s.port, s.tls_ctx)
    t0 = time.time()
    try:
        while True:
            code = s.r("idle")[0]
            if code == 421:
                break
    except Closed:
        pass
    took = time.time() - t0
    if took > IDLE + 5 and s.scenario not in ("tarpit",):
        raise Impossible("idle client closed after %.1f s (idle timeout "
                         "%d s)" % (took, IDLE))


BEHAVIOURS = [  # (weight, function)
    (30, behaviour_plain), (12, behaviour_pipelining), (8, behaviour_bdat),
    (12, behaviour_starttls), (8, behaviour_auth), (10, behaviour_garbage),
    (8, behaviour_abort_cmd), (8, behaviour_abort_data), (3, behaviour_slow),
    (0.3, behaviour_idle),
]


def client_thread(listeners, probes, stats, stop, seed, tls_ctx):
    rng = random.Random(seed)
    weights = [w for w, _ in BEHAVIOURS]
    while not stop.is_set():
        scenario, port = rng.choice(listeners)
        (fn,) = rng.choices([f for _, f in BEHAVIOURS], weights)
        s = Session(port, scenario, rng, stats, tls_ctx)
        name = fn.__name__[len("behaviour_"):]
        try:
            fn(s)
        except Closed as e:
            s.codes.append(("end", "closed"))
            stats.add(errors=["closed by server (%s)"
                              % ("EOF" if "EOF" in str(e) else
                                 "handshake" if "handshake" in str(e)
                                 else "reset")])
        except Impossible as e:
            stats.bad("%s on %s (%s): %s" % (name, scenario, port, e))
        except TimeoutError:
            stats.bad("%s on %s (%s): hang: the server read nothing for "
                      "%d s" % (name, scenario, port, HANG))
        except OSError as e:
            stats.add(errors=[type(e).__name__])
        finally:
            if s.c:
                s.c.close()
        with stats.lock:
            stats.sessions += 1
            stats.behaviours[name] += 1
        want = probes.get(port)
        if fn is behaviour_plain and want is not None and s.codes != want:
            stats.bad("plain transaction on %s: %s, at start-up %s"
                      % (scenario, s.codes, want))


def probe(port, scenario, tls_ctx):
    stats = Stats()
    s = Session(port, scenario, random.Random(1), stats, tls_ctx)
    try:
        behaviour_plain(s)
    except Closed:
        s.codes.append(("end", "closed"))
    finally:
        if s.c:
            s.c.close()
    if stats.impossible:
        raise SystemExit("probe of %s: %s" % (scenario, stats.impossible))
    return s.codes


# ------------------------------------------------------------ other load

def smtp_source_thread(port, stats, stop, rounds):
    # A pause between rounds leaves CPU to the Python clients: smtp-source
    # alone would make nine sessions in ten.
    while not stop.wait(0.5):
        persistent = rounds[0] % 2 == 1
        cmd = [SMTP_SOURCE, "-s", "4", "-m", "200", "-l", "2048",
               "-f", "source@soak.test", "-t", "sink@example.org",
               "127.0.0.1:%d" % port]
        if persistent:
            cmd.insert(1, "-d")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=120)
        except subprocess.TimeoutExpired:
            stats.bad("smtp-source did not finish 200 messages in 120 s")
            continue
        rounds[0] += 1
        with stats.lock:
            stats.sessions += 4 if persistent else 200
            stats.behaviours["smtp-source"] += 4 if persistent else 200
        if p.returncode != 0 or p.stderr.strip():
            stats.bad("smtp-source exit %d: %s" % (p.returncode,
                                                    p.stderr.strip()[:300]))


def api_thread(emu, stats, stop, rng):
    host, port = emu.addr("api")
    base = "http://%s:%d" % (host, port)
    n = 0

    def call(method, path, body=None, ok=(200,)):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=HANG) as r:
                status, payload = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        except (OSError, urllib.error.URLError) as e:
            stats.bad("API %s %s: %r" % (method, path, e))
            return None
        if status not in ok:
            stats.bad("API %s %s: %d %r" % (method, path, status,
                                            payload[:200]))
        elif status >= 300:
            stats.add(errors=["API %d" % status])
        return payload if status == 200 else None

    while not stop.wait(0.5):
        n += 1
        out = call("GET", "/api/v1/sessions?limit=5")
        if out:
            for sess in json.loads(out)[:2]:
                # Evicted between the list and the fetch: 404 is fine.
                call("GET", "/api/v1/sessions/%d/transcript" % sess["id"],
                     ok=(200, 404))
        out = call("GET", "/api/v1/messages?to=example.org")
        if out:
            for msg in json.loads(out)[:1]:
                call("GET", "/api/v1/messages/%s/raw" % msg["id"],
                     ok=(200, 404))
        call("GET", "/metrics")
        if n % 10 == 0:
            call("PUT", "/api/v1/scenario",
                 {"name": rng.choice(API_SWITCH), "params": {}})
        if n % 60 == 0:
            call("GET", "/api/v1/scenarios")
            call("DELETE", "/api/v1/sessions", ok=(200, 204))


# ------------------------------------------------------------ the process

def proc_status(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def metric(emu, name):
    host, port = emu.addr("api")
    with urllib.request.urlopen("http://%s:%d/metrics" % (host, port),
                                timeout=HANG) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def fmt_counter(d, top=4):
    items = sorted(d.items(), key=lambda kv: -kv[1])
    s = ", ".join("%s %d" % kv for kv in items[:top])
    if len(items) > top:
        s += ", +%d more" % (len(items) - top)
    return s or "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float,
                    default=float(os.environ.get("SOAK_MINUTES", 30)))
    ap.add_argument("--bin", default=os.environ.get(
        "EMU_BIN", os.path.join(ROOT, "build", "smtp-emulator")))
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    os.environ["EMU_BIN"] = a.bin
    import helpers
    helpers.BIN = a.bin

    names = subprocess.run([a.bin, "--list-scenarios"], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    names = [ln.split()[0] for ln in names if ln.strip()]
    args = ["--listen", "127.0.0.1:0"]  # the default: switched by the API
    for n in names:
        args += ["--listen", "127.0.0.1:0=%s" % n]
    for s in SETS:
        args += ["--set", s]
    args += ["--api", "127.0.0.1:0", "--max-messages", str(MAX_STORE),
             "--max-sessions", str(MAX_STORE), "--idle-timeout", str(IDLE),
             "--log-level", "warn", "--seed", str(a.seed)]
    emu = Emulator(*args, default_listen=False).start()
    pid = emu.proc.pid
    smtp_ports = [p for k, h, p in emu.listeners if k == "smtp"]
    listeners = [("default", smtp_ports[0])] + list(zip(names,
                                                        smtp_ports[1:]))
    accept_port = dict(listeners)["accept"]
    tls_ctx = ssl.create_default_context()
    tls_ctx.check_hostname = False
    tls_ctx.verify_mode = ssl.CERT_NONE

    time.sleep(0.5)
    rss0, fd0 = proc_status(pid)
    probes = {}
    for name, port in listeners:
        if name != "default" and name not in VARYING:
            probes[port] = probe(port, name, tls_ctx)
    print("soak: %s, %d listeners, %.1f minutes, seed %d; before the load: "
          "RSS %.1f MB, %d fds" % (a.bin, len(listeners), a.minutes, a.seed,
                                   rss0 / 1024, fd0), flush=True)
    fixed = ["%s %s" % (name, " ".join(str(c) for _, c in probes[port]))
             for name, port in listeners if port in probes]
    print("fixed answers to a plain transaction (greeting .. QUIT):\n  " +
          "\n  ".join(fixed), flush=True)

    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=client_thread, daemon=True,
                                args=(listeners, probes, stats, stop,
                                      a.seed + i, tls_ctx))
               for i in range(a.clients)]
    rounds = [0]
    threads.append(threading.Thread(target=smtp_source_thread, daemon=True,
                                    args=(accept_port, stats, stop, rounds)))
    threads.append(threading.Thread(target=api_thread, daemon=True,
                                    args=(emu, stats, stop,
                                          random.Random(a.seed))))
    for t in threads:
        t.start()

    header = ("| min | sessions (emulator) | client sessions | replies "
              "| client errors | impossible | RSS MB | fds |")
    rows = []
    print(header, flush=True)
    t0 = time.time()
    rss1 = None
    minutes = max(1, int(round(a.minutes)))
    died = False
    for minute in range(1, minutes + 1):
        while time.time() < t0 + 60 * minute * a.minutes / minutes:
            time.sleep(0.5)
            if not emu.alive():
                died = True
                break
        if died:
            break
        rss, fds = proc_status(pid)
        if minute == 1:
            rss1 = rss
        total = metric(emu, "smtp_emulator_sessions_total")
        sess, errs, reps, bad = stats.snapshot()
        row = "| %d | %d | %d | %s | %s | %d | %.1f | %d |" % (
            minute, total, sess, fmt_counter(reps), fmt_counter(errs, 5),
            bad, rss / 1024, fds)
        rows.append(row)
        print(row, flush=True)

    stop.set()
    for t in threads:
        t.join(timeout=HANG + 130)
    failures = []
    if died or not emu.alive():
        failures.append("the emulator died (exit status %s); log tail:\n%s"
                        % (emu.proc.poll(), emu.log()[-2000:]))
    rss_end = fd_end = None
    if not failures:
        # Wait for every connection the clients opened to be gone.
        deadline = time.time() + HANG
        while time.time() < deadline:
            if metric(emu, "smtp_emulator_active_connections") == 0:
                break
            time.sleep(0.5)
        else:
            failures.append("connections still open %d s after the load "
                            "stopped" % HANG)
        time.sleep(1)
        rss_end, fd_end = proc_status(pid)
        if abs(fd_end - fd0) > FD_SLACK:
            failures.append("descriptors: %d before the load, %d after it "
                            "(more than +-%d)" % (fd0, fd_end, FD_SLACK))
        limit = rss1 * (1 + RSS_PCT / 100) + RSS_MB * 1024
        if rss_end > limit:
            failures.append("RSS grew: %.1f MB after the first minute, %.1f "
                            "MB at the end (limit %.1f MB)"
                            % (rss1 / 1024, rss_end / 1024, limit / 1024))
    total_end = metric(emu, "smtp_emulator_sessions_total") \
        if emu.alive() else None
    rc = emu.stop(check=False)
    if not died and rc != 0:
        failures.append("exit status %s after SIGTERM" % rc)
    sess, errs, reps, bad = stats.snapshot()
    if bad:
        failures.append("%d impossible events; first ones:\n  %s"
                        % (bad, "\n  ".join(stats.impossible[:20])))
    for t in threads:
        if t.is_alive():
            failures.append("a client thread hangs")
            break

    verdict = "PASSED" if not failures else "FAILED"
    summary = [
        "soak: %s after %.1f minutes" % (verdict, (time.time() - t0) / 60),
        "sessions: %s in the emulator, %d by the clients (%s)"
        % (total_end, sess, fmt_counter(stats.behaviours, 20)),
        "replies seen by the Python clients: %s" % fmt_counter(reps, 10),
        "client errors: %s" % fmt_counter(errs, 20),
        "RSS: %.1f MB before the load, %.1f MB after the first minute, "
        "%s at the end (limit +%d%% + %d MB)"
        % (rss0 / 1024, (rss1 or 0) / 1024,
           "%.1f MB" % (rss_end / 1024) if rss_end else "-", RSS_PCT,
           RSS_MB),
        "fds: %d before the load, %s after it (limit +-%d)"
        % (fd0, fd_end if fd_end is not None else "-", FD_SLACK),
        "smtp-source rounds: %d" % rounds[0],
    ]
    for line in summary:
        print(line)
    for f in failures:
        print("FAIL: " + f)
    with open(a.out, "w") as f:
        f.write("# Soak results\n\n")
        f.write("Written by `make soak` (tests/soak/soak.py); see "
                "docs/testing-faults.md for how to read it.\n\n")
        f.write("Run: %s, %s, %.1f minutes, seed %d, %d Python clients + "
                "smtp-source + API readers; `--max-messages %d "
                "--max-sessions %d --idle-timeout %d`; %d listeners (one per "
                "scenario and the default, switched through the API).\n\n"
                % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)),
                   os.path.relpath(a.bin, ROOT), a.minutes, a.seed,
                   a.clients, MAX_STORE, MAX_STORE, IDLE, len(listeners)))
        f.write("Fixed answers to a plain transaction, from the probe at "
                "start-up (every later one on these listeners must match):"
                "\n\n" + "".join("    %s\n" % x for x in fixed) + "\n")
        f.write(header + "\n|---|---|---|---|---|---|---|---|\n")
        f.write("\n".join(rows) + "\n\n")
        f.write("".join("- %s\n" % s for s in summary))
        for x in failures:
            f.write("- FAIL: %s\n" % x.replace("\n", "\n  "))
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
