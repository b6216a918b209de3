"""tls-faults: STARTTLS not offered (502 5.5.1, replies.md 2.7) or refused
(454 4.7.0, 2.4), a handshake_failure alert, a close in the middle of the
handshake, TLS 1.0-1.1 only, TLS 1.3 only, and expired, self-signed or
wrong-host server certificates -- over STARTTLS and on an implicit-TLS
listener, with Python's ssl and smtplib as the clients."""

import os
import re
import smtplib
import socket
import ssl
import unittest
import warnings

from helpers import CERTS, HOST, Emulator, Raw, TestCase, client_ctx

GREETING = "220 %s ESMTP smtp-emulator" % HOST
READY = "220 2.0.0 Ready to start TLS"
EHLO_NO_TLS = ["250-" + HOST, "250-PIPELINING", "250-SIZE 10240000",
               "250-AUTH PLAIN LOGIN XOAUTH2", "250-ENHANCEDSTATUSCODES",
               "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING"]
EHLO_TLS_OFFERED = EHLO_NO_TLS[:3] + ["250-STARTTLS"] + EHLO_NO_TLS[3:]


def cert_der(name):
    with open(os.path.join(CERTS, name)) as f:
        pem = f.read()
    first = pem[:pem.index("-----END CERTIFICATE-----") + 25]
    return ssl.PEM_cert_to_DER_cert(first)


def old_tls_ctx():
    """A client that still speaks TLS 1.0 and 1.1 (OpenSSL 3 needs the
    legacy security level for their ciphers)."""
    ctx = client_ctx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


class Base(TestCase):
    fault = None
    args = []

    def setUp(self):
        self.emu = Emulator("--listen", "127.0.0.1:0",
                            "--listen-tls", "127.0.0.1:0",
                            "--scenario", "tls-faults",
                            "--set", "fault=" + self.fault, *self.args).start()

    def tearDown(self):
        self.assertTrue(self.emu.alive())
        self.emu.stop()

    def starttls(self, ctx):
        """EHLO, STARTTLS and the handshake on the plain listener; returns
        the TLS socket (a Raw)."""
        c = Raw(self.emu.addr())
        self.assertEqual(c.reply1(), GREETING)
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"), [READY])
        self.addCleanup(c.close)
        c.starttls(ctx)
        return c

    def implicit(self, ctx):
        sock = socket.create_connection(self.emu.addr("smtps"), timeout=5)
        self.addCleanup(sock.close)
        t = ctx.wrap_socket(sock, server_hostname="localhost")
        self.addCleanup(t.close)
        return t

    def assertServes(self, ctx, version=None):
        """Both listeners complete the handshake with `ctx` and serve."""
        c = self.starttls(ctx)
        if version:
            self.assertIn(c.sock.version(), version)
        self.assertEqual(c.cmd("EHLO client.example")[-1], "250 CHUNKING")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"),
                         ["250 2.1.0 Ok"])
        t = self.implicit(ctx)
        if version:
            self.assertIn(t.version(), version)
        self.assertEqual(t.recv(100).decode(), GREETING + "\r\n")
        return c, t

    def assertHandshakeFails(self, ctx, exc, pattern=""):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"), [READY])
        with self.assertRaisesRegex(exc, pattern):
            c.starttls(ctx)
        c.close()
        with self.assertRaisesRegex(exc, pattern):
            self.implicit(ctx)


class NoStarttls(Base):
    fault = "no-starttls"

    def test_not_offered_and_refused(self):
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("EHLO client.example"), EHLO_NO_TLS)
        self.assertEqual(c.cmd("STARTTLS"),
                         ["502 5.5.1 Error: command not implemented"])
        # Kept, in plaintext.
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"),
                         ["250 2.1.0 Ok"])
        c.close()
        with smtplib.SMTP(*self.emu.addr(), timeout=5) as s:
            s.ehlo("client.example")
            self.assertFalse(s.has_extn("starttls"))
            with self.assertRaises(smtplib.SMTPNotSupportedError):
                s.starttls(context=client_ctx())
            # The message goes in the clear.
            self.assertEqual(s.sendmail("a@example.net", ["b@example.org"],
                                        b"Subject: t\r\n\r\nx\r\n"), {})

    def test_implicit_tls_is_unaffected(self):
        t = self.implicit(client_ctx())
        self.assertEqual(t.recv(100).decode(), GREETING + "\r\n")


class NoStarttlsExim(Base):
    fault = "no-starttls"
    args = ["--set", "style=exim", "--set", "size=5000000"]

    def test_exim_reply_and_size(self):
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("EHLO client.example")[2], "250-SIZE 5000000")
        self.assertEqual(c.cmd("STARTTLS"),
                         ["503 STARTTLS command used when not advertised"])
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()


class Unavailable(Base):
    fault = "unavailable"

    def test_454_and_kept(self):
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("EHLO client.example"), EHLO_TLS_OFFERED)
        self.assertEqual(c.cmd("STARTTLS"),
                         ["454 4.7.0 TLS not available due to local problem"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.net>"),
                         ["250 2.1.0 Ok"])
        c.close()
        with smtplib.SMTP(*self.emu.addr(), timeout=5) as s:
            s.ehlo("client.example")
            with self.assertRaises(smtplib.SMTPResponseException) as cm:
                s.starttls(context=client_ctx())
            self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error),
                             (454, b"4.7.0 TLS not available due to local "
                                   b"problem"))
            self.assertEqual(s.noop(), (250, b"2.0.0 Ok"))


class UnavailableExim(Base):
    fault = "unavailable"
    args = ["--set", "style=exim"]

    def test_exim_reply(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"), ["454 TLS currently unavailable"])
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()


class Alert(Base):
    fault = "alert"

    def test_handshake_failure_alert(self):
        self.assertHandshakeFails(client_ctx(), ssl.SSLError,
                                  r"ALERT_HANDSHAKE_FAILURE|handshake failure")
        # Even a client that verifies nothing is refused.
        self.assertHandshakeFails(client_ctx(verify=False), ssl.SSLError,
                                  r"ALERT_HANDSHAKE_FAILURE|handshake failure")
        self.emu.wait_log(r"event=tls-failed")


class CloseMidHandshake(Base):
    fault = "close-mid-handshake"

    def test_ready_then_closed_when_the_handshake_starts(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("STARTTLS"), [READY])
        # Nothing more until the client speaks ...
        self.assertFalse(c.closed(timeout=0.3))
        # ... then the ClientHello is met with a close.
        with self.assertRaises((ssl.SSLEOFError, ssl.SSLZeroReturnError,
                                ConnectionResetError)):
            c.starttls(client_ctx())
        c.close()
        with smtplib.SMTP(*self.emu.addr(), timeout=5) as s:
            s.ehlo("client.example")
            with self.assertRaises((ssl.SSLEOFError, ssl.SSLZeroReturnError,
                                    ConnectionResetError)):
                s.starttls(context=client_ctx())

    def test_implicit_tls_is_closed_before_the_handshake(self):
        with self.assertRaises((ssl.SSLEOFError, ssl.SSLZeroReturnError,
                                ConnectionResetError)):
            self.implicit(client_ctx())


class OldTls(Base):
    fault = "old-tls"

    def test_default_client_fails_old_client_succeeds(self):
        # Python's default context wants TLS 1.2 or later. (Usually the
        # server's protocol_version alert arrives; on a loaded machine the
        # close can overtake it, so any handshake error will do.)
        self.assertHandshakeFails(client_ctx(),
                                  (ssl.SSLError, ConnectionResetError))
        with smtplib.SMTP(*self.emu.addr(), timeout=5) as s:
            s.ehlo("client.example")
            with self.assertRaises(ssl.SSLError):
                s.starttls(context=client_ctx())
        # A client that allows TLS 1.0 gets TLS 1.0 or 1.1.
        c, t = self.assertServes(old_tls_ctx(), ("TLSv1", "TLSv1.1"))
        self.emu.wait_log(r"event=tls .*version=TLSv1(\.1)? ")


class Tls13Only(Base):
    fault = "tls13-only"

    def test_tls12_client_fails_default_client_gets_13(self):
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.assertHandshakeFails(ctx, (ssl.SSLError, ConnectionResetError))
        self.assertServes(client_ctx(), ("TLSv1.3",))
        with smtplib.SMTP(*self.emu.addr(), timeout=5) as s:
            s.ehlo("client.example")
            self.assertEqual(s.starttls(context=client_ctx()),
                             (220, READY[4:].encode()))
            self.assertEqual(s.sock.version(), "TLSv1.3")


class Certificates(TestCase):
    """expired, selfsigned, wronghost: verification fails with the test
    CA; a client that does not verify gets that very certificate."""

    CASES = [
        ("expired", "server-expired.pem", 10, r"certificate has expired"),
        ("selfsigned", "server-selfsigned.pem", 18,
         r"self[- ]signed certificate"),
        ("wronghost", "server-wronghost.pem", 62,
         r"Hostname mismatch|IP address mismatch"),
    ]

    def test_bad_certificates(self):
        for fault, pem, code, message in self.CASES:
            with self.subTest(fault=fault), \
                    Emulator("--listen", "127.0.0.1:0",
                             "--listen-tls", "127.0.0.1:0",
                             "--scenario", "tls-faults",
                             "--set", "fault=" + fault) as emu:
                # STARTTLS, verifying against the test CA.
                c = Raw(emu.addr())
                c.reply()
                c.cmd("EHLO client.example")
                self.assertEqual(c.cmd("STARTTLS"), [READY])
                with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                    c.starttls(client_ctx())
                self.assertEqual(cm.exception.verify_code, code)
                self.assertRegex(cm.exception.verify_message, message)
                c.close()
                # smtplib (checks the name 127.0.0.1).
                with smtplib.SMTP(*emu.addr(), timeout=5) as s:
                    s.ehlo("client.example")
                    with self.assertRaises(ssl.SSLCertVerificationError):
                        s.starttls(context=client_ctx())
                # Implicit TLS.
                sock = socket.create_connection(emu.addr("smtps"), timeout=5)
                with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                    client_ctx().wrap_socket(sock, server_hostname="localhost")
                self.assertEqual(cm.exception.verify_code, code)
                sock.close()
                # Without verification: the handshake completes, with the
                # scenario's certificate, and the session goes on.
                c = Raw(emu.addr())
                c.reply()
                c.cmd("EHLO client.example")
                c.cmd("STARTTLS")
                c.starttls(client_ctx(verify=False))
                self.assertEqual(c.sock.getpeercert(binary_form=True),
                                 cert_der(pem))
                self.assertEqual(c.cmd("EHLO client.example")[-1],
                                 "250 CHUNKING")
                c.close()
                sock = socket.create_connection(emu.addr("smtps"), timeout=5)
                t = client_ctx(verify=False).wrap_socket(
                    sock, server_hostname="localhost")
                self.assertEqual(t.getpeercert(binary_form=True),
                                 cert_der(pem))
                self.assertEqual(t.recv(100).decode(), GREETING + "\r\n")
                t.close()
                self.assertTrue(emu.alive())


if __name__ == "__main__":
    unittest.main()
