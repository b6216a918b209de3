"""Test harness: start the real smtp-emulator binary on port 0, talk to it
with real clients, and check that it is still alive and exits cleanly.

EMU_BIN selects the binary (build/smtp-emulator by default). Under EMU_ASAN=1
the sanitizer output in the log fails the test. Under EMU_VALGRIND=1 the
binary runs under Valgrind's memcheck (`make valgrind`): a memory error, a
definite leak or a descriptor still open at exit fails the test the same
way, and start-up and shut-down waits are scaled by SLOW (EMU_SLOW sets it;
20 under Valgrind, else 1)."""

import os
import re
import select
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EMU_BIN", os.path.join(ROOT, "build", "smtp-emulator"))
CERTS = os.path.join(ROOT, "certs")
HOST = "mx.test"

VALGRIND = os.environ.get("EMU_VALGRIND") == "1"
SLOW = float(os.environ.get("EMU_SLOW") or (20 if VALGRIND else 1))
# Library noise only, each entry justified in the file.
VALGRIND_SUPP = os.path.join(ROOT, "tests", "valgrind.supp")
VALGRIND_ARGS = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                 "--errors-for-leak-kinds=definite", "--track-fds=yes", "-q",
                 "--vgdb=no", "--suppressions=" + VALGRIND_SUPP]
# Tests whose own time limits Valgrind's slowdown defeats: skipped under
# EMU_VALGRIND=1 only, with the reason.
VALGRIND_SKIP = {
    "test_engine.Engine.test_memory_bomb":
        "under Valgrind the scenario's 2 s wall-clock budget runs out "
        "before the Lua memory cap is reached",
}

SANITIZER_PATTERNS = [
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
]


class Emulator:
    """One emulator process. Use as a context manager."""

    def __init__(self, *args, hostname=HOST, default_listen=True, env=None,
                 timeout=15, popen=None):
        self.args = list(args)
        if hostname:
            self.args = ["--hostname", hostname] + self.args
        if default_listen and not any(
                a.startswith(("--listen", "--proxy-protocol"))
                for a in self.args):
            self.args = ["--listen", "127.0.0.1:0"] + self.args
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            self.env.update(env)
        self.timeout = timeout * SLOW
        self.popen = dict(popen or {})  # more subprocess.Popen arguments
        self.vglog = None  # Valgrind's report, under EMU_VALGRIND=1
        self.proc = None
        self.listeners = []  # (kind, host, port)
        self.logfile = tempfile.NamedTemporaryFile(
            prefix="emu-log-", suffix=".txt", delete=False)

    # -- lifecycle --
    def expected_lines(self):
        n = 0
        for a in self.args:
            if a.split("=")[0] in ("--listen", "--listen-tls",
                                   "--proxy-protocol", "--api"):
                n += 1
        return n

    def start(self):
        cmd = [BIN] + self.args
        if VALGRIND:
            fd, self.vglog = tempfile.mkstemp(prefix="emu-valgrind-",
                                              suffix=".txt")
            os.close(fd)
            cmd = VALGRIND_ARGS + ["--log-file=" + self.vglog] + cmd
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.logfile,
            env=self.env, **self.popen)
        want = self.expected_lines()
        deadline = time.time() + self.timeout
        buf = b""
        while len(self.listeners) < want:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("emulator did not announce its "
                                     "listeners; log:\n" + self.log())
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(
                    "emulator exited (rc=%s) before listening; log:\n%s"
                    % (self.proc.wait(), self.log()))
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                m = re.match(r"listening (\w+) \[?([^\]]+?)\]?:(\d+)$",
                             line.decode())
                if m:
                    self.listeners.append(
                        (m.group(1), m.group(2), int(m.group(3))))
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop(check=exc_type is None)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True):
        if self.proc is None:
            return None
        was_alive = self.alive()
        if was_alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            if check:
                raise AssertionError("emulator did not stop on SIGTERM")
        self.proc.stdout.close()
        self.logfile.close()
        log = self.log()
        self.proc = None
        vg = self.valgrind_report()
        if check and vg:
            raise AssertionError("valgrind report (exit status %s):\n%s"
                                 % (rc, vg[-8000:]))
        if check:
            if not was_alive:
                raise AssertionError("emulator died during the test "
                                     "(rc=%s); log:\n%s" % (rc, log))
            if rc != 0:
                raise AssertionError("exit status %s after SIGTERM; log:\n%s"
                                     % (rc, log[-4000:]))
            for pat in SANITIZER_PATTERNS:
                if pat in log:
                    raise AssertionError("sanitizer report:\n" + log[-8000:])
        os.unlink(self.logfile.name)
        return rc

    def log(self):
        with open(self.logfile.name, "r", errors="replace") as f:
            return f.read()

    def valgrind_report(self):
        """Under EMU_VALGRIND=1, once the process has exited: what Valgrind
        found ('' for nothing), and its log file is removed. Errors and
        definite leaks; descriptors open at exit that the emulator opened
        itself (not 0-2, not inherited from the test)."""
        if not self.vglog:
            return ""
        with open(self.vglog, "r", errors="replace") as f:
            text = f.read()
        os.unlink(self.vglog)
        self.vglog = None
        kept = []
        for block in re.split(r"\n(?:==\d+== ?\n)+", text):
            m = re.search(r"Open [\w ]*?(?:descriptor|socket) (\d+)", block)
            if m and (int(m.group(1)) <= 2 or "<inherited from parent>"
                      in block):
                continue
            if re.fullmatch(r"(==\d+== FILE DESCRIPTORS: .*\n?)?\s*",
                            block):
                continue
            kept.append(block)
        return "\n\n".join(kept).strip()

    def wait_log(self, pattern, timeout=5):
        """Wait until the log (flushed every 100 ms) matches `pattern`."""
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError("log never matched %r; log:\n%s"
                             % (pattern, self.log()[-4000:]))

    # -- the control API --
    def api(self, method, path, body=None, token=None, raw=False,
            timeout=30):
        """Call the control API; returns (status, parsed JSON or bytes)."""
        import json
        import urllib.error
        import urllib.request
        host, port = self.addr("api")
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else \
                json.dumps(body).encode()
        req = urllib.request.Request("http://%s:%d%s" % (host, port, path),
                                     data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, payload, ctype = r.status, r.read(), \
                    r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, payload, ctype = e.code, e.read(), \
                e.headers.get("Content-Type", "")
        if raw or not ctype.startswith("application/json") or not payload:
            return status, payload
        return status, json.loads(payload)

    # -- addresses --
    def port(self, kind="smtp", index=0):
        return [p for k, h, p in self.listeners if k == kind][index]

    def addr(self, kind="smtp", index=0):
        return ("127.0.0.1", self.port(kind, index))


def client_ctx(cert=None, key=None, verify=True):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(os.path.join(CERTS, cert),
                            os.path.join(CERTS, key or
                                         cert.replace(".pem", ".key")))
    return ctx


class Raw:
    """A raw SMTP client: send bytes, read whole replies."""

    def __init__(self, addr, timeout=10, tls_ctx=None):
        self.sock = socket.create_connection(addr, timeout=timeout)
        if tls_ctx:
            self.sock = tls_ctx.wrap_socket(self.sock,
                                            server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """One complete reply as a list of lines (multi-line joined)."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def reply1(self):
        r = self.reply()
        assert len(r) == 1, r
        return r[0]

    def starttls(self, ctx):
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def closed(self, timeout=5):
        """True when the server closes the connection (EOF or RST) within
        `timeout`; bytes that arrive first are kept in self.buf."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, ssl.SSLError, OSError):
                return True
            if not data:
                return True
            self.buf += data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def metric(emu, name):
    """A counter without labels from the emulator's /metrics, or None."""
    st, text = emu.api("GET", "/metrics", raw=True)
    if isinstance(text, bytes):
        text = text.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def listen_queues(port):
    """The queue depth of each TCP socket listening on port (from ss)."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port],
                         capture_output=True, text=True, check=True)
    return [int(line.split()[2]) for line in out.stdout.splitlines()]


def run(cmd, timeout=30, input=None):
    """Run a client program; returns CompletedProcess with text output."""
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, input=input)


class TestCase(unittest.TestCase):
    maxDiff = None

    def run(self, result=None):
        reason = VALGRIND_SKIP.get(self.id()) if VALGRIND else None
        if reason:
            name = self._testMethodName
            setattr(self, name, unittest.skip(reason)(getattr(self, name)))
        return super().run(result)
