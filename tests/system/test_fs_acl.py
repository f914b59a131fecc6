"""System tests for the mount's users and ACLs (issue 12, "The mount:").

A first server stores users, ACLs and data through the protocol
(set_internal / set_value) and logs them with --save; the server under
test loads that state (-l) and mounts it as a distkv user
(server.mount.user) or for several Unix users (server.mount.allow_other
with server.mount.users), so the users exist when it mounts.  Commands of
other uids run through `setpriv`.  Every server is stopped at teardown
(SIGTERM, exit 0) and its mount must be gone.

The ACL used throughout, "writeonly":

    wom #   xc     (write-only: create a value, never read or change it)
    ro #    rxe    (read-only)

and the data: wom/a, ro/b, secret/c (no ACL entry matches secret).

Run with Debian's interpreter:

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_fs_acl.py
"""

import errno
import os
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import Server
from dkvproto import Path
from test_fs import Inotify, is_mounted, stop_server, wait_mounted

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, setpriv)"),
]

HASH = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$ZmFrZWhhc2hmYWtlaGFzaA"
OTHER_UID = 1000       # mapped to joe
STRANGER_UID = 1001    # not mapped


# ---------------------------------------------------------------------------
# helpers


def errno_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except OSError as e:
        return e.errno
    return 0


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    """Write text to a `_` (create or truncate); the close commits."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def as_uid(uid, *cmd, **kw):
    """Run cmd as uid (and gid uid, no groups)."""
    return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                           "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=20, **kw)


class Mount:
    def __init__(self, server, mnt):
        self.server = server
        self.mnt = mnt
        self._p = None

    @property
    def p(self):
        if self._p is None:
            self._p = self.server.connect()
        return self._p

    def path(self, *names):
        return os.path.join(self.mnt, *map(str, names))

    def set_internal(self, path, value):
        r = self.p.request("set_internal", path=Path(*path), value=value)
        assert "error" not in r, r

    def get_internal(self, *path):
        return self.p.request("get_internal", path=Path(*path))

    def get(self, *path):
        return self.p.request("get_value", path=Path(*path)).get("value")


def populate(p):
    def si(path, value):
        r = p.request("set_internal", path=Path(*path), value=value)
        assert "error" not in r, r

    def sv(path, value):
        r = p.request("set_value", path=Path(*path), value=value)
        assert "error" not in r, r

    si(("auth", "_test", "user", "joe"), {"_aux": {"acl": "writeonly"}})
    si(("auth", "_test", "user", "ann"), {"_aux": None})
    si(("auth", "password", "user", "pw"), {"_aux": {"acl": "writeonly"}, "password": HASH})
    si(("acl", "writeonly", "wom", "#"), "xc")
    si(("acl", "writeonly", "ro", "#"), "rxe")
    sv(("wom", "a"), "secret-a")
    sv(("ro", "b"), "public-b")
    sv(("secret", "c"), "hidden-c")


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """A state file with the users, the ACL and the data above."""
    d = tmp_path_factory.mktemp("aclstate")
    f = d / "state.dkv"
    s = Server(d / "w", server_args=("--save", str(f))).start()
    try:
        p = s.connect()
        populate(p)
        p.close()
    finally:
        assert s.stop() == 0
    return f


@pytest.fixture
def mount_acl(server_factory, state):
    """make(config) -> Mount: a server loading `state`, mounted at a
    directory that other uids can reach.  Teardown: SIGTERM, exit 0, no
    mount left."""
    made = []
    top = tempfile.mkdtemp(prefix="dkv-acl-")
    os.chmod(top, 0o755)

    def make(config):
        mnt = os.path.join(top, "mnt%d" % len(made))
        s = server_factory(init=None, config=config,
                           server_args=("-l", str(state), "--mount", mnt))
        m = Mount(s, mnt)
        made.append(m)
        wait_mounted(s, mnt)
        return m

    yield make
    problems = []
    for m in made:
        if m._p is not None:
            m._p.close()
        if m.server.alive():
            rc = stop_server(m)
            if rc != 0:
                problems.append("server exited with %r after SIGTERM" % (rc,))
        if is_mounted(m.mnt):
            subprocess.run(["umount", "-l", m.mnt], capture_output=True)
            problems.append("%s still mounted" % m.mnt)
    shutil.rmtree(top, ignore_errors=True)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ---------------------------------------------------------------------------
# a mount bound to one user


def test_bound_reads_and_writes(mount_acl):
    """server.mount.user=joe: what the ACL refuses is EACCES, what it
    allows works, and the values show it."""
    m = mount_acl({"server.mount.user": "joe"})
    # r
    assert read(m.path("ro", "b", "_")) == "public-b\n"
    assert errno_of(read, m.path("wom", "a", "_")) == errno.EACCES
    assert errno_of(read, m.path("secret", "c", "_")) == errno.EACCES
    assert errno_of(read, m.path("_")) == errno.EACCES   # the root value: no entry matches
    # w, c, d
    assert errno_of(write, m.path("ro", "b", "_"), "x\n") == errno.EACCES
    assert m.get("ro", "b") == "public-b"
    assert errno_of(write, m.path("wom", "a", "_"), "x\n") == errno.EACCES   # c, not w
    assert m.get("wom", "a") == "secret-a"
    os.mkdir(m.path("wom", "new"))                       # where c is, a directory may be made
    write(m.path("wom", "new", "_"), "fresh\n")
    assert m.get("wom", "new") == "fresh"
    assert errno_of(write, m.path("wom", "new", "_"), "again\n") == errno.EACCES
    assert m.get("wom", "new") == "fresh"
    assert errno_of(os.unlink, m.path("ro", "b", "_")) == errno.EACCES
    assert m.get("ro", "b") == "public-b"
    assert errno_of(os.mkdir, m.path("ro", "nope")) == errno.EACCES
    assert errno_of(os.mkdir, m.path("newtop")) == errno.EACCES
    # the refused change is said in the log, with the ACL's reason
    assert "does not allow w" in m.server.log()


def test_bound_modes(mount_acl):
    """Mode bits show what joe may do (doc/filesystem.md): "_" r -> 0444,
    w -> 0200; a directory r when it may be listed, x when it may be
    entered, w when a value may be created in it."""
    m = mount_acl({"server.mount.user": "joe"})
    os.mkdir(m.path("wom", "n2"))
    write(m.path("wom", "n2", "_"), "1\n")
    assert mode(m.path("ro", "b", "_")) == 0o444
    assert mode(m.path("wom", "a", "_")) == 0o000
    assert mode(m.path("wom", "n2", "_")) == 0o000
    assert mode(m.path("ro", "b")) == 0o555      # rxe
    assert mode(m.path("wom", "a")) == 0o311     # xc: enter, create; not list
    assert mode(m.path("wom")) == 0o555          # no entry matches: nothing withheld below
    assert mode(m.mnt) == 0o555
    assert os.stat(m.path("ro")).st_nlink == 1   # no subdirectory count
    assert os.access(m.path("ro", "b", "_"), os.R_OK)
    assert not os.access(m.path("ro", "b", "_"), os.W_OK)
    assert not os.access(m.path("wom", "a", "_"), os.R_OK)


def test_bound_listings(mount_acl):
    """Listings leave out what joe may not enumerate or read; the special
    directories of internal data are neither listed nor reachable."""
    m = mount_acl({"server.mount.user": "joe"})
    assert sorted(os.listdir(m.mnt)) == ["ro"]        # wom, secret: nothing to see below
    assert os.listdir(m.path("ro")) == ["b"]
    assert os.listdir(m.path("ro", "b")) == ["_"]
    assert os.listdir(m.path("wom")) == []            # wom/a is xc: not enumerable
    assert errno_of(os.listdir, m.path("wom", "a")) == errno.EACCES
    # no ACL entry can match anything at or below secret: nothing allowed
    assert errno_of(os.listdir, m.path("secret")) == errno.EACCES
    assert errno_of(os.listdir, m.path("secret", "c")) == errno.EACCES
    assert mode(m.path("secret")) == 0
    for d in (".acl", ".auth", ".type"):
        assert errno_of(os.stat, m.path(d)) == errno.ENOENT, d
        assert errno_of(read, m.path(d, "writeonly", "wom", "#", "_")) == errno.ENOENT
    r = subprocess.run(["ls", "-a", m.mnt], capture_output=True, text=True)
    assert ".acl" not in r.stdout and ".auth" not in r.stdout, r.stdout
    r = subprocess.run(["find", m.mnt], capture_output=True, text=True)
    found = {os.path.relpath(x, m.mnt) for x in r.stdout.split()}
    assert "ro/b/_" in found and "wom/a/_" not in found and "secret/c/_" not in found, found
    # grep -r sees only what joe may read
    r = subprocess.run(["grep", "-r", "-e", "-", m.mnt], capture_output=True, text=True)
    assert "public-b" in r.stdout and "secret-a" not in r.stdout \
        and "hidden-c" not in r.stdout, r.stdout


def test_acl_change_takes_effect(mount_acl):
    """An ACL change through the protocol counts from the next access:
    reads, listings and modes follow at once, and back again."""
    m = mount_acl({"server.mount.user": "joe"})
    f = m.path("secret", "c", "_")
    assert errno_of(read, f) == errno.EACCES
    assert "secret" not in os.listdir(m.mnt)
    st = os.stat(f)
    assert stat.S_IMODE(st.st_mode) == 0
    m.set_internal(("acl", "writeonly", "secret", "#"), "rxe")
    assert read(f) == "hidden-c\n"
    assert "secret" in os.listdir(m.mnt)
    assert mode(f) == 0o444
    assert os.listdir(m.path("secret", "c")) == ["_"]
    m.set_internal(("acl", "writeonly", "secret", "#"), "rxew")
    assert mode(f) == 0o644
    write(f, "changed\n")
    assert m.get("secret", "c") == "changed"
    m.set_internal(("acl", "writeonly", "secret", "#"), "x")
    assert errno_of(read, f) == errno.EACCES
    assert errno_of(write, f, "no\n") == errno.EACCES
    assert "secret" not in os.listdir(m.mnt)
    r = m.p.request("delete_internal", path=Path("acl", "writeonly", "secret", "#"))
    assert "error" not in r, r
    assert errno_of(read, f) == errno.EACCES
    assert m.get("secret", "c") == "changed"


def test_watch_skips_unreadable(mount_acl):
    """.watch of a bound mount carries only changes joe may read."""
    m = mount_acl({"server.mount.user": "joe"})
    fd = os.open(m.path(".watch"), os.O_RDONLY | os.O_NONBLOCK)
    try:
        r = m.p.request("set_value", path=Path("secret", "c"), value="s2")
        assert "error" not in r, r
        r = m.p.request("set_value", path=Path("ro", "b"), value="p2")
        assert "error" not in r, r
        got = ""
        deadline = time.monotonic() + 5
        while "p2" not in got and time.monotonic() < deadline:
            try:
                got += os.read(fd, 65536).decode()
            except BlockingIOError:
                time.sleep(0.02)
        assert "p2" in got and "s2" not in got, got
    finally:
        os.close(fd)


def test_inotify_skips_unreadable(mount_acl):
    """A bound mount repeats for inotify only the changes its user may
    read: a watcher learns no name the ACL hides."""
    m = mount_acl({"server.mount.user": "joe"})
    ino = Inotify(m.mnt).settle()
    try:
        r = m.p.request("set_value", path=Path("secret", "c"), value="s3")
        assert "error" not in r, r
        r = m.p.request("set_value", path=Path("secret", "new"), value="s4")
        assert "error" not in r, r
        r = m.p.request("set_value", path=Path("ro", "b"), value="p3")
        assert "error" not in r, r
        ino.wait("ro/b/_", "CLOSE_WRITE")
        time.sleep(0.2)
        assert not [e for e in ino.snapshot() if e[1].startswith("secret")], ino.dump()
    finally:
        ino.stop()


def test_unknown_user_refuses_to_start(server_factory, state, tmp_path):
    """server.mount.user naming nobody: the server says so and exits 1."""
    s = Server(tmp_path / "w", init=None, config={"server.mount.user": "nosuchuser"},
               server_args=("-l", str(state), "--mount", str(tmp_path / "mnt")))
    r = subprocess.run(s.argv, cwd=s.workdir, capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "no distkv user nosuchuser" in r.stderr, r.stderr
    assert not is_mounted(tmp_path / "mnt")


def test_password_user_binds(mount_acl):
    """A user of the password method binds too (no current method: the
    first of _test, password that has the name)."""
    m = mount_acl({"server.mount.user": "pw"})
    assert errno_of(read, m.path("secret", "c", "_")) == errno.EACCES
    assert read(m.path("ro", "b", "_")) == "public-b\n"


# ---------------------------------------------------------------------------
# the default mount, and other Unix users


def test_default_mount_unchanged(mount_acl):
    """Without mount options: full rights, FUSE's own rule (only the user
    that mounted gets in), the kernel checks the bits."""
    m = mount_acl({})
    assert read(m.path("secret", "c", "_")) == "hidden-c\n"
    assert mode(m.path("secret", "c", "_")) == 0o644
    assert ".acl" in os.listdir(m.mnt)
    opts = [ln.split()[3] for ln in open("/proc/mounts") if ln.split()[1] == m.mnt][0]
    assert "default_permissions" in opts and "allow_other" not in opts, opts
    r = as_uid(OTHER_UID, "stat", m.mnt)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r


def test_allow_other_uid_map(mount_acl):
    """allow_other with server.mount.users: a mapped uid follows its
    user's ACL, an unmapped one gets EACCES on everything, root has full
    rights; a Unix user name maps too."""
    m = mount_acl({"server.mount.allow_other": True,
                   "server.mount.users.%d" % OTHER_UID: "joe",
                   "server.mount.users.nobody": "ann"})
    opts = [ln.split()[3] for ln in open("/proc/mounts") if ln.split()[1] == m.mnt][0]
    assert "allow_other" in opts and "default_permissions" not in opts, opts
    r = as_uid(OTHER_UID, "cat", m.path("ro", "b", "_"))
    assert r.returncode == 0 and r.stdout == "public-b\n", r
    r = as_uid(OTHER_UID, "cat", m.path("secret", "c", "_"))
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = as_uid(OTHER_UID, "sh", "-c", "echo x > %s" % m.path("ro", "b", "_"))
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = as_uid(OTHER_UID, "ls", "-a", m.mnt)
    assert r.returncode == 0 and r.stdout.split() == [".", "..", "ro"], r
    # unmapped: nothing at all
    for cmd in (["ls", m.mnt], ["stat", m.mnt], ["cat", m.path("ro", "b", "_")],
                ["stat", m.path("ro")], ["df", m.mnt]):
        r = as_uid(STRANGER_UID, *cmd)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (cmd, r)
    # nobody -> ann (no ACL): full rights on data, like root
    r = as_uid(65534, "cat", m.path("secret", "c", "_"))
    assert r.returncode == 0 and r.stdout == "hidden-c\n", r
    # root, unmapped: full rights, also on internal data
    assert read(m.path("secret", "c", "_")) == "hidden-c\n"
    assert ".acl" in os.listdir(m.mnt)
    # root's view, read right before, is not what the kernel keeps for uid 1000
    assert os.listdir(m.path("secret")) == ["c"]
    r = as_uid(OTHER_UID, "ls", m.path("secret"))
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    r = as_uid(OTHER_UID, "ls", m.path("wom"))
    assert r.returncode == 0 and r.stdout.split() == [], r
    # a change of the ACL reaches the other uid at once
    m.set_internal(("acl", "writeonly", "secret", "#"), "rxe")
    r = as_uid(OTHER_UID, "cat", m.path("secret", "c", "_"))
    assert r.returncode == 0 and r.stdout == "hidden-c\n", r


# ---------------------------------------------------------------------------
# .auth and .acl


def test_auth_never_shows_hashes(mount_acl):
    """.auth shows users; a record's `_` leaves the password hash out and
    is read-only where it holds one.  The hash is in no listing, no
    text, no log."""
    m = mount_acl({})
    pw = m.path(".auth", "password", "user", "pw", "_")
    text = read(pw)
    assert "password" not in text and HASH not in text, text
    assert "acl: writeonly" in text, text
    assert os.stat(pw).st_size == len(text)
    assert mode(pw) == 0o444
    assert errno_of(write, pw, "_aux: null\n") == errno.EACCES
    assert m.get_internal("auth", "password", "user", "pw")["value"]["password"] == HASH
    assert read(m.path(".auth", "_test", "user", "joe", "_")) == "_aux:\n  acl: writeonly\n"
    assert mode(m.path(".auth", "_test", "user", "joe", "_")) == 0o644
    r = subprocess.run(["grep", "-r", "argon2", m.path(".auth")], capture_output=True)
    assert r.returncode == 1 and not r.stdout, r
    assert HASH not in m.server.log() and "argon2" not in m.server.log()


def test_acl_write_modes(mount_acl):
    """Writing MODES into .acl/NAME/.../_ sets an ACL entry; letters
    outside arwcdxen fail with EINVAL and leave the entry as it was."""
    m = mount_acl({})
    f = m.path(".acl", "writeonly", "wom", "#", "_")
    assert read(f) == "xc\n"
    r = subprocess.run(["sh", "-c", "echo xcd > '%s'" % f], capture_output=True)
    assert r.returncode == 0, r
    assert m.get_internal("acl", "writeonly", "wom", "#")["value"] == "xcd"
    assert errno_of(write, f, "xq\n") == errno.EINVAL
    assert m.get_internal("acl", "writeonly", "wom", "#")["value"] == "xcd"
    assert read(f) == "xcd\n"
    assert errno_of(write, f, "[x, c]\n") == errno.EINVAL
    assert "mode letters" in m.server.log()
    # a new entry, in a new directory
    os.makedirs(m.path(".acl", "writeonly", "secret", "#"))
    write(m.path(".acl", "writeonly", "secret", "#", "_"), "r\n")
    assert m.get_internal("acl", "writeonly", "secret", "#")["value"] == "r"
    # set back for the other tests sharing the state (they load the file,
    # so this is only tidiness)
    write(f, "xc\n")
