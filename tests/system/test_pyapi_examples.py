"""The tutorial's three Python programs (examples/python/) against a real
node, run as a user would: /usr/bin/python3 with PYTHONPATH=python.

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_pyapi_examples.py
"""

import os
import signal
import subprocess
import threading
import time

from conftest import REPO
from dkvproto import Path

EX = REPO / "examples" / "python"
ENV = dict(os.environ, PYTHONPATH=str(REPO / "python"))


def run_example(name, server):
    return subprocess.run(["/usr/bin/python3", str(EX / name), server.host, str(server.port)],
                          env=ENV, capture_output=True, text=True, timeout=30)


class Background:
    """A long-running example; .lines collects its output."""

    def __init__(self, name, server):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(EX / name), server.host, str(server.port)],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines = []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")), daemon=True)
        self.reader.start()

    def wait_for(self, line, timeout=10):
        deadline = time.monotonic() + timeout
        while line + "\n" not in self.lines:
            assert self.proc.poll() is None, "exited early: %r" % self.lines
            assert time.monotonic() < deadline, "no %r in %r" % (line, self.lines)
            time.sleep(0.02)

    def stop(self):
        """Ctrl-C; the program must end quietly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("did not stop at SIGINT: %r" % self.lines)
        self.reader.join(5)
        return self.proc.returncode


def test_set_and_update(server):
    r = run_example("set_and_update.py", server)
    assert r.returncode == 0, r
    assert r.stdout == "one two three: stored\none two three= ('Test', 43, False)\n", r.stdout
    r = run_example("set_and_update.py", server)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("one two three: not stored again (") and "exists" in lines[0], r
    assert lines[1] == "one two three= ('Test', 44, False)", r.stdout
    with server.connect() as p:
        assert p.request("get_value", path=Path("one", "two", "three"))["value"] == (
            "Test", 44, False)


def test_watch_and_active_objects(server):
    assert run_example("set_and_update.py", server).returncode == 0
    watch = Background("watch.py", server)
    mirror = Background("active_objects.py", server)
    try:
        watch.wait_for("one two three= ('Test', 43, False)")
        mirror.wait_for("two three= ('Test', 43, False)")
        mirror.wait_for("loaded")
        time.sleep(0.2)     # the watch is up to date too: it printed the fetch
        with server.connect() as p:
            p.request("set_value", path=Path("one", "two", "three"), value=("Test", 50, False))
            p.request("set_value", path=Path("one", "four"), value="x")
            p.request("delete_value", path=Path("one", "two", "three"))
        watch.wait_for("one two three= ('Test', 50, False)")
        watch.wait_for("one four= x")
        watch.wait_for("one two three: deleted")
        mirror.wait_for("two three= ('Test', 50, False)")
        mirror.wait_for("four= x")
        mirror.wait_for("two three: deleted")
    finally:
        rcs = (watch.stop(), mirror.stop())
    assert rcs == (0, 0), (rcs, watch.lines, mirror.lines)


def test_active_objects_checks_the_value(server):
    """Without set_and_update.py's value the program's assertion fails."""
    r = run_example("active_objects.py", server)
    assert r.returncode != 0 and "KeyError" in r.stderr, r
