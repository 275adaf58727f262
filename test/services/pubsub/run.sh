#!/bin/sh
# run.sh - the pub/sub suite (EUnit, real beamlet nodes + pubsub_node (C API) + this erl runner on
# loopback). Reuses test/integration's node registry (bl_test_util). Appends "pubsub P F" to
# $BL_RESULTS; exits non-zero on failure.
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
. "$ROOT/test/lib/suite.sh"
suite_init pubsub blps
: "${PUBSUB_NODE_BIN:=$ROOT/build/asan/pubsub_node}"
# the at-least-once outbox of every node started here (SQLite, pubsub-<node>.db)
if [ -z "${BEAMLET_DATA_DIR:-}" ]; then
    BEAMLET_DATA_DIR=$BL_LOG_DIR/pubsub-data.$$
    SUITE_AT_EXIT='rm -rf "$BEAMLET_DATA_DIR"'
fi
mkdir -p "$BEAMLET_DATA_DIR"
export PUBSUB_NODE_BIN BEAMLET_DATA_DIR
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
[ -x "$PUBSUB_NODE_BIN" ] || suite_fail "pubsub: $PUBSUB_NODE_BIN missing (make build/asan/pubsub_node)"
suite_erlc test/services/pubsub/*.erl
suite_erl bl_pubsub_tests -kernel net_ticktime 4
suite_end $?
