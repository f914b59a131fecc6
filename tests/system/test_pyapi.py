"""The Python API (python/distkv) against real servers, under both anyio
backends (asyncio and trio).

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_pyapi.py

Covered: every client method (get, set, delete, list, get_tree, watch,
mirror, msg_send / msg_monitor, get_state, get_tock, stop); chains as
preconditions (a stale chain refused, chain=None meaning "must not
exist"); watch with fetch and depth limits; a mirror with entry classes of
its own and deletions; many requests in flight on one connection; logins
(`_test`, `password` with the password sealed, the wrong method, none);
a server killed in the middle of streams (ConnectionError, no hang); a
watch nobody reads (what the client holds stays within the window); the
package imports with nothing but the standard library, anyio and msgpack.

The package is imported from the checkout (python/), not from an
installed copy.  Every test runs its coroutine under a deadline, so a hang
fails the test instead of the run.
"""

import functools
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from conftest import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

anyio = pytest.importorskip("anyio")

from distkv import auth as dkv_auth  # noqa: E402
from distkv.client import (ClientAuthMethodError, ClientAuthRequiredError,  # noqa: E402
                           ClientEntry, ClientRoot, ConnectionError, NotGiven, P, Path,
                           ServerError, open_client)
from distkv.util import attrdict  # noqa: E402
from dkvproto import Path as RawPath, decode_all  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*MultiError is deprecated")

PASSWORD = "Tr0ub4dor&3-horse"


@pytest.fixture(params=["asyncio", "trio"])
def backend(request):
    if request.param == "trio":
        pytest.importorskip("trio")
    return request.param


def run(backend, fn, *args, timeout=20):
    """Run the coroutine function fn(*args) under backend, within timeout s."""
    async def main():
        with anyio.fail_after(timeout):
            return await fn(*args)
    return anyio.run(main, backend=backend)


def cfg(server, auth=None):
    c = {"host": server.host, "port": server.port}
    if auth is not None:
        c["auth"] = auth
    return {"connect": c}


# --------------------------------------------------------------------------
# data


def test_get_set_delete_list(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c:
            assert c.node == "node-a"
            root = await c.get()
            assert root.value == "Testing" and root["value"] == "Testing"
            assert root.chain.node == "node-a"

            r = await c.set("one", "two", "three", value=("Test", 42, False), chain=None)
            assert r.changed is True and r.chain.node == "node-a"
            res = await c.get("one", "two", "three")
            assert res.value == ("Test", 42, False) and res.chain == r.chain
            # one tuple, a Path, dotted notation: the same entry
            assert (await c.get(("one", "two", "three"))).value[1] == 42
            assert (await c.get(Path("one", "two", "three"))).value[1] == 42
            assert (await c.get(P("one.two.three"))).value[1] == 42

            values = {
                "int": -(2 ** 40), "big": 2 ** 70, "float": 1.5, "str": "h\u00e9llo",
                "bytes": b"\x00\xff", "none": None, "true": True,
                "list": (1, "two", (3.0, None)), "map": {"a": 1, "b": {"c": b"x"}},
            }
            for k, v in values.items():
                await c.set("kinds", k, value=v)
            for k, v in values.items():
                got = (await c.get("kinds", k)).value
                assert got == v and isinstance(got, type(v)), (k, got)
            m = (await c.get("kinds", "map")).value
            assert isinstance(m, attrdict) and m.b.c == b"x"
            # path elements of several kinds
            for elem in (1, True, None, b"b", 2.5, ("t", 1), ""):
                await c.set("elems", elem, value=repr(elem))
                assert (await c.get("elems", elem)).value == repr(elem)

            assert set(await c.list("kinds")) == set(values)
            d = await c.list("kinds", with_data=True)
            assert d["int"] == -(2 ** 40)

            r = await c.delete("one", "two", "three")
            assert r.changed is True and r.prev == ("Test", 42, False)
            res = await c.get("one", "two", "three")
            assert "value" not in res and res.chain is None
            r = await c.delete("kinds", recursive=True)
            assert r.changed == len(values)
            assert await c.list("kinds", empty=False) == ()
            assert (await c.get("one", nchain=0)).keys() >= {"seq", "tock"}
            assert "chain" not in await c.get("one", nchain=0)

            with pytest.raises(ServerError):
                await c.request("no_such_action")
            assert (await c.get()).value == "Testing"    # still serving
            assert isinstance(await c.get_tock(), int)
    run(backend, body)


def test_chains(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c:
            r1 = await c.set("ch", value=1, chain=None)       # must not exist: it does not
            with pytest.raises(ServerError):
                await c.set("ch", value=2, chain=None)          # now it does
            r2 = await c.set("ch", value=2, chain=r1.chain)
            assert r2.chain != r1.chain
            with pytest.raises(ServerError) as e:
                await c.set("ch", value=3, chain=r1.chain)      # stale
            assert "Chain" in str(e.value) and "ch" in str(e.value)
            with pytest.raises(ServerError):
                await c.delete("ch", chain=r1.chain)             # stale
            assert (await c.get("ch")).value == 2
            r3 = await c.delete("ch", chain=r2.chain)
            assert r3.changed
            await c.set("ch", value=4, chain=None)               # gone: may be made again
            # the tutorial's update, twice
            res = await c.get("ch")
            ret = await c.set("ch", value=res.value + 1, chain=res.chain)
            ret2 = await c.set("ch", value=res.value + 2, chain=ret.chain)
            assert ret.chain != ret2.chain and (await c.get("ch")).value == 6
            deep = await c.get("ch", nchain=3)
            assert deep.chain.prev is None or "node" in deep.chain.prev
    run(backend, body)


def test_get_tree(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c:
            paths = [("t",), ("t", "a"), ("t", "a", "b"), ("t", "a", "b", "c"), ("t", "x")]
            for i, p in enumerate(paths):
                await c.set(p, value=i)
            got = [(tuple(r.path), r.value) async for r in c.get_tree("t")]
            assert sorted(got) == sorted((p[1:], i) for i, p in enumerate(paths))
            got = [tuple(r.path) async for r in c.get_tree("t", min_depth=1, max_depth=2)]
            assert sorted(got) == [("a",), ("a", "b"), ("x",)]
            got = [tuple(r.path) async for r in c.get_tree("t", "a", long_path=True)]
            assert sorted(got) == [("t", "a"), ("t", "a", "b"), ("t", "a", "b", "c")]
            got = [r async for r in c.get_tree("t", "x", nchain=2)]
            assert got[0].chain.node == "node-a" and "depth" not in got[0]
            await c.delete("t", "a")
            got = [tuple(r.path) async for r in c.get_tree("t", empty=True)]
            assert ("a",) in got
            assert ("a",) not in [tuple(r.path) async for r in c.get_tree("t")]
            # stop early: leaving the block ends the stream
            async with c.get_tree("t") as s:
                async for r in s:
                    break
            assert (await c.get("t")).value == 0
    run(backend, body)


def test_watch_fetch_and_depth(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c, open_client(**cfg(server)) as w2:
            await c.set("w", "a", value=1)
            await c.set("w", "a", "deep", "er", value=2)
            async with c.watch("w", fetch=True) as w, \
                    c.watch("w", max_depth=1) as shallow:
                seen = []
                async for r in w:
                    if "path" not in r:
                        assert r.state == "uptodate"
                        break
                    seen.append((r.path, r.value))
                assert sorted(seen) == [(("w", "a"), 1), (("w", "a", "deep", "er"), 2)]
                await w2.set("w", "b", value=3)
                await w2.set("w", "a", "deep", "er", value=4)
                await w2.delete("w", "a")
                r = await w.recv()
                assert r.path == ("w", "b") and r.value == 3 and r.chain.node == "node-a"
                r = await w.recv()
                assert r.path == ("w", "a", "deep", "er") and r.value == 4
                r = await w.recv()
                assert r.path == ("w", "a") and "value" not in r     # a deletion
                # the depth-limited watch saw w.b and the deletion, not the deep one
                r = await shallow.recv()
                assert r.path == ("w", "b")
                r = await shallow.recv()
                assert r.path == ("w", "a") and "value" not in r
                # relative paths on request
            async with c.watch("w", long_path=False) as w:
                await w2.set("w", "c", value=5)
                r = await w.recv()
                assert r.path == ("c",)
    run(backend, body)


class Seen(ClientEntry):
    """Records every set_value call on the root's log."""

    async def set_value(self, value):
        await super().set_value(value)
        self.root.log.append((tuple(self.subpath), value))


class SeenRoot(ClientRoot):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.log = []

    @classmethod
    def child_type(cls, name):
        return None if name == "untracked" else Seen


def test_mirror(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c, open_client(**cfg(server)) as other:
            await c.set("m", "a", value=1)
            await c.set("m", "a", "b", value=2)
            await c.set("m", "untracked", "x", value=0)
            async with c.mirror("m", root_type=SeenRoot, need_wait=True) as root:
                assert isinstance(root["a"], Seen) and root["a"].value == 1
                assert root["a"]["b"].value == 2 and root["a"]["b"].subpath == ("a", "b")
                assert "untracked" not in root
                assert [e.name for e in root] == ["a"]
                assert root["a"].chain.node == "node-a"

                r = await other.set("m", "c", value=3)
                await root.wait_chain(r.chain)
                assert root["c"].value == 3 and ("c",) in [p for p, _ in root.log]

                # write back with the entry's chain
                r = await root["c"].update(4, wait=True)
                assert (await c.get("m", "c")).value == 4 and root["c"].chain == r.chain
                # someone else changes it; a write with the old chain is refused
                old = root["c"].chain
                r = await other.set("m", "c", value=5, chain=old)
                await root.wait_chain(r.chain)
                assert root["c"].value == 5
                root["c"].chain = old
                with pytest.raises(ServerError):
                    await root["c"].update(6)

                # deletions: set_value(NotGiven); empty entries disappear
                root.log.clear()
                r = await other.delete("m", "a", "b")
                await root.wait_chain(r.chain)
                assert root.log == [(("a", "b"), NotGiven)]
                assert "b" not in root["a"] and root["a"].value == 1
                r = await other.delete("m", "a")
                await root.wait_chain(r.chain)
                assert "a" not in root
            # after the block the tree is still there, no longer updated
            await other.set("m", "c", value=7)
            assert root["c"].value == 5
    run(backend, body)


def test_many_requests_in_flight(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c:
            async def worker(k):
                for i in range(30):
                    r = await c.set("many", k, value=(k, i))
                    assert r.changed
                    assert (await c.get("many", k)).value == (k, i)
            async with anyio.create_task_group() as tg:
                for k in range(150):
                    tg.start_soon(worker, k)
            assert len(await c.list("many")) == 150
            # a watch running beside them keeps its order
            async with c.watch("many", 7) as w:
                async with anyio.create_task_group() as tg:
                    for k in range(50):
                        tg.start_soon(worker, k)
                vals = [(await w.recv()).value[1] for _ in range(30)]
                assert vals == list(range(30))
    run(backend, body)


def test_state_stop_and_raw_requests(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c:
            st = await c.get_state(nodes=True, known=True)
            assert st.node == "node-a" and "node-a" in st.nodes
            async with c.watch("s") as w:
                assert await c.stop(w.seq) is True
                with pytest.raises(StopAsyncIteration):
                    await w.recv()
            assert await c.stop(12345) is False
            # the original client's generic call
            r = await c._request(action="get_value", path=P(":"), iter=False, nchain=0)
            assert r.value == "Testing"
            it = await c._request("get_tree", path=Path(), iter=True, max_depth=0)
            assert [x.value async for x in it] == ["Testing"]
    run(backend, body)


def test_msg_send_and_monitor(cluster_factory, backend):
    cl = cluster_factory(1)
    s = cl.servers[0]

    async def body():
        async with open_client(**cfg(s)) as c:
            async with c.msg_monitor(["test", "a"]) as mon:
                got = None
                for _ in range(40):     # Serf may drop one: send until one arrives
                    assert (await c.msg_send(["test", "b"], data="not for a")).result is True
                    await c.msg_send(["test", "a"], data={"n": 1, "b": b"\x01"})
                    with anyio.move_on_after(0.5):
                        got = await mon.recv()
                    if got is not None:
                        break
                assert got is not None, "no message arrived"
                assert tuple(got.topic) == ("test", "a") and got.data == {"n": 1, "b": b"\x01"}
            with pytest.raises(ServerError):
                await c.msg_send(["too", "big"], data="x" * 4000)
    run(backend, body, timeout=40)


# --------------------------------------------------------------------------
# faults


def test_server_killed_mid_stream(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c:
            async with anyio.create_task_group() as tg:
                for i in range(400):
                    tg.start_soon(functools.partial(c.set, "big", i, value="x" * 100))
            errors = []

            async def idle_watch():
                try:
                    async with c.watch("nothing", "here") as w:
                        async for _ in w:
                            pass
                except ConnectionError as e:
                    errors.append(("watch", e))

            async with anyio.create_task_group() as tg:
                tg.start_soon(idle_watch)
                n = 0
                with pytest.raises(ConnectionError):
                    async for r in c.get_tree("big"):
                        n += 1
                        if n == 20:
                            server.stop(signal.SIGKILL)
                        await anyio.sleep(0.001)
                assert 20 <= n < 400
            assert errors and isinstance(errors[0][1], OSError)
            with pytest.raises(ConnectionError):
                await c.get("big", 1)
            with pytest.raises(ConnectionError):
                async with c.watch("x") as w:
                    await w.recv()
    run(backend, body)


def test_connection_refused(backend):
    port = free_port()

    async def body():
        with pytest.raises(ConnectionError):
            async with open_client(connect={"host": "127.0.0.1", "port": port}):
                pass
    run(backend, body)


def test_slow_watch_consumer_is_bounded(server, backend):
    async def body():
        async with open_client(**cfg(server)) as c, open_client(**cfg(server)) as writer:
            async with c.watch("slow") as w:
                for i in range(0, 3000, 100):
                    async with anyio.create_task_group() as tg:
                        for k in range(i, i + 100):
                            tg.start_soon(functools.partial(writer.set, "slow", k, value=k))
                await writer.get("slow", 0)
                await anyio.sleep(0.3)      # let whatever the server may send arrive
                assert c.qlen > 0
                assert w.buffered <= c.qlen, (w.buffered, c.qlen)
                got = [(await w.recv()).value for _ in range(3000)]
                assert sorted(got) == list(range(3000))
                assert w.buffered == 0
    run(backend, body, timeout=40)


# --------------------------------------------------------------------------
# logins


def auth_on(server, typ, users=("joe", "root"), password=None):
    """Make users for typ and choose typ, with raw protocol requests."""
    with server.connect() as p:
        for u in users:
            data = {}
            if password is not None:
                key = p.request("auth_key")["pubkey"]
                data = {"password": dkv_auth.seal(key, password)}
            r = p.request("auth_set", typ=typ, kind="user", ident=u, data=data)
            assert "error" not in r, r
        r = p.request("set_auth_typ", typ=typ)
        assert "error" not in r, r


def test_auth_test_method(server, backend):
    auth_on(server, "_test")

    async def body():
        with pytest.raises(ClientAuthRequiredError):
            async with open_client(**cfg(server)):
                pass
        with pytest.raises(ClientAuthMethodError):
            async with open_client(**cfg(server, "password name=joe password=x")):
                pass
        with pytest.raises(ServerError):
            async with open_client(**cfg(server, "_test name=nobody")):
                pass
        async with open_client(**cfg(server, "_test name=joe")) as c:
            await c.set("auth", value=1)
            assert (await c.get("auth")).value == 1
        # what goes over the wire: the original client's hello and login
        # (spec/reference-client-capture.txt, second part, connection 2)
        rec = Recorder(server)
        async with anyio.create_task_group() as tg:
            await tg.start(rec.serve)
            async with open_client(host="127.0.0.1", port=rec.port, auth="_test name=joe") as c:
                assert (await c.get("auth")).value == 1
            tg.cancel_scope.cancel()
        sent = decode_all(rec.sent)
        assert sent[:2] == [{"seq": 0, "qlen": 10},
                            {"typ": "_test", "chroot": (), "ident": "joe", "data": {},
                             "action": "auth", "seq": 1}], sent
    run(backend, body)


class Recorder:
    """A TCP proxy that keeps what the client sent."""

    def __init__(self, server):
        self.server = server
        self.sent = b""

    async def serve(self, task_status=anyio.TASK_STATUS_IGNORED):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()

        async def handle(down):
            async with down, await anyio.connect_tcp(self.server.host, self.server.port) as up:
                async def pump(a, b, keep):
                    try:
                        async for chunk in a:
                            if keep:
                                self.sent += chunk
                            await b.send(chunk)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        pass
                    finally:
                        with anyio.CancelScope(shield=True):
                            await b.aclose()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pump, down, up, True)
                    tg.start_soon(pump, up, down, False)
        async with listener:
            await listener.serve(handle)


def test_auth_password(server, backend):
    auth_on(server, "password", password=PASSWORD)

    async def body():
        rec = Recorder(server)
        async with anyio.create_task_group() as tg:
            await tg.start(rec.serve)
            via = {"connect": {"host": "127.0.0.1", "port": rec.port,
                               "auth": "password name=joe password=" + PASSWORD}}
            async with open_client(**via) as c:
                await c.set("pw", value="ok")
                assert (await c.get("pw")).value == "ok"
            tg.cancel_scope.cancel()
        assert rec.sent and PASSWORD.encode() not in rec.sent
        with pytest.raises(ServerError) as e:
            async with open_client(**cfg(server, "password name=joe password=wrong")):
                pass
        assert "Login failed" in str(e.value)
        async with open_client(**cfg(server, {"method": "password", "name": "root",
                                              "password": PASSWORD})) as c:
            assert (await c.get("pw")).value == "ok"
    run(backend, body)


# --------------------------------------------------------------------------
# the original client's style


def test_original_client_conversation(server, backend):
    """What the original command line does on each connection
    (spec/reference-client-capture.txt, connections 1-6), through the
    original API's calls: a watch of .distkv.config with nchain 3 and
    fetch, then get_value / set_value / get_tree / delete_value with the
    fields it sends.  The replies carry the fields the capture shows."""
    async def body():
        async with open_client(**cfg(server)) as client:
            async with client._stream("watch", nchain=3, path=P(":.distkv.config"),
                                      fetch=True) as cfgw:
                r = await cfgw.recv()
                assert r.state == "uptodate" and "path" not in r
                r = await client._request(action="get_value", path=P(":"), nchain=False)
                assert r.value == "Testing" and "chain" not in r and "tock" in r
                r = await client._request(action="get_value", path=P("one.two.three"),
                                          nchain=2)
                assert r.chain is None and "value" not in r
                r = await client._request(action="set_value", path=P("one.two.three"),
                                          value=123, nchain=False, chain=None)
                assert r.changed is True and "chain" not in r
                r = await client._request(action="get_value", path=P("one.two.three"),
                                          nchain=3)
                assert r.value == 123 and r.chain.node == "node-a" and r.chain.prev is None
                it = await client._request(action="get_tree", path=P("one"),
                                           long_path=True, nchain=False, iter=True)
                got = [x async for x in it]
                assert [(tuple(x.path), x.value) for x in got] == [(("two", "three"), 123)]
                r = await client._request(action="delete_value", path=P("one.two.three"),
                                          nchain=False)
                assert r.changed is True and r.prev == 123
            assert cfgw.end_msg is None     # we ended it, the server did not
    run(backend, body)


def test_import_needs_only_anyio_and_msgpack():
    """The runners import the package inside the server's Python: nothing
    beyond the standard library, anyio (with sniffio) and msgpack, and no
    connection or task at import."""
    code = r"""
import sys
import distkv, distkv.client, distkv.obj, distkv.util, distkv.auth
third = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)
third -= {'distkv', 'anyio', 'sniffio', 'msgpack', 'idna', 'exceptiongroup', '_distutils_hack',
          'sitecustomize', '__main__', 'cython_runtime'}
assert not third, third
assert not [m for m in sys.modules if m.startswith(('yaml', 'trio', 'redis', 'nacl'))]
print('ok')
"""
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_config_defaults_and_read_config(tmp_path):
    from distkv.client import Client, read_config
    c = Client({})
    assert (c.config.connect.host, c.config.connect.port) == ("localhost", 27586)
    f = tmp_path / "c.yaml"
    f.write_text("connect:\n  host: 127.0.0.2\n  auth: _test name=joe\n")
    c = Client(read_config(f))
    assert (c.config.connect.host, c.config.connect.port) == ("127.0.0.2", 27586)
    assert c._auth.method == "_test" and c._auth.name == "joe"
    c = Client({"port": 1234, "auth": "_test name=ann", "connect": {"host": "h"}})
    assert (c.config.connect.host, c.config.connect.port) == ("h", 1234)
    assert c._auth.name == "ann"
    for bad in ("magic name=x", "_test", "_test name=x password=y", "root x=1"):
        with pytest.raises(Exception):
            Client({"connect": {"auth": bad}})
    assert RawPath("a") == Path("a") == P("a")
    assert str(Path("a.b", 1, True, "")) == "a:.b.:1.:t.:e"
    assert P(str(Path("a b", b"\x00", (1, "x.y"), 1.5))) == ("a b", b"\x00", (1, "x.y"), 1.5)
