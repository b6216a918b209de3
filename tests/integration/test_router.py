"""router: one server, the behaviour chosen by the recipient address --
built-in addresses (greylist@, full@, reject-5.7.51@, eof-at-data@, ...),
`routes` entries by local part, domain or address to any scenario with
parameters, a `default` for the rest and for the stages before RCPT, and
DATA / end of data following the first accepted recipient."""

import re
import smtplib
import time
import unittest

from helpers import BIN, HOST, Emulator, Raw, TestCase, run

GREETING = "220 %s ESMTP smtp-emulator" % HOST
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
DATA_GO = "354 End data with <CR><LF>.<CR><LF>"
QUEUED = r"^250 2\.0\.0 Ok: queued as \w{12}$"
BODY = "Subject: routed\r\n\r\nbody\r\n."
GSMTP = r" \S+ - gsmtp$"
STAMP = (r" \[BN3PEPF0000B077\.namprd04\.prod\.outlook\.com "
         r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [0-9A-F]{16}\]$")


def greylisted(a):
    return ("450 4.2.0 <%s>: Recipient address rejected: Greylisted, see "
            "http://postgrey.schweikert.ch/help/%s.html" % (a, a.split("@")[1]))


def unknown(a):
    return ("550 5.1.1 <%s>: Recipient address rejected: User unknown in "
            "local recipient table" % a)


FULL = ["452-4.2.2 The recipient's inbox is out of storage space. Please "
        "direct the",
        "452-4.2.2 recipient to",
        "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp"]
FULL_PERMANENT = [
    "552-5.2.2 The recipient's inbox is out of storage space and inactive. "
    "Please",
    "552-5.2.2 direct the recipient to",
    "552 5.2.2 https://support.google.com/mail/?p=OverQuotaPerm"]
EXO_551 = re.compile(
    r"^550 5\.7\.51 TenantInboundAttribution; Rejecting\. Recipient has a "
    r"partner connector with RestrictDomainsToIPAddresses or "
    r"RestrictDomainsToCertificate set\. Connector ID:"
    r"8f77e953-9856-4ffb-a0aa-867d433584f8\." + STAMP)


class Base(TestCase):
    args = []

    def setUp(self):
        self.emu = Emulator("--scenario", "router", "--max-errors", "1000",
                            *self.args).start()

    def tearDown(self):
        self.assertTrue(self.emu.alive())
        self.emu.stop()

    def connect(self):
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), GREETING)
        self.assertEqual(c.cmd("EHLO client.example")[-1], "250 CHUNKING")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"), [MAIL_OK])
        return c

    def assertGmail(self, got, want):
        self.assertEqual(got[:-1], want[:-1])
        self.assertRegex(got[-1], "^" + re.escape(want[-1]) + GSMTP)

    def assertKept(self, c):
        self.assertEqual(c.cmd("RSET"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()


class Builtins(Base):
    args = ["--set", "greylist_delay=1", "--set", "slow_delay=0.3"]

    def test_builtin_addresses_at_rcpt(self):
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<success@example.com>"), [RCPT_OK])
        self.assertEqual(c.cmd("RCPT TO:<greylist@example.com>"),
                         [greylisted("greylist@example.com")])
        r = c.cmd("RCPT TO:<reject-5.7.51@example.com>")
        self.assertEqual(len(r), 1, r)
        self.assertRegex(r[0], EXO_551)
        self.assertEqual(c.cmd("RCPT TO:<unknown@example.com>"),
                         [unknown("unknown@example.com")])
        self.assertEqual(c.cmd("RCPT TO:<Unknown@Example.ORG>"),
                         [unknown("Unknown@Example.ORG")])
        self.assertEqual(c.cmd("RCPT TO:<relay-denied@elsewhere.example>"),
                         ["554 5.7.1 <relay-denied@elsewhere.example>: Relay "
                          "access denied"])
        self.assertGmail(c.cmd("RCPT TO:<full@example.com>"), FULL)
        self.assertGmail(c.cmd("RCPT TO:<full-permanent@example.com>"),
                         FULL_PERMANENT)
        # Any other address: the default scenario (accept).
        self.assertEqual(c.cmd("RCPT TO:<bob@example.com>"), [RCPT_OK])
        # The accepted recipients get the message.
        self.assertEqual(c.cmd("DATA"), [DATA_GO])
        self.assertRegex(c.cmd(BODY)[0], QUEUED)
        self.assertKept(c)

    def test_greylist_passes_after_the_delay(self):
        first = time.time()
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<greylist@example.com>"),
                         [greylisted("greylist@example.com")])
        c.close()
        time.sleep(max(0, first + 1.2 - time.time()))
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<greylist@example.com>"), [RCPT_OK])
        self.assertKept(c)

    def test_spam_is_refused_after_the_data(self):
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<spam@example.com>"), [RCPT_OK])
        self.assertEqual(c.cmd("RCPT TO:<bob@example.com>"), [RCPT_OK])
        self.assertEqual(c.cmd("DATA"), [DATA_GO])
        self.assertEqual(c.cmd(BODY), ["554 5.7.1 Spam message rejected"])
        # The first accepted recipient decides: bob@ first, then spam@.
        c.cmd("MAIL FROM:<a@example.net>")
        c.cmd("RCPT TO:<bob@example.com>")
        c.cmd("RCPT TO:<spam@example.com>")
        c.cmd("DATA")
        self.assertRegex(c.cmd(BODY)[0], QUEUED)
        # A refused first recipient does not count.
        c.cmd("MAIL FROM:<a@example.net>")
        c.cmd("RCPT TO:<unknown@example.com>")
        c.cmd("RCPT TO:<spam@example.com>")
        c.cmd("DATA")
        self.assertEqual(c.cmd(BODY), ["554 5.7.1 Spam message rejected"])
        self.assertKept(c)

    def test_eof_builtins(self):
        c = self.connect()
        c.send("RCPT TO:<eof-at-rcpt@example.com>\r\n")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"")
        c.close()
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<eof-at-data@example.com>"),
                         [RCPT_OK])
        c.send("DATA\r\n")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"")
        c.close()
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<eof-at-message@example.com>"),
                         [RCPT_OK])
        self.assertEqual(c.cmd("DATA"), [DATA_GO])
        c.send(BODY + "\r\n")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"")
        c.close()
        # smtplib's view of eof-at-data.
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            with smtplib.SMTP(*self.emu.addr(), timeout=5) as s:
                s.sendmail("a@example.net", ["eof-at-data@example.com"],
                           b"x\r\n")

    def test_slow(self):
        c = self.connect()
        for cmd, want in [("RCPT TO:<slow@example.com>", [RCPT_OK]),
                          ("DATA", [DATA_GO])]:
            t0 = time.monotonic()
            self.assertEqual(c.cmd(cmd), want)
            self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        t0 = time.monotonic()
        self.assertRegex(c.cmd(BODY)[0], QUEUED)
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        self.assertKept(c)

    def test_smtplib(self):
        with smtplib.SMTP(*self.emu.addr(), timeout=10) as s:
            refused = s.sendmail("a@example.net",
                                 ["bob@example.com", "unknown@example.com",
                                  "full@example.com"],
                                 b"Subject: t\r\n\r\nx\r\n")
        self.assertEqual(set(refused), {"unknown@example.com",
                                        "full@example.com"})
        self.assertEqual(refused["unknown@example.com"][0], 550)
        self.assertEqual(refused["full@example.com"][0], 452)


class Routes(Base):
    args = ["--set",
            "routes=vip=accept,"
            "greylist=accept,"
            "@partner.example=ip-allowlist:style=postfix,"
            "boss@partner.example=accept,"
            "bulk=rate-limit:limit=0:style=gmail-receiving:count=message,"
            "flaky=chance:fail_first=1:reply=451 4.3.0 Error%3A try again,"
            "@trig.example=triggers,"
            "late=tarpit:rcpt=0.3"]

    def test_routes(self):
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<vip@example.com>"), [RCPT_OK])
        # A route overrides the built-in of the same local part.
        self.assertEqual(c.cmd("RCPT TO:<greylist@example.com>"), [RCPT_OK])
        # A domain route ...
        self.assertEqual(c.cmd("RCPT TO:<anyone@Partner.Example>"),
                         ["554 5.7.1 <unknown[127.0.0.1]>: Client host "
                          "rejected: Access denied"])
        # ... loses to an address route and to a local-part route.
        self.assertEqual(c.cmd("RCPT TO:<boss@partner.example>"), [RCPT_OK])
        self.assertEqual(c.cmd("RCPT TO:<vip@partner.example>"), [RCPT_OK])
        r = c.cmd("RCPT TO:<bulk@example.com>")
        self.assertEqual(r[0], "450-4.2.1 The user you are trying to contact "
                         "is receiving mail at a rate that")
        self.assertRegex(r[-1], r"^450 4\.2\.1  https://support\.google\.com/"
                         r"mail/answer/6592" + GSMTP)
        # Percent-decoded parameter values; each scenario keeps its state.
        self.assertEqual(c.cmd("RCPT TO:<flaky@example.com>"),
                         ["451 4.3.0 Error: try again"])
        self.assertEqual(c.cmd("RCPT TO:<flaky@example.com>"), [RCPT_OK])
        # triggers behind a domain route: the local part still picks.
        self.assertEqual(c.cmd("RCPT TO:<rcpt550@trig.example>"),
                         [unknown("rcpt550@trig.example")])
        self.assertEqual(c.cmd("RCPT TO:<b@trig.example>"), [RCPT_OK])
        t0 = time.monotonic()
        self.assertEqual(c.cmd("RCPT TO:<late@example.com>"), [RCPT_OK])
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        # Built-ins not overridden still work.
        self.assertEqual(c.cmd("RCPT TO:<unknown@example.com>"),
                         [unknown("unknown@example.com")])
        self.assertKept(c)

    def test_message_stage_of_a_routed_scenario(self):
        c = self.connect()
        self.assertEqual(c.cmd("RCPT TO:<message552_5.3.4@trig.example>"),
                         [RCPT_OK])
        self.assertEqual(c.cmd("DATA"), [DATA_GO])
        self.assertEqual(c.cmd(BODY),
                         ["552 5.3.4 Error: message file too big"])
        self.assertKept(c)


class Aliases(Base):
    args = ["--set", "routes=bob=full@,@quota.example=full-permanent@,"
            "carol=Relay-Denied@",
            "--set", "default=unknown@", "--set", "builtins=false"]

    def test_routes_to_builtin_addresses(self):
        c = self.connect()
        self.assertGmail(c.cmd("RCPT TO:<bob@example.org>"), FULL)
        self.assertGmail(c.cmd("RCPT TO:<x@quota.example>"), FULL_PERMANENT)
        self.assertEqual(c.cmd("RCPT TO:<carol@example.org>"),
                         ["554 5.7.1 <carol@example.org>: Relay access "
                          "denied"])
        # The default names a built-in too; builtins=false: full@ itself
        # is an ordinary address, served by the default.
        self.assertEqual(c.cmd("RCPT TO:<full@example.org>"),
                         [unknown("full@example.org")])
        self.assertKept(c)


class Default(Base):
    args = ["--set", "default=triggers", "--set", "builtins=false",
            "--set", "routes=@plain.example=accept"]

    def test_default_scenario_serves_other_recipients_and_mail(self):
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), GREETING)
        c.cmd("EHLO client.example")
        # MAIL goes to the default scenario: a sender trigger works.
        self.assertEqual(c.cmd("MAIL FROM:<mail553_5.7.1@example.net>"), [
            "553 5.7.1 <mail553_5.7.1@example.net>: Sender address "
            "rejected: not logged in"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"), [MAIL_OK])
        self.assertEqual(c.cmd("RCPT TO:<rcpt452@example.com>"),
                         ["452 4.5.3 Error: too many recipients"])
        self.assertEqual(c.cmd("RCPT TO:<rcpt452@plain.example>"), [RCPT_OK])
        # builtins=false: unknown@ is an ordinary address (for triggers).
        self.assertEqual(c.cmd("RCPT TO:<unknown@example.com>"), [RCPT_OK])
        self.assertKept(c)


class DefaultBeforeRcpt(Base):
    args = ["--set", "default=tarpit:greeting=0.3:other=0.3",
            "--set", "routes=x=accept"]

    def test_greeting_and_commands_follow_the_default(self):
        t0 = time.monotonic()
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), GREETING)
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        t0 = time.monotonic()
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        c.close()


class DefaultTls(Base):
    args = ["--set", "default=tls-faults:fault=unavailable"]

    def test_starttls_follows_the_default(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"),
                         ["454 4.7.0 TLS not available due to local problem"])
        self.assertKept(c)


class BadRoutes(TestCase):
    """Routes are checked when the parameters are set (the scenario's
    check): a bad entry stops the start with exit status 2 and a line
    naming it, and the API refuses it with 400, keeping the old scenario."""

    CASES = [
        ("x=no-such-scenario", r"router: route 'no-such-scenario': "
         r".*unknown scenario 'no-such-scenario'"),
        ("y=greylisting:colour=red", r"router: route "
         r"'greylisting:colour=red': .*unknown parameter 'colour'"),
        ("y=greylisting:delay=soon", r"parameter 'delay': expected a number"),
        ("bob=nothing@", r"router: route 'nothing@': no built-in address "
         r"nothing@"),
        ("just-a-name", r"router: bad route 'just-a-name'"),
        ("z=:delay=1", r"router: route ':delay=1' names no scenario"),
        ("z=router", r"routes to the router itself"),
    ]

    def test_bad_routes_stop_the_start(self):
        for routes, msg in self.CASES:
            with self.subTest(routes=routes):
                p = run([BIN, "--listen", "127.0.0.1:0", "--scenario",
                         "router", "--set", "routes=" + routes], timeout=10)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertRegex(p.stderr, r"^smtp-emulator: --scenario "
                                 r"router: .*" + msg)
                self.assertEqual(p.stdout, "")

    def test_bad_default_stops_the_start(self):
        p = run([BIN, "--listen", "127.0.0.1:0", "--scenario", "router",
                 "--set", "default=no-such-scenario"], timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("router: route 'no-such-scenario'", p.stderr)

    def test_the_api_refuses_bad_routes(self):
        with Emulator("--api", "127.0.0.1:0") as emu:
            st, body = emu.api("PUT", "/api/v1/scenario", {
                "name": "router", "params": {"routes": "x=no-such-scenario"}})
            self.assertEqual(st, 400)
            self.assertIn("unknown scenario 'no-such-scenario'",
                          body["error"])
            self.assertEqual(emu.api("GET", "/api/v1/scenario")[1]["name"],
                             "accept")
            st, _ = emu.api("PUT", "/api/v1/scenario", {
                "name": "router", "params": {"routes": "vip=greylisting"}})
            self.assertEqual(st, 200)


class Listing(TestCase):
    def test_new_scenarios_are_listed_and_described(self):
        p = run([BIN, "--list-scenarios"])
        self.assertEqual(p.returncode, 0, p.stderr)
        names = [l.split()[0] for l in p.stdout.splitlines() if l.strip()]
        for name in ("chance", "rate-limit", "router", "tarpit",
                     "tls-faults", "triggers"):
            self.assertIn(name, names)
            d = run([BIN, "--describe", name])
            self.assertEqual(d.returncode, 0, d.stderr)
            self.assertIn("Parameters", d.stdout)
        p = run([BIN, "--scenario", "router", "--set", "builtins=maybe",
                 "--listen", "127.0.0.1:0"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("builtins", p.stderr)


if __name__ == "__main__":
    unittest.main()
