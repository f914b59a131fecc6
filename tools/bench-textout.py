#!/usr/bin/python3
"""bench-textout - what printing costs: `dkv data get -r` of a large subtree.

usage: tools/bench-textout.py [-n ENTRIES] [-r RUNS] [--strings] [--callgrind]
                              BUILD_DIR [BUILD_DIR...]

Starts one standalone node (from the first BUILD_DIR), stores ENTRIES
entries (default 100,000) below ("bench",) in one pipelined connection,
then times `distkv client data get -r bench > /dev/null` with the client
of each BUILD_DIR, RUNS times each (default 5), interleaved so that
background load hits every build alike, and prints the medians of the
wall time and of the client's CPU time (user + system: where the text
is written, apart from the server and the network).  Builds
whose client knows `-o json` are timed with it too, and with `-d _`.
So two builds of different commits measure what a change to the text
writers costs, against the same server and data.

The values are a mix of what a tree holds: plain strings, strings that
YAML 1.1 readers would misread ("ON", "12:30", ...), integers, floats,
8-byte byte strings and small maps.  With --strings they are all short
strings, half of them plain ("value 123") and half of them ones that need
quotes: what the quoting test alone costs.  With --callgrind each case
also runs once under valgrind's callgrind, which counts the client's
instructions: a figure that does not move with the machine's load.
Kills what it started on exit.
"""

import argparse
import os
import pathlib
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "system"))
from dkvproto import Path, Proto  # noqa: E402

TRICKY = ["ON", "yes", "n", "12:30", "0x1F", "1e3", "2001-12-14", "~", "=", "1_000"]


def string_value(i):
    return "value %d" % i if i % 2 else TRICKY[i % len(TRICKY)]


def value(i):
    k = i % 8
    if k == 0:
        return "value %d" % i
    if k == 1:
        return TRICKY[i % len(TRICKY)]
    if k == 2:
        return i * 7919
    if k == 3:
        return i / 7
    if k == 4:
        return i.to_bytes(8, "big")
    if k == 5:
        return {"a": i, "b": "ON", "c": [1.5, None, True]}
    if k == 6:
        return "a longer string with spaces, number %d and a colon: here" % i
    return "line one\nline two %d\n" % i


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("bench-textout: the server did not start")


def fill(port, n, make):
    p = Proto(port=port, timeout=60)
    batch = 2000
    for start in range(0, n, batch):
        seqs = []
        for i in range(start, min(n, start + batch)):
            seq = p.next_seq()
            p.send({"seq": seq, "action": "set_value", "nchain": 0,
                    "path": Path("bench", "k%d" % (i // 1000), i % 1000), "value": make(i)})
            seqs.append(seq)
        for seq in seqs:
            r = p.recv_for(seq, timeout=60)
            if "error" in r:
                raise SystemExit("bench-textout: set failed: %r" % (r,))
    p.close()


def supports_json(distkv):
    r = subprocess.run([distkv, "client", "data", "get", "--help"], capture_output=True,
                       text=True)
    return "--json" in r.stdout


def run_once(distkv, port, args):
    """Wall time, the client's CPU time (user + system), output bytes."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([distkv, "client", "-p", str(port), "data", "get", *args, "bench"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit("bench-textout: %s failed: %s" % (distkv, r.stderr.decode()))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return t, cpu, len(r.stdout)


def instructions(distkv, port, args):
    """The client's instructions (callgrind's 'I refs') for one run."""
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        distkv, "client", "-p", str(port), "data", "get", *args, "bench"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in r.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip().replace(",", ""))
    raise SystemExit("bench-textout: no instruction count from valgrind:\n" + r.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100000, help="entries (default 100000)")
    ap.add_argument("-r", type=int, default=5, help="runs per build and format (default 5)")
    ap.add_argument("--strings", action="store_true", help="only short strings as values")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count the client's instructions (valgrind)")
    ap.add_argument("builds", nargs="+", help="meson build directories")
    a = ap.parse_args()
    clients = [str(pathlib.Path(b).resolve() / "tools" / "distkv") for b in a.builds]
    for c in clients:
        if not os.access(c, os.X_OK):
            raise SystemExit("bench-textout: no %s" % c)

    tmp = tempfile.mkdtemp(prefix="bench-textout-")
    port = free_port()
    srv = subprocess.Popen([clients[0], "-C", "server.bind_default.port=%d" % port,
                            "-C", "server.bind_default.host=127.0.0.1",
                            "-C", "server.cluster=false", "server", "-i", "bench", "bench-node"],
                           cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        t0 = time.monotonic()
        fill(port, a.n, string_value if a.strings else value)
        print("# %d entries (%s) stored in %.1f s; load average %.2f" %
              (a.n, "strings" if a.strings else "mixed values", time.monotonic() - t0,
               os.getloadavg()[0]))
        cases = []
        for b, c in zip(a.builds, clients):
            cases.append((b, c, "yaml -r", ["-r"]))
            if supports_json(c):
                cases.append((b, c, "json -r", ["-r", "-o", "json"]))
            cases.append((b, c, "yaml -d_", ["-d", "_"]))
            if supports_json(c):
                cases.append((b, c, "json -d_", ["-d", "_", "-o", "json"]))
        times = {i: [] for i in range(len(cases))}
        cpus = {i: [] for i in range(len(cases))}
        sizes = {}
        for _ in range(a.r):
            for i, (b, c, _name, args) in enumerate(cases):
                t, cpu, size = run_once(c, port, args)
                times[i].append(t)
                cpus[i].append(cpu)
                sizes[i] = size
        ins = {}
        if a.callgrind:
            for i, (_b, c, _name, args) in enumerate(cases):
                ins[i] = instructions(c, port, args)
        print("%-32s %-9s %8s %10s %12s %7s%s" %
              ("build", "output", "wall s", "entries/s", "client cpu s", "MB",
               " %14s" % "instr./entry" if ins else ""))
        for i, (b, _c, name, _args) in enumerate(cases):
            med = statistics.median(times[i])
            print("%-32s %-9s %8.3f %10.0f %12.3f %7.1f%s" %
                  (b, name, med, a.n / med, statistics.median(cpus[i]), sizes[i] / 1e6,
                   " %14.0f" % (ins[i] / a.n) if ins else ""))
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
