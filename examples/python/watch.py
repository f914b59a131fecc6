#!/usr/bin/python3
"""The tutorial's "Watching for Changes": print the entries below "one",
then every change to them, until interrupted.

    PYTHONPATH=python examples/python/watch.py [HOST [PORT]]

fetch=True sends the current state before the changes; the message
without a path marks the end of that state (it is skipped here).  A
deletion arrives without a value.

Mended from the tutorial: client.watch, the skipped message, the else.
"""

import sys

import anyio

from distkv.client import open_client


async def dkv_example(cfg):
    async with open_client(**cfg) as client:
        async with client.watch("one", fetch=True) as watcher:
            async for res in watcher:
                if 'path' not in res:
                    continue
                path = ' '.join(str(x) for x in res.path)
                if 'value' in res:
                    print(f"{path}= {res.value}", flush=True)
                else:
                    print(f"{path}: deleted", flush=True)


def config(argv):
    """The configuration of `distkv client [-h HOST] [-p PORT]`."""
    connect = {}
    if len(argv) > 1:
        connect["host"] = argv[1]
    if len(argv) > 2:
        connect["port"] = int(argv[2])
    return {"connect": connect}


if __name__ == "__main__":
    try:
        anyio.run(dkv_example, config(sys.argv))
    except KeyboardInterrupt:
        pass
