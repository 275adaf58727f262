#!/bin/sh
# run.sh - the cluster suite (EUnit, real beamlet nodes + this erl runner on loopback), then the
# network-namespace partition test. Reuses test/integration's node registry (bl_test_util).
# Appends "cluster P F" (and partition's own line) to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${BL_COOKIE:=blc_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/cluster_ebin"
export BEAMLET_BIN TEST_WORKER_BIN BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/cluster-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
RES=$(mktemp)
if ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl test/integration/bl_eunit_counter.erl \
        test/cluster/*.erl; then
    [ -n "${BL_RESULTS:-}" ] && echo "cluster 0 1" >>"$BL_RESULTS"
    exit 1
fi
epmd -daemon 2>/dev/null || true
BL_RESULTS=$RES erl -sname "bl_crun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -eval 'bl_test_util:run([bl_cluster_tests, bl_election_tests, bl_cconf_tests])'
rc=$?
line=$(sed 's/^integration /cluster /' "$RES")
[ -z "$line" ] && line="cluster 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
prc=0
if [ -x test/cluster/partition_netns.sh ]; then test/cluster/partition_netns.sh; prc=$?; fi
[ "$rc" -eq 0 ] && [ "$prc" -eq 0 ]
