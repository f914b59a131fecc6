#!/usr/bin/python3
"""bench-runner.py - what the runners cost: how soon a job starts, and how
many jobs a runner gets through.

    meson setup build && ninja -C build
    tools/bench-runner.py [--build build] [--samples 200] [--jobs 1000]
                          [--skip one,three]

It starts what it measures on free loopback ports in a temporary
directory, and stops it all at the end:

  * one node: a standalone server and one runner (`distkv client run
    all`);
  * three nodes: three Serf agents joined together, three replicating
    servers, a runner on each (one of them leads the "any" group).

and for each prints a markdown table row:

  * start delay: `--samples` times, one after the other, a job record
    with target = now is written (what `run set -t 0` writes) and the
    time until the code runs (its first statement returns time.time(),
    which lands in the state's result): p50 and p99, for plain code (a
    worker thread) and async code.  On three nodes each job is written
    through the next node in turn, so two thirds of them reach the leader
    by replication;
  * throughput: `--jobs` trivial jobs (`return 1`) written at once, all
    due now; jobs completed per second from the first write until the
    last state says stopped.

The jobs are written with the Python API (python/distkv), which is also
how the numbers are read back: a watch on the states.
"""

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

import anyio  # noqa: E402

import cluster_util  # noqa: E402
from distkv.client import open_client  # noqa: E402
from distkv.exceptions import ServerError  # noqa: E402
from distkv.util import Path  # noqa: E402


def log(*a):
    print("bench-runner:", *a, file=sys.stderr, flush=True)


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


class Procs:
    """Everything started, stopped in reverse order at the end."""

    def __init__(self, build, workdir):
        self.distkv = os.path.join(build, "tools", "distkv")
        self.workdir = workdir
        self.procs = []
        self.agents = []

    def server(self, name, cfg, init=True):
        port = cluster_util.free_port()
        argv = [self.distkv, "-C", "server.bind_default.port=%d" % port,
                "-C", "server.bind_default.host=127.0.0.1"]
        for k, v in cfg.items():
            argv += ["-C", "%s=%s" % (k, v)]
        argv += ["server"] + (["-i", "bench"] if init else []) + [name]
        logf = open(os.path.join(self.workdir, "server-%s.log" % name), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        self.procs.append(p)
        cluster_util.wait_for(lambda: cluster_util.port_accepts("127.0.0.1", port), 10,
                              "server %s" % name)
        return port

    def runner(self, port, name):
        argv = [self.distkv, "-C", "connect.port=%d" % port, "-C", "runner.settle=0.1",
                "client", "run", "all"]
        logf = open(os.path.join(self.workdir, "runner-%s.log" % name), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=logf)
        self.procs.append(p)

    def agent(self, name):
        a = cluster_util.SerfAgent(os.path.join(self.workdir, "serf-" + name), name)
        self.agents.append(a)
        return a.start()

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for a in self.agents:
            a.stop()


STAMP = "import time\nreturn time.time()\n"
STAMP_ASYNC = "import time\nt = time.time()\nawait _client.get_tock()\nreturn t\n"

JOBS = Path(".distkv", "run", "any")
STATES = Path(".distkv", "state", "any")


async def store_code(client):
    for name, text, is_async in (("stamp", STAMP, None), ("stamp_a", STAMP_ASYNC, True),
                                 ("one", "return 1\n", None)):
        for attempt in range(5):
            try:
                await client.request("set_internal", path=Path("code", "bench", name),
                                     value={"code": text, "is_async": is_async, "vars": []})
                break
            except ServerError as e:
                # the server compiles it within server.python.timeout, which
                # a machine busy with other work can exceed
                if "TimeoutError" not in str(e) or attempt == 4:
                    raise
                await anyio.sleep(1)


async def wait_leader(client, timeout=30):
    with anyio.fail_after(timeout):
        while True:
            v = (await client.get(Path(".distkv", "runner", "any"))).get("value")
            if isinstance(v, dict) and v.get("runner"):
                return v
            await anyio.sleep(0.1)


async def start_delays(clients, kind, samples):
    """Seconds from writing the job to its code's first statement."""
    c0 = clients[0]
    path = ("delay", kind)
    out = []
    async with c0.watch(STATES + path, fetch=True) as w:
        async for m in w:     # up to date
            if "path" not in m:
                break
        for i in range(samples):
            client = clients[i % len(clients)]
            t0 = time.time()
            await client.set(JOBS + path, value={"code": ("bench", kind), "target": t0})
            async for m in w:
                v = m.get("value")
                if isinstance(v, dict) and v.get("stopped") and \
                        isinstance(v.get("result"), float) and v["result"] >= t0:
                    out.append(v["result"] - t0)
                    break
            await anyio.sleep(0.02)
    return out


async def throughput(clients, n, tag):
    """Jobs completed per second for n jobs due at once."""
    c0 = clients[0]
    done = set()
    t_done = None
    async with c0.watch(STATES + ("bulk", tag), fetch=True) as w:
        async for m in w:
            if "path" not in m:
                break
        t0 = time.time()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(lambda i=i: c0.set(JOBS + ("bulk", tag, i),
                                                 value={"code": ("bench", "one"), "target": t0}))
        t_written = time.time()
        with anyio.fail_after(600):
            async for m in w:
                v = m.get("value")
                if isinstance(v, dict) and v.get("stopped") and v.get("result") == 1:
                    done.add(m.path[-1])
                    if len(done) == n:
                        t_done = time.time()
                        break
    return n / (t_done - t0), t_written - t0


async def measure(ports, samples, jobs, tag):
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(open_client(port=p)) for p in ports]
        await store_code(clients[0])
        lead = await wait_leader(clients[0])
        log("%s: runner %s on %s leads" % (tag, lead["runner"], lead["node"]))
        res = {}
        for kind in ("stamp", "stamp_a"):
            await start_delays(clients, kind, 5)    # warm up (imports, compiling)
            d = await start_delays(clients, kind, samples)
            res[kind] = (pct(d, 0.5), pct(d, 0.99))
            log("%s: %s start delay p50 %.1f ms p99 %.1f ms" % (
                tag, kind, res[kind][0] * 1e3, res[kind][1] * 1e3))
        rate, wtime = await throughput(clients, jobs, tag)
        res["rate"] = rate
        log("%s: %d jobs: %.0f jobs/s (writing them took %.2f s)" % (tag, jobs, rate, wtime))
        return res


def one_node(procs, args):
    port = procs.server("one", {"server.cluster": "false"})
    procs.runner(port, "one")
    return anyio.run(measure, [port], args.samples, args.jobs, "one node")


def three_nodes(procs, args):
    names = ["one", "two", "three"]
    agents = [procs.agent(n) for n in names]
    for a in agents[1:]:
        a.join(agents[0])
    root = "benchrun-%d" % os.getpid()
    ports = []
    for i, (n, a) in enumerate(zip(names, agents)):
        ports.append(procs.server(n, {"server.cluster": "true", "server.serf.spawn": "false",
                                      "server.root": root, "server.serf.host": a.rpc_host,
                                      "server.serf.port": a.rpc_port}, init=(i == 0)))
        time.sleep(0.5)
    for p in ports:
        procs.runner(p, str(p))
    return anyio.run(measure, ports, args.samples, args.jobs, "three nodes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--skip", default="")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if not os.path.exists(os.path.join(args.build, "tools", "distkv")):
        raise SystemExit("bench-runner: no %s/tools/distkv (meson setup build && ninja -C build)"
                         % args.build)
    rows = []
    for name, fn in (("one", one_node), ("three", three_nodes)):
        if name in skip:
            continue
        workdir = tempfile.mkdtemp(prefix="bench-runner-")
        procs = Procs(args.build, workdir)
        try:
            r = fn(procs, args)
        finally:
            procs.close()
        shutil.rmtree(workdir, ignore_errors=True)
        rows.append((name, r))
    print("| setup | start delay p50 ms | p99 ms | async p50 ms | async p99 ms | "
          "%d jobs due at once: jobs/s |" % args.jobs)
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows:
        print("| %s | %.1f | %.1f | %.1f | %.1f | %.0f |" % (
            {"one": "one node, one runner", "three": "three nodes, a runner each"}[name],
            r["stamp"][0] * 1e3, r["stamp"][1] * 1e3, r["stamp_a"][0] * 1e3,
            r["stamp_a"][1] * 1e3, r["rate"]))


if __name__ == "__main__":
    main()
