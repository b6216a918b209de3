"""ip-allowlist: Exchange Online's 5.7.51, the legacy wording, Postfix at
RCPT or in the banner, and an EOF before any greeting (issue 4)."""

import glob
import os
import re
import shutil
import smtplib
import socket
import tempfile
import time

from helpers import HOST, Emulator, Raw, TestCase

CONNECTOR = "8f77e953-9856-4ffb-a0aa-867d433584f8"
EXO_HOST = "BN3PEPF0000B077.namprd04.prod.outlook.com"
NEW = re.compile(
    r"^550 5\.7\.51 TenantInboundAttribution; Rejecting\. Recipient has a "
    r"partner connector with RestrictDomainsToIPAddresses or "
    r"RestrictDomainsToCertificate set\. Connector ID:(?P<conn>[0-9a-f-]+)\. "
    r"\[(?P<host>[A-Za-z0-9.]+) (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"
    r" (?P<id>[0-9A-F]{16})\]$")
LEGACY = re.compile(
    r"^550 5\.7\.51 TenantInboundAttribution; There is a partner connector "
    r"configured that matched the message's recipient domain\. The "
    r"connector had either the RestrictDomainsToIPAddresses or "
    r"RestrictDomainsToCertificate set \[(?P<host>[A-Za-z0-9.]+) "
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<id>[0-9A-F]{16})\]$")


class Exchange(TestCase):
    def setUp(self):
        self.spool = tempfile.mkdtemp()
        self.emu = Emulator("--scenario", "ip-allowlist",
                            "--spool", self.spool).start()

    def tearDown(self):
        self.emu.stop()
        shutil.rmtree(self.spool)

    def test_local_client_refused_at_rcpt_with_the_servicenow_line(self):
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
        self.assertEqual(c.cmd("EHLO instance.service-now.com")[-1],
                         "250 CHUNKING")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"), ["250 2.1.0 Ok"])
        t0 = time.time()
        c.send("RCPT TO:<u1@tenant.example>\r\n")
        r1 = c.reply1()
        m1 = NEW.match(r1)
        self.assertIsNotNone(m1, r1)
        self.assertEqual(m1.group("conn"), CONNECTOR)
        self.assertEqual(m1.group("host"), EXO_HOST)
        stamp = time.mktime(time.strptime(m1.group("ts")[:19],
                                          "%Y-%m-%dT%H:%M:%S"))
        self.assertLess(abs(stamp - time.mktime(time.gmtime(t0))), 5)
        # The same message ID for every recipient of one message ...
        m2 = NEW.match(c.cmd("RCPT TO:<u2@tenant.example>")[0])
        self.assertEqual(m1.group("id"), m2.group("id"))
        # ... a new one for the next message.
        self.assertEqual(c.cmd("DATA"),
                         ["554 5.5.1 Error: no valid recipients"])
        c.cmd("RSET")
        c.cmd("MAIL FROM:<a@example.com>")
        m3 = NEW.match(c.cmd("RCPT TO:<u1@tenant.example>")[0])
        self.assertNotEqual(m1.group("id"), m3.group("id"))
        c.close()
        self.assertEqual(glob.glob(os.path.join(self.spool, "new", "*")), [])

    def test_python_client_sees_recipients_refused(self):
        with smtplib.SMTP(*self.emu.addr()) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("a@example.com", ["u@tenant.example"], "x\r\n")
        code, msg = cm.exception.recipients["u@tenant.example"]
        self.assertEqual(code, 550)
        self.assertTrue(NEW.match("550 " + msg.decode()))

    def test_simulated_allowed_address_is_served(self):
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("XCLIENT ADDR=192.0.2.10"),
                         ["220 %s ESMTP smtp-emulator" % HOST])
        c.cmd("EHLO a.example")
        c.cmd("MAIL FROM:<a@example.com>")
        self.assertEqual(c.cmd("RCPT TO:<u@tenant.example>"), ["250 2.1.5 Ok"])
        c.cmd("DATA")
        c.send("Subject: hi\r\n\r\nok\r\n.\r\n")
        self.assertRegex(c.reply1(), r"^250 2\.0\.0 Ok: queued as ")
        c.close()
        self.assertEqual(len(glob.glob(os.path.join(self.spool, "new", "*"))),
                         1)


class Styles(TestCase):
    def test_params_connector_and_host(self):
        with Emulator("--scenario", "ip-allowlist", "--set",
                      "connector_id=11111111-2222-3333-4444-555555555555",
                      "--set", "exchange_host=AM0PR02MB1234.eurprd02.prod."
                      "outlook.com") as emu:
            with smtplib.SMTP(*emu.addr()) as s:
                s.ehlo("a")
                s.mail("a@example.com")
                code, msg = s.rcpt("u@tenant.example")
        m = NEW.match("%d %s" % (code, msg.decode()))
        self.assertEqual(m.group("conn"),
                         "11111111-2222-3333-4444-555555555555")
        self.assertEqual(m.group("host"), "AM0PR02MB1234.eurprd02.prod."
                         "outlook.com")

    def test_legacy(self):
        with Emulator("--scenario", "ip-allowlist",
                      "--set", "style=exchange-legacy") as emu:
            with smtplib.SMTP(*emu.addr()) as s:
                s.ehlo("a")
                s.mail("a@example.com")
                code, msg = s.rcpt("u@tenant.example")
        self.assertTrue(LEGACY.match("%d %s" % (code, msg.decode())),
                        msg)

    def test_allow_list_parameter(self):
        with Emulator("--scenario", "ip-allowlist",
                      "--set", "allow=10.0.0.0/8,127.0.0.1") as emu:
            with smtplib.SMTP(*emu.addr()) as s:
                self.assertEqual(s.sendmail("a@example.com",
                                            ["u@tenant.example"], "x\r\n"), {})

    def test_eof_before_greeting(self):
        with Emulator("--scenario", "ip-allowlist",
                      "--set", "style=eof") as emu:
            with self.assertRaises(smtplib.SMTPServerDisconnected) as cm:
                smtplib.SMTP(*emu.addr(), timeout=5)
            self.assertEqual(str(cm.exception),
                             "Connection unexpectedly closed")
            raw = socket.create_connection(emu.addr(), timeout=5)
            self.assertEqual(raw.recv(100), b"")
            raw.close()
            # A simulated allowed client is served (XCLIENT cannot be
            # sent before the greeting, so use the allow list instead).
        with Emulator("--scenario", "ip-allowlist", "--set", "style=eof",
                      "--set", "allow=127.0.0.0/8") as emu:
            with smtplib.SMTP(*emu.addr()) as s:
                self.assertEqual(s.noop()[0], 250)

    def test_postfix_style(self):
        with Emulator("--scenario", "ip-allowlist",
                      "--set", "style=postfix") as emu:
            c = Raw(emu.addr())
            self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
            c.cmd("EHLO a")
            c.cmd("MAIL FROM:<a@example.com>")
            self.assertEqual(c.cmd("RCPT TO:<u@example.org>"),
                             ["554 5.7.1 <unknown[127.0.0.1]>: Client host "
                              "rejected: Access denied"])
            c.cmd("RSET")
            c.cmd("XCLIENT ADDR=198.51.100.4 NAME=mx.example.net")
            c.cmd("EHLO a")
            c.cmd("MAIL FROM:<a@example.com>")
            self.assertEqual(c.cmd("RCPT TO:<u@example.org>"),
                             ["554 5.7.1 <mx.example.net[198.51.100.4]>: "
                              "Client host rejected: Access denied"])
            c.close()

    def test_banner_style(self):
        with Emulator("--scenario", "ip-allowlist",
                      "--set", "style=banner") as emu:
            c = Raw(emu.addr())
            self.assertEqual(c.reply1(), "554 5.7.1 <unknown[127.0.0.1]>: "
                             "Client host rejected: Access denied")
            for cmd in ("EHLO a.example", "MAIL FROM:<a@example.com>",
                        "NOOP"):
                self.assertEqual(c.cmd(cmd),
                                 ["503 5.7.0 Error: access denied for "
                                  "unknown[127.0.0.1]"])
            self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
            c.close()
            with self.assertRaises(smtplib.SMTPConnectError) as cm:
                smtplib.SMTP(*emu.addr())
            self.assertEqual(cm.exception.smtp_code, 554)
