#!/bin/sh
# run.sh - the HTTP gateway suites: the REST API, auth, metrics and stream against a real 3-node
# cluster (test_api.py), bad input under load next to a BEAM round trip (test_badinput.py), and
# the dashboard in a real headless Chromium (test_browser.py). Each appends "SUITE P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${BL_COOKIE:=gw_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
export BEAMLET_BIN BL_COOKIE BL_LOG_DIR
mkdir -p "$BL_LOG_DIR"
pgrep -x epmd >/dev/null || epmd -daemon
rc=0
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
"$PY" test/gateway/test_api.py || rc=1
[ -f test/gateway/test_badinput.py ] && { "$PY" test/gateway/test_badinput.py || rc=1; }
"$PY" test/gateway/test_browser.py || rc=1
exit $rc
