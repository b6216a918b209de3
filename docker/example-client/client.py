#!/usr/bin/env python3
"""The example client of docker/compose.yml.

It waits until the emulator answers /healthz (compose's health conditions
do not run under podman, so it polls by itself), then talks to each
listener of the compose file and checks the exact replies of the scenario
behind it, steering the emulator through the control API where a test
would. It prints one line per check and exits 0 when all passed.

Environment: SMTP_HOST (default smtp-emulator, the name in the test
certificate), API_URL (http://SMTP_HOST:8025), API_TOKEN, CERT_DIR (/certs:
the emulator's certificate volume, for ca.pem and the client certificate),
WAIT_SECONDS (60).
"""

import json
import os
import smtplib
import ssl
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid

HOST = os.environ.get("SMTP_HOST", "smtp-emulator")
API = os.environ.get("API_URL", "http://%s:8025" % HOST)
TOKEN = os.environ.get("API_TOKEN", "")
CERTS = os.environ.get("CERT_DIR", "/certs")
WAIT = float(os.environ.get("WAIT_SECONDS", "60"))
GTUBE = ("XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*"
         "C.34X")


class CheckFailed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise CheckFailed(what)


def expect_reply(got, code, text_start):
    """got is smtplib's (code, bytes); the text must start with text_start."""
    c, t = got
    t = t.decode("utf-8", "replace") if isinstance(t, bytes) else t
    expect(c == code and t.startswith(text_start),
           "expected '%d %s...', got '%d %s'" % (code, text_start, c, t))
    return t


def api(method, path, body=None, token=TOKEN):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def wait_until_ready():
    deadline = time.monotonic() + WAIT
    last = "nothing yet"
    while time.monotonic() < deadline:
        try:
            status, _ = api("GET", "/healthz", token="")
            if status == 200 and os.path.exists(os.path.join(CERTS,
                                                             "ca.pem")):
                return
            last = "healthz answered %d" % status
        except OSError as e:
            last = str(e)
        time.sleep(0.5)
    raise SystemExit("client: the emulator was not ready after %gs (%s)" %
                     (WAIT, last))


def tls_context(client_cert=None):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(os.path.join(CERTS, client_cert + ".pem"),
                            os.path.join(CERTS, client_cert + ".key"))
    return ctx


def message(subject, body="Hello from the example client.\r\n"):
    return ("From: <app@example.com>\r\nTo: <user@example.org>\r\n"
            "Subject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\n%s" %
            (subject, uuid.uuid4().hex, body)).encode()


def connect(port, tls=False, starttls=False, client_cert=None):
    if tls:
        s = smtplib.SMTP_SSL(HOST, port, timeout=15,
                             context=tls_context(client_cert))
    else:
        s = smtplib.SMTP(HOST, port, timeout=15)
    s.ehlo("client.example")
    if starttls:
        expect(s.has_extn("starttls"), "STARTTLS is not offered")
        expect_reply(s.starttls(context=tls_context(client_cert)), 220,
                     "2.0.0 Ready to start TLS")
        s.ehlo("client.example")
    return s


def deliver(s, subject, sender="app@example.com", rcpt="user@example.org"):
    """MAIL, RCPT, DATA with the replies checked; returns the queue id."""
    expect_reply(s.mail(sender), 250, "2.1.0 Ok")
    expect_reply(s.rcpt(rcpt), 250, "2.1.5 Ok")
    text = expect_reply(s.data(message(subject)), 250,
                        "2.0.0 Ok: queued as ")
    return text.rsplit(" ", 1)[1]


def captured(queue_id):
    """The emulator's record of a message, fetched through the API."""
    status, m = api("GET", "/api/v1/messages/" + queue_id)
    expect(status == 200, "GET /api/v1/messages/%s: %s" % (queue_id, status))
    return m


CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def port_25_starttls_accepts_and_captures():
    with smtplib.SMTP(HOST, 25, timeout=15) as s:
        # The first line of the EHLO reply is the host name that the
        # compose file sets (SMTP_EMULATOR_HOSTNAME).
        code, text = s.ehlo("client.example")
        expect(code == 250 and text.split(b"\n")[0] == b"mx.test",
               "EHLO: %d %r" % (code, text))
        expect_reply(s.starttls(context=tls_context()), 220,
                     "2.0.0 Ready to start TLS")
        s.ehlo("client.example")
        qid = deliver(s, "through port 25")
    m = captured(qid)
    expect(m["subject"] == "through port 25" and m["tls"] is True,
           "captured: %r" % m)


@check
def port_465_implicit_tls_accepts():
    with connect(465, tls=True) as s:
        qid = deliver(s, "through port 465")
    expect(captured(qid)["tls"] is True, "not recorded as TLS")


@check
def port_587_submission_with_auth():
    with connect(587, starttls=True) as s:
        expect_reply(s.login("app-user", "app-password"), 235,
                     "2.7.0 Authentication successful")
        qid = deliver(s, "through port 587")
    expect(captured(qid)["auth_user"] == "app-user", "AUTH user not recorded")


@check
def api_needs_the_token_but_healthz_does_not():
    status, _ = api("GET", "/api/v1/sessions", token="")
    expect(status == 401, "no token: got %d, expected 401" % status)
    status, _ = api("GET", "/healthz", token="")
    expect(status == 200, "/healthz without token: %d" % status)


@check
def the_qa_web_page_is_served_without_the_token():
    # The page's own files are public; the page asks for the token itself.
    with urllib.request.urlopen(API + "/", timeout=20) as r:
        page = r.read().decode("utf-8", "replace")
        expect(r.status == 200, "GET /: %d" % r.status)
    expect("<title>smtp-emulator</title>" in page, "GET / is not the page")
    with urllib.request.urlopen(API + "/app.js", timeout=20) as r:
        expect(r.status == 200 and "javascript" in
               r.headers.get("Content-Type", ""), "GET /app.js")


@check
def port_2526_ip_allowlist_rejects_with_5_7_51():
    with connect(2526) as s:
        expect_reply(s.mail("app@example.com"), 250, "2.1.0 Ok")
        expect_reply(s.rcpt("user@example.org"), 550,
                     "5.7.51 TenantInboundAttribution; Rejecting.")
    # What an application sees: sendmail() raises.
    with connect(2526) as s:
        try:
            s.sendmail("app@example.com", ["user@example.org"],
                       message("refused"))
            raise CheckFailed("sendmail did not raise")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["user@example.org"]
            expect(code == 550 and text.startswith(b"5.7.51 "), repr(e))


@check
def api_switches_port_2526_to_postfix_style():
    listener = "/api/v1/listeners/0.0.0.0:2526/scenario"
    status, body = api("PUT", listener, {"name": "ip-allowlist",
                                         "params": {"style": "postfix"}})
    expect(status == 200, "PUT %s: %d %r" % (listener, status, body))
    try:
        with connect(2526) as s:
            expect_reply(s.mail("app@example.com"), 250, "2.1.0 Ok")
            code, text = s.rcpt("user@example.org")
            expect(code == 554 and b"Client host rejected: Access denied"
                   in text, "RCPT: %d %r" % (code, text))
    finally:
        api("PUT", listener, {"name": "ip-allowlist", "params": {}})


@check
def port_2527_greylisting_then_accepted_after_the_delay():
    sender = "grey-%s@example.com" % uuid.uuid4().hex[:8]
    with connect(2527) as s:
        expect_reply(s.mail(sender), 250, "2.1.0 Ok")
        text = expect_reply(s.rcpt("user@example.org"), 450, "4.2.0 ")
        expect("Greylisted" in text, text)
    # The compose file sets greylisting.delay=60: move the clock instead
    # of waiting.
    status, _ = api("POST", "/api/v1/clock", {"advance": 61})
    expect(status == 200, "POST /api/v1/clock: %d" % status)
    with connect(2527) as s:
        deliver(s, "greylisted once", sender=sender)


@check
def port_2528_spam_policy_rejects_gtube_after_data():
    with connect(2528) as s:
        expect_reply(s.mail("app@example.com"), 250, "2.1.0 Ok")
        expect_reply(s.rcpt("user@example.org"), 250, "2.1.5 Ok")
        expect_reply(s.data(message("spam", GTUBE + "\r\n")), 554,
                     "5.7.1 Spam message rejected")


@check
def port_2529_abrupt_eof_at_data():
    with connect(2529) as s:
        expect_reply(s.mail("app@example.com"), 250, "2.1.0 Ok")
        expect_reply(s.rcpt("user@example.org"), 250, "2.1.5 Ok")
        try:
            s.data(message("cut off"))
            raise CheckFailed("DATA got an answer")
        except smtplib.SMTPServerDisconnected:
            pass


@check
def port_2530_cert_restriction_needs_the_client_certificate():
    with connect(2530, starttls=True, client_cert="client") as s:
        deliver(s, "with the right certificate")
    with connect(2530, starttls=True) as s:
        expect_reply(s.mail("app@example.com"), 250, "2.1.0 Ok")
        expect_reply(s.rcpt("user@example.org"), 550,
                     "5.7.51 TenantInboundAttribution")


def main():
    wait_until_ready()
    print("client: the emulator at %s is healthy" % API)
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
