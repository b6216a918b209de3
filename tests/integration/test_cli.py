"""Command line: --help, --version, exit codes, listening lines, SIGTERM,
log formats (issue 3)."""

import json
import os
import re
import signal
import socket
import subprocess
import time

from helpers import BIN, CERTS, HOST, ROOT, Emulator, Raw, TestCase, run


class Cli(TestCase):
    def test_readme_says_what_the_binary_says(self):
        # The scenario reference and the catalogue table are generated from
        # --describe and tests/data/catalogue.json: stale means a scenario
        # changed without its documentation.
        p = subprocess.run(
            ["/usr/bin/python3", os.path.join(ROOT, "tools",
                                              "readme_tables.py"),
             "--check"], capture_output=True, text=True,
            env=dict(os.environ, EMU_BIN=BIN))
        self.assertEqual(p.returncode, 0, p.stderr)
        # Every option of --help is documented in README.md.
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        flags = set(re.findall(r"^\s+(--[a-z][a-z-]+)", run(
            [BIN, "--help"]).stdout, re.M))
        self.assertGreater(len(flags), 30)
        missing = sorted(f for f in flags if f not in readme)
        self.assertEqual(missing, [])

    def test_help_and_version(self):
        p = run([BIN, "--help"])
        self.assertEqual(p.returncode, 0)
        for flag in ("--listen", "--listen-tls", "--hostname", "--banner",
                     "--tls-cert", "--tls-key", "--tls-ca",
                     "--max-message-size", "--max-recipients",
                     "--max-connections", "--idle-timeout",
                     "--shutdown-grace", "--log-format", "--log-level",
                     "--spool", "--max-messages", "--max-store-bytes",
                     "--xclient-from", "--proxy-protocol"):
            self.assertIn(flag, p.stdout)
        p = run([BIN, "--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^smtp-emulator \d+\.\d+\.\d+\n$")

    def test_usage_errors_exit_2_naming_the_flag(self):
        cases = [
            (["--frobnicate"], "--frobnicate"),
            (["--listen", "nowhere"], "--listen"),
            (["--listen", "::1:25"], "--listen"),
            (["--max-recipients", "lots"], "--max-recipients"),
            (["--log-format", "xml"], "--log-format"),
            (["--tls-cert", os.path.join(CERTS, "server.pem")], "--tls-key"),
            (["--tls-cert", "/nonexistent.pem", "--tls-key",
              "/nonexistent.key"], "/nonexistent.pem"),
            (["--tls-cert", os.path.join(CERTS, "server.pem"), "--tls-key",
              os.path.join(CERTS, "client.key")], "does not match"),
            (["--tls-ca", "/nonexistent-ca.pem"], "/nonexistent-ca.pem"),
        ]
        for args, needle in cases:
            p = run([BIN, "--listen", "127.0.0.1:0"] + args
                    if args[0] != "--listen" else [BIN] + args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(needle, p.stderr, args)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1,
                             p.stderr)

    def test_port_in_use_exits_1(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = run([BIN, "--listen", "127.0.0.1:%d" % port])
        s.close()
        self.assertEqual(p.returncode, 1)
        self.assertIn("127.0.0.1:%d" % port, p.stderr)
        self.assertIn("in use", p.stderr)

    def test_listening_lines_ipv6_and_several_listeners(self):
        with Emulator("--listen", "127.0.0.1:0", "--listen", "[::1]:0",
                      "--listen-tls", "127.0.0.1:0") as emu:
            kinds = [(k, h) for k, h, _ in emu.listeners]
            self.assertEqual(kinds, [("smtp", "127.0.0.1"), ("smtp", "::1"),
                                     ("smtps", "127.0.0.1")])
            c = Raw(("::1", emu.port("smtp", 1)))
            self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
            c.close()

    def test_sigterm_lets_the_reply_in_flight_finish(self):
        emu = Emulator("--shutdown-grace", "2").start()
        c = Raw(emu.addr())
        c.reply()
        c.cmd("HELO a")
        t0 = time.time()
        emu.proc.send_signal(signal.SIGTERM)
        # The idle session is closed, the process exits 0 promptly.
        self.assertTrue(c.closed())
        rc = emu.proc.wait(timeout=5)
        self.assertEqual(rc, 0)
        self.assertLess(time.time() - t0, 2.0)
        emu.proc = None
        c.close()

    def test_sigint_exit_0(self):
        emu = Emulator().start()
        emu.proc.send_signal(signal.SIGINT)
        self.assertEqual(emu.proc.wait(timeout=5), 0)
        emu.proc = None

    def test_json_log_lines(self):
        with Emulator("--log-format", "json") as emu:
            c = Raw(emu.addr())
            c.reply()
            c.cmd("EHLO a.example")
            c.cmd("QUIT")
            c.close()
            emu.wait_log(r'"event":"disconnect"')
            lines = [json.loads(l) for l in emu.log().splitlines() if l]
            cmds = [l for l in lines if l["event"] == "cmd"]
            self.assertEqual([l["line"] for l in cmds], ["EHLO a.example",
                                                         "QUIT"])
            self.assertTrue(all(l["client"] == "127.0.0.1" and
                                l["session"] == "1" for l in cmds))
            replies = [l["line"] for l in lines if l["event"] == "reply"]
            self.assertEqual(replies[0], "220 %s ESMTP smtp-emulator" % HOST)
            self.assertEqual(replies[-1], "221 2.0.0 Bye")

    def test_text_log_has_one_line_per_command_and_reply(self):
        with Emulator() as emu:
            c = Raw(emu.addr())
            c.reply()
            c.cmd("NOOP")
            c.cmd("QUIT")
            c.close()
            emu.wait_log(r"event=disconnect")
            log = emu.log()
            self.assertRegex(log, r"info event=cmd session=1 "
                             r"client=127\.0\.0\.1 line=NOOP\n")
            self.assertRegex(log, r"info event=reply session=1 "
                             r"client=127\.0\.0\.1 line=\"250 2\.0\.0 Ok\"\n")
