#!/usr/bin/python3
"""bench-login.py - login latency under a flood of concurrent logins.

usage: bench-login.py PORT METHOD ROUNDS [CONCURRENT]

Runs ROUNDS rounds; each opens CONCURRENT (default 50) connections at once
and logs each in as user "joe" (METHOD _test, or password with password
"pw", sealed to the connection's auth_key through libsodium).  A login's
latency runs from the connect to the end of the auth stream.  Prints one
line: "logins N refused N p50_ms X p99_ms Y max_ms Z".  Used by
tools/bench-protocol.sh --auth; the users must exist.
"""

import asyncio
import ctypes
import ctypes.util
import sys
import time

import msgpack

_sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
_sodium.sodium_init()


def seal(pubkey, pw):
    out = ctypes.create_string_buffer(len(pw) + 48)
    _sodium.crypto_box_seal(out, pw, ctypes.c_ulonglong(len(pw)), pubkey)
    return out.raw


async def one(port, method):
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    unp = msgpack.Unpacker(raw=False)

    async def recv():
        while True:
            for m in unp:
                return m
            data = await reader.read(65536)
            if not data:
                raise EOFError
            unp.feed(data)

    await recv()  # greeting
    writer.write(msgpack.packb({"seq": 0, "qlen": 10}))
    data = {}
    if method == "password":
        writer.write(msgpack.packb({"action": "auth_key", "seq": 1}))
        key = (await recv())["pubkey"]
        data = {"password": seal(key, b"pw")}
    writer.write(msgpack.packb({"typ": method, "chroot": [], "ident": "joe", "data": data,
                                "action": "auth", "seq": 2}, use_bin_type=True))
    ok = False
    while True:
        m = await recv()
        if m.get("seq") != 2:
            continue
        if "error" in m:
            break
        if m.get("state") == "end":
            ok = True
            break
    dt = time.monotonic() - t0
    writer.close()
    return ok, dt


async def main():
    port, method, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    conc = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    lat, refused = [], 0
    for _ in range(rounds):
        for ok, dt in await asyncio.gather(*(one(port, method) for _ in range(conc))):
            lat.append(dt)
            refused += not ok
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
    print("logins %d refused %d p50_ms %.1f p99_ms %.1f max_ms %.1f"
          % (len(lat), refused, pct(0.5), pct(0.99), lat[-1] * 1000))


asyncio.run(main())
