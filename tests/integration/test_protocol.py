"""The core protocol with no scenario: Postfix's wording for every generic
reply, state rules, pipelining, BDAT, error limits (issue 3)."""

import smtplib
import socket
import time

from helpers import Emulator, Raw, TestCase, HOST

EHLO = ["250-" + HOST, "250-PIPELINING", "250-SIZE 10240000",
        "250-STARTTLS", "250-AUTH PLAIN LOGIN XOAUTH2",
        "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN",
        "250-SMTPUTF8", "250 CHUNKING"]


class Protocol(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator().start()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setUp(self):
        self.assertTrue(self.emu.alive())
        self.c = Raw(self.emu.addr())
        self.assertEqual(self.c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)

    def tearDown(self):
        self.c.close()
        self.assertTrue(self.emu.alive())

    def test_ehlo_lists_keywords_in_postfix_order(self):
        self.assertEqual(self.c.cmd("EHLO client.example"), EHLO)

    def test_helo(self):
        self.assertEqual(self.c.cmd("HELO client.example"), ["250 " + HOST])
        self.assertEqual(self.c.cmd("HELO"), ["501 Syntax: HELO hostname"])
        self.assertEqual(self.c.cmd("EHLO"), ["501 Syntax: EHLO hostname"])

    def test_transaction_replies(self):
        c = self.c
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"), ["250 2.1.0 Ok"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"),
                         ["503 5.5.1 Error: nested MAIL command"])
        self.assertEqual(c.cmd("RCPT TO:<b@example.org>"), ["250 2.1.5 Ok"])
        self.assertEqual(c.cmd("DATA"),
                         ["354 End data with <CR><LF>.<CR><LF>"])
        c.send("Subject: x\r\n\r\nhello\r\n.\r\n")
        r = c.reply1()
        self.assertRegex(r, r"^250 2\.0\.0 Ok: queued as [0-9A-Za-z]{12}$")
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        self.assertTrue(c.closed())

    def test_state_errors(self):
        c = self.c
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"),
                         ["503 5.5.1 Error: send HELO/EHLO first"])
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("RCPT TO:<b@example.org>"),
                         ["503 5.5.1 Error: need MAIL command"])
        self.assertEqual(c.cmd("DATA"),
                         ["503 5.5.1 Error: need RCPT command"])
        c.cmd("MAIL FROM:<>")
        self.assertEqual(c.cmd("DATA"),
                         ["554 5.5.1 Error: no valid recipients"])

    def test_syntax_errors(self):
        c = self.c
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("MAIL TO:<a@example.com>"),
                         ["501 5.5.4 Syntax: MAIL FROM:<address>"])
        self.assertEqual(c.cmd("MAIL FROM:<a b@example.com>"),
                         ["501 5.1.7 Bad sender address syntax"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com> FOO=bar"),
                         ["555 5.5.4 Unsupported option: FOO=bar"])
        c.cmd("MAIL FROM: <a@example.com>")
        self.assertEqual(c.cmd("RCPT FROM:<b@example.org>"),
                         ["501 5.5.4 Syntax: RCPT TO:<address>"])
        self.assertEqual(c.cmd("RCPT TO:<>"),
                         ["501 5.1.3 Bad recipient address syntax"])
        self.assertEqual(c.cmd("RSET now"), ["501 5.5.4 Syntax: RSET"])
        c.cmd("RCPT TO:<b@example.org>")
        self.assertEqual(c.cmd("DATA now"), ["501 5.5.4 Syntax: DATA"])
        self.assertEqual(c.cmd("FROB"),
                         ["500 5.5.2 Error: command not recognized"])
        self.assertEqual(c.cmd(""), ["500 5.5.2 Error: bad syntax"])
        self.assertEqual(c.cmd("VRFY postmaster"),
                         ["502 5.5.1 VRFY command is disabled"])

    def test_size_parameter_over_limit(self):
        c = self.c
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com> SIZE=10240001"),
                         ["552 5.3.4 Message size exceeds fixed limit"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com> SIZE=10240000 "
                               "BODY=8BITMIME RET=HDRS ENVID=x+2By"),
                         ["250 2.1.0 Ok"])
        self.assertEqual(c.cmd("RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;b@example.org"),
                         ["250 2.1.5 Ok"])

    def test_unicode_address_needs_smtputf8(self):
        c = self.c
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("MAIL FROM:<jürgen@example.com>"),
                         ["553 5.6.7 Must declare SMTPUTF8 to send unicode "
                          "address"])
        self.assertEqual(c.cmd("MAIL FROM:<jürgen@example.com> SMTPUTF8"),
                         ["250 2.1.0 Ok"])
        self.assertEqual(c.cmd("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>"),
                         ["250 2.1.5 Ok"])
        c.send(b"MAIL FROM:<\xff@example.com>\r\n")
        self.assertEqual(c.reply(), ["500 5.5.2 Error: bad UTF-8 syntax"])

    def test_pipelined_commands_answered_in_order(self):
        c = self.c
        c.send("EHLO a.example\r\nMAIL FROM:<a@example.com>\r\n"
               "RCPT TO:<b@example.org>\r\nRCPT TO:<>\r\n"
               "RCPT TO:<c@example.org>\r\nDATA\r\n")
        self.assertEqual(c.reply(), EHLO)
        self.assertEqual(c.reply1(), "250 2.1.0 Ok")
        self.assertEqual(c.reply1(), "250 2.1.5 Ok")
        self.assertEqual(c.reply1(), "501 5.1.3 Bad recipient address syntax")
        self.assertEqual(c.reply1(), "250 2.1.5 Ok")
        self.assertEqual(c.reply1(), "354 End data with <CR><LF>.<CR><LF>")
        c.send("x\r\n.\r\nRSET\r\nQUIT\r\n")
        self.assertRegex(c.reply1(), r"^250 2\.0\.0 Ok: queued as ")
        self.assertEqual(c.reply1(), "250 2.0.0 Ok")
        self.assertEqual(c.reply1(), "221 2.0.0 Bye")

    def test_pipelined_after_refused_rcpt_data_gets_no_valid_recipients(self):
        # Postfix and msmtp pipeline DATA even when every RCPT failed.
        c = self.c
        c.send("EHLO a.example\r\nMAIL FROM:<a@example.com>\r\n"
               "RCPT TO:<>\r\nDATA\r\n")
        c.reply()
        c.reply()
        self.assertEqual(c.reply1(), "501 5.1.3 Bad recipient address syntax")
        self.assertEqual(c.reply1(), "554 5.5.1 Error: no valid recipients")

    def test_bdat(self):
        c = self.c
        c.cmd("EHLO a.example")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.send("BDAT 9\r\nSubject: ")
        self.assertEqual(c.reply1(), "250 2.0.0 Ok: 9 bytes")
        c.send("BDAT 7 LAST\r\nhi\r\n.\r\n")
        self.assertRegex(c.reply1(),
                         r"^250 2\.0\.0 Ok: 16 bytes queued as \w{12}$")
        # BDAT then RSET drops the partial message.
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.send("BDAT 3\r\nabc")
        self.assertEqual(c.reply1(), "250 2.0.0 Ok: 3 bytes")
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        c.send("BDAT 3 LAST\r\nabc")
        self.assertEqual(c.reply1(), "503 5.5.1 Error: need RCPT command")
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])

    def test_bdat_zero_last_and_bad_syntax(self):
        c = self.c
        c.cmd("EHLO a.example")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.send("BDAT 5\r\nhello")
        c.reply()
        self.assertRegex(c.cmd("BDAT 0 LAST")[0],
                         r"^250 2\.0\.0 Ok: 5 bytes queued as ")
        # A chunk of unknown size: the stream is lost, Postfix hangs up.
        self.assertEqual(c.cmd("BDAT x"),
                         ["521 5.5.4 Syntax: BDAT count [LAST]"])
        self.assertTrue(c.closed())

    def test_bdat_errors_follow_postfix(self):
        c = self.c
        c.cmd("EHLO a.example")
        # No recipients: the chunk is read and thrown away, then refused.
        c.send("BDAT 4\r\nabcdNOOP\r\n")
        self.assertEqual(c.reply1(), "503 5.5.1 Error: need RCPT command")
        self.assertEqual(c.reply1(), "250 2.0.0 Ok")
        # ... and later chunks are discarded until LAST.
        c.send("BDAT 2\r\nxy")
        self.assertEqual(c.reply1(),
                         "551 5.0.0 Discarded 2 bytes after earlier error")
        c.send("BDAT 2 LAST\r\nxy")
        self.assertEqual(c.reply1(),
                         "551 5.0.0 Discarded 2 bytes after earlier error")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        self.assertEqual(c.cmd("BDAT 0"), ["551 5.7.1 Null BDAT request"])
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.org>")
        c.send("BDAT 1\r\nz")
        self.assertEqual(c.reply1(), "250 2.0.0 Ok: 1 bytes")
        self.assertEqual(c.cmd("DATA"), ["503 5.5.1 Error: DATA after BDAT"])
        self.assertEqual(c.cmd("RCPT TO:<c@example.org>"),
                         ["503 5.5.1 Error: RCPT after BDAT"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"),
                         ["503 5.5.1 Error: nested MAIL command"])

    def test_command_too_long_counts_and_session_goes_on(self):
        c = self.c
        c.send("NOOP " + "x" * 3000 + "\r\n")
        self.assertEqual(c.reply1(),
                         "500 5.5.2 %s Error: command too long" % HOST)
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
        # A line exactly at the limit (2048 bytes) is still a command.
        self.assertEqual(c.cmd("NOOP " + "x" * 2043),
                         ["250 2.0.0 Ok"])

    def test_bare_lf_accepted_in_commands(self):
        c = self.c
        c.send("EHLO a.example\nMAIL FROM:<a@example.com>\n")
        c.reply()
        self.assertEqual(c.reply1(), "250 2.1.0 Ok")

    def test_http_request_is_refused_and_closed(self):
        c = self.c
        self.assertEqual(c.cmd("GET / HTTP/1.0"),
                         ["221 2.7.0 Error: I can break rules, too. Goodbye."])
        self.assertTrue(c.closed())

    def test_too_many_errors(self):
        c = self.c
        for i in range(19):
            self.assertEqual(c.cmd("FROB"),
                             ["500 5.5.2 Error: command not recognized"])
        c.send("FROB\r\n")
        self.assertEqual(c.reply1(), "500 5.5.2 Error: command not recognized")
        self.assertEqual(c.reply1(), "421 4.7.0 %s Error: too many errors"
                         % HOST)
        self.assertTrue(c.closed())

    def test_help(self):
        self.assertEqual(self.c.cmd("HELP"),
                         ["214 2.0.0 Commands: AUTH BDAT DATA EHLO HELO HELP "
                          "MAIL NOOP QUIT RCPT RSET STARTTLS VRFY XCLIENT"])

    def test_smtplib_send(self):
        with smtplib.SMTP(*self.emu.addr()) as s:
            refused = s.sendmail("a@example.com", ["b@example.org",
                                                   "c@example.org"],
                                 "Subject: hi\r\n\r\nbody\r\n")
            self.assertEqual(refused, {})

    def test_half_closed_client_gets_its_replies(self):
        c = self.c
        c.send("EHLO a.example\r\nNOOP\r\nQUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.reply(), EHLO)
        self.assertEqual(c.reply1(), "250 2.0.0 Ok")
        self.assertEqual(c.reply1(), "221 2.0.0 Bye")


class Limits(TestCase):
    def test_too_many_recipients(self):
        with Emulator("--max-recipients", "2") as emu:
            c = Raw(emu.addr())
            c.reply()
            c.cmd("EHLO a.example")
            c.cmd("MAIL FROM:<a@example.com>")
            self.assertEqual(c.cmd("RCPT TO:<1@example.org>"), ["250 2.1.5 Ok"])
            self.assertEqual(c.cmd("RCPT TO:<2@example.org>"), ["250 2.1.5 Ok"])
            self.assertEqual(c.cmd("RCPT TO:<3@example.org>"),
                             ["452 4.5.3 Error: too many recipients"])
            c.close()

    def test_idle_timeout(self):
        with Emulator("--idle-timeout", "1") as emu:
            c = Raw(emu.addr())
            c.reply()
            t0 = time.time()
            self.assertEqual(c.reply1(),
                             "421 4.4.2 %s Error: timeout exceeded" % HOST)
            self.assertTrue(0.8 < time.time() - t0 < 5)
            self.assertTrue(c.closed())

    def test_idle_timeout_inside_data(self):
        with Emulator("--idle-timeout", "1") as emu:
            c = Raw(emu.addr())
            c.reply()
            c.cmd("HELO a")
            c.cmd("MAIL FROM:<a@example.com>")
            c.cmd("RCPT TO:<b@example.org>")
            c.cmd("DATA")
            c.send("never ending\r\n")
            self.assertEqual(c.reply1(),
                             "421 4.4.2 %s Error: timeout exceeded" % HOST)
            self.assertTrue(c.closed())

    def test_max_connections(self):
        with Emulator("--max-connections", "1") as emu:
            a = Raw(emu.addr())
            self.assertTrue(a.reply1().startswith("220 "))
            b = Raw(emu.addr())
            self.assertEqual(b.reply1(), "421 4.7.0 %s Error: too many "
                             "connections from 127.0.0.1" % HOST)
            self.assertTrue(b.closed())
            self.assertEqual(a.cmd("NOOP"), ["250 2.0.0 Ok"])
            a.cmd("QUIT")
            a.close()
            # The slot is free again.
            time.sleep(0.2)
            c = Raw(emu.addr())
            self.assertTrue(c.reply1().startswith("220 "))
            c.close()

    def test_error_delay(self):
        with Emulator("--error-delay", "0.3") as emu:
            c = Raw(emu.addr())
            c.reply()
            for _ in range(10):
                c.cmd("FROB")
            t0 = time.time()
            c.cmd("FROB")
            c.cmd("NOOP")
            self.assertGreater(time.time() - t0, 0.25)
            c.close()

    def test_banner_option(self):
        with Emulator("--banner", "mail.example.org ESMTP Postfix") as emu:
            c = Raw(emu.addr())
            self.assertEqual(c.reply1(), "220 mail.example.org ESMTP Postfix")
            c.close()
