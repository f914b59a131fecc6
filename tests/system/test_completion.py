"""Bash completion (tools/completion/distkv.bash, issue 17): commands and
options from the programs' --help texts, path words from a live server.

The completion function is called as bash calls it: COMP_WORDS and
COMP_CWORD set, COMPREPLY read back.

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_completion.py
"""

import os
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, REPO

SCRIPT = REPO / "tools" / "completion" / "distkv.bash"

pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="no bash")


def complete(*words):
    """COMPREPLY for the command line `words` (the last one being
    completed, "" for a new word)."""
    quoted = " ".join("'%s'" % w.replace("'", "'\\''") for w in words)
    script = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_distkv\n'
              'printf "%%s\\n" "${COMPREPLY[@]}"\n' % (SCRIPT, quoted, len(words) - 1))
    env = dict(os.environ, PATH="%s:%s" % (BUILD_DIR / "tools", os.environ["PATH"]))
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return sorted(x for x in r.stdout.split("\n") if x)


def test_commands_and_options():
    groups = complete("dkv", "")
    assert {"data", "internal", "auth", "acl", "codec", "type", "code"} <= set(groups), groups
    assert complete("dkv", "da") == ["data"]
    assert complete("dkv", "data", "") == ["delete", "get", "list", "monitor", "set"]
    assert complete("dkv", "data", "g") == ["get"]
    opts = complete("dkv", "data", "set", "--")
    assert {"--value", "--eval", "--new", "--meta"} <= set(opts), opts
    assert complete("distkv", "") == ["client", "server"]
    assert "--mount" in complete("distkv", "server", "--m")
    assert complete("distkv", "-v", "client", "da") == ["data"]
    assert "--version" in complete("distkv", "--")


def test_paths_from_the_server(server):
    p = str(server.port)
    server.dkv("data", "set", "-v", "x", "one", "two")
    server.dkv("data", "set", "-v", "x", "one", "three")
    server.dkv("data", "set", "-v", "x", "one", ":12")
    server.dkv("data", "set", "-v", "x", "other")
    # (.distkv: the error log's watch keeps that entry; it is a child like any)
    assert complete("dkv", "-p", p, "data", "get", "") in (["one", "other"],
                                                           [".distkv", "one", "other"])
    assert complete("dkv", "-p", p, "data", "get", "o") == ["one", "other"]
    assert complete("dkv", "-p", p, "data", "get", "one", "t") == ["three", "two"]
    assert complete("dkv", "-p", p, "data", "get", "one", "") == [":12", "three", "two"]
    # an option's value is not a path word, nor is it completed
    assert complete("dkv", "-p", p, "data", "set", "-v", "x", "one", "tw") == ["two"]
    assert complete("dkv", "-p", p, "data", "set", "-v", "") == []
    assert complete("distkv", "client", "-p", p, "data", "list", "one", "th") == ["three"]
    # no server: no paths, and no noise
    assert complete("dkv", "-p", "1", "data", "get", "") == []
