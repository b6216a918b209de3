"""Captured messages: dot-unstuffing, exact bytes, the Maildir spool, size
limit, and AUTH (issue 3)."""

import base64
import glob
import os
import shutil
import smtplib
import tempfile

from helpers import Emulator, Raw, TestCase


def maildir_files(d):
    return sorted(glob.glob(os.path.join(d, "new", "*")))


class Capture(TestCase):
    def setUp(self):
        self.spool = tempfile.mkdtemp(prefix="emu-spool-")
        self.emu = Emulator("--spool", self.spool,
                            "--max-message-size", "2000").start()

    def tearDown(self):
        self.emu.stop()
        shutil.rmtree(self.spool)

    def test_maildir_file_holds_envelope_and_exact_bytes(self):
        body = (b"Subject: dots\r\n\r\n"
                b"..leading dot doubled by the client\r\n"
                b".x\r\n"
                b"8bit: \xc3\xa9t\xc3\xa9\r\n"
                b"bare\nLF stays\r\n")
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a.example")
        c.cmd("MAIL FROM:<sender@example.com> BODY=8BITMIME")
        c.cmd("RCPT TO:<one@example.org>")
        c.cmd("RCPT TO:<two@example.org>")
        c.cmd("DATA")
        # Sent in small pieces to cross every boundary.
        for i in range(0, len(body), 7):
            c.send(body[i:i + 7])
        c.send(b".\r\n")
        r = c.reply1()
        self.assertRegex(r, r"^250 2\.0\.0 Ok: queued as \w{12}$")
        files = maildir_files(self.spool)
        self.assertEqual(len(files), 1)
        self.assertEqual(glob.glob(os.path.join(self.spool, "tmp", "*")), [])
        with open(files[0], "rb") as f:
            data = f.read()
        expect = (b"Return-Path: <sender@example.com>\r\n"
                  b"X-Envelope-To: <one@example.org>\r\n"
                  b"X-Envelope-To: <two@example.org>\r\n"
                  b"Subject: dots\r\n\r\n"
                  b".leading dot doubled by the client\r\n"
                  b"x\r\n"
                  b"8bit: \xc3\xa9t\xc3\xa9\r\n"
                  b"bare\nLF stays\r\n")
        self.assertEqual(data, expect)
        c.close()

    def test_smtplib_dot_stuffing_round_trip(self):
        text = "Subject: s\r\n\r\n.\r\n..\r\n.hidden\r\nend\r\n"
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.sendmail("", ["x@example.org"], text)
        (f,) = maildir_files(self.spool)
        with open(f, "rb") as fh:
            data = fh.read()
        self.assertEqual(data, b"Return-Path: <>\r\nX-Envelope-To: "
                         b"<x@example.org>\r\n" + text.encode())

    def test_smuggled_end_of_data_is_content(self):
        # "<LF>.<LF>" is not the end of the data (Postfix 3.9 normalize);
        # like Postfix, the lone "." line itself is dropped.
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("HELO a")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.cmd("DATA")
        c.send(b"one\n.\nMAIL FROM:<evil@example.com>\r\n.\r\n")
        self.assertRegex(c.reply1(), r"^250 2\.0\.0 Ok: queued as ")
        (f,) = maildir_files(self.spool)
        with open(f, "rb") as fh:
            self.assertEqual(fh.read().split(b"\r\n", 2)[2],
                             b"one\nMAIL FROM:<evil@example.com>\r\n")
        c.close()

    def test_message_over_limit_answered_after_data_and_not_stored(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a.example")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        self.assertEqual(c.cmd("DATA")[0][:3], "354")
        c.send(("x" * 70 + "\r\n") * 40)  # 2880 bytes > 2000
        c.send(".\r\n")
        self.assertEqual(c.reply1(), "552 5.3.4 Error: message file too big")
        self.assertEqual(maildir_files(self.spool), [])
        # The session goes on and the next message is fine.
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.cmd("DATA")
        c.send("small\r\n.\r\n")
        self.assertRegex(c.reply1(), r"^250 ")
        self.assertEqual(len(maildir_files(self.spool)), 1)
        c.close()

    def test_bdat_over_limit(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a.example")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.send(b"BDAT 2500 LAST\r\n" + b"y" * 2500)
        self.assertEqual(c.reply1(),
                         "552 5.3.4 Chunk exceeds message size limit")
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
        self.assertEqual(maildir_files(self.spool), [])
        c.close()

    def test_client_vanishing_mid_message_stores_nothing(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("HELO a")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.cmd("DATA")
        c.send("half a message\r\n")
        c.close()
        self.emu.wait_log(r"event=disconnect session=\d+ client=127\.0\.0\.1"
                          r" reason=\"client closed the connection\"")
        self.assertEqual(maildir_files(self.spool), [])


class Auth(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator().start()

    @classmethod
    def tearDownClass(cls):
        log = cls.emu.log()
        cls.emu.stop()
        # Credentials never reach the log.
        assert "s3cret" not in log, "password in the log"
        assert base64.b64encode(b"\0alice\0s3cret").decode() not in log

    def test_smtplib_plain_and_login(self):
        for mech in ("PLAIN", "LOGIN"):
            with smtplib.SMTP(*self.emu.addr()) as s:
                s.ehlo("a.example")
                s.user, s.password = "alice", "s3cret"
                code, msg = s.auth(mech, getattr(s, "auth_" + mech.lower()),
                                   initial_response_ok=(mech == "PLAIN"))
                self.assertEqual((code, msg),
                                 (235, b"2.7.0 Authentication successful"))
                self.assertEqual(s.ehlo()[0], 250)
                self.emu.wait_log(r"event=auth .*mechanism=%s user=alice"
                                  % mech)

    def test_raw_exchanges(self):
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("AUTH PLAIN"),
                         ["503 5.5.1 Error: send HELO/EHLO first"])
        c.cmd("EHLO a.example")
        self.assertEqual(c.cmd("AUTH"), ["501 5.5.4 Syntax: AUTH mechanism"])
        self.assertEqual(c.cmd("AUTH CRAM-MD5"),
                         ["535 5.7.8 Error: authentication failed: Invalid "
                          "authentication mechanism"])
        self.assertEqual(c.cmd("AUTH PLAIN"), ["334 "])
        self.assertEqual(c.cmd("*"), ["501 5.7.0 Authentication aborted"])
        self.assertEqual(c.cmd("AUTH PLAIN !!!!"),
                         ["535 5.7.8 Error: authentication failed: Invalid "
                          "base64 data in initial response"])
        self.assertEqual(c.cmd("AUTH LOGIN"), ["334 VXNlcm5hbWU6"])
        self.assertEqual(c.cmd(base64.b64encode(b"bob").decode()),
                         ["334 UGFzc3dvcmQ6"])
        self.assertEqual(c.cmd("%%%"),
                         ["535 5.7.8 Error: authentication failed: Invalid "
                          "base64 data in continued response"])
        tok = base64.b64encode(b"user=carol\x01auth=Bearer ya29.tok\x01\x01")
        self.assertEqual(c.cmd("AUTH XOAUTH2 " + tok.decode()),
                         ["235 2.7.0 Authentication successful"])
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(
            b"\0alice\0s3cret").decode()),
            ["503 5.5.1 Error: already authenticated"])
        c.cmd("MAIL FROM:<a@example.com>")
        c.close()
        self.emu.wait_log(r"line=\"AUTH XOAUTH2 \*\*\*\"")
        self.emu.wait_log(r"mechanism=XOAUTH2 user=carol")
