"""spam-policy: refusals after the final dot (GTUBE, keywords, blocked
senders, blocked attachments, DMARC), in rspamd's one line (replies.md
5.1a) and in Gmail's wire forms (5.1, 5.2, 5.9); accepted mail is captured
byte for byte, refused mail is not."""

import email.policy
import glob
import os
import re
import shutil
import smtplib
import tempfile
import unittest
from email.message import EmailMessage

from helpers import HOST, Emulator, Raw, TestCase

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
RSPAMD = "554 5.7.1 Spam message rejected"
# Gmail's per-session id and suffix, e.g.
# "ffacd0b85a97d-42583ab9ab6si2621680f8f.237 - gsmtp".
GSMTP = (r" (?P<id>[0-9a-f]{13}-[0-9a-f]{11}si\d+[a-f][0-9a-f]{2}\.\d{1,3})"
         r" - gsmtp$")

POLICY = ["--set", "keywords=viagra,lottery",
          "--set", "blocked_senders=spammer@bad.example,@blocked.example",
          "--set", "dmarc=reject",
          "--set", "dmarc_domains=strict.example,other.example"]


def message(frm="Alice <alice@example.com>", to="bob@example.org",
            subject="Hello", body="Just a normal note.\r\n", extra=()):
    head = ["From: " + frm, "To: " + to, "Subject: " + subject,
            "Message-ID: <1@example.com>"] + list(extra)
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def with_attachment(filename, frm="alice@example.com"):
    m = EmailMessage()
    m["From"] = frm
    m["To"] = "bob@example.org"
    m["Subject"] = "Your invoice"
    m.set_content("Please find the invoice attached.\n")
    m.add_attachment(b"MZ\x90\x00 pretend program " * 8,
                     maintype="application", subtype="octet-stream",
                     filename=filename)
    return m.as_bytes(policy=email.policy.SMTP)


class Base(TestCase):
    args = []

    def setUp(self):
        self.spool = tempfile.mkdtemp(prefix="emu-spool-")
        self.emu = Emulator("--scenario", "spam-policy", "--spool",
                            self.spool, *self.args).start()

    def tearDown(self):
        self.emu.stop()
        shutil.rmtree(self.spool)

    def files(self):
        return sorted(glob.glob(os.path.join(self.spool, "new", "*")))

    def captured(self):
        out = []
        for f in self.files():
            with open(f, "rb") as fh:
                out.append(fh.read())
        return out

    def send(self, msg, sender="alice@example.com", rcpt="bob@example.org"):
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            return s.sendmail(sender, [rcpt], msg)


class Rspamd(Base):
    args = POLICY

    def assertRefused(self, msg, sender="alice@example.com"):
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            self.send(msg, sender)
        self.assertEqual(cm.exception.smtp_code, 554)
        self.assertEqual(cm.exception.smtp_error,
                         b"5.7.1 Spam message rejected")
        self.assertEqual(self.files(), [])

    def test_clean_message_is_captured_exactly(self):
        msg = message(body="Line one\r\n.leading dot\r\nend\r\n")
        self.assertEqual(self.send(msg), {})
        self.assertEqual(self.captured(), [
            b"Return-Path: <alice@example.com>\r\n"
            b"X-Envelope-To: <bob@example.org>\r\n" + msg])

    def test_gtube_wire_line(self):
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.com>"),
                         ["250 2.1.0 Ok"])
        self.assertEqual(c.cmd("RCPT TO:<bob@example.org>"), ["250 2.1.5 Ok"])
        self.assertEqual(c.cmd("DATA"),
                         ["354 End data with <CR><LF>.<CR><LF>"])
        c.send(message(body=GTUBE + "\r\n") + b".\r\n")
        self.assertEqual(c.line(), RSPAMD)
        # The session goes on (replies.md: keeps).
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()
        self.assertEqual(self.files(), [])
        self.emu.wait_log(r"spam-policy: refused \(spam: GTUBE\)")

    def test_gtube(self):
        self.assertRefused(message(body="x\r\n" + GTUBE + "\r\n"))

    def test_keyword_in_body(self):
        self.assertRefused(message(body="Cheap Viagra here\r\n"))

    def test_keyword_in_header(self):
        self.assertRefused(message(subject="You won the LOTTERY"))

    def test_blocked_envelope_sender(self):
        self.assertRefused(message(), sender="spammer@bad.example")

    def test_blocked_from_header(self):
        self.assertRefused(message(frm='"Friendly" <Spammer@Bad.Example>'))

    def test_blocked_domain_envelope(self):
        self.assertRefused(message(), sender="anyone@blocked.example")

    def test_blocked_domain_from_header(self):
        self.assertRefused(message(frm="someone@blocked.example"))

    def test_blocked_attachment(self):
        self.assertRefused(with_attachment("invoice.exe"))

    def test_blocked_attachment_name_in_content_type(self):
        m = EmailMessage()
        m["From"] = "alice@example.com"
        m.set_content("see attached\n")
        m.add_attachment(b"@echo off\r\n", maintype="application",
                         subtype="octet-stream", filename="run.bat",
                         params={"name": "run.bat"})
        msg = m.as_bytes(policy=email.policy.SMTP)
        self.assertIn(b'Content-Type: application/octet-stream; '
                      b'name="run.bat"', msg)
        self.assertRefused(msg)

    def test_blocked_attachment_non_ascii_name(self):
        # Python's email writes a non-ASCII name in RFC 2231 form:
        # filename*=utf-8''%D1%81%D1%87%D1%91%D1%82.exe
        msg = with_attachment("\u0441\u0447\u0451\u0442.exe")
        self.assertIn(b"filename*=utf-8''%D1%81%D1%87%D1%91%D1%82.exe", msg)
        self.assertRefused(msg)

    def test_blocked_attachment_long_name(self):
        # ... and a long one as RFC 2231 continuations (filename*0*=...;
        # filename*1*=...), the extension in the last piece.
        msg = with_attachment("quarterly-report-" + "x" * 70 + ".exe")
        self.assertIn(b"filename*1*=", msg)
        self.assertRefused(msg)

    def test_blocked_attachment_name_with_apostrophe(self):
        msg = with_attachment("John's invoice.exe")
        self.assertIn(b'filename="John\'s invoice.exe"', msg)
        self.assertRefused(msg)

    def test_allowed_attachment_is_captured(self):
        msg = with_attachment("invoice.pdf")
        self.assertIn(b'Content-Disposition: attachment; '
                      b'filename="invoice.pdf"', msg)
        self.send(msg)
        self.assertEqual(self.captured(), [
            b"Return-Path: <alice@example.com>\r\n"
            b"X-Envelope-To: <bob@example.org>\r\n" + msg])

    def test_dmarc_reject_without_dkim(self):
        self.assertRefused(message(frm="CEO <ceo@strict.example>"))

    def test_dmarc_with_dkim_signature_is_accepted(self):
        msg = message(frm="CEO <ceo@strict.example>", extra=[
            "DKIM-Signature: v=1; a=rsa-sha256; d=strict.example; "
            "s=sel; h=from:to:subject; bh=AAAA; b=BBBB"])
        self.send(msg)
        self.assertEqual(len(self.captured()), 1)
        self.assertTrue(self.captured()[0].endswith(msg))

    def test_dmarc_unlisted_domain_is_accepted(self):
        self.send(message(frm="someone@lax.example"))
        self.assertEqual(len(self.files()), 1)

    def test_refusal_keeps_the_session(self):
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("a@example.com", ["b@example.org"],
                           message(body=GTUBE + "\r\n"))
            self.assertEqual(cm.exception.smtp_code, 554)
            self.assertEqual(self.files(), [])
            ok = message(body="fine\r\n")
            self.assertEqual(s.sendmail("a@example.com", ["b@example.org"],
                                        ok), {})
        self.assertEqual(self.captured(), [
            b"Return-Path: <a@example.com>\r\n"
            b"X-Envelope-To: <b@example.org>\r\n" + ok])


class RspamdDefaults(Base):
    """Without keywords, blocked senders or dmarc, only GTUBE and the
    default extensions are refused."""

    def test_defaults(self):
        self.send(message(body="viagra lottery\r\n"),
                  sender="spammer@bad.example")
        self.send(message(frm="ceo@strict.example"))
        self.assertEqual(len(self.files()), 2)
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            self.send(with_attachment("setup.MSI"))
        self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error),
                         (554, b"5.7.1 Spam message rejected"))
        with self.assertRaises(smtplib.SMTPDataError):
            self.send(message(body=GTUBE + "\r\n"))
        self.assertEqual(len(self.files()), 2)


class Gmail(Base):
    args = ["--set", "style=gmail"] + POLICY

    def session(self):
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
        self.assertEqual(c.cmd("EHLO client.example")[-1], "250 CHUNKING")
        return c

    def transaction(self, c, msg, sender="alice@example.com"):
        """Send one message; returns the wire lines of the final reply,
        read one by one."""
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender), ["250 2.1.0 Ok"])
        self.assertEqual(c.cmd("RCPT TO:<bob@example.org>"), ["250 2.1.5 Ok"])
        self.assertEqual(c.cmd("DATA"),
                         ["354 End data with <CR><LF>.<CR><LF>"])
        c.send(msg + b".\r\n")
        lines = [c.line()]
        while lines[-1][3] == "-":
            lines.append(c.line())
        return lines

    def check_last(self, line, text):
        """`line` is `text` followed by Gmail's id and " - gsmtp"."""
        self.assertTrue(line.startswith(text + " "), line)
        m = re.match(re.escape(text) + GSMTP, line)
        self.assertIsNotNone(m, line)
        return m.group("id")

    def test_dmarc_wire_form(self):
        c = self.session()
        lines = self.transaction(c, message(frm="CEO <ceo@strict.example>"))
        self.assertEqual(lines[:4], [
            "550-5.7.26 Unauthenticated email from strict.example is not "
            "accepted due to domain's",
            "550-5.7.26 DMARC policy. Please contact the administrator of "
            "strict.example domain if",
            "550-5.7.26 this was a legitimate mail. To learn about the DMARC "
            "initiative, go",
            "550-5.7.26 to",
        ])
        self.assertEqual(len(lines), 5)
        # Two spaces after the enhanced code, as on the wire.
        self.check_last(lines[4], "550 5.7.26  https://support.google.com/"
                        "mail/?p=DmarcRejection")
        # The other listed domain is substituted the same way.
        lines = self.transaction(c, message(frm="x@other.example"))
        self.assertEqual(lines[0], "550-5.7.26 Unauthenticated email from "
                         "other.example is not accepted due to domain's")
        self.assertEqual(lines[1], "550-5.7.26 DMARC policy. Please contact "
                         "the administrator of other.example domain if")
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()
        self.assertEqual(self.files(), [])

    def test_attachment_wire_form(self):
        c = self.session()
        lines = self.transaction(c, with_attachment("invoice.exe"))
        self.assertEqual(lines[:3], [
            "552-5.7.0 This message was blocked because its content presents "
            "a potential",
            "552-5.7.0 security issue. Please visit",
            "552-5.7.0  https://support.google.com/mail/answer/6590 to review "
            "our message",
        ])
        self.assertEqual(len(lines), 4)
        self.check_last(lines[3], "552 5.7.0 content and attachment content "
                        "guidelines.")
        c.close()
        self.assertEqual(self.files(), [])

    def test_unsolicited_one_line_form(self):
        text = ("550 5.7.1 Our system has detected that this message is "
                "likely unsolicited mail. To reduce the amount of spam sent "
                "to Gmail, this message has been blocked. For more "
                "information, visit https://support.google.com/mail/answer/"
                "188131")
        c = self.session()
        ids = set()
        for msg, sender in [(message(body=GTUBE + "\r\n"), "a@example.com"),
                            (message(subject="lottery"), "a@example.com"),
                            (message(), "spammer@bad.example"),
                            (message(frm="x@blocked.example"),
                             "a@example.com")]:
            lines = self.transaction(c, msg, sender)
            self.assertEqual(len(lines), 1, lines)
            ids.add(self.check_last(lines[0], text))
        # One id for the whole session ...
        self.assertEqual(len(ids), 1)
        c.close()
        # ... and another one for the next session.
        c = self.session()
        lines = self.transaction(c, message(body=GTUBE + "\r\n"))
        self.assertNotIn(self.check_last(lines[0], text), ids)
        c.close()
        self.assertEqual(self.files(), [])

    def test_smtplib_sees_the_joined_reply(self):
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("alice@example.com", ["bob@example.org"],
                           with_attachment("run.JS"))
        self.assertEqual(cm.exception.smtp_code, 552)
        self.assertRegex(
            cm.exception.smtp_error.decode(),
            r"^5\.7\.0 This message was blocked because its content presents"
            r" a potential\n5\.7\.0 security issue\. Please visit\n5\.7\.0  "
            r"https://support\.google\.com/mail/answer/6590 to review our "
            r"message\n5\.7\.0 content and attachment content guidelines\."
            + GSMTP)

    def test_clean_message_is_captured_exactly(self):
        msg = message(frm="ceo@strict.example", extra=[
            "DKIM-Signature: v=1; d=strict.example; b=x"])
        c = self.session()
        lines = self.transaction(c, msg)
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], r"^250 2\.0\.0 Ok: queued as \w{12}$")
        c.close()
        self.assertEqual(self.captured(), [
            b"Return-Path: <alice@example.com>\r\n"
            b"X-Envelope-To: <bob@example.org>\r\n" + msg])


if __name__ == "__main__":
    unittest.main()
