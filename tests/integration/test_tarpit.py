"""tarpit: the usual replies, late -- a delay per stage (emu.delay) and a
delay before each line of a reply (emu.slowly) -- measured on the wire,
what a client with a shorter timeout sees, and that one slow session does
not hold up the others."""

import smtplib
import socket
import time
import unittest

from helpers import HOST, Emulator, Raw, TestCase, client_ctx

GREETING = "220 %s ESMTP smtp-emulator" % HOST
EHLO = ["250-" + HOST, "250-PIPELINING", "250-SIZE 10240000",
        "250-STARTTLS", "250-AUTH PLAIN LOGIN XOAUTH2",
        "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN",
        "250-SMTPUTF8", "250 CHUNKING"]
D = 0.15      # a stage delay
SLACK = 0.35  # scheduling slack allowed on top of a delay


def timed(fn, *args):
    t0 = time.monotonic()
    r = fn(*args)
    return r, time.monotonic() - t0


class Base(TestCase):
    args = []

    def setUp(self):
        self.emu = Emulator("--scenario", "tarpit", *self.args).start()

    def tearDown(self):
        self.assertTrue(self.emu.alive())
        self.emu.stop()

    def assertTook(self, secs, want):
        self.assertGreaterEqual(secs, want - 0.02)
        self.assertLess(secs, want + SLACK)


class StageDelays(Base):
    args = ["--set", "greeting=%g" % D, "--set", "ehlo=%g" % D,
            "--set", "mail=%g" % D, "--set", "rcpt=%g" % D,
            "--set", "data=%g" % D, "--set", "message=%g" % D,
            "--set", "quit=%g" % D, "--set", "other=%g" % D]

    def test_every_reply_is_late_and_unchanged(self):
        c, secs = timed(Raw, self.emu.addr())
        r, secs = timed(c.reply)
        self.assertEqual(r, [GREETING])
        self.assertTook(secs, D)
        for cmd, want in [
                ("EHLO client.example", EHLO),
                ("NOOP", ["250 2.0.0 Ok"]),
                ("MAIL FROM:<a@example.net>", ["250 2.1.0 Ok"]),
                ("RCPT TO:<b@example.org>", ["250 2.1.5 Ok"]),
                ("DATA", ["354 End data with <CR><LF>.<CR><LF>"])]:
            r, secs = timed(c.cmd, cmd)
            self.assertEqual(r, want)
            self.assertTook(secs, D)
        r, secs = timed(c.cmd, "Subject: slow\r\n\r\nbody\r\n.")
        self.assertRegex(r[0], r"^250 2\.0\.0 Ok: queued as \w{12}$")
        self.assertTook(secs, D)
        r, secs = timed(c.cmd, "RSET")
        self.assertEqual(r, ["250 2.0.0 Ok"])
        self.assertTook(secs, D)
        r, secs = timed(c.cmd, "QUIT")
        self.assertEqual(r, ["221 2.0.0 Bye"])
        self.assertTook(secs, D)
        self.assertTrue(c.closed())
        c.close()

    def test_starttls_reply_is_late_and_tls_works(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO client.example")
        r, secs = timed(c.cmd, "STARTTLS")
        self.assertEqual(r, ["220 2.0.0 Ready to start TLS"])
        self.assertTook(secs, D)
        c.starttls(client_ctx())
        r, secs = timed(c.cmd, "EHLO client.example")
        self.assertEqual(r, [x for x in EHLO if x != "250-STARTTLS"])
        self.assertTook(secs, D)
        c.close()

    def test_a_client_with_a_shorter_timeout_gives_up(self):
        # smtplib with a timeout below the greeting delay: the socket
        # times out while it waits for the 220.
        with self.assertRaises(smtplib.SMTPServerDisconnected) as cm:
            smtplib.SMTP(*self.emu.addr(), timeout=D / 3)
        self.assertIn("timed out", str(cm.exception))
        # One with a longer timeout gets through every stage.
        with smtplib.SMTP(*self.emu.addr(), timeout=D * 4) as s:
            self.assertEqual(s.sendmail("a@example.net", ["b@example.org"],
                                        b"Subject: t\r\n\r\nx\r\n"), {})


class LineDelay(Base):
    args = ["--set", "line_delay=0.1"]

    def test_each_line_of_the_ehlo_reply_is_late(self):
        c = Raw(self.emu.addr())
        # The greeting is one line: one line delay.
        r, secs = timed(c.reply)
        self.assertEqual(r, [GREETING])
        self.assertTook(secs, 0.1)
        c.send("EHLO client.example\r\n")
        t0 = time.monotonic()
        stamps, lines = [], []
        for _ in EHLO:
            lines.append(c.line())
            stamps.append(time.monotonic() - t0)
        self.assertEqual(lines, EHLO)
        # Line n arrives n line delays after the command.
        for n, t in enumerate(stamps, 1):
            self.assertGreaterEqual(t, 0.1 * n - 0.03, (n, stamps))
        self.assertLess(stamps[-1], 0.1 * len(EHLO) + SLACK * 2)
        # No burst: most gaps are a line delay (a loaded test machine may
        # deliver two lines to this client in one read now and then).
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
        self.assertGreater(gaps[len(gaps) // 2], 0.07, gaps)
        # The session goes on normally.
        r, secs = timed(c.cmd, "MAIL FROM:<a@example.net>")
        self.assertEqual(r, ["250 2.1.0 Ok"])
        self.assertTook(secs, 0.1)
        c.close()

    def test_a_client_reading_the_reply_with_a_short_timeout_fails(self):
        # smtplib reads the EHLO reply line by line, each with the socket
        # timeout: 0.3 s is more than one line delay but less than the
        # whole reply, and the reply still arrives (it only waits per read).
        with smtplib.SMTP(*self.emu.addr(), timeout=0.3) as s:
            t0 = time.monotonic()
            code, _ = s.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertGreater(time.monotonic() - t0, 0.9)
        # A client with one deadline for the whole reply gives up mid-way.
        c = Raw(self.emu.addr())
        c.reply()
        c.send("EHLO client.example\r\n")
        c.sock.settimeout(0.45)
        got = []
        deadline = time.monotonic() + 0.45
        with self.assertRaises(socket.timeout):
            while True:
                c.sock.settimeout(max(0.01, deadline - time.monotonic()))
                got.append(c.line())
        self.assertTrue(1 <= len(got) < len(EHLO), got)
        c.close()


class LineDelayAndStageDelay(Base):
    args = ["--set", "line_delay=0.05", "--set", "ehlo=0.3"]

    def test_they_add_up(self):
        c = Raw(self.emu.addr())
        c.reply()
        r, secs = timed(c.cmd, "EHLO client.example")
        self.assertEqual(r, EHLO)
        self.assertTook(secs, 0.3 + 0.05 * len(EHLO))
        c.close()


class OtherSessionsGoOn(Base):
    args = ["--set", "ehlo=1.0"]

    def test_a_slow_session_does_not_hold_up_others(self):
        slow = Raw(self.emu.addr())
        self.assertEqual(slow.reply1(), GREETING)
        slow.send("EHLO slow.example\r\n")
        t0 = time.monotonic()
        fast = Raw(self.emu.addr())
        self.assertEqual(fast.reply1(), GREETING)
        self.assertEqual(fast.cmd("NOOP"), ["250 2.0.0 Ok"])
        self.assertLess(time.monotonic() - t0, 0.5)
        fast.close()
        self.assertEqual(slow.reply(), EHLO)
        self.assertGreater(time.monotonic() - t0, 0.95)
        slow.close()


if __name__ == "__main__":
    unittest.main()
