"""The catalogue of real rejections, table-driven: every entry of every
tests/data/catalogue.json is run with a real client against the emulator
started with the entry's scenario and parameters, and each reply line is
compared with the expected one, then the connection's fate is checked.

An entry:
  {"id", "provider", "failure", "scenario", "set": {param: "value"},
   "stage": connect|ehlo|starttls|auth|mail|rcpt|data|message,
   "expect": ["reply line", ...], "fate": "kept"|"closed"|"dropped"}
optional: "args" (more emulator options), "helo" (the EHLO name),
"tls" (STARTTLS before the stage), "auth" ({"mechanism": PLAIN|XOAUTH2,
"user", "password" | "token"}; default PLAIN alice/wrong), "mail_params"
(after MAIL FROM:<...>), "body_bytes" (message size at least this),
"after" (the template the NOOP after a kept refusal must get), "source".

The client sends EHLO client.example, MAIL FROM:<alice@sender.example>,
RCPT TO:<bob@example.org> and a message "From: Alice
<alice@sender.example>"; a stage's earlier steps must succeed. At an auth
stage a 334 reply that the entry expects to be followed by more lines is
answered with an empty line (Gmail's XOAUTH2 error challenge).

Expected lines are copied from replies.md / docs/reply-sources.md, never
from scenario code. Per-message parts are placeholders: exact ones
{IP} {HOST} {HELO} {RCPT} {RCPT_DOMAIN} {SENDER} {SENDER_DOMAIN} {FROM}
{DOMAIN} (the From: domain) {DOMAIN_UC}, and patterns {ID} (Exchange's
16 hex digits), {TS} (2025-07-30T19:50:34.124Z), {GMAILID}, {MCREF}
(Mimecast's reference), {AMAVISID} (00000-22-225).

Fates: kept = a NOOP is still answered; closed = EOF right after the
reply; dropped = EOF with no reply at the stage (expect is [])."""

import base64
import concurrent.futures
import json
import os
import re
import ssl
import subprocess
import time
import unittest

from helpers import HOST, ROOT, Emulator, Raw, TestCase, client_ctx

DATA = os.path.join(ROOT, "tests", "data")
STAGES = ["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data",
          "message"]
FATES = ["kept", "closed", "dropped"]

SENDER = "alice@sender.example"
RCPT = "bob@example.org"
HELO = "client.example"

PATTERNS = {
    "ID": r"[0-9A-F]{16}",
    "TS": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
    "GMAILID": r"[0-9a-f]{13}-[0-9a-f]{11}s[im]\d+[a-f][0-9a-f]{2}\.\d{1,3}",
    "MCREF": r"[A-Za-z0-9_-]{22}\.[a-z]{2}\d{1,3}",
    "AMAVISID": r"\d{5}-\d{2}-\d{1,3}",
}


def load_entries():
    out = []
    path = os.path.join(DATA, "catalogue.json")
    with open(path) as f:
        for e in json.load(f):
            e["_file"] = os.path.basename(path)
            out.append(e)
    return out


ENTRIES = load_entries()


def context(e):
    helo = e.get("helo", HELO)
    return {
        "IP": "127.0.0.1", "HOST": HOST, "HELO": helo, "RCPT": RCPT,
        "RCPT_DOMAIN": RCPT.split("@")[1], "SENDER": SENDER,
        "SENDER_DOMAIN": SENDER.split("@")[1], "FROM": SENDER,
        "DOMAIN": SENDER.split("@")[1],
        "DOMAIN_UC": SENDER.split("@")[1].upper(),
    }


def template_regex(line, ctx):
    """A template line as an anchored regex; an unknown placeholder is an
    error in the catalogue."""
    out, pos = [], 0
    for m in re.finditer(r"\{([A-Z_]+)\}", line):
        out.append(re.escape(line[pos:m.start()]))
        name = m.group(1)
        if name in ctx:
            out.append(re.escape(ctx[name]))
        elif name in PATTERNS:
            out.append("(?:%s)" % PATTERNS[name])
        else:
            raise ValueError("unknown placeholder {%s} in %r" % (name, line))
        pos = m.end()
    out.append(re.escape(line[pos:]))
    return "^" + "".join(out) + "$"


def message(e):
    head = ("From: Alice <%s>\r\nTo: <%s>\r\nSubject: catalogue\r\n"
            "Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
            "Message-ID: <catalogue@sender.example>\r\n\r\n" % (SENDER, RCPT))
    body = "Hello.\r\n"
    need = int(e.get("body_bytes", 0))
    while len(body) < need:
        body += "x" * 70 + "\r\n"
    return (head + body + ".\r\n").encode()


def auth_command(e):
    a = dict({"mechanism": "PLAIN", "user": "alice", "password": "wrong"},
             **e.get("auth", {}))
    mech = a["mechanism"].upper()
    if mech == "XOAUTH2":
        raw = "user=%s\x01auth=Bearer %s\x01\x01" % (a["user"], a["token"])
    else:
        raw = "\0%s\0%s" % (a["user"], a["password"])
    return "AUTH %s %s" % (mech, base64.b64encode(raw.encode()).decode())


class Refused(Exception):
    pass


def drive(addr, e):
    """Run the session to the entry's stage. Returns (lines or None on
    EOF, the client)."""
    c = Raw(addr, timeout=10)
    stage = e["stage"]
    n_expect = len(e["expect"])

    def at(name, send):
        """Send (unless None) and read a reply; at the entry's stage,
        return it; before, insist on success."""
        if send is not None:
            c.send(send)
        try:
            r = c.reply()
        except (EOFError, ConnectionResetError, ssl.SSLError, OSError):
            if name == stage:
                return None
            raise Refused("EOF at %s" % name)
        if name == stage and name == "auth":
            while r[-1].startswith("334") and len(r) < n_expect:
                c.send("\r\n")
                r = r + c.reply()
            return r
        if name == stage:
            return r
        if not r[-1][:1] in ("2", "3"):
            raise Refused("%s refused before the stage: %r" % (name, r))
        return False

    steps = [("connect", None), ("ehlo", "EHLO %s\r\n" % e.get("helo", HELO))]
    for name, send in steps:
        r = at(name, send)
        if r is not False:
            return r, c
    if e.get("tls") or stage == "starttls":
        r = at("starttls", "STARTTLS\r\n")
        if r is not False:
            return r, c
        c.starttls(client_ctx())
        r = at("ehlo-again", "EHLO %s\r\n" % e.get("helo", HELO))
    if stage == "auth":
        return at("auth", auth_command(e) + "\r\n"), c
    mail = "MAIL FROM:<%s>" % SENDER
    if e.get("mail_params"):
        mail += " " + e["mail_params"]
    for name, send in [("mail", mail + "\r\n"),
                       ("rcpt", "RCPT TO:<%s>\r\n" % RCPT),
                       ("data", "DATA\r\n"),
                       ("message", message(e))]:
        r = at(name, send)
        if r is not False:
            return r, c
    raise AssertionError("unknown stage %r" % stage)


def check_entry(addr, e):
    """None when the entry holds, else a description of the difference."""
    ctx = context(e)
    try:
        got, c = drive(addr, e)
    except Refused as x:
        return str(x)
    try:
        if e["fate"] == "dropped":
            if got is not None:
                return "expected no reply, got %r" % got
            return None
        if got is None:
            return "EOF where %r was expected" % e["expect"]
        if len(got) != len(e["expect"]):
            return "got %d lines %r, expected %d: %r" % (
                len(got), got, len(e["expect"]), e["expect"])
        for g, want in zip(got, e["expect"]):
            if not re.match(template_regex(want, ctx), g):
                return "line %r does not match %r" % (g, want)
        if e["fate"] == "closed":
            if not c.closed(timeout=5):
                return "the connection stayed open after %r" % got
            if c.buf:
                return "bytes after the reply: %r" % c.buf
        elif e["fate"] == "kept":
            try:
                r = c.cmd("NOOP")
            except (EOFError, OSError) as x:
                return "closed after the reply (NOOP: %s)" % x
            if e.get("after") and not re.match(
                    template_regex(e["after"], ctx), r[0]):
                return "NOOP got %r, expected %r" % (r, e["after"])
        return None
    finally:
        c.close()


def group_key(e):
    sets = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in e.get("set", {}).items()))
    return (e["scenario"], sets, tuple(e.get("args", [])))


def run_group(key, entries):
    scenario, sets, args = key
    argv = ["--scenario", scenario, "--seed", "1"] + list(args)
    for k, v in sets:
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = ",".join(str(x) for x in v)
        argv += ["--set", "%s=%s" % (k, v)]
    results = {}
    emu = Emulator(*argv)
    try:
        emu.start()
    except AssertionError as x:
        return {e["id"]: "emulator did not start: %s" % x for e in entries}
    try:
        for e in entries:
            try:
                results[e["id"]] = check_entry(emu.addr(), e)
            except Exception as x:  # noqa: BLE001 - reported per entry
                results[e["id"]] = "%s: %s" % (type(x).__name__, x)
    finally:
        try:
            emu.stop()
        except AssertionError as x:
            for e in entries:
                results[e["id"]] = results[e["id"]] or str(x)
    return results


class Catalogue(TestCase):
    results = None

    @classmethod
    def setUpClass(cls):
        groups = {}
        for e in ENTRIES:
            groups.setdefault(group_key(e), []).append(e)
        cls.results = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            for r in ex.map(lambda kv: run_group(*kv), groups.items()):
                cls.results.update(r)

    def test_entries_are_well_formed(self):
        self.assertGreater(len(ENTRIES), 0)
        seen = set()
        for e in ENTRIES:
            with self.subTest(id=e.get("id")):
                for k in ("id", "provider", "failure", "scenario", "set",
                          "stage", "expect", "fate"):
                    self.assertIn(k, e)
                self.assertNotIn(e["id"], seen, "duplicate id")
                seen.add(e["id"])
                self.assertIn(e["stage"], STAGES)
                self.assertIn(e["fate"], FATES)
                self.assertEqual(e["fate"] == "dropped", e["expect"] == [])
                for line in e["expect"]:
                    template_regex(line, context(e))

    def test_every_failure_choice_is_catalogued(self):
        """Each `failure` a provider scenario offers has an entry. (The
        choices are read from the scenario file: --describe cuts a long
        list of choices short.)"""
        have = {}
        for e in ENTRIES:
            f = e.get("set", {}).get("failure")
            if f:
                have.setdefault(e["scenario"], set()).add(f)
        for sc in ("exchange-online", "gmail", "yahoo", "proofpoint",
                   "mimecast", "barracuda", "postfix", "exim"):
            with open(os.path.join(ROOT, "scenarios", sc + ".lua")) as f:
                text = f.read()
            m = (re.search(r"^local FAILURES = \{(.*?)\}", text, re.S | re.M)
                 or re.search(r"failure = \{[^}]*choices = \{([^}]*)\}", text))
            self.assertIsNotNone(m, sc)
            choices = set(re.findall(r'"([^"]+)"', m.group(1)))
            self.assertGreater(len(choices), 0, sc)
            self.assertEqual(choices - have.get(sc, set()), set(), sc)


def _make(entry):
    def test(self):
        err = self.results.get(entry["id"], "not run")
        if err:
            self.fail("%s (%s, %s --set failure=%s, stage %s): %s" % (
                entry["id"], entry["_file"], entry["scenario"],
                entry.get("set", {}).get("failure", ""), entry["stage"], err))
    return test


for _e in ENTRIES:
    setattr(Catalogue, "test_" + re.sub(r"\W", "_", _e["id"]), _make(_e))


class ConnectionLimit(TestCase):
    """too-many-connections with a limit counts concurrent connections per
    client address and frees a slot when a connection ends."""

    def check(self, scenario, line):
        with Emulator("--scenario", scenario, "--set",
                      "failure=too-many-connections", "--set",
                      "connection_limit=1") as emu:
            a = Raw(emu.addr())
            self.assertEqual(a.reply1(), "220 %s ESMTP smtp-emulator" % HOST)
            b = Raw(emu.addr())
            self.assertEqual(b.reply1(), line)
            self.assertTrue(b.closed())
            b.close()
            self.assertEqual(a.cmd("QUIT"), ["221 2.0.0 Bye"])
            a.close()
            for _ in range(50):  # the first session's end is counted
                c = Raw(emu.addr())
                first = c.reply1()
                c.close()
                if first.startswith("220"):
                    break
                time.sleep(0.05)
            self.assertTrue(first.startswith("220"), first)

    def test_postfix(self):
        self.check("postfix", "421 4.7.0 %s Error: too many connections "
                   "from 127.0.0.1" % HOST)

    def test_exim(self):
        self.check("exim", "421 %s: Too many concurrent SMTP connections; "
                   "please try again later" % HOST)


if __name__ == "__main__":
    unittest.main()
