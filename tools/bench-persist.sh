#!/usr/bin/env bash
# bench-persist.sh - the persistence benchmark: set throughput with a change
# log in each durability mode against no log, on the same machine in the same
# run, then load time and file size for a state of 1,000,000 entries.
#
# usage: tools/bench-persist.sh [BUILD_DIR]     (default: build)
#
# For each mode (no log, none, batch, always) a fresh node is started (and
# `log dest --sync MODE` pointed at a file in a temporary directory on the
# same file system as /tmp), then dkv-bench runs two set workloads:
# 50 connections with 16 requests in flight each (throughput), and 64
# connections with one request each (64 concurrent writers, each waiting for
# its reply: what group commit is for).  REPEAT rounds (default 3), modes
# interleaved within a round, medians reported.  Then a fresh node stores
# N_LOAD entries, `log save`s them, and a new node loads the file with -l;
# the load time is the server's own figure ("loaded ... in X s").  Every
# process it starts is killed on exit.  Takes about two minutes.
#
# Environment: REPEAT (3), N_PIPE (1000000 requests, pipelined runs),
# N_CONC (200000, 64-writer runs), N_LOAD (1000000 entries), DIR (where the
# log files go; default a temporary directory under /tmp).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
distkv=$build/tools/distkv
bench=$build/tools/dkv-bench
REPEAT=${REPEAT:-3}
N_PIPE=${N_PIPE:-1000000}
N_CONC=${N_CONC:-200000}
N_LOAD=${N_LOAD:-1000000}
KEYS=100000
PY=/usr/bin/python3

for x in "$distkv" "$bench"; do
	[ -x "$x" ] || { echo "bench-persist: $x not built (run ninja -C $build)" >&2; exit 1; }
done

tmp=$(mktemp -d)
logdir=${DIR:-$tmp}
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_node NAME [SERVER ARGS...]: sets dkv_pid and dkv_port once it serves
start_node() {
	local name=$1
	shift
	dkv_port=$(free_port)
	"$distkv" -C server.bind_default.host=127.0.0.1 -C server.bind_default.port="$dkv_port" \
		server "$@" "$name" 2>"$tmp/$name.log" &
	dkv_pid=$!
	pids+=("$dkv_pid")
	for _ in $(seq 600); do
		grep -q "serving on" "$tmp/$name.log" && return 0
		kill -0 "$dkv_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench-persist: distkv did not start:" >&2
	cat "$tmp/$name.log" >&2
	exit 1
}

stop_node() {
	kill "$dkv_pid"
	wait "$dkv_pid" 2>/dev/null || true
}

client() {
	"$distkv" -C connect.host=127.0.0.1 -C connect.port="$dkv_port" client "$@"
}

# run CONNS PIPELINE N: prints "ops p50_us p99_us"
run() {
	"$bench" -p "$dkv_port" -q -t set -c "$1" -P "$2" -n "$3" -k $KEYS |
		awk -F, '/^bench,/ { print $7, $8, $9; if ($11 != 0) print "errors: " $11 > "/dev/stderr" }'
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

modes=(nolog none batch always)
for rep in $(seq "$REPEAT"); do
	for m in "${modes[@]}"; do
		echo "run $rep/$REPEAT: $m" >&2
		start_node "bench-$m" -i Testing
		if [ "$m" != nolog ]; then
			rm -f "$logdir/bench-$m.log"
			client log dest --sync "$m" "$logdir/bench-$m.log"
		fi
		run 50 16 "$N_PIPE" >>"$tmp/pipe.$m"
		run 64 1 "$N_CONC" >>"$tmp/conc.$m"
		stop_node
		rm -f "$logdir/bench-$m.log"
	done
done

col() { # FILE COLUMN: the median of that column
	awk -v c="$2" '{ print $c }' "$1" | median
}

echo
echo "Set throughput with a change log, loopback, median of $REPEAT runs ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), log on $(df --output=fstype "$logdir" | tail -1))"
echo
echo "| log | 50 conns × 16 in flight: sets/s | vs no log | p99 µs | 64 writers × 1: sets/s | vs no log | p50 µs | p99 µs |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
base_p=$(col "$tmp/pipe.nolog" 1)
base_c=$(col "$tmp/conc.nolog" 1)
for m in "${modes[@]}"; do
	p=$(col "$tmp/pipe.$m" 1)
	c=$(col "$tmp/conc.$m" 1)
	printf "| %s | %.0f | %.0f%% | %s | %.0f | %.0f%% | %s | %s |\n" "$m" "$p" \
		"$(awk -v a="$p" -v b="$base_p" 'BEGIN { print a / b * 100 }')" "$(col "$tmp/pipe.$m" 3)" \
		"$c" "$(awk -v a="$c" -v b="$base_c" 'BEGIN { print a / b * 100 }')" \
		"$(col "$tmp/conc.$m" 2)" "$(col "$tmp/conc.$m" 3)"
done
echo
awk -v a="$(col "$tmp/pipe.batch" 1)" -v b="$base_p" -v c="$(col "$tmp/conc.batch" 1)" -v d="$base_c" 'BEGIN {
	r = a / b; s = c / d
	printf "batch keeps %.0f%% (pipelined) and %.0f%% (64 writers) of the no-log throughput: %s (goal >= 80%%)\n",
		r * 100, s * 100, (r >= 0.8 && s >= 0.8 ? "met" : "NOT met")
}'
awk -v a="$(col "$tmp/conc.always" 1)" 'BEGIN {
	printf "always with 64 concurrent writers: %.0f acknowledged sets/s: %s (goal >= 20,000/s)\n",
		a, (a >= 20000 ? "met" : "NOT met")
}'

# Loading: a fresh node stores N_LOAD entries and saves them.
start_node bench-save -i Testing
echo "storing $N_LOAD entries" >&2
"$bench" -p "$dkv_port" -q -c 50 -P 16 -n 0 --prefill -k "$N_LOAD" >/dev/null
state=$logdir/bench-load.state
client log save "$state"
stop_node
size=$(stat -c %s "$state")
sync
start_node bench-save -l "$state"
line=$(grep "loaded " "$tmp/bench-save.log")
stop_node
rm -f "$state"
echo "$line" | awk -v n="$N_LOAD" -v size="$size" '{
	for (i = 1; i <= NF; i++) if ($i == "in") secs = $(i + 1)
	printf "\nLoading a state of %d entries (3-element paths, 8-byte values): %.2f s, %.0f entries/s: %s (goal <= 3 s)\n",
		n, secs, n / secs, (secs <= 3 ? "met" : "NOT met")
	printf "File size: %d bytes, %.1f bytes per entry\n", size, size / n
}'
