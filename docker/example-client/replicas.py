#!/usr/bin/env python3
"""The client of docker/compose.yml's `replicas` profile.

Three emulator replicas share their scenario state and clock through one
Redis, and answer together behind one name (a shared network alias). This
client waits for all of them, checks that the shared name leads to each,
then checks what sharing means for a sending application: a greylisted
RCPT retried on another replica passes once the clock has moved past the
delay (moved through a third replica's API), and a rate limit counts the
mail sent to every replica. What stays per replica (the sessions) is
checked as well. It prints one line per check and exits 0 when all passed,
like the example client (client.py) of the default profile.

Environment: REPLICAS (space-separated service names, default "replica-1
replica-2 replica-3"; each is also the replica's --instance-id),
SHARED_NAME (smtp-replicas), API_TOKEN, GREY_PORT (25: greylisting,
delay 300 s), RATE_PORT (2526: rate-limit, 3 MAILs per client per window),
GREY_DELAY (300), RATE_LIMIT (3), WAIT_SECONDS (60).
"""

import json
import os
import smtplib
import socket
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid

REPLICAS = os.environ.get("REPLICAS",
                          "replica-1 replica-2 replica-3").split()
SHARED = os.environ.get("SHARED_NAME", "smtp-replicas")
TOKEN = os.environ.get("API_TOKEN", "")
GREY_PORT = int(os.environ.get("GREY_PORT", "25"))
RATE_PORT = int(os.environ.get("RATE_PORT", "2526"))
GREY_DELAY = float(os.environ.get("GREY_DELAY", "300"))
RATE_LIMIT = int(os.environ.get("RATE_LIMIT", "3"))
WAIT = float(os.environ.get("WAIT_SECONDS", "60"))
RCPT = "user@example.org"


class CheckFailed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def reply_line(got):
    """smtplib's (code, bytes) as the line the server sent."""
    code, text = got
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "%d %s" % (code, text)


def expect_line(got, want, where):
    line = reply_line(got)
    expect(line == want, "%s: expected '%s', got '%s'" % (where, want, line))


def api(host, method, path, body=None, token=TOKEN):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://%s:8025%s" % (host, path),
                                 data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def wait_until_ready():
    """Every replica answers /healthz and reaches Redis (GET /api/v1/state
    answers 503 while Redis is away)."""
    deadline = time.monotonic() + WAIT
    pending = list(REPLICAS)
    last = "nothing yet"
    while pending and time.monotonic() < deadline:
        name = pending[0]
        try:
            status, _ = api(name, "GET", "/healthz", token="")
            if status == 200:
                status, _ = api(name, "GET", "/api/v1/state")
                if status == 200:
                    pending.pop(0)
                    continue
                last = "%s: /api/v1/state answered %d" % (name, status)
            else:
                last = "%s: /healthz answered %d" % (name, status)
        except OSError as e:
            last = "%s: %s" % (name, e)
        time.sleep(0.5)
    if pending:
        raise SystemExit("client: not ready after %gs: %s (%s)" %
                         (WAIT, " ".join(pending), last))


def smtp(host, port):
    s = smtplib.SMTP(host, port, timeout=15)
    s.ehlo("client.example")
    return s


def greylisted(rcpt):
    return ("450 4.2.0 <%s>: Recipient address rejected: Greylisted, see "
            "http://postgrey.schweikert.ch/help/%s.html" %
            (rcpt, rcpt.split("@", 1)[1]))


def rcpt_attempt(host, sender, rcpt=RCPT):
    """One delivery attempt up to RCPT on a new connection: its reply."""
    with smtp(host, GREY_PORT) as s:
        expect_line(s.mail(sender), "250 2.1.0 Ok", host + " MAIL")
        got = s.rcpt(rcpt)
        s.rset()
    return reply_line(got)


def wait_for_clock(host, at_least):
    """Other replicas read the clock from Redis every 200 ms."""
    deadline = time.monotonic() + 5
    while True:
        status, clock = api(host, "GET", "/api/v1/clock")
        expect(status == 200, "%s: GET /api/v1/clock: %d" % (host, status))
        if clock["offset"] >= at_least:
            return clock["offset"]
        expect(time.monotonic() < deadline,
               "%s never saw the clock move: offset %r" % (host, clock))
        time.sleep(0.05)


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def each_replica_names_itself_in_healthz():
    for name in REPLICAS:
        status, body = api(name, "GET", "/healthz", token="")
        expect(status == 200 and body == {"status": "ok", "instance": name},
               "%s: /healthz: %d %r" % (name, status, body))


@check
def the_shared_name_resolves_to_every_replica():
    def addresses(name):
        return {a[4][0] for a in socket.getaddrinfo(
            name, GREY_PORT, socket.AF_INET, socket.SOCK_STREAM)}
    own = {name: addresses(name) for name in REPLICAS}
    shared = addresses(SHARED)
    expect(shared == set().union(*own.values()) and len(shared) == len(own),
           "%s -> %s; the replicas: %r" % (SHARED, sorted(shared), own))
    # Each address behind the shared name is a different replica.
    seen = set()
    for addr in sorted(shared):
        status, body = api(addr, "GET", "/healthz", token="")
        expect(status == 200, "%s: /healthz: %d" % (addr, status))
        seen.add(body["instance"])
        with smtp(addr, GREY_PORT) as s:
            expect(s.noop()[0] == 250, "%s: NOOP" % addr)
    expect(seen == set(REPLICAS), "instances behind %s: %s" %
           (SHARED, sorted(seen)))


@check
def greylisting_retry_on_another_replica_passes_after_the_delay():
    first, clock, retry = REPLICAS[0], REPLICAS[1], REPLICAS[2 % len(REPLICAS)]
    sender = "grey-%s@example.com" % uuid.uuid4().hex[:8]
    got = rcpt_attempt(first, sender)
    expect(got == greylisted(RCPT), "%s, first attempt: '%s'" % (first, got))
    # An early retry elsewhere: the triplet is known there too, still
    # inside the delay.
    got = rcpt_attempt(retry, sender)
    expect(got == greylisted(RCPT), "%s, early retry: '%s'" % (retry, got))
    # Move the clock past the delay through another replica's API.
    _, before = api(clock, "GET", "/api/v1/clock")
    status, body = api(clock, "POST", "/api/v1/clock",
                       {"advance": GREY_DELAY + 1})
    expect(status == 200, "%s: POST /api/v1/clock: %d %r" %
           (clock, status, body))
    wait_for_clock(retry, before["offset"] + GREY_DELAY + 1)
    got = rcpt_attempt(retry, sender)
    expect(got == "250 2.1.5 Ok", "%s, retry after the delay: '%s'" %
           (retry, got))
    # A new triplet is greylisted again, whichever replica sees it.
    other = "other-%s@example.org" % uuid.uuid4().hex[:8]
    got = rcpt_attempt(first, sender, other)
    expect(got == greylisted(other), "%s, new triplet: '%s'" % (first, got))


@check
def the_rate_limit_counts_mail_on_every_replica():
    ok = "250 2.1.0 Ok"
    # The limit is per client address: ours, as the replicas see it.
    plan = [REPLICAS[0]] * (RATE_LIMIT - 1) + [REPLICAS[1]]
    for n, host in enumerate(plan + [REPLICAS[2 % len(REPLICAS)]], 1):
        with smtp(host, RATE_PORT) as s:
            ip = s.sock.getsockname()[0]
            got = s.mail("rate-%d@example.com" % n)
        want = (ok if n <= RATE_LIMIT else
                "450 4.7.1 Error: too much mail from unknown[%s]" % ip)
        expect_line(got, want, "MAIL %d on %s" % (n, host))


@check
def sessions_stay_with_the_replica_that_served_them():
    for name in REPLICAS:
        status, sessions = api(name, "GET", "/api/v1/sessions")
        expect(status == 200, "%s: GET /api/v1/sessions: %d" %
               (name, status))
        instances = {s.get("instance") for s in sessions}
        expect(sessions and instances == {name},
               "%s: %d sessions, instances %r" %
               (name, len(sessions), sorted(map(str, instances))))


def main():
    wait_until_ready()
    print("client: %s are healthy and reach Redis" % ", ".join(REPLICAS))
    passed = failed = 0
    for n, fn in enumerate(CHECKS, 1):
        name = fn.__name__.replace("_", " ")
        try:
            fn()
        except Exception as e:  # report every failure, then go on
            failed += 1
            print("not ok %d - %s: %s" % (n, name, e))
            if not isinstance(e, CheckFailed):
                traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("ok %d - %s" % (n, name))
    print("client: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
