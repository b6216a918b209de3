"""abrupt-eof: the connection ends (FIN, RST or silence) where a reply was
due, at every stage; what Python's smtplib raises at exactly that stage.

Every (at, mode) pair is one test method. The 33 client sessions run in a
thread pool in setUpClass (each against its own emulator, hang cases cost a
1 s client timeout each), and each test method checks what its session saw:
the steps before the cut got their normal replies, the cut step raised
exactly the expected exception, the log names the cut, nothing that was cut
off was captured, and a second session on the same emulator saw exactly
the same (the emulator went on serving).

The STARTTLS and handshake cases use TLS; the others stay in plaintext,
where a FIN and an RST reach smtplib differently (under TLS Python's ssl
module reports both as a plain EOF)."""

import concurrent.futures
import glob
import os
import re
import shutil
import smtplib
import ssl
import tempfile
import time
import unittest

from helpers import HOST, Emulator, Raw, TestCase, client_ctx

STAGES = ["connect", "ehlo", "starttls", "handshake", "auth", "mail", "rcpt",
          "data", "body", "message", "quit"]
MODES = ["close", "reset", "hang"]
CLIENT_TIMEOUT = 1.0
HANG_TIMEOUT = 3

# The message: larger than after_bytes (1024), so at=body cuts inside it.
MESSAGE = (b"From: a@example.com\r\nTo: b@example.org\r\nSubject: cut\r\n\r\n"
           + b"".join(b"line %04d of a message larger than after_bytes\r\n"
                      % i for i in range(60)))
assert len(MESSAGE) > 2 * 1024

GREETING = (220, ("%s ESMTP smtp-emulator" % HOST).encode())
EHLO_PLAIN = (250, ("%s\nPIPELINING\nSIZE 10240000\nSTARTTLS\n"
                    "AUTH PLAIN LOGIN XOAUTH2\nENHANCEDSTATUSCODES\n8BITMIME\n"
                    "DSN\nSMTPUTF8\nCHUNKING" % HOST).encode())
AUTH_OK = (235, b"2.7.0 Authentication successful")
MAIL_OK = (250, b"2.1.0 Ok")
RCPT_OK = (250, b"2.1.5 Ok")
DATA_GO = (354, b"End data with <CR><LF>.<CR><LF>")
QUEUED = re.compile(rb"^2\.0\.0 Ok: queued as \w{12}$")

# What smtplib raises when the reply is replaced by ...
PLAIN_ERRORS = {
    # ... an EOF (SMTP.getreply reads b"").
    "close": [(smtplib.SMTPServerDisconnected,
               r"Connection unexpectedly closed")],
    # ... an RST (getreply catches the OSError and wraps it).
    "reset": [(smtplib.SMTPServerDisconnected,
               r"Connection unexpectedly closed: "
               r"\[Errno 104\] Connection reset by peer")],
    # ... silence: the 1 s socket timeout is an OSError too.
    "hang": [(smtplib.SMTPServerDisconnected,
              r"Connection unexpectedly closed: timed out")],
}
# At at=connect the RST can also beat the client's own connect(): socket
# connect() with a timeout polls and then reads SO_ERROR, which is
# ECONNRESET when the server accepted and reset in between; smtplib does
# not wrap that.
CONNECT_RESET = PLAIN_ERRORS["reset"] + [
    (ConnectionResetError, r"\[Errno 104\] Connection reset by peer")]
# At the handshake, ssl raises directly (SMTP.starttls does not wrap it).
HANDSHAKE_ERRORS = {
    # The server reads the ClientHello and sends a FIN, no bytes (checked
    # on the wire); OpenSSL reports the EOF mid-handshake, now and then
    # (a client-side race) as a "zero return".
    "close": [(ssl.SSLEOFError,
               r"\[SSL: UNEXPECTED_EOF_WHILE_READING\] EOF occurred in "
               r"violation of protocol \(_ssl\.c:\d+\)"),
              (ssl.SSLZeroReturnError,
               r"TLS/SSL connection has been closed \(EOF\) "
               r"\(_ssl\.c:\d+\)")],
    "reset": [(ConnectionResetError,
               r"\[Errno 104\] Connection reset by peer")],
    # socket.timeout is TimeoutError.
    "hang": [(TimeoutError, r"_ssl\.c:\d+: The handshake operation timed "
              r"out")],
}
# event=disconnect reason=... in the emulator's log.
REASONS = {"close": "\"closed by scenario\"", "reset": "\"reset by scenario\"",
           "hang": "\"client left a hung session\""}
HANDSHAKE_REASONS = {"close": "closed",
                     "reset": "\"reset by scenario on input\"",
                     "hang": "\"client left a hung session\""}


class Client(smtplib.SMTP):
    """smtplib.SMTP whose connect() also records the host, so that
    starttls() checks the certificate against it (as SMTP(host, port)
    does), while connect()'s reply stays visible to the test."""

    def connect(self, host="localhost", port=0, source_address=None):
        self._host = host
        return super().connect(host, port, source_address)


def failing_step(at):
    """The client step whose reply the scenario cuts off."""
    return {"handshake": "starttls", "body": "message"}.get(at, at)


def session(emu, at):
    """One real client session that goes as far as stage `at` would let
    it. Returns ([(step, reply), ...], exception or None)."""
    steps = []
    s = Client(timeout=CLIENT_TIMEOUT)
    try:
        steps.append(("connect", s.connect(*emu.addr())))
        steps.append(("ehlo", s.ehlo("client.example")))
        if at in ("starttls", "handshake"):
            steps.append(("starttls", s.starttls(context=client_ctx())))
            steps.append(("ehlo", s.ehlo("client.example")))
            return steps, None
        steps.append(("auth", s.login("user@example.com", "secret")))
        steps.append(("mail", s.mail("a@example.com")))
        steps.append(("rcpt", s.rcpt("b@example.org")))
        if at in ("body", "message"):
            # SMTP.data() in its two halves, to see the 354 first.
            steps.append(("data", s.docmd("DATA")))
            s.send(MESSAGE + b".\r\n")
            steps.append(("message", s.getreply()))
        else:
            steps.append(("data", s.data(MESSAGE)))
        steps.append(("quit", s.quit()))
        return steps, None
    except Exception as e:  # what the client raised is the observation
        return steps, e
    finally:
        s.close()


def run_case(at, mode):
    """Start an emulator for (at, mode), run two sessions, collect what the
    test method checks."""
    spool = tempfile.mkdtemp(prefix="emu-spool-")
    emu = Emulator("--scenario", "abrupt-eof", "--set", "at=" + at,
                   "--set", "mode=" + mode,
                   "--set", "hang_timeout=%d" % HANG_TIMEOUT,
                   "--spool", spool)
    out = {"error": None}
    try:
        emu.start()
        t0 = time.time()
        out["first"] = session(emu, at)
        out["elapsed"] = time.time() - t0
        # The session is over on the server side before the next starts.
        emu.wait_log(r"event=disconnect session=1 ")
        out["files_after_first"] = glob.glob(os.path.join(spool, "new", "*"))
        out["second"] = session(emu, at)
        emu.wait_log(r"event=disconnect session=2 ")
        out["alive"] = emu.alive()
        out["files"] = glob.glob(os.path.join(spool, "new", "*"))
        out["log"] = emu.log()
        emu.stop()
    except BaseException as e:
        out["error"] = e
        if emu.proc is not None:
            try:
                out["log"] = emu.log()
                emu.stop(check=False)
            except Exception:
                pass
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    return out


class AbruptEOF(TestCase):
    results = {}

    @classmethod
    def setUpClass(cls):
        cases = [(at, mode) for at in STAGES for mode in MODES]
        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as ex:
            futs = {case: ex.submit(run_case, *case) for case in cases}
            cls.results = {case: f.result() for case, f in futs.items()}

    def check_steps(self, at, steps, exc, label):
        failing = failing_step(at)
        names = [n for n, _ in steps]
        for name, reply in steps:
            if name == "connect":
                self.assertEqual(reply, GREETING, label)
            elif name == "ehlo":
                self.assertEqual(reply, EHLO_PLAIN, label)
            elif name == "auth":
                self.assertEqual(reply, AUTH_OK, label)
            elif name == "mail":
                self.assertEqual(reply, MAIL_OK, label)
            elif name == "rcpt":
                self.assertEqual(reply, RCPT_OK, label)
            elif name == "data" and at in ("body", "message"):
                self.assertEqual(reply, DATA_GO, label)
            elif name == "data":  # at=quit: the whole message went in
                self.assertEqual(reply[0], 250, label)
                self.assertRegex(reply[1], QUEUED, label)
            else:
                self.fail("%s: step %s should not have succeeded: %r"
                          % (label, name, reply))
        # Exactly the steps before the failing one succeeded.
        if at in ("starttls", "handshake"):
            want = ["connect", "ehlo"]
        else:
            order = ["connect", "ehlo", "auth", "mail", "rcpt", "data",
                     "message", "quit"]
            if at not in ("body", "message"):
                order.remove("message")  # SMTP.data() does it all
            want = order[:order.index(failing)]
        self.assertEqual(names, want, label)
        self.assertIsNotNone(exc, "%s: the client saw no error" % label)

    def check_error(self, at, mode, exc, label):
        if at == "handshake":
            allowed = HANDSHAKE_ERRORS[mode]
        elif at == "connect" and mode == "reset":
            allowed = CONNECT_RESET
        else:
            allowed = PLAIN_ERRORS[mode]
        for cls, pattern in allowed:
            if type(exc) is cls and re.fullmatch(pattern, str(exc)):
                return
        self.fail("%s: the client raised %r, expected one of %r"
                  % (label, exc, allowed))

    def check_case(self, at, mode):
        r = self.results[(at, mode)]
        if r["error"] is not None:
            raise r["error"]
        log = r["log"]
        for label in ("first", "second"):
            steps, exc = r[label]
            label = "at=%s mode=%s, %s session" % (at, mode, label)
            self.check_steps(at, steps, exc, label)
            self.check_error(at, mode, exc, label)
        # The client waited for the timeout only when the server hung.
        if mode == "hang":
            self.assertGreaterEqual(r["elapsed"], CLIENT_TIMEOUT * 0.9)
        else:
            self.assertLess(r["elapsed"], CLIENT_TIMEOUT * 0.9)
        # The log names the cut at the right stage, for both sessions.
        reasons = HANDSHAKE_REASONS if at == "handshake" else REASONS
        for sid in (1, 2):
            self.assertRegex(
                log, r"event=disconnect session=%d client=127\.0\.0\.1 "
                r"reason=%s messages=%d\n"
                % (sid, re.escape(reasons[mode]), at == "quit"))
        if at == "body":
            self.assertEqual(len(re.findall(
                r"event=scenario-cut session=\d client=127\.0\.0\.1 "
                r"after_bytes=1024 then=%s\n" % mode, log)), 2, log)
        elif at == "handshake":
            self.assertEqual(log.count(
                'event=reply session=1 client=127.0.0.1 '
                'line="220 2.0.0 Ready to start TLS"'), 1, log)
            if mode == "hang":
                self.assertIn("event=scenario-hang session=1 client=127.0.0.1"
                              " stage=starttls\n", log)
            else:
                self.assertIn("event=scenario-abort-on-input session=1 "
                              "client=127.0.0.1 stage=starttls then=%s_on_"
                              "input\n" % mode, log)
                self.assertIn("event=scenario-abort session=1 "
                              "client=127.0.0.1\n", log)
        elif mode == "close":
            self.assertIn("event=scenario-close session=1 client=127.0.0.1 "
                          "stage=%s\n" % at, log)
        elif mode == "reset":
            self.assertIn("event=scenario-reset session=1 client=127.0.0.1"
                          "\n", log)
        else:
            self.assertIn("event=scenario-hang session=1 client=127.0.0.1"
                          "\n", log)
        if at != "body":
            self.assertNotIn("event=scenario-cut", log)
        # Only at=quit got as far as a stored message (one per session);
        # a message cut in its body or before its 250 is not kept.
        want = 1 if at == "quit" else 0
        self.assertEqual(len(r["files_after_first"]), want)
        self.assertEqual(len(r["files"]), 2 * want)
        self.assertTrue(r["alive"])


def _make(at, mode):
    def test(self):
        self.check_case(at, mode)
    test.__doc__ = "at=%s mode=%s" % (at, mode)
    return test


for _at in STAGES:
    for _mode in MODES:
        setattr(AbruptEOF, "test_%s_%s" % (_at, _mode), _make(_at, _mode))


def outwait(at):
    """A client that waits longer than hang_timeout (2 s): 6 s socket
    timeout. Returns (steps, exception, seconds the hung step took, log)."""
    with Emulator("--scenario", "abrupt-eof", "--set", "at=" + at,
                  "--set", "mode=hang", "--set", "hang_timeout=2") as emu:
        client = Client(timeout=6)
        steps, exc = [], None
        t0 = time.time()
        try:
            steps.append(("connect", client.connect(*emu.addr())))
            steps.append(("ehlo", client.ehlo("client.example")))
            t0 = time.time()
            if at == "handshake":
                client.starttls(context=client_ctx())
            elif at == "body":
                client.mail("a@example.com")
                client.rcpt("b@example.org")
                client.data(MESSAGE)
        except Exception as e:
            exc = e
        finally:
            client.close()
        elapsed = time.time() - t0
        emu.wait_log(r"event=disconnect session=1 ")
        return steps, exc, elapsed, emu.log()


class HangTimeout(TestCase):
    """mode=hang ends the session itself after hang_timeout seconds: a
    patient client then meets a close."""

    def test_server_ends_a_hung_session_after_hang_timeout(self):
        stages = ["connect", "ehlo", "handshake", "body"]
        with concurrent.futures.ThreadPoolExecutor(len(stages)) as ex:
            results = list(zip(stages, ex.map(outwait, stages)))
        for at, (steps, exc, elapsed, log) in results:
            with self.subTest(at=at):
                want = [("connect", GREETING), ("ehlo", EHLO_PLAIN)]
                n = {"connect": 0, "ehlo": 1}.get(at, 2)
                self.assertEqual(steps, want[:n])
                if at == "handshake":
                    self.assertIn(type(exc), (ssl.SSLEOFError,
                                              ssl.SSLZeroReturnError))
                else:
                    self.assertIs(type(exc), smtplib.SMTPServerDisconnected)
                    self.assertEqual(str(exc),
                                     "Connection unexpectedly closed")
                self.assertGreater(elapsed, 1.8)
                self.assertLess(elapsed, 4)
                self.assertRegex(log, r"event=hang-timeout session=1 "
                                 r"client=127\.0\.0\.1\n")
                self.assertRegex(log, r"event=disconnect session=1 client="
                                 r"127\.0\.0\.1 reason=\"hang timeout\"")


if __name__ == "__main__":
    unittest.main()
