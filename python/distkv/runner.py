"""The runner: starts stored code when it is due (`distkv client run all`).

doc/runners.md is the manual: the records, the timing rules, how runners
of one group agree on who starts what, and what is guaranteed.  In short:

    (".distkv", "run",   GROUP..., PATH...)   a job (written by `run set`)
    (".distkv", "state", GROUP..., PATH...)   its state (written by runners)
    (".distkv", "runner", GROUP...)           the group's lease: which
                                              runner starts its jobs

GROUP is ("any",), ("at", NODE) or ("all",); an all-nodes job has one
state per node, at (".distkv", "state", "all", NODE, PATH...), and each
node's runners hold a lease of their own, (".distkv", "runner", "all",
NODE).

Every runner of a group watches the group's jobs, states and lease.  The
runner holding the lease (the leader) starts every job of the group; the
others wait, ready to take over.  The leader renews the lease every
lease/4 seconds with a write that carries the chain of its last one (a
compare-and-set); it stops starting jobs when it could not renew for
lease - 2 * renew seconds.  A follower takes the lease over (compare-and-
set again) when it has seen no renewal for `lease` seconds of its own
clock, or at once when the holder released it on its way out; it then
waits `settle` seconds, for a concurrent takeover on another node to
reach it (the cluster's conflict rule picks one winner everywhere), and
leads only if the lease still names it.

A job is started by claiming its state (compare-and-set on the state
record: node, runner, started), run, and ended by writing its state again
with the chain of the claim.  A leader that finds a state claimed by a
runner that is not running it (a runner that died, or this runner before
it lost its connection) marks it ended ("runner ... is gone"), records an
error and lets the timing rules decide when the job runs again.

The code of a job runs in this process: sync code in a worker thread,
async code as a task.  It sees its variables, and `_client` (this
runner's connection: the Python API), `_info` (async code: a queue of
messages from the runner), `_log` (a logger), `_P` and `_Path`, `_self`
(the job: `await _self.setup_done()`), as global names.

    distkv client run all           # the "any" group
    distkv client run -n NODE all   # NODE's single-node jobs
    distkv client run -n - all      # the all-nodes jobs, for this node
"""

import ast
import builtins
import ctypes
import heapq
from functools import partial
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from secrets import token_hex

import anyio

from .client import open_client
from .codec import packb, unpackb
from .errors import ErrorLog
from .exceptions import ClientError, ConnectionError, ServerError
from .util import NotGiven, P, Path, attrdict

__all__ = ["main", "Runner", "next_start", "RUN_PATH", "STATE_PATH", "LEASE_PATH", "DEFAULTS"]

logger = logging.getLogger("distkv.runner")

RUN_PATH = Path(".distkv", "run")
STATE_PATH = Path(".distkv", "state")
LEASE_PATH = Path(".distkv", "runner")

# runner.* configuration (doc/runners.md)
DEFAULTS = {
    "lease": 5.0,        # s without renewal before another runner takes over
    "settle": 0.25,      # s a new leader waits before it starts anything
    "reconnect": 1.0,    # s before connecting again after losing the server
    "max_reconnect": 30.0,
    "stop_wait": 3.0,    # s a stopping runner waits for its jobs' final states
}

# a job's fields and their defaults (the original's RunnerEntry)
JOB_DEFAULTS = {"delay": 100.0, "backoff": 1.1, "repeat": 0, "ok_after": 0, "timeout": 0}
MAX_BACKOFF = 20
QLEN = 10


class JobCancelled(BaseException):
    """Raised inside a sync job's thread when the runner stops the job."""


class Gone(Exception):
    """The job's record is gone (deleted) or its state was taken over."""


# ---- timing ----

MIN_RETRY = 0.1     # s: a failing job is not retried sooner than this


def _finite(v):
    """v if it is a finite number, else None (records may be written by
    hand: a string, NaN or infinity must not start a job in a loop)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return v


def _num(job, key):
    v = _finite(job.get(key, JOB_DEFAULTS[key]))
    return JOB_DEFAULTS[key] if v is None or v < 0 else v


def next_start(job, state):
    """When the job should start next: (unix time or None, reason).

    The rules, in order: no code, or running: not at all.  A `target`
    that this state has not started yet: at target (so setting `-t`
    again starts it again, and one target starts it once).  After a
    failure (`backoff` > 0): stopped + delay * backoff_factor ** backoff.
    With `repeat`: stopped + repeat.  Else: not any more.
    """
    state = state or {}
    if not job.get("code"):
        return None, "no code"
    if state.get("node"):
        return None, "running"
    target = _finite(job.get("target"))
    if target is not None and target != state.get("target"):
        return target, "target"
    stopped = _finite(state.get("stopped")) or 0
    if not state.get("started"):
        return None, "no target"
    n = _finite(state.get("backoff")) or 0
    if n > 0:
        n = min(n, MAX_BACKOFF)
        return stopped + max(MIN_RETRY, _num(job, "delay") * _num(job, "backoff") ** n), \
            "backoff"
    repeat = _num(job, "repeat")
    if repeat > 0:
        return stopped + repeat, "repeat"
    return None, "done"


# ---- compiled code ----

_compiled = {}   # (text, vars, is_async) -> code object of a module defining _job


def compile_job(text, names, is_async, where):
    """A module code object that defines ``_job(*names)`` with text as its
    body (through the AST, so line numbers are the text's)."""
    key = (text, tuple(names), bool(is_async))
    code = _compiled.get(key)
    if code is not None:
        return code
    body = ast.parse(text, where).body or [ast.Pass()]
    args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=n) for n in names], vararg=None,
                         kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    kind = ast.AsyncFunctionDef if is_async else ast.FunctionDef
    fn = kind(name="_job", args=args, body=body, decorator_list=[], returns=None,
              type_comment=None)
    mod = ast.Module(body=[fn], type_ignores=[])
    ast.fix_missing_locations(mod)
    code = compile(mod, where, "exec")
    if len(_compiled) > 1000:
        _compiled.clear()
    _compiled[key] = code
    return code


def _storable(v):
    """v, or its repr() when it cannot be stored."""
    try:
        packb(v)
        return v
    except Exception:
        return repr(v)


def _job_trace(exc):
    """The traceback of a job's exception from the job's own first frame
    on (the runner's frames above it say nothing about the job)."""
    tb = exc.__traceback__
    t = tb
    while t is not None and not t.tb_frame.f_code.co_filename.startswith("<code "):
        t = t.tb_next
    return "".join(traceback.format_exception(type(exc), exc, t or tb))


def _raise_in_thread(ident, exc):
    """Make the Python thread ident raise exc at its next bytecode."""
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                      ctypes.py_object(exc))


class Admin:
    """``_self`` in a job's code: what the job may ask of its runner."""

    def __init__(self, run):
        self._run = run

    async def setup_done(self):
        """The job has started well: its backoff goes back to 0 and its
        open error is resolved, though it keeps running."""
        await self._run.scope_.job_ok(self._run)

    def cancel(self):
        """End the job (as if its record had been deleted, but keeping it)."""
        self._run.cancel("cancelled by itself")


class Run:
    """One run of a job."""

    def __init__(self, scope, rel, job):
        self.scope_ = scope
        self.rel = rel
        self.job = job
        self.why = None             # why it was cancelled, when it was
        self.cscope = anyio.CancelScope()
        self.thread = None          # a sync job's thread ident, while it runs
        self.info = None            # async jobs: the send side of _info
        self.chain = None           # of our last state write
        self.state = None           # what we last wrote

    def cancel(self, why):
        if self.why is None:
            self.why = why
        self.cscope.cancel()


# ---- one group ----

class Scope:
    """The jobs of one group that this runner may start: watched, led,
    started."""

    def __init__(self, runner, kind, node):
        self.r = runner
        self.kind = kind
        self.node = node
        if kind == "any":
            g, sg = ("any",), ("any",)
        elif kind == "at":
            g = sg = ("at", node)
        else:
            g, sg = ("all",), ("all", node)
        self.name = " ".join(str(x) for x in g)
        self.run_path = RUN_PATH + g
        self.state_path = STATE_PATH + sg
        self.lease_path = LEASE_PATH + sg
        self.jobs = {}          # rel path -> (value, chain, tock)
        self.states = {}        # rel path -> (value, chain, tock)
        self.running = {}       # rel path -> Run
        self.lease = None       # (value, chain, tock) of the lease record
        self.lease_seen = 0.0   # monotonic time the lease last changed
        self.lease_evt = anyio.Event()
        self.leader = False
        self.leader_since = 0.0
        self.valid_until = 0.0  # monotonic; leading only before it
        self.lease_chain = None
        self.loaded = anyio.Event()
        self._loaded = 0
        self.wake = anyio.Event()
        self.stale_marked = set()
        self.dirty = set()      # rel paths to look at again
        self.timers = []        # heap of (due time, rel path); may be stale

    def __repr__(self):
        return "<Scope %s>" % self.name

    @property
    def client(self):
        return self.r.client

    def poke(self, rel=None):
        """Have the scheduler look at rel again (None: at nothing new)."""
        if rel is not None:
            self.dirty.add(rel)
        self.wake.set()

    def retry_later(self, rel, delay=1.0):
        """Look at rel again in delay seconds: after a write that failed
        (a change of the record pokes it sooner), so that a write that
        keeps failing does not run in a loop."""
        heapq.heappush(self.timers, (time.time() + delay, rel))
        self.wake.set()

    # -- the caches

    @staticmethod
    def _newer(old, tock):
        return old is None or tock is None or old[2] is None or tock >= old[2]

    def _keep(self, table, rel, value, chain, tock):
        """Take a newer version of an entry into table.  A deletion drops
        it: replies and watch messages come in the server's order on our
        one connection, so nothing older can follow a deletion."""
        old = table.get(rel)
        if not self._newer(old, tock):
            return False
        if value is NotGiven:
            table.pop(rel, None)
        else:
            table[rel] = (value, chain, tock)
        return True

    async def _watch(self, path, on_msg, *, task_status=anyio.TASK_STATUS_IGNORED,
                     max_depth=None):
        async with self.client.watch(path, fetch=True, nchain=1, max_depth=max_depth) as w:
            started = False
            async for msg in w:
                if "path" in msg:
                    on_msg(Path.build(msg.path[len(path):]), msg)
                elif not started and msg.get("state") == "uptodate":
                    started = True
                    self._loaded += 1
                    if self._loaded == 3:
                        self.loaded.set()
                    task_status.started()

    def _on_job(self, rel, msg):
        if not rel:
            return
        value = msg.get("value", NotGiven)
        if not self._keep(self.jobs, rel, value, msg.get("chain"), msg.get("tock")):
            return
        run = self.running.get(rel)
        if run is not None:
            if value is NotGiven or not isinstance(value, dict):
                run.cancel("deleted")
            elif value.get("code") != run.job.get("code"):
                run.cancel("its code was changed")
            elif value.get("target", 0) is None:
                run.cancel("its target was cleared")
            else:
                run.job = value
                if run.info is not None:
                    try:
                        run.info.send_nowait(attrdict(kind="job", value=value))
                    except anyio.WouldBlock:
                        pass
        self.poke(rel)

    def _on_state(self, rel, msg):
        if not rel:
            return
        value = msg.get("value", NotGiven)
        if not self._keep(self.states, rel, value, msg.get("chain"), msg.get("tock")):
            return
        run = self.running.get(rel)
        if run is not None and run.chain is not None:
            # someone else wrote our state: it was taken from us
            if not isinstance(value, dict) or value.get("runner") != self.r.id:
                run.cancel("taken over: state changed by %s" % (
                    value.get("node") if isinstance(value, dict) else "a deletion",))
        self.poke(rel)

    def _on_lease(self, rel, msg):
        if rel:
            return
        value = msg.get("value", NotGiven)
        old = self.lease
        if not self._newer(old, msg.get("tock")):
            return
        self.lease = (value, msg.get("chain"), msg.get("tock"))
        self.lease_seen = time.monotonic()
        if self.leader and (not isinstance(value, dict) or value.get("runner") != self.r.id):
            self._step_down("the lease now names %s" % (
                value.get("runner") if isinstance(value, dict) else "nobody"))
        self.lease_evt.set()
        self.lease_evt = anyio.Event()

    # -- leading

    def _lease_value(self, since):
        return {"runner": self.r.id, "node": self.r.node, "host": socket.gethostname(),
                "pid": os.getpid(), "since": since, "renewed": time.time(),
                "lease": self.r.cfg["lease"]}

    def _step_down(self, why):
        if self.leader:
            logger.info("%s: no longer leading: %s", self.name, why)
        self.leader = False
        self.poke()

    def _lease_free(self):
        """Whether a follower may take the lease now."""
        value = self.lease[0] if self.lease else NotGiven
        if not isinstance(value, dict) or not value.get("runner"):
            return True     # none, or released
        # Ours from before a reconnection counts like anyone's: our server
        # may have been restarted, and what it writes now reaches its peers
        # only when they link to it again; one of them may be taking over.
        held = value.get("lease")
        if isinstance(held, bool) or not isinstance(held, (int, float)) or held <= 0:
            held = self.r.cfg["lease"]
        if time.monotonic() - self.lease_seen > held:
            return True
        renewed = value.get("renewed")
        # long dead (judged by its own clock, with a lease of slack)
        return isinstance(renewed, (int, float)) and time.time() - renewed > 2 * held + 1

    async def _lead(self):
        """The lease: take it when free, renew it while we have it."""
        lease = self.r.cfg["lease"]
        renew = lease / 4
        await self.loaded.wait()
        since = None
        while not self.r.stopping.is_set():
            if self.leader:
                now = time.monotonic()
                if now >= self.valid_until:
                    self._step_down("could not renew the lease in time")
                    continue
                with anyio.move_on_after(min(renew, self.valid_until - now)):
                    await self.r.stopping.wait()
                    return
                if not self.leader:
                    continue
                t0 = time.monotonic()
                try:
                    res = await self.client.set(self.lease_path, value=self._lease_value(since),
                                                chain=self.lease_chain, nchain=1)
                except ServerError as e:
                    self._step_down("renewing the lease: %s" % e)
                    continue
                self.lease_chain = res.chain
                self.valid_until = t0 + lease - 2 * renew
                # the scheduler may have found the validity lapsed while the
                # reply was late, and wait for a change that never comes
                self.poke()
                continue
            if not self._lease_free():
                value = self.lease[0]
                held = value.get("lease") if isinstance(value, dict) else None
                if not isinstance(held, (int, float)) or held <= 0:
                    held = lease
                with anyio.move_on_after(max(0.01, held - (time.monotonic() - self.lease_seen))):
                    await self.lease_evt.wait()
                continue
            # take it over
            chain = self.lease[1] if self.lease and isinstance(self.lease[0], dict) else None
            t0 = time.monotonic()
            since = time.time()
            try:
                res = await self.client.set(self.lease_path, value=self._lease_value(since),
                                            chain=chain, nchain=1)
            except ServerError as e:
                logger.debug("%s: taking the lease: %s", self.name, e)
                with anyio.move_on_after(lease / 4):
                    await self.lease_evt.wait()
                continue
            self.lease_chain = res.chain
            await anyio.sleep(self.r.cfg["settle"])
            value = self.lease[0] if self.lease else None
            if not isinstance(value, dict) or value.get("runner") != self.r.id \
                    or value.get("since") != since:
                logger.info("%s: another runner took the lease at the same time", self.name)
                continue
            self.lease_chain = self.lease[1] or self.lease_chain
            self.valid_until = t0 + lease - 2 * renew
            self.leader = True
            self.leader_since = time.monotonic()
            self.stale_marked.clear()
            logger.info("%s: leading (runner %s)", self.name, self.r.id)
            self.dirty.update(self.jobs)
            self.poke()

    async def release(self):
        """On the way out: let the next runner take over at once."""
        if not self.leader:
            return
        self.leader = False
        value = dict(self._lease_value(None), runner=None, released=time.time())
        try:
            await self.client.set(self.lease_path, value=value, chain=self.lease_chain)
        except Exception as e:
            logger.debug("%s: releasing the lease: %s", self.name, e)

    # -- starting jobs

    async def _schedule(self):
        await self.loaded.wait()
        while not self.r.stopping.is_set():
            wait = math.inf
            if self.leader and time.monotonic() < self.valid_until:
                wait = self._scan()
            with anyio.move_on_after(min(wait, 3600)):
                await self.wake.wait()
            self.wake = anyio.Event()

    def _scan(self):
        """Start what is due; the seconds until the next due job.  Looks
        only at the jobs that changed since the last scan and at the
        timers that are due (1,000 jobs due at once cost no more than
        1,000 looks)."""
        if self.r.stopping.is_set():
            return math.inf
        now = time.time()
        todo, self.dirty = self.dirty, set()
        timers = self.timers
        while timers and timers[0][0] <= now:
            todo.add(heapq.heappop(timers)[1])
        for rel in todo:
            t = self._look(rel, now)
            if t is not None:
                heapq.heappush(timers, (t, rel))
        if len(timers) > 4 * len(self.jobs) + 100:
            # stale timers of jobs changed many times: make them afresh
            self.timers = []
            self.dirty.update(self.jobs)
            self.wake.set()
            return 0
        return timers[0][0] - now if timers else math.inf

    def _look(self, rel, now):
        """Start the job rel if it is due; else its next start (or None)."""
        if rel in self.running:
            return None
        jr = self.jobs.get(rel)
        job = jr[0] if jr else None
        if not isinstance(job, dict):
            return None
        st = self.states.get(rel)
        state = st[0] if st and isinstance(st[0], dict) else None
        if state and state.get("node"):
            # claimed, but not by a run of ours: its runner is gone
            if rel not in self.stale_marked:
                self.stale_marked.add(rel)
                self.r.tg.start_soon(self._mark_gone, rel, job)
            return None
        t, _ = next_start(job, state)
        if t is None or t > now:
            return t
        run = Run(self, rel, job)
        self.running[rel] = run
        self.r.tg.start_soon(self._run, run)
        return None

    async def _mark_gone(self, rel, job):
        """The state says running, but its runner is not: say so."""
        ok = True
        try:
            st = self.states.get(rel)
            if not st or not isinstance(st[0], dict) or not st[0].get("node") \
                    or rel in self.running:
                return
            old = st[0]
            state = dict(old)
            now = time.time()
            state.update(node=None, runner=None, stopped=now,
                         backoff=min(int(_finite(old.get("backoff")) or 0) + 1, MAX_BACKOFF),
                         error="runner %s on %s is gone" % (old.get("runner"), old.get("node")))
            state["next"], state["reason"] = next_start(job, state)
            try:
                res = await self.client.set(self.state_path + rel, value=state, chain=st[1],
                                            nchain=1)
            except ServerError as e:
                logger.debug("%s: marking %s: %s", self.name, Path.build(rel), e)
                ok = False  # changed meanwhile, or not writable: look again later
                return
            self._keep(self.states, rel, state, res.chain, res.get("tock"))
            await self.r.errors.record(
                "run", self.run_path + rel, message="Runner killed: %s" % old.get("node"),
                comment="runner %s on %s stopped without ending the job" % (
                    old.get("runner"), old.get("node")),
                data={"node": old.get("node"), "runner": old.get("runner"),
                      "started": old.get("started")})
        except Exception:
            ok = False
            logger.exception("%s: marking %s as stopped", self.name, Path.build(rel))
        finally:
            self.stale_marked.discard(rel)
            if ok:
                self.poke(rel)
            else:
                self.retry_later(rel)

    async def _claim(self, run):
        st = self.states.get(run.rel)
        old = st[0] if st and isinstance(st[0], dict) else {}
        chain = st[1] if st and st[0] is not NotGiven else None
        state = dict(old)
        now = time.time()
        state.update(node=self.r.node, runner=self.r.id, started=now, pinged=now,
                     target=run.job.get("target"), next=None, reason="running",
                     backoff=int(_finite(old.get("backoff")) or 0),
                     stopped=_finite(old.get("stopped")) or 0)
        res = await self.client.set(self.state_path + run.rel, value=state, chain=chain,
                                    nchain=1)
        run.chain = res.chain
        run.state = state
        self._keep(self.states, run.rel, state, res.chain, res.get("tock"))

    async def _run(self, run):
        claimed = False
        try:
            try:
                await self._claim(run)
            except ServerError as e:
                logger.debug("%s: %s not claimed: %s", self.name, Path.build(run.rel), e)
                return
            claimed = True
            if not self.leader or time.monotonic() >= self.valid_until:
                # The claim's reply came after our lease may have run out
                # (our server stalled: SIGSTOP, a VM pause): the server
                # may have applied it after another runner took over and
                # started this due time itself.  Start nothing; end the
                # claim (a failure: the job is tried again after its delay).
                logger.info("%s: %s claimed too late (lease ran out), not started",
                            self.name, Path.build(run.rel))
                await self._finish(run, NotGiven, JobStopped(
                    "not started: the lease ran out while it was being claimed"), time.time())
                return
            await self._execute(run)
        except Exception:
            logger.exception("%s: running %s", self.name, Path.build(run.rel))
        finally:
            self.running.pop(run.rel, None)
            if claimed:
                self.poke(run.rel)
            else:
                self.retry_later(run.rel)

    async def _code(self, job):
        cpath = job.get("code")
        if isinstance(cpath, str):
            cpath = P(cpath)
        if not isinstance(cpath, (list, tuple)) or not cpath:
            raise ValueError("the job's code is not a path: %r" % (cpath,))
        res = await self.client.request("get_internal", path=Path("code", *cpath))
        rec = res.get("value")
        if not isinstance(rec, dict) or not isinstance(rec.get("code"), str):
            raise LookupError("no code at %s" % " ".join(str(e) for e in cpath))
        names = rec.get("vars") or ()
        where = "<code %s>" % " ".join(str(e) for e in cpath)
        return rec, compile_job(rec["code"], names, rec.get("is_async") is True, where)

    async def _execute(self, run):
        job = run.job
        result = NotGiven
        error = None
        t0 = time.time()
        timeout = _num(job, "timeout")
        ok_after = _num(job, "ok_after")
        try:
            with run.cscope:
                if timeout > 0:
                    run.cscope.deadline = anyio.current_time() + timeout
                rec, code = await self._code(job)
                result = await self._call(run, rec, code, ok_after)
        except anyio.get_cancelled_exc_class():
            raise       # the runner's, not the job's
        except BaseException as exc:   # SystemExit too: the job's, not ours
            error = exc
        if result is NotGiven and error is None:
            # the job's scope was cancelled: by its deadline, or run.why
            if run.why is None:
                error = TimeoutError("the job ran longer than its timeout (%g s)" % timeout)
            elif run.why in ("deleted",) or run.why.startswith("taken over"):
                return await self._abandon(run)
            else:
                error = JobStopped(run.why)
        await self._finish(run, result, error, t0)

    async def _call(self, run, rec, code, ok_after):
        job = run.job
        names = tuple(rec.get("vars") or ())
        data = {}
        defaults = rec.get("default")
        if isinstance(defaults, dict):
            data.update(defaults)
        if isinstance(job.get("data"), dict):
            data.update(job["data"])
        is_async = rec.get("is_async") is True
        g = {"__builtins__": builtins, "__name__": "distkv.job"}
        g.update((k, v) for k, v in data.items() if isinstance(k, str) and k not in names)
        g.update(_client=self.client, _P=P, _Path=Path, _self=Admin(run),
                 _log=logging.getLogger("distkv.job.%s" % (Path.build(self.run_path + run.rel),)),
                 _info=None)
        args = {n: data[n] for n in names if n in data}
        if is_async:
            send, recv = anyio.create_memory_object_stream(QLEN)
            run.info = send
            g["_info"] = recv
        exec(code, g)
        fn = g["_job"]
        async with anyio.create_task_group() as tg:
            if ok_after > 0:
                tg.start_soon(self._ok_later, run, ok_after)
            try:
                if is_async:
                    res = await fn(**args)
                else:
                    res = await self._in_thread(run, fn, args)
            finally:
                tg.cancel_scope.cancel()
        return res

    async def _ok_later(self, run, delay):
        await anyio.sleep(delay)
        await self.job_ok(run)

    async def _in_thread(self, run, fn, args):
        done = threading.Event()

        def call():
            run.thread = threading.get_ident()
            try:
                return fn(**args)
            finally:
                run.thread = None
                done.set()

        try:
            return await anyio.to_thread.run_sync(call, cancellable=True)
        except BaseException:
            if not done.is_set():
                self.r.tg.start_soon(self._stop_thread, run, done)
            raise

    async def _stop_thread(self, run, done):
        """Keep raising JobCancelled in a cancelled sync job's thread until
        it ends (a thread blocked in C code ends when that call returns)."""
        for _ in range(600):
            ident = run.thread
            if done.is_set() or ident is None:
                return
            _raise_in_thread(ident, JobCancelled)
            await anyio.sleep(0.1)
        logger.warning("%s: the thread of %s does not end", self.name, Path.build(run.rel))

    async def job_ok(self, run):
        """The job counts as working (ok_after, _self.setup_done())."""
        if run.chain is None or not run.state or not run.state.get("backoff"):
            await self.r.errors.resolve("run", self.run_path + run.rel)
            return
        state = dict(run.state, backoff=0, error=None)
        try:
            res = await self.client.set(self.state_path + run.rel, value=state,
                                        chain=run.chain, nchain=1)
        except ServerError:
            return
        run.chain, run.state = res.chain, state
        self._keep(self.states, run.rel, state, res.chain, res.get("tock"))
        await self.r.errors.resolve("run", self.run_path + run.rel)

    async def _abandon(self, run):
        """Deleted or taken over: write nothing but a deletion of the state
        of a deleted job."""
        logger.info("%s: %s stopped: %s", self.name, Path.build(run.rel), run.why)
        if run.why == "deleted":
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                job = self.jobs.get(run.rel)
                if job is None or job[0] is NotGiven:
                    try:
                        await self.client.delete(self.state_path + run.rel, chain=run.chain)
                    except ServerError:
                        pass

    async def _finish(self, run, result, error, t0):
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.r.cfg["stop_wait"]):
            now = time.time()
            job = run.job
            state = dict(run.state)
            state.update(node=None, runner=None, stopped=now, pinged=now)
            if error is None:
                state["result"] = _storable(result)
                state["backoff"] = 0
                state["error"] = None
            else:
                state["backoff"] = min((state.get("backoff") or 0) + 1, MAX_BACKOFF)
                state["error"] = ("%s: %s" % (type(error).__name__, error) if str(error)
                                  else type(error).__name__)
            cur = self.jobs.get(run.rel)
            if cur is not None and isinstance(cur[0], dict):
                job = cur[0]
            state["next"], state["reason"] = next_start(job, state)
            try:
                res = await self.client.set(self.state_path + run.rel, value=state,
                                            chain=run.chain, nchain=1)
                self._keep(self.states, run.rel, state, res.chain, res.get("tock"))
            except ServerError as e:
                logger.warning("%s: %s ended, but its state was changed meanwhile: %s",
                               self.name, Path.build(run.rel), e)
                return
            except (ClientError, ConnectionError, OSError):
                return
            try:
                if error is None:
                    await self.r.errors.resolve("run", self.run_path + run.rel)
                else:
                    await self.r.errors.record("run", self.run_path + run.rel, exc=error,
                                               trace=_job_trace(error),
                                               data={"code": job.get("code"),
                                                     "data": job.get("data"),
                                                     "node": self.r.node})
            except (ServerError, ClientError, ConnectionError, OSError) as e:
                logger.warning("%s: recording the outcome of %s: %s", self.name,
                               Path.build(run.rel), e)

    # -- the group's tasks

    async def run(self, tg):
        await tg.start(partial(self._watch, self.lease_path, self._on_lease, max_depth=0))
        await tg.start(self._watch, self.state_path, self._on_state)
        await tg.start(self._watch, self.run_path, self._on_job)
        tg.start_soon(self._lead)
        tg.start_soon(self._schedule)

    async def stop(self):
        for run in list(self.running.values()):
            run.cancel("the runner stopped")
        with anyio.move_on_after(self.r.cfg["stop_wait"]):
            while self.running:
                await anyio.sleep(0.02)
        await self.release()


class JobStopped(Exception):
    """The job was stopped (the runner ended, the code changed)."""


SESSION_ERRORS = (ConnectionError, ServerError, OSError, ClientError)


def _leaves(exc):
    """The exceptions in exc: itself, or those of an exception group
    (anyio's, or Python's), flattened."""
    subs = getattr(exc, "exceptions", None)
    if isinstance(subs, (list, tuple)) and subs:
        for e in subs:
            yield from _leaves(e)
    else:
        yield exc


def _session_lost(exc):
    """The connection error that ended a session, when exc is one or a
    group of them (when the server goes away, every task waiting on it
    fails at once: the session's task group raises them together), else
    None."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves = list(_leaves(exc))
    errs = [e for e in leaves if isinstance(e, SESSION_ERRORS)]
    if errs and all(isinstance(e, SESSION_ERRORS + (cancelled,)) for e in leaves):
        return errs[0]
    return None


# ---- the runner ----

def runner_config(cfg):
    """runner.* with the defaults filled in; ValueError for a bad value."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in (cfg.get("runner") or {}).items() if k in DEFAULTS})
    for k in DEFAULTS:
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v:
            raise ValueError("runner.%s must be a number of seconds, not %r" % (k, v))
    if out["lease"] <= 0:
        raise ValueError("runner.lease must be more than 0 s")
    return out


class Runner:
    """One runner process: a connection, the error log, and its groups."""

    def __init__(self, cfg):
        self.cfg = runner_config(cfg)
        self.connect = dict(cfg.get("connect") or {})
        self.groups = [tuple(g) for g in cfg.get("groups") or (("any",),)]
        self.id = "%s.%d.%s" % (socket.gethostname(), os.getpid(), token_hex(3))
        self.client = None
        self.node = None
        self.errors = None
        self.tg = None
        self.scopes = []
        self.stopping = anyio.Event()

    async def serve(self):
        """Connect, run, connect again when the connection is lost, until
        stopped."""
        pause = self.cfg["reconnect"]
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                await self._session()
            except BaseException as e:
                lost = _session_lost(e)
                if lost is None:
                    raise
                if self.stopping.is_set():
                    break
                logger.warning("runner: %s; connecting again in %g s", lost, pause)
            else:
                break
            if time.monotonic() - t0 > 30:
                pause = self.cfg["reconnect"]
            with anyio.move_on_after(pause):
                await self.stopping.wait()
            pause = min(pause * 2, self.cfg["max_reconnect"])

    async def _session(self):
        async with open_client(connect=self.connect) as client:
            self.client = client
            self.node = client.node
            self.errors = ErrorLog(client, self.node)
            self.scopes = []
            for g in self.groups:
                kind = g[0]
                node = g[1] if kind == "at" and len(g) > 1 else self.node
                self.scopes.append(Scope(self, kind, node))
            try:
                async with anyio.create_task_group() as tg:
                    self.tg = tg
                    await tg.start(self.errors.run)
                    for s in self.scopes:
                        await s.run(tg)
                    logger.info("runner %s on node %s: %s", self.id, self.node,
                                ", ".join(s.name for s in self.scopes))
                    await self.stopping.wait()
                    with anyio.CancelScope(shield=True):
                        for s in self.scopes:
                            await s.stop()
                    tg.cancel_scope.cancel()
            finally:
                self.tg = None

    def stop(self):
        self.stopping.set()


async def _signals(runner, scope):
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
        async for _ in sigs:
            if runner.stopping.is_set():
                scope.cancel()      # a second signal: out at once
                return
            logger.info("runner: signal received, stopping")
            runner.stop()


async def _main(cfg):
    runner = Runner(cfg)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_signals, runner, tg.cancel_scope)
        await runner.serve()
        tg.cancel_scope.cancel()
    return 0


def main(raw):
    """The entry point of `distkv client run all` (engine/py/main.c): raw
    is the msgpack of {connect: {...}, runner: {...}, groups: [...],
    verbose: N}.  Returns the exit status."""
    cfg = unpackb(raw)
    # print() in jobs reaches a pipe or file line by line, whole lines
    sys.stdout.reconfigure(line_buffering=True)
    verbose = cfg.get("verbose") or 0
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if verbose < 0:
        level = logging.ERROR
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(levelname)s:%(name)s:%(message)s",
                        datefmt="%H:%M:%S")
    try:
        runner_config(cfg)
    except ValueError as e:
        print("distkv client run all: %s" % e, file=sys.stderr)
        return 2
    try:
        return anyio.run(_main, cfg)
    except (ConnectionError, ClientError) as e:
        print("distkv client run all: %s" % e, file=sys.stderr)
        return 1
