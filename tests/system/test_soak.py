"""The fault-injection soak, short version (issue 16; tools/soak,
doc/reliability.md).

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q -p no:cacheprovider \
        tests/system/test_soak.py

Two runs of tools/soak, 45 s of faults each (35 s under ASan, where the
writers also go slower): one with a fixed seed (the same faults in the
same order every time) and one with a random seed, printed here and by
the soak (`--seed N` repeats it).  Every kind of fault is injected in
each run: the nemesis takes every kind once, in a seeded order, before it
picks at random.

A third run proves that the checks can fail: with --sabotage the soak
deletes an acknowledged key and brings a deleted one back behind its
own back, and must then report one lost write and one resurrected entry.
"""

import os
import random
import re
import signal
import subprocess
import sys

import pytest

import cluster_util
from conftest import ASAN, DISTKV, REPO

SOAK = REPO / "tools" / "soak"
FIXED_SEED = 20260316
# under ASan everything is slower: fewer writes, a shorter run, faults a
# little closer together (still every kind in each run)
DURATION = 35 if ASAN else 45
INTERVAL = ("1.2", "3") if ASAN else ("1.5", "4")
RATE = 12 if ASAN else 40


def run_soak(tmp_path, *args, timeout):
    if os.geteuid() != 0:
        pytest.skip("the soak needs root (namespaces, tmpfs, FUSE)")
    why = cluster_util.netns_usable()
    if why:
        pytest.skip("no network namespaces here: " + why)
    if not DISTKV.exists():
        pytest.skip("no server binary at %s" % DISTKV)
    argv = [sys.executable, str(SOAK), "--build", str(DISTKV.parent.parent),
            "--workdir", str(tmp_path / "soak"), "--rate", str(RATE), *map(str, args)]
    print(" ".join(argv), flush=True)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)        # the soak cleans up after itself
        try:
            out, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        print(out)
        pytest.fail("the soak did not end within %ds" % timeout)
    print(out)
    lines = [ln for ln in out.splitlines() if ln.startswith("soak summary:")]
    assert lines, "no summary line (exit %d)" % proc.returncode
    return proc.returncode, lines[-1], out


def fields(summary):
    return dict(re.findall(r"(\w+)=(\S+)", summary))


def check_pass(rc, summary, out):
    f = fields(summary)
    assert rc == 0 and summary.startswith("soak summary: PASS"), summary
    assert f["lost"] == "0" and f["resurrected"] == "0" and f["diverging"] == "0", summary
    # every kind of fault happened at least once
    for kind in ("kill", "wipe", "stop", "partition", "serf", "diskfull", "links", "watcher"):
        assert int(f[kind]) >= 1, "no %s fault in: %s" % (kind, summary)
    assert int(f["acked"]) > 200, summary


def test_soak_fixed_seed(tmp_path):
    rc, summary, out = run_soak(tmp_path, "--seed", FIXED_SEED, "--duration", DURATION,
                                "--interval", *INTERVAL, timeout=DURATION + 240)
    check_pass(rc, summary, out)


def test_soak_random_seed(tmp_path):
    seed = random.SystemRandom().randrange(1, 1 << 31)
    print("random seed: %d (repeat: tools/soak --seed %d)" % (seed, seed))
    rc, summary, out = run_soak(tmp_path, "--seed", seed, "--duration", DURATION,
                                "--interval", *INTERVAL, timeout=DURATION + 240)
    check_pass(rc, summary, out)


def test_soak_checks_can_fail(tmp_path):
    rc, summary, out = run_soak(tmp_path, "--seed", 7, "--duration", 5,
                                "--faults", "stop,kill", "--sabotage", timeout=200)
    f = fields(summary)
    assert rc == 1 and summary.startswith("soak summary: FAIL"), summary
    assert f["lost"] == "1" and f["resurrected"] == "1", summary
