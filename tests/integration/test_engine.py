"""The Lua scenario engine: decisions, hook arguments, parameters, the
sandbox, and the error paths (issue 4)."""

import os
import smtplib
import socket
import threading
import time

from helpers import BIN, HOST, ROOT, Emulator, Raw, TestCase, run

SCEN = os.path.join(ROOT, "tests", "scenarios")
ENGINE = os.path.join(SCEN, "engine.lua")
INTERNAL = "451 4.3.0 Error: internal scenario error"


def session(emu, rcpt, helo="client.example", mail="a@example.com"):
    c = Raw(emu.addr())
    c.reply()
    c.cmd("EHLO " + helo)
    c.cmd("MAIL FROM:<%s>" % mail)
    return c, c.cmd("RCPT TO:<%s@example.org>" % rcpt)


class Engine(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--scenario", ENGINE,
                           "--lua-instructions", "2000000",
                           "--lua-memory", "16M").start()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def tearDown(self):
        self.assertTrue(self.emu.alive())
        # After every case a normal session still works.
        c, r = session(self.emu, "ok")
        self.assertEqual(r, ["250 2.1.5 Ok"])
        c.close()

    def test_multi_line_reply(self):
        c, r = session(self.emu, "multi")
        self.assertEqual(r, ["550-5.7.26 first line", "550-5.7.26 second line",
                             "550 5.7.26  last line"])
        c.close()

    def test_string_reply(self):
        c, r = session(self.emu, "raw")
        self.assertEqual(r, ["553 5.1.2 raw string reply"])
        c.close()

    def test_421_closes(self):
        c, r = session(self.emu, "close")
        self.assertEqual(r, ["421 4.7.0 closing now"])
        self.assertTrue(c.closed())

    def test_reply_then_close(self):
        c, r = session(self.emu, "replyclose")
        self.assertEqual(r, ["550 5.7.1 no"])
        self.assertTrue(c.closed())

    def test_drop_closes_without_reply(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a")
        c.cmd("MAIL FROM:<a@example.com>")
        c.send("RCPT TO:<drop@example.org>\r\n")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"")

    def test_reset(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a")
        c.cmd("MAIL FROM:<a@example.com>")
        c.send("RCPT TO:<reset@example.org>\r\n")
        with self.assertRaises(ConnectionResetError):
            c.sock.settimeout(5)
            while c.sock.recv(100):
                pass
        c.close()

    def test_hang_keeps_socket_then_closes(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a")
        c.cmd("MAIL FROM:<a@example.com>")
        c.send("RCPT TO:<hang@example.org>\r\n")
        t0 = time.time()
        self.assertFalse(c.closed(timeout=1))
        c.send("NOOP\r\n")  # ignored while hung
        self.assertTrue(c.closed(timeout=5))
        self.assertEqual(c.buf, b"")
        self.assertGreater(time.time() - t0, 1.5)

    def test_partial_reply(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a")
        c.cmd("MAIL FROM:<a@example.com>")
        c.send("RCPT TO:<partial@example.org>\r\n")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"250-partial")

    def test_delay_does_not_block_other_sessions(self):
        slow = Raw(self.emu.addr())
        slow.reply()
        slow.cmd("EHLO a")
        t0 = time.time()
        slow.send("MAIL FROM:<delay@example.com>\r\n")
        fast, r = session(self.emu, "ok")
        self.assertLess(time.time() - t0, 0.8)
        self.assertEqual(r, ["250 2.1.5 Ok"])
        self.assertEqual(slow.reply1(), "250 2.1.0 Ok")
        self.assertGreater(time.time() - t0, 0.9)
        fast.close()
        slow.close()

    def test_delayed_reject(self):
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("EHLO a")
        t0 = time.time()
        self.assertEqual(c.cmd("MAIL FROM:<slowreject@example.com>"),
                         ["451 4.3.0 later"])
        self.assertGreater(time.time() - t0, 0.4)
        c.close()

    def test_runtime_error_gives_451_and_logs_file_and_line(self):
        c, r = session(self.emu, "error")
        self.assertEqual(r, [INTERNAL])
        # The session goes on: the next hook gets a fresh coroutine.
        self.assertEqual(c.cmd("RCPT TO:<ok@example.org>"), ["250 2.1.5 Ok"])
        c.close()
        self.emu.wait_log(r"event=script-error .*hook=on_rcpt .*"
                          r"tests/scenarios/engine\.lua:\d+: boom in on_rcpt")

    def test_endless_loop_is_stopped(self):
        t0 = time.time()
        c, r = session(self.emu, "loop")
        self.assertEqual(r, [INTERNAL])
        self.assertLess(time.time() - t0, 3)
        c.close()
        self.emu.wait_log(r"scenario ran too long")

    def test_pcall_cannot_hide_the_budget(self):
        c, r = session(self.emu, "pcallloop")
        self.assertEqual(r, [INTERNAL])
        c.close()

    def test_memory_bomb(self):
        c, r = session(self.emu, "bomb")
        self.assertEqual(r, [INTERNAL])
        c.close()
        self.emu.wait_log(r"not enough memory")

    def test_bad_return_value(self):
        c, r = session(self.emu, "badreturn")
        self.assertEqual(r, [INTERNAL])
        c.close()
        self.emu.wait_log(r"on_rcpt returned a number")

    def test_bad_reply_code(self):
        c, r = session(self.emu, "badreply")
        self.assertEqual(r, [INTERNAL])
        c.close()

    def test_global_assignment_is_refused(self):
        c, r = session(self.emu, "global")
        self.assertEqual(r, [INTERNAL])
        c.close()
        self.emu.wait_log(r"assignment to global 'leaked'")

    def test_session_data_and_hook_arguments(self):
        c, r = session(self.emu, "data", helo="h.example")
        self.assertEqual(r, ["250 2.1.5 seen 127.0.0.1 h.example"])
        c.cmd("RCPT TO:<x@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<view@example.org>"),
                         ["250 2.1.5 127.0.0.1 a@example.com h.example 2"])
        c.close()

    def test_params_defaults(self):
        c, r = session(self.emu, "params")
        self.assertEqual(r, ["250 2.1.5 count=1 names=a+b"])
        c.close()

    def test_state_is_shared_across_sessions(self):
        c1, r1 = session(self.emu, "state")
        c2, r2 = session(self.emu, "state")
        n1 = int(r1[0].split("=")[1])
        self.assertEqual(r2, ["250 2.1.5 hits=%d" % (n1 + 1)])
        c1.close()
        c2.close()

    def test_ehlo_keywords_and_refusal(self):
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("EHLO custom.example"),
                         ["250-" + HOST, "250-PIPELINING", "250-SIZE 1000",
                          "250 8BITMIME"])
        c.close()
        # A refused EHLO does not count as one (like Postfix).
        c = Raw(self.emu.addr())
        c.reply()
        self.assertEqual(c.cmd("EHLO refuse.example"),
                         ["550 5.7.1 <refuse.example>: Helo command rejected: "
                          "Access denied"])
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>"),
                         ["503 5.5.1 Error: send HELO/EHLO first"])
        c.close()

    def test_message_stage_sees_the_message(self):
        with smtplib.SMTP(*self.emu.addr()) as s:
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("a@example.com", ["ok@example.org"],
                           "Subject: refuse\r\n\r\nbody\r\n")
            self.assertEqual(cm.exception.smtp_code, 554)
            self.assertEqual(cm.exception.smtp_error,
                             b"5.7.1 refused: 25 bytes, to ok@example.org")

    def test_disconnect_hook_sees_outcome(self):
        c, r = session(self.emu, "multi")
        c.cmd("QUIT")
        c.close()
        self.emu.wait_log(r"event=scenario-log .*msg=\"outcome=rejected "
                          r"code=550 stage=rcpt\"")


class EngineParams(TestCase):
    def test_set_parameters_and_banner(self):
        with Emulator("--scenario", ENGINE, "--set", "count=7",
                      "--set", "names=x,y,z",
                      "--set", "greeting=mail.example.org ESMTP Postfix") as emu:
            c = Raw(emu.addr())
            self.assertEqual(c.reply1(), "220 mail.example.org ESMTP Postfix")
            c.cmd("EHLO a")
            c.cmd("MAIL FROM:<a@example.com>")
            self.assertEqual(c.cmd("RCPT TO:<params@example.org>"),
                             ["250 2.1.5 count=7 names=x+y+z"])
            c.close()

    def test_bad_parameters_exit_2_naming_them(self):
        for sets, needle in ((["count=many"], "parameter 'count': expected a "
                                              "whole number, got 'many'"),
                             (["nosuch=1"], "unknown parameter 'nosuch'")):
            args = [BIN, "--listen", "127.0.0.1:0", "--scenario", ENGINE]
            for s in sets:
                args += ["--set", s]
            p = run(args)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(needle, p.stderr)
        p = run([BIN, "--listen", "127.0.0.1:0", "--scenario", "greylisting",
                 "--set", "style=fancy"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("parameter 'style': 'fancy' is not one of: postgrey, "
                      "milter-greylist", p.stderr)
        p = run([BIN, "--listen", "127.0.0.1:0", "--scenario", "nosuch"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown scenario 'nosuch'", p.stderr)

    def test_on_command_line_delay_alone(self):
        with Emulator("--scenario",
                      os.path.join(SCEN, "command-slowly.lua")) as emu:
            c = Raw(emu.addr())
            c.reply()
            t0 = time.monotonic()
            r = c.cmd("EHLO client.example")
            took = time.monotonic() - t0
            self.assertEqual(r[0], "250-" + HOST)
            self.assertEqual(r[-1], "250 CHUNKING")
            # One line delay before each line of the server's own reply.
            self.assertGreaterEqual(took, 0.1 * len(r) - 0.05)
            t0 = time.monotonic()
            self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
            self.assertLess(time.monotonic() - t0, 0.1)
            c.close()

    def test_check_refuses_parameter_combinations(self):
        path = os.path.join(SCEN, "checked.lua")
        base = [BIN, "--listen", "127.0.0.1:0", "--scenario", path]
        p = run(base + ["--set", "low=5", "--set", "high=2"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("checked: low (5) is above high (2)", p.stderr)
        # A check() that never returns is stopped by the budget, with its
        # file and line.
        p = run(base + ["--set", "spin=true", "--lua-instructions", "100000"])
        self.assertEqual(p.returncode, 2)
        self.assertRegex(p.stderr, r"checked\.lua:13: scenario ran too long")
        # Through the API: 400 naming the problem, the old selection stays.
        with Emulator("--scenario", path, "--api", "127.0.0.1:0") as emu:
            st, body = emu.api("PUT", "/api/v1/scenario", {
                "name": path, "params": {"low": 9, "high": 3}})
            self.assertEqual(st, 400)
            self.assertEqual(body["error"], "checked: low (9) is above "
                                            "high (3)")
            c, r = session(emu, "x")
            self.assertEqual(r, ["250 2.1.5 Ok 1-10"])
            c.close()

    def test_broken_scenarios_exit_2_with_file_and_line(self):
        cases = (("broken-syntax.lua", r"broken-syntax\.lua:4: "),
                 ("global-top.lua", r"global-top\.lua:2: .*assignment to "
                                    r"global 'counter'"),
                 ("loop-top.lua", r"loop-top\.lua:2: scenario ran too long"))
        for name, pattern in cases:
            path = os.path.join(SCEN, name)
            p = run([BIN, "--listen", "127.0.0.1:0", "--scenario", path])
            self.assertEqual(p.returncode, 2, (name, p.stderr))
            self.assertRegex(p.stderr, pattern)
            p = run([BIN, "--check-scenario", path])
            self.assertEqual(p.returncode, 2)
            self.assertRegex(p.stderr, pattern)

    def test_list_describe_check(self):
        p = run([BIN, "--list-scenarios"])
        self.assertEqual(p.returncode, 0, p.stderr)
        names = [l.split()[0] for l in p.stdout.splitlines()]
        for n in ("abrupt-eof", "accept", "cert-restriction", "greylisting",
                  "ip-allowlist", "spam-policy"):
            self.assertIn(n, names)
        p = run([BIN, "--describe", "greylisting"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("delay", p.stdout)
        self.assertIn("number, default 300", p.stdout)
        self.assertIn("450 4.2.0", p.stdout)
        p = run([BIN, "--check-scenario", ENGINE])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("ok", p.stdout)

    def test_seed_makes_ids_reproducible(self):
        ids = []
        for _ in range(2):
            with Emulator("--seed", "42") as emu:
                with smtplib.SMTP(*emu.addr()) as s:
                    s.ehlo("a")
                    s.mail("a@example.com")
                    s.rcpt("b@example.org")
                    code, msg = s.data("Subject: x\r\n\r\ny\r\n")
                    ids.append(msg)
        self.assertEqual(ids[0], ids[1])
        self.assertRegex(ids[0].decode(), r"^2\.0\.0 Ok: queued as \w{12}$")
