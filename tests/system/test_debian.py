"""The Debian packages (issue 17): debian/ builds `distkv` and
`python3-distkv` with `dpkg-buildpackage -b -us -uc`; they install with
`dpkg -i`, and the installed programs work: the tutorial's data commands,
a mounted tree, the Python package, the man pages, the unit.  The
packages are removed again at the end.

Runs in the normal pass only (the build takes a minute or two); skipped
with a clear reason where dpkg-buildpackage or debhelper is missing or we
are not root.

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_debian.py
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import REPO, free_port
from test_fs import is_mounted

PKGS = ("distkv", "python3-distkv")

packaging = pytest.mark.skipif(
    not shutil.which("dpkg-buildpackage") or not shutil.which("dh") or os.geteuid() != 0
    or bool(os.environ.get("DKV_ASAN")),
    reason="needs dpkg-buildpackage, debhelper and root; in the sanitizer pass the "
    "packages are not built again (the normal pass builds and tests them)")


def sh(*args, timeout=120, check=True, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (" ".join(map(str, args)), r.returncode,
                                                     r.stdout[-3000:], r.stderr[-3000:]))
    return r


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """Build the packages from a copy of the tree (its files as git knows
    them, uncommitted changes included); their paths."""
    top = tmp_path_factory.mktemp("deb")
    src = top / "src"
    src.mkdir()
    files = sh("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=REPO).stdout
    names = [f for f in files.split("\0") if f and not f.startswith("build")]
    tar = subprocess.Popen(["tar", "-cf", "-", "--null", "-T", "-"], cwd=REPO,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    untar = subprocess.Popen(["tar", "-xf", "-", "-C", str(src)], stdin=tar.stdout)
    tar.stdin.write("\0".join(names).encode())
    tar.stdin.close()
    assert tar.wait(60) == 0 and untar.wait(60) == 0
    sh("dpkg-buildpackage", "-b", "-us", "-uc", cwd=src, timeout=900)
    out = {p: next(top.glob("%s_*.deb" % p)) for p in PKGS}
    return out


@pytest.fixture
def installed(debs):
    sh("dpkg", "-i", *map(str, debs.values()), timeout=300)
    try:
        yield
    finally:
        sh("dpkg", "--purge", *PKGS, timeout=300, check=False)


def test_install_files_match_the_build():
    """What debian/*.install takes is what meson installs (prefix /usr), and
    both packages are in debian/control: checked in every pass, without
    building the packages."""
    import json
    from conftest import BUILD_DIR
    opts = json.loads(sh("meson", "introspect", str(BUILD_DIR), "--buildoptions").stdout)
    prefix = next(o["value"] for o in opts if o["name"] == "prefix")
    inst = json.loads(sh("meson", "introspect", str(BUILD_DIR), "--installed").stdout)
    paths = set()
    for p in inst.values():
        if p.startswith(prefix + "/"):
            p = "/usr" + p[len(prefix):]
        paths.add(re.sub(r"^/usr/lib/python3[.\d]*/dist-packages/", "/usr/lib/python3/dist-packages/",
                         p).lstrip("/"))
    control = (REPO / "debian" / "control").read_text()
    for pkg in PKGS:
        assert "\nPackage: %s\n" % pkg in control, pkg
        for line in (REPO / "debian" / ("%s.install" % pkg)).read_text().split("\n"):
            if line.strip():
                assert any(p == line or p.startswith(line + "/") for p in paths), \
                    "%s.install: %s is not installed by meson" % (pkg, line)


@packaging
def test_packages_hold_what_they_should(debs):
    files = sh("dpkg", "-c", str(debs["distkv"])).stdout
    for f in ("./usr/bin/distkv", "./usr/bin/dkv", "./usr/share/man/man1/distkv.1.gz",
              "./usr/share/man/man1/dkv.1.gz", "./usr/share/man/man5/distkv.cfg.5.gz",
              "./usr/share/bash-completion/completions/dkv",
              "./lib/systemd/system/distkv@.service"):
        assert f in files, f
    py = sh("dpkg", "-c", str(debs["python3-distkv"])).stdout
    assert "./usr/lib/python3/dist-packages/distkv/client.py" in py
    info = sh("dpkg", "-I", str(debs["distkv"])).stdout
    assert "Depends:" in info and "fuse3" in info and "serf" in info


@packaging
def test_installed_programs_work(installed, tmp_path):
    assert sh("/usr/bin/distkv", "--version").stdout.startswith("distkv ")
    assert "/usr/bin/distkv -c /etc/distkv/%i.cfg server %i" in \
        open("/lib/systemd/system/distkv@.service").read()
    port = free_port()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    conn = ["-C", "server.cluster=false", "-C", "server.bind_default.host=127.0.0.1",
            "-C", "server.bind_default.port=%d" % port]
    log = open(tmp_path / "server.log", "w")
    srv = subprocess.Popen(["/usr/bin/distkv", *conn, "server", "-i", "Hello", "--mount",
                            str(mnt), "pkg-node"], stdout=log, stderr=subprocess.STDOUT,
                           cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 20
        while not is_mounted(str(mnt)) and time.monotonic() < deadline:
            assert srv.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        assert is_mounted(str(mnt))
        dkv = ["/usr/bin/dkv", "-p", str(port)]
        sh(*dkv, "data", "set", "-v", "Test", "one", "two", env=env)
        assert sh(*dkv, "data", "get", "one", "two", env=env).stdout == "Test\n"
        assert sh(*dkv, "data", "get", env=env).stdout == "Hello\n"
        assert (mnt / "one" / "two" / "_").read_text() == "Test\n"
        code = ("import anyio, distkv.client as c\n"
                "async def main():\n"
                "    async with c.open_client(port=%d) as cl:\n"
                "        print((await cl.get('one', 'two')).value, c.__file__)\n"
                "anyio.run(main)\n" % port)
        out = sh("/usr/bin/python3", "-c", code, cwd="/", env=env).stdout
        assert out.startswith("Test /usr/lib/python3/dist-packages/distkv/client.py"), out
    finally:
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(30) == 0, (tmp_path / "server.log").read_text()
        log.close()
    assert not is_mounted(str(mnt))
