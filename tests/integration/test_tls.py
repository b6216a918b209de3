"""STARTTLS and implicit TLS with real clients: smtplib, swaks, curl and
openssl s_client, with and without client certificates (issue 3)."""

import os
import smtplib
import ssl

from helpers import CERTS, HOST, Emulator, Raw, TestCase, client_ctx, run


class Tls(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--listen", "127.0.0.1:0",
                           "--listen-tls", "127.0.0.1:0").start()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def tearDown(self):
        self.assertTrue(self.emu.alive())

    def test_smtplib_starttls(self):
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("starttls"))
            code, msg = s.starttls(context=client_ctx())
            self.assertEqual((code, msg), (220, b"2.0.0 Ready to start TLS"))
            s.ehlo("client.example")
            # After TLS, STARTTLS is no longer offered.
            self.assertFalse(s.has_extn("starttls"))
            self.assertEqual(s.sendmail("a@example.com", ["b@example.org"],
                                        "Subject: t\r\n\r\nx\r\n"), {})

    def test_state_is_reset_after_starttls(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a.example")
        self.assertEqual(c.cmd("STARTTLS"), ["220 2.0.0 Ready to start TLS"])
        c.starttls(client_ctx())
        # RFC 3207 4.2: the client must EHLO again.
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"),
                         ["503 5.5.1 Error: send HELO/EHLO first"])
        c.cmd("EHLO a.example")
        self.assertEqual(c.cmd("STARTTLS"),
                         ["554 5.5.1 Error: TLS already active"])
        c.close()

    def test_starttls_syntax(self):
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("STARTTLS now"),
                         ["501 5.5.4 Syntax: STARTTLS"])
        c.close()

    def test_plaintext_injection_is_discarded(self):
        # CVE-2011-0411: commands pipelined after STARTTLS in the clear
        # must not be executed inside the TLS session.
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a.example")
        c.send("STARTTLS\r\nRSET\r\n")
        self.assertEqual(c.reply1(), "220 2.0.0 Ready to start TLS")
        c.starttls(client_ctx())
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
        c.close()
        self.emu.wait_log(r"event=starttls-injection .*bytes=6")

    def test_implicit_tls_smtp_ssl(self):
        host, port = self.emu.addr("smtps")
        with smtplib.SMTP_SSL(host, port, context=client_ctx()) as s:
            code, _ = s.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertFalse(s.has_extn("starttls"))
            self.assertEqual(s.sendmail("a@example.com", ["b@example.org"],
                                        "Subject: t\r\n\r\nx\r\n"), {})

    def test_tls_handshake_garbage_does_not_hurt(self):
        c = Raw(self.emu.addr("smtps"))
        c.send(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100)
        self.assertTrue(c.closed())
        c.close()
        with smtplib.SMTP_SSL(*self.emu.addr("smtps"),
                              context=client_ctx()) as s:
            self.assertEqual(s.noop()[0], 250)

    def test_swaks_starttls_with_client_certificate(self):
        host, port = self.emu.addr()
        p = run(["swaks", "--server", "%s:%d" % (host, port), "--tls",
                 "--tls-cert", os.path.join(CERTS, "client.pem"),
                 "--tls-key", os.path.join(CERTS, "client.key"),
                 "--from", "a@example.com", "--to", "b@example.org",
                 "--helo", "client.example"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("<~  250 2.0.0 Ok: queued as", p.stdout)
        self.emu.wait_log(r"event=tls .*client_cert=\"CN=mail.example.com\" "
                          r"verified=yes")

    def test_openssl_s_client_starttls(self):
        host, port = self.emu.addr()
        for cert, verified in ((None, None), ("client.pem", "yes"),
                               ("client-untrusted.pem", "no")):
            args = ["openssl", "s_client", "-starttls", "smtp", "-connect",
                    "%s:%d" % (host, port), "-CAfile",
                    os.path.join(CERTS, "ca.pem"), "-verify_return_error",
                    "-quiet", "-ign_eof"]
            if cert:
                args += ["-cert", os.path.join(CERTS, cert), "-key",
                         os.path.join(CERTS, cert.replace(".pem", ".key"))]
            p = run(args, input="EHLO openssl.example\r\nQUIT\r\n")
            self.assertIn("250-%s" % HOST, p.stdout, p.stderr)
            self.assertIn("221 2.0.0 Bye", p.stdout)
            if cert:
                self.emu.wait_log(r"client_cert=\"CN=mail.example.com\" "
                                  r"verified=%s" % verified)

    def test_openssl_s_client_implicit_tls_expired_client_cert(self):
        host, port = self.emu.addr("smtps")
        p = run(["openssl", "s_client", "-connect", "%s:%d" % (host, port),
                 "-quiet", "-ign_eof",
                 "-cert", os.path.join(CERTS, "client-expired.pem"),
                 "-key", os.path.join(CERTS, "client-expired.key")],
                input="QUIT\r\n")
        self.assertIn("220 %s ESMTP smtp-emulator" % HOST, p.stdout)
        self.assertIn("221 2.0.0 Bye", p.stdout)
        self.emu.wait_log(r"client_cert=\"CN=mail.example.com\" "
                          r"verified=no")

    def test_curl_smtp_and_smtps(self):
        host, port = self.emu.addr()
        msg = "Subject: curl\r\n\r\nhello from curl\r\n"
        p = run(["curl", "-sS", "--url", "smtp://%s:%d" % (host, port),
                 "--mail-from", "a@example.com", "--mail-rcpt",
                 "b@example.org", "--upload-file", "-"], input=msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run(["curl", "-sS", "--ssl-reqd", "--cacert",
                 os.path.join(CERTS, "ca.pem"),
                 "--url", "smtp://localhost:%d" % port,
                 "--mail-from", "a@example.com", "--mail-rcpt",
                 "b@example.org", "--upload-file", "-"], input=msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        sport = self.emu.port("smtps")
        p = run(["curl", "-sS", "--cacert", os.path.join(CERTS, "ca.pem"),
                 "--url", "smtps://localhost:%d" % sport,
                 "--mail-from", "a@example.com", "--mail-rcpt",
                 "b@example.org", "--upload-file", "-"], input=msg)
        self.assertEqual(p.returncode, 0, p.stderr)


class NoTls(TestCase):
    def test_no_tls_means_starttls_not_implemented(self):
        with Emulator("--no-tls") as emu:
            c = Raw(emu.addr())
            c.reply()
            ehlo = c.cmd("EHLO a.example")
            self.assertNotIn("250-STARTTLS", ehlo)
            self.assertEqual(c.cmd("STARTTLS"),
                             ["502 5.5.1 Error: command not implemented"])
            c.close()
