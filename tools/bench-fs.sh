#!/usr/bin/env bash
# bench-fs.sh - the mounted-tree benchmark (issue 3): a distkv node's FUSE
# mount beside a tmpfs holding the same tree, in one run.
#
# usage: tools/bench-fs.sh [BUILD_DIR]     (default: build; run as root)
#
# Starts a node with its tree mounted, stores 100,000 entries through the
# protocol (dkv-bench --prefill: bench/k0..k99/0..999, each with the value
# "xxxxxxxx"), mounts a tmpfs and builds the same tree of directories and
# `_` files in it, then measures on both:
#   - stat, cat (open/read/close) warm, cold (after drop_caches) and right
#     after a change (a set_value through the protocol; on tmpfs a write),
#     echo x > _ (open O_TRUNC/write/close) and mkdir, with a small C
#     program doing the system calls in a loop (p50/p99 in microseconds);
#   - a real `cat` process (hyperfine, or a loop of cat processes);
#   - ls -R and find over bench/ (100,101 directories, 100,000 `_` files),
#     cold (right after drop_caches), warm (the run after that) and warm
#     again (the third run: the kernel asks for a directory's attributes
#     once after it listed the directory, since the listing made its atime
#     stale);
#   - the inotify delay: from the reply to a set_value to the IN_MODIFY of
#     `_` on a watch of its directory (on tmpfs: from the end of a write);
# and the FUSE requests each operation cost, from the mount's .stats file
# (minus what reading .stats itself costs).  Prints a markdown table.
# Everything it starts or mounts is stopped or unmounted on exit.  Takes
# one to two minutes on an idle 2-CPU machine, more under load (most of it
# the cold ls -R and find on the mount).
# drop_caches is system-wide: don't run it beside other benchmarks.
#
# Environment: N_OP (2000 iterations for stat/cat/echo), N_MKDIR (1000),
# N_COLD (30 cold cats), N_CHANGE (200 changes for the inotify and
# cat-after-change figures), SERVER_OPTS (more options for the server,
# e.g. "-C server.mount_spin_us=0"), PERF_OUT (a file: perf record -g the server
# during the ls -R and find runs, which then take several times longer).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
distkv=$build/tools/distkv
dkvbench=$build/tools/dkv-bench
N_OP=${N_OP:-2000}
N_MKDIR=${N_MKDIR:-1000}
N_COLD=${N_COLD:-30}
N_CHANGE=${N_CHANGE:-200}
PERF_OUT=${PERF_OUT:-}
SERVER_OPTS=${SERVER_OPTS:-}
PY=/usr/bin/python3

die() { echo "bench-fs: $*" >&2; exit 1; }
for x in "$distkv" "$dkvbench"; do
	[ -x "$x" ] || die "$x not built (run ninja -C $build)"
done
[ "$(id -u)" = 0 ] || die "run as root (mounts, drop_caches)"
[ -e /dev/fuse ] || die "no /dev/fuse"
command -v cc >/dev/null || die "no C compiler (cc)"
$PY -c 'import msgpack' 2>/dev/null || die "$PY lacks msgpack (apt-get install python3-msgpack)"

tmp=$(mktemp -d /tmp/bench-fs.XXXXXX)
mnt=$tmp/mnt
tfs=$tmp/tmpfs
srv_pid=
perf_pid=
bg_pid=
cleanup() {
	set +e
	trap '' INT TERM # a second signal must not cut the cleanup short
	[ -n "$bg_pid" ] && kill "$bg_pid" 2>/dev/null
	[ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null
	if [ -n "$srv_pid" ]; then
		kill "$srv_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$srv_pid" 2>/dev/null
		wait "$srv_pid" 2>/dev/null
	fi
	if mountpoint -q "$mnt" 2>/dev/null || grep -q " $mnt fuse" /proc/mounts; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	mountpoint -q "$tfs" 2>/dev/null && umount "$tfs"
	# never rm -r through a mount that is still there
	if ! grep -q " $tmp/" /proc/mounts; then
		rm -rf "$tmp"
	else
		echo "bench-fs: $tmp still has mounts; left in place" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers: the C loop and the Python protocol/inotify driver ----
cc -O2 -o "$tmp/fsb" -x c - <<'CEOF'
/* fsb - per-operation latencies of file system calls, for bench-fs.sh.
 *   fsb stat FILE N          stat(2)
 *   fsb cat FILE N           open/read to EOF/close
 *   fsb echo FILE N          open(O_WRONLY|O_TRUNC)/write "x\n"/close
 *   fsb mkdir DIR N          mkdir DIR/m<i>
 *   fsb catdrop FILE N       like cat, after an (untimed) drop_caches each time
 *   fsb catwait FILE         like cat, once per line read on stdin; prints
 *                            "<ns> <first line of the file>" per read
 *   fsb tree ROOT NDIR NPER  ROOT/k<i>/<j>/_ holding "xxxxxxxx\n"
 * The timed modes print "p50_us p99_us mean_us n".  */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fsb: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(int64_t *t, long n)
{
	double sum = 0;
	for (long i = 0; i < n; i++)
		sum += (double)t[i];
	qsort(t, (size_t)n, sizeof *t, cmp);
	printf("%.1f %.1f %.1f %ld\n", t[n / 2] / 1e3, t[(n * 99) / 100] / 1e3, sum / n / 1e3, n);
}

static char buf[1 << 16];

static ssize_t cat_once(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open", path);
	ssize_t r, total = 0;
	while ((r = read(fd, buf + total, sizeof buf - (size_t)total)) > 0)
		total += r;
	if (r < 0)
		die("read", path);
	close(fd);
	return total;
}

static void drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0 || write(fd, "3\n", 2) != 2)
		die("write", "/proc/sys/vm/drop_caches");
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fsb stat|cat|echo|mkdir|catdrop|catwait|tree PATH [N...]\n");
		return 2;
	}
	const char *mode = argv[1], *path = argv[2];
	long n = argc > 3 ? atol(argv[3]) : 0;
	char p[4096];

	if (!strcmp(mode, "tree")) {
		long per = argc > 4 ? atol(argv[4]) : 0;
		if (mkdir(path, 0755) && errno != EEXIST)
			die("mkdir", path);
		for (long i = 0; i < n; i++) {
			snprintf(p, sizeof p, "%s/k%ld", path, i);
			if (mkdir(p, 0755) && errno != EEXIST)
				die("mkdir", p);
			for (long j = 0; j < per; j++) {
				snprintf(p, sizeof p, "%s/k%ld/%ld", path, i, j);
				if (mkdir(p, 0755) && errno != EEXIST)
					die("mkdir", p);
				strcat(p, "/_");
				int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
				if (fd < 0 || write(fd, "xxxxxxxx\n", 9) != 9)
					die("write", p);
				close(fd);
			}
		}
		return 0;
	}
	if (!strcmp(mode, "catwait")) {
		char line[256];
		setvbuf(stdout, NULL, _IOLBF, 0);
		while (fgets(line, sizeof line, stdin)) {
			int64_t t0 = now_ns();
			ssize_t len = cat_once(path);
			int64_t t1 = now_ns();
			buf[len] = 0;
			char *nl = strchr(buf, '\n');
			if (nl)
				*nl = 0;
			printf("%lld %s\n", (long long)(t1 - t0), buf);
		}
		return 0;
	}

	if (n <= 0)
		n = 1000;
	int64_t *t = calloc((size_t)n, sizeof *t);
	struct stat st;
	for (long i = 0; i < n; i++) {
		int64_t t0 = 0;
		if (!strcmp(mode, "stat")) {
			t0 = now_ns();
			if (stat(path, &st))
				die("stat", path);
		} else if (!strcmp(mode, "cat")) {
			t0 = now_ns();
			if (cat_once(path) <= 0) {
				errno = ENODATA;
				die("read", path);
			}
		} else if (!strcmp(mode, "catdrop")) {
			drop_caches();
			t0 = now_ns();
			if (cat_once(path) <= 0) {
				errno = ENODATA;
				die("read", path);
			}
		} else if (!strcmp(mode, "echo")) {
			t0 = now_ns();
			int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0644);
			if (fd < 0)
				die("open", path);
			if (write(fd, "x\n", 2) != 2)
				die("write", path);
			if (close(fd))
				die("close", path);
		} else if (!strcmp(mode, "mkdir")) {
			snprintf(p, sizeof p, "%s/m%ld", path, i);
			t0 = now_ns();
			if (mkdir(p, 0755))
				die("mkdir", p);
		} else {
			fprintf(stderr, "fsb: unknown mode %s\n", mode);
			return 2;
		}
		t[i] = now_ns() - t0;
	}
	report(t, n);
	return 0;
}
CEOF
cat >"$tmp/fsbpy.py" <<'PYEOF'
"""Helpers of bench-fs.sh that need a protocol client or inotify.

  fsbpy.py inotify DIR N [PORT PATH...]   delay from a change to IN_MODIFY on DIR/_
  fsbpy.py catchange DIR N FSB [PORT PATH...]
                                         cat of DIR/_ right after each change
Without PORT the change is a local write of DIR/_ (tmpfs); with it, a
set_value through the protocol.  Prints "p50_us p99_us extra" (extra: the
p50 from sending the request for inotify, stale reads for catchange).
"""
import ctypes
import os
import select
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.environ["DKVPROTO_DIR"])
from dkvproto import Path, Proto  # noqa: E402

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


class Changer:
    def __init__(self, d, args):
        self.file = os.path.join(d, "_")
        self.p = None
        if args:
            self.p = Proto("127.0.0.1", int(args[0]))
            self.path = Path(*args[1:])

    def change(self, i):
        """Make change i; returns (t_start, t_done) in ns."""
        v = "v%d" % i
        t0 = time.perf_counter_ns()
        if self.p:
            r = self.p.set(self.path, v)
            if "error" in r:
                sys.exit("fsbpy: set_value failed: %r" % (r,))
        else:
            fd = os.open(self.file, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, (v + "\n").encode())
            os.close(fd)
        return t0, time.perf_counter_ns()


def events(fd, timeout):
    """The inotify events readable within timeout: [(mask, name)]."""
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return []
    data = os.read(fd, 65536)
    out = []
    off = 0
    while off < len(data):
        _wd, mask, _cookie, ln = struct.unpack_from("iIII", data, off)
        name = data[off + 16:off + 16 + ln].rstrip(b"\0").decode()
        out.append((mask, name))
        off += 16 + ln
    return out


def inotify(d, n, args):
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0 or libc.inotify_add_watch(
            fd, d.encode(), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0:
        sys.exit("fsbpy: inotify: %s" % os.strerror(ctypes.get_errno()))
    ch = Changer(d, args)
    delays, from_req, missed = [], [], 0
    for i in range(n):
        while events(fd, 0):  # leftovers of the previous change
            pass
        t0, t1 = ch.change(i)
        got = None
        closed = False
        deadline = time.monotonic() + 2
        while got is None and time.monotonic() < deadline:
            for mask, name in events(fd, 0.5):
                if name != "_":
                    continue
                if mask & (IN_MODIFY | IN_MOVED_TO) and got is None:
                    got = time.perf_counter_ns()
                closed |= got is not None and bool(mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
        if got is None:
            missed += 1
            continue
        delays.append(max(0, got - t1))
        from_req.append(got - t0)
        # let the change's remaining events (IN_CLOSE_WRITE) arrive
        deadline = time.monotonic() + 0.2
        while not closed and time.monotonic() < deadline:
            closed = any(m & IN_CLOSE_WRITE for m, nm in events(fd, 0.05) if nm == "_")
    if not delays:
        sys.exit("fsbpy: no inotify event for any of %d changes" % n)
    print("%.1f %.1f %.1f %d" % (pct(delays, .5) / 1e3, pct(delays, .99) / 1e3,
                                 pct(from_req, .5) / 1e3, missed))


def catchange(d, n, fsb, args):
    ch = Changer(d, args)
    rd = subprocess.Popen([fsb, "catwait", os.path.join(d, "_")], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True, bufsize=1)
    lat, stale = [], 0
    for i in range(n):
        ch.change(i)
        rd.stdin.write("\n")
        rd.stdin.flush()
        ns, _, text = rd.stdout.readline().rstrip("\n").partition(" ")
        lat.append(int(ns))
        if text != "v%d" % i:
            stale += 1
    rd.stdin.close()
    rd.wait()
    print("%.1f %.1f %d" % (pct(lat, .5) / 1e3, pct(lat, .99) / 1e3, stale))


def main():
    mode, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "inotify":
        inotify(d, n, sys.argv[4:])
    elif mode == "catchange":
        catchange(d, n, sys.argv[4], sys.argv[5:])
    else:
        sys.exit("fsbpy: unknown mode " + mode)


if __name__ == "__main__":
    main()
PYEOF
fsb=$tmp/fsb
fsbpy() { DKVPROTO_DIR=$root/tests/system $PY "$tmp/fsbpy.py" "$@"; }

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ms() { date +%s%3N; }
start_ms=$(now_ms)
phase() { echo "bench-fs: [$(( ($(now_ms) - start_ms) / 1000 )) s] $*" >&2; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# run a long command so that a signal to this script is handled at once
bg() { "$@" & bg_pid=$!; wait $bg_pid; bg_pid=; }

# ---- FUSE request counts from .stats ----
snap() { cat "$mnt/.stats" >"$tmp/stats.$1"; }
# reqs A B N: the requests between snapshots A and B, per operation (N ops),
# less what reading .stats costs: "total (kind n, ...)"
reqs() {
	awk -v n="$3" '
		function fmt(x) { x = sprintf("%.2f", x); sub(/\.?0+$/, "", x); return x == "-0" ? "0" : x }
		FILENAME == ARGV[1] { base[$1] = $2; next }
		FILENAME == ARGV[2] { a[$1] = $2; next }
		{ d = ($2 - a[$1] - base[$1]) / n; if (d < 0.005 && d > -0.005) next
		  k = $1; sub(/:$/, "", k); tot += d; s = s (s ? ", " : "") k " " fmt(d) }
		END { print fmt(tot) (s ? " (" s ")" : "") }' \
		"$tmp/stats.base" "$tmp/stats.$1" "$tmp/stats.$2"
}
# wait until the node is idle: no FUSE requests of its own (the notifier's
# repeats) and under 8% of a CPU, over a quarter of a second
srv_ticks() { awk '{ print $14 + $15 }' "/proc/$srv_pid/stat"; }
hz=$(getconf CLK_TCK)
settle() {
	local c0
	for _ in $(seq 1200); do
		snap s0
		c0=$(srv_ticks)
		sleep 0.25
		snap s1
		[ "$(reqs s0 s1 1)" = 0 ] && [ $(( $(srv_ticks) - c0 )) -le $(( hz / 50 )) ] && return 0
	done
	die "the node did not become idle within 5 minutes"
}

# ---- start the node, fill both trees ----
load0=$(cut -d' ' -f1-3 /proc/loadavg)
build_info="$build ($(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown), distkv built $(date -r "$distkv" '+%F %T'))"
port=$(free_port)
mkdir -p "$mnt" "$tfs"
# shellcheck disable=SC2086  # SERVER_OPTS is a list of words
"$distkv" -C server.bind_default.host=127.0.0.1 -C server.bind_default.port="$port" $SERVER_OPTS \
	server -i Testing --mount "$mnt" benchfs 2>"$tmp/server.log" &
srv_pid=$!
for _ in $(seq 100); do
	grep -q "tree mounted at" "$tmp/server.log" && break
	kill -0 "$srv_pid" 2>/dev/null || break
	sleep 0.1
done
grep -q "tree mounted at" "$tmp/server.log" || { cat "$tmp/server.log" >&2; die "the node did not mount its tree"; }
mount -t tmpfs -o size=2g,mode=0755 benchfs-tmpfs "$tfs"

snap b0; snap b1
awk 'FILENAME == ARGV[1] { a[$1] = $2; next } { print $1, $2 - a[$1] }' \
	"$tmp/stats.b0" "$tmp/stats.b1" >"$tmp/stats.base"

phase "filling the trees"
t0=$(now_ms)
bg "$dkvbench" -p "$port" -k 100000 --prefill -n 1 -t get -q >/dev/null
t1=$(now_ms)
settle
t2=$(now_ms)
fill_info="100,000 set_value (dkv-bench --prefill) took $(( t1 - t0 )) ms, and the node was idle (no FUSE requests from its notifier, under 8% CPU) $(( t2 - t1 )) ms later"
printf 'Testing\n' >"$tfs/_"
bg "$fsb" tree "$tfs/bench" 100 1000
bg find "$mnt/bench" >"$tmp/names"; n_fuse=$(wc -l <"$tmp/names")
bg find "$tfs/bench" >"$tmp/names"; n_tmpfs=$(wc -l <"$tmp/names")
[ "$n_fuse" = "$n_tmpfs" ] || die "the trees differ: $n_fuse names in the mount, $n_tmpfs in tmpfs"
mkdir "$mnt/mk" "$tfs/mk"
settle

declare -A R
# "p50 / p99" from fsb's output
fmt_lat() { awk '{ printf "%s / %s", $1, $2 }'; }

# ---- per-operation latencies ----
for fs in fuse tmpfs; do
	if [ $fs = fuse ]; then d=$mnt; else d=$tfs; fi
	phase "per-operation latencies on $fs"
	f=$d/bench/k5/5/_
	"$fsb" cat "$f" 10 >/dev/null; "$fsb" stat "$f" 10 >/dev/null
	[ $fs = fuse ] && snap a
	R[stat.$fs]=$("$fsb" stat "$f" "$N_OP" | fmt_lat)
	[ $fs = fuse ] && { snap b; R[stat.req]=$(reqs a b "$N_OP"); }
	R[cat.$fs]=$("$fsb" cat "$f" "$N_OP" | fmt_lat)
	[ $fs = fuse ] && { snap c; R[cat.req]=$(reqs b c "$N_OP"); "$fsb" cat "$f" 1 >/dev/null; snap c1; R[cat1.req]=$(reqs c c1 1); }
	drop_caches; "$fsb" cat "$f" 1 >/dev/null # forget the tree once, untimed
	[ $fs = fuse ] && snap c2
	R[catdrop.$fs]=$("$fsb" catdrop "$f" "$N_COLD" | fmt_lat)
	[ $fs = fuse ] && { snap d; R[catdrop.req]=$(reqs c2 d "$N_COLD"); }
	# a real cat process
	if command -v hyperfine >/dev/null; then
		hyperfine -N --warmup 20 --runs 200 --export-json "$tmp/hf.json" "cat $f" >/dev/null 2>&1
		R[proc.$fs]=$($PY -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.0f / %.0f (hyperfine median / mean)" % (r["median"]*1e6, r["mean"]*1e6))' "$tmp/hf.json")
	else
		s=$(now_ms); for _ in $(seq 1000); do cat "$f" >/dev/null; done
		R[proc.$fs]="$(( $(now_ms) - s )) (mean of 1000 cat processes)" # ms per 1000 = µs
	fi
	[ $fs = fuse ] && { snap e; for _ in $(seq 100); do cat "$f" >/dev/null; done; snap e1; R[proc.req]=$(reqs e e1 100); }
	e=$d/bench/k6/6/_
	"$fsb" echo "$e" 10 >/dev/null
	[ $fs = fuse ] && { settle; snap f; }
	R[echo.$fs]=$("$fsb" echo "$e" "$N_OP" | fmt_lat)
	[ $fs = fuse ] && { snap g; R[echo.req]=$(reqs f g "$N_OP"); settle; snap g; }
	R[mkdir.$fs]=$("$fsb" mkdir "$d/mk" "$N_MKDIR" | fmt_lat)
	[ $fs = fuse ] && { snap h; R[mkdir.req]=$(reqs g h "$N_MKDIR"); settle; snap h1; R[mkdirnotify.req]=$(reqs h h1 "$N_MKDIR"); }
	# a read right after a change made elsewhere (protocol) or by a write (tmpfs)
	if [ $fs = fuse ]; then
		snap i
		out=$(fsbpy catchange "$d/bench/k8/8" "$N_CHANGE" "$fsb" "$port" bench k8 8)
		settle; snap j; R[catchange.req]=$(reqs i j "$N_CHANGE")
		out2=$(fsbpy inotify "$d/bench/k7/7" "$N_CHANGE" "$port" bench k7 7)
		settle
	else
		out=$(fsbpy catchange "$d/bench/k8/8" "$N_CHANGE" "$fsb")
		out2=$(fsbpy inotify "$d/bench/k7/7" "$N_CHANGE")
	fi
	R[catchange.$fs]=$(echo "$out" | awk '{ printf "%s / %s (%d stale reads)", $1, $2, $3 }')
	R[inotify.$fs]=$(echo "$out2" | awk '{ printf "%s / %s", $1, $2; if ($4) printf " (%d missed)", $4 }')
	R[inotifyreq.$fs]=$(echo "$out2" | awk '{ print $3 }')
done

# ---- ls -R and find over bench/ ----
walk() {
	bg "$@" >/dev/null 2>"$tmp/walk.err" ||
		{ head -5 "$tmp/walk.err" >&2; die "$* failed"; }
}
if [ -n "$PERF_OUT" ] && command -v perf >/dev/null; then
	perf record -g -o "$PERF_OUT" -p "$srv_pid" 2>"$tmp/perf.log" &
	perf_pid=$!
	sleep 0.5
fi
for fs in fuse tmpfs; do
	if [ $fs = fuse ]; then d=$mnt; else d=$tfs; fi
	for key in ls find; do
		if [ $key = ls ]; then cmd=(ls -R); else cmd=(find); fi
		phase "${cmd[*]} on $fs"
		drop_caches
		[ $fs = fuse ] && snap k
		s=$(now_ms); walk "${cmd[@]}" "$d/bench"; t=$(now_ms)
		[ $fs = fuse ] && snap l
		s2=$(now_ms); walk "${cmd[@]}" "$d/bench"; t2=$(now_ms)
		[ $fs = fuse ] && snap m
		s3=$(now_ms); walk "${cmd[@]}" "$d/bench"; t3=$(now_ms)
		[ $fs = fuse ] && { snap n; R[$key.cold.req]=$(reqs k l 1); R[$key.warm.req]=$(reqs l m 1)
			R[$key.warm2.req]=$(reqs m n 1); }
		R[$key.cold.$fs]=$(awk -v x=$((t - s)) 'BEGIN { printf "%.2f", x / 1000 }')
		R[$key.warm.$fs]=$(awk -v x=$((t2 - s2)) 'BEGIN { printf "%.2f", x / 1000 }')
		R[$key.warm2.$fs]=$(awk -v x=$((t3 - s3)) 'BEGIN { printf "%.2f", x / 1000 }')
	done
done
if [ -n "$perf_pid" ]; then
	kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; perf_pid=
fi

phase "done"
# ---- the table ----
row() { printf '| %s | %s | %s | %s |\n' "$1" "${R[$2.fuse]}" "${R[$2.tmpfs]}" "$3"; }
echo
echo "bench/: 100,101 directories and 100,000 \`_\` files (9-byte values); $fill_info."
echo "Latencies are p50 / p99 in µs over $N_OP runs (mkdir $N_MKDIR, cold cat $N_COLD, after a change $N_CHANGE); ls -R and find in seconds."
echo
echo "Build: $build_info."
echo "Load average (1, 5, 15 min) at the start: $load0; at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs."
echo
echo "| operation | distkv | tmpfs | FUSE requests per op |"
echo "|---|---|---|---|"
row "stat \`_\` (warm)" stat "${R[stat.req]}"
row "cat \`_\` warm: open/read/close of an unchanged value" cat "${R[cat.req]}; a single warm re-read: ${R[cat1.req]}"
row "cat \`_\` cold: right after drop_caches" catdrop "${R[catdrop.req]}"
row "cat \`_\` right after a change (distkv: set_value reply; tmpfs: write)" catchange "${R[catchange.req]} (including the notifier's own)"
row "real \`cat\` process, µs" proc "${R[proc.req]}"
row "\`echo x > _\`: open(O_TRUNC)/write/close" echo "${R[echo.req]}"
row "mkdir" mkdir "${R[mkdir.req]}; the notifier adds ${R[mkdirnotify.req]}"
row "ls -R bench/ warm, s" ls.warm "${R[ls.warm.req]}"
row "ls -R bench/ warm again (third run), s" ls.warm2 "${R[ls.warm2.req]}"
row "ls -R bench/ cold (after drop_caches), s" ls.cold "${R[ls.cold.req]}"
row "find bench/ warm, s" find.warm "${R[find.warm.req]}"
row "find bench/ warm again (third run), s" find.warm2 "${R[find.warm2.req]}"
row "find bench/ cold (after drop_caches), s" find.cold "${R[find.cold.req]}"
row "inotify delay: change to IN_MODIFY of \`_\` (distkv: from the set_value reply; tmpfs: from the end of the write)" inotify "p50 from sending set_value: ${R[inotifyreq.fuse]} µs"
