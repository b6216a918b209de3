"""Replicas sharing emu.state through a real redis-server (issue 11):
greylisting and rate limiting across two emulator processes, one scenario
clock for all, Redis stopped, frozen and restarted mid-run, the fallback
policy, and the key layout in Redis."""

import os
import re
import shutil
import signal
import socket
import subprocess
import struct
import tempfile
import threading
import time
import unittest

from helpers import HOST, Emulator, Raw, TestCase, metric

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
SENDER = "sender@example.net"
RCPT = "rcpt@example.com"
GREY = ("450 4.2.0 <%s>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.com.html" % RCPT)
PASS = "250 2.1.5 Ok"
LOOKUP_FAILURE = "451 4.3.0 <%s>: Temporary lookup failure" % RCPT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A throw-away redis-server on a loopback port, no persistence."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="emu-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.cli("PING") == "PONG":
                    return self
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args):
        out = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--raw",
             *args], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port


class FakeDNS:
    """A nameserver on a loopback UDP port: A records for `names`, no
    AAAA, "no such name" for the rest; or, when `silent`, no answer at all.
    It counts the questions it is asked."""

    def __init__(self, names=None, silent=False):
        self.names = {n.lower(): a for n, a in (names or {}).items()}
        self.silent = silent
        self.asked = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                q, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            qid, = struct.unpack("!H", q[:2])
            labels, i = [], 12
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += 1 + q[i]
            qtype, = struct.unpack("!H", q[i + 1:i + 3])
            question = q[12:i + 5]
            name = ".".join(labels).lower()
            self.asked.append(name)
            if self.silent:
                continue
            known = name in self.names
            answers = b""
            if known and qtype == 1:
                answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + \
                    socket.inet_aton(self.names[name])
            flags = 0x8180 if known else 0x8183  # NOERROR / NXDOMAIN
            head = struct.pack("!HHHHHH", qid, flags, 1,
                               1 if answers else 0, 0, 0)
            self.sock.sendto(head + question + answers, peer)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


@unittest.skipUnless(os.path.exists(REDIS_SERVER),
                     "redis-server is installed by make deps")
class Base(TestCase):
    scenario = ["--scenario", "greylisting", "--set", "delay=300"]
    extra = []

    def setUp(self):
        self.redis = Redis().start()
        self.emus = []

    def tearDown(self):
        for e in self.emus:
            e.stop()
        self.redis.cleanup()

    def emulator(self, name, *args):
        e = Emulator("--api", "127.0.0.1:0", "--state", self.redis.url,
                     "--instance-id", name, *self.scenario, *self.extra,
                     *args).start()
        self.emus.append(e)
        return e

    def attempt(self, emu, sender=SENDER, rcpt=RCPT):
        """One delivery attempt on a new connection: the RCPT reply."""
        c = Raw(emu.addr())
        self.assertEqual(c.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
        c.cmd("EHLO client.example")
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender), ["250 2.1.0 Ok"])
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        self.assertEqual(len(r), 1, r)
        self.assertEqual(c.cmd("QUIT"), ["221 2.0.0 Bye"])
        c.close()
        return r[0]


class Greylisting(Base):
    def test_retry_on_another_replica_passes_after_the_delay(self):
        a = self.emulator("replica-a")
        b = self.emulator("replica-b")
        # First attempt on A, an early retry on B: the same triplet.
        self.assertEqual(self.attempt(a), GREY)
        self.assertEqual(self.attempt(b), GREY)
        # Moving the clock through A moves it for B too (via Redis).
        st, clock = a.api("POST", "/api/v1/clock", {"advance": 301})
        self.assertEqual(st, 200)
        self.assertGreaterEqual(clock["offset"], 301)
        deadline = time.time() + 3
        while b.api("GET", "/api/v1/clock")[1]["offset"] < 301:
            self.assertLess(time.time(), deadline, "B never saw the clock")
            time.sleep(0.05)
        self.assertEqual(self.attempt(b), PASS)
        b.wait_log(r"greylisting: pass after 30[1-3] s")
        # Whitelisted for both now; a new triplet starts over on either.
        self.assertEqual(self.attempt(a), PASS)
        self.assertEqual(self.attempt(a, rcpt="other@example.com"),
                         GREY.replace(RCPT, "other@example.com"))
        # Two replicas advancing at once both count.
        a.api("POST", "/api/v1/clock", {"advance": 100})
        b.api("POST", "/api/v1/clock", {"advance": 100})
        self.assertAlmostEqual(float(self.redis.cli(
            "GET", "smtp-emulator:clock-offset")), 501, places=3)
        # Sessions stay per replica, and say which one served them.
        st, sessions = b.api("GET", "/api/v1/sessions")
        self.assertEqual(st, 200)
        self.assertTrue(sessions)
        self.assertEqual({s["instance"] for s in sessions}, {"replica-b"})
        self.assertEqual(b.api("GET", "/healthz")[1],
                         {"status": "ok", "instance": "replica-b"})
        self.assertEqual(len(a.api("GET", "/api/v1/sessions")[1]), 3)
        self.assertEqual(len(sessions), 2)

    def test_key_layout(self):
        a = self.emulator("a", "--state-prefix", "ci42:")
        self.assertEqual(self.attempt(a), GREY)
        keys = self.redis.cli("KEYS", "*").split("\n")
        triplet = "ci42:greylisting/triplet/127.0.0.0/%s/%s" % (SENDER, RCPT)
        self.assertEqual(keys, [triplet])
        # "n|EXPIRES|VALUE": a number, its expiry on the scenario clock (the
        # retry window, two days), and the first-seen time.
        value = self.redis.cli("GET", triplet)
        m = re.fullmatch(r"n\|(\d+\.\d{3})\|(\d+(\.\d+)?)", value)
        self.assertIsNotNone(m, value)
        first = float(m.group(2))
        self.assertAlmostEqual(float(m.group(1)) - first, 2 * 86400, delta=1)
        self.assertAlmostEqual(first, time.time(), delta=5)
        # Redis's own TTL is the safety net: an hour past the expiry.
        ttl = int(self.redis.cli("TTL", triplet))
        self.assertGreater(ttl, 2 * 86400 + 3500)
        self.assertLessEqual(ttl, 2 * 86400 + 3600)
        # The API lists the same entry (without the prefix) ...
        st, entries = a.api("GET", "/api/v1/state")
        self.assertEqual(st, 200)
        self.assertEqual([(e["scenario"], e["key"], e["value"])
                          for e in entries],
                         [("greylisting", "triplet/127.0.0.0/%s/%s"
                           % (SENDER, RCPT), first)])
        # ... the clock's key sits beside the scenarios' ...
        a.api("POST", "/api/v1/clock", {"offset": 10})
        self.assertEqual(self.redis.cli("GET", "ci42:clock-offset"),
                         "10.000000")
        # ... and DELETE /api/v1/state clears only our scenario keys.
        self.redis.cli("SET", "someone-else", "x")
        self.assertEqual(a.api("DELETE", "/api/v1/state")[0], 204)
        self.assertEqual(sorted(self.redis.cli("KEYS", "*").split("\n")),
                         ["ci42:clock-offset", "someone-else"])
        self.assertEqual(a.api("GET", "/api/v1/state")[1], [])

    def test_a_prefix_with_glob_characters_is_taken_literally(self):
        # Redis's KEYS takes a glob: "ci[1]:*" would match "ci1:..." keys,
        # another deployment's, and miss its own.
        a = self.emulator("a", "--state-prefix", "ci[1]*:")
        b = self.emulator("b", "--state-prefix", "ci1x:")
        self.assertEqual(self.attempt(a), GREY)
        self.assertEqual(self.attempt(b), GREY)
        self.assertEqual(len(a.api("GET", "/api/v1/state")[1]), 1)
        self.assertEqual(a.api("DELETE", "/api/v1/state")[0], 204)
        self.assertEqual(a.api("GET", "/api/v1/state")[1], [])
        self.assertEqual(len(b.api("GET", "/api/v1/state")[1]), 1)
        self.assertEqual(self.redis.cli("KEYS", "*").split("\n"),
                         ["ci1x:greylisting/triplet/127.0.0.0/%s/%s"
                          % (SENDER, RCPT)])

    def test_expiry_follows_the_scenario_clock(self):
        a = self.emulator("a")
        self.assertEqual(self.attempt(a), GREY)
        # Past the retry window (two days) the first attempt is forgotten,
        # although Redis still holds the key: the next attempt is a first
        # attempt again, not a pass.
        a.api("POST", "/api/v1/clock", {"advance": 2 * 86400 + 10})
        self.assertEqual(self.redis.cli("EXISTS", "smtp-emulator:greylisting/"
                                        "triplet/127.0.0.0/%s/%s"
                                        % (SENDER, RCPT)), "1")
        self.assertEqual(self.attempt(a), GREY)
        a.api("POST", "/api/v1/clock", {"advance": 299})
        self.assertEqual(self.attempt(a), GREY)
        a.api("POST", "/api/v1/clock", {"advance": 2})
        self.assertEqual(self.attempt(a), PASS)


class ByName(Base):
    def test_a_host_name_in_the_url(self):
        # As in compose ("redis://redis:6379"): the name is looked up
        # without blocking, before each connection attempt.
        a = self.emulator("a")
        b = Emulator("--api", "127.0.0.1:0", "--state",
                     "redis://localhost:%d/0" % self.redis.port,
                     "--instance-id", "b", *self.scenario).start()
        self.emus.append(b)
        self.assertEqual(self.attempt(a), GREY)
        a.api("POST", "/api/v1/clock", {"advance": 301})
        deadline = time.time() + 3
        while b.api("GET", "/api/v1/clock")[1]["offset"] < 301:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        self.assertEqual(self.attempt(b), PASS)

    def test_an_unknown_name_is_retried_and_answers_451(self):
        e = Emulator("--state", "redis://no-such-host.invalid:6379",
                     "--state-timeout", "0.3", *self.scenario).start()
        self.emus.append(e)
        self.assertEqual(self.attempt(e), LOOKUP_FAILURE)
        e.wait_log(r"no connection to redis://no-such-host\.invalid:6379")


class NameServers(Base):
    """How a Redis host name is looked up: resolv.conf's nameservers in
    order, as the C library asks them. In a compose network resolv.conf
    names the network's DNS first (it knows "redis") and the host's next
    (it does not); asking them in turn failed every other query."""

    def setUp(self):
        super().setUp()
        self.dns = []
        self.tmp = tempfile.mkdtemp(prefix="emu-resolv-")

    def tearDown(self):
        super().tearDown()
        for d in self.dns:
            d.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def nameserver(self, **kw):
        d = FakeDNS(**kw)
        self.dns.append(d)
        return d

    def by_name(self, *lines):
        path = os.path.join(self.tmp, "resolv.conf")
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        e = Emulator("--api", "127.0.0.1:0", "--state",
                     "redis://redis:%d" % self.redis.port,
                     "--state-timeout", "0.5", *self.scenario,
                     env={"SMTP_EMULATOR_RESOLV_CONF": path}).start()
        self.emus.append(e)
        return e

    def test_the_first_nameserver_answers_every_lookup(self):
        network = self.nameserver(names={"redis.compose.test": "127.0.0.1"})
        host = self.nameserver()
        e = self.by_name("search compose.test",
                         "nameserver %s" % network.addr,
                         "nameserver %s" % host.addr)
        e.wait_log(r"connected to redis://redis:")
        self.assertEqual(self.attempt(e), GREY)
        # Each reconnection looks the name up again: three more.
        for n in range(2, 5):
            self.redis.stop()
            self.redis.start()
            deadline = time.time() + 10
            while len(re.findall(r"connected to redis://redis:",
                                 e.log())) < n:
                self.assertLess(time.time(), deadline, e.log()[-2000:])
                time.sleep(0.05)
        self.assertGreaterEqual(len(network.asked), 4)
        self.assertIn("redis.compose.test", network.asked)
        self.assertEqual(host.asked, [])

    def test_a_nameserver_that_does_not_answer_is_passed_over(self):
        silent = self.nameserver(silent=True)
        network = self.nameserver(names={"redis": "127.0.0.1"})
        e = self.by_name("options timeout:1 attempts:1",
                         "nameserver %s" % silent.addr,
                         "nameserver %s" % network.addr)
        self.assertEqual(self.attempt(e), LOOKUP_FAILURE)
        e.wait_log(r"connected to redis://redis:", timeout=10)
        self.assertEqual(self.attempt(e), GREY)
        self.assertIn("redis", silent.asked)
        self.assertIn("redis", network.asked)

    def test_no_such_name_from_the_first_is_final(self):
        # The C library does not ask on when told a name does not exist.
        first = self.nameserver()
        second = self.nameserver(names={"redis": "127.0.0.1"})
        e = self.by_name("nameserver %s" % first.addr,
                         "nameserver %s" % second.addr)
        e.wait_log(r"no connection to redis://redis:.*not known")
        time.sleep(1.5)
        self.assertEqual(self.attempt(e), LOOKUP_FAILURE)
        self.assertEqual(second.asked, [])


class RateLimit(Base):
    scenario = ["--scenario", "rate-limit", "--set", "limit=3",
                "--set", "count=mail", "--set", "key=client",
                "--set", "window=3600"]

    def mail(self, emu):
        c = Raw(emu.addr())
        c.reply1()
        c.cmd("EHLO client.example")
        r = c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("QUIT")
        c.close()
        return r

    def test_the_limit_counts_across_replicas(self):
        a = self.emulator("a")
        b = self.emulator("b")
        ok = ["250 2.1.0 Ok"]
        refused = ["450 4.7.1 Error: too much mail from unknown[127.0.0.1]"]
        self.assertEqual(self.mail(a), ok)
        self.assertEqual(self.mail(b), ok)
        self.assertEqual(self.mail(a), ok)
        # The fourth in the window, on either replica, is over the limit.
        self.assertEqual(self.mail(b), refused)
        self.assertEqual(self.mail(a), refused)
        self.assertEqual(self.redis.cli(
            "GET", "smtp-emulator:rate-limit/mail/client/127.0.0.1")
            .split("|")[2], "5")
        # The window ends for both when the clock moves past it.
        b.api("POST", "/api/v1/clock", {"advance": 3601})
        deadline = time.time() + 3
        while a.api("GET", "/api/v1/clock")[1]["offset"] < 3601:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        self.assertEqual(self.mail(a), ok)


class Outage(Base):
    extra = ["--state-timeout", "0.3"]

    def test_redis_stopped_and_restarted(self):
        a = self.emulator("a")
        self.assertEqual(self.attempt(a), GREY)
        self.redis.stop()
        # While Redis is away: 451 at RCPT, the session goes on, nothing
        # crashes, the error is logged and counted.
        c = Raw(a.addr())
        c.reply1()
        c.cmd("EHLO client.example")
        c.cmd("MAIL FROM:<%s>" % SENDER)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % RCPT), [LOOKUP_FAILURE])
        self.assertEqual(c.cmd("NOOP"), ["250 2.0.0 Ok"])
        self.assertEqual(c.cmd("RCPT TO:<%s>" % RCPT), [LOOKUP_FAILURE])
        c.cmd("QUIT")
        c.close()
        a.wait_log(r"state-unavailable")
        self.assertGreaterEqual(metric(a, "smtp_emulator_state_errors_total"),
                                2)
        self.assertEqual(a.api("GET", "/api/v1/state")[0], 503)
        self.assertTrue(a.alive())
        # Redis comes back (empty: no persistence): the emulator reconnects
        # by itself within a couple of seconds.
        self.redis.start()
        deadline = time.time() + 5
        while True:
            r = self.attempt(a)
            if r != LOOKUP_FAILURE:
                break
            self.assertLess(time.time(), deadline, "never reconnected")
            time.sleep(0.2)
        self.assertEqual(r, GREY)
        a.wait_log(r"connected to redis://")

    def test_redis_frozen_times_out(self):
        a = self.emulator("a")
        self.assertEqual(self.attempt(a), GREY)
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            t = time.time()
            self.assertEqual(self.attempt(a), LOOKUP_FAILURE)
            # The timeout (0.3 s), not a hang; other sessions are served
            # meanwhile (the API answers while the RCPT waits).
            self.assertLess(time.time() - t, 2)
            self.assertGreaterEqual(
                metric(a, "smtp_emulator_state_errors_total"), 1)
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        deadline = time.time() + 5
        while self.attempt(a) != GREY:
            self.assertLess(time.time(), deadline)
            time.sleep(0.2)


class Fallback(Base):
    extra = ["--state-fallback", "memory", "--state-timeout", "0.3"]

    def test_memory_fallback_keeps_greylisting_alive(self):
        a = self.emulator("a")
        self.redis.stop()
        # No 451: this replica greylists on its own store meanwhile.
        self.assertEqual(self.attempt(a), GREY)
        a.api("POST", "/api/v1/clock", {"offset": 301})
        self.assertEqual(self.attempt(a), PASS)
        self.assertGreaterEqual(
            metric(a, "smtp_emulator_state_fallbacks_total"), 3)


if __name__ == "__main__":
    unittest.main()
