"""chance: "fail the first N attempts, then accept" per triplet or per
client, and random replies, drops and delays at a stage drawn from the
seeded random source -- two runs with the same --seed make the same
choices, another seed makes others."""

import smtplib
import time
import unittest

from helpers import HOST, Emulator, Raw, TestCase

GREETING = "220 %s ESMTP smtp-emulator" % HOST
DEFER = "451 Temporary local problem - please try later"
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"


class Base(TestCase):
    args = []

    def setUp(self):
        self.emu = Emulator("--scenario", "chance", "--max-errors", "1000",
                            *self.args).start()

    def tearDown(self):
        self.assertTrue(self.emu.alive())
        self.emu.stop()

    def connect(self, addr=None):
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), GREETING)
        if addr:
            self.assertEqual(c.cmd("XCLIENT ADDR=" + addr), [GREETING])
        self.assertEqual(c.cmd("EHLO client.example")[-1], "250 CHUNKING")
        return c

    def rcpt(self, sender="a@example.net", rcpt="b@example.org", addr=None):
        c = self.connect(addr)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender), [MAIL_OK])
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()
        return r


class FailFirstPerTriplet(Base):
    args = ["--set", "fail_first=2"]

    def test_first_two_attempts_of_each_triplet_fail(self):
        self.assertEqual(self.rcpt(), [DEFER])
        self.assertEqual(self.rcpt(), [DEFER])
        self.assertEqual(self.rcpt(), [RCPT_OK])
        self.assertEqual(self.rcpt(), [RCPT_OK])
        # Other triplets count on their own ...
        self.assertEqual(self.rcpt(rcpt="c@example.org"), [DEFER])
        self.assertEqual(self.rcpt(sender="x@example.net"), [DEFER])
        # ... the client's /24 is one network (case does not matter) ...
        self.assertEqual(self.rcpt(sender="A@Example.NET",
                                   rcpt="C@example.org",
                                   addr="192.0.2.1"), [DEFER])
        self.assertEqual(self.rcpt(sender="a@example.net",
                                   rcpt="c@example.org",
                                   addr="192.0.2.200"), [DEFER])
        self.assertEqual(self.rcpt(rcpt="c@example.org", addr="192.0.2.9"),
                         [RCPT_OK])
        self.emu.wait_log(r"chance: attempt 2 of 2 fails \(triplet/")

    def test_real_client_retries(self):
        msg = b"Subject: retry\r\n\r\nx\r\n"
        for _ in range(2):
            with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
                with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                    s.sendmail("a@example.net", ["b@example.org"], msg)
            self.assertEqual(cm.exception.recipients, {"b@example.org": (
                451, b"Temporary local problem - please try later")})
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            self.assertEqual(s.sendmail("a@example.net", ["b@example.org"],
                                        msg), {})


class FailFirstPerClient(Base):
    args = ["--set", "fail_first=1", "--set", "per=client",
            "--set", "stage=mail", "--set", "memory=1",
            "--set", "reply=421 4.3.0 Error: try again"]

    def test_per_client_at_mail_with_own_reply(self):
        c = self.connect()
        # The user's 421: the connection closes after it.
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"),
                         ["421 4.3.0 Error: try again"])
        self.assertTrue(c.closed())
        c.close()
        c = self.connect()
        self.assertEqual(c.cmd("MAIL FROM:<other@example.net>"), [MAIL_OK])
        c.close()
        # Another client address counts on its own.
        c = self.connect(addr="198.51.100.4")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"),
                         ["421 4.3.0 Error: try again"])
        c.close()
        # After `memory` seconds the count starts over.
        time.sleep(1.2)
        c = self.connect()
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"),
                         ["421 4.3.0 Error: try again"])
        c.close()


class FailFirstAtMessage(Base):
    args = ["--set", "fail_first=1", "--set", "stage=message",
            "--set", "reply=451 4.3.0 Error: queue file write error"]

    def test_the_message_is_the_attempt(self):
        msg = b"Subject: m\r\n\r\nx\r\n"
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("a@example.net", ["b@example.org", "c@example.org"],
                           msg)
            self.assertEqual(cm.exception.args,
                             (451, b"4.3.0 Error: queue file write error"))
            # The same sender and recipients (in any order) pass now.
            self.assertEqual(s.sendmail("a@example.net",
                                        ["c@example.org", "b@example.org"],
                                        msg), {})
            # Another recipient set is another key.
            with self.assertRaises(smtplib.SMTPDataError):
                s.sendmail("a@example.net", ["b@example.org"], msg)


class Always(Base):
    """Probability 1: the outcome is certain."""

    def run_with(self, *args):
        self.emu.stop()
        self.emu = Emulator("--scenario", "chance", *args).start()

    def test_p_reply_1(self):
        self.run_with("--set", "p_reply=1")
        self.assertEqual(self.rcpt(), [DEFER])

    def test_p_drop_1(self):
        self.run_with("--set", "p_drop=1", "--set", "stage=data")
        c = self.connect()
        c.cmd("MAIL FROM:<a@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<b@example.org>"), [RCPT_OK])
        c.send("DATA\r\n")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"")
        c.close()
        self.emu.wait_log(r"chance: drop at data")

    def test_p_delay_1(self):
        self.run_with("--set", "p_delay=1", "--set", "delay=0.3",
                      "--set", "stage=ehlo")
        c = Raw(self.emu.addr())
        c.reply()
        t0 = time.monotonic()
        self.assertEqual(c.cmd("EHLO client.example")[-1], "250 CHUNKING")
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        c.close()

    def test_delay_and_reply_together(self):
        self.run_with("--set", "p_reply=1", "--set", "p_delay=1",
                      "--set", "delay=0.3", "--set", "stage=connect",
                      "--set", "reply=421 4.3.2 All server ports are busy")
        t0 = time.monotonic()
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply(), ["421 4.3.2 All server ports are busy"])
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        self.assertTrue(c.closed())
        c.close()

    def test_p_zero_changes_nothing(self):
        self.assertEqual(self.rcpt(), [RCPT_OK])


def outcomes(seed, n=40):
    """What n sessions see at RCPT with 30% replies, 30% drops and 30%
    delays, against a new emulator started with --seed."""
    out = []
    with Emulator("--scenario", "chance", "--seed", str(seed),
                  "--set", "p_reply=0.3", "--set", "p_drop=0.3",
                  "--set", "p_delay=0.3", "--set", "delay=0.01") as emu:
        for i in range(n):
            c = Raw(emu.addr())
            c.reply()
            c.cmd("EHLO client.example")
            c.cmd("MAIL FROM:<a@example.net>")
            c.send("RCPT TO:<b%d@example.org>\r\n" % i)
            try:
                out.append(c.reply1())
            except EOFError:
                out.append("drop")
            c.close()
        log = emu.log()
    delays = log.count("chance: delay")
    return out, delays


class Seed(TestCase):
    def test_same_seed_same_outcomes(self):
        a, da = outcomes(1234)
        b, db = outcomes(1234)
        self.assertEqual(a, b)
        self.assertEqual(da, db)
        # All three fates happen, in plausible shares.
        for fate in ("drop", DEFER, RCPT_OK):
            self.assertGreater(a.count(fate), 3, (fate, a))
        self.assertGreater(da, 3)
        # Another seed, other choices.
        c, _ = outcomes(4321)
        self.assertNotEqual(a, c)


if __name__ == "__main__":
    unittest.main()
