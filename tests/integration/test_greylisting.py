"""greylisting: postgrey's deferral at RCPT (replies.md 4.1) and
milter-greylist's (4.4); the retry after the delay passes and the triplet
(client /24, sender, recipient) stays whitelisted (4.2)."""

import glob
import os
import shutil
import smtplib
import tempfile
import time
import unittest

from helpers import HOST, Emulator, Raw, TestCase

DELAY = 2
WAIT = 2.2  # a little over DELAY


def postgrey(rcpt):
    domain = rcpt.split("@")[1]
    return ("450 4.2.0 <%s>: Recipient address rejected: Greylisted, see "
            "http://postgrey.schweikert.ch/help/%s.html" % (rcpt, domain))


MILTER = "451 4.7.1 Greylisting in action, please come back later"
PASS = "250 2.1.5 Ok"


class Base(TestCase):
    args = []

    def setUp(self):
        self.spool = tempfile.mkdtemp(prefix="emu-spool-")
        self.emu = Emulator("--scenario", "greylisting",
                            "--set", "delay=%d" % DELAY,
                            "--spool", self.spool, *self.args).start()

    def tearDown(self):
        self.emu.stop()
        shutil.rmtree(self.spool)

    def files(self):
        return sorted(glob.glob(os.path.join(self.spool, "new", "*")))

    def connect(self, addr=None):
        """A new connection, as client `addr` (XCLIENT) when given, after
        EHLO."""
        c = Raw(self.emu.addr())
        greeting = "220 %s ESMTP smtp-emulator" % HOST
        self.assertEqual(c.reply1(), greeting)
        if addr:
            # XCLIENT starts the session over with a new greeting.
            self.assertEqual(c.cmd("XCLIENT ADDR=" + addr), [greeting])
        self.assertEqual(c.cmd("EHLO client.example")[-1], "250 CHUNKING")
        return c

    def attempt(self, sender="sender@example.net", rcpt="rcpt@example.com",
                addr=None):
        """One delivery attempt on a new connection: the RCPT reply."""
        c = self.connect(addr)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender), ["250 2.1.0 Ok"])
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        self.assertEqual(len(r), 1, r)
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()
        return r[0]


class Postgrey(Base):
    def test_first_attempt_retry_and_pass_after_the_delay(self):
        first = time.time()
        c = self.connect()
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>"),
                         ["250 2.1.0 Ok"])
        self.assertEqual(c.cmd("RCPT TO:<rcpt@example.com>"),
                         [postgrey("rcpt@example.com")])
        # The exact line of replies.md 4.1.
        self.assertEqual(
            postgrey("rcpt@example.com"),
            "450 4.2.0 <rcpt@example.com>: Recipient address rejected: "
            "Greylisted, see http://postgrey.schweikert.ch/help/"
            "example.com.html")
        # The session goes on: a retry at once is deferred again ...
        self.assertEqual(c.cmd("RCPT TO:<rcpt@example.com>"),
                         [postgrey("rcpt@example.com")])
        self.assertEqual(c.cmd("DATA"),
                         ["554 5.5.1 Error: no valid recipients"])
        c.close()
        # ... and so is one on a new connection within the delay.
        self.assertEqual(self.attempt(), postgrey("rcpt@example.com"))
        # A real client sees the 450 as a refused recipient.
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("sender@example.net", ["rcpt@example.com"],
                           b"Subject: early\r\n\r\nearly\r\n")
        self.assertEqual(cm.exception.recipients, {"rcpt@example.com": (
            450, postgrey("rcpt@example.com")[4:].encode())})
        self.assertLess(time.time() - first, DELAY)
        self.assertEqual(self.files(), [])

        time.sleep(max(0, first + WAIT - time.time()))
        msg = b"Subject: retry\r\n\r\nthe retry after the delay\r\n"
        c = self.connect()
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.net>"),
                         ["250 2.1.0 Ok"])
        self.assertEqual(c.cmd("RCPT TO:<rcpt@example.com>"), [PASS])
        self.assertEqual(c.cmd("DATA"),
                         ["354 End data with <CR><LF>.<CR><LF>"])
        c.send(msg + b".\r\n")
        self.assertRegex(c.reply1(), r"^250 2\.0\.0 Ok: queued as \w{12}$")
        c.close()
        (f,) = self.files()
        with open(f, "rb") as fh:
            self.assertEqual(fh.read(),
                             b"Return-Path: <sender@example.net>\r\n"
                             b"X-Envelope-To: <rcpt@example.com>\r\n" + msg)
        self.emu.wait_log(r"greylisting: pass after [23] s")

        # The triplet stays whitelisted, on new connections, with smtplib.
        self.assertEqual(self.attempt(), PASS)
        self.assertEqual(self.attempt(), PASS)
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            self.assertEqual(s.sendmail("sender@example.net",
                                        ["rcpt@example.com"],
                                        b"Subject: later\r\n\r\nx\r\n"), {})
        self.assertEqual(len(self.files()), 2)

        # A different sender or recipient is a new triplet.
        self.assertEqual(self.attempt(sender="other@example.net"),
                         postgrey("rcpt@example.com"))
        self.assertEqual(self.attempt(rcpt="carol@example.org"),
                         postgrey("carol@example.org"))
        # Still greylisted on a retry within the delay.
        self.assertEqual(self.attempt(sender="other@example.net"),
                         postgrey("rcpt@example.com"))

    def test_each_recipient_is_its_own_triplet(self):
        c = self.connect()
        c.cmd("MAIL FROM:<sender@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<a@example.com>"),
                         [postgrey("a@example.com")])
        self.assertEqual(c.cmd("RCPT TO:<b@sub.example.com>"),
                         [postgrey("b@sub.example.com")])
        c.close()
        time.sleep(WAIT)
        c = self.connect()
        c.cmd("MAIL FROM:<sender@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<a@example.com>"), [PASS])
        self.assertEqual(c.cmd("RCPT TO:<b@sub.example.com>"), [PASS])
        # Seen for the first time now.
        self.assertEqual(c.cmd("RCPT TO:<c@example.com>"),
                         [postgrey("c@example.com")])
        self.assertEqual(c.cmd("DATA"),
                         ["354 End data with <CR><LF>.<CR><LF>"])
        c.send("Subject: two of three\r\n\r\nx\r\n.\r\n")
        self.assertRegex(c.reply1(), r"^250 2\.0\.0 Ok: queued as ")
        c.close()
        (f,) = self.files()
        with open(f, "rb") as fh:
            self.assertTrue(fh.read().startswith(
                b"Return-Path: <sender@example.net>\r\n"
                b"X-Envelope-To: <a@example.com>\r\n"
                b"X-Envelope-To: <b@sub.example.com>\r\n"))

    def test_triplet_ignores_case(self):
        # postgrey's key is lc "$client_net/$sender/$recipient": a retry
        # that spells the addresses in another case is the same triplet.
        self.assertEqual(self.attempt(sender="Sender@Example.NET",
                                      rcpt="Rcpt@Example.COM"),
                         postgrey("Rcpt@Example.COM"))
        time.sleep(WAIT)
        self.assertEqual(self.attempt(), PASS)
        self.assertEqual(self.attempt(sender="SENDER@example.net",
                                      rcpt="RCPT@example.com"), PASS)

    def test_client_network_is_the_slash_24_or_slash_64(self):
        # First seen from 192.0.2.5 ...
        self.assertEqual(self.attempt(addr="192.0.2.5"),
                         postgrey("rcpt@example.com"))
        # ... a retry from 192.0.2.77 within the delay is still early ...
        self.assertEqual(self.attempt(addr="192.0.2.77"),
                         postgrey("rcpt@example.com"))
        # (IPv6: the /64.)
        self.assertEqual(self.attempt(addr="IPV6:2001:db8:1:2::5"),
                         postgrey("rcpt@example.com"))
        time.sleep(WAIT)
        # ... and after it, another host of the same /24 passes: the
        # triplet is the network's, as with postgrey's lookup-by-subnet.
        self.assertEqual(self.attempt(addr="192.0.2.77"), PASS)
        self.assertEqual(self.attempt(addr="192.0.2.5"), PASS)
        self.assertEqual(self.attempt(addr="192.0.2.254"), PASS)
        # Another /24 (even the next one) starts over, as does loopback.
        self.assertEqual(self.attempt(addr="192.0.3.5"),
                         postgrey("rcpt@example.com"))
        self.assertEqual(self.attempt(addr="198.51.100.5"),
                         postgrey("rcpt@example.com"))
        self.assertEqual(self.attempt(), postgrey("rcpt@example.com"))
        self.assertEqual(self.attempt(addr="IPV6:2001:db8:1:2:ffff::1"), PASS)
        self.assertEqual(self.attempt(addr="IPV6:2001:db8:1:3::5"),
                         postgrey("rcpt@example.com"))
        self.emu.wait_log(r"event=cmd session=\d+ client=192\.0\.2\.77 "
                          r"line=\"RCPT TO:<rcpt@example\.com>\"")


class MilterGreylist(Base):
    args = ["--set", "style=milter-greylist"]

    def test_milter_greylist_wording(self):
        first = time.time()
        self.assertEqual(self.attempt(), MILTER)
        self.assertEqual(self.attempt(), MILTER)
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("sender@example.net", ["rcpt@example.com"],
                           b"x\r\n")
        self.assertEqual(cm.exception.recipients, {"rcpt@example.com": (
            451, b"4.7.1 Greylisting in action, please come back later")})
        time.sleep(max(0, first + WAIT - time.time()))
        self.assertEqual(self.attempt(), PASS)


class ClockOffset(Base):
    # The scenario clock starts a day ahead; only differences matter.
    args = ["--clock-offset", "86400"]

    def test_clock_offset_is_accepted(self):
        self.assertTrue(self.emu.alive())
        first = time.time()
        self.assertEqual(self.attempt(), postgrey("rcpt@example.com"))
        self.assertEqual(self.attempt(), postgrey("rcpt@example.com"))
        time.sleep(max(0, first + WAIT - time.time()))
        self.assertEqual(self.attempt(), PASS)


if __name__ == "__main__":
    unittest.main()
