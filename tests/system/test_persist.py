"""Persistence: state files, change logs, loading at start, crash safety
(issue 4).  Real servers, real files, real crashes (SIGKILL).

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_persist.py

What is covered:
* the tutorial's "Persistent storage" section, verbatim but for the
  directory (`log dest`, `server -l FILE`, `server -l <(cat ...)`);
* kill -9 while 8 clients write: in every mode (`always`, `batch`, `none`)
  every acknowledged write is back after a restart, with its value and
  chain, and the file loads;
* the node's tick after a restart is above every tick of its own in the log;
* log errors (directory missing, permission denied, read-only, disk full)
  reach the requesting client, leave the server serving, and show in
  `internal state --log`;
* SIGTERM flushes a `none` log; `--save`; damaged files stop the start
  unless `--skip-damaged`; an empty file is only a warning; switching logs
  loses nothing.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import zlib

import msgpack
import pytest
import yaml

from conftest import DISTKV, Server
from dkvproto import ConnectionClosed, Path

NODE = "node-p"


def mp_records(path):
    """Every item of a log file (headers and records), decoded."""
    data = pathlib.Path(path).read_bytes()
    up = msgpack.Unpacker(raw=False, strict_map_key=False,
                          ext_hook=lambda code, d: (code, d))
    up.feed(data)
    out = []
    try:
        for m in up:
            out.append(m)
    except Exception:       # a torn tail
        pass
    return out


def max_tick(path, node):
    """The highest tick of node in a log: chains and node-state records."""
    best = 0
    for m in mp_records(path):
        if not isinstance(m, list) or not m:
            continue
        if m[0] in (1, 2):
            for n, t in m[3]:
                if n == node:
                    best = max(best, t)
        elif m[0] == 3:
            st = m[2].get(node)
            if st:
                best = max(best, st[0])
    return best


def check_crcs(path):
    """Every record of the file (but a torn tail) has a good checksum."""
    data = pathlib.Path(path).read_bytes()
    up = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=lambda c, d: (c, d))
    up.feed(data)
    pos = 0
    n = 0
    while True:
        try:
            m = next(up)
        except StopIteration:
            break
        end = up.tell()
        if isinstance(m, list):
            crc = m[-1]
            raw = data[pos:end]
            body = raw[:len(raw) - len(msgpack.packb(crc))]
            assert zlib.crc32(body) == crc, "bad checksum at byte %d of %s" % (pos, path)
            n += 1
        pos = end
    return n, len(data) - pos


def state(server, *flags):
    r = server.dkv("internal", "state", *flags)
    return yaml.safe_load(r.stdout)


def restart(server_factory, *files, node=NODE, extra=()):
    args = []
    for f in files:
        args += ["-l", str(f)]
    return server_factory(node=node, init=None, server_args=args + list(extra))


class PrefixServer(Server):
    """A Server whose command line runs under a prefix (setpriv, bash -c)."""

    def __init__(self, workdir, prefix=(), shell=None, **kw):
        super().__init__(workdir, **kw)
        self.prefix = list(prefix)
        self.shell = shell

    @property
    def argv(self):
        a = self.prefix + super().argv
        if self.shell is not None:
            return ["bash", "-c", self.shell(a)]
        return a


@pytest.fixture
def extra_servers():
    made = []
    yield made
    problems = []
    for s in made:
        problems += s.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def tmpfs():
    """mount(size, ro=False) -> a fresh tmpfs directory; unmounted at teardown."""
    mounts = []

    def mount(size="64k", ro=False):
        d = tempfile.mkdtemp(prefix="dkv-tmpfs-")
        opts = "size=%s%s" % (size, ",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", d],
                           capture_output=True, text=True)
        if r.returncode:
            os.rmdir(d)
            pytest.skip("cannot mount a tmpfs: %s" % r.stderr.strip())
        mounts.append(d)
        return pathlib.Path(d)

    yield mount
    for d in mounts:
        if subprocess.run(["umount", d]).returncode:
            subprocess.run(["umount", "-l", d])
        os.rmdir(d)


# ---------------------------------------------------------------------------
# the tutorial


def test_tutorial_persistent_storage(server_factory, tmp_path, extra_servers):
    """The tutorial's commands with /var/local/lib replaced by a temp dir."""
    lib = tmp_path / "lib"
    lib.mkdir()
    host = socket.gethostname()
    one = server_factory(node=host)
    cli = " ".join(map(str, one.client_argv()))
    sh = lambda cmd: subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                                    timeout=30)
    one.dkv("data", "set", "-v", "hello", "greeting")
    r = sh("%s log dest %s/distkv.$(date +%%Y%%m%%d).state" % (cli, lib))
    assert r.returncode == 0, r.stderr
    one.dkv("data", "set", "-v", "after", "later")
    one.dkv("data", "delete", "greeting")
    assert one.stop() in (0, -signal.SIGTERM)

    # restart from the newest state file
    w2 = tmp_path / "two"
    two = PrefixServer(w2, node=host, init=None, shell=lambda a: (
        "exec %s -l $(ls -t %s/distkv.*.state | head -1) $(hostname)"
        % (" ".join(a[:-1]), lib)))
    extra_servers.append(two)
    two.start()
    assert two.dkv("data", "get", "later").stdout.strip() == "after"
    assert two.dkv("data", "get", "greeting", check=False).stdout.strip() in ("", "null")
    assert two.dkv("data", "get").stdout.strip() == "Testing"

    # incremental state dumps, loaded with <(cat ...)
    inc = lib / "distkv.99999999.state"
    two.dkv("log", "dest", "-i", str(inc))
    two.dkv("data", "set", "-v", "more", "incremental")
    assert two.stop() in (0, -signal.SIGTERM)
    three = PrefixServer(tmp_path / "three", node=host, init=None, shell=lambda a: (
        "exec %s -l <(cat %s/distkv.*.state) $(hostname)" % (" ".join(a[:-1]), lib)))
    extra_servers.append(three)
    three.start()
    assert three.dkv("data", "get", "later").stdout.strip() == "after"
    assert three.dkv("data", "get", "incremental").stdout.strip() == "more"
    assert three.dkv("data", "get", "greeting", check=False).stdout.strip() in ("", "null")


# ---------------------------------------------------------------------------
# crashes


def run_writers(server, n, duration, kill_after):
    """n threads set unique keys as fast as their replies come; SIGKILL the
    server after kill_after seconds.  Returns ({path: (value, chain, t)},
    kill time, per-writer lists of paths in order)."""
    acked = {}
    order = [[] for _ in range(n)]
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        try:
            p = server.connect(timeout=10)
        except OSError:
            return
        i = 0
        try:
            while not stop.is_set():
                path = ("w%d" % w, i)
                value = "v-%d-%d" % (w, i)
                r = p.set(path, value, nchain=3)
                t = time.monotonic()
                if "error" in r:
                    raise AssertionError(r)
                with lock:
                    acked[path] = (value, r.get("chain"), t)
                    order[w].append(path)
                i += 1
        except (ConnectionClosed, OSError, EOFError):
            pass
        finally:
            p.close()

    ts = [threading.Thread(target=writer, args=(w,)) for w in range(n)]
    for t in ts:
        t.start()
    time.sleep(kill_after)
    kill_time = time.monotonic()
    server.stop(signal.SIGKILL)
    stop.set()
    for t in ts:
        t.join(duration + 20)
    return acked, kill_time, order


@pytest.mark.parametrize("mode", ["always", "batch", "none"])
def test_kill9_keeps_every_acked_write(server_factory, tmp_path, mode):
    """A crash of the process loses no acknowledged write in any mode: the
    record is in the kernel's hands (batch, none) or on disk (always)
    before the reply goes.  Only a crash of the machine may lose the last
    interval (batch) or what the kernel had not written (none)."""
    # a long interval: batch must not depend on its fsync for this
    s = server_factory(node=NODE, config={"server.log.interval": 60})
    log = tmp_path / ("%s.log" % mode)
    s.dkv("log", "dest", "--sync", mode, str(log))
    acked, _, order = run_writers(s, 8, 2.0, 1.5)
    assert len(acked) > 100, "too few writes to mean anything: %d" % len(acked)
    print("%s: %d writes acknowledged before the kill" % (mode, len(acked)))
    n, tail = check_crcs(log)
    assert n >= len(acked)

    s2 = restart(server_factory, log)   # must load: never corrupt
    assert "damaged" not in s2.log()
    p = s2.connect()
    missing = []
    for path, (value, chain, _) in acked.items():
        r = p.get(path, nchain=3)
        if r.get("value") != value or r.get("chain") != chain:
            missing.append((path, value, chain, r))
    assert not missing, "%s: %d of %d acknowledged writes lost, e.g. %r" % (
        mode, len(missing), len(acked), missing[:3])

    # ticks are never reused
    top = max_tick(log, NODE)
    assert p.greeting["tick"] >= top
    r = p.set(("after", "restart"), 1, nchain=1)
    assert r["chain"]["node"] == NODE and r["chain"]["tick"] > top
    p.close()


def test_sigterm_flushes_a_none_log(server_factory, tmp_path):
    s = server_factory(node=NODE, config={"server.log.interval": 60})
    log = tmp_path / "none.log"
    s.dkv("log", "dest", "--sync", "none", str(log))
    p = s.connect()
    for i in range(500):
        p.set(("k", i), i)
    p.close()
    assert s.stop() in (0, -signal.SIGTERM)
    s2 = restart(server_factory, log)
    p = s2.connect()
    assert all(p.get(("k", i)).get("value") == i for i in range(500))
    p.close()


def test_save_option_and_switching_logs(server_factory, tmp_path):
    first = tmp_path / "first.log"
    s = server_factory(node=NODE, server_args=["--save", str(first)])
    p = s.connect()
    stop = threading.Event()
    written = []

    def writer():
        q = s.connect()
        i = 0
        while not stop.is_set():
            q.set(("bg", i), i)
            written.append(i)
            i += 1
        q.close()

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.2)
    second = tmp_path / "second.log"
    s.dkv("log", "dest", str(second))     # switch while changes flow
    time.sleep(0.2)
    stop.set()
    t.join()
    s.dkv("log", "save", str(tmp_path / "saved.state"))
    assert not list(tmp_path.glob("saved.state.tmp-*"))
    p.close()
    assert s.stop() in (0, -signal.SIGTERM)

    # the second log alone has everything (it began with the full state)
    for files in ([second], [second, first], [first, second]):
        s2 = restart(server_factory, *files)
        q = s2.connect()
        assert q.get(()).get("value") == "Testing"
        got = [i for i in written if q.get(("bg", i)).get("value") == i]
        assert got == written, files
        q.close()
        s2.stop()
    s3 = restart(server_factory, tmp_path / "saved.state")
    q = s3.connect()
    assert all(q.get(("bg", i)).get("value") == i for i in written)
    q.close()


# ---------------------------------------------------------------------------
# damaged input at start


def test_damaged_file_stops_the_start(server_factory, tmp_path):
    s = server_factory(node=NODE)
    good = tmp_path / "good.state"
    for i in range(20):
        s.dkv("data", "set", "-v", str(i), "k", str(i))
    s.dkv("log", "save", str(good))
    s.stop()
    data = good.read_bytes()
    bad = tmp_path / "bad.state"
    bad.write_bytes(data[:200] + b"\xc1garbage\xc1" + data[200:])
    port = s.port
    r = subprocess.run([str(DISTKV), "-C", "server.bind_default.port=%d" % port,
                        "-C", "server.bind_default.host=127.0.0.1",
                        "server", "-l", str(bad), NODE],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "%s: byte " % bad in r.stderr and "not started" in r.stderr, r.stderr
    # skipping the damage starts with the rest
    s2 = restart(server_factory, bad, extra=["--skip-damaged"])
    assert "skipped" in s2.log()
    q = s2.connect()
    assert q.get(("k", "19")).get("value") == "19"
    q.close()
    # a torn last record is only a warning
    torn = tmp_path / "torn.state"
    torn.write_bytes(data[:-3])
    s3 = restart(server_factory, torn)
    assert "truncated record at byte" in s3.log()


def test_empty_file_is_a_warning(server_factory, tmp_path):
    """A 0-byte file (a crash right after creating the log) has no header:
    the server says so, naming the file, loads the other files and serves."""
    s = server_factory(node=NODE)
    s.dkv("data", "set", "-v", "kept", "e", "k")
    good = tmp_path / "good.state"
    s.dkv("log", "save", str(good))
    s.stop()
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    s2 = restart(server_factory, empty, good)
    want = "distkv: warning: %s: empty (0 bytes): no log header, nothing loaded" % empty
    assert want in s2.log(), s2.log_tail(20)
    q = s2.connect()
    assert q.get(("e", "k")).get("value") == "kept"
    q.close()
    s2.dkv("data", "set", "-v", "new", "e", "n")
    assert s2.dkv("data", "get", "e", "n").stdout == "new\n"


# ---------------------------------------------------------------------------
# log errors


def test_log_errors_are_reported_and_survived(server_factory, tmp_path, tmpfs):
    s = server_factory(node=NODE)
    # directory missing
    r = s.dkv("log", "dest", str(tmp_path / "no" / "such" / "x.log"), check=False)
    assert r.returncode == 1 and "No such file or directory" in r.stderr, r.stderr
    r = s.dkv("log", "save", str(tmp_path / "no" / "x.state"), check=False)
    assert r.returncode == 1 and "No such file or directory" in r.stderr
    st = state(s, "--log")["log"]
    assert st["errors"] == 2 and "No such file or directory" in st["last_error"]
    # a path below a file
    (tmp_path / "plain").write_text("x")
    r = s.dkv("log", "dest", str(tmp_path / "plain" / "x"), check=False)
    assert r.returncode == 1 and "Not a directory" in r.stderr
    # read-only file system
    ro = tmpfs(ro=True)
    r = s.dkv("log", "dest", str(ro / "x.log"), check=False)
    assert r.returncode == 1 and "Read-only file system" in r.stderr

    # disk full while logging: the log stops, the server goes on
    full = tmpfs("64k")
    s.dkv("log", "dest", "--sync", "always", str(full / "x.log"))
    p = s.connect()
    for i in range(200):
        r = p.set(("big", i), "x" * 1000)
        assert "error" not in r
    deadline = time.monotonic() + 5
    while state(s, "--log")["log"]["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.05)
    st = state(s, "--log")["log"]
    assert st["state"] == "failed" and "No space left on device" in st["last_error"], st
    assert "No space left on device" in s.log()
    assert p.get(("big", 199))["value"] == "x" * 1000
    p.close()
    # starting a log on the full disk fails for the requester only
    r = s.dkv("log", "dest", str(full / "y.log"), check=False)
    assert r.returncode == 1 and "No space left on device" in r.stderr
    s.check_alive()
    # what the failed log holds is clean: it loads
    n, tail = check_crcs(full / "x.log")
    assert tail == 0 and n > 0
    s2 = restart(server_factory, full / "x.log")
    assert "warning" not in s2.log()


def test_permission_denied(tmp_path, extra_servers):
    """A server running as nobody may not write into a root-owned directory."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    work = pathlib.Path(tempfile.mkdtemp(prefix="dkv-nobody-"))
    os.chmod(work, 0o777)
    try:
        s = PrefixServer(work, node=NODE, prefix=["setpriv", "--reuid=65534", "--regid=65534",
                                                  "--clear-groups"])
        extra_servers.append(s)
        s.start()
        target = pathlib.Path("/tmp") / ("dkv-locked-%d" % os.getpid())
        target.mkdir(mode=0o755, exist_ok=True)
        try:
            r = s.dkv("log", "dest", str(target / "x.log"), check=False)
            assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr
            st = state(s, "--log")["log"]
            assert "Permission denied" in st["last_error"]
            s.check_alive()
        finally:
            shutil.rmtree(target, ignore_errors=True)
    finally:
        s.finish()
        shutil.rmtree(work, ignore_errors=True)
