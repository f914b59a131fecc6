#!/usr/bin/python3
"""Write the seed corpus of the replication stream's fuzz target
(corpus-repl/).

Each seed is what a peer sends on a `repl` stream after the greeting
(doc/cluster.md): `{seq, r: <records>}`, `{seq, done: <node state>}`,
`{seq, ticks: {...}}`, `{seq, state: end}`, `{seq, error}`; the records
in the change-log format (doc/formats.md, make_log_corpus.py's encoders).
The target's node (node-a) starts with ticks 1..6: the root (1), a.b (2,
then 4), a.c (3, deleted at 5), internal acl.x (6).  The seeds hold
changes made on top of that, concurrently with it, older than it,
deletions, a resurrection attempt, and broken payloads.  Run with
/usr/bin/python3 after changing it and commit its output.
"""
import pathlib

import msgpack

from make_log_corpus import delete, entry, header, path, record, state

OUT = pathlib.Path(__file__).resolve().parent / "corpus-repl"


def msg(**fields):
    fields.setdefault("seq", 3)
    return msgpack.packb(fields, use_bin_type=True)


def main():
    OUT.mkdir(exist_ok=True)
    on_top = entry(path("a", "b"), 20, [("node-b", 1), ("node-a", 4)], "on top")
    concurrent = entry(path("a", "b"), 20, [("node-c", 9)], "concurrent")
    older = entry(path("a", "b"), 2, [("node-a", 2)], 1)
    deletion = delete(path("a", "b"), 21, [("node-b", 2), ("node-a", 4)])
    resurrect = entry(path("a", "c"), 4, [("node-c", 1), ("node-a", 3)], "back?")
    internal = entry(path(None, "acl", "y"), 22, [("node-b", 3)], {"x": "rw"})
    many = b"".join(entry(path("k", i), 30 + i, [("node-b", 10 + i)], "v" * (i * 37))
                    for i in range(20))
    done = state(40, {"node-a": (6, [[1, 7]], [5]), "node-b": (29, [[1, 30]], [2]),
                      "node-c": (9, [9], [])})
    seeds = {
        "catch_up": msg(r=on_top + deletion + internal) + msg(done=done)
        + msg(ticks={"node-b": [29, 29], "node-a": [6, 6]}),
        "concurrent": msg(r=concurrent) + msg(r=on_top),
        "older_and_replayed": msg(r=older + on_top + older + on_top),
        "resurrection": msg(r=resurrect) + msg(r=deletion + resurrect),
        "many": msg(r=many) + msg(done=done),
        "live_then_end": msg(r=on_top) + msg(ticks={"node-b": [1, 1]}) + msg(state="end"),
        "error": msg(r=on_top) + msg(error="you fell behind"),
        "bad_crc": msg(r=on_top[:-1] + bytes([on_top[-1] ^ 1])),
        "torn": msg(r=on_top[:-4]),
        "header_inside": msg(r=header() + on_top),
        "r_not_bin": msg(r="text") + msg(done=[1, 2]),
        "no_seq": msgpack.packb({"r": on_top}, use_bin_type=True),
        "record_kinds": msg(r=record(9, 1, 2) + record(1, path("x"), 1, [], 1)
                            + record(1, path("x"), 1, [["node-b", 0]], 1)),
        "huge_tick": msg(r=entry(path("x"), 1, [("node-b", 2 ** 63)], 1)),
        "same_tick_two_values": msg(r=entry(path("x"), 1, [("node-b", 5)], 1)
                                    + entry(path("y"), 1, [("node-b", 5)], 2)),
    }
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)


if __name__ == "__main__":
    main()
