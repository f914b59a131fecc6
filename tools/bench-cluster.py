#!/usr/bin/python3
"""bench-cluster.py - the measuring half of tools/bench-cluster.sh.

The shell script starts the Serf agents and the servers; this program
only talks to the servers' client ports (raw msgpack over TCP, with
tests/system/dkvproto.py for paths and decoding):

    bench-cluster.py wait-ready NODE=HOST:PORT ...
        until every node's cluster state says ready and all others live

    bench-cluster.py run [options] NODE=HOST:PORT NODE=HOST:PORT NODE=HOST:PORT
        (NODE is the distkv node name; it is checked against the greeting)
        the first node is the writer A, the others B, C...; prints a
        markdown table:
        * replication lag: LAG_N sets on A at LAG_RATE/s, each seen by a
          watch on every other node (p50 / p99 / max, lost)
        * sustained rate: for each of RATES, pipelined sets on A at that
          rate for RATE_SECONDS, sampling every 0.1 s how many of A's
          changes each other node still lacks; then how long until it has
          A's last tick with no tick of A missing (get_state), up to
          CATCHUP_LIMIT seconds; the highest rate caught up within
          CATCHUP_OK seconds is reported
        * bulk: BULK_N sets as fast as dkv-bench can send them (-c 10 -P
          16); time until every other node has all of them

Options of `run`: --bench PATH (dkv-bench, needed for the bulk part),
--lag-n 500, --lag-rate 100, --rates 5000,10000,20000,40000,80000,160000,
--rate-seconds 5, --catchup-ok 5, --catchup-limit 30, --bulk-n 100000,
--skip lag,rate,bulk.

Only loopback-sized figures: the load generator shares the CPUs with three
servers and three agents.
"""

import argparse
import os
import select
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))

import msgpack  # noqa: E402

from dkvproto import ConnectionClosed, Path, Proto, encode, make_unpacker  # noqa: E402


def log(*a):
    print("bench-cluster:", *a, file=sys.stderr, flush=True)


class Node:
    def __init__(self, spec):
        name, _, addr = spec.partition("=")
        host, _, port = addr.rpartition(":")
        if not name or not host or not port.isdigit():
            raise SystemExit("bench-cluster: bad node %r (want NAME=HOST:PORT)" % spec)
        self.name, self.host, self.port = name, host, int(port)

    def proto(self, timeout=10.0):
        return Proto(self.host, self.port, timeout=timeout)

    def request(self, action, timeout=10.0, **kw):
        with self.proto(timeout) as p:
            return p.request(action, **kw)


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


# --------------------------------------------------------------------------
# readiness

def is_ready(node, others):
    try:
        c = node.request("get_state", 3.0, cluster=True).get("cluster")
    except (OSError, TimeoutError, ConnectionClosed):
        return False
    if not isinstance(c, dict) or c.get("ready") is not True:
        return False
    peers = c.get("peers") or {}
    return all((peers.get(o.name) or {}).get("state") == "live" for o in others)


def wait_ready(nodes, timeout):
    deadline = time.monotonic() + timeout
    for n in nodes:
        others = [o for o in nodes if o is not n]
        while not is_ready(n, others):
            if time.monotonic() > deadline:
                raise SystemExit("bench-cluster: %s not ready with peers live within %gs"
                                 % (n.name, timeout))
            time.sleep(0.2)


# --------------------------------------------------------------------------
# raw connections

class Raw:
    """A non-blocking client connection: greeting read, optional hello."""

    def __init__(self, node, hello=False):
        self.sock = socket.create_connection((node.host, node.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.up = make_unpacker()
        self.greeting = self.read_one(10)
        if hello:
            self.sock.sendall(encode({"seq": 0, "qlen": 10}))
        self.sock.setblocking(False)
        self.out = b""

    def read_one(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.up:
                return m
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionClosed("closed")
            self.up.feed(data)

    def fileno(self):
        return self.sock.fileno()

    def queue(self, data):
        self.out += data

    def flush(self):
        while self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return False
            self.out = self.out[n:]
        return True

    def read(self):
        """Messages available now (non-blocking)."""
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            if not data:
                raise ConnectionClosed("closed by server")
            self.up.feed(data)
            if len(data) < (1 << 20):
                break
        for m in self.up:
            out.append(m)
        return out

    def close(self):
        self.sock.close()


def set_msg(seq, path_ext, value):
    return msgpack.packb({"seq": seq, "action": "set_value", "path": path_ext,
                          "value": value, "nchain": 0}, use_bin_type=True)


def path_ext(*elems):
    return msgpack.ExtType(3, b"".join(msgpack.packb(e, use_bin_type=True) for e in elems))


# --------------------------------------------------------------------------
# lag

def bench_lag(a, others, n, rate):
    """n sets on a at rate/s; each other node watches: lag per set."""
    w = Raw(a)
    watchers = []
    for o in others:
        r = Raw(o)              # no hello: no window, no acks needed
        r.sock.setblocking(True)
        r.sock.sendall(encode({"seq": 1, "action": "watch", "path": Path("bench-lag"),
                               "nchain": 0}))
        r.sock.setblocking(False)
        watchers.append((o, r))
    time.sleep(0.3)             # let the watches start
    sent = {}
    got = {o.name: {} for o in others}
    errors = 0
    interval = 1.0 / rate
    t_start = time.monotonic()
    i = 0
    deadline = None
    socks = [w] + [r for _, r in watchers]
    while True:
        now = time.monotonic()
        if i < n and now >= t_start + i * interval:
            w.queue(set_msg(i + 1, path_ext("bench-lag", "k%d" % (i % 10)), i))
            w.flush()
            sent[i] = time.monotonic()
            i += 1
            if i == n:
                deadline = time.monotonic() + 15
            continue
        if deadline and (time.monotonic() > deadline or
                         all(len(g) == n for g in got.values())):
            break
        wait = (t_start + i * interval - now) if i < n else 0.05
        ready, _, _ = select.select(socks, [], [], max(0.0, min(wait, 0.05)))
        for s in ready:
            t = time.monotonic()
            msgs = s.read()
            if s is w:
                errors += sum(1 for m in msgs if isinstance(m, dict) and "error" in m)
                continue
            name = next(o.name for o, r in watchers if r is s)
            for m in msgs:
                v = m.get("value") if isinstance(m, dict) else None
                if isinstance(v, int) and v in sent and v not in got[name]:
                    got[name][v] = t - sent[v]
    w.close()
    for _, r in watchers:
        r.close()
    out = {}
    for o in others:
        lags = [x * 1000 for x in got[o.name].values()]
        out[o.name] = (pct(lags, 0.5), pct(lags, 0.99), max(lags) if lags else float("nan"),
                       n - len(lags))
    return out, errors


# --------------------------------------------------------------------------
# sustained rate

def ticks_of(node, who):
    r = node.request("get_state", 10.0, nodes=True, missing=True)
    nodes = r.get("nodes") or {}
    missing = (r.get("missing") or {}).get(who)
    return nodes.get(who, 0), missing


def wait_caught_up(others, who, tick, limit, t0):
    """Seconds after t0 when each other node had `tick` of `who` with
    nothing of `who` missing; None for a node that did not within limit."""
    done = {}
    deadline = t0 + limit
    while len(done) < len(others) and time.monotonic() < deadline:
        for o in others:
            if o.name in done:
                continue
            try:
                t, miss = ticks_of(o, who)
            except (OSError, TimeoutError, ConnectionClosed):
                continue
            if t >= tick and not miss:
                done[o.name] = time.monotonic() - t0
        time.sleep(0.02)
    return {o.name: done.get(o.name) for o in others}


def bench_rate(a, others, rate, seconds, limit):
    """Pipelined sets on a at `rate`/s for `seconds`.  Returns (achieved
    rate, errors, {node: seconds after the writer stopped until caught up,
    or None}, {node: largest backlog seen while writing, in changes}).

    The backlog is sampled every 0.1 s: the changes a had acknowledged
    minus the tick of a that the other node had."""
    n = int(rate * seconds)
    keys = [path_ext("bench-rate", "k%d" % k) for k in range(10000)]
    msgs = [set_msg(i + 1, keys[i % 10000], i) for i in range(n)]
    tick0, _ = ticks_of(a, a.name)
    samplers = {o.name: o.proto() for o in others}
    backlog = {o.name: 0 for o in others}
    next_sample = 0.0
    w = Raw(a)
    step = 0.01
    per = max(1, int(rate * step))
    replies = errors = 0
    i = 0
    t0 = time.monotonic()
    while i < n or replies < n:
        now = time.monotonic()
        if now >= next_sample:
            next_sample = now + 0.1
            for name, p in samplers.items():
                done = replies
                t = (p.request("get_state", nodes=True).get("nodes") or {}).get(a.name, 0)
                backlog[name] = max(backlog[name], tick0 + done - t)
        due = min(n, int((now - t0) * rate) + per)
        if i < due:
            w.queue(b"".join(msgs[i:due]))
            i = due
        w.flush()
        ready, _, _ = select.select([w], [w] if w.out else [], [], step)
        if ready:
            for m in w.read():
                if isinstance(m, dict) and m.get("seq"):
                    replies += 1
                    if "error" in m:
                        errors += 1
        if time.monotonic() - t0 > seconds * 4 + 30:
            log("rate %d: gave up waiting for replies (%d of %d)" % (rate, replies, n))
            break
    t_end = time.monotonic()
    achieved = n / (t_end - t0)
    w.close()
    for p in samplers.values():
        p.close()
    tick, _ = ticks_of(a, a.name)
    return achieved, errors, wait_caught_up(others, a.name, tick, limit, t_end), backlog


# --------------------------------------------------------------------------
# bulk

def bench_bulk(a, others, n, bench, limit):
    tick0, _ = ticks_of(a, a.name)
    t0 = time.monotonic()
    proc = subprocess.Popen([bench, "-h", a.host, "-p", str(a.port), "-q", "-t", "set",
                             "-c", "10", "-P", "16", "-n", str(n), "-k", "100000"],
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    t_written = time.monotonic() - t0
    if proc.returncode:
        raise SystemExit("bench-cluster: dkv-bench failed (%d)" % proc.returncode)
    line = [x for x in out.splitlines() if x.startswith("bench,")]
    errors = int(line[0].split(",")[10]) if line else -1
    tick, _ = ticks_of(a, a.name)
    if tick - tick0 < n:
        log("bulk: A's tick grew by %d only, for %d sets" % (tick - tick0, n))
    done = wait_caught_up(others, a.name, tick, limit, t0)
    return t_written, errors, done


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait-ready")
    w.add_argument("--timeout", type=float, default=60)
    w.add_argument("nodes", nargs="+")
    r = sub.add_parser("run")
    r.add_argument("--bench")
    r.add_argument("--lag-n", type=int, default=500)
    r.add_argument("--lag-rate", type=float, default=100)
    r.add_argument("--rates", default="5000,10000,20000,40000,80000,160000")
    r.add_argument("--rate-seconds", type=float, default=5)
    r.add_argument("--catchup-ok", type=float, default=5)
    r.add_argument("--catchup-limit", type=float, default=30)
    r.add_argument("--bulk-n", type=int, default=100000)
    r.add_argument("--skip", default="")
    r.add_argument("nodes", nargs="+")
    args = ap.parse_args()
    nodes = [Node(s) for s in args.nodes]
    for n in nodes:
        with n.proto() as p:
            if p.greeting.get("node") != n.name:
                raise SystemExit("bench-cluster: %s:%d is node %r, not %r"
                                 % (n.host, n.port, p.greeting.get("node"), n.name))
    if args.cmd == "wait-ready":
        wait_ready(nodes, args.timeout)
        return
    if len(nodes) < 2:
        raise SystemExit("bench-cluster: need at least two nodes")
    a, others = nodes[0], nodes[1:]
    skip = set(x for x in args.skip.split(",") if x)
    rows = []
    fmt_s = lambda x: "not within %gs" % args.catchup_limit if x is None else "%.2f s" % x  # noqa

    if "lag" not in skip:
        log("lag: %d sets at %g/s on %s" % (args.lag_n, args.lag_rate, a.name))
        res, errors = bench_lag(a, others, args.lag_n, args.lag_rate)
        for o in others:
            p50, p99, mx, lost = res[o.name]
            if lost == args.lag_n:
                rows.append(("replication lag %s → %s, %d sets at %g/s"
                             % (a.name, o.name, args.lag_n, args.lag_rate),
                             "no change seen within 15 s"))
                continue
            rows.append(("replication lag %s → %s (set → watch event), %d sets at %g/s"
                         % (a.name, o.name, args.lag_n, args.lag_rate),
                         "p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d not seen within 15 s%s"
                         % (p50, p99, mx, lost, ", %d errors" % errors if errors else "")))
    if "rate" not in skip:
        best = None
        for rate in [int(x) for x in args.rates.split(",") if x]:
            log("rate: %d/s for %gs" % (rate, args.rate_seconds))
            achieved, errors, done, backlog = bench_rate(a, others, rate, args.rate_seconds,
                                                         args.catchup_limit)
            ok = all(v is not None and v <= args.catchup_ok for v in done.values())
            if achieved < 0.9 * rate:
                log("rate %d: the writer only managed %.0f/s" % (rate, achieved))
            elif ok:
                best = rate
            rows.append(("%s sets/s on %s for %g s (sent at %.0f/s)"
                         % (format(rate, ","), a.name, args.rate_seconds, achieved),
                         "; ".join("%s: complete %s after the writer stopped, "
                                   "largest backlog %s changes"
                                   % (n, fmt_s(v), format(backlog[n], ","))
                                   for n, v in done.items())
                         + (", %d errors" % errors if errors else "")))
        rows.append(("highest rate whose changes were complete everywhere within %g s"
                     % args.catchup_ok, "%s/s" % format(best, ",") if best else "none"))
    if "bulk" not in skip:
        if not args.bench:
            log("bulk: skipped (no --bench)")
        else:
            log("bulk: %d sets with dkv-bench" % args.bulk_n)
            t_w, errors, done = bench_bulk(a, others, args.bulk_n, args.bench,
                                           args.catchup_limit)
            rows.append(("%s sets on %s as fast as possible (dkv-bench -c 10 -P 16)"
                         % (format(args.bulk_n, ","), a.name),
                         "written in %.2f s (%.0f/s); " % (t_w, args.bulk_n / t_w)
                         + "; ".join("complete on %s %s after the first write"
                                     % (n, fmt_s(v)) for n, v in done.items())
                         + (", %d errors" % errors if errors else "")))
    print("| what | figure |")
    print("| --- | --- |")
    for what, fig in rows:
        print("| %s | %s |" % (what, fig))


if __name__ == "__main__":
    main()
