#!/usr/bin/python3
"""Write the seed corpus of the log reader's fuzz target (corpus-log/).

Each seed is a file as `distkv server -l` reads it (format: doc/formats.md):
a dump, an incremental log, two logs concatenated, a torn last record, a
torn record before the next header, garbage in the middle, a newer format,
internal data, and an empty file.  Run with /usr/bin/python3 after changing
it and commit its output.
"""
import os
import pathlib
import zlib

import msgpack

OUT = pathlib.Path(__file__).resolve().parent / "corpus-log"


def elem(x):
    return msgpack.packb(x, use_bin_type=True)


def path(*elems):
    return msgpack.ExtType(3, b"".join(elem(e) for e in elems))


def record(*items):
    body = msgpack.packb(list(items) + [0], use_bin_type=True)[:-1]  # without the crc
    return body + msgpack.packb(zlib.crc32(body), use_bin_type=True)


def header(node="node-a", kind="dump", version=1):
    return msgpack.packb({"distkv-log": version, "node": node, "created": 1700000000.5,
                          "kind": kind}, use_bin_type=True)


def entry(p, tock, chain, value):
    return record(1, p, tock, [list(c) for c in chain], value)


def delete(p, tock, chain):
    return record(2, p, tock, [list(c) for c in chain])


def state(tock, nodes):
    return record(3, tock, {n: [t, seen, dele] for n, (t, seen, dele) in nodes.items()})


def main():
    OUT.mkdir(exist_ok=True)
    dump = (header() + state(9, {"node-a": (5, [[1, 6]], [4]), "node-b": (2, [1, 2], [])})
            + entry(path(), 1, [("node-a", 1)], "root")
            + entry(path("a", "b"), 3, [("node-a", 2), ("node-b", 1)], {"x": [1, 2.5, None]})
            + entry(path("a", 7, True), 5, [("node-a", 3)], b"\x00bin")
            + delete(path("gone"), 7, [("node-a", 4)])
            + entry(path(None, "acl", "x"), 8, [("node-b", 2)], "internal")
            + entry(path("big"), 9, [("node-a", 5)], 2 ** 64 - 1))
    log = (header(kind="log") + state(9, {"node-a": (5, [[1, 6]], [])})
           + entry(path("a", "b"), 10, [("node-a", 6), ("node-b", 1)], "newer")
           + delete(path("a", 7, True), 11, [("node-a", 7)])
           + entry(path("gone"), 12, [("node-c", 1), ("node-a", 4)], "back"))
    seeds = {
        "dump": dump,
        "log": log,
        "dump_then_log": dump + log,
        "torn_last": dump[:-5],
        "torn_before_header": dump[:-3] + log,
        "garbage_middle": dump[:60] + b"\xc1\xc1garbage" + dump[60:],
        "bad_crc": dump[:-1] + bytes([dump[-1] ^ 1]),
        "newer_format": header(version=2) + entry(path("x"), 1, [("node-a", 1)], 1),
        "no_header": entry(path("x"), 1, [("node-a", 1)], 1),
        "empty": b"",
    }
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)


if __name__ == "__main__":
    main()
