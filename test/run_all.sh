#!/usr/bin/env bash
# run_all.sh - every test suite of `make test`, against the ASan+UBSan build.
# Each suite appends "SUITE PASSED FAILED" to $BL_RESULTS; the last line printed is the total,
# "N passed, N failed". Sanitizer reports are written to build/san/ and each one counts as a failure.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export BL_RESULTS=$ROOT/build/test-results.txt
export BL_LOG_DIR=$ROOT/build/test-logs
export BL_SAN_DIR=$ROOT/build/san
export BEAMLET_BIN=$ROOT/build/asan/beamlet
export TEST_WORKER_BIN=$ROOT/build/asan/test_worker
export PG_WORKER_BIN=$ROOT/build/asan/pg_worker
export REGISTRY_NODE_BIN=$ROOT/build/asan/registry_node
export GLOBAL_NODE_BIN=$ROOT/build/asan/global_node
export PUBSUB_NODE_BIN=$ROOT/build/asan/pubsub_node
export BL_COOKIE=beamlet_test_cookie
# every node keeps its health database under $XDG_STATE_HOME/beamlet/NODE: keep the tests' in build/
export XDG_STATE_HOME=$ROOT/build/state
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
export ASAN_OPTIONS="log_path=$BL_SAN_DIR/asan:detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="log_path=$BL_SAN_DIR/ubsan:print_stacktrace=1:halt_on_error=1"
rm -rf "$BL_RESULTS" "$BL_LOG_DIR" "$BL_SAN_DIR"
mkdir -p "$BL_LOG_DIR" "$BL_SAN_DIR"
pgrep -x epmd >/dev/null || epmd -daemon

suite_status=0
run_suite() { # name, command...
    local name=$1; shift
    echo "=== $name"
    if ! "$@"; then suite_status=1; fi
    grep -q "^$name " "$BL_RESULTS" 2>/dev/null || echo "$name 0 1" >>"$BL_RESULTS"
}

# cmocka unit tests: one binary per file
unit() {
    local p=0 f=0
    for t in build/asan/unit/test_*; do
        [ -x "$t" ] || continue
        if "$t" >"$BL_LOG_DIR/$(basename "$t").log" 2>&1; then
            :
        fi
        local out; out=$(cat "$BL_LOG_DIR/$(basename "$t").log")
        local tp tf
        tp=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$out" | tail -1)
        tf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<<"$out" | tail -1)
        [ -z "$tp" ] && [ -z "$tf" ] && tf=1 && echo "  $(basename "$t"): no cmocka summary (crashed?)"
        p=$((p + ${tp:-0})); f=$((f + ${tf:-0}))
        echo "  $(basename "$t"): ${tp:-0} passed, ${tf:-0} failed"
        [ "${tf:-0}" -gt 0 ] && grep -E "FAILED|error|Failure" "$BL_LOG_DIR/$(basename "$t").log" | head -20
    done
    echo "unit $p $f" >>"$BL_RESULTS"
    [ "$f" -eq 0 ]
}

# libFuzzer targets: a short fixed number of runs each over the seed corpus
fuzz() {
    local p=0 f=0
    for t in build/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        local name; name=$(basename "$t")
        local corpus=test/fuzz/corpus/${name#fuzz_}
        mkdir -p "build/corpus/$name"
        if ASAN_OPTIONS= UBSAN_OPTIONS= "$t" -runs="${FUZZ_RUNS:-200000}" -seed=1 \
            "build/corpus/$name" "$corpus" >"$BL_LOG_DIR/$name.log" 2>&1; then
            p=$((p + 1)); echo "  $name: ok ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$BL_LOG_DIR/$name.log" || grep -o 'Done [0-9]* runs' "$BL_LOG_DIR/$name.log"))"
        else
            f=$((f + 1)); echo "  $name: FAILED"; tail -30 "$BL_LOG_DIR/$name.log"
        fi
    done
    echo "fuzz $p $f" >>"$BL_RESULTS"
    [ "$f" -eq 0 ]
}

run_suite unit unit
run_suite symbols test/unit/symbols.sh
run_suite fuzz fuzz
[ -x test/integration/run.sh ] && run_suite integration test/integration/run.sh
[ -x test/cluster/run.sh ] && run_suite cluster test/cluster/run.sh
[ -x test/scale/run.sh ] && run_suite scale test/scale/run.sh 30
[ -x test/scale/run.sh ] && run_suite scale_load env BL_SCALE_SUITE=scale_load BL_SCALE_HOGS=4 test/scale/run.sh 30
[ -x test/dist/run.sh ] && run_suite dist test/dist/run.sh
[ -x test/tls/run.sh ] && run_suite tls test/tls/run.sh
[ -x test/netsec/run.sh ] && run_suite netsec test/netsec/run.sh
[ -x test/services/run.sh ] && run_suite pg test/services/run.sh
[ -x test/services/registry/run.sh ] && run_suite registry test/services/registry/run.sh
[ -x test/services/global/run.sh ] && run_suite global test/services/global/run.sh
[ -x test/services/pubsub/run.sh ] && run_suite pubsub test/services/pubsub/run.sh
[ -x test/trace/run.sh ] && run_suite trace test/trace/run.sh
[ -x test/tasks/run.sh ] && run_suite tasks test/tasks/run.sh
[ -x test/health/run.sh ] && run_suite health test/health/run.sh
[ -x test/health/alerts.sh ] && run_suite alerts test/health/alerts.sh
[ -x test/health/checks.sh ] && run_suite checks test/health/checks.sh
[ -x test/health/trend.sh ] && run_suite trend test/health/trend.sh
[ -x test/integration/gossip_netns.sh ] && run_suite gossip_netns test/integration/gossip_netns.sh
[ -x test/churn/run.sh ] && run_suite churn test/churn/run.sh
[ -x erlang_shim/test/run.sh ] && run_suite shim erlang_shim/test/run.sh
[ -x erlang_shim/test/gleam_run.sh ] && run_suite gleam erlang_shim/test/gleam_run.sh
[ -x test/gateway/run.sh ] && run_suite gateway test/gateway/run.sh
[ -x test/valgrind/run.sh ] && run_suite valgrind test/valgrind/run.sh
[ -x test/release/run.sh ] && run_suite release test/release/run.sh
[ -x test/release/systemd.sh ] && run_suite systemd test/release/systemd.sh
[ -x test/release/config.sh ] && run_suite config_admin test/release/config.sh
[ -x test/release/deb.sh ] && run_suite deb test/release/deb.sh
[ -x test/release/demo.sh ] && run_suite demo test/release/demo.sh

# Dialyzer over the Erlang shim and the Gleam FFI (the PLT is built once into build/)
dialyzer() {
    if make --no-print-directory -C erlang_shim dialyzer >"$BL_LOG_DIR/dialyzer.log" 2>&1; then
        echo "dialyzer 1 0" >>"$BL_RESULTS"; echo "  dialyzer: passed"
    else
        echo "dialyzer 0 1" >>"$BL_RESULTS"; tail -30 "$BL_LOG_DIR/dialyzer.log"; return 1
    fi
}
run_suite dialyzer dialyzer

# Sanitizer reports from any process of any suite
san=$(ls "$BL_SAN_DIR" 2>/dev/null | wc -l)
if [ "$san" -gt 0 ]; then
    echo "=== sanitizers: $san report(s)"
    for r in "$BL_SAN_DIR"/*; do echo "--- $r"; head -40 "$r"; done
    echo "sanitizers 0 $san" >>"$BL_RESULTS"
else
    echo "=== sanitizers: no reports"
    echo "sanitizers 1 0" >>"$BL_RESULTS"
fi

echo
echo "=== summary"
awk '{ printf "  %-12s %4d passed, %d failed\n", $1, $2, $3; p += $2; f += $3 }
     END { printf "\ntotal: %d passed, %d failed\n", p, f; exit (f > 0) }' "$BL_RESULTS"
