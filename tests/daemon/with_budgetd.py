#!/usr/bin/python3
"""with_budgetd.py - run a check against a freshly started budgetd.

usage: with_budgetd.py BUDGETD CHECK [ARGS...]

Starts BUDGETD on a temporary database with a 127.0.0.1 ephemeral port,
waits for its READY=1 notification (sd_notify protocol, as systemd does),
runs CHECK with every "{addr}" in ARGS replaced by host:port and "{pid}" by
budgetd's pid, then stops budgetd with SIGTERM and requires a clean exit.
The exit status is CHECK's, or 1 when budgetd misbehaved.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 60


def main():
    budgetd, check = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory(prefix="budgetd-check-") as tmp:
        notify_path = os.path.join(tmp, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(READY_TIMEOUT_S)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        env.pop("STATE_DIRECTORY", None)
        log = open(os.path.join(tmp, "budgetd.log"), "w+")
        proc = subprocess.Popen(
            [budgetd, "--db", os.path.join(tmp, "b.db"), "--listen", "127.0.0.1:0"],
            env=env, stderr=log, stdin=subprocess.DEVNULL)
        addr = None
        try:
            while addr is None:
                msg = notify.recv(4096).decode()
                m = re.search(r"STATUS=listening on (127\.0\.0\.1:\d+)", msg)
                if "READY=1" in msg and m:
                    addr = m.group(1)
        except socket.timeout:
            proc.kill()
            log.seek(0)
            print("budgetd did not become ready:\n" + log.read())
            return 1
        args = [a.replace("{addr}", addr).replace("{pid}", str(proc.pid)) for a in check]
        rc = subprocess.call(args)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = "timeout"
        if status != 0:
            log.seek(0)
            print(f"budgetd exited with {status}:\n" + log.read())
            return 1
        return rc


if __name__ == "__main__":
    sys.exit(main())
