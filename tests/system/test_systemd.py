"""The systemd side of a node (issue 17): the unit distkv@.service passes
`systemd-analyze verify`, and the server speaks sd_notify: READY=1 once it
serves and its tree is mounted, STOPPING=1 when it is told to stop.

Run with Debian's interpreter:

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_systemd.py
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import BUILD_DIR, DISTKV
from test_fs import is_mounted, mount_factory  # noqa: F401 (a fixture)

UNIT = BUILD_DIR / "tools" / "distkv@.service"

needs_fuse = pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0,
                                reason="needs /dev/fuse and root")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_unit_verifies(tmp_path):
    text = UNIT.read_text()
    assert "Type=notify" in text and "ExecStart=" in text
    # the installed path of the program does not exist here: use the built one
    lines = [("ExecStart=%s -c /etc/distkv/%%i.cfg server %%i" % DISTKV)
             if ln.startswith("ExecStart=") else ln for ln in text.splitlines()]
    unit = tmp_path / "distkv@.service"
    unit.write_text("\n".join(lines) + "\n")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "distkv@t1.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "distkv@" not in r.stderr, r.stderr  # no warning about our unit
    # and it can fail: a unit with a mistake does not verify
    unit.write_text("\n".join(lines).replace("Type=notify", "Type=notify\nBogusKey=1") + "\n")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "distkv@t1.service")],
                       capture_output=True, text=True, timeout=60)
    assert "BogusKey" in r.stderr, r.stderr


class Notify:
    """A NOTIFY_SOCKET of our own, as systemd would bind it."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)

    def messages(self, until, timeout=20.0):
        """Datagrams received until one contains `until`."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue
            if until in got[-1]:
                return got
        raise AssertionError("no %r within %gs; got %r" % (until, timeout, got))

    def close(self):
        self.sock.close()


@needs_fuse
def test_notify_ready_when_mounted_and_stopping(mount_factory, tmp_path):  # noqa: F811
    n = Notify(tmp_path / "notify")
    mnt = tmp_path / "mnt"
    try:
        m = mount_factory(mnt=mnt, env={"NOTIFY_SOCKET": n.path})
        got = n.messages("READY=1")
        assert is_mounted(str(mnt))
        assert any("STATUS=node node-a serving, mounted at %s" % mnt in g for g in got), got
        m.server.proc.send_signal(signal.SIGTERM)
        assert any("STOPPING=1" in g for g in n.messages("STOPPING=1"))
        rc = m.server.proc.wait(20)
        m.server.stopped_rc = rc  # stopped on purpose (as Server.stop would say)
        assert rc == 0
        assert not is_mounted(str(mnt))
    finally:
        n.close()


def test_notify_without_mount_and_abstract_socket(server_factory):
    name = "distkv-test-%d" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(10)
    try:
        server_factory(env={"NOTIFY_SOCKET": "@" + name})
        msg = sock.recv(4096).decode()
        assert msg.startswith("READY=1\n"), msg
    finally:
        sock.close()


def test_no_notify_socket_no_trouble(server_factory):
    s = server_factory(env={"NOTIFY_SOCKET": "not-a-path"})
    s.check_alive("with a bad NOTIFY_SOCKET")
