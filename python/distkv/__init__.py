"""distkv: the Python client of a distkv (DistKV 0.57.4 protocol) server.

    import anyio
    from distkv.client import open_client

    async def main():
        async with open_client() as client:
            await client.set("one", "two", value=42)
            print((await client.get("one", "two")).value)

    anyio.run(main)

The package needs the standard library, ``anyio`` and ``msgpack`` only and
keeps no state at import time: every connection is an object of its own.
See doc/python.md for the reference.
"""

__version__ = "0.1.0"
