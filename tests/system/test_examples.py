"""The scripts in examples/ run against a real node (and, for
two-nodes.sh, a real two-node network with its own Serf agents)."""

import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import DISTKV, REPO
from dkvproto import Path

EX = REPO / "examples"


def mounted(server_factory, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    s = server_factory(server_args=("--mount", str(mnt)))
    deadline = time.monotonic() + 10
    while not os.path.ismount(mnt):
        assert time.monotonic() < deadline, s.log_tail()
        time.sleep(0.05)
    return s, mnt


def test_counter_from_cron(server_factory, tmp_path):
    """Four "cron jobs" running counter.sh five times each, at the same
    time: the count is 20, and a value that is not a count is refused."""
    s, mnt = mounted(server_factory, tmp_path)
    env = dict(os.environ, TMPDIR=str(tmp_path))

    def job():
        for _ in range(5):
            subprocess.run([str(EX / "counter.sh"), str(mnt), "jobs"], check=True,
                           capture_output=True, env=env, timeout=30)

    ts = [threading.Thread(target=job) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with s.connect() as p:
        assert p.request("get_value", path=Path("counters", "jobs"))["value"] == 20
        p.set(("counters", "bad"), "twelve")
    r = subprocess.run([str(EX / "counter.sh"), str(mnt), "bad"], capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 1 and "not a count" in r.stderr, r


def test_dump_and_watch_changes(server_factory, tmp_path):
    s, mnt = mounted(server_factory, tmp_path)
    with s.connect() as p:
        p.set(("a", "b"), 1)
        p.set(("a", "c", "d"), "two")
    out = subprocess.run([str(EX / "dump.sh"), str(mnt / "a")], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    assert out == "b: 1\nc/d: two\n", out

    w = subprocess.Popen([str(EX / "watch-changes.sh"), str(mnt / "a")],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(0.5)  # inotifywait sets up its watches
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(iter(w.stdout.readline, "")),
                                  daemon=True)
        reader.start()
        with s.connect() as p:
            p.set(("a", "b"), 42)
            p.request("delete_value", path=Path("a", "c", "d"))
        deadline = time.monotonic() + 5
        want = ["b\t42\n", "c/d\t(deleted)\n"]
        while time.monotonic() < deadline and not all(x in lines for x in want):
            time.sleep(0.05)
        assert all(x in lines for x in want), lines
    finally:
        os.killpg(w.pid, signal.SIGTERM)  # the script and its inotifywait
        w.wait(5)


def ports_free(base):
    """The script's ports (base+1, +2, +11, +12, +21, +22) are free, for
    TCP and (the gossip ones) UDP."""
    for off in (1, 2, 11, 12, 21, 22):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind(("127.0.0.1", base + off))
                except OSError:
                    return False
    return True


def test_two_nodes_script():
    # below the ephemeral range, so that no outgoing connection takes them
    base = next(b for b in iter(lambda: random.randrange(20000, 32000, 50), None)
                if ports_free(b))
    # its own session, so that nothing it started outlives a timeout
    p = subprocess.Popen([str(EX / "two-nodes.sh"), str(DISTKV)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, BASE=str(base)))
    try:
        out, err = p.communicate(timeout=90)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "root value on two: Testing" in r.stdout, r.stdout
    assert "greeting on two:   hello from one" in r.stdout, r.stdout
    assert "state: live" in r.stdout, r.stdout
