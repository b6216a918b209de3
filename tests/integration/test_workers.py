"""--workers N (issue 8): N event loops in one process, each accepting on
a socket of its own bound to the same port with SO_REUSEPORT. What they
share must stay whole under concurrent sessions: the scenario state
(greylisting triplets), captured messages, session records and metrics.
"""

import concurrent.futures
import os
import smtplib
import subprocess

from helpers import (BIN, HOST, Emulator, TestCase, listen_queues,
                     metric)

CLIENTS = 8


def task_ticks(pid):
    """CPU ticks (utime + stime) of each thread of process pid."""
    ticks = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


class Workers(TestCase):
    def setUp(self):
        self.emu = Emulator("--workers", "2", "--api", "127.0.0.1:0",
                            "--max-sessions", "10000",
                            "--max-messages", "10000",
                            "--scenario", "greylisting",
                            "--set", "delay=60").start()

    def tearDown(self):
        self.emu.stop()

    def run_all(self, fn, n):
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as ex:
            return list(ex.map(fn, range(n)))

    def deliver(self, i):
        """One session: greylisted at first, delivered after the delay."""
        host, port = self.emu.addr()
        s = smtplib.SMTP(host, port, timeout=20)
        try:
            s.ehlo("client.example")
            s.mail("sender-%d@example.net" % i)
            code, _ = s.rcpt("rcpt@example.com")
            if code == 250:
                s.data(b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
            return code
        finally:
            s.quit()

    def test_one_socket_per_worker_on_the_same_port(self):
        self.assertEqual(len(listen_queues(self.emu.port())), 2)

    def test_both_workers_serve_and_share_state_captures_and_metrics(self):
        n = 400
        before = task_ticks(self.emu.proc.pid)
        # Each triplet is new: greylisted, whichever worker sees it.
        self.assertEqual(self.run_all(self.deliver, n), [450] * n)
        self.emu.api("POST", "/api/v1/clock", {"advance": 61})
        # The retry lands on either worker and finds the triplet the other
        # may have stored: all pass, each message captured once.
        self.assertEqual(self.run_all(self.deliver, n), [250] * n)
        after = task_ticks(self.emu.proc.pid)
        busy = [t for t in after if after[t] - before.get(t, 0) > 0]
        self.assertGreaterEqual(len(busy), 2, (before, after))

        st, msgs = self.emu.api("GET", "/api/v1/messages?limit=100000")
        self.assertEqual(st, 200)
        subjects = sorted(int(m["subject"]) for m in msgs)
        self.assertEqual(subjects, list(range(n)))
        self.assertEqual(len({m["id"] for m in msgs}), n)
        st, sessions = self.emu.api("GET", "/api/v1/sessions?limit=10000")
        self.assertEqual(len(sessions), 2 * n)
        self.assertEqual(len({s["id"] for s in sessions}), 2 * n)
        self.assertEqual(metric(self.emu, "smtp_emulator_sessions_total"),
                         2 * n)
        self.assertEqual(
            metric(self.emu, "smtp_emulator_messages_accepted_total"), n)
        # The greeting is the same from either worker.
        for _ in range(10):
            s = smtplib.SMTP(timeout=10)
            self.assertEqual(s.connect(*self.emu.addr()),
                             (220, b"%s ESMTP smtp-emulator" % HOST.encode()))
            s.quit()


class PortInUse(TestCase):
    """SO_REUSEPORT would let a second emulator with workers join the
    first one's port and take half its clients unnoticed; it must be told
    the port is in use, as without workers."""

    def test_a_second_emulator_with_workers_is_refused(self):
        with Emulator("--workers", "2") as first:
            port = first.port()
            for workers in ("2", "1"):
                p = subprocess.run(
                    [BIN, "--workers", workers, "--listen",
                     "127.0.0.1:%d" % port], capture_output=True, text=True,
                    timeout=30)
                self.assertEqual(p.returncode, 1, (workers, p.stderr))
                self.assertIn("127.0.0.1:%d" % port, p.stderr)
                self.assertIn("in use", p.stderr)
            # The first one still has both its sockets and serves.
            self.assertEqual(len(listen_queues(port)), 2)
            s = smtplib.SMTP(timeout=10)
            self.assertEqual(s.connect("127.0.0.1", port)[0], 220)
            s.quit()
