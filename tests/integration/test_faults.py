"""Faults around the process itself (issue 9, reliability): SIGTERM in the
middle of a load run with a Maildir spool, dropping root privileges with
--user, and the control API's limits (body size, path traversal on the
static file server, where it listens).

Each test checks a property that a regression would break:

- SIGTERM: the exit status is 0; every message a client got a 250 for is
  in new/, byte for byte; nothing is left in tmp/; nothing is in new/ that
  no client finished sending (only a message whose 250 was lost in flight,
  after its final dot, may be there without a 250); sessions mid-DATA when
  the signal lands finish within --shutdown-grace, and those still going
  at the end of it are cut.
- --user: all four uids and gids are the user's, no supplementary group is
  kept, the port below 1024 still serves, the spool is written as the user;
  an unknown user or a spool the user cannot write stops the start with
  exit status 2 and one line naming it.
- the API: a body over the limit gets 413 and the server goes on; no path
  reaches a file outside web/; the API is off unless asked for, and binds
  only the address it is given."""

import glob
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from helpers import (BIN, CERTS, ROOT, SANITIZER_PATTERNS, SLOW, Emulator,
                     Raw, TestCase)

GRACE = 2.0
API_MAX_BODY = 64 * 1024  # emulator/api.c


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------ SIGTERM under load

class Msg:
    """One message a client tried to send, and how far it got."""

    def __init__(self, client, seq, sender, rcpt, body):
        self.client = client
        self.seq = seq
        self.sender = sender
        self.rcpt = rcpt
        self.body = body  # as stored: not dot-stuffed
        self.state = "unsent"  # dot-sent, acked, refused
        self.reply = None
        self.data_at = None  # DATA answered 354
        self.done_at = None  # final reply, or the error after the dot

    def spooled(self):
        """The exact bytes of the Maildir file (emulator/spool.c)."""
        return (b"Return-Path: <%s>\r\nX-Envelope-To: <%s>\r\n"
                % (self.sender.encode(), self.rcpt.encode()) + self.body)

    def wire(self):
        """The body as sent: dot-stuffed, then the final dot."""
        lines = self.body.split(b"\r\n")
        assert lines[-1] == b""
        out = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                       for ln in lines[:-1])
        return out + b".\r\n"


class LoadClient(threading.Thread):
    """Sends message after message, a few per session, until the server
    refuses connections. `chunks` and `pause` shape the DATA phase: many
    chunks with pauses keep the client mid-DATA most of the time."""

    def __init__(self, addr, name, pipelining=False, chunks=1, pause=0.0,
                 per_session=(1, 6), size=(100, 6000)):
        super().__init__(daemon=True)
        self.addr = addr
        self.name = name
        self.pipelining = pipelining
        self.chunks = chunks
        self.pause = pause
        self.per_session = per_session
        self.size = size
        self.msgs = []
        self.errors = []  # (time, repr) of connection-level errors
        self.in_data = None  # the message being sent after 354, if any
        self.rng = random.Random(name)
        self.stop = threading.Event()

    def new_msg(self):
        seq = len(self.msgs)
        n = self.rng.randint(*self.size)
        filler = [b"%s line %d " % (self.name.encode(), i) + b"x" * 60
                  for i in range(n // 70 + 1)]
        # A line with a leading dot proves the spool holds it unstuffed.
        body = (b"Subject: %s #%d\r\nMessage-ID: <%s.%d@faults.test>\r\n\r\n"
                % (self.name.encode(), seq, self.name.encode(), seq) +
                b".dotted line\r\n" + b"\r\n".join(filler) + b"\r\n")
        m = Msg(self.name, seq, "%s@client.test" % self.name,
                "rcpt%d@example.org" % seq, body)
        self.msgs.append(m)
        return m

    @staticmethod
    def expect(reply, code):
        if not reply[-1].startswith(code):
            raise ProtocolError(reply)

    def send_one(self, c):
        m = self.new_msg()
        env = ["MAIL FROM:<%s>" % m.sender, "RCPT TO:<%s>" % m.rcpt, "DATA"]
        if self.pipelining:
            c.send("".join(x + "\r\n" for x in env))
            for code in ("250", "250", "354"):
                self.expect(c.reply(), code)
        else:
            for line, code in zip(env, ("250", "250", "354")):
                self.expect(c.cmd(line), code)
        m.data_at = time.time()
        self.in_data = m
        data = m.wire()
        body, dot = data[:-3], data[-3:]
        step = max(1, len(body) // self.chunks + 1)
        for i in range(0, len(body), step):
            c.send(body[i:i + step])
            if self.pause:
                time.sleep(self.pause)
        c.send(dot)
        m.state = "dot-sent"
        self.in_data = None
        try:
            r = c.reply()
        finally:
            m.done_at = time.time()
        m.reply = r[-1]
        m.state = "acked" if r[-1].startswith("250 ") else "refused"
        if m.state != "acked":
            raise ProtocolError(r)

    def run(self):
        while not self.stop.is_set():
            try:
                c = Raw(self.addr, timeout=10 * SLOW)
            except OSError as e:
                # Refused: the listener is gone, the server is stopping.
                self.errors.append((time.time(), "connect: %r" % e))
                return
            try:
                self.expect(c.reply(), "220")
                self.expect(c.cmd("EHLO %s.client.test" % self.name), "250")
                for _ in range(self.rng.randint(*self.per_session)):
                    self.send_one(c)
                c.cmd("QUIT")
            except (OSError, EOFError, ProtocolError) as e:
                self.in_data = None
                self.errors.append((time.time(), repr(e)))
            finally:
                c.close()


class ProtocolError(Exception):
    pass


class SigtermUnderLoad(TestCase):
    def setUp(self):
        self.spool = tempfile.mkdtemp(prefix="emu-faults-spool-")
        self.emu = Emulator("--spool", self.spool, "--shutdown-grace",
                            str(GRACE), "--max-messages", "500").start()

    def tearDown(self):
        if self.emu.proc is not None:
            self.emu.stop(check=False)
        shutil.rmtree(self.spool, ignore_errors=True)

    def test_sigterm_mid_run_keeps_every_acknowledged_message_whole(self):
        addr = self.emu.addr()
        fast = [LoadClient(addr, "fast%d" % i, pipelining=i % 2 == 1)
                for i in range(6)]
        # Mid-DATA for about a second per message: the signal lands while
        # one is in its DATA, which must then finish within the grace.
        medium = [LoadClient(addr, "medium%d" % i, chunks=10, pause=0.08,
                             per_session=(1, 3), size=(2000, 4000))
                  for i in range(2)]
        # A chunk every 0.25 s for longer than the grace: cut at its end.
        slow = [LoadClient(addr, "slow%d" % i, chunks=200, pause=0.25,
                           per_session=(1, 1), size=(20000, 20000))
                for i in range(2)]
        clients = fast + medium + slow
        for c in clients:
            c.start()

        # Enough load, and medium0 has just begun a message's DATA.
        deadline = time.time() + 30 * SLOW
        while True:
            self.assertLess(time.time(), deadline, "the load never built up")
            acked = sum(m.state == "acked" for c in fast for m in c.msgs)
            m = medium[0].in_data
            if (acked >= 150 and all(s.in_data for s in slow) and m and
                    time.time() - m.data_at < 0.2):
                break
            time.sleep(0.005)
        pid = self.emu.proc.pid
        t_sig = time.time()
        mid_data = [c.in_data for c in clients if c.in_data]
        os.kill(pid, signal.SIGTERM)
        try:
            rc = self.emu.proc.wait(timeout=(GRACE + 10) * SLOW)
        except subprocess.TimeoutExpired:
            self.fail("still running %.0f s after SIGTERM" % (GRACE + 10))
        t_exit = time.time()
        for c in clients:
            c.stop.set()
        for c in clients:
            c.join(timeout=15 * SLOW)
            self.assertFalse(c.is_alive(), "%s hangs" % c.name)

        log = self.emu.log()
        self.assertEqual(rc, 0, "exit status after SIGTERM; log:\n" +
                         log[-4000:])
        for pat in SANITIZER_PATTERNS:
            self.assertNotIn(pat, log)
        self.assertIn("signal 15 received", log)
        # Under EMU_VALGRIND=1: errors, leaks, descriptors left open.
        self.assertEqual(self.emu.valgrind_report(), "")
        # The grace is given, and no more than it (plus start-up slack).
        self.assertLess(t_exit - t_sig, (GRACE + 2) * SLOW)

        msgs = [m for c in clients for m in c.msgs]
        self.assertEqual(glob.glob(os.path.join(self.spool, "tmp", "*")), [],
                         "half-written files left in tmp/")
        files = {}
        for path in glob.glob(os.path.join(self.spool, "new", "*")):
            files[path] = read_file(path)
        by_bytes = {}
        for m in msgs:
            by_bytes[m.spooled()] = m
        seen = set()
        for path, data in files.items():
            m = by_bytes.get(data)
            self.assertIsNotNone(
                m, "%s is not a complete message any client sent: %r..."
                % (path, data[:200]))
            self.assertNotIn(id(m), seen, "stored twice: %s" % path)
            seen.add(id(m))
            # Only a message whose final dot was sent, and whose reply was
            # 250 or lost with the connection, may be there.
            self.assertIn(m.state, ("acked", "dot-sent"),
                          "%s #%d is stored but its client saw %s (%s)"
                          % (m.client, m.seq, m.state, m.reply))
        for m in msgs:
            if m.state == "acked":
                self.assertIn(id(m), seen, "%s #%d got %r but is not in new/"
                              % (m.client, m.seq, m.reply))

        acked = [m for m in msgs if m.state == "acked"]
        self.assertGreaterEqual(len(acked), 150)
        # Sessions in flight finish within the grace: medium0's message,
        # mid-DATA at the signal, got its 250 after it.
        finished = [m for m in mid_data if m.state == "acked" and
                    m.done_at > t_sig]
        self.assertTrue(any(m.client == "medium0" for m in finished),
                        [(m.client, m.seq, m.state) for m in mid_data])
        # The slow ones were still in their DATA when the grace ran out:
        # cut, nothing stored, and not before the grace was over.
        for c in slow:
            self.assertEqual(c.msgs[-1].state, "unsent", c.name)
            cut = [t for t, _ in c.errors if t > t_sig]
            self.assertTrue(cut, "%s was never disconnected" % c.name)
            self.assertGreater(cut[0] - t_sig, GRACE - 0.5,
                               "%s cut before the grace was over" % c.name)
        self.emu.stop(check=False)


# ------------------------------------------------------ privilege drop

def free_low_port():
    """A port below 1024 that nothing listens on (for an instant)."""
    for port in (25, 587, 465, 24, 26, 1023, 1022, 999):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    return None


def proc_ids(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out


@unittest.skipUnless(os.geteuid() == 0,
                     "--user needs root: the test must start the emulator "
                     "as root to see it drop to nobody")
class PrivilegeDrop(TestCase):
    def setUp(self):
        self.nobody = pwd.getpwnam("nobody")
        self.dirs = []

    def tearDown(self):
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    def spool_dir(self, owner=None):
        d = tempfile.mkdtemp(prefix="emu-faults-user-")
        os.chmod(d, 0o755)
        self.dirs.append(d)
        spool = os.path.join(d, "spool")
        os.mkdir(spool, 0o700)
        if owner:
            os.chown(spool, owner.pw_uid, owner.pw_gid)
        return spool

    def start_as_nobody(self, *args):
        """Start on a free port below 1024 with --user nobody, with root's
        group 0 and two others as supplementary groups, which the drop must
        shed. Tries the next port when one turns out to be taken."""
        for _ in range(5):
            port = free_low_port()
            if port is None:
                self.skipTest("no free port below 1024")
            emu = Emulator("--listen", "127.0.0.1:%d" % port, "--user",
                           "nobody", *args,
                           popen={"extra_groups": [0, 4, 100]})
            try:
                return emu.start()
            except AssertionError as e:
                emu.stop(check=False)
                if "cannot listen" not in str(e):
                    raise
        self.fail("no port below 1024 could be bound")

    def test_runs_as_nobody_on_a_low_port_and_spools(self):
        spool = self.spool_dir(owner=self.nobody)
        emu = self.start_as_nobody("--spool", spool)
        try:
            ids = proc_ids(emu.proc.pid)
            uid, gid = self.nobody.pw_uid, self.nobody.pw_gid
            self.assertEqual(ids["Uid"], [uid] * 4)  # real, eff, saved, fs
            self.assertEqual(ids["Gid"], [gid] * 4)
            # setgroups: none of root's supplementary groups survive.
            self.assertEqual([g for g in ids["Groups"] if g != gid], [],
                             ids["Groups"])
            port = emu.port()
            self.assertLess(port, 1024)
            with smtplib.SMTP("127.0.0.1", port, timeout=10 * SLOW) as s:
                s.ehlo("client.test")
                code, msg = s.docmd("MAIL FROM:<a@client.test>")
                self.assertEqual(code, 250)
                s.rcpt("b@example.org")
                code, msg = s.data(b"Subject: dropped\r\n\r\nas nobody\r\n")
                self.assertEqual(code, 250, msg)
            (f,) = glob.glob(os.path.join(spool, "new", "*"))
            st = os.stat(f)
            self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
            self.assertEqual(read_file(f),
                             b"Return-Path: <a@client.test>\r\n"
                             b"X-Envelope-To: <b@example.org>\r\n"
                             b"Subject: dropped\r\n\r\nas nobody\r\n")
            # The dropped process can no longer act as root: SIGHUP
            # re-reads scenarios (still allowed), and it stays nobody.
            self.assertEqual(proc_ids(emu.proc.pid)["Uid"], [uid] * 4)
        finally:
            emu.stop()

    def test_unknown_user_exits_2_naming_it(self):
        p = subprocess.run([BIN, "--listen", "127.0.0.1:0", "--user",
                            "no-such-user-x9"], capture_output=True,
                           text=True, timeout=30 * SLOW)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertRegex(p.stderr.strip(),
                         r"^smtp-emulator: .*'no-such-user-x9'[^\n]*$")

    def test_tls_variants_still_load_after_the_drop(self):
        """Finding U1 (fixed): the certificates of tls-faults (and emu.tls{}
        in general) were loaded on first use, from files only root can read
        (certs/gen.sh makes the keys 0600), after --user had dropped root,
        and the handshake silently used the default certificate. With
        --user every variant is now made before the drop."""
        key = os.path.join(CERTS, "server-expired.key")
        if os.stat(key).st_mode & 0o077:
            self.skipTest("%s is readable by others: the bug needs a "
                          "root-only key, as certs/gen.sh makes them" % key)
        emu = self.start_as_nobody("--scenario", "tls-faults", "--set",
                                   "fault=expired")
        try:
            c = Raw(emu.addr())
            c.reply()
            c.cmd("EHLO client.test")
            self.assertEqual(c.cmd("STARTTLS")[0][:3], "220")
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c.starttls(ctx)
            got = c.sock.getpeercert(binary_form=True)
            c.close()
            with open(os.path.join(CERTS, "server-expired.pem")) as f:
                want = ssl.PEM_cert_to_DER_cert(f.read())
            self.assertEqual(got, want, "the handshake did not use the "
                             "expired certificate; log:\n" + emu.log()[-1500:])
        finally:
            emu.stop()

    def test_spool_the_user_cannot_write_exits_2(self):
        # Owned by root, mode 0700: root could write it, nobody cannot;
        # the emulator must find out as nobody, not pass the check as
        # root and then answer 451 to every message.
        spool = self.spool_dir(owner=None)
        port = free_low_port() or 0
        p = subprocess.run([BIN, "--listen", "127.0.0.1:%d" % port,
                            "--user", "nobody", "--spool", spool],
                           capture_output=True, text=True,
                           timeout=30 * SLOW)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(spool, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


# ------------------------------------------------------ the control API

def http_raw(addr, request, timeout=10):
    """Send raw bytes, return (status, headers text, body bytes)."""
    s = socket.create_connection(addr, timeout=timeout * SLOW)
    try:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(m.group(1)) if m else None), head.decode("latin-1"), body


def get(addr, target):
    return http_raw(addr, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n")


def listening_sockets(pid):
    """(ip hex, port) of every TCP socket the process listens on."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", t)
        if m:
            inodes.add(m.group(1))
    out = []
    for table in ("tcp", "tcp6"):
        with open("/proc/%d/net/%s" % (pid, table)) as f:
            next(f)
            for line in f:
                parts = line.split()
                local, state, inode = parts[1], parts[3], parts[9]
                if state == "0A" and inode in inodes:  # LISTEN
                    ip, port = local.split(":")
                    out.append((ip, int(port, 16)))
    return sorted(out)


class ApiLimits(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--api", "127.0.0.1:0").start()
        cls.api = cls.emu.addr("api")

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def assert_serving(self):
        self.assertTrue(self.emu.alive())
        self.assertEqual(self.emu.api("GET", "/healthz")[0], 200)

    def put(self, body, extra=b""):
        return http_raw(self.api, b"PUT /api/v1/scenario HTTP/1.1\r\n"
                        b"Host: x\r\nConnection: close\r\n" + extra +
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def test_body_over_the_limit_gets_413_and_the_server_goes_on(self):
        # At the limit the body is read and judged (bad JSON: 400).
        st, _, body = self.put(b"{" + b" " * (API_MAX_BODY - 1))
        self.assertEqual(st, 400, body)
        # One byte more: 413, with or without the bytes being sent.
        st, _, _ = self.put(b"{" + b" " * API_MAX_BODY)
        self.assertEqual(st, 413)
        self.assert_serving()
        st, _, _ = http_raw(self.api, b"PUT /api/v1/scenario HTTP/1.1\r\n"
                            b"Host: x\r\nContent-Length: 1000000000\r\n\r\n{")
        self.assertEqual(st, 413)
        self.assert_serving()
        # Chunked: the size is only known while reading.
        chunk = b" " * 8192
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                          for _ in range(API_MAX_BODY // len(chunk) + 2))
        st, _, _ = http_raw(self.api, b"PUT /api/v1/scenario HTTP/1.1\r\n"
                            b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + chunks + b"0\r\n\r\n")
        self.assertEqual(st, 413)
        self.assert_serving()
        # Headers over their own cap are refused too.
        st, _, _ = get(self.api, b"/healthz HTTP/1.1\r\nX-Pad: " +
                       b"a" * 20000 + b"\r\nX-End: 1")
        self.assertIn(st, (400, 413, 431, None))
        self.assert_serving()
        # And a normal change still works afterwards.
        st, out = self.emu.api("PUT", "/api/v1/scenario",
                               {"name": "accept", "params": {}})
        self.assertEqual(st, 200, out)

    def test_no_path_leaves_web(self):
        # The page itself is served, so the requests below do reach the
        # static file server.
        st, _, index = get(self.api, b"/")
        self.assertEqual(st, 200)
        self.assertIn(b"<html", index)
        self.assertEqual(get(self.api, b"/index.html")[2], index)
        outside = {
            "Makefile": read_file(os.path.join(ROOT, "Makefile"))[:40],
            "README.md": read_file(os.path.join(ROOT, "README.md"))[:40],
            "passwd": read_file("/etc/passwd")[:20],
            "scenario": read_file(os.path.join(ROOT, "scenarios",
                                               "accept.lua"))[:40],
        }
        targets = [
            b"/../Makefile", b"/%2e%2e/Makefile", b"/%2E%2E/Makefile",
            b"/..%2fMakefile", b"/%2e%2e%2fMakefile", b"/.%2e/Makefile",
            b"/%252e%252e/Makefile", b"/....//Makefile", b"/..\\Makefile",
            b"/web/../Makefile", b"/web/../../etc/passwd",
            b"/web/..%2f..%2fetc%2fpasswd", b"//etc/passwd",
            b"///etc/passwd", b"/%2fetc%2fpasswd", b"/etc/passwd",
            b"/../../../../../../etc/passwd", b"/README.md", b"/Makefile",
            b"/../README.md", b"/../scenarios/accept.lua",
            b"/%2e%2e/scenarios/accept.lua", b"/.git/config",
            b"/index.html/../../Makefile", b"/%00", b"/index.html%00",
            b"/index.html%00.js", b"/%00/../Makefile",
            b"/app.js%00/../../Makefile", b"http://x/../Makefile",
            b"/api/../Makefile", b"/api/v1/../../Makefile",
        ]
        for t in targets:
            st, head, body = get(self.api, t)
            self.assertIn(st, (400, 404), (t, st, body[:200]))
            for name, needle in outside.items():
                self.assertNotIn(needle, body, (t, name))
        # A NUL byte in the request line itself.
        st, _, body = get(self.api, b"/index.html\x00.js")
        self.assertIn(st, (400, 404, None), body[:200])
        self.assertNotIn(b"<html", body)
        self.assert_serving()

    def test_api_binds_only_the_address_given(self):
        pid = self.emu.proc.pid
        socks = listening_sockets(pid)
        api_port = self.emu.port("api")
        self.assertIn(("0100007F", api_port), socks)  # 127.0.0.1
        self.assertEqual([s for s in socks if s[1] == api_port],
                         [("0100007F", api_port)])


class ApiDefaults(TestCase):
    def test_api_is_off_unless_asked_for(self):
        self.assertRegex(subprocess.run([BIN, "--help"], capture_output=True,
                                        text=True).stdout,
                         r"--api HOST:PORT +serve the HTTP API \(default off\)")
        with Emulator() as emu:
            socks = listening_sockets(emu.proc.pid)
            self.assertEqual(socks, [("0100007F", emu.port())])

    def test_api_needs_an_address(self):
        # A bare port is refused rather than guessed at.
        p = subprocess.run([BIN, "--api", "8025"], capture_output=True,
                           text=True, timeout=30 * SLOW)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--api", p.stderr)


if __name__ == "__main__":
    unittest.main()
