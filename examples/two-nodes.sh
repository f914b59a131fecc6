#!/bin/sh
# two-nodes.sh - a two-node network on one machine, from nothing.
#
#   two-nodes.sh [DISTKV]     (default: build/tools/distkv)
#
# Starts node "one" (a new network, root value "Testing") and node "two",
# each with its own private Serf agent, stores a value on one, reads it
# on two, and stops both.  On two machines you would run the same two
# server commands without the port settings, with --join pointing at the
# first machine's gossip address.  Ports: BASE (default 28000) and up.
set -eu
distkv=${1:-build/tools/distkv}
base=${BASE:-28000}
dir=$(mktemp -d)
one= two=
trap 'kill $one $two 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT

node() { # name, number, extra args...
	n=$1; i=$2; shift 2
	"$distkv" -C server.bind_default.port=$((base + i)) \
		-C server.serf.port=$((base + 10 + i)) \
		-C server.serf.bind=127.0.0.1:$((base + 20 + i)) \
		-C server.root=two-nodes-example \
		server "$@" "$n" > "$dir/$n.log" 2>&1 &
}
client() { # number, args...
	i=$1; shift
	timeout 10 "$distkv" client -p $((base + i)) "$@"
}
wait_for() { # number, pid: until the node answers (30 s at most)
	for _ in $(seq 300); do
		kill -0 "$2" 2>/dev/null || { echo "node $1 exited:" >&2; cat "$dir"/*.log >&2; exit 1; }
		timeout 5 "$distkv" client -p $((base + $1)) data get >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "node $1 does not answer:" >&2
	cat "$dir"/*.log >&2
	exit 1
}

node one 1 -i Testing
one=$!
wait_for 1 $one
node two 2 --join 127.0.0.1:$((base + 21))
two=$!
wait_for 2 $two

client 1 data set -v "hello from one" greeting
sleep 0.2
echo "root value on two: $(client 2 data get)"
echo "greeting on two:   $(client 2 data get greeting)"
client 2 internal state --cluster | sed -n '/peers:/,/conflicts/p'
