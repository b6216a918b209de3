"""A pytest fixture that runs smtp-emulator for one test.

`smtp_emulator(*args)` starts the binary on a free port (port 0; the port is
read from its `listening smtp HOST:PORT` line), with the control API on
another free port, and stops it with SIGTERM after the test. Copy this file
into your own test suite; set SMTP_EMULATOR_BIN if the binary is not on
PATH (here it defaults to this repository's build/smtp-emulator).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")


def emulator_binary():
    path = os.environ.get("SMTP_EMULATOR_BIN")
    if path:
        return path
    built = os.path.join(REPO, "build", "smtp-emulator")
    if os.path.exists(built):
        return built
    return shutil.which("smtp-emulator") or pytest.skip("no smtp-emulator")


class Emulator:
    def __init__(self, args):
        cmd = [emulator_binary(), "--hostname", "mx.test",
               "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.ports = {}
        while "smtp" not in self.ports or "api" not in self.ports:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("smtp-emulator exited with status %s"
                                   % self.proc.wait())
            m = re.match(r"listening (\w+) .*:(\d+)$", line.strip())
            if m:
                self.ports.setdefault(m.group(1), int(m.group(2)))
        self.host, self.port = "127.0.0.1", self.ports["smtp"]

    def api(self, path):
        url = "http://127.0.0.1:%d%s" % (self.ports["api"], path)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=10) == 0
        self.proc.stdout.close()


@pytest.fixture
def smtp_emulator():
    """Call it with the emulator's options; every one started is stopped."""
    started = []

    def start(*args):
        emu = Emulator(args)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
