"""rate-limit: N messages or connections per window, per client address,
sender or both; past the limit each provider's refusal at its stage --
Postfix 450 4.7.1 at MAIL (replies.md 7.6) or 421 at connect (7.1), Gmail's
421-4.7.28 / 450-4.2.1 at RCPT (docs/reply-sources.md 4a, 4b), Exchange
Online's 451 4.7.650 at MAIL (4.9), Yahoo's 421 [TSS04] at MAIL (7.9) --
and the connection closed or kept as that provider does."""

import re
import smtplib
import time
import unittest

from helpers import HOST, Emulator, Raw, TestCase

WINDOW = 1.0
GREETING = "220 %s ESMTP smtp-emulator" % HOST
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
GSMTP = r" \S+ - gsmtp$"


def postfix_mail(addr="127.0.0.1"):
    return "450 4.7.1 Error: too much mail from unknown[%s]" % addr


def yahoo(addr="127.0.0.1"):
    return ("421 4.7.0 [TSS04] Messages from %s temporarily deferred due to "
            "unexpected volume or user complaints - 4.16.55.1; see "
            "https://postmaster.yahooinc.com/error-codes" % addr)


GMAIL_IP = [
    "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail "
    "originating",
    "421-4.7.28 from your IP Netblock [127.0.0.1      34]. To protect our "
    "users",
    "421-4.7.28 from spam, mail sent from your IP Netblock has been "
    "temporarily rate",
    "421-4.7.28 limited. For more information, go to",
    "421-4.7.28  https://support.google.com/mail/?p="
    "UnsolicitedRateLimitError to",
    "421 4.7.28 review our Bulk Email Senders Guidelines.",
]
GMAIL_SPF = [
    "421-4.7.28 Gmail has detected an unusual rate of mail originating "
    "from your SPF",
    "421-4.7.28 domain [bulk.example      35]. To protect our users from",
    "421-4.7.28 spam, mail sent from your domain has been temporarily rate "
    "limited.",
    "421-4.7.28 For more information, go to",
    "421-4.7.28  https://support.google.com/mail/?p="
    "UnsolicitedRateLimitError to",
    "421 4.7.28 review our Bulk Email Senders Guidelines.",
]
GMAIL_RECEIVING = [
    "450-4.2.1 The user you are trying to contact is receiving mail at a "
    "rate that",
    "450-4.2.1 prevents additional messages from being delivered. Please "
    "resend your",
    "450-4.2.1 message at a later time. If the user is able to receive "
    "mail at that",
    "450-4.2.1 time, your message will be delivered. For more information, "
    "please",
    "450-4.2.1 visit",
    "450 4.2.1  https://support.google.com/mail/answer/6592",
]
EXCHANGE = re.compile(
    r"^451 4\.7\.650 The mail server \[127\.0\.0\.1\] has been temporarily "
    r"rate limited due to IP reputation\. For e-mail delivery information, "
    r"see https://postmaster\.live\.com \(S3113\) "
    r"\[BN3PEPF0000B077\.namprd04\.prod\.outlook\.com "
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [0-9A-F]{16}\]$")


class Base(TestCase):
    args = []

    def setUp(self):
        self.emu = Emulator("--scenario", "rate-limit",
                            "--set", "window=%g" % WINDOW,
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

    def mail(self, sender="a@example.net", addr=None):
        """MAIL on a new connection: its reply, and the connection."""
        c = self.connect(addr)
        return c.cmd("MAIL FROM:<%s>" % sender), c

    def assertKept(self, c):
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()

    def assertClosed(self, c):
        self.assertTrue(c.closed(), "the server kept the connection")
        self.assertEqual(c.buf, b"")
        c.close()


class PostfixMessages(Base):
    args = ["--set", "limit=2"]

    def test_third_mail_is_refused_and_the_session_kept(self):
        c = self.connect()
        # Each MAIL counts, on one connection or several.
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"), [MAIL_OK])
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        c.close()
        r, c = self.mail()
        self.assertEqual(r, [MAIL_OK])
        c.close()
        r, c = self.mail()
        self.assertEqual(r, [postfix_mail()])
        # The session is kept: a retry is refused too (and counts).
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"), [postfix_mail()])
        self.assertKept(c)
        # smtplib sees a refused sender.
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                s.sendmail("a@example.net", ["b@example.org"], b"x\r\n")
        self.assertEqual(cm.exception.smtp_code, 450)
        self.assertEqual(cm.exception.smtp_error,
                         postfix_mail()[4:].encode())
        self.emu.wait_log(r"rate-limit: over 2 per 1 s \(mail, client\)")

    def test_the_window_ends(self):
        first = time.time()
        for _ in range(2):
            r, c = self.mail()
            self.assertEqual(r, [MAIL_OK])
            c.close()
        r, c = self.mail()
        self.assertEqual(r, [postfix_mail()])
        c.close()
        time.sleep(max(0, first + WINDOW + 0.2 - time.time()))
        r, c = self.mail()
        self.assertEqual(r, [MAIL_OK])
        self.assertKept(c)

    def test_each_client_address_has_its_own_count(self):
        for _ in range(2):
            r, c = self.mail(addr="192.0.2.1")
            self.assertEqual(r, [MAIL_OK])
            c.close()
        r, c = self.mail(addr="192.0.2.1")
        self.assertEqual(r, [postfix_mail("192.0.2.1")])
        c.close()
        # Another address (even in the same /24), and the real one, pass.
        r, c = self.mail(addr="192.0.2.2")
        self.assertEqual(r, [MAIL_OK])
        c.close()
        r, c = self.mail(sender="other@example.org")
        self.assertEqual(r, [MAIL_OK])
        self.assertKept(c)


class PostfixPerSender(Base):
    args = ["--set", "limit=1", "--set", "key=sender"]

    def test_each_sender_has_its_own_count(self):
        r, c = self.mail(sender="Bulk@Example.NET")
        self.assertEqual(r, [MAIL_OK])
        c.close()
        # Same sender in another case, from another client: over.
        r, c = self.mail(sender="bulk@example.net", addr="198.51.100.7")
        self.assertEqual(r, [postfix_mail("198.51.100.7")])
        c.close()
        r, c = self.mail(sender="other@example.net")
        self.assertEqual(r, [MAIL_OK])
        self.assertKept(c)


class PostfixPerClientAndSender(Base):
    args = ["--set", "limit=1", "--set", "key=client-sender"]

    def test_the_pair_is_counted(self):
        r, c = self.mail(sender="a@example.net")
        self.assertEqual(r, [MAIL_OK])
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"),
                         [postfix_mail()])
        self.assertEqual(c.cmd("MAIL FROM:<b@example.net>"), [MAIL_OK])
        c.close()
        r, c = self.mail(sender="a@example.net", addr="192.0.2.9")
        self.assertEqual(r, [MAIL_OK])
        self.assertKept(c)


class PostfixAcceptedMessages(Base):
    args = ["--set", "limit=1", "--set", "count=message"]

    def test_accepted_messages_are_counted(self):
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            # Attempts that end without a message do not count.
            s.ehlo("client.example")
            self.assertEqual(s.mail("a@example.net"), (250, b"2.1.0 Ok"))
            s.rset()
            self.assertEqual(s.mail("a@example.net"), (250, b"2.1.0 Ok"))
            s.rset()
            self.assertEqual(s.sendmail("a@example.net", ["b@example.org"],
                                        b"Subject: 1\r\n\r\none\r\n"), {})
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                s.sendmail("a@example.net", ["b@example.org"],
                           b"Subject: 2\r\n\r\ntwo\r\n")
            self.assertEqual(cm.exception.smtp_code, 450)
            # Kept: the session still answers.
            self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))


class PostfixConnections(Base):
    args = ["--set", "limit=2", "--set", "count=connect"]

    def test_third_connection_gets_421_and_is_closed(self):
        a = self.connect()
        b = self.connect()
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), "421 4.7.0 %s Error: too many "
                         "connections from 127.0.0.1" % HOST)
        self.assertClosed(c)
        # smtplib: the greeting is refused.
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP(*self.emu.addr(), timeout=10)
        self.assertEqual(cm.exception.smtp_code, 421)
        # The connections already open go on.
        self.assertKept(a)
        self.assertEqual(b.cmd("MAIL FROM:<a@example.net>"), [MAIL_OK])
        self.assertKept(b)


class Gmail(Base):
    args = ["--set", "limit=0", "--set", "style=gmail"]

    def test_421_4_7_28_at_rcpt_then_close(self):
        r, c = self.mail()
        self.assertEqual(r, [MAIL_OK])
        r = c.cmd("RCPT TO:<b@example.org>")
        self.assertEqual(r[:-1], GMAIL_IP[:-1])
        self.assertRegex(r[-1], "^" + re.escape(GMAIL_IP[-1]) + GSMTP)
        self.assertClosed(c)
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("a@example.net", ["b@example.org"], b"x\r\n")
        code, text = cm.exception.recipients["b@example.org"]
        self.assertEqual(code, 421)
        self.assertTrue(text.startswith(b"4.7.28 Gmail has detected"))


class GmailPerSender(Base):
    args = ["--set", "limit=0", "--set", "style=gmail", "--set", "key=sender"]

    def test_names_the_senders_domain(self):
        r, c = self.mail(sender="news@bulk.example")
        self.assertEqual(r, [MAIL_OK])
        r = c.cmd("RCPT TO:<b@example.org>")
        self.assertEqual(r[:-1], GMAIL_SPF[:-1])
        self.assertRegex(r[-1], "^" + re.escape(GMAIL_SPF[-1]) + GSMTP)
        self.assertClosed(c)


class GmailReceiving(Base):
    args = ["--set", "limit=1", "--set", "style=gmail-receiving",
            "--set", "count=message"]

    def test_450_4_2_1_at_rcpt_kept(self):
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            self.assertEqual(s.sendmail("a@example.net", ["b@example.org"],
                                        b"Subject: 1\r\n\r\none\r\n"), {})
        r, c = self.mail()
        # MAIL passes; every RCPT is deferred; the session is kept.
        self.assertEqual(r, [MAIL_OK])
        for rcpt in ("b@example.org", "c@example.org"):
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(r[:-1], GMAIL_RECEIVING[:-1])
            self.assertRegex(r[-1], "^" + re.escape(GMAIL_RECEIVING[-1]) +
                             GSMTP)
        self.assertKept(c)


class Exchange(Base):
    args = ["--set", "limit=0", "--set", "style=exchange"]

    def test_451_4_7_650_at_mail_kept(self):
        r, c = self.mail()
        self.assertEqual(len(r), 1, r)
        self.assertRegex(r[0], EXCHANGE)
        # One ID per message: the retry in the same transaction repeats it.
        again = c.cmd("MAIL FROM:<a@example.net>")
        self.assertEqual(r[0][-17:], again[0][-17:])
        self.assertKept(c)


class Yahoo(Base):
    args = ["--set", "limit=0", "--set", "style=yahoo"]

    def test_421_tss04_at_mail_then_close(self):
        r, c = self.mail(addr="203.0.113.25")
        self.assertEqual(r, [yahoo("203.0.113.25")])
        self.assertClosed(c)
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                s.sendmail("a@example.net", ["b@example.org"], b"x\r\n")
        self.assertEqual(cm.exception.smtp_code, 421)


class YahooConnections(Base):
    args = ["--set", "limit=1", "--set", "style=yahoo",
            "--set", "count=connect"]

    def test_over_limit_connection_is_refused_at_mail(self):
        r, c = self.mail()
        self.assertEqual(r, [MAIL_OK])
        # The second connection is greeted as usual; Yahoo refuses at MAIL.
        r, d = self.mail()
        self.assertEqual(r, [yahoo()])
        self.assertClosed(d)
        self.assertKept(c)


if __name__ == "__main__":
    unittest.main()
