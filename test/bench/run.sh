#!/bin/sh
# run.sh - `make bench`: throughput, call latency, idle RSS and start-up figures of beamlet next to
# BEAM's, measured in one run on loopback (test/bench/bl_bench.erl drives; never pass/fail).
#
# Needs (built by the Makefile): priv/beamlet, build/release/bench_node (test/bench/bench_node.c),
# build/release/bench_epmd_wait (test/bench/epmd_wait.c).
# Env (defaults in brackets): BL_BENCH_MSGS [1000000], BL_BENCH_CALLS [20000], BL_BENCH_REPS [7],
# BL_BENCH_STARTS [5], BL_BENCH_ONLY [all], BL_BENCH_LOG_DIR [build/bench-logs], BL_BENCH_TIMEOUT [600] seconds,
# BL_BENCH_TLS [1: a second pass with every node on TLS distribution, then both passes' ratios
# side by side; 0: plain TCP only].
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

BL_BENCH_SUMMARY="$BL_BENCH_LOG_DIR/summary.$$"
export BL_BENCH_SUMMARY
rm -f "$BL_BENCH_SUMMARY"

# A hard bound on each pass; the driver (node A) halts, its peers follow it. $@: dist arguments.
pass() {
    timeout -k 10 "$BL_BENCH_TIMEOUT" erl -sname "bl_bench_a_$$" -setcookie "$COOKIE" -noshell \
        -kernel inet_dist_use_interface '{127,0,0,1}' -pa "$BL_BENCH_EBIN" "$@" \
        -eval 'bl_bench:main()' &
    DRIVER=$!
    wait "$DRIVER"
}
BL_BENCH_TLS=0 pass
rc=$?
if [ "$rc" -eq 0 ] && [ "${BL_BENCH_TLS:-1}" = 1 ]; then
    # TLS pass: certificates made here (test/tls/mkcerts.sh), the same optfile for every BEAM node
    BL_BENCH_TLS_DIR="$BL_BENCH_LOG_DIR/tls-certs"
    BL_BENCH_TLS_OPTFILE="$BL_BENCH_TLS_DIR/dist.conf"
    export BL_BENCH_TLS_DIR BL_BENCH_TLS_OPTFILE
    rm -rf "$BL_BENCH_TLS_DIR"
    test/tls/mkcerts.sh "$BL_BENCH_TLS_DIR" "$(hostname -s)" || exit 1
    O="{certfile, \"$BL_BENCH_TLS_DIR/node.pem\"}, {keyfile, \"$BL_BENCH_TLS_DIR/node.key\"},
       {cacertfile, \"$BL_BENCH_TLS_DIR/ca.pem\"}, {verify, verify_peer}, {versions, ['tlsv1.3']}"
    echo "[{server, [$O, {fail_if_no_peer_cert, true}]}, {client, [$O]}]." >"$BL_BENCH_TLS_OPTFILE"
    echo
    BL_BENCH_TLS=1 pass -proto_dist inet_tls -ssl_dist_optfile "$BL_BENCH_TLS_OPTFILE"
    rc=$?
fi
if [ -s "$BL_BENCH_SUMMARY" ]; then
    echo
    echo "== plain TCP and TLS side by side (medians; ratio = median of per-rep beamlet / BEAM on the same transport)"
    awk -F'\t' '
        { key = $2; if (!(key in seen)) { seen[key] = 1; order[++n] = key }
          v[$1, key] = $3; b[$1, key] = $4; r[$1, key] = $5; t[key] = $6 }
        END {
            printf "%-27s %10s %10s %7s   %10s %10s %7s  %s\n", "figure", "tcp C", "tcp BEAM",
                   "ratio", "tls C", "tls BEAM", "ratio", "target"
            for (i = 1; i <= n; i++) {
                k = order[i]
                printf "%-27s %10s %10s %7s   %10s %10s %7s  %s\n", k,
                       (("tcp", k) in v) ? v["tcp", k] : "-", (("tcp", k) in b) ? b["tcp", k] : "-",
                       (("tcp", k) in r) ? r["tcp", k] : "-",
                       (("tls", k) in v) ? v["tls", k] : "-", (("tls", k) in b) ? b["tls", k] : "-",
                       (("tls", k) in r) ? r["tls", k] : "-", t[k]
            }
        }' "$BL_BENCH_SUMMARY"
fi
echo "run.sh: C node logs in $BL_BENCH_LOG_DIR"
exit "$rc"
