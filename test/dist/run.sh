#!/bin/sh
# run.sh - the distribution-layer suite (EUnit, test/dist/bl_dist_tests.erl): stalled peers in
# every handshake step, the per-address bound, simultaneous connects C<->C and BEAM<->C, IPv6
# with erl -proto_dist inet6_tcp. Reuses test/integration's node registry (bl_test_util).
# Appends "dist P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
# As root, run in private network and mount namespaces (own loopback and EPMD) where lo also
# has fd42:b1::1 and /etc/hosts maps v6only.bl.test to it: a host name that resolves to IPv6
# only, for the IPv6 test. Nothing outside sees either change.
if [ -z "${BL_DIST_V6HOST:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    H=$(mktemp)
    cp /etc/hosts "$H" && echo "fd42:b1::1 v6only.bl.test" >>"$H"
    BL_DIST_V6HOST=v6only.bl.test BL_DIST_HOSTS=$H unshare -m -n sh -c '
        ip link set lo up && ip -6 addr add fd42:b1::1/128 dev lo &&
        mount --bind "$BL_DIST_HOSTS" /etc/hosts && epmd -daemon && sleep 0.2 || exit 1
        "$0"; rc=$?; epmd -kill >/dev/null 2>&1; exit $rc' "$0"
    rc=$?
    rm -f "$H"
    [ "$rc" -ne 0 ] && [ -n "${BL_RESULTS:-}" ] && ! grep -q "^dist " "$BL_RESULTS" && echo "dist 0 1" >>"$BL_RESULTS"
    exit "$rc"
fi
. "$ROOT/test/lib/suite.sh"
suite_init dist bld
suite_erlc test/dist/*.erl
suite_erl bl_dist_tests -kernel net_ticktime 4
