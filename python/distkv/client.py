"""The client: one TCP connection to a distkv server, many requests on it.

    async with open_client(connect={"host": "localhost", "port": 27586}) as client:
        res = await client.get("one", "two")
        await client.set("one", "two", value=res.value + 1, chain=res.chain)

Workload assumed: many small requests, often from many tasks at once, plus a
few long streams (watch, get_tree).  So the send path does no awaiting: a
request is packed and handed to the kernel with one non-blocking send(), and
only what the kernel does not take waits in a buffer for the writer task.
One reader task decodes replies and hands each to the request with its
``seq``.  anyio's socket streams would cost a checkpoint and a lock per
message; we use the socket itself with ``anyio.wait_socket_readable`` /
``wait_socket_writable``, which works the same on asyncio and trio.

Streams (watch, get_tree, msg_monitor) queue their replies in the client
and acknowledge them to the server only as the consumer takes them, so a
slow consumer holds at most the server's window (``qlen``) of messages.
"""

import errno
import os
import socket
from collections import deque
from contextlib import asynccontextmanager

import anyio
import msgpack
import sniffio

from .auth import parse_auth, seal
from .codec import packer, unpacker
from .exceptions import (
    ClientAuthMethodError,
    ClientAuthRequiredError,
    ClientError,
    ConnectionError,
    ServerClosedError,
    ServerConnectionError,
    ServerError,
    error_types,
)
from .obj import ClientEntry, ClientRoot
from .util import NotGiven, P, Path, PathLongener, attrdict, combine_dict

__all__ = [
    "open_client", "Client", "Stream", "NotGiven", "Path", "P", "attrdict",
    "ClientRoot", "ClientEntry", "ServerError", "ClientAuthRequiredError",
    "ClientAuthMethodError", "ConnectionError", "ServerClosedError",
    "ServerConnectionError", "NoData", "ManyData", "read_config", "DEFAULT_PORT",
]

DEFAULT_PORT = 27586

# what `distkv client` uses when the configuration says nothing
DEFAULTS = {
    "connect": {
        "host": "localhost",
        "port": DEFAULT_PORT,
        "auth": None,
        "init_timeout": 5,
        "name": None,
    },
}

# open_client(host=..., port=..., auth=...) is short for connect={...}
CONNECT_KEYS = ("host", "port", "auth", "init_timeout", "name")

SEND_HIGH_WATER = 4 << 20   # bytes buffered before request() waits for the writer
RECV_CHUNK = 256 << 10      # bytes asked of one recv()


class NoData(ValueError):
    """A request that should answer with one message sent none."""


class ManyData(ValueError):
    """A request that should answer with one message sent several."""


def read_config(path):
    """The configuration in the YAML file ``path`` (as ``distkv -c path``
    reads it), for ``open_client(**read_config(path))``.  Needs python3-yaml."""
    import yaml  # only here: the package itself does not need it

    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ClientError("%s: the configuration must be a mapping" % path)
    return cfg


SYSTEM_CONFIG = "/etc/distkv/distkv.cfg"


def default_config():
    """The configuration ``distkv`` reads without ``-c``: /etc/distkv/distkv.cfg,
    then $XDG_CONFIG_HOME/distkv.cfg (default ~/.config/distkv.cfg), where
    they exist, a key in the later one winning."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    home = os.environ.get("HOME")
    user = (os.path.join(xdg, "distkv.cfg") if xdg
            else os.path.join(home, ".config", "distkv.cfg") if home else None)
    out = None
    for path in (SYSTEM_CONFIG, user):
        if path and os.path.exists(path):
            out = combine_dict(read_config(path), out)
    return out or {}


@asynccontextmanager
async def open_client(**cfg):
    """Connect to a server and log in; yields the :class:`Client`.

    ``cfg`` is the configuration as the command line reads it: ``connect``
    holds ``host`` (localhost), ``port`` (27586), ``auth`` (None: no login;
    e.g. ``"_test name=joe"``), ``init_timeout`` (5 s for connecting, the
    greeting and the login) and ``name``; these may also be given as
    keywords of their own (``open_client(port=27600, auth="_test
    name=joe")``).  What is not given comes from the configuration files
    ``distkv`` reads without ``-c`` (:func:`default_config`), then the
    defaults: without arguments this connects where ``distkv client``
    does.  The connection is closed when the block
    is left; it is not re-established if it breaks.
    """
    client = Client(cfg)
    try:
        await client._connect()
        async with anyio.create_task_group() as tg:
            tg.start_soon(client._reader)
            tg.start_soon(client._writer)
            try:
                with anyio.fail_after(client._cfg.connect.init_timeout):
                    await client._login()
                yield client
            finally:
                tg.cancel_scope.cancel()
    finally:
        client._close()


def _path_of(args):
    """The path of a method's positional arguments: one tuple, list or Path
    is the whole path; anything else is the path's elements."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return Path.build(args[0])
    return Path.build(args)


def _error_of(msg):
    cls = error_types.get(msg.get("etype"), ServerError)
    err = msg["error"]
    return cls(err if isinstance(err, str) else repr(err))


class _Call:
    """One request waiting for its single reply.  If the server answers
    with a stream instead (``state: start``), the reply becomes a Stream."""

    __slots__ = ("client", "seq", "event", "result", "error")

    def __init__(self, client, seq):
        self.client = client
        self.seq = seq
        self.event = anyio.Event()
        self.result = None
        self.error = None

    def feed(self, msg):
        if "error" in msg:
            self.error = _error_of(msg)
        elif msg.get("state") == "start":
            s = Stream(self.client, None, None, prefix=())
            s._adopt(self.seq, msg)
            self.result = s
        else:
            self.result = msg
        if type(self.result) is not Stream:
            self.client._handlers.pop(self.seq, None)
        self.event.set()

    def fail(self, exc_factory):
        self.error = exc_factory()
        self.event.set()


class Stream:
    """The replies of a streaming request (watch, get_tree, msg_monitor, …).

    Use it as an async context manager and/or an async iterator::

        async with client.watch("a", fetch=True) as w:
            async for msg in w:
                ...

    Iterating yields the reply maps (attrdicts) without the stream's
    ``start`` and ``end`` messages; ``.start_msg`` and ``.end_msg`` hold
    those.  Paths arrive full (``prefix`` + the path below the request's).
    An error message of the server ends the stream with ServerError; a lost
    connection with ConnectionError.  Leaving the ``async with`` block (or
    ``await stream.aclose()``) ends a stream that is still running.

    Flow control: the server sends at most ``qlen`` messages that we have
    not acknowledged, and we acknowledge only what the consumer has taken,
    so a slow consumer holds at most that many messages here.
    """

    start_msg = None
    end_msg = None

    def __init__(self, client, action, params, *, prefix=None):
        self._client = client
        self._action = action
        self._params = params
        self.seq = None
        self._items = deque()
        self._wake = None
        self._done = False      # the server sent end (or an error), or we ended it
        self._error = None      # a callable making the exception to raise at the end
        self._longen = PathLongener(prefix) if prefix is not None else None
        self._acked = 0         # highest wseq acknowledged
        self._taken = 0         # highest wseq consumed
        q = client.qlen
        self._ack_every = max(1, q // 3) if q else 0

    # -- the server's side, called by the reader task

    def _adopt(self, seq, start_msg):
        """Become the stream of a request already sent (see _Call)."""
        self.seq = seq
        self._client._handlers[seq] = self
        self.feed(start_msg)

    def feed(self, msg):
        state = msg.get("state")
        if "error" in msg:
            err = _error_of(msg)
            self._finish(lambda: err)
        elif state is None or state == "uptodate":
            if self._longen is not None:
                self._longen(msg)
            self._items.append(msg)
        elif state == "start":
            self.start_msg = msg
            self._took(msg)
        elif state == "end":
            self.end_msg = msg
            self._finish(None)
        else:   # ack (for streams we send) or something new: not for the consumer
            return
        if self._wake is not None:
            self._wake.set()

    def fail(self, exc_factory):
        self._finish(exc_factory)
        if self._wake is not None:
            self._wake.set()

    def _finish(self, error):
        if not self._done:
            self._done = True
            self._error = error
            self._client._handlers.pop(self.seq, None)

    # -- the consumer's side

    def _open(self):
        if self.seq is None:
            self.seq = self._client._start_stream(self, self._action, self._params)

    def _took(self, msg):
        w = msg.pop("wseq", None)
        if w is None or not self._ack_every:
            return
        self._taken = w
        if w - self._acked >= self._ack_every and not self._done:
            self._acked = w
            self._client._send({"seq": self.seq, "state": "ack", "ack": w})

    @property
    def buffered(self):
        """How many messages are waiting for the consumer."""
        return len(self._items)

    async def __aenter__(self):
        """Send the request and wait for the server's ``start``: from then
        on a watch sees every change, also those made through other
        connections (an error shows when the stream is read)."""
        self._open()
        while self.start_msg is None and not self._done:
            self._wake = anyio.Event()
            try:
                await self._wake.wait()
            finally:
                self._wake = None
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    def __aiter__(self):
        self._open()
        return self

    async def __anext__(self):
        while not self._items:
            if self._done:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err()
                raise StopAsyncIteration
            self._wake = anyio.Event()
            try:
                await self._wake.wait()
            finally:
                self._wake = None
        msg = self._items.popleft()
        self._took(msg)
        return msg

    async def recv(self):
        """The next message (as ``__anext__``, StopAsyncIteration at the end)."""
        return await self.__anext__()

    async def aclose(self):
        """End the stream: tell the server to stop it if it still runs, and
        drop whatever is still queued here."""
        if self.seq is not None and not self._done:
            self._done = True
            self._client._handlers.pop(self.seq, None)
            if self._client._failed is None:
                try:
                    self._client._send({"seq": self.seq, "state": "end"})
                except ConnectionError:
                    pass
        self._items.clear()

    def __repr__(self):
        return "<Stream seq=%s %s%s>" % (self.seq, self._action,
                                         " done" if self._done else "")


class Client:
    """The client side of one connection.  Make it with :func:`open_client`.

    Every method that takes ``*path`` accepts the path's elements as
    arguments (``get("one", "two")``) or one tuple, list or Path
    (``get(P("one.two"))``).  Methods are safe to call from many tasks at
    once; their requests share the connection and are answered as the
    server finishes them.
    """

    def __init__(self, cfg):
        cfg = dict(cfg)
        short = {k: cfg.pop(k) for k in CONNECT_KEYS if k in cfg}
        if short:
            cfg["connect"] = combine_dict(short, cfg.get("connect"))
        self._cfg = combine_dict(cfg, default_config(), DEFAULTS)
        c = self._cfg.connect
        self._auth = parse_auth(c.get("auth"))
        self._sock = None
        self._seq = 0
        self._handlers = {}     # seq -> _Call or Stream
        self._packer = packer()
        self._unpacker = unpacker()
        self._wbuf = bytearray()  # packed, not yet taken by the kernel
        self._busy = 0          # single requests in flight
        self._flush_soon = False  # a flush of _wbuf is scheduled
        self._call_soon = None  # asyncio's loop.call_soon (None: the writer flushes)
        self._wevent = None     # set: the writer has work
        self._drained = None    # set: the send buffer went below the high water mark
        self._failed = None     # why the connection is gone (text), once it is
        self._gone_event = None  # set when it is
        self.server_info = None  # the greeting
        self.qlen = 0
        self.name = c.get("name")

    # -- properties

    @property
    def node(self):
        """The name of the server's node."""
        return self.server_info["node"]

    @property
    def config(self):
        """The configuration this client was opened with (defaults filled in)."""
        return self._cfg

    # -- the connection

    async def _connect(self):
        c = self._cfg.connect
        host, port = c.host, int(c.port)
        with anyio.fail_after(c.init_timeout):
            try:
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as e:
                raise ConnectionError("%s:%s: %s" % (host, port, e)) from None
            err = None
            for family, type_, proto, _, addr in infos:
                sock = socket.socket(family, type_, proto)
                sock.setblocking(False)
                try:
                    rc = sock.connect_ex(addr)
                    if rc == errno.EINPROGRESS:
                        await anyio.wait_socket_writable(sock)
                        rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if rc:
                        raise OSError(rc, "%s:%s: %s" % (host, port, errno.errorcode.get(rc, rc)))
                except BaseException as e:
                    sock.close()
                    err = e
                    if not isinstance(e, OSError):
                        raise
                    continue
                break
            else:
                raise ConnectionError(str(err) if err else "%s:%s: no address" % (host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._wevent = anyio.Event()
            self._gone_event = anyio.Event()
            if sniffio.current_async_library() == "asyncio":
                import asyncio

                self._call_soon = asyncio.get_running_loop().call_soon
            hello = await self._read_greeting()
        self.server_info = hello
        if self.name is None:
            self.name = hello.get("node")
        q = hello.get("qlen")
        if isinstance(q, int) and q > 0:
            self.qlen = q
            self._send({"seq": 0, "qlen": q})

    async def _read_greeting(self):
        while True:
            for msg in self._unpacker:
                if isinstance(msg, dict) and msg.get("seq") == 0:
                    return msg
                raise ConnectionError("the server's first message is no greeting: %r" % (msg,))
            await anyio.wait_socket_readable(self._sock)
            try:
                data = self._sock.recv(RECV_CHUNK)
            except BlockingIOError:
                continue
            except OSError as e:
                raise ConnectionError("reading the greeting: %s" % e) from None
            if not data:
                raise ServerClosedError("the server closed the connection before its greeting")
            self._unpacker.feed(data)

    async def _login(self):
        want = self.server_info.get("auth")
        want = want[0] if isinstance(want, (list, tuple)) and want else None
        sp = self._auth
        if want is None:
            return
        if sp is None or sp.method == "root":
            raise ClientAuthRequiredError("You need to log in using: %s" % want)
        if sp.method != want:
            raise ClientAuthMethodError("You cannot use %r auth; the server wants %s"
                                        % (sp.method, want))
        data = {}
        if sp.method == "password":
            pw = sp.password
            if pw is None:
                if sp.prompt is None:
                    raise ClientError("auth: the password method needs password=")
                import getpass

                pw = await anyio.to_thread.run_sync(getpass.getpass, sp.prompt + ": ")
            key = await self.request("auth_key")
            data = {"password": seal(key.get("pubkey"), pw)}
        async with self._stream("auth", typ=sp.method, chroot=(), ident=sp.name,
                                data=data) as s:
            async for _ in s:
                pass

    def _close(self):
        if self._failed is None:
            self._lost("the client closed the connection", closed_by_us=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _lost(self, why, closed_by_us=False):
        """The connection is gone: every waiting request fails."""
        if self._failed is not None:
            return
        self._failed = why
        make = (lambda: ClientError(why)) if closed_by_us else (lambda: ServerClosedError(why))
        handlers, self._handlers = self._handlers, {}
        for h in handlers.values():
            h.fail(make)
        if self._wevent is not None:
            self._wevent.set()
        if self._drained is not None:
            self._drained.set()
        if self._gone_event is not None:
            self._gone_event.set()

    def _gone(self):
        """The exception for a request on a connection that is gone."""
        if self._sock is None:
            return ClientError(self._failed)    # closed by us
        return ServerClosedError(self._failed)

    async def _reader(self):
        """Read replies and hand each to its request, until the connection
        is gone.  On asyncio the socket's readiness callback does the work
        (no task switch per reply); elsewhere a loop waits for the socket."""
        if sniffio.current_async_library() == "asyncio":
            import asyncio

            loop = asyncio.get_running_loop()
            fd = self._sock.fileno()
            loop.add_reader(fd, self._readable)
            try:
                await self._gone_event.wait()
            finally:
                loop.remove_reader(fd)
            return
        fd = self._sock.fileno()
        while self._failed is None:
            await anyio.wait_socket_readable(fd)
            self._readable()

    def _readable(self):
        try:
            data = self._sock.recv(RECV_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            self._lost("connection to the server lost: %s" % e)
            return
        if not data:
            self._lost("the server closed the connection")
            return
        handlers = self._handlers
        try:
            self._unpacker.feed(data)
            for msg in self._unpacker:
                h = handlers.get(msg.get("seq"))
                if h is not None:
                    h.feed(msg)
                elif "seq" not in msg and "error" in msg:
                    # the server cannot trust the byte stream any more
                    self._lost("the server gave up on the connection: %s" % msg["error"])
                    return
        except (ValueError, AttributeError, TypeError, msgpack.UnpackException) as e:
            self._lost("garbled data from the server: %r" % e)

    async def _writer(self):
        """Send what _send left in the buffer: at once when woken, then as
        the socket takes it."""
        fd = self._sock.fileno()
        while self._failed is None:
            await self._wevent.wait()
            self._wevent = anyio.Event()
            self._flush()
            while self._wbuf and self._failed is None:
                await anyio.wait_socket_writable(fd)
                self._flush()

    def _send(self, msg):
        """Queue one message.  An idle connection sends it at once; while
        other requests are in flight it joins the buffer, which goes out
        in one send() at the end of this turn of the event loop (so a
        hundred tasks cost one system call, not a hundred)."""
        if self._failed is not None:
            raise self._gone()
        data = self._packer.pack(msg)
        if self._wbuf or self._busy > 1:
            self._wbuf += data
            if not self._flush_soon:
                self._flush_soon = True
                if self._call_soon is not None:
                    self._call_soon(self._flush)
                else:
                    self._wevent.set()
            return
        try:
            n = self._sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self._lost("connection to the server lost: %s" % e)
            raise self._gone() from None
        if n < len(data):
            self._wbuf += data[n:]
            self._wevent.set()

    def _flush(self):
        self._flush_soon = False
        if not self._wbuf or self._failed is not None:
            return
        try:
            n = self._sock.send(self._wbuf)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self._lost("connection to the server lost: %s" % e)
            return
        del self._wbuf[:n]
        if self._wbuf:
            self._wevent.set()      # the writer waits until the socket takes more
        elif self._drained is not None:
            self._drained.set()
            self._drained = None

    async def _wait_send_room(self):
        while len(self._wbuf) >= SEND_HIGH_WATER and self._failed is None:
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()

    def _next_seq(self):
        self._seq += 1
        return self._seq

    def _start_stream(self, stream, action, params):
        if self._failed is not None:
            raise self._gone()
        seq = self._next_seq()
        msg = {"seq": seq, "action": action}
        msg.update(params)
        stream.seq = seq
        self._handlers[seq] = stream
        try:
            self._send(msg)
        except BaseException:
            self._handlers.pop(seq, None)
            raise
        return seq

    # -- generic requests

    async def request(self, action, **params):
        """Send one request and return its reply (an attrdict).  A server
        error raises ServerError; if the server answers with a stream, the
        :class:`Stream` is returned."""
        if self._failed is not None:
            raise self._gone()
        if len(self._wbuf) >= SEND_HIGH_WATER:
            await self._wait_send_room()
        self._seq += 1
        seq = self._seq
        call = _Call(self, seq)
        params["seq"] = seq
        params["action"] = action
        self._handlers[seq] = call
        self._busy += 1
        try:
            self._send(params)
            await call.event.wait()
        finally:
            self._busy -= 1
            if call.result is None and call.error is None:
                self._handlers.pop(seq, None)
        if call.error is not None:
            raise call.error
        return call.result

    def _stream(self, action, **params):
        """A :class:`Stream` for a streaming request (sent when entered or
        iterated).  ``prefix``: paths are made full with it (None: the
        replies' paths are left as they arrive)."""
        prefix = params.pop("_prefix", None)
        return Stream(self, action, params, prefix=prefix)

    stream = _stream

    async def _request(self, action, iter=None, **params):  # noqa: A002
        """The original client's generic call: ``iter=True`` always gives an
        async iterator, ``iter=False`` exactly one reply, None whatever the
        server sends."""
        params.pop("_async", None)
        res = await self.request(action, **params)
        if iter is True and type(res) is not Stream:
            return _one(res)
        if iter is False and type(res) is Stream:
            out = None
            try:
                async for r in res:
                    if out is not None:
                        raise ManyData(action)
                    out = r
            finally:
                await res.aclose()
            if out is None:
                raise NoData(action)
            return out
        return res

    # -- data

    async def get(self, *path, nchain=1, **kw):
        """The entry at path: ``.value`` (absent when there is none), and
        ``.chain`` (``nchain`` deep; None when the entry has no value).
        ``nchain=0`` leaves the chain out."""
        return await self.request("get_value", path=_path_of(path), nchain=nchain, **kw)

    async def set(self, *path, value=NotGiven, chain=NotGiven, prev=NotGiven, idem=None,
                  nchain=None, **kw):
        """Store value at path.  ``chain``: the chain you read (the change
        is refused if the entry changed since), or None (refused if the
        entry has a value).  Returns the reply: ``.changed``, ``.chain``
        (the new chain, ``nchain`` deep; default 1), ``.prev`` (the old
        value, when no precondition was given)."""
        if value is NotGiven:
            raise ClientError("set needs value=; use delete to remove a value")
        args = {"path": _path_of(path), "value": value}
        if chain is not NotGiven:
            args["chain"] = chain
        if prev is not NotGiven:
            args["prev"] = prev
        if idem is not None:
            args["idem"] = idem
        if nchain is not None:
            args["nchain"] = nchain
        args.update(kw)
        return await self.request("set_value", **args)

    set_value = set

    async def delete(self, *path, chain=NotGiven, prev=NotGiven, nchain=None,
                     recursive=False, **kw):
        """Remove the value at path (its children stay).  ``chain`` as for
        :meth:`set`.  ``recursive=True`` removes the whole subtree below and
        including path (not the root); the reply's ``changed`` then counts
        the values removed."""
        args = {"path": _path_of(path)}
        if recursive:
            if chain is not NotGiven or prev is not NotGiven:
                raise ClientError("a recursive delete takes no chain or prev")
            return await self.request("delete_tree", **args, **kw)
        if chain is not NotGiven:
            args["chain"] = chain
        if prev is not NotGiven:
            args["prev"] = prev
        if nchain is not None:
            args["nchain"] = nchain
        args.update(kw)
        return await self.request("delete_value", **args)

    delete_value = delete

    async def list(self, *path, with_data=False, empty=None, **kw):
        """The names of path's children (a tuple); with ``with_data`` a dict
        of name to value (children without a value left out unless
        ``empty``)."""
        if empty is None:
            empty = not with_data
        res = await self.request("enum", path=_path_of(path), with_data=with_data,
                                 empty=empty, **kw)
        return res.result

    def get_tree(self, *path, min_depth=None, max_depth=None, nchain=None, empty=None,
                 long_path=False, **kw):
        """The subtree at path, as an async iterator of entries (``.path``,
        ``.value``, ``.tock``, ``.chain`` with ``nchain``).  Paths are
        relative to the request's path (as the original client gives
        them); ``long_path=True`` makes them full.  ``min_depth`` and
        ``max_depth`` count levels below path (path itself is 0);
        ``empty`` includes entries without a value."""
        p = _path_of(path)
        args = {"path": p}
        for k, v in (("min_depth", min_depth), ("max_depth", max_depth),
                     ("nchain", nchain), ("empty", empty)):
            if v is not None:
                args[k] = v
        args.update(kw)
        return Stream(self, "get_tree", args, prefix=p if long_path else ())

    def watch(self, *path, fetch=False, nchain=1, min_depth=None, max_depth=None,
              long_path=True, **kw):
        """Changes below (and at) path, as a :class:`Stream` to use with
        ``async with``.  Each message has ``.path`` (full, or relative with
        ``long_path=False``), ``.value`` (absent for a deletion), ``.chain``
        (``nchain`` deep) and ``.tock``.  With ``fetch=True`` the current
        entries come first, then one message without ``path`` (``state:
        "uptodate"``) marks the end of the fetch."""
        p = _path_of(path)
        args = {"path": p, "nchain": nchain}
        if fetch:
            args["fetch"] = True
        if min_depth is not None:
            args["min_depth"] = min_depth
        if max_depth is not None:
            args["max_depth"] = max_depth
        args.update(kw)
        return Stream(self, "watch", args, prefix=p if long_path else ())

    def mirror(self, *path, root_type=None, **kw):
        """An async context manager keeping the subtree at path in memory
        (see :class:`ClientRoot`); it yields the root once the current
        state has arrived and keeps it current until the block is left."""
        if root_type is None:
            root_type = ClientRoot
        root = root_type(self, _path_of(path), **kw)
        return root.run()

    async def get_tock(self):
        """The server's current tock."""
        return (await self.request("get_tock")).tock

    async def get_state(self, **flags):
        """The server's state: ``get_state(nodes=True, known=True, ...)``
        (flags as in doc/protocol.md); returns the reply."""
        return await self.request("get_state", **flags)

    async def stop(self, seq):
        """Stop the running stream with this seq (``stream.seq``); True if
        it was running.  A stream of this client ends (its iteration stops
        after the messages that came before)."""
        res = (await self.request("stop", task=seq)).result
        h = self._handlers.get(seq)
        if type(h) is Stream:
            h.fail(None)    # the server sends no end for a stopped stream
        return res

    # -- messages between clients (through the cluster's Serf agents)

    async def msg_send(self, topic, data=None, raw=None):
        """Send a message to every msg_monitor of topic (a string, or a
        sequence of strings).  ``data``: any value; ``raw``: bytes as they are."""
        if raw is not None:
            if data is not None:
                raise ClientError("msg_send takes data or raw, not both")
            return await self.request("msg_send", topic=topic, raw=raw)
        return await self.request("msg_send", topic=topic, data=data)

    def msg_monitor(self, topic, raw=False):
        """The messages sent to topic, as a :class:`Stream` of ``{topic,
        data}`` (``raw`` instead of ``data`` with raw=True)."""
        return Stream(self, "msg_monitor", {"topic": topic, "raw": raw})


async def _one(res):
    yield res
