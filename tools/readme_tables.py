#!/usr/bin/env python3
"""Write the generated parts of README.md, so they cannot drift from what
is tested and what the binary says:

- the table of catalogued rejections, from tests/data/catalogue.json
  (between "<!-- catalogue:begin -->" and "<!-- catalogue:end -->");
  per-message parts of a reply ({IP}, {TS}, ...) appear as capitalised
  words (IP, TIMESTAMP, ...);
- the scenario reference: `smtp-emulator --describe NAME` for every
  scenario `--list-scenarios` names (between "<!-- scenarios:begin -->"
  and "<!-- scenarios:end -->").

    tools/readme_tables.py          rewrite both in README.md
    tools/readme_tables.py --check  exit 1 if README.md is stale

EMU_BIN names the binary (default build/smtp-emulator)."""

import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.join(ROOT, "tests", "data", "catalogue.json")
README = os.path.join(ROOT, "README.md")
EMU = os.environ.get("EMU_BIN", os.path.join(ROOT, "build", "smtp-emulator"))

WORDS = {"TS": "TIMESTAMP", "GMAILID": "ID", "MCREF": "REF",
         "AMAVISID": "ID", "DOMAIN_UC": "DOMAIN", "RCPT_DOMAIN": "RCPTDOMAIN",
         "SENDER_DOMAIN": "SENDERDOMAIN"}
STAGES = {"connect": "connect", "ehlo": "EHLO", "starttls": "STARTTLS",
          "auth": "AUTH", "mail": "MAIL", "rcpt": "RCPT", "data": "DATA",
          "message": "end of data"}
FATES = {"kept": "kept", "closed": "closed after the reply",
         "dropped": "closed, no reply"}


def reply_text(lines):
    def word(m):
        return WORDS.get(m.group(1), m.group(1))
    out = []
    for line in lines:
        line = re.sub(r"\{([A-Z_]+)\}", word, line).replace("{}", "")
        # Markdown: keep a literal pipe and runs of spaces visible.
        out.append("`%s`" % line.replace("|", "\\|"))
    return "<br>".join(out)


def command(e):
    parts = ["--scenario", e["scenario"]]
    for k, v in e["set"].items():
        parts += ["--set", "%s=%s" % (k, v)]
    return "`%s`" % " ".join(shlex.quote(p) for p in parts).replace("|", "\\|")


def stage(e):
    s = STAGES[e["stage"]]
    if e.get("tls"):
        s += " (after STARTTLS)"
    return s


def table():
    with open(DATA) as f:
        entries = json.load(f)
    rows = ["| Failure | Provider | Command line | Reply | Stage | "
            "Connection |", "|---|---|---|---|---|---|"]
    for e in entries:
        rows.append("| %s | %s | %s | %s | %s | %s |" % (
            e["failure"], e["provider"], command(e), reply_text(e["expect"]),
            stage(e), FATES[e["fate"]]))
    return "\n".join(rows) + "\n"


def emulator(*args):
    return subprocess.run([EMU, *args], capture_output=True, text=True,
                          check=True).stdout


def reference():
    out = []
    for line in emulator("--list-scenarios").splitlines():
        name = line.split()[0]
        text = emulator("--describe", name).rstrip("\n")
        out.append("#### %s\n\n    build/smtp-emulator --scenario %s\n\n"
                   "```\n%s\n```\n" % (name, name, text))
    return "\n".join(out)


def splice(text, what, body):
    begin, end = "<!-- %s:begin -->" % what, "<!-- %s:end -->" % what
    try:
        head, rest = text.split(begin + "\n", 1)
        _, tail = rest.split(end, 1)
    except ValueError:
        sys.exit("README.md has no %s ... %s block" % (begin, end))
    return head + begin + "\n" + body + end + tail


def main():
    with open(README) as f:
        text = f.read()
    new = splice(text, "catalogue", table())
    new = splice(new, "scenarios", reference())
    if "--check" in sys.argv[1:]:
        if new != text:
            print("README.md's generated parts are stale: run "
                  "tools/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        with open(README, "w") as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
