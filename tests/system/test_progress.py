"""Progress on long work, on a terminal only (issue 17): loading a state
file with `distkv server -l` and downloading the state from a peer show a
line of records, bytes and rate on standard error, rewritten in place and
erased at the end; where standard error is no terminal nothing extra is
written.  DKV_PROGRESS=1 makes the programs act as on a terminal (and
show the line from the start), so that the tests need no terminal.

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_progress.py
"""

import re

from conftest import BUILD_DIR

DKV_BENCH = BUILD_DIR / "tools" / "dkv-bench"
# (the log is read as text, where "\r" becomes a line break)
LINE = re.compile(r"[\r\n]\x1b\[K(loading [^:]+|downloading the state): ([\d,]+) records, "
                  r"[\d.]+ MB, [\d,]+ records/s")


def state_file(server_factory, tmp_path, n=20000):
    """A state file of about n entries."""
    import subprocess
    src = server_factory(node="src")
    subprocess.run([str(DKV_BENCH), "-p", str(src.port), "-q", "-c", "4", "-P", "16", "-n", "0",
                    "--prefill", "-k", str(n)], check=True, capture_output=True, timeout=120)
    state = tmp_path / "state.dkv"
    src.dkv("log", "save", str(state))
    return state


def test_loading_shows_progress_on_a_terminal(server_factory, tmp_path):
    state = state_file(server_factory, tmp_path)
    s = server_factory(node="tty", server_args=("-l", str(state)), env={"DKV_PROGRESS": "1"})
    log = s.log()
    lines = LINE.findall(log)
    assert lines and lines[0][0] == "loading %s" % state, log[-2000:]
    assert int(lines[-1][1].replace(",", "")) >= 16384, lines  # counted as it went
    # erased before the node's own message, which starts a clean line
    assert re.search(r"[\r\n]\x1b\[Kdistkv: loaded ", log), log[-2000:]


def test_nothing_extra_without_a_terminal(server_factory, tmp_path):
    state = state_file(server_factory, tmp_path)
    s = server_factory(node="pipe", server_args=("-l", str(state)), env={"DKV_PROGRESS": ""})
    log = s.log()
    assert "\x1b" not in log and "records/s" not in log, log[-2000:]
    assert "distkv: loaded %s" % state in log


def test_download_shows_progress(cluster_factory):
    import subprocess
    c = cluster_factory(2)
    one = c.servers[0]
    subprocess.run([str(DKV_BENCH), "-p", str(one.port), "-q", "-c", "4", "-P", "16", "-n", "0",
                    "--prefill", "-k", "5000"], check=True, capture_output=True, timeout=120)
    c.stop(1)
    two = c.start(1, wait=True, env={"DKV_PROGRESS": "1"})
    log = two.log()
    lines = [m for m in LINE.findall(log) if m[0] == "downloading the state"]
    assert lines and int(lines[-1][1].replace(",", "")) >= 5000, log[-3000:]
    assert re.search(r"[\r\n]\x1b\[Kdistkv: link to one", log), log[-3000:]


def test_big_dump_shows_progress(server):
    import os
    import subprocess
    subprocess.run([str(DKV_BENCH), "-p", str(server.port), "-q", "-c", "4", "-P", "16", "-n", "0",
                    "--prefill", "-k", "3000"], check=True, capture_output=True, timeout=120)
    r = server.dkv("data", "get", "-r", "bench", env=dict(os.environ, DKV_PROGRESS="1"))
    assert r.stdout.count("\n") >= 3000
    got = re.findall(r"[\r\n]\x1b\[Kreading: ([\d,]+) entries, [\d.]+ MB", r.stderr)
    assert got and int(got[-1].replace(",", "")) >= 3000, r.stderr[-500:]
    assert r.stderr[-4:] in ("\r\x1b[K", "\n\x1b[K"), repr(r.stderr[-50:])  # erased at the end
    r = server.dkv("data", "get", "-r", "bench", env=dict(os.environ, DKV_PROGRESS=""))
    assert r.stderr == ""
