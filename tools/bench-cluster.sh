#!/usr/bin/env bash
# bench-cluster.sh - the replication benchmark: three Serf agents and three
# distkv servers on loopback, and how fast changes made on one node reach
# the others.
#
# usage: tools/bench-cluster.sh [BUILD_DIR]     (default: build)
#
# Starts three `serf agent`s (profile lan, joined together) and three
# servers "one" (with -i Testing), "two" and "three", each talking to its
# own agent, on free ports; waits until all are ready and see each other
# live; then tools/bench-cluster.py measures, writing on "one":
#
#   * replication lag: LAG_N (500) sets at LAG_RATE (100)/s, each timed
#     from its send to the watch event on two and on three (p50/p99/max);
#   * sustained rate: pipelined sets at each of RATES (5000,10000,20000,
#     40000,80000,160000)/s for RATE_SECONDS (5) s each, sampling every
#     0.1 s how far two and three lag behind; after the writer stops, how
#     long until two and three hold one's last tick with none of one's
#     ticks missing (get_state); the highest rate complete everywhere
#     within CATCHUP_OK (5) s is reported;
#   * bulk: BULK_N (100000) sets as fast as dkv-bench sends them (10
#     connections, pipeline 16); time until two and three have them all.
#
# Prints a markdown table.  Every process it starts is killed on exit (the
# logs are kept in a temporary directory that is removed too; set KEEP=1
# to keep it and print its name).  Takes about two minutes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
distkv=$build/tools/distkv
bench=$build/tools/dkv-bench
PY=/usr/bin/python3
LAG_N=${LAG_N:-500}
LAG_RATE=${LAG_RATE:-100}
RATES=${RATES:-5000,10000,20000,40000,80000,160000}
RATE_SECONDS=${RATE_SECONDS:-5}
CATCHUP_OK=${CATCHUP_OK:-5}
BULK_N=${BULK_N:-100000}

for x in "$distkv" "$bench"; do
	[ -x "$x" ] || { echo "bench-cluster: $x not built (run ninja -C $build)" >&2; exit 1; }
done
command -v serf >/dev/null || { echo "bench-cluster: serf not installed" >&2; exit 1; }
$PY -c 'import msgpack' 2>/dev/null || { echo "bench-cluster: $PY lacks msgpack" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	# servers first (they are the last in the list), then the agents
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[$i]}" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "${KEEP:-}" ]; then
		echo "bench-cluster: logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # free for TCP and UDP (Serf gossips over both)
	$PY -c '
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p); break'
}

names=(one two three)
declare -A gossip rpc port
netroot=bench-$$

for n in "${names[@]}"; do
	gossip[$n]=$(free_port)
	rpc[$n]=$(free_port)
	port[$n]=$(free_port)
	serf agent -node "$n" -bind 127.0.0.1:"${gossip[$n]}" -rpc-addr 127.0.0.1:"${rpc[$n]}" \
		-profile lan -log-level warn >"$tmp/serf-$n.log" 2>&1 &
	pids+=($!)
done
for n in "${names[@]}"; do
	for _ in $(seq 100); do
		serf members -rpc-addr=127.0.0.1:"${rpc[$n]}" >/dev/null 2>&1 && break
		sleep 0.1
	done
	serf members -rpc-addr=127.0.0.1:"${rpc[$n]}" >/dev/null || {
		echo "bench-cluster: serf agent $n did not start:" >&2
		cat "$tmp/serf-$n.log" >&2
		exit 1
	}
done
for n in two three; do
	serf join -rpc-addr=127.0.0.1:"${rpc[$n]}" 127.0.0.1:"${gossip[one]}" >/dev/null
done

# start_server NAME [-i VALUE]
start_server() {
	local n=$1
	shift
	"$distkv" -C server.bind_default.host=127.0.0.1 -C server.bind_default.port="${port[$n]}" \
		-C server.cluster=true -C server.serf.spawn=false -C server.serf.host=127.0.0.1 \
		-C server.serf.port="${rpc[$n]}" -C server.root="$netroot" \
		server "$@" "$n" >"$tmp/$n.log" 2>&1 &
	pids+=($!)
	local pid=$!
	for _ in $(seq 100); do
		$PY -c "import socket; socket.create_connection(('127.0.0.1', ${port[$n]}), 0.2)" \
			2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench-cluster: server $n did not start:" >&2
	cat "$tmp/$n.log" >&2
	exit 1
}

specs=()
start_server one -i Testing
specs+=("one=127.0.0.1:${port[one]}")
$PY "$root/tools/bench-cluster.py" wait-ready --timeout 60 "${specs[@]}"
for n in two three; do
	start_server "$n"
	specs+=("$n=127.0.0.1:${port[$n]}")
	$PY "$root/tools/bench-cluster.py" wait-ready "${specs[@]}" || {
		for m in "${names[@]}"; do
			echo "---- $m.log" >&2
			tail -20 "$tmp/$m.log" >&2 || true
		done
		exit 1
	}
done

echo
echo "Cluster replication, 3 nodes and 3 Serf agents (lan) on loopback ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r))"
echo
$PY "$root/tools/bench-cluster.py" run --bench "$bench" --lag-n "$LAG_N" --lag-rate "$LAG_RATE" \
	--rates "$RATES" --rate-seconds "$RATE_SECONDS" --catchup-ok "$CATCHUP_OK" \
	--bulk-n "$BULK_N" "${specs[@]}"

for n in "${names[@]}"; do
	if grep -q "ERROR: AddressSanitizer\|runtime error: " "$tmp/$n.log"; then
		echo "bench-cluster: sanitizer report in the log of $n" >&2
		cat "$tmp/$n.log" >&2
	fi
done

# The same workloads on a 3-member etcd cluster, side by side (when etcd
# is installed: Debian package etcd-server; ETCD=0 skips it).
if [ "${ETCD:-1}" != 0 ] && command -v etcd >/dev/null; then
	echo
	echo "For comparison, in the same run:"
	echo
	LAG_N=$LAG_N LAG_RATE=$LAG_RATE $PY "$root/tools/bench-etcd.py" || true
fi
