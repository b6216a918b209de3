"""The control API: scenarios, sessions and transcripts, messages (with
long-polling), state, clock, health, metrics, token, listeners, SIGHUP
(issue 5)."""

import json
import os
import shutil
import signal
import smtplib
import socket
import tempfile
import threading
import time
import urllib.request

from helpers import HOST, ROOT, Emulator, Raw, TestCase, run


def send(emu, frm="a@example.com", to=("b@example.org",), body=None,
         index=0):
    body = body or "Subject: hello\r\n\r\nhi there\r\n"
    with smtplib.SMTP(*emu.addr("smtp", index)) as s:
        return s.sendmail(frm, list(to), body)


class Api(TestCase):
    def setUp(self):
        self.emu = Emulator("--api", "127.0.0.1:0").start()

    def tearDown(self):
        self.emu.stop()

    def test_listening_line_and_health(self):
        kinds = [k for k, _, _ in self.emu.listeners]
        self.assertEqual(kinds, ["smtp", "api"])
        # Without --instance-id a replica goes by the host's name.
        self.assertEqual(self.emu.api("GET", "/healthz"),
                         (200, {"status": "ok",
                                "instance": socket.gethostname()}))

    def test_scenarios_listing(self):
        st, body = self.emu.api("GET", "/api/v1/scenarios")
        self.assertEqual(st, 200)
        by = {s["name"]: s for s in body}
        for n in ("accept", "ip-allowlist", "greylisting", "abrupt-eof",
                  "spam-policy", "cert-restriction"):
            self.assertIn(n, by)
        delay = [p for p in by["greylisting"]["params"]
                 if p["name"] == "delay"][0]
        self.assertEqual(delay["default"], "300")
        self.assertEqual(delay["type"], "number")
        self.assertTrue(delay["help"])
        style = [p for p in by["ip-allowlist"]["params"]
                 if p["name"] == "style"][0]
        self.assertIn("eof", style["choices"])

    def test_switch_scenario_and_assert_through_the_api_alone(self):
        st, body = self.emu.api("PUT", "/api/v1/scenario",
                                {"name": "ip-allowlist",
                                 "params": {"style": "postfix"}})
        self.assertEqual(st, 200, body)
        self.assertEqual(body, {"name": "ip-allowlist",
                                "params": {"style": "postfix"}})
        self.assertEqual(self.emu.api("GET", "/api/v1/scenario")[1], body)
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.ehlo("client.example")
            s.mail("a@example.com")
            self.assertEqual(s.rcpt("b@example.org"),
                             (554, b"5.7.1 <unknown[127.0.0.1]>: Client host "
                              b"rejected: Access denied"))
        st, sessions = self.emu.api("GET", "/api/v1/sessions?limit=1")
        sess = sessions[0]
        for _ in range(50):
            if sess["end"]:
                break
            time.sleep(0.05)
            sess = self.emu.api("GET", "/api/v1/sessions/%d" % sess["id"])[1]
        self.assertEqual(sess["scenario"], "ip-allowlist")
        # smtplib ends with QUIT: the last reply is the 221.
        self.assertEqual(sess["outcome"], {"result": "rejected", "code": 554,
                                           "stage": "rcpt", "last_code": 221})
        st, full = self.emu.api("GET", "/api/v1/sessions/%d" % sess["id"])
        lines = [(l["dir"], l["line"]) for l in full["transcript"]]
        self.assertIn(("client", "rcpt TO:<b@example.org>"), lines)
        # The scenario's own reply is marked; the server's are not.
        decided = [l for l in full["transcript"] if l.get("scenario")]
        self.assertEqual([(l["dir"], l["line"]) for l in decided],
                         [("server", "554 5.7.1 <unknown[127.0.0.1]>: Client "
                           "host rejected: Access denied")])
        self.assertIn(("server", "250 2.1.0 Ok"), lines)
        self.assertNotIn("scenario", full["transcript"][0])
        self.assertEqual(self.emu.api("GET", "/api/v1/messages")[1], [])
        # A delivered session carries the code of its last reply too.
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.ehlo("client.example")
        self.emu.api("PUT", "/api/v1/scenario", {"name": "accept"})
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.sendmail("a@example.com", ["b@example.org"], b"x\r\n")
        for _ in range(50):
            sess = self.emu.api("GET", "/api/v1/sessions?limit=1")[1][0]
            if sess["end"]:
                break
            time.sleep(0.05)
        self.assertEqual(sess["outcome"], {"result": "delivered",
                                           "last_code": 221})

    def test_bad_requests(self):
        cases = [
            ("PUT", "/api/v1/scenario", b"{not json", 400, "bad JSON"),
            ("PUT", "/api/v1/scenario", {"name": "nosuch"}, 400,
             "unknown scenario 'nosuch'"),
            ("PUT", "/api/v1/scenario", {"name": "greylisting",
                                         "params": {"nosuch": "1"}}, 400,
             "unknown parameter 'nosuch'"),
            ("PUT", "/api/v1/scenario", {"name": "greylisting",
                                         "params": {"delay": "soon"}}, 400,
             "parameter 'delay': expected a number"),
            ("PUT", "/api/v1/scenario", [1, 2], 400, "expected"),
            ("GET", "/api/v1/nothing", None, 404, "no such endpoint"),
            ("GET", "/api/v1/sessions/999999", None, 404, "no session"),
            ("GET", "/api/v1/messages/NOPE", None, 404, "no message"),
            ("POST", "/api/v1/sessions", None, 405, "not allowed"),
            ("POST", "/api/v1/clock", {"later": 1}, 400, "advance"),
            ("POST", "/api/v1/clock", {"advance": "x", "offset": 500}, 400,
             "advance"),
            ("POST", "/api/v1/clock", {"advance": 1, "offset": 500}, 400,
             "advance"),
            ("POST", "/api/v1/clock", {"offset": "soon"}, 400, "advance"),
            ("GET", "/api/v1/sessions?limit=x", None, 400, "whole numbers"),
        ]
        for method, path, body, status, needle in cases:
            st, out = self.emu.api(method, path, body)
            self.assertEqual(st, status, (method, path, out))
            self.assertIn(needle, out["error"])
        # The old scenario stays after refused changes.
        self.assertEqual(self.emu.api("GET", "/api/v1/scenario")[1],
                         {"name": "accept", "params": {}})
        # Oversized bodies are refused by the server.
        st, _ = self.emu.api("PUT", "/api/v1/scenario",
                             b"{" + b" " * 100000 + b"}")
        self.assertEqual(st, 413)

    def test_transcript_is_byte_exact(self):
        c = Raw(self.emu.addr())
        c.reply()
        sent = [b"EHLO t\xc3\xa9st.example\r\n", b"NOOP\n",
                b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<b@example.org>\r\n",
                b"DATA\r\n"]
        for line in sent:
            c.send(line)
            c.reply()
        body = (b"Subject: bytes\r\n\r\nctl \x01 bad \xff utf8 \xc3\xa9\r\n"
                b"..dot\r\nbare\nlf\r\n.\r\n")
        c.send(body)
        c.reply()
        c.cmd("QUIT")
        c.close()
        time.sleep(0.2)
        st, text = self.emu.api("GET", "/api/v1/sessions/1/transcript")
        self.assertEqual(st, 200)
        client = [l[3:] for l in text.decode().splitlines()
                  if l.startswith("C: ")]
        self.assertEqual(client, [
            "EHLO tést.example", "NOOP\\n", "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.org>", "DATA", "Subject: bytes", "",
            "ctl \\x01 bad \\xFF utf8 é", "..dot", "bare\\n", "lf", ".",
            "QUIT"])
        st, sess = self.emu.api("GET", "/api/v1/sessions/1")
        noop = [l for l in sess["transcript"] if l["line"] == "NOOP"][0]
        self.assertEqual(noop["eol"], "lf")
        self.assertEqual(noop["dir"], "client")
        self.assertRegex(noop["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_auth_credentials_are_masked(self):
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.login("alice", "s3cret-password")
        time.sleep(0.2)
        st, sess = self.emu.api("GET", "/api/v1/sessions/1")
        self.assertEqual(sess["auth"], {"mechanism": "PLAIN", "user": "alice"})
        text = json.dumps(sess)
        self.assertNotIn("s3cret", text)
        self.assertIn("AUTH PLAIN ***", text)

    def test_messages_filters_raw_and_delete(self):
        send(self.emu, "alice@example.com", ["bob@example.org"],
             "Subject: first one\r\n\r\nbody 1\r\n")
        send(self.emu, "carol@example.com", ["dave@example.net",
                                              "erin@example.net"],
             "Subject: second\r\nX-Y: z\r\n\r\nbody 2\r\n")
        st, msgs = self.emu.api("GET", "/api/v1/messages")
        self.assertEqual([m["subject"] for m in msgs], ["second", "first one"])
        self.assertEqual(msgs[0]["to"], ["dave@example.net",
                                         "erin@example.net"])
        for q, want in (("from=alice", ["first one"]), ("to=erin", ["second"]),
                        ("subject=FIRST", ["first one"]),
                        ("session=%d" % msgs[0]["session"], ["second"])):
            st, got = self.emu.api("GET", "/api/v1/messages?" + q)
            self.assertEqual([m["subject"] for m in got], want, q)
        mid = msgs[0]["id"]
        st, m = self.emu.api("GET", "/api/v1/messages/" + mid)
        self.assertEqual(m["headers"], [{"name": "Subject", "value": "second"},
                                        {"name": "X-Y", "value": "z"}])
        self.assertEqual(m["from"], "carol@example.com")
        self.assertEqual(m["size"], len("Subject: second\r\nX-Y: z\r\n\r\n"
                                        "body 2\r\n"))
        st, raw = self.emu.api("GET", "/api/v1/messages/%s/raw" % mid)
        self.assertEqual(raw, b"Subject: second\r\nX-Y: z\r\n\r\nbody 2\r\n")
        self.assertEqual(self.emu.api("DELETE", "/api/v1/messages/" + mid)[0],
                         204)
        self.assertEqual(len(self.emu.api("GET", "/api/v1/messages")[1]), 1)
        self.assertEqual(self.emu.api("DELETE", "/api/v1/messages")[0], 204)
        self.assertEqual(self.emu.api("GET", "/api/v1/messages")[1], [])

    def test_wait_for_messages(self):
        def later():
            time.sleep(0.5)
            send(self.emu, to=["w1@example.org"])
            time.sleep(0.3)
            send(self.emu, to=["w2@example.org"])
        t = threading.Thread(target=later)
        t0 = time.time()
        t.start()
        st, msgs = self.emu.api("GET", "/api/v1/messages?wait=10&count=2"
                                       "&to=example.org")
        t.join()
        self.assertEqual(st, 200)
        self.assertEqual(len(msgs), 2)
        self.assertLess(time.time() - t0, 5)
        # Times out with what there is.
        t0 = time.time()
        st, msgs = self.emu.api("GET", "/api/v1/messages?wait=0.5&count=5")
        self.assertEqual(len(msgs), 2)
        self.assertGreater(time.time() - t0, 0.4)

    def test_sessions_list_filters_and_delete(self):
        send(self.emu)
        c = Raw(self.emu.addr())
        c.reply()
        c.cmd("QUIT")
        c.close()
        time.sleep(0.3)
        st, all_ = self.emu.api("GET", "/api/v1/sessions")
        self.assertEqual([s["id"] for s in all_], [2, 1])
        self.assertEqual(
            [s["id"] for s in self.emu.api("GET", "/api/v1/sessions?"
                                                  "outcome=delivered")[1]],
            [1])
        self.assertEqual(
            [s["id"] for s in self.emu.api("GET", "/api/v1/sessions?since=1")[1]],
            [2])
        self.assertNotIn("transcript", all_[0])
        self.assertEqual(self.emu.api("DELETE", "/api/v1/sessions")[0], 204)
        self.assertEqual(self.emu.api("GET", "/api/v1/sessions")[1], [])

    def test_state_clock_and_greylisting_passed_by_advancing_the_clock(self):
        st, _ = self.emu.api("PUT", "/api/v1/scenario",
                             {"name": "greylisting"})
        self.assertEqual(st, 200)
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.ehlo("a")
            s.mail("a@example.com")
            self.assertEqual(s.rcpt("b@example.org")[0], 450)
        st, state = self.emu.api("GET", "/api/v1/state")
        self.assertEqual(len(state), 1)
        self.assertEqual(state[0]["scenario"], "greylisting")
        self.assertIn("a@example.com", state[0]["key"])
        st, clock = self.emu.api("POST", "/api/v1/clock", {"advance": 301})
        self.assertEqual(st, 200)
        self.assertAlmostEqual(clock["offset"], 301)
        self.assertAlmostEqual(clock["now"], time.time() + 301, delta=5)
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.ehlo("a")
            s.mail("a@example.com")
            self.assertEqual(s.rcpt("b@example.org"), (250, b"2.1.5 Ok"))
        self.assertEqual(self.emu.api("DELETE", "/api/v1/state")[0], 204)
        self.assertEqual(self.emu.api("GET", "/api/v1/state")[1], [])
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.ehlo("a")
            s.mail("a@example.com")
            self.assertEqual(s.rcpt("b@example.org")[0], 450)

    def test_metrics(self):
        send(self.emu)
        with smtplib.SMTP(*self.emu.addr()) as s:
            s.ehlo("x")
            s.docmd("FROB")
        time.sleep(0.3)
        st, text = self.emu.api("GET", "/metrics")
        text = text.decode()
        self.assertEqual(st, 200)
        self.assertIn("# TYPE smtp_emulator_sessions_total counter", text)
        self.assertIn('smtp_emulator_sessions_ended_total{outcome="delivered"}'
                      ' 1\n', text)
        self.assertIn('smtp_emulator_replies_total{stage="rcpt",code="250"} 1',
                      text)
        self.assertIn('smtp_emulator_replies_total{stage="other",code="500"}'
                      ' 1', text)
        self.assertIn("smtp_emulator_messages_accepted_total 1\n", text)
        self.assertIn("smtp_emulator_active_connections 0\n", text)
        self.assertRegex(text, r"smtp_emulator_api_requests_total \d+\n")


class Concurrency(TestCase):
    def test_sessions_in_flight_keep_their_scenario(self):
        with Emulator("--api", "127.0.0.1:0") as emu:
            old = Raw(emu.addr())
            old.reply()
            old.cmd("EHLO a")
            old.cmd("MAIL FROM:<a@example.com>")
            st, _ = emu.api("PUT", "/api/v1/scenario",
                            {"name": "ip-allowlist"})
            self.assertEqual(st, 200)
            # The old session still accepts; a new one is refused.
            self.assertEqual(old.cmd("RCPT TO:<b@example.org>"),
                             ["250 2.1.5 Ok"])
            new = Raw(emu.addr())
            new.reply()
            new.cmd("EHLO a")
            new.cmd("MAIL FROM:<a@example.com>")
            self.assertTrue(new.cmd("RCPT TO:<b@example.org>")[0]
                            .startswith("550 5.7.51 "))
            old.close()
            new.close()

    def test_many_sessions_while_the_scenario_changes(self):
        with Emulator("--api", "127.0.0.1:0") as emu:
            results = []
            stop = threading.Event()

            def client():
                while not stop.is_set():
                    try:
                        with smtplib.SMTP(*emu.addr(), timeout=5) as s:
                            s.ehlo("a")
                            s.mail("a@example.com")
                            results.append(s.rcpt("b@example.org")[0])
                    except Exception as e:  # noqa: any failure is a bug
                        results.append(repr(e))
            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            for i in range(20):
                name = "ip-allowlist" if i % 2 else "accept"
                st, _ = emu.api("PUT", "/api/v1/scenario", {"name": name})
                self.assertEqual(st, 200)
                time.sleep(0.05)
            stop.set()
            for t in threads:
                t.join()
            self.assertTrue(results)
            self.assertEqual(set(results) - {250, 550}, set())


class TokenAndListeners(TestCase):
    def test_token(self):
        with Emulator("--api", "127.0.0.1:0", "--api-token", "t0ken") as emu:
            st, body = emu.api("GET", "/api/v1/sessions")
            self.assertEqual(st, 401)
            self.assertIn("Bearer", body["error"])
            self.assertEqual(emu.api("GET", "/api/v1/sessions",
                                     token="wrong")[0], 401)
            self.assertEqual(emu.api("GET", "/api/v1/sessions",
                                     token="t0ken")[0], 200)
            self.assertEqual(emu.api("GET", "/metrics")[0], 401)
            # Health checks need no token.
            self.assertEqual(emu.api("GET", "/healthz")[0], 200)

    def test_per_listener_scenarios(self):
        with Emulator("--listen", "127.0.0.1:0",
                      "--listen", "127.0.0.1:0=greylisting",
                      "--set", "greylisting.delay=60",
                      "--api", "127.0.0.1:0") as emu:
            st, ls = emu.api("GET", "/api/v1/listeners")
            self.assertEqual([l["scenario"]["name"] for l in ls],
                             ["accept", "greylisting"])
            self.assertEqual(ls[1]["scenario"]["params"], {"delay": "60"})
            self.assertTrue(ls[0]["scenario"]["follows_default"])
            self.assertEqual(send(emu, index=0), {})
            with smtplib.SMTP(*emu.addr("smtp", 1)) as s:
                s.ehlo("a")
                s.mail("a@example.com")
                self.assertEqual(s.rcpt("b@example.org")[0], 450)
            addr = ls[0]["address"]
            st, sel = emu.api("PUT", "/api/v1/listeners/%s/scenario" % addr,
                              {"name": "ip-allowlist",
                               "params": {"allow": ["10.0.0.0/8"]}})
            self.assertEqual(st, 200, sel)
            self.assertEqual(sel["params"], {"allow": "10.0.0.0/8"})
            with smtplib.SMTP(*emu.addr("smtp", 0)) as s:
                s.ehlo("a")
                s.mail("a@example.com")
                self.assertEqual(s.rcpt("b@example.org")[0], 550)
            # The default is untouched, and the listener can follow it again.
            self.assertEqual(emu.api("GET", "/api/v1/scenario")[1]["name"],
                             "accept")
            st, sel = emu.api("DELETE", "/api/v1/listeners/%s/scenario" % addr)
            self.assertTrue(sel["follows_default"])
            self.assertEqual(send(emu, index=0), {})
            self.assertEqual(emu.api("PUT", "/api/v1/listeners/1.2.3.4:1/"
                                            "scenario", {"name": "accept"})[0],
                             404)


class Reload(TestCase):
    def test_sighup_reloads_and_keeps_the_old_version_of_a_broken_file(self):
        d = tempfile.mkdtemp()
        path = os.path.join(d, "mine.lua")
        with open(path, "w") as f:
            f.write('return { name = "mine", description = "v1",\n'
                    '  on_rcpt = function() return emu.reply(550, "5.7.1", '
                    '"version one") end }\n')
        try:
            with Emulator("--scenario", path, "--api", "127.0.0.1:0") as emu:
                def rcpt():
                    with smtplib.SMTP(*emu.addr()) as s:
                        s.ehlo("a")
                        s.mail("a@example.com")
                        return s.rcpt("b@example.org")
                self.assertEqual(rcpt(), (550, b"5.7.1 version one"))
                with open(path, "w") as f:
                    f.write('return { name = "mine", description = "v2",\n'
                            '  on_rcpt = function() return emu.reply(550, '
                            '"5.7.1", "version two") end }\n')
                emu.proc.send_signal(signal.SIGHUP)
                emu.wait_log(r"event=reload .*reloaded")
                self.assertEqual(rcpt(), (550, b"5.7.1 version two"))
                with open(path, "w") as f:
                    f.write('return { name = "mine",\n  description = oops(\n')
                emu.proc.send_signal(signal.SIGHUP)
                emu.wait_log(r"mine\.lua:\d+: .*kept the previous|kept the "
                             r"previous version: .*mine\.lua:3:")
                self.assertEqual(rcpt(), (550, b"5.7.1 version two"))
                self.assertTrue(emu.alive())
        finally:
            shutil.rmtree(d)
