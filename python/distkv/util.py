"""Small values the client API hands out: NotGiven, attrdict, Path.

``Path`` is a tuple of path elements; ``str(path)`` and ``P(text)`` use the
original DistKV's dotted notation (``one.two:.three`` is the three elements
``one``, ``two.three``; ``:t``, ``:n``, ``:e``, ``:123`` are True, None, the
empty string and an integer).  ``PathLongener`` undoes the depth compression
of stream replies.
"""

import ast

__all__ = ["NotGiven", "attrdict", "Path", "P", "PathLongener", "combine_dict"]


class _NotGivenType:
    """The type of :data:`NotGiven`: "no value here", distinct from None."""

    __slots__ = ()
    _the_one = None

    def __new__(cls):
        if cls._the_one is None:
            cls._the_one = object.__new__(cls)
        return cls._the_one

    def __repr__(self):
        return "NotGiven"

    def __bool__(self):
        return False

    def __reduce__(self):
        return "NotGiven"


NotGiven = _NotGivenType()
"""Marks a missing value (an entry without a value, a deleted one, an
argument that was not passed).  Test with ``is NotGiven``."""


class attrdict(dict):
    """A dict whose keys can also be read and written as attributes.

    ``res.value`` is ``res["value"]``; a missing key raises AttributeError
    (so ``getattr(res, "chain", None)`` works) and KeyError by index.
    """

    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        return "attrdict(%s)" % dict.__repr__(self)


def combine_dict(*dicts):
    """Merge mappings, earlier ones winning; nested mappings are merged too.
    Returns a new attrdict tree; the arguments are not changed."""
    out = attrdict()
    for d in reversed(dicts):
        if d is None:
            continue
        for k, v in d.items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = combine_dict(v, out[k])
            elif isinstance(v, dict):
                out[k] = combine_dict(v)
            else:
                out[k] = v
    return out


# ---------------------------------------------------------------------------
# paths

_INLINE = {".": ".", ":": ":", "_": " "}
_WORDS = {"t": True, "f": False, "n": None, "e": ""}


def _elem_str(e):
    if isinstance(e, str):
        if e == "":
            return ":e"
        return e.replace(":", "::").replace(".", ":.").replace(" ", ":_")
    if e is True:
        return ":t"
    if e is False:
        return ":f"
    if e is None:
        return ":n"
    if isinstance(e, bytes):
        return ":y" + e.hex()
    return ":" + repr(e)


class Path(tuple):
    """A path: a tuple of elements (str, int, float, bool, None, bytes,
    tuples of these).  Sent on the wire as msgpack extension type 3.

    ``Path("a", "b")`` is the two-element path; ``Path.build(seq)`` makes one
    from a sequence; ``P("a.b")`` parses the dotted notation.  A Path
    compares equal to a plain tuple of the same elements.
    """

    __slots__ = ()

    def __new__(cls, *elements):
        return tuple.__new__(cls, elements)

    @classmethod
    def build(cls, elements):
        """A Path from any iterable of elements (a Path is returned as is)."""
        if type(elements) is cls:
            return elements
        return tuple.__new__(cls, elements)

    @classmethod
    def from_str(cls, text):
        """Parse the dotted notation (see the module's docstring).  A lone
        ``:`` is the empty path."""
        if text in ("", ":"):
            return cls()
        out, i = [], 0
        while True:
            elem, i = _scan_elem(text, i)
            out.append(elem)
            if i == len(text):
                return tuple.__new__(cls, out)
            i += 1  # the dot

    def __str__(self):
        if not self:
            return ":"
        return ".".join(_elem_str(e) for e in self)

    def __repr__(self):
        return "P(%r)" % str(self)

    def __add__(self, other):
        return tuple.__new__(Path, tuple.__add__(self, tuple(other)))

    def __radd__(self, other):
        return tuple.__new__(Path, tuple(other) + tuple(self))

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        if isinstance(i, slice):
            return tuple.__new__(Path, r)
        return r

    def __getnewargs__(self):
        return tuple(self)


def _scan_elem(text, i):
    """One element of dotted notation starting at text[i]: (element, index
    of the dot after it or len(text))."""
    n = len(text)
    if text.startswith(":", i) and i + 1 < n and text[i + 1] not in _INLINE:
        tag = text[i + 1]
        j = text.find(".", i)
        j = n if j < 0 else j
        rest = text[i + 2:j]
        if tag in _WORDS and not rest:
            return _WORDS[tag], j
        try:
            if tag == "x":
                return int(rest, 16), j
            if tag == "b":
                return int(rest, 2), j
            if tag == "y":
                return bytes.fromhex(rest), j
        except ValueError:
            raise ValueError("not a path element: %r" % text[i:j]) from None
        if tag == "v":
            return rest.encode(), j
        # a Python literal, which may itself hold dots (1.5, ('a.b',)):
        # the longest one that ends at a dot or at the end
        best = None
        while True:
            try:
                best = ast.literal_eval(text[i + 1:j]), j
            except (ValueError, SyntaxError):
                pass
            if j == n:
                break
            j = text.find(".", j + 1)
            j = n if j < 0 else j
        if best is None:
            raise ValueError("not a path element in %r at %d" % (text, i))
        return best
    out = []
    while i < n and text[i] != ".":
        c = text[i]
        if c == ":":
            esc = _INLINE.get(text[i + 1:i + 2])
            if esc is None:
                raise ValueError("bad escape in path %r at %d" % (text, i))
            out.append(esc)
            i += 2
        else:
            out.append(c)
            i += 1
    if not out:
        raise ValueError("empty path element in %r (write :e for the empty string)" % text)
    return "".join(out), i


def P(text):
    """Parse a path in dotted notation: ``P("one.two")``."""
    return Path.from_str(text)


class PathLongener:
    """Undo the depth compression of a stream's replies.

    A reply's ``path`` holds the elements after the first ``depth`` elements
    of the previous reply's path.  Calling the longener with a reply
    replaces its ``path`` by the full one (``prefix`` + the path relative to
    the request) and removes ``depth``.  Replies without both are left alone.
    """

    __slots__ = ("prefix", "_last")

    def __init__(self, prefix=()):
        self.prefix = Path.build(prefix)
        self._last = ()

    def __call__(self, msg):
        try:
            p = msg["path"]
            d = msg.pop("depth")
        except KeyError:
            return msg
        if not 0 <= d <= len(self._last):
            raise ValueError("bad depth %r after %r" % (d, self._last))
        rel = self._last[:d] + tuple(p)
        self._last = rel
        msg["path"] = tuple.__new__(Path, self.prefix + rel)
        return msg
