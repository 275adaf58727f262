#!/bin/sh
# run.sh - the pub/sub suite (EUnit, real beamlet nodes + pubsub_node (C API) + this erl runner on
# loopback). Reuses test/integration's node registry (bl_test_util). Appends "pubsub P F" to
# $BL_RESULTS; exits non-zero on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${TEST_WORKER_BIN:=$ROOT/build/asan/test_worker}"
: "${PUBSUB_NODE_BIN:=$ROOT/build/asan/pubsub_node}"
: "${BL_COOKIE:=blps_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
EBIN="$ROOT/build/pubsub_ebin"
# the at-least-once outbox of every node started here (SQLite, pubsub-<node>.db)
OWN_DATA=
[ -z "${BEAMLET_DATA_DIR:-}" ] && OWN_DATA=1 && BEAMLET_DATA_DIR=$BL_LOG_DIR/pubsub-data.$$
mkdir -p "$BEAMLET_DATA_DIR"
export BEAMLET_BIN TEST_WORKER_BIN PUBSUB_NODE_BIN BEAMLET_DATA_DIR BL_COOKIE BL_LOG_DIR BL_PIDFILE="$BL_LOG_DIR/pubsub-pids.$$"
mkdir -p "$EBIN" "$BL_LOG_DIR"
# pubsub_node: the Makefile's rule when it has one, else the same command by hand
if [ ! -x "$PUBSUB_NODE_BIN" ] || [ "$ROOT/build/asan/libbeamlet.a" -nt "$PUBSUB_NODE_BIN" ] ||
        [ test/services/pubsub/pubsub_node.c -nt "$PUBSUB_NODE_BIN" ]; then
    if ! make --no-print-directory build/asan/pubsub_node >/dev/null 2>&1; then
        EI=$(erl -noshell -eval 'io:format("~s",[code:lib_dir(erl_interface)]),halt().')
        cc -std=c11 -D_GNU_SOURCE -D_REENTRANT -pthread -Wall -Wextra -Werror -Iinclude \
            -I"$EI/include" -Wno-format-truncation -O1 -g -fsanitize=address,undefined \
            -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
            test/services/pubsub/pubsub_node.c build/asan/libbeamlet.a -L"$EI/lib" -lei -lev \
            -ljansson -lpthread -lm -ldl -o "$PUBSUB_NODE_BIN"
    fi
fi
RES=$(mktemp)
if [ ! -x "$PUBSUB_NODE_BIN" ] || ! erlc -Wall -o "$EBIN" test/integration/bl_test_util.erl \
        test/integration/bl_eunit_counter.erl test/services/pubsub/*.erl; then
    echo "pubsub: $PUBSUB_NODE_BIN missing (make build/asan/pubsub_node) or erlc failed" >&2
    [ -n "${BL_RESULTS:-}" ] && echo "pubsub 0 1" >>"$BL_RESULTS"
    exit 1
fi
epmd -daemon 2>/dev/null || true
BL_RESULTS=$RES erl -sname "bl_psrun_$$" -setcookie "$BL_COOKIE" -noshell -pa "$EBIN" \
    -kernel net_ticktime 4 -eval 'bl_test_util:run([bl_pubsub_tests])'
rc=$?
line=$(sed 's/^integration /pubsub /' "$RES")
[ -z "$line" ] && line="pubsub 0 1"
[ -n "${BL_RESULTS:-}" ] && echo "$line" >>"$BL_RESULTS"
rm -f "$RES"
if [ -f "$BL_PIDFILE" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done <"$BL_PIDFILE"; rm -f "$BL_PIDFILE"
fi
[ -n "$OWN_DATA" ] && rm -rf "$BEAMLET_DATA_DIR"
[ "$rc" -eq 0 ]
