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

Each run has a runner per node with its jobs (an any-node job every
second, one that runs 2 s, a single-node job per node), and kills
runners among its faults; the runner check must pass too: no gap in the
any-node jobs that a healthy runner does not explain, no due time run
twice while the network was whole, single-node jobs only on their node,
and a killed runner's run marked gone before the job ran again.

A third run proves that the checks can fail: with --sabotage the soak
deletes an acknowledged key and brings a deleted one back behind its
own back, freezes every runner for longer than a takeover, and forges a
second run of one due time and a single-node job's run on another node;
it must then report one lost write, one resurrected entry, a gap, a
double run and a misplaced run.
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
    for kind in ("kill", "wipe", "stop", "partition", "serf", "diskfull", "links", "watcher",
                 "runner"):
        assert int(f[kind]) >= 1, "no %s fault in: %s" % (kind, summary)
    assert int(f["acked"]) > 200, summary
    # the runners ran their jobs and the runner check passed
    assert int(f["runs"]) > DURATION, summary
    for k in ("run_gaps", "run_twice", "run_misplaced"):
        assert f[k] == "0", summary
    marked, killed = f["run_marked"].split("/")
    assert marked == killed, summary


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
    assert int(f["run_gaps"]) >= 1, summary
    assert int(f["run_twice"]) >= 1 and f["run_misplaced"] == "1", summary
    assert "RUNNER: tick did not run from" in out, out[-3000:]
