#!/usr/bin/env bash
# systemd.sh - the unit and the notify protocol. systemd-analyze verify of beamlet@.service (when
# systemd-analyze is present; skipped with a line otherwise) and its offline security exposure;
# then a real node against a test notify socket (test/release/notify_listen.py): STATUS while it
# waits for its seed, READY=1 only once the seed is up and joined, WATCHDOG=1 fed from the loop at
# WATCHDOG_USEC/2, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM; an abstract-namespace
# socket; no watchdog pings when WATCHDOG_PID names another process.
# Appends "systemd P F" to $BL_RESULTS.
set -u
SUITE=systemd
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
BIN=${BEAMLET_BIN:-$ROOT/build/asan/beamlet}
: >"$LOGS/$SUITE.log"
TMP=$(mktemp -d /tmp/beamlet-systemd-test.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT

if command -v systemd-analyze >/dev/null; then
    # the unit as installed, pointing at this build's binary (the deb suite verifies the real paths)
    sed "s|/usr/bin/beamlet|$ROOT/build/release/beamlet|" rel/systemd/beamlet@.service \
        >"$TMP/beamlet@coord1.service"
    if out=$(systemd-analyze verify --man=no "$TMP/beamlet@coord1.service" 2>&1) && [ -z "$out" ]; then
        ok "systemd-analyze verify beamlet@coord1.service: clean"
    else
        bad "systemd-analyze verify: $out"
    fi
    sec=$(systemd-analyze security --offline=yes "$TMP/beamlet@coord1.service" 2>&1 |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    echo "security exposure: $sec" >>"$LOGS/$SUITE.log"
    if [ -n "$sec" ] && awk -v s="$sec" 'BEGIN { exit !(s <= 2.0) }'; then
        ok "systemd-analyze security: exposure $sec (<= 2.0, 'OK')"
    else
        bad "systemd-analyze security exposure '$sec' (want <= 2.0)"
    fi
    for k in Type=notify WatchdogSec= Restart=on-failure User=beamlet ProtectSystem=strict \
        StateDirectory=beamlet NoNewPrivileges=yes PrivateTmp=yes ProtectHome=yes \
        CapabilityBoundingSet= 'ExecReload=/bin/kill -HUP $MAINPID'; do
        if grep -q "^$k" rel/systemd/beamlet@.service; then ok "unit has $k"; else bad "unit lacks $k"; fi
    done
else
    echo "  skipped: systemd-analyze not installed (apt-get install systemd)"
fi

# notify protocol against a test socket
listen() { # socket out
    python3 test/release/notify_listen.py "$1" "$2" &
    PIDS+=($!)
    wait_for 40 grep -q listening "$2"
}
COOKIE=sd_$$
SOCK=$TMP/notify.sock
listen "$SOCK" "$TMP/n.txt" || bad "the test notify socket did not come up"
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=1000000 "$BIN" node --sname "sda$$" --cookie "$COOKIE" \
    --join "sdb$$@$HOST" >"$LOGS/$SUITE-a.log" 2>&1 &
A=$!
PIDS+=($A)
wait_for 80 grep -q "STATUS=published; joining" "$TMP/n.txt" &&
    ok "STATUS=published; joining, before the seed is up" || bad "no joining status"
sleep 2
if grep -q "READY=1" "$TMP/n.txt"; then bad "READY=1 before the seed exists"; else ok "no READY=1 while the seed is down (2 s)"; fi
w=$(grep -c "WATCHDOG=1" "$TMP/n.txt")
[ "$w" -ge 2 ] && ok "watchdog fed from the loop while joining ($w pings in ~2 s at WATCHDOG_USEC=1 s)" ||
    bad "watchdog pings: $w"
"$BIN" node --sname "sdb$$" --cookie "$COOKIE" >"$LOGS/$SUITE-b.log" 2>&1 &
B=$!
PIDS+=($B)
if wait_for 120 grep -q "READY=1|STATUS=sda$$@$HOST: published and joined" "$TMP/n.txt"; then
    ok "READY=1 once published and joined to the seed"
else
    bad "no READY=1 after the seed came up: $(cat "$TMP/n.txt")"
fi
kill -HUP "$A"
wait_for 40 grep -q "RELOADING=1" "$TMP/n.txt" && wait_for 40 grep -q "STATUS=running (reloaded)" "$TMP/n.txt" &&
    ok "SIGHUP: RELOADING=1, then READY=1" || bad "no reload notification"
grep -q "reload (SIGHUP)" "$LOGS/$SUITE-a.log" && ok "SIGHUP reload logged" || bad "no reload log line"
kill -TERM "$A"
wait "$A"
rc=$?
grep -q "STOPPING=1" "$TMP/n.txt" && ok "SIGTERM: STOPPING=1" || bad "no STOPPING=1"
[ "$rc" -eq 0 ] && ok "node exit status 0 after SIGTERM" || bad "node exit status $rc"
echo "--- notify log" >>"$LOGS/$SUITE.log"; cat "$TMP/n.txt" >>"$LOGS/$SUITE.log"

# abstract namespace, no seeds (ready at once), a watchdog for another pid (not ours: silent)
ASOCK=@beamlet-test-$$
listen "$ASOCK" "$TMP/abs.txt" || bad "the abstract test socket did not come up"
NOTIFY_SOCKET=$ASOCK WATCHDOG_USEC=400000 WATCHDOG_PID=1 "$BIN" node --sname "sdc$$" \
    --cookie "$COOKIE" >"$LOGS/$SUITE-c.log" 2>&1 &
C=$!
PIDS+=($C)
wait_for 80 grep -q "READY=1|STATUS=sdc$$@$HOST: published, no seeds to join" "$TMP/abs.txt" &&
    ok "abstract-namespace NOTIFY_SOCKET: READY=1 at once without seeds" || bad "no READY on @socket"
sleep 1
grep -q WATCHDOG "$TMP/abs.txt" && bad "watchdog pings although WATCHDOG_PID is another process" ||
    ok "no watchdog pings when WATCHDOG_PID is another process"
kill -TERM "$C" "$B"
wait "$C" "$B" 2>/dev/null
record
[ "$F" -eq 0 ]
