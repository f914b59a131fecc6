"""dkvproto - a small, synchronous DistKV client-protocol library for tests.

This is deliberately *not* a real client: it speaks the wire protocol with
blocking sockets so a test can send exactly the bytes it wants (including
broken ones) and look at every reply.  Shared by all system tests; import it as
``from dkvproto import Path, Proto, Raw, ...`` (tests/system is on sys.path
because pytest's rootdir-relative import of conftest puts it there).

Wire format (what DistKV 0.57.4 does, and what we must do):

* every message is one msgpack map; requests carry ``seq`` (int) and
  ``action`` (str); replies carry the request's ``seq`` and a ``tock``.
* the server greets with ``{'seq': 0, 'version', 'node', 'tick', 'tock',
  'qlen'}``; the real client answers ``{'seq': 0, 'qlen': N}``.
* msgpack ext type 2 is an unsigned big integer, big-endian (used for ints
  >= 2**64); ext type 3 is a Path: the concatenated msgpack encodings of its
  elements.
* multi-reply results are framed by ``state: 'start'`` .. ``state: 'end'``;
  with a window (``qlen``) each reply of a stream carries ``wseq`` (1, 2, ...)
  and the receiver acknowledges with ``{'seq': s, 'state': 'ack', 'ack': wseq}``.
  The original client acks whenever it has consumed more than qlen // 3
  replies since its last ack (qlen 10 -> acks at wseq 4, 8, 12, ...).

Decoding follows the original client: ``raw=False, strict_map_key=False,
use_list=False`` (arrays become tuples).
"""

import select
import socket
import struct
import time

import msgpack

__all__ = [
    "Path", "Raw", "ConnectionClosed", "Proto", "encode", "decode_all",
    "make_unpacker", "strict_equal", "diff", "PathLongener", "shorten_paths",
]


# --------------------------------------------------------------------------
# values

class Path(tuple):
    """A DistKV path: a tuple of elements that is sent as msgpack ext type 3.

    Compares equal to a plain tuple with the same elements (replies carry
    shortened paths as plain arrays), so ``Path('a', 1) == ('a', 1)``.
    Use :func:`strict_equal` where ``1``/``True``/``1.0`` must be told apart.
    """

    def __new__(cls, *elements):
        return super().__new__(cls, elements)

    def __repr__(self):
        return "Path(%s)" % ", ".join(repr(e) for e in self)

    def __add__(self, other):
        return Path(*tuple.__add__(self, tuple(other)))


class Raw:
    """Bytes that :func:`encode` inserts verbatim where a value would go.

    Lets a test build messages with non-canonical or invalid encodings, or
    nesting deeper than msgpack-python (or Python's recursion) allows.
    """

    def __init__(self, data):
        self.data = bytes(data)

    def __repr__(self):
        return "Raw(%r)" % (self.data[:40],)


def _pack_leaf(obj):
    if isinstance(obj, int) and not isinstance(obj, bool) and obj >= 1 << 64:
        n = obj.to_bytes((obj.bit_length() + 7) // 8, "big")
        return msgpack.packb(msgpack.ExtType(2, n))
    return msgpack.packb(obj, use_bin_type=True)


def _head(n, fix, fixmax, b16, b32):
    if n <= fixmax:
        return bytes([fix | n])
    if n < 1 << 16:
        return bytes([b16]) + struct.pack(">H", n)
    return bytes([b32]) + struct.pack(">I", n)


def encode(obj):
    """Encode *obj* as msgpack the way the original client does.

    Handles :class:`Path` (ext 3), big ints (ext 2), :class:`Raw` anywhere,
    nested dicts/lists/tuples; strings as str, bytes as bin.  Iterative
    enough for normal use; very deep nesting should be built with Raw.
    """
    if isinstance(obj, Raw):
        return obj.data
    if isinstance(obj, Path):
        payload = b"".join(encode(e) for e in obj)
        return msgpack.packb(msgpack.ExtType(3, payload))
    if isinstance(obj, dict):
        out = [_head(len(obj), 0x80, 15, 0xDE, 0xDF)]
        for k, v in obj.items():
            out.append(encode(k))
            out.append(encode(v))
        return b"".join(out)
    if isinstance(obj, (list, tuple)):
        return _head(len(obj), 0x90, 15, 0xDC, 0xDD) + b"".join(encode(e) for e in obj)
    return _pack_leaf(obj)


def _ext_hook(code, data):
    if code == 2:
        return int.from_bytes(data, "big")
    if code == 3:
        return Path(*decode_all(data))
    return msgpack.ExtType(code, data)


def make_unpacker(**kw):
    """A streaming unpacker configured like the original client's."""
    args = dict(raw=False, strict_map_key=False, use_list=False, ext_hook=_ext_hook,
                max_buffer_size=512 << 20)
    args.update(kw)
    return msgpack.Unpacker(**args)


def decode_all(data):
    """Decode a byte string holding zero or more msgpack objects."""
    u = make_unpacker()
    u.feed(data)
    return list(u)


def strict_equal(a, b):
    """Deep equality that tells bool/int/float and str/bytes apart.

    Tuples, lists and Paths with equal elements are equal (a reply's shortened
    path may arrive as either an array or a Path)."""
    return diff(a, b) is None


def diff(a, b, where="$"):
    """Return None if a and b are strictly equal, else a description."""
    def kind(x):
        if isinstance(x, bool):
            return "bool"
        if isinstance(x, int):
            return "int"
        if isinstance(x, float):
            return "float"
        if isinstance(x, (tuple, list)):
            return "seq"
        if isinstance(x, dict):
            return "map"
        return type(x).__name__
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return "%s: %r (%s) != %r (%s)" % (where, a, ka, b, kb)
    if ka == "seq":
        if len(a) != len(b):
            return "%s: length %d != %d (%r vs %r)" % (where, len(a), len(b), a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, "%s[%d]" % (where, i))
            if d:
                return d
        return None
    if ka == "map":
        if set(a) != set(b):
            return "%s: keys %r != %r" % (where, sorted(map(repr, a)), sorted(map(repr, b)))
        for k in a:
            d = diff(a[k], b[k], "%s[%r]" % (where, k))
            if d:
                return d
        return None
    if ka == "float" and a != a and b != b:  # NaN
        return None
    if a != b:
        return "%s: %r != %r" % (where, a, b)
    return None


# --------------------------------------------------------------------------
# path shortening (the reply side of get_tree / watch)

class PathLongener:
    """Undo the server's path shortening: feed replies, get full paths.

    A reply's ``path`` holds the elements after the first ``depth`` elements
    of the previous entry's path (relative to the request's path)."""

    def __init__(self):
        self.path = ()

    def __call__(self, msg):
        depth = msg["depth"]
        if not isinstance(depth, int) or depth < 0 or depth > len(self.path):
            raise ValueError("bad depth %r after %r" % (depth, self.path))
        self.path = tuple(self.path[:depth]) + tuple(msg["path"])
        return self.path


def shorten_paths(paths, prev=()):
    """The canonical shortening of a sequence of full (relative) paths:
    list of (depth, rest) pairs, as the original server computes them.
    *prev* is the full path sent before the first one."""
    out = []
    prev = tuple(prev)
    for p in paths:
        p = tuple(p)
        d = 0
        while d < min(len(p), len(prev)) and strict_equal(p[d], prev[d]):
            d += 1
        out.append((d, p[d:]))
        prev = p
    return out


# --------------------------------------------------------------------------
# the connection

class ConnectionClosed(EOFError):
    """The server closed the connection (EOF or reset)."""


class Proto:
    """A blocking raw-protocol connection.

    ``Proto(host, port)`` connects, reads the greeting into ``.greeting`` and
    (unless ``hello=False``) answers ``{'seq': 0, 'qlen': qlen}`` like the
    original client, which turns on per-stream flow control.

    Receiving: replies are demultiplexed by ``seq``; messages read while
    waiting for another ``seq`` are kept in ``.pending``.  Every message
    received is also appended to ``.log`` (for failure reports).

    Main calls::

        p.request('get_value', path=Path('a'))   -> reply dict
        p.stream('get_tree', path=Path('a'))     -> [start, ..., end]
        seq = p.start('watch', path=...);  p.next(seq) -> one reply (acked)
        p.send({...}); p.send_raw(b'...'); p.recv(timeout)
        p.wait_closed(timeout) -> True if the server closed the connection
    """

    def __init__(self, host="127.0.0.1", port=27586, *, timeout=10.0, hello=True,
                 qlen=10, read_greeting=True, unpacker_args=None):
        self.host, self.port = host, port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unpacker = make_unpacker(**(unpacker_args or {}))
        self.pending = []
        self.log = []
        self.greeting = None
        self.qlen = 0
        self.eof = False
        self._seq = 0
        self._acked = {}    # stream seq -> last wseq acked
        self._last = {}     # stream seq -> last wseq consumed
        if read_greeting:
            self.greeting = self.recv()
            if hello:
                q = qlen
                if isinstance(self.greeting.get("qlen"), int) and self.greeting["qlen"] > 0:
                    q = min(q, self.greeting["qlen"])
                self.qlen = q
                self.send({"seq": 0, "qlen": q})

    # -- plumbing

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_seq(self):
        self._seq += 1
        return self._seq

    def send(self, msg):
        """Send one message (a dict, or anything :func:`encode` takes)."""
        self.send_raw(encode(msg))

    def send_raw(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _read_more(self, deadline):
        if self.eof:
            raise ConnectionClosed("connection closed by server")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no message within timeout")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("no message within timeout") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            self.eof = True
            raise ConnectionClosed("connection reset: %r" % exc) from None
        if not data:
            self.eof = True
            raise ConnectionClosed("connection closed by server")
        self.unpacker.feed(data)

    def _next_from_socket(self, deadline):
        while True:
            try:
                msg = next(self.unpacker)
            except StopIteration:
                self._read_more(deadline)
                continue
            self.log.append(msg)
            return msg

    def recv(self, timeout=None):
        """The next message, in arrival order (pending ones first).

        Raises TimeoutError or ConnectionClosed."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return self._next_from_socket(deadline)

    def recv_for(self, seq, timeout=None):
        """The next message whose ``seq`` is *seq* (None: messages without
        a seq).  Others read meanwhile are kept in ``.pending``."""
        for i, m in enumerate(self.pending):
            if self._seq_of(m) == seq:
                return self.pending.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            m = self._next_from_socket(deadline)
            if self._seq_of(m) == seq:
                return m
            self.pending.append(m)

    @staticmethod
    def _seq_of(m):
        if isinstance(m, dict):
            return m.get("seq")
        return None

    def drain(self, timeout=0.5):
        """Read everything arriving within *timeout* seconds; return it
        (pending included).  Stops early at EOF."""
        out, self.pending = self.pending, []
        deadline = time.monotonic() + timeout
        while True:
            try:
                out.append(self._next_from_socket(deadline))
            except (TimeoutError, ConnectionClosed):
                return out

    def wait_closed(self, timeout=5.0):
        """Wait until the server closes the connection.  Messages that
        arrive meanwhile go to ``.pending``.  True if it closed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.pending.append(self._next_from_socket(deadline))
            except ConnectionClosed:
                return True
            except TimeoutError:
                return False

    # -- requests

    def request(self, action, _timeout=None, **fields):
        """Send one request with the next seq and return its reply."""
        seq = self.next_seq()
        msg = {"seq": seq, "action": action}
        msg.update(fields)
        self.send(msg)
        return self.recv_for(seq, _timeout)

    def start(self, action, **fields):
        """Send a (streaming) request; return its seq.  Read with next()."""
        seq = self.next_seq()
        msg = {"seq": seq, "action": action}
        msg.update(fields)
        self.send(msg)
        self._acked[seq] = 0
        self._last[seq] = 0
        return seq

    def next(self, seq, timeout=None, ack=True):
        """The next reply of stream *seq*; acknowledges like the original
        client (when more than qlen // 3 replies are unacknowledged)."""
        m = self.recv_for(seq, timeout)
        if ack:
            self.consumed(seq, m)
        return m

    def consumed(self, seq, m):
        """Note that reply *m* of stream *seq* was consumed; ack if due."""
        w = m.get("wseq") if isinstance(m, dict) else None
        if not isinstance(w, int) or not self.qlen:
            return
        last = max(self._last.get(seq, 0), w)
        self._last[seq] = last
        if last - self._acked.get(seq, 0) > max(self.qlen // 3, 1):
            self.ack(seq, last)

    def ack(self, seq, wseq):
        self._acked[seq] = wseq
        self.send({"seq": seq, "state": "ack", "ack": wseq})

    def stream(self, action, _timeout=None, **fields):
        """Run a streaming request to completion: the list of all its
        replies, ``state: start`` first and ``state: end`` last.  A reply
        without ``state`` that carries an error (and no stream framing)
        ends it too, so single-reply errors don't hang."""
        seq = self.start(action, **fields)
        return self.collect(seq, _timeout)

    def collect(self, seq, timeout=None):
        """Read stream *seq* until its ``state: end``."""
        out = []
        while True:
            m = self.next(seq, timeout)
            out.append(m)
            if m.get("state") == "end":
                return out
            if "error" in m and not out[0].get("state") == "start":
                return out

    # -- helpers

    def get(self, path, **kw):
        """Shorthand for get_value: the reply."""
        return self.request("get_value", path=Path(*path), **kw)

    def set(self, path, value, **kw):
        return self.request("set_value", path=Path(*path), value=value, **kw)


def wait_port(host, port, timeout):
    """True once a TCP connect to host:port succeeds within *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def readable(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)
