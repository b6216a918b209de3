"""cert-restriction: only TLS clients with a trusted certificate for
cert_domain are served (issue 4)."""

import os
import smtplib
import subprocess

from helpers import CERTS, HOST, Emulator, Raw, TestCase, client_ctx, run
from test_ip_allowlist import NEW, LEGACY


def attempt(emu, cert=None, tls=True):
    """Send one message; return the RCPT reply as "CODE text"."""
    with smtplib.SMTP(*emu.addr()) as s:
        s.ehlo("client.example")
        if tls:
            s.starttls(context=client_ctx(cert))
            s.ehlo("client.example")
        s.mail("a@example.com")
        code, msg = s.rcpt("u@tenant.example")
        return "%d %s" % (code, msg.decode())


class CertRestriction(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--scenario", "cert-restriction",
                           "--listen-tls", "127.0.0.1:0",
                           "--listen", "127.0.0.1:0").start()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def test_matching_certificate_is_served(self):
        self.assertEqual(attempt(self.emu, "client.pem"), "250 2.1.5 Ok")

    def test_refusals(self):
        for cert, tls in ((None, False), (None, True),
                          ("client-wrong.pem", True),
                          ("client-expired.pem", True),
                          ("client-untrusted.pem", True)):
            r = attempt(self.emu, cert, tls)
            self.assertTrue(NEW.match(r), (cert, tls, r))

    def test_implicit_tls_with_certificate(self):
        with smtplib.SMTP_SSL(*self.emu.addr("smtps"),
                              context=client_ctx("client.pem")) as s:
            s.ehlo("client.example")
            s.mail("a@example.com")
            self.assertEqual(s.rcpt("u@tenant.example"), (250, b"2.1.5 Ok"))

    def test_swaks_with_and_without_certificate(self):
        host, port = self.emu.addr()
        base = ["swaks", "--server", "%s:%d" % (host, port), "--tls",
                "--from", "a@example.com", "--to", "u@tenant.example"]
        p = run(base + ["--tls-cert", os.path.join(CERTS, "client.pem"),
                        "--tls-key", os.path.join(CERTS, "client.key")])
        self.assertEqual(p.returncode, 0, p.stdout)
        p = run(base)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"<~\* +550 5\.7\.51 TenantInboundAttribution")


class Styles(TestCase):
    def test_require_tls(self):
        with Emulator("--scenario", "cert-restriction",
                      "--set", "style=require-tls") as emu:
            c = Raw(emu.addr())
            c.reply()
            c.cmd("EHLO a")
            self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"),
                             ["530 5.7.0 Must issue a STARTTLS command first"])
            c.close()
            # With TLS but the wrong certificate: 5.7.51 at RCPT.
            self.assertTrue(NEW.match(attempt(emu, "client-wrong.pem")))

    def test_legacy_and_wildcard(self):
        with Emulator("--scenario", "cert-restriction",
                      "--set", "style=exchange-legacy",
                      "--set", "cert_domain=*.example.com") as emu:
            self.assertEqual(attempt(emu, "client.pem"), "250 2.1.5 Ok")
            self.assertTrue(LEGACY.match(attempt(emu, "client-wrong.pem")))
