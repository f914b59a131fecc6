"""Progress on long work, on a terminal only (issue 17): loading a state
file with `distkv server -l`, downloading the state from a peer, `data get
-r` and `log save` show a line of records (entries), bytes and rate on
standard error, rewritten in place and erased at the end; where standard
error is no terminal nothing extra is written.  DKV_PROGRESS=1 makes the
programs act as on a terminal (and show the line from the start), so that
the tests need no terminal.  `log save` asks the server for reports as it
writes (the request's "progress", our extension): the original client's
plain request still gets its one reply.

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_progress.py
"""

import os
import re
import subprocess

import msgpack
import pytest

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


def prefill(server, n):
    subprocess.run([str(DKV_BENCH), "-p", str(server.port), "-q", "-c", "4", "-P", "16", "-n", "0",
                    "--prefill", "-k", str(n)], check=True, capture_output=True, timeout=120)


def entry_records(path):
    """Entry and deletion records in a state file (doc/formats.md)."""
    u = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=lambda c, d: (c, d))
    u.feed(path.read_bytes())
    return sum(1 for m in u if isinstance(m, list) and m[0] in (1, 2))


SAVING = r"[\r\n]\x1b\[Ksaving %s: ([\d,]+) entries, ([\d.]+) MB, [\d,]+ entries/s"


def test_log_save_shows_progress(server, tmp_path):
    prefill(server, 3000)
    state = tmp_path / "saved.dkv"
    r = server.dkv("log", "save", str(state), env=dict(os.environ, DKV_PROGRESS="1"))
    assert r.stdout == ""
    got = re.findall(SAVING % re.escape(str(state)), r.stderr)
    # the last report is the whole file: every entry, every byte
    assert got and int(got[-1][0].replace(",", "")) >= 3000, r.stderr[-500:]
    assert abs(float(got[-1][1]) - state.stat().st_size / 1e6) < 0.05, (got, state.stat())
    assert r.stderr[-4:] in ("\r\x1b[K", "\n\x1b[K"), repr(r.stderr[-50:])  # erased at the end
    # without a terminal: not a byte on standard error, and the same file
    again = tmp_path / "again.dkv"
    r = server.dkv("log", "save", str(again), env=dict(os.environ, DKV_PROGRESS=""))
    assert r.stderr == "" and r.stdout == ""
    assert again.stat().st_size == state.stat().st_size


def test_log_save_progress_on_the_wire(server, tmp_path):
    """The reports as the protocol carries them; and the original client's
    plain request (no "progress") gets exactly one reply, as before."""
    prefill(server, 2500)
    with server.connect() as p:
        plain = tmp_path / "plain.dkv"
        r = p.request("save", path=str(plain))
        assert r.get("result") is True and "state" not in r, r
        with pytest.raises(TimeoutError):
            m = p.recv(0.5)
            pytest.fail("a second reply to a plain save: %r" % (m,))
        reported = tmp_path / "reported.dkv"
        msgs = p.stream("save", path=str(reported), progress=True)
        assert msgs[0].get("state") == "start" and msgs[-1].get("state") == "end", msgs
        reports = msgs[1:-1]
        assert reports and all(set(m) >= {"entries", "bytes"} for m in reports), msgs
        assert reports[-1]["entries"] == entry_records(reported) >= 2500, reports
        assert reports[-1]["bytes"] == reported.stat().st_size
        assert reported.stat().st_size == plain.stat().st_size
        # a failing save with progress: the start, then the error, and the
        # connection goes on
        seq = p.start("save", path=str(tmp_path / "no" / "such" / "dir"), progress=True)
        m = p.next(seq)
        assert m.get("state") == "start", m
        m = p.next(seq)
        assert "error" in m and "no/such/dir" in m["error"], m
        assert p.request("get_tock").get("tock")
    server.check_alive("after the saves")
