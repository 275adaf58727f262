#!/bin/sh
# run.sh - `make bench`: throughput, call latency, idle RSS and start-up figures of beamlet next to
# BEAM's, measured in one run on loopback (test/bench/bl_bench.erl drives; never pass/fail).
#
# Needs (built by the Makefile): priv/beamlet, build/release/bench_node (test/bench/bench_node.c),
# build/release/bench_epmd_wait (test/bench/epmd_wait.c).
# Env (defaults in brackets): BL_BENCH_MSGS [1000000], BL_BENCH_CALLS [20000], BL_BENCH_REPS [5],
# BL_BENCH_STARTS [5], BL_BENCH_ONLY [all], BL_BENCH_LOG_DIR [build/bench-logs], BL_BENCH_TIMEOUT [600] seconds.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2

: "${BEAMLET_BIN:=$ROOT/priv/beamlet}"
: "${BENCH_NODE_BIN:=$ROOT/build/release/bench_node}"
: "${EPMD_WAIT_BIN:=$ROOT/build/release/bench_epmd_wait}"
: "${BL_BENCH_LOG_DIR:=$ROOT/build/bench-logs}"
: "${BL_BENCH_TIMEOUT:=600}"
BL_BENCH_EBIN="$ROOT/build/bench_ebin"
BL_BENCH_PIDFILE="$BL_BENCH_LOG_DIR/pids.$$"
COOKIE="blbench_$$_$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
BEAMLET_LISTEN_ADDRESS=127.0.0.1
export BEAMLET_BIN BENCH_NODE_BIN EPMD_WAIT_BIN BL_BENCH_LOG_DIR BL_BENCH_EBIN BL_BENCH_PIDFILE
export BEAMLET_LISTEN_ADDRESS

for b in "$BEAMLET_BIN" "$BENCH_NODE_BIN" "$EPMD_WAIT_BIN"; do
    if [ ! -x "$b" ]; then
        echo "run.sh: $b is missing (build it first: make bench)" >&2
        exit 1
    fi
done

mkdir -p "$BL_BENCH_EBIN" "$BL_BENCH_LOG_DIR" || exit 2
erlc -Wall -o "$BL_BENCH_EBIN" test/bench/bl_bench.erl || exit 1

if ! epmd -names >/dev/null 2>&1; then
    echo "run.sh: starting epmd"
    epmd -daemon -address 127.0.0.1 || exit 1
fi

# The C nodes die with their parent (PR_SET_PDEATHSIG) and peers with the driver; this is the
# backstop for anything the driver recorded and did not stop.
cleanup() {
    if [ -f "$BL_BENCH_PIDFILE" ]; then
        while read -r pid; do
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
                *"$BENCH_NODE_BIN"*) kill -9 "$pid" 2>/dev/null ;;
                esac
            fi
        done <"$BL_BENCH_PIDFILE"
        rm -f "$BL_BENCH_PIDFILE"
    fi
}
DRIVER=
trap cleanup EXIT
trap '[ -n "$DRIVER" ] && kill -TERM "$DRIVER" 2>/dev/null; exit 130' INT TERM

# A hard bound on the whole run; the driver (node A) halts, its peers follow it.
timeout -k 10 "$BL_BENCH_TIMEOUT" erl -sname "bl_bench_a_$$" -setcookie "$COOKIE" -noshell \
    -kernel inet_dist_use_interface '{127,0,0,1}' -pa "$BL_BENCH_EBIN" -eval 'bl_bench:main()' &
DRIVER=$!
wait "$DRIVER"
rc=$?
echo "run.sh: C node logs in $BL_BENCH_LOG_DIR"
exit "$rc"
