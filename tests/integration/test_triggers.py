"""triggers: the local part of a recipient (or sender) picks the reply --
Postfix's text for that code at that stage (replies.md 6.10, 1.7, 6.13,
4.1, ...), a neutral text where Postfix has none -- or ends the connection
at a stage (eof/reset/hang-at-STAGE), slows the transaction (slow@) or
greylists (greylist@, through scenarios/greylisting.lua)."""

import smtplib
import socket
import time
import unittest

from helpers import HOST, Emulator, Raw, TestCase

GREETING = "220 %s ESMTP smtp-emulator" % HOST
OK = {"mail": "250 2.1.0 Ok", "rcpt": "250 2.1.5 Ok",
      "data": "354 End data with <CR><LF>.<CR><LF>"}

# (address, expected reply) at RCPT; {a} is the address.
RCPT = [
    ("rcpt550_5.1.1@example.com", "550 5.1.1 <{a}>: Recipient address "
     "rejected: User unknown in local recipient table"),
    ("rcpt450_4.2.0@example.com", "450 4.2.0 <{a}>: Recipient address "
     "rejected: Greylisted, see http://postgrey.schweikert.ch/help/"
     "example.com.html"),
    ("rcpt452_4.5.3@example.com", "452 4.5.3 Error: too many recipients"),
    ("rcpt554_5.7.1@example.com", "554 5.7.1 <{a}>: Relay access denied"),
    ("rcpt550_5.7.1@example.com", "550 5.7.1 Service unavailable; client "
     "[127.0.0.1] blocked using zen.spamhaus.org"),
    ("rcpt450_4.7.1@example.com", "450 4.7.1 Error: too many recipients "
     "from unknown[127.0.0.1]"),
    ("rcpt450_4.7.25@example.com", "450 4.7.25 Client host rejected: "
     "cannot find your hostname, [127.0.0.1]"),
    ("rcpt550_5.7.25@example.com", "550 5.7.25 Client host rejected: "
     "cannot find your hostname, [127.0.0.1]"),
    ("rcpt450_4.1.2@nowhere.example", "450 4.1.2 <{a}>: Recipient address "
     "rejected: Domain not found"),
    ("rcpt550_5.1.2@nowhere.example", "550 5.1.2 <{a}>: Recipient address "
     "rejected: Domain not found"),
    ("rcpt556_5.1.10@null.example", "556 5.1.10 <{a}>: Recipient address "
     "rejected: Domain null.example does not accept mail (nullMX)"),
    ("rcpt504_5.5.2@example.com", "504 5.5.2 <{a}>: Recipient address "
     "rejected: need fully-qualified address"),
    ("rcpt530_5.7.0@example.com", "530 5.7.0 Must issue a STARTTLS command "
     "first"),
    # Code only: the first entry for that code at RCPT.
    ("rcpt550@example.com", "550 5.1.1 <{a}>: Recipient address rejected: "
     "User unknown in local recipient table"),
    ("rcpt554@example.com", "554 5.7.1 <{a}>: Relay access denied"),
    # Postfix's rule: the class digit follows the code.
    ("rcpt550_4.1.1@example.com", "550 5.1.1 <{a}>: Recipient address "
     "rejected: User unknown in local recipient table"),
    # No Postfix text for these: the neutral one.
    ("rcpt551_5.1.6@example.com", "551 5.1.6 Error: refused by trigger"),
    ("rcpt451@example.com", "451 4.0.0 Error: refused by trigger"),
    ("rcpt599_5.9.999@example.com", "599 5.9.999 Error: refused by "
     "trigger"),
    # Case and sub-addressing.
    ("RCPT550_5.1.1@Example.COM", "550 5.1.1 <{a}>: Recipient address "
     "rejected: User unknown in local recipient table"),
    ("alice+rcpt452_4.5.3@example.com", "452 4.5.3 Error: too many "
     "recipients"),
    # Not triggers: accepted.
    ("rcpt250_2.1.5@example.com", OK["rcpt"]),
    ("rcpt399@example.com", OK["rcpt"]),
    ("rcpt550_5.1@example.com", OK["rcpt"]),
    ("rcpt550_5.1.1x@example.com", OK["rcpt"]),
    ("mail550_5.1.8@example.com", OK["rcpt"]),
    ("eof-at-mail@example.com", OK["rcpt"]),
    ("rcpt550-5.1.1@example.com", OK["rcpt"]),
    ("bob@example.com", OK["rcpt"]),
]

MAIL = [
    ("mail450_4.7.1@example.net", "450 4.7.1 Error: too much mail from "
     "unknown[127.0.0.1]"),
    ("mail554_5.7.1@example.net", "554 5.7.1 <{a}>: Sender address "
     "rejected: Access denied"),
    ("mail553_5.7.1@example.net", "553 5.7.1 <{a}>: Sender address "
     "rejected: not logged in"),
    ("mail450_4.1.8@nowhere.example", "450 4.1.8 <{a}>: Sender address "
     "rejected: Domain not found"),
    ("mail550_5.1.8@nowhere.example", "550 5.1.8 <{a}>: Sender address "
     "rejected: Domain not found"),
    ("mail553_5.1.8@nowhere.example", "553 5.1.8 <{a}>: Sender address "
     "rejected: Domain not found"),
    ("mail550_5.7.27@null.example", "550 5.7.27 <{a}>: Sender address "
     "rejected: Domain null.example does not accept mail (nullMX)"),
    ("mail504_5.5.2@example.net", "504 5.5.2 <{a}>: Sender address "
     "rejected: need fully-qualified address"),
    ("mail552_5.3.4@example.net", "552 5.3.4 Message size exceeds fixed "
     "limit"),
    ("mail501_5.1.7@example.net", "501 5.1.7 Bad sender address syntax"),
    ("mail530@example.net", "530 5.7.0 Must issue a STARTTLS command "
     "first"),
    ("mail550_5.1.1@example.net", "550 5.1.1 Error: refused by trigger"),
    # A recipient trigger in MAIL FROM is not one.
    ("rcpt550_5.1.1@example.net", OK["mail"]),
]

DATA = [
    ("data554_5.5.1@example.com", "554 5.5.1 Error: no valid recipients"),
    ("data503@example.com", "503 5.5.1 Error: need RCPT command"),
    ("data451_4.3.0@example.com", "451 4.3.0 Error: refused by trigger"),
]

MESSAGE = [
    ("message550_5.7.1@example.com", "550 5.7.1 Error: message content "
     "rejected"),
    ("message552_5.3.4@example.com", "552 5.3.4 Error: message file too "
     "big"),
    ("message451_4.3.0@example.com", "451 4.3.0 Error: queue file write "
     "error"),
    ("message554_5.7.1@example.com", "554 5.7.1 Spam message rejected"),
    ("message552@example.com", "552 5.3.4 Error: message file too big"),
]

# 421s close the connection after the reply.
CLOSING = [
    ("rcpt", "rcpt421_4.7.0@example.com",
     "421 4.7.0 %s Error: too many errors" % HOST),
    ("rcpt", "rcpt421_4.4.2@example.com",
     "421 4.4.2 %s Error: timeout exceeded" % HOST),
    ("rcpt", "rcpt421_4.3.0@example.com",
     "421 4.3.0 %s Server local error" % HOST),
    ("mail", "mail421@example.net",
     "421 4.7.0 %s Error: too many errors" % HOST),
    ("message", "message421_4.7.0@example.com",
     "421 4.7.0 Server closing connection"),
    ("message", "message421_4.3.5@example.com",
     "421 4.3.5 Server configuration error"),
]

BODY = "Subject: trigger\r\n\r\nbody\r\n."


class Base(TestCase):
    args = []

    def setUp(self):
        # Many refusals in one session: stay below Postfix's hard error
        # limit (20 by default), which would end it with a 421.
        self.emu = Emulator("--scenario", "triggers", "--max-errors", "1000",
                            *self.args).start()

    def tearDown(self):
        self.assertTrue(self.emu.alive())
        self.emu.stop()

    def connect(self):
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), GREETING)
        self.assertEqual(c.cmd("EHLO client.example")[-1], "250 CHUNKING")
        return c

    def assertKept(self, c):
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()


class Replies(Base):
    def test_rcpt_triggers(self):
        c = self.connect()
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"), [OK["mail"]])
        for addr, want in RCPT:
            with self.subTest(addr=addr):
                self.assertEqual(c.cmd("RCPT TO:<%s>" % addr),
                                 [want.format(a=addr)])
        self.assertKept(c)

    def test_mail_triggers(self):
        c = self.connect()
        for addr, want in MAIL:
            with self.subTest(addr=addr):
                self.assertEqual(c.cmd("MAIL FROM:<%s>" % addr),
                                 [want.format(a=addr)])
                c.cmd("RSET")
        # The null sender carries no trigger.
        self.assertEqual(c.cmd("MAIL FROM:<>"), [OK["mail"]])
        self.assertKept(c)

    def test_data_triggers(self):
        for addr, want in DATA:
            with self.subTest(addr=addr):
                c = self.connect()
                c.cmd("MAIL FROM:<a@example.net>")
                # The recipient is accepted; DATA gets the reply.
                self.assertEqual(c.cmd("RCPT TO:<%s>" % addr), [OK["rcpt"]])
                self.assertEqual(c.cmd("DATA"), [want])
                # Kept, and the next message is unaffected.
                c.cmd("RSET")
                c.cmd("MAIL FROM:<a@example.net>")
                c.cmd("RCPT TO:<b@example.com>")
                self.assertEqual(c.cmd("DATA"), [OK["data"]])
                self.assertRegex(c.cmd(BODY)[0], r"^250 2\.0\.0 Ok: queued")
                self.assertKept(c)

    def test_message_triggers(self):
        c = self.connect()
        for addr, want in MESSAGE:
            with self.subTest(addr=addr):
                c.cmd("MAIL FROM:<a@example.net>")
                self.assertEqual(c.cmd("RCPT TO:<%s>" % addr), [OK["rcpt"]])
                self.assertEqual(c.cmd("DATA"), [OK["data"]])
                self.assertEqual(c.cmd(BODY), [want])
        self.assertKept(c)

    def test_sender_data_and_message_triggers(self):
        c = self.connect()
        self.assertEqual(c.cmd("MAIL FROM:<message550_5.7.1@example.net>"),
                         [OK["mail"]])
        # The sender's trigger wins over the recipient's.
        self.assertEqual(c.cmd("RCPT TO:<message552@example.com>"),
                         [OK["rcpt"]])
        c.cmd("DATA")
        self.assertEqual(c.cmd(BODY),
                         ["550 5.7.1 Error: message content rejected"])
        self.assertEqual(c.cmd("MAIL FROM:<data554@example.net>"),
                         [OK["mail"]])
        c.cmd("RCPT TO:<b@example.com>")
        self.assertEqual(c.cmd("DATA"),
                         ["554 5.5.1 Error: no valid recipients"])
        self.assertKept(c)

    def test_first_accepted_recipient_with_a_trigger_wins(self):
        c = self.connect()
        c.cmd("MAIL FROM:<a@example.net>")
        # Refused recipients do not count.
        c.cmd("RCPT TO:<rcpt550@example.com>")
        c.cmd("RCPT TO:<b@example.com>")
        c.cmd("RCPT TO:<message451_4.3.0@example.com>")
        c.cmd("RCPT TO:<message552_5.3.4@example.com>")
        c.cmd("DATA")
        self.assertEqual(c.cmd(BODY),
                         ["451 4.3.0 Error: queue file write error"])
        self.assertKept(c)

    def test_421_closes(self):
        for stage, addr, want in CLOSING:
            with self.subTest(addr=addr):
                c = self.connect()
                if stage == "mail":
                    self.assertEqual(c.cmd("MAIL FROM:<%s>" % addr), [want])
                else:
                    c.cmd("MAIL FROM:<a@example.net>")
                    r = c.cmd("RCPT TO:<%s>" % addr)
                    if stage == "message":
                        self.assertEqual(r, [OK["rcpt"]])
                        c.cmd("DATA")
                        r = c.cmd(BODY)
                    self.assertEqual(r, [want])
                self.assertTrue(c.closed())
                c.close()

    def test_real_client(self):
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("a@example.net", ["rcpt550_5.1.1@example.com"],
                           b"x\r\n")
            self.assertEqual(cm.exception.recipients, {
                "rcpt550_5.1.1@example.com": (
                    550, b"5.1.1 <rcpt550_5.1.1@example.com>: Recipient "
                         b"address rejected: User unknown in local "
                         b"recipient table")})
            # One refused recipient of two: the message goes to the other.
            self.assertEqual(
                s.sendmail("a@example.net", ["rcpt452@example.com",
                                             "b@example.com"],
                           b"Subject: t\r\n\r\nx\r\n"),
                {"rcpt452@example.com": (452, b"4.5.3 Error: too many "
                                              b"recipients")})
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                s.sendmail("mail553_5.7.1@example.net", ["b@example.com"],
                           b"x\r\n")
            self.assertEqual(cm.exception.smtp_code, 553)
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("a@example.net", ["message552_5.3.4@example.com"],
                           b"Subject: t\r\n\r\nx\r\n")
            self.assertEqual(cm.exception.args,
                             (552, b"5.3.4 Error: message file too big"))
        self.emu.wait_log(r"trigger: reply at rcpt "
                          r"\(rcpt550_5\.1\.1@example\.com\)")


class NeutralText(Base):
    args = ["--set", "text=Rejected for the test"]

    def test_text_parameter(self):
        c = self.connect()
        c.cmd("MAIL FROM:<a@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<rcpt551_5.1.6@example.com>"),
                         ["551 5.1.6 Rejected for the test"])
        # Postfix's own texts are not affected.
        self.assertEqual(c.cmd("RCPT TO:<rcpt452@example.com>"),
                         ["452 4.5.3 Error: too many recipients"])
        self.assertKept(c)


class Domains(Base):
    args = ["--set", "domains=test.example,Other.Example"]

    def test_only_listed_domains_carry_triggers(self):
        c = self.connect()
        c.cmd("MAIL FROM:<a@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<rcpt452@example.com>"),
                         [OK["rcpt"]])
        self.assertEqual(c.cmd("RCPT TO:<rcpt452@TEST.example>"),
                         ["452 4.5.3 Error: too many recipients"])
        self.assertEqual(c.cmd("RCPT TO:<rcpt452@other.example>"),
                         ["452 4.5.3 Error: too many recipients"])
        self.assertKept(c)


class Always(Base):
    args = ["--set", "always=rcpt550_5.1.1"]

    def test_every_recipient_carries_the_word(self):
        c = self.connect()
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"), [OK["mail"]])
        self.assertEqual(c.cmd("RCPT TO:<bob@example.com>"), [
            "550 5.1.1 <bob@example.com>: Recipient address rejected: User "
            "unknown in local recipient table"])
        self.assertKept(c)


class Endings(Base):
    args = ["--set", "hang_timeout=0.5"]

    def drive(self, sender, rcpt, stage):
        """Run a session up to `stage`; returns the connection, with the
        command of that stage sent and its reply not read."""
        c = self.connect()
        if stage == "mail":
            c.send("MAIL FROM:<%s>\r\n" % sender)
            return c
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender), [OK["mail"]])
        if stage == "rcpt":
            c.send("RCPT TO:<%s>\r\n" % rcpt)
            return c
        self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt), [OK["rcpt"]])
        if stage == "data":
            c.send("DATA\r\n")
            return c
        self.assertEqual(c.cmd("DATA"), [OK["data"]])
        c.send(BODY + "\r\n")
        return c

    def test_eof_reset_hang_at_each_stage(self):
        for how in ("eof", "reset", "hang"):
            for stage in ("mail", "rcpt", "data", "message"):
                for who in ("sender", "rcpt"):
                    if (stage, who) in (("mail", "rcpt"), ("rcpt", "sender")):
                        continue
                    word = "%s-at-%s@example.com" % (how, stage)
                    sender = word if who == "sender" else "a@example.net"
                    rcpt = word if who == "rcpt" else "b@example.com"
                    with self.subTest(how=how, stage=stage, who=who):
                        c = self.drive(sender, rcpt, stage)
                        if how == "eof":
                            c.sock.settimeout(2)
                            self.assertEqual(c.sock.recv(100), b"")
                        elif how == "reset":
                            c.sock.settimeout(2)
                            with self.assertRaises(ConnectionResetError):
                                c.sock.recv(100)
                        else:
                            # Silence, then the server gives up.
                            c.sock.settimeout(0.25)
                            with self.assertRaises(socket.timeout):
                                c.sock.recv(100)
                            c.sock.settimeout(2)
                            self.assertEqual(c.sock.recv(100), b"")
                        c.close()


class Slow(Base):
    args = ["--set", "slow_delay=0.3"]

    def timed(self, c, cmd):
        t0 = time.monotonic()
        r = c.cmd(cmd)
        return r, time.monotonic() - t0

    def test_slow_recipient(self):
        c = self.connect()
        r, secs = self.timed(c, "MAIL FROM:<a@example.net>")
        self.assertLess(secs, 0.2)
        for cmd, want in [("RCPT TO:<slow@example.com>", [OK["rcpt"]]),
                          ("RCPT TO:<rcpt550@example.com>",
                           ["550 5.1.1 <rcpt550@example.com>: Recipient "
                            "address rejected: User unknown in local "
                            "recipient table"]),
                          ("DATA", [OK["data"]])]:
            r, secs = self.timed(c, cmd)
            self.assertEqual(r, want)
            self.assertGreaterEqual(secs, 0.28)
        r, secs = self.timed(c, BODY)
        self.assertRegex(r[0], r"^250 2\.0\.0 Ok: queued as ")
        self.assertGreaterEqual(secs, 0.28)
        # The next message is not slow.
        r, secs = self.timed(c, "MAIL FROM:<a@example.net>")
        self.assertEqual(r, [OK["mail"]])
        self.assertLess(secs, 0.2)
        self.assertKept(c)

    def test_slow_sender(self):
        c = self.connect()
        r, secs = self.timed(c, "MAIL FROM:<slow@example.net>")
        self.assertEqual(r, [OK["mail"]])
        self.assertGreaterEqual(secs, 0.28)
        r, secs = self.timed(c, "RCPT TO:<b@example.com>")
        self.assertGreaterEqual(secs, 0.28)
        c.close()


class Greylist(Base):
    args = ["--set", "greylist_delay=1"]

    def greylisted(self, a):
        return ("450 4.2.0 <%s>: Recipient address rejected: Greylisted, "
                "see http://postgrey.schweikert.ch/help/%s.html"
                % (a, a.split("@")[1]))

    def test_greylisted_recipient_passes_after_the_delay(self):
        first = time.time()
        c = self.connect()
        c.cmd("MAIL FROM:<a@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<greylist@example.com>"),
                         [self.greylisted("greylist@example.com")])
        self.assertEqual(c.cmd("RCPT TO:<b@example.com>"), [OK["rcpt"]])
        self.assertKept(c)
        c = self.connect()
        # Greylisting sender: every recipient of the transaction.
        c.cmd("MAIL FROM:<greylist@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<b@example.com>"),
                         [self.greylisted("b@example.com")])
        self.assertEqual(c.cmd("RCPT TO:<rcpt550@example.com>"),
                         [self.greylisted("rcpt550@example.com")])
        c.close()
        time.sleep(max(0, first + 1.2 - time.time()))
        c = self.connect()
        c.cmd("MAIL FROM:<a@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<greylist@example.com>"),
                         [OK["rcpt"]])
        c.cmd("RSET")
        c.cmd("MAIL FROM:<greylist@example.net>")
        self.assertEqual(c.cmd("RCPT TO:<b@example.com>"), [OK["rcpt"]])
        # Once through greylisting, the recipient's own trigger applies.
        self.assertEqual(c.cmd("RCPT TO:<rcpt550@example.com>"), [
            "550 5.1.1 <rcpt550@example.com>: Recipient address rejected: "
            "User unknown in local recipient table"])
        self.assertKept(c)
        self.emu.wait_log(r"greylisting: pass after 1 s")


if __name__ == "__main__":
    unittest.main()
