#!/usr/bin/python3
"""bench-pyapi.py - the Python API's cost per request, beside redis-py's.

usage: tools/bench-pyapi.py [--build DIR] [--rounds N] [--seq N] [--pipe N]
                            [--tasks N] [--backends asyncio,trio]

One Python process.  Starts a standalone distkv node (DIR/tools/distkv,
default build/) and a `redis-server --save '' --appendonly no`, each on a
free port of its own, fills 1,000 keys in both, then runs the same
workloads through python/distkv and through redis-py, interleaved, --rounds
times (default 3), and prints the medians:

- sequential get and set: --seq (5,000) round trips one after the other
  on one connection; p50 and p99 of the round trip in µs;
- pipelined get and set: --tasks (100) tasks sharing the client, --pipe
  (50,000) requests in all; requests per second.

Keys: distkv path ("bench", "kN"), redis key "bench:kN", N uniform in
0..999; values an 8-character string.  distkv gets use the API's
defaults (nchain=1: the chain comes along), sets likewise (the reply
carries the new chain).  redis-py runs asynchronously (redis.asyncio, the
same anyio-free asyncio loop; 100 tasks make its pool open up to 100
connections, since redis-py does not multiplex) and, for the sequential
rows, also synchronously (redis.Redis), its fastest mode.  For scale, not
the same workload: "redis-batch" is redis-py's own pipelining, --tasks
commands per pipeline().execute() on one connection.  Kills what it
started on exit.
"""

import argparse
import os
import pathlib
import random
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

KEYS = 1000
VALUE = "v" * 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on port %d" % port)


def pcts(lat):
    lat = sorted(lat)
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6


# --------------------------------------------------------------------------
# distkv through python/distkv


async def dkv_fill(port):
    async with open_client(connect={"host": "127.0.0.1", "port": port}) as c:
        async with anyio.create_task_group() as tg:
            for i in range(KEYS):
                tg.start_soon(lambda i=i: c.set("bench", "k%d" % i, value=VALUE))


async def dkv_seq(port, what, n):
    rnd = random.Random(1)
    lat = []
    async with open_client(connect={"host": "127.0.0.1", "port": port}) as c:
        clock = time.perf_counter
        for _ in range(n):
            k = "k%d" % rnd.randrange(KEYS)
            t = clock()
            if what == "get":
                await c.get("bench", k)
            else:
                await c.set("bench", k, value=VALUE)
            lat.append(clock() - t)
    return pcts(lat)


async def dkv_pipe(port, what, n, tasks):
    async with open_client(connect={"host": "127.0.0.1", "port": port}) as c:
        async def worker(seed, count):
            rnd = random.Random(seed)
            for _ in range(count):
                k = "k%d" % rnd.randrange(KEYS)
                if what == "get":
                    await c.get("bench", k)
                else:
                    await c.set("bench", k, value=VALUE)
        t = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(tasks):
                tg.start_soon(worker, i, n // tasks)
        return (n // tasks * tasks) / (time.perf_counter() - t)


# --------------------------------------------------------------------------
# redis through redis-py


def redis_fill(port):
    import redis
    r = redis.Redis(port=port)
    p = r.pipeline(transaction=False)
    for i in range(KEYS):
        p.set("bench:k%d" % i, VALUE)
    p.execute()
    r.close()


def redis_seq_sync(port, what, n):
    import redis
    rnd = random.Random(1)
    r = redis.Redis(port=port)
    r.ping()
    lat = []
    clock = time.perf_counter
    for _ in range(n):
        k = "bench:k%d" % rnd.randrange(KEYS)
        t = clock()
        if what == "get":
            r.get(k)
        else:
            r.set(k, VALUE)
        lat.append(clock() - t)
    r.close()
    return pcts(lat)


async def redis_seq_async(port, what, n):
    import redis.asyncio as ra
    rnd = random.Random(1)
    r = ra.Redis(port=port)
    await r.ping()
    lat = []
    clock = time.perf_counter
    for _ in range(n):
        k = "bench:k%d" % rnd.randrange(KEYS)
        t = clock()
        if what == "get":
            await r.get(k)
        else:
            await r.set(k, VALUE)
        lat.append(clock() - t)
    await r.close()
    await r.connection_pool.disconnect()
    return pcts(lat)


async def redis_pipe_async(port, what, n, tasks):
    import asyncio
    import redis.asyncio as ra
    r = ra.Redis(port=port, max_connections=tasks)

    async def worker(seed, count):
        rnd = random.Random(seed)
        for _ in range(count):
            k = "bench:k%d" % rnd.randrange(KEYS)
            if what == "get":
                await r.get(k)
            else:
                await r.set(k, VALUE)
    await r.ping()
    t = time.perf_counter()
    await asyncio.gather(*(worker(i, n // tasks) for i in range(tasks)))
    rate = (n // tasks * tasks) / (time.perf_counter() - t)
    await r.close()
    await r.connection_pool.disconnect()
    return rate


async def redis_batches(port, what, n, batch):
    """Not the same workload: redis-py's own pipelining, batch commands
    per pipeline().execute() on one connection; for scale."""
    import redis.asyncio as ra
    rnd = random.Random(1)
    r = ra.Redis(port=port)
    await r.ping()
    t = time.perf_counter()
    for _ in range(n // batch):
        p = r.pipeline(transaction=False)
        for _ in range(batch):
            k = "bench:k%d" % rnd.randrange(KEYS)
            if what == "get":
                p.get(k)
            else:
                p.set(k, VALUE)
        await p.execute()
    rate = (n // batch * batch) / (time.perf_counter() - t)
    await r.close()
    await r.connection_pool.disconnect()
    return rate


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seq", type=int, default=5000)
    ap.add_argument("--pipe", type=int, default=50000)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--backends", default="asyncio,trio")
    a = ap.parse_args()
    backends = a.backends.split(",")
    distkv = pathlib.Path(a.build) / "tools" / "distkv"
    if not distkv.exists():
        raise SystemExit("no %s: build first (meson setup build && ninja -C build)" % distkv)
    try:
        import redis  # noqa: F401
    except ImportError:
        raise SystemExit("needs python3-redis (tools/install-deps)")
    if not shutil.which("redis-server"):
        raise SystemExit("needs redis-server (tools/install-deps)")

    work = tempfile.mkdtemp(prefix="bench-pyapi-")
    procs = []
    try:
        dport, rport = free_port(), free_port()
        log = open(os.path.join(work, "server.log"), "wb")
        procs.append(subprocess.Popen(
            [str(distkv), "-C", "server.bind_default.port=%d" % dport,
             "-C", "server.bind_default.host=127.0.0.1", "-C", "server.cluster=false",
             "server", "-i", "Testing", "bench"],
            cwd=work, stdout=log, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], cwd=work, stdout=subprocess.DEVNULL))
        wait_port(dport)
        wait_port(rport)
        anyio.run(dkv_fill, dport)
        redis_fill(rport)

        res = {}

        def note(key, val):
            res.setdefault(key, []).append(val)

        for rnd in range(a.rounds):
            for what in ("get", "set"):
                for be in backends:
                    note(("dkv-" + be, "seq", what), anyio.run(dkv_seq, dport, what, a.seq,
                                                               backend=be))
                note(("redis-async", "seq", what), anyio.run(redis_seq_async, rport, what,
                                                             a.seq))
                note(("redis-sync", "seq", what), redis_seq_sync(rport, what, a.seq))
                for be in backends:
                    note(("dkv-" + be, "pipe", what),
                         anyio.run(dkv_pipe, dport, what, a.pipe, a.tasks, backend=be))
                note(("redis-async", "pipe", what),
                     anyio.run(redis_pipe_async, rport, what, a.pipe, a.tasks))
                note(("redis-batch", "pipe", what),
                     anyio.run(redis_batches, rport, what, a.pipe, a.tasks))
            print("round %d of %d done" % (rnd + 1, a.rounds), file=sys.stderr)

        clients = ["dkv-" + be for be in backends] + ["redis-async", "redis-sync",
                                                      "redis-batch"]
        print("# medians of %d rounds; sequential: %d round trips, pipelined: %d requests "
              "from %d tasks" % (a.rounds, a.seq, a.pipe, a.tasks))
        print("%-14s %14s %14s %14s %14s %12s %12s"
              % ("client", "get p50 us", "get p99 us", "set p50 us", "set p99 us",
                 "get/s", "set/s"))
        med = {}
        for cl in clients:
            row = [cl]
            for what in ("get", "set"):
                runs = res.get((cl, "seq", what))
                if not runs:
                    row += ["-", "-"]
                    continue
                p50 = statistics.median(x[0] for x in runs)
                p99 = statistics.median(x[1] for x in runs)
                med[(cl, "seq", what)] = p50
                row += ["%.1f" % p50, "%.1f" % p99]
            for what in ("get", "set"):
                runs = res.get((cl, "pipe", what))
                if runs:
                    med[(cl, "pipe", what)] = statistics.median(runs)
                    row.append("%.0f" % med[(cl, "pipe", what)])
                else:
                    row.append("-")
            print("%-14s %14s %14s %14s %14s %12s %12s" % tuple(row))
        print("# per-request cost relative to redis-py (distkv / redis; below 1.5 meets the goal)")
        for be in backends:
            cl = "dkv-" + be
            parts = []
            for what in ("get", "set"):
                parts.append("seq %s %.2f (sync %.2f)" % (
                    what, med[(cl, "seq", what)] / med[("redis-async", "seq", what)],
                    med[(cl, "seq", what)] / med[("redis-sync", "seq", what)]))
            for what in ("get", "set"):
                parts.append("pipelined %s %.2f" % (
                    what, med[("redis-async", "pipe", what)] / med[(cl, "pipe", what)]))
            print("%-14s %s" % (cl, ", ".join(parts)))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore", message=".*MultiError is deprecated")
    main()
