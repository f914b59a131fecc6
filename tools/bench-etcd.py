#!/usr/bin/python3
"""bench-etcd.py - the cluster benchmark's workloads against a 3-member
etcd cluster on loopback, for a side-by-side with tools/bench-cluster.sh.

    /usr/bin/python3 tools/bench-etcd.py        # needs etcd (Debian etcd-server)

Starts three etcd members (data in a temporary directory, removed at the
end), then through etcd's JSON gateway (HTTP/1.1, keep-alive):

- replication lag: LAG_N puts on member 1 at LAG_RATE per second, each
  timed from its send to the watch event on member 2 and member 3;
- bulk: BULK_N puts on member 1 from BULK_THREADS connections as fast as
  they are answered, and the time until members 2 and 3 have applied the
  last one (a serializable read of its revision there).

etcd acknowledges a put only after a majority stored it (Raft), distkv
before it replicates (every node applies changes by the chain rules), so
the two answer different questions; the figures show the cost of each.
Prints a markdown table.
"""

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

LAG_N = int(os.environ.get("LAG_N", "500"))
LAG_RATE = float(os.environ.get("LAG_RATE", "100"))
BULK_N = int(os.environ.get("BULK_N", "20000"))
BULK_THREADS = int(os.environ.get("BULK_THREADS", "16"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Conn:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path, body):
        self.c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = self.c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("%s: %s %s" % (path, r.status, data[:200]))
        return json.loads(data)


def start(tmp):
    names = ["e1", "e2", "e3"]
    ports = {n: (free_port(), free_port()) for n in names}
    cluster = ",".join("%s=http://127.0.0.1:%d" % (n, ports[n][1]) for n in names)
    procs = []
    for n in names:
        cport, pport = ports[n]
        log = open(os.path.join(tmp, n + ".log"), "w")
        procs.append(subprocess.Popen(
            ["etcd", "--name", n, "--data-dir", os.path.join(tmp, n),
             "--listen-client-urls", "http://127.0.0.1:%d" % cport,
             "--advertise-client-urls", "http://127.0.0.1:%d" % cport,
             "--listen-peer-urls", "http://127.0.0.1:%d" % pport,
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % pport,
             "--initial-cluster", cluster, "--initial-cluster-state", "new",
             "--initial-cluster-token", "bench-%d" % os.getpid()],
            stdout=log, stderr=subprocess.STDOUT))
    cports = [ports[n][0] for n in names]
    deadline = time.monotonic() + 30
    for p in cports:
        while True:
            try:
                Conn(p).post("/v3/kv/put", {"key": b64("ready"), "value": b64("1")})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError("etcd did not start; logs in %s" % tmp)
                time.sleep(0.2)
    return procs, cports


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def watcher(port, prefix, seen, started):
    """Stream watch events for keys under prefix; seen[key] = arrival."""
    s = socket.create_connection(("127.0.0.1", port))
    body = json.dumps({"create_request": {"key": b64(prefix), "range_end": b64(prefix[:-1] + chr(ord(prefix[-1]) + 1))}})
    s.sendall(("POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
    f = s.makefile("rb")
    while f.readline() not in (b"\r\n", b""):
        pass
    started.set()
    dec = json.JSONDecoder()
    buf = ""
    while True:
        line = f.readline()  # chunked: size line, data line
        if not line:
            return
        try:
            int(line.strip() or b"0", 16)
            continue
        except ValueError:
            pass
        buf += line.decode()
        while buf.strip():
            try:
                obj, end = dec.raw_decode(buf.lstrip())
            except ValueError:
                break
            buf = buf.lstrip()[end:]
            t = time.monotonic()
            for ev in (obj.get("result") or {}).get("events") or []:
                k = base64.b64decode(ev["kv"]["key"]).decode()
                seen.setdefault(k, t)


def lag(cports):
    seen2, seen3 = {}, {}
    ev2, ev3 = threading.Event(), threading.Event()
    for port, seen, ev in ((cports[1], seen2, ev2), (cports[2], seen3, ev3)):
        threading.Thread(target=watcher, args=(port, "lag/", seen, ev), daemon=True).start()
    ev2.wait(10)
    ev3.wait(10)
    time.sleep(0.5)
    c = Conn(cports[0])
    sent = {}
    t0 = time.monotonic()
    for i in range(LAG_N):
        due = t0 + i / LAG_RATE
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        k = "lag/%d" % i
        sent[k] = time.monotonic()
        c.post("/v3/kv/put", {"key": b64(k), "value": b64("v%d" % i)})
    time.sleep(2)
    res = []
    for seen in (seen2, seen3):
        lags = [(seen[k] - sent[k]) * 1000 for k in sent if k in seen]
        res.append((pct(lags, 0.5), pct(lags, 0.99), max(lags) if lags else float("nan"),
                    len(sent) - len(lags)))
    return res


def bulk(cports):
    per = BULK_N // BULK_THREADS
    last_rev = [0]
    lock = threading.Lock()

    def work(t):
        c = Conn(cports[0])
        for i in range(per):
            r = c.post("/v3/kv/put", {"key": b64("bulk/%d/%d" % (t, i)), "value": b64("x" * 8)})
            rev = int(r["header"]["revision"])
            with lock:
                last_rev[0] = max(last_rev[0], rev)

    t0 = time.monotonic()
    ths = [threading.Thread(target=work, args=(t,)) for t in range(BULK_THREADS)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    t_written = time.monotonic() - t0
    done = []
    for port in cports[1:]:
        c = Conn(port)
        while True:
            r = c.post("/v3/kv/range", {"key": b64("ready"), "serializable": True})
            if int(r["header"]["revision"]) >= last_rev[0]:
                break
            time.sleep(0.005)
        done.append(time.monotonic() - t0)
    return per * BULK_THREADS, t_written, done


def main():
    if not shutil.which("etcd"):
        print("bench-etcd: no etcd here (Debian package etcd-server); skipped", file=sys.stderr)
        return 0
    tmp = tempfile.mkdtemp(prefix="bench-etcd-")
    procs = []
    try:
        procs, cports = start(tmp)
        ver = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        (l2, l3) = lag(cports)
        n, tw, done = bulk(cports)
        print("| etcd (%s), 3 members on loopback | figure |" % ver)
        print("| --- | --- |")
        print("| lag e1 → e2, %d puts at %g/s | p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d lost |"
              % (LAG_N, LAG_RATE, *l2))
        print("| lag e1 → e3, %d puts at %g/s | p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d lost |"
              % (LAG_N, LAG_RATE, *l3))
        print("| %d puts from %d connections (JSON gateway) | written in %.2f s (%.0f/s); "
              "applied on e2 after %.2f s, on e3 after %.2f s |"
              % (n, BULK_THREADS, tw, n / tw, done[0], done[1]))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
