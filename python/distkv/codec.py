"""msgpack as DistKV 0.57.4 speaks it.

Extension types: 2 is an unsigned integer of 2**64 or more (big-endian
magnitude), 3 a Path (the encodings of its elements back to back), 4 a named
proxy (kept as ``msgpack.ExtType``).  Decoding makes arrays tuples and maps
attrdicts, as the original client did; bytes stay bytes, strings str.
"""

import msgpack

from .util import Path, attrdict

__all__ = ["packer", "unpacker", "packb", "unpackb"]

_BIG = 1 << 64


def _default(obj):
    """What the strict packer does not know by exact type."""
    if isinstance(obj, Path):
        return msgpack.ExtType(3, _elements(obj))
    if isinstance(obj, (tuple, list)):
        return list(obj)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, int) and not isinstance(obj, bool):
        if obj >= _BIG:
            return msgpack.ExtType(2, obj.to_bytes((obj.bit_length() + 7) // 8, "big"))
        if obj < -(1 << 63):
            raise OverflowError("integer too small for msgpack: %d" % obj)
        return int(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, float):
        return float(obj)
    raise TypeError("cannot send a %s: %r" % (type(obj).__name__, obj))


def _elements(path):
    # the elements as one array, minus the array's header
    b = msgpack.packb(list(path), default=_default, strict_types=True, use_bin_type=True)
    n = len(path)
    return b[1:] if n < 16 else b[3:] if n < 65536 else b[5:]


def _ext_hook(code, data):
    if code == 3:
        u = unpacker()
        u.feed(data)
        return Path.build(u)
    if code == 2:
        return int.from_bytes(data, "big")
    return msgpack.ExtType(code, data)


def packer():
    """A new msgpack.Packer for requests (one per connection: not reentrant)."""
    return msgpack.Packer(default=_default, strict_types=True, use_bin_type=True)


def unpacker(max_buffer_size=64 << 20):
    """A new streaming msgpack.Unpacker for replies."""
    return msgpack.Unpacker(raw=False, strict_map_key=False, use_list=False,
                            ext_hook=_ext_hook, object_hook=attrdict,
                            max_buffer_size=max_buffer_size)


def packb(obj):
    """Encode one object."""
    return msgpack.packb(obj, default=_default, strict_types=True, use_bin_type=True)


def unpackb(data):
    """Decode one object."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=False,
                           ext_hook=_ext_hook, object_hook=attrdict)
