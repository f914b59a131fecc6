"""Active objects: a subtree kept in memory and current from a watch.

    class Entry(ClientEntry):
        async def set_value(self, value):
            await super().set_value(value)
            print(self.subpath, value)      # NotGiven: deleted

    class Root(ClientRoot):
        @classmethod
        def child_type(cls, name):
            return Entry

    async with client.mirror("one", root_type=Root) as root:
        print(root["two"]["three"].value)

The root watches its path with ``fetch=True``; every message creates or
updates the entry at its path (``child_type`` of the parent picks the class
of a new entry) and calls its ``set_value``; a deletion calls
``set_value(NotGiven)`` and drops entries left with neither value nor
children.  ``client.mirror`` returns once the current state has arrived.
"""

import heapq
import weakref
from contextlib import asynccontextmanager

import anyio

from .util import NotGiven, Path

__all__ = ["ClientEntry", "ClientRoot"]


class ClientEntry:
    """One entry of a mirrored subtree.

    ``.value`` (NotGiven when the entry has none), ``.chain`` (the chain
    of its value, for writing back), ``.subpath`` (the path below the
    root), ``entry[name]`` and ``name in entry`` for children, iteration
    over the children, ``len(entry)``.  ``await entry.update(value)``
    writes a new value with the entry's chain as the precondition.
    """

    value = NotGiven
    chain = None

    def __init__(self, parent, name=None):
        self._init()
        self._path = parent._path + (name,)
        self._name = name
        self._parent = weakref.ref(parent)
        self._root = weakref.ref(parent.root)
        self.client = parent.client

    def _init(self):
        self._lock = anyio.Lock()
        self.value = NotGiven
        self.chain = None
        self._children = {}

    @classmethod
    def child_type(cls, name):
        """The class of a new child called ``name``: the entry's own class
        by default.  Return None to leave that child's subtree untracked."""
        return cls

    # -- where

    @property
    def name(self):
        return self._name

    @property
    def parent(self):
        return self._parent()

    @property
    def root(self):
        return self._root()

    @property
    def path(self):
        """The full path of this entry."""
        return self._path

    @property
    def subpath(self):
        """The path of this entry below its root."""
        return self._path[len(self.root._path):]

    # -- the children

    def __getitem__(self, name):
        return self._children[name]

    def get(self, name, default=None):
        return self._children.get(name, default)

    def __contains__(self, name):
        if isinstance(name, ClientEntry):
            name = name._name
        return name in self._children

    def __iter__(self):
        return iter(list(self._children.values()))

    def __len__(self):
        return len(self._children)

    def __bool__(self):
        return self.value is not NotGiven or bool(self._children)

    def __delitem__(self, name):
        del self._children[name]

    def keys(self):
        return list(self._children)

    @property
    def all_children(self):
        """Every entry below this one that has a value, depth first."""
        for c in self:
            if c.value is not NotGiven:
                yield c
            yield from c.all_children

    def allocate(self, name, exists=False):
        """The child called name, made (locally) if it does not exist; an
        existing one is an error unless ``exists``.  None when child_type
        says the child is not tracked."""
        c = self._children.get(name)
        if c is not None:
            if exists:
                return c
            raise RuntimeError("child %r of %r exists already" % (name, self))
        cls = self.child_type(name)
        if cls is None:
            return None
        c = cls(self, name)
        self._children[name] = c
        return c

    def follow(self, path, create=None, empty_ok=False):
        """The entry at path below this one; made when ``create`` is not
        False, else None when missing.  None as well where a child_type
        said the subtree is not tracked."""
        if isinstance(path, str):
            raise TypeError("follow takes a path (a tuple), not a string")
        if not path and not empty_ok:
            raise ValueError("empty path")
        node = self
        for elem in path:
            nxt = node._children.get(elem)
            if nxt is None:
                if create is False:
                    return None
                nxt = node.allocate(elem)
                if nxt is None:
                    return None
            node = nxt
        return node

    # -- values

    def value_or(self, default, typ=None):
        """The value, or default when there is none (or it is not a typ)."""
        v = self.value
        if v is NotGiven or (typ is not None and not isinstance(v, typ)):
            return default
        return v

    async def set_value(self, value):
        """Called with each new value that arrives for this entry, and with
        NotGiven when it is deleted.  Override it (and call this one) to act
        on changes; it is awaited in order, before the next message."""
        self.value = value

    async def seen_value(self):
        """Called when a change arrives that this client itself made with
        :meth:`update` (its chain is the one we already have)."""

    def mark_inconsistent(self, msg):
        """Called when a change arrives whose chain does not descend from
        the one we hold (a conflict resolved elsewhere); set_value follows."""

    async def update(self, value, wait=False):
        """Write value to this entry, with the entry's chain as the
        precondition (None when it has no value: then it must still have
        none).  Returns the server's reply; ServerError if someone else
        changed the entry first.  ``wait``: return only once the watch has
        delivered the change (needs ``need_wait=True`` on the root)."""
        async with self._lock:
            r = await self.client.set(self._path, value=value, chain=self.chain, nchain=3,
                                      idem=True)
            self.value = value
            self.chain = r.get("chain", self.chain)
            if wait:
                await self.root.wait_chain(r.chain)
            return r

    async def delete(self, wait=False):
        """Delete this entry's value, with its chain as the precondition."""
        async with self._lock:
            r = await self.client.delete(self._path, chain=self.chain, nchain=3)
            self.chain = None
            if wait and r.get("chain"):
                await self.root.wait_chain(r.chain)
            return r

    def __repr__(self):
        return "<%s %s%s>" % (type(self).__name__, Path.build(self._path),
                              "" if self.value is NotGiven else " =%r" % (self.value,))


def _newer(a, b):
    """Whether chain a already includes change b's head (a is b or newer)."""
    if b is None:
        return a is not None
    if a is None:
        return False
    while a is not None:
        if a.get("node") == b.get("node"):
            return a.get("tick", 0) >= b.get("tick", 0)
        a = a.get("prev")
    return False


class ClientRoot(ClientEntry):
    """The root of a mirrored subtree; ``client.mirror(path,
    root_type=ClientRoot subclass)`` makes and runs it.

    Override ``child_type`` (a classmethod) to choose the classes of the
    entries below.  ``need_wait=True`` keeps track of the ticks seen, so
    that ``await root.wait_chain(chain)`` (and ``update(..., wait=True)``)
    can wait until a change made elsewhere has arrived here.
    """

    def __init__(self, client, path, *, need_wait=False, cfg=None, **kw):
        self._init()
        self.client = client
        self._path = Path.build(path)
        self._name = None
        self._cfg = cfg or {}
        self._need_wait = need_wait
        self._seen = {}     # node -> highest tick seen
        self._waiters = {}  # node -> heap of (tick, n, Event)
        self._nwait = 0
        self._loaded = None
        self._tg = None

    @classmethod
    def child_type(cls, name):
        """The class of the root's children: ClientEntry by default."""
        return ClientEntry

    @property
    def root(self):
        return self

    @property
    def parent(self):
        return None

    async def run_starting(self):
        """Called before the watch starts."""

    async def running(self):
        """Called once the current state has arrived."""

    async def wait_loaded(self):
        """Return once the current state has arrived."""
        await self._loaded.wait()

    @asynccontextmanager
    async def run(self):
        """Watch the subtree and keep this tree current while the block
        runs; yields the root once the current state is here."""
        self._loaded = anyio.Event()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._monitor)
            await self._loaded.wait()
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    def cancel(self):
        """Stop keeping the tree current."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _monitor(self):
        await self.run_starting()
        async with self.client.watch(self._path, fetch=True, nchain=3, long_path=False) as w:
            async for msg in w:
                if "path" not in msg:
                    if msg.get("state") == "uptodate":
                        await self.running()
                        self._loaded.set()
                    continue
                await self._apply(msg)

    async def _apply(self, msg):
        value = msg.get("value", NotGiven)
        chain = msg.get("chain")
        entry = self.follow(msg.path, create=value is not NotGiven, empty_ok=True)
        if entry is not None:
            if entry.chain is not None and chain is not None:
                if entry.chain == chain:
                    await entry.seen_value()
                elif not _newer(chain, entry.chain):
                    entry.mark_inconsistent(msg)
            entry.chain = None if value is NotGiven else chain
            await entry.set_value(value)
            if value is NotGiven:
                # drop entries left with neither value nor children
                while not entry and entry is not self:
                    parent = entry.parent
                    del parent[entry._name]
                    entry = parent
        if self._need_wait and chain is not None:
            self._saw(chain)

    def _saw(self, chain):
        while chain is not None:
            node, tick = chain.get("node"), chain.get("tick", 0)
            if self._seen.get(node, -1) < tick:
                self._seen[node] = tick
            heap = self._waiters.get(node)
            while heap and heap[0][0] <= tick:
                heapq.heappop(heap)[2].set()
            chain = chain.get("prev")

    async def wait_chain(self, chain):
        """Return once the change with this chain's head has arrived (needs
        ``need_wait=True``)."""
        if not self._need_wait:
            raise RuntimeError("wait_chain needs client.mirror(..., need_wait=True)")
        if chain is None or self._seen.get(chain["node"], -1) >= chain["tick"]:
            return
        ev = anyio.Event()
        self._nwait += 1
        heapq.heappush(self._waiters.setdefault(chain["node"], []),
                       (chain["tick"], self._nwait, ev))
        await ev.wait()
