#!/usr/bin/env bash
# bench-protocol.sh - the client-protocol benchmark: our server beside
# redis-server on the same loopback workloads, plus server memory per entry.
#
# usage: tools/bench-protocol.sh [BUILD_DIR]     (default: build)
#
# Starts a distkv node and a redis-server on free ports, runs dkv-bench and
# redis-benchmark with the same connections, pipeline depth, value size (8
# bytes) and keyspace (100,000 random keys), REPEAT times each (default 3,
# interleaved so background load hits both alike), and prints the medians
# as a markdown table.  Then starts a fresh node, stores 1,000,000 entries
# and reports its RSS growth per entry.  Every process it starts is killed
# on exit.  Takes about two minutes.
#
# Environment: REPEAT (3), N_CONN (100000 requests for the 50-connection
# runs), N_PIPE (1000000 for pipeline 16), N_SEQ (20000 for one connection),
# N_MEM (1000000 entries for the memory figure).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
distkv=$build/tools/distkv
bench=$build/tools/dkv-bench
REPEAT=${REPEAT:-3}
N_CONN=${N_CONN:-100000}
N_PIPE=${N_PIPE:-1000000}
N_SEQ=${N_SEQ:-20000}
N_MEM=${N_MEM:-1000000}
KEYS=100000
PY=/usr/bin/python3
hz=$(getconf CLK_TCK)

for x in "$distkv" "$bench"; do
	[ -x "$x" ] || { echo "bench-protocol: $x not built (run ninja -C $build)" >&2; exit 1; }
done
for x in redis-server redis-benchmark; do
	command -v $x >/dev/null || { echo "bench-protocol: $x not installed" >&2; exit 1; }
done

tmp=$(mktemp -d)
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

# start_distkv NAME: sets dkv_pid and dkv_port once the node serves
start_distkv() {
	dkv_port=$(free_port)
	"$distkv" -C server.bind_default.host=127.0.0.1 -C server.bind_default.port="$dkv_port" \
		server -i Testing "$1" 2>"$tmp/$1.log" &
	dkv_pid=$!
	pids+=("$dkv_pid")
	for _ in $(seq 100); do
		grep -q "serving on" "$tmp/$1.log" && return 0
		kill -0 "$dkv_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench-protocol: distkv did not start:" >&2
	cat "$tmp/$1.log" >&2
	exit 1
}

start_redis() {
	redis_port=$(free_port)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --logfile "$tmp/redis.log" &
	redis_pid=$!
	pids+=("$redis_pid")
	for _ in $(seq 100); do
		redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "bench-protocol: redis-server did not start" >&2
	exit 1
}

# CPU time a process has used so far, in clock ticks
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# ours TEST CONNS PIPELINE N: prints "ops p50_us server_cpu_us_per_request"
ours() {
	local line t0 t1
	t0=$(cpu_ticks "$dkv_pid")
	line=$("$bench" -p "$dkv_port" -q -t "$1" -c "$2" -P "$3" -n "$4" -k $KEYS) || exit 1
	t1=$(cpu_ticks "$dkv_pid")
	echo "$line" | awk -F, -v t=$((t1 - t0)) -v hz="$hz" -v n="$4" '/^bench,/ {
		print $7, $8, t / hz * 1e6 / n
		if ($11 != 0) print "errors: " $11 > "/dev/stderr"
	}'
}

# theirs TEST CONNS PIPELINE N: prints "ops p50_us server_cpu_us_per_request"
theirs() {
	local out t0 t1
	t0=$(cpu_ticks "$redis_pid")
	out=$(redis-benchmark -p "$redis_port" -c "$2" -P "$3" -n "$4" -t "$1" -d 8 -r $KEYS --csv)
	t1=$(cpu_ticks "$redis_pid")
	echo "$out" | awk -F, -v t=$((t1 - t0)) -v hz="$hz" -v n="$4" 'NR > 1 {
		gsub(/"/, ""); printf "%.0f %.1f %s\n", $2, $5 * 1000, t / hz * 1e6 / n
	}'
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

start_distkv bench-a
start_redis

# Fill both keyspaces so every get finds its key.
"$bench" -p "$dkv_port" -q -c 50 -P 16 -n 0 --prefill -k $KEYS >/dev/null
redis-benchmark -p "$redis_port" -c 50 -P 16 -n 1000000 -t set -d 8 -r $KEYS -q >/dev/null 2>&1

cases=(
	"set 50 1 $N_CONN"
	"get 50 1 $N_CONN"
	"set 50 16 $N_PIPE"
	"get 50 16 $N_PIPE"
	"set 1 1 $N_SEQ"
	"get 1 1 $N_SEQ"
)
for rep in $(seq "$REPEAT"); do
	for i in "${!cases[@]}"; do
		set -- ${cases[$i]}
		echo "run $rep/$REPEAT: $1, $2 connection(s), pipeline $3, $4 requests" >&2
		ours "$@" >>"$tmp/ours.$i"
		theirs "$@" >>"$tmp/theirs.$i"
	done
done

goal() { # CASE-INDEX OURS_OPS THEIR_OPS OURS_P50
	case $1 in
	0 | 1) awk -v a="$2" -v b="$3" 'BEGIN { r = a / b; printf "%s: %.0f%% of redis (goal >= 70%%)", (r >= 0.7 ? "met" : "NOT met"), r * 100 }' ;;
	2) awk -v a="$2" 'BEGIN { printf "%s (goal >= 300,000/s)", (a >= 300000 ? "met" : "NOT met") }' ;;
	3) awk -v a="$2" 'BEGIN { printf "%s (goal >= 400,000/s)", (a >= 400000 ? "met" : "NOT met") }' ;;
	4 | 5) awk -v a="$4" 'BEGIN { printf "%s (goal p50 <= 50 us)", (a <= 50 ? "met" : "NOT met") }' ;;
	esac
}

echo
echo "Client protocol, loopback, median of $REPEAT runs ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r))"
echo
echo "| workload | distkv ops/s | redis ops/s | distkv p50 µs | redis p50 µs | distkv server CPU µs/req | redis server CPU µs/req | goal |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
col() { # FILE COLUMN: the median of that column
	awk -v c="$2" '{ print $c }' "$1" | median
}
for i in "${!cases[@]}"; do
	set -- ${cases[$i]}
	o_ops=$(col "$tmp/ours.$i" 1)
	t_ops=$(col "$tmp/theirs.$i" 1)
	o_p50=$(col "$tmp/ours.$i" 2)
	if [ "$2" = 1 ]; then what="$1, 1 connection (sequential)"; else what="$1, $2 connections, pipeline $3"; fi
	printf "| %s | %.0f | %.0f | %s | %s | %.1f | %.1f | %s |\n" "$what" "$o_ops" "$t_ops" \
		"$o_p50" "$(col "$tmp/theirs.$i" 2)" "$(col "$tmp/ours.$i" 3)" "$(col "$tmp/theirs.$i" 3)" \
		"$(goal "$i" "$o_ops" "$t_ops" "$o_p50")"
done

# Memory: a fresh node, so nothing but the benchmark's entries is stored.
kill "$dkv_pid"
wait "$dkv_pid" 2>/dev/null || true
start_distkv bench-mem
echo "storing $N_MEM entries" >&2
mem=$("$bench" -p "$dkv_port" -q -c 50 -P 16 -n 0 --prefill -k "$N_MEM" --rss-pid "$dkv_pid") || exit 1
echo "$mem" | awk -F, -v n="$N_MEM" '/^rss,/ {
	# what the entries must hold at least: the last path element as stored
	# (a fixstr of 1-3 digits, 3.89 bytes on average for 0..999) and the
	# value (a 9-byte msgpack string)
	kv = 3.89 + 9
	printf "\nServer RSS: %d KiB before, %d KiB after storing %d entries (3-element paths, 8-byte values):\n", $2, $3, n
	printf "%.1f bytes per entry; %.1f beyond key and value bytes (%.1f): %s (goal <= 150)\n",
		$5, $5 - kv, kv, ($5 - kv <= 150 ? "met" : "NOT met")
}'
