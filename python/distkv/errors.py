"""The error log, as a long-running client writes it (the runner).

Records and where they live (doc/errors.md states the format; this is
the Python side of the same contract):

    (".distkv", "error", NODE, TOCK)         one error: path, subsystem,
                                             severity, resolved, count,
                                             first_seen, last_seen, created
    (".distkv", "error", NODE, TOCK, DNODE)  what node DNODE saw of it:
                                             seen, tock, message, comment,
                                             trace, data

(path, subsystem) names one error: a new occurrence updates the record
that is there (count + 1, last_seen, resolved cleared) instead of making
another.  :class:`ErrorLog` finds records through an index of the whole
log, read once and kept current with a watch, so recording an error costs
two writes and recording that something works costs nothing while it has
no open error.

    log = ErrorLog(client)
    async with anyio.create_task_group() as tg:
        await tg.start(log.run)          # index loaded, kept current
        await log.record("run", path, exc=exc, data=...)
        await log.resolve("run", path)
"""

import logging
import time
import traceback

import anyio
import msgpack

from .exceptions import ServerError
from .util import Path

__all__ = ["ErrorLog", "ERROR_PATH", "SEVERITY"]

logger = logging.getLogger("distkv.errors")

ERROR_PATH = Path(".distkv", "error")
SEVERITY = ("fatal", "error", "warning", "info", "note", "debug", "trace")

_RETRIES = 5    # writes refused for a stale chain before we give up


def _key(path, subsystem):
    return tuple(path), subsystem


def _counts_first(rec):
    """The order in which records of one error count: the first seen,
    then the lower node, then the lower number, comparing elements by
    their msgpack encoding -- the servers' order (engine/errlog.c), which
    merge duplicates into the first."""
    return (rec.value.get("first_seen") or 0, msgpack.packb(rec.node), msgpack.packb(rec.tock))


class _Rec:
    """One error record as the index knows it."""

    __slots__ = ("node", "tock", "value", "chain", "etock")

    def __init__(self, node, tock, value, chain, etock):
        self.node, self.tock = node, tock
        self.value, self.chain, self.etock = value, chain, etock

    @property
    def path(self):
        return ERROR_PATH + (self.node, self.tock)


class ErrorLog:
    """Error records of one client.  ``node`` is the name recorded as
    the first and the detail node (default: the server's node)."""

    def __init__(self, client, node=None):
        self.client = client
        self.node = node or client.node
        self._by_key = {}    # (path tuple, subsystem) -> the _Rec that counts
        self._by_loc = {}    # (node, tock) -> _Rec
        self._dups = {}      # (path tuple, subsystem) -> {(node, tock): _Rec}
        self._lock = anyio.Lock()

    # -- the index

    def _forget(self, loc):
        rec = self._by_loc.pop(loc, None)
        if rec is not None:
            k = _key(rec.value.get("path", ()), rec.value.get("subsystem"))
            recs = self._dups.get(k, {})
            recs.pop(loc, None)
            if recs:
                # a duplicate merged away (or deleted): the next one counts
                self._by_key[k] = min(recs.values(), key=_counts_first)
            else:
                self._dups.pop(k, None)
                self._by_key.pop(k, None)

    def _learn(self, node, tock, value, chain, etock):
        """An error record at (node, tock) is now value (None: gone)."""
        loc = (node, tock)
        old = self._by_loc.get(loc)
        if old is not None and etock is not None and old.etock is not None \
                and etock < old.etock:
            return      # older than what we know
        self._forget(loc)
        if not isinstance(value, dict) or "subsystem" not in value:
            return
        try:
            k = _key(value.get("path", ()), value["subsystem"])
            hash(k)
        except TypeError:
            return      # not a record we can index
        rec = _Rec(node, tock, value, chain, etock)
        self._by_loc[loc] = rec
        # two records for one error (made at once on two nodes) count as
        # the first, until a server merges the other into it
        recs = self._dups.setdefault(k, {})
        recs[loc] = rec
        self._by_key[k] = min(recs.values(), key=_counts_first)

    def _msg(self, msg):
        p = msg.get("path")
        if p is None or len(p) != len(ERROR_PATH) + 2:
            return
        node, tock = p[-2], p[-1]
        self._learn(node, tock, msg.get("value"), msg.get("chain"), msg.get("tock"))

    async def run(self, *, task_status=anyio.TASK_STATUS_IGNORED):
        """Load the index and keep it current until cancelled; started
        (``tg.start``) once the present records are in."""
        async with self.client.watch(ERROR_PATH, fetch=True, nchain=1, min_depth=2,
                                     max_depth=2) as w:
            started = False
            async for msg in w:
                if "path" in msg:
                    self._msg(msg)
                elif not started and msg.get("state") == "uptodate":
                    started = True
                    task_status.started()

    def get(self, subsystem, path):
        """The record of this error (a dict), or None."""
        rec = self._by_key.get(_key(path, subsystem))
        return None if rec is None else rec.value

    # -- writing

    async def _put(self, path, value, chain):
        res = await self.client.set(path, value=value, chain=chain, nchain=1)
        return res

    async def record(self, subsystem, path, *, exc=None, message=None, comment=None,
                     data=None, severity=1, trace=None):
        """Record one occurrence of an error of ``subsystem`` at ``path``
        (a sequence of elements).  ``exc``: the exception (message,
        comment and trace are taken from it unless given).  Returns the
        path of the error record."""
        if exc is not None:
            if message is None:
                message = "%s: %s" % (type(exc).__name__, exc) if str(exc) \
                    else type(exc).__name__
            if comment is None:
                comment = repr(exc)
            if trace is None:
                trace = "".join(traceback.format_exception(type(exc), exc,
                                                           exc.__traceback__))
        if message is None:
            message = comment or "error"
        path = list(path)
        async with self._lock:
            rec = await self._store(subsystem, path, severity)
        now = time.time()
        detail = {"seen": now, "tock": rec.etock or 0, "message": str(message)[:1000],
                  "comment": str(comment if comment is not None else message)[:1000]}
        if trace:
            detail["trace"] = trace[-20000:]
        if data is not None:
            detail["data"] = data
        try:
            await self.client.set(rec.path + (self.node,), value=detail)
        except TypeError:
            # data that cannot be stored: keep the rest
            detail.pop("data", None)
            await self.client.set(rec.path + (self.node,), value=detail)
        logger.warning("Error %r %s: %s", tuple(rec.path), self.node, message)
        return rec.path

    async def _store(self, subsystem, path, severity):
        """The updated (or new) record of (path, subsystem)."""
        now = time.time()
        for _ in range(_RETRIES):
            rec = self._by_key.get(_key(path, subsystem))
            if rec is None:
                return await self._create(subsystem, path, severity, now)
            value = dict(rec.value)
            value["count"] = int(value.get("count") or 0) + 1
            value["last_seen"] = now
            value.pop("resolved", None)
            value["severity"] = min(int(value.get("severity", severity)), severity)
            try:
                res = await self._put(rec.path, value, rec.chain)
            except ServerError:
                # changed under us: read it again
                r = await self.client.get(rec.path)
                self._learn(rec.node, rec.tock, r.get("value"), r.get("chain"), r.get("tock"))
                continue
            self._learn(rec.node, rec.tock, value, res.chain, res.get("tock"))
            return self._by_loc[(rec.node, rec.tock)]
        raise ServerError("the error record of %r keeps changing" % (path,))

    async def _create(self, subsystem, path, severity, now):
        tock = await self.client.get_tock()
        value = {"path": path, "subsystem": subsystem, "severity": severity, "count": 1,
                 "first_seen": now, "last_seen": now, "created": now}
        for _ in range(_RETRIES):
            where = ERROR_PATH + (self.node, tock)
            try:
                res = await self._put(where, value, None)
            except ServerError:
                tock += 1       # taken: the next integer is as good
                continue
            self._learn(self.node, tock, value, res.chain, res.get("tock"))
            return self._by_loc[(self.node, tock)]
        raise ServerError("cannot find a free error record for %r" % (path,))

    async def resolve(self, subsystem, path):
        """The error of ``subsystem`` at ``path`` is gone: mark its record
        resolved (with the current tock).  Nothing to do (no request)
        when it has no open record."""
        async with self._lock:
            for _ in range(_RETRIES):
                rec = self._by_key.get(_key(path, subsystem))
                if rec is None or rec.value.get("resolved"):
                    return False
                value = dict(rec.value)
                value["resolved"] = await self.client.get_tock()
                try:
                    res = await self._put(rec.path, value, rec.chain)
                except ServerError:
                    r = await self.client.get(rec.path)
                    self._learn(rec.node, rec.tock, r.get("value"), r.get("chain"),
                                r.get("tock"))
                    continue
                self._learn(rec.node, rec.tock, value, res.chain, res.get("tock"))
                return True
        return False
