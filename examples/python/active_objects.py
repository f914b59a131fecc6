#!/usr/bin/python3
"""The tutorial's "Active objects": keep the subtree below "one" in memory,
print every change as it arrives, until interrupted.

    PYTHONPATH=python examples/python/active_objects.py [HOST [PORT]]

Run set_and_update.py first: this program checks that one.two.three
holds the tuple that one stores.  client.mirror returns once the current
state is in memory; from then on OneEntry.set_value is called for every
change, with NotGiven when an entry is deleted.

Mended from the tutorial: set_value (not set) and its value argument,
the condition and the else in it.
"""

import sys

import anyio

from distkv.client import ClientEntry, ClientRoot, NotGiven, open_client


class OneEntry(ClientEntry):
    async def set_value(self, value):
        await super().set_value(value)
        path = ' '.join(str(x) for x in self.subpath)
        if value is not NotGiven:
            print(f"{path}= {value}", flush=True)
        else:
            print(f"{path}: deleted", flush=True)


class OneRoot(ClientRoot):
    def child_type(cls, name):
        return OneEntry


async def dkv_example(cfg):
    async with open_client(**cfg) as client:
        async with client.mirror("one", root_type=OneRoot) as root:
            # At this point you have the sub-tree in memory
            assert root['two']['three'].value[1] >= 42
            print("loaded", flush=True)

            while True:
                await anyio.sleep(99999)
        # at this point the sub-tree is still there, but won't be updated


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
