#!/usr/bin/python3
"""The tutorial's "The Python API": store a value, then update it.

    PYTHONPATH=python examples/python/set_and_update.py [HOST [PORT]]

(PYTHONPATH is not needed after `meson install`.)  The first set passes
chain=None, "this entry must not have a value yet", so on a second run it
is refused and only the update happens.  The update passes the chain it
read: had somebody else changed one.two.three in between, the server would
refuse it instead of overwriting their change.

Mended from the tutorial: the missing awaits, and res.value for the
undefined v.
"""

import sys

import anyio

from distkv.client import ServerError, open_client


async def dkv_set(cfg):
    async with open_client(**cfg) as client:
        await client.set("one", "two", "three", value=("Test", 42, False), chain=None)


async def dkv_update(cfg):
    async with open_client(**cfg) as client:
        res = await client.get("one", "two", "three")
        ret = await client.set("one", "two", "three", value=("Test", res.value[1] + 1, False),
                               chain=res.chain)
        assert res.chain != ret.chain
        return (await client.get("one", "two", "three")).value


async def main(cfg):
    try:
        await dkv_set(cfg)
        print("one two three: stored")
    except ServerError as e:
        print("one two three: not stored again (%s)" % e)
    print("one two three= %r" % (await dkv_update(cfg),))


def config(argv):
    """The configuration of `distkv client [-h HOST] [-p PORT]`."""
    connect = {}
    if len(argv) > 1:
        connect["host"] = argv[1]
    if len(argv) > 2:
        connect["port"] = int(argv[2])
    return {"connect": connect}


if __name__ == "__main__":
    anyio.run(main, config(sys.argv))
