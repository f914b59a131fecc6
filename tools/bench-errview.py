#!/usr/bin/python3
"""bench-errview.py - what reading the mount's .errors costs.

usage: tools/bench-errview.py [--build DIR] [--records N] [--rounds N]

Starts a standalone distkv node (DIR/tools/distkv, default build/) that
mounts its tree in a temporary directory, writes --records (1,000) error
records through the Python API as a runner writes them (doc/errors.md: a
record and one node's details, paths ("bench", "gNN", "jobNNN"), 50 per
group; every tenth error has a second subsystem at the same path), then
times, --rounds (5) times each, the median and the slowest:

- `ls -R MNT/.errors`  (the view by error path, errview.c)
- `cat MNT/.errors/bench/*/*/_`  (every error's text, rendered at open)
- `grep -rl 'resolved: false' MNT/.errors`  (the open errors)
- `ls -R MNT/.distkv/error`  (the records as stored, for comparison)

The first round of each is cold (the kernel has nothing of the view);
the view's names and texts are never cached, its listings are.  Kills
and unmounts what it started on exit.
"""

import argparse
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

import anyio  # noqa: E402

from distkv.client import open_client  # noqa: E402

TRACE = 'Traceback (most recent call last):\n  File "<job>", line 1\nRuntimeError: Owch\n'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def fill(port, n):
    async with open_client(host="127.0.0.1", port=port) as c:
        t = time.time()
        for i in range(n):
            path = ["bench", "g%02d" % (i // 50), "job%03d" % i]
            subs = ["run", "type"] if i % 10 == 0 else ["run"]
            for s in subs:
                tock = (await c.get_tock())
                rec = {"path": path, "subsystem": s, "severity": 1, "resolved": False,
                       "count": 1, "first_seen": t, "last_seen": t, "created": t}
                where = (".distkv", "error", "bench", tock)
                await c.set(where, value=rec, chain=None)
                await c.set(where + ("bench",), value={"seen": t, "tock": tock,
                                                       "message": "RuntimeError: Owch",
                                                       "trace": TRACE})


def timed(cmd):
    t0 = time.monotonic()
    r = subprocess.run(["sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    if r.returncode not in (0, 1):
        raise SystemExit("%s failed: %s" % (cmd, r.stderr.decode()))
    return dt, r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dkv-errview-")
    mnt = os.path.join(tmp, "mnt")
    port = free_port()
    srv = subprocess.Popen([os.path.join(a.build, "tools", "distkv"),
                            "-C", "server.cluster=false",
                            "-C", "server.bind_default.host=127.0.0.1",
                            "-C", "server.bind_default.port=%d" % port,
                            "server", "--mount", mnt, "-i", "bench", "bench"],
                           stderr=subprocess.PIPE, text=True, cwd=tmp)
    try:
        for line in srv.stderr:
            if "tree mounted" in line:
                break
        t0 = time.monotonic()
        anyio.run(fill, port, a.records)
        print("%d errors (%d records) written in %.2f s" %
              (a.records, a.records + (a.records + 9) // 10, time.monotonic() - t0))
        ev = os.path.join(mnt, ".errors")
        cmds = [
            ("ls -R .errors", "ls -R %s" % ev),
            ("cat .errors/bench/*/*/_", "cat %s/bench/*/*/_" % ev),
            ("grep -rl 'resolved: false' .errors", "grep -rl 'resolved: false' %s" % ev),
            ("ls -R .distkv/error (as stored)", "ls -R %s/:=.distkv/error" % mnt),
        ]
        print("%-40s %10s %10s %10s  %s" % ("command", "cold ms", "median ms", "max ms", "output"))
        for name, cmd in cmds:
            times = []
            out = b""
            for _ in range(a.rounds):
                dt, out = timed(cmd)
                times.append(dt * 1000)
            print("%-40s %10.1f %10.1f %10.1f  %d lines, %d bytes" %
                  (name, times[0], statistics.median(times[1:] or times), max(times),
                   out.count(b"\n"), len(out)))
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
