"""Source address simulation: XCLIENT and the PROXY protocol (issue 3)."""

import socket
import struct

from helpers import HOST, Emulator, Raw, TestCase


class Xclient(TestCase):
    def test_xclient_changes_client_address_and_greets_again(self):
        with Emulator() as emu:
            c = Raw(emu.addr())
            c.reply()
            c.cmd("EHLO a.example")
            # XCLIENT is not advertised: EHLO stays like a real server's.
            self.assertEqual(c.cmd("XCLIENT ADDR=203.0.113.7 NAME=mail.example"
                                   " PORT=4242"),
                             ["220 %s ESMTP smtp-emulator" % HOST])
            self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"),
                             ["503 5.5.1 Error: send HELO/EHLO first"])
            c.cmd("EHLO a.example")
            c.cmd("NOOP")
            c.close()
            emu.wait_log(r"event=xclient session=1 client=203\.0\.113\.7 "
                         r"addr=203\.0\.113\.7 name=mail\.example")
            emu.wait_log(r"event=cmd session=1 client=203\.0\.113\.7 "
                         r"line=NOOP")

    def test_xclient_errors(self):
        with Emulator() as emu:
            c = Raw(emu.addr())
            c.reply()
            self.assertEqual(c.cmd("XCLIENT"),
                             ["501 5.5.4 Syntax: XCLIENT attribute=value..."])
            self.assertEqual(c.cmd("XCLIENT ADDR=999.1.1.1"),
                             ["501 5.5.4 Bad ADDR syntax: 999.1.1.1"])
            self.assertEqual(c.cmd("XCLIENT FOO=bar"),
                             ["501 5.5.4 Bad XCLIENT attribute name: FOO"])
            self.assertEqual(c.cmd("XCLIENT ADDR"),
                             ["501 5.5.4 Error: attribute=value expected"])
            c.cmd("HELO a")
            c.cmd("MAIL FROM:<a@example.com>")
            self.assertEqual(c.cmd("XCLIENT ADDR=192.0.2.1"),
                             ["503 5.5.1 Error: MAIL transaction in progress"])
            c.close()

    def test_xclient_ipv6(self):
        with Emulator() as emu:
            c = Raw(emu.addr())
            c.reply()
            self.assertEqual(c.cmd("XCLIENT ADDR=IPV6:2001:db8::7")[0][:3],
                             "220")
            c.cmd("QUIT")
            emu.wait_log(r"client=2001:db8::7")

    def test_xclient_refused_from_unlisted_client(self):
        with Emulator("--xclient-from", "10.0.0.0/8") as emu:
            c = Raw(emu.addr())
            c.reply()
            self.assertEqual(c.cmd("XCLIENT ADDR=203.0.113.7"),
                             ["550 5.7.0 Error: insufficient authorization"])
            c.close()


class Proxy(TestCase):
    def test_proxy_v1(self):
        with Emulator("--proxy-protocol", "127.0.0.1:0") as emu:
            c = Raw(emu.addr())
            c.send("PROXY TCP4 198.51.100.9 192.0.2.1 51000 25\r\n")
            self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
            c.cmd("NOOP")
            c.close()
            emu.wait_log(r"event=proxy session=1 client=198\.51\.100\.9 "
                         r"version=1")

    def test_proxy_v2_ipv6(self):
        with Emulator("--proxy-protocol", "127.0.0.1:0") as emu:
            c = Raw(emu.addr())
            src = socket.inet_pton(socket.AF_INET6, "2001:db8::9")
            dst = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
            body = src + dst + struct.pack("!HH", 40000, 25)
            hdr = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x21]) +
                   struct.pack("!H", len(body)) + body)
            c.send(hdr)
            self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
            c.close()
            emu.wait_log(r"event=proxy session=1 client=2001:db8::9 "
                         r"version=2")

    def test_proxy_header_missing_drops_connection(self):
        with Emulator("--proxy-protocol", "127.0.0.1:0") as emu:
            c = Raw(emu.addr())
            c.send("EHLO a.example\r\n")
            self.assertTrue(c.closed())
            c.close()
            emu.wait_log(r"event=proxy-invalid")
