"""Run every tests/integration/test_*.py in parallel processes and report.

Usage: run.py [-j N] [pattern ...]"""

import argparse
import concurrent.futures
import glob
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_one(path):
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "unittest", "-v",
                        os.path.basename(path)[:-3]],
                       cwd=HERE, capture_output=True, text=True)
    out = p.stdout + p.stderr
    m = re.search(r"Ran (\d+) tests?", out)
    ran = int(m.group(1)) if m else 0
    return path, p.returncode, ran, out, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("patterns", nargs="*")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    if a.patterns:
        files = [f for f in files if any(p in f for p in a.patterns)]
    total = failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.j) as ex:
        for path, rc, ran, out, secs in ex.map(run_one, files):
            name = os.path.basename(path)
            total += ran
            status = "ok" if rc == 0 else "FAILED"
            print("%-36s %3d tests  %5.1fs  %s" % (name, ran, secs, status),
                  flush=True)
            if rc != 0:
                failed += 1
                print(out, flush=True)
    print("integration: %d tests in %d files, %d files failed"
          % (total, len(files), failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
