#!/usr/bin/env bash
# bench-protocol.sh - the client-protocol benchmark: our server beside
# redis-server on the same loopback workloads, plus server memory per entry.
#
# usage: tools/bench-protocol.sh [BUILD_DIR]          (default: build)
#        tools/bench-protocol.sh --auth [BUILD_DIR]   only the auth figures
#        tools/bench-protocol.sh --types [BUILD_DIR]  only the type-check figures
#        tools/bench-protocol.sh --codecs [BUILD_DIR] only the codec figures
#        tools/bench-protocol.sh --compare BASE_BUILD_DIR [BUILD_DIR]
#                                             two builds side by side
#
# --compare: two standalone nodes, one run by BASE_BUILD_DIR's distkv
# (say, a build of the commit before a change) and one by BUILD_DIR's;
# the same sets and gets (8-byte string values, and sets of 1000-byte
# ones) run on both with BUILD_DIR's dkv-bench, interleaved, REPEAT times
# (medians).  For changes to the request path.
#
# --auth: two nodes side by side, one without auth and one where every
# client logs in (_test) as a user bound by a 20-entry ACL; the same
# set/get runs on both, interleaved, REPEAT times (medians).  Then login
# latency: rounds of 50 concurrent logins (_test, then password) while one
# client does sequential sets, whose p99 is the figure that must stay low.
#
# --codecs: one standalone node whose converter "floatval" runs every
# value below "bench" through the codec floatstr (encode: str(value));
# gets as joe (bound to floatval: every value is encoded by a Python call)
# and as root (values as stored), interleaved, REPEAT times (medians);
# and joe's gets on a second such node with server.python.inline.
#
# --types: four standalone nodes side by side: one without types, one
# with a type and 12 decoy matches that the benchmark's keys ("bench",
# "kN", "M") walk past but never meet (unmatched), and one where "bench +
# +" also binds the type, a one-line script (matched), and a fourth like
# the third but with server.python.inline (the script runs on the loop,
# not the Python thread).  The same sets run on all four, interleaved,
# REPEAT times (medians).
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
auth_only=false
types_only=false
codecs_only=false
compare_base=
if [ "${1:-}" = --compare ]; then
	[ -n "${2:-}" ] || { echo "bench-protocol: --compare needs BASE_BUILD_DIR" >&2; exit 2; }
	compare_base=$2
	shift 2
elif [ "${1:-}" = --auth ]; then
	auth_only=true
	shift
elif [ "${1:-}" = --types ]; then
	types_only=true
	shift
elif [ "${1:-}" = --codecs ]; then
	codecs_only=true
	shift
fi
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
if [ -n "$compare_base" ]; then
	case $compare_base in /*) ;; *) compare_base=$root/$compare_base ;; esac
	[ -x "$compare_base/tools/distkv" ] ||
		{ echo "bench-protocol: $compare_base/tools/distkv not built" >&2; exit 1; }
fi
[ -n "$compare_base" ] || $auth_only || $types_only || $codecs_only || for x in redis-server redis-benchmark; do
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

# start_distkv NAME [OPTION...]: sets dkv_pid and dkv_port once the node
# serves; the options go before "server" (-C key=value)
start_distkv() {
	dkv_port=$(free_port)
	"$distkv" -C server.bind_default.host=127.0.0.1 -C server.bind_default.port="$dkv_port" \
		"${@:2}" server -i Testing "$1" 2>"$tmp/$1.log" &
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

# dkvreq PORT ACTION KEY=PYTHON-LITERAL...: one raw request, as root
dkvreq() {
	$PY - "$@" <<'PYEOF'
import socket, sys, ast, msgpack, ctypes, ctypes.util
port, action = int(sys.argv[1]), sys.argv[2]
kw = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
s = socket.create_connection(("127.0.0.1", port))
u = msgpack.Unpacker(raw=False)
def recv():
    while True:
        for m in u:
            return m
        u.feed(s.recv(65536))
recv()
if "password" in kw:   # seal it to the connection's key
    lib = ctypes.CDLL(ctypes.util.find_library("sodium"))
    lib.sodium_init()
    s.sendall(msgpack.packb({"action": "auth_key", "seq": 1}))
    key = recv()["pubkey"]
    pw = kw.pop("password").encode()  # a literal, like the other fields
    out = ctypes.create_string_buffer(len(pw) + 48)
    lib.crypto_box_seal(out, pw, ctypes.c_ulonglong(len(pw)), key)
    kw["data"] = {"password": out.raw}
kw.update(action=action, seq=2)
s.sendall(msgpack.packb(kw, use_bin_type=True))
m = recv()
if "error" in m:
    sys.exit("bench-protocol: %s: %s" % (action, m["error"]))
PYEOF
}

if [ -n "$compare_base" ]; then
	this=$distkv
	distkv=$compare_base/tools/distkv
	start_distkv bench-base -C server.cluster=false
	base_port=$dkv_port
	distkv=$this
	start_distkv bench-this -C server.cluster=false
	this_port=$dkv_port
	for p in "$base_port" "$this_port"; do
		"$bench" -p "$p" -q -c 50 -P 16 -n 0 --prefill -k $KEYS >/dev/null
	done
	ccases=("set 50 1 $N_CONN 8" "get 50 1 $N_CONN 8" "set 50 16 $N_PIPE 8" "get 50 16 $N_PIPE 8"
		"set 50 16 $N_PIPE 1000")
	crun() { # PORT TEST CONNS PIPELINE N SIZE: "ops p50"
		"$bench" -p "$1" -q -t "$2" -c "$3" -P "$4" -n "$5" -d "$6" -k $KEYS |
			awk -F, '/^bench,/ { print $7, $8; if ($11 != 0) print "errors: " $11 > "/dev/stderr" }'
	}
	for rep in $(seq "$REPEAT"); do
		for i in "${!ccases[@]}"; do
			set -- ${ccases[$i]}
			echo "run $rep/$REPEAT: $1, $2 connections, pipeline $3, $5-byte values" >&2
			crun "$base_port" "$@" >>"$tmp/base.$i"
			crun "$this_port" "$@" >>"$tmp/this.$i"
		done
	done
	echo
	echo "this: $build, base: $compare_base; loopback, median of $REPEAT runs ($(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg))"
	echo
	echo "| workload | base ops/s | this ops/s | ratio | base p50 µs | this p50 µs |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
	for i in "${!ccases[@]}"; do
		set -- ${ccases[$i]}
		b=$(awk '{ print $1 }' "$tmp/base.$i" | median)
		t=$(awk '{ print $1 }' "$tmp/this.$i" | median)
		awk -v w="$1, $2 connections, pipeline $3, $5-byte values" -v b="$b" -v t="$t" \
			-v bp="$(awk '{ print $2 }' "$tmp/base.$i" | median)" \
			-v tp="$(awk '{ print $2 }' "$tmp/this.$i" | median)" 'BEGIN {
			printf "| %s | %.0f | %.0f | %.1f%% | %s | %s |\n", w, b, t, t / b * 100, bp, tp
		}'
	done
	exit 0
fi

if $auth_only; then
	# standalone nodes: two nodes with Serf on this host would find each
	# other's agent and replicate (auth settings included) between them
	start_distkv bench-open -C server.cluster=false
	open_port=$dkv_port
	start_distkv bench-auth -C server.cluster=false
	auth_port=$dkv_port
	# joe is bound by "bench": entries that the keys ("bench", "kN", "M")
	# meet on the way (wildcards at every level, near misses) and the two
	# that allow them
	acl=(
		"bench #=rwcdxe" "bench=xen" "other #=r" "+ secret=r" "+ + hidden=" "bench q1 +=r"
		"bench q2 +=rw" "bench q3 # deep=x" "logs #=c" "logs=x" "a b c=r" "a + c=w"
		"a # z=r" "tmp +=rwc" "tmp # old=d" "+ cfg=r" "+ cfg #=r" "pub #=rxe" "pub=xe" "x y=r"
	)
	for a in "${acl[@]}"; do
		path=${a%%=*}
		words=$(printf "'%s'," $path)
		dkvreq "$auth_port" set_internal "path=('acl','bench',${words%,})" "value='${a#*=}'"
	done
	dkvreq "$auth_port" auth_set typ="'_test'" ident="'joe'" "aux={'acl':'bench'}"
	dkvreq "$auth_port" auth_set typ="'_test'" ident="'root'"
	dkvreq "$auth_port" set_auth_typ typ="'_test'"
	login=(--auth "_test name=joe")
	"$bench" -p "$open_port" -q -c 50 -P 16 -n 0 --prefill -k $KEYS >/dev/null
	"$bench" -p "$auth_port" -q -c 50 -P 16 -n 0 --prefill -k $KEYS "${login[@]}" >/dev/null
	acases=("set 50 1 $N_CONN" "get 50 1 $N_CONN" "set 50 16 $N_PIPE" "get 50 16 $N_PIPE")
	run() { # PORT TEST CONNS PIPELINE N [login args]: "ops p50"
		local port=$1
		shift
		"$bench" -p "$port" -q -t "$1" -c "$2" -P "$3" -n "$4" -k $KEYS "${@:5}" |
			awk -F, '/^bench,/ { print $7, $8; if ($11 != 0) print "errors: " $11 > "/dev/stderr" }'
	}
	for rep in $(seq "$REPEAT"); do
		for i in "${!acases[@]}"; do
			set -- ${acases[$i]}
			echo "run $rep/$REPEAT: $1, $2 connection(s), pipeline $3" >&2
			run "$open_port" "$@" >>"$tmp/open.$i"
			run "$auth_port" "$@" "${login[@]}" >>"$tmp/auth.$i"
		done
	done
	echo
	echo "Auth on (a user bound by a 20-entry ACL) beside auth off, loopback, median of $REPEAT runs ($(nproc) CPUs)"
	echo
	echo "| workload | auth off ops/s | auth on ops/s | ratio | auth off p50 µs | auth on p50 µs | goal |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
	for i in "${!acases[@]}"; do
		set -- ${acases[$i]}
		o=$(awk '{ print $1 }' "$tmp/open.$i" | median)
		a=$(awk '{ print $1 }' "$tmp/auth.$i" | median)
		awk -v w="$1, $2 connections, pipeline $3" -v o="$o" -v a="$a" \
			-v op="$(awk '{ print $2 }' "$tmp/open.$i" | median)" \
			-v ap="$(awk '{ print $2 }' "$tmp/auth.$i" | median)" 'BEGIN {
			r = a / o
			printf "| %s | %.0f | %.0f | %.0f%% | %s | %s | %s (>= 90%%) |\n", w, o, a, r * 100, op, ap,
				(r >= 0.9 ? "met" : "NOT met")
		}'
	done
	# login latency: _test on the auth node, then password on a third node
	start_distkv bench-pw -C server.cluster=false
	pw_port=$dkv_port
	dkvreq "$pw_port" auth_set typ="'password'" ident="'joe'" password="'pw'"
	dkvreq "$pw_port" auth_set typ="'password'" ident="'root'" password="'rootpw'"
	dkvreq "$pw_port" set_auth_typ typ="'password'"
	echo
	echo "Logins: rounds of 50 concurrent logins while one client does sequential sets"
	echo
	echo "| method | logins | login p50 ms | login p99 ms | set client p50 µs | set client p99 µs | goal |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
	for m in _test password; do
		if [ $m = _test ]; then port=$auth_port rounds=40 who="_test name=root"
		else port=$pw_port rounds=2 who="password name=root password=rootpw"; fi
		"$PY" "$root/tools/bench-login.py" "$port" $m $rounds >"$tmp/login.$m" &
		lp=$!
		sleep 0.2
		setline=$("$bench" -p "$port" -q -t set --sequential -n 3000 -k $KEYS --auth "$who")
		wait $lp
		read -r _ n _ refused _ p50 _ p99 _ <"$tmp/login.$m"
		echo "$setline" | awk -F, -v m=$m -v n="$n" -v p50="$p50" -v p99="$p99" '/^bench,/ {
			printf "| %s | %d | %s | %s | %s | %s | %s (set p99 < 5 ms) |\n", m, n, p50, p99, $8, $9,
				($9 < 5000 ? "met" : "NOT met")
		}'
	done
	exit 0
fi

if $codecs_only; then
	start_distkv bench-codec -C server.cluster=false
	port=$dkv_port
	start_distkv bench-codec-inline -C server.cluster=false -C server.python.inline=true
	inl_port=$dkv_port
	for p in "$port" "$inl_port"; do
		dkvreq "$p" set_internal "path=('codec','floatstr')" \
			"value={'encode':'return str(value)','decode':'return float(value)','in':[['12.5',12.5]],'out':[[13.25,'13.25']]}"
		dkvreq "$p" set_internal "path=('conv','floatval','bench','#')" "value={'codec':['floatstr']}"
		dkvreq "$p" auth_set typ="'_test'" ident="'joe'" "aux={'codec':'floatval'}"
		dkvreq "$p" auth_set typ="'_test'" ident="'root'"
		dkvreq "$p" set_auth_typ typ="'_test'"
		"$bench" -p "$p" -q -c 50 -P 16 -n 0 --prefill -k $KEYS --auth "_test name=root" >/dev/null
	done
	ccases=("get 50 1 $N_CONN" "get 50 16 $N_PIPE")
	for rep in $(seq "$REPEAT"); do
		for i in "${!ccases[@]}"; do
			set -- ${ccases[$i]}
			echo "run $rep/$REPEAT: $1, $2 connections, pipeline $3" >&2
			for who in joe root; do
				"$bench" -p "$port" -q -t "$1" -c "$2" -P "$3" -n "$4" -k $KEYS --auth "_test name=$who" |
					awk -F, '/^bench,/ { print $7, $8; if ($11 != 0) print "errors: " $11 > "/dev/stderr" }' \
					>>"$tmp/$who.$i"
			done
			"$bench" -p "$inl_port" -q -t "$1" -c "$2" -P "$3" -n "$4" -k $KEYS --auth "_test name=joe" |
				awk -F, '/^bench,/ { print $7, $8; if ($11 != 0) print "errors: " $11 > "/dev/stderr" }' \
				>>"$tmp/inline.$i"
		done
	done
	echo
	echo "Gets through a codec (joe) beside gets of the stored values (root), median of $REPEAT runs ($(nproc) CPUs)"
	echo
	echo "| workload | root ops/s | joe (codec) ops/s | ratio | joe, inline ops/s | root p50 µs | joe p50 µs | joe, inline p50 µs | goal |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for i in "${!ccases[@]}"; do
		set -- ${ccases[$i]}
		awk -v w="$1, $2 connections, pipeline $3" \
			-v r="$(awk '{ print $1 }' "$tmp/root.$i" | median)" \
			-v j="$(awk '{ print $1 }' "$tmp/joe.$i" | median)" \
			-v rp="$(awk '{ print $2 }' "$tmp/root.$i" | median)" \
			-v jp="$(awk '{ print $2 }' "$tmp/joe.$i" | median)" \
			-v l="$(awk '{ print $1 }' "$tmp/inline.$i" | median)" \
			-v lp="$(awk '{ print $2 }' "$tmp/inline.$i" | median)" 'BEGIN {
			printf "| %s | %.0f | %.0f | %.0f%% | %.0f | %s | %s | %s | %s (>= 50,000/s) |\n", w, r, j, j / r * 100, l, rp, jp, lp,
				(j >= 50000 ? "met" : "NOT met")
		}'
	done
	exit 0
fi

if $types_only; then
	start_distkv bench-none -C server.cluster=false
	none_port=$dkv_port
	start_distkv bench-unmatched -C server.cluster=false
	unm_port=$dkv_port
	start_distkv bench-matched -C server.cluster=false
	mat_port=$dkv_port
	start_distkv bench-inline -C server.cluster=false -C server.python.inline=true
	inl_port=$dkv_port
	# decoys: patterns the keys meet on the way (wildcards at every level,
	# near misses), none of which matches ("bench", "kN", "M")
	decoys=(
		"stats # quota" "+ secret" "+ + hidden" "bench q1 +" "bench # deep" "bench + nope"
		"bench k1 x" "+ k1 y" "logs #" "a + c" "a # z" "+ cfg #"
	)
	for port in "$unm_port" "$mat_port" "$inl_port"; do
		dkvreq "$port" set_internal "path=('type','str')" \
			"value={'code': 'if not isinstance(value, str): raise TypeError(\"not a string\")', 'good': ['a', ''], 'bad': [1, None]}"
		for d in "${decoys[@]}"; do
			words=$(printf "'%s'," $d)
			dkvreq "$port" set_internal "path=('match',${words%,})" "value={'type': ['str']}"
		done
	done
	for port in "$mat_port" "$inl_port"; do
		dkvreq "$port" set_internal "path=('match','bench','+','+')" "value={'type': ['str']}"
	done
	for port in "$none_port" "$unm_port" "$mat_port" "$inl_port"; do
		"$bench" -p "$port" -q -c 50 -P 16 -n 0 --prefill -k $KEYS >/dev/null
	done
	tcases=("set 50 1 $N_CONN" "set 50 16 $N_PIPE")
	trun() { # PORT TEST CONNS PIPELINE N: "ops p50"
		"$bench" -p "$1" -q -t "$2" -c "$3" -P "$4" -n "$5" -k $KEYS |
			awk -F, '/^bench,/ { print $7, $8; if ($11 != 0) print "errors: " $11 > "/dev/stderr" }'
	}
	for rep in $(seq "$REPEAT"); do
		for i in "${!tcases[@]}"; do
			set -- ${tcases[$i]}
			echo "run $rep/$REPEAT: $1, $2 connections, pipeline $3" >&2
			trun "$none_port" "$@" >>"$tmp/none.$i"
			trun "$unm_port" "$@" >>"$tmp/unm.$i"
			trun "$mat_port" "$@" >>"$tmp/mat.$i"
			trun "$inl_port" "$@" >>"$tmp/inl.$i"
		done
	done
	echo
	echo "Type checks beside none, loopback, median of $REPEAT runs ($(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg))"
	echo
	echo "| workload | no types ops/s | unmatched ops/s | ratio | matched ops/s | matched, inline ops/s | no types p50 µs | unmatched p50 µs | matched p50 µs | matched, inline p50 µs | goals |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for i in "${!tcases[@]}"; do
		set -- ${tcases[$i]}
		n=$(awk '{ print $1 }' "$tmp/none.$i" | median)
		u=$(awk '{ print $1 }' "$tmp/unm.$i" | median)
		m=$(awk '{ print $1 }' "$tmp/mat.$i" | median)
		l=$(awk '{ print $1 }' "$tmp/inl.$i" | median)
		awk -v w="$1, $2 connections, pipeline $3" -v n="$n" -v u="$u" -v m="$m" -v l="$l" -v pipe="$3" \
			-v lp="$(awk '{ print $2 }' "$tmp/inl.$i" | median)" \
			-v np="$(awk '{ print $2 }' "$tmp/none.$i" | median)" \
			-v up="$(awk '{ print $2 }' "$tmp/unm.$i" | median)" \
			-v mp="$(awk '{ print $2 }' "$tmp/mat.$i" | median)" 'BEGIN {
			r = u / n
			g = sprintf("unmatched %s (>= 95%%)", r >= 0.95 ? "met" : "NOT met")
			if (pipe > 1)
				g = g sprintf("; matched %s (>= 50,000/s)", m >= 50000 ? "met" : "NOT met")
			printf "| %s | %.0f | %.0f | %.0f%% | %.0f | %.0f | %s | %s | %s | %s | %s |\n", w, n, u, r * 100, m, l, np, up, mp, lp, g
		}'
	done
	exit 0
fi

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
