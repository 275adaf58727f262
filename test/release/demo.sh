#!/usr/bin/env bash
# demo.sh - `make demo` as a newcomer sees it, unattended: rel/demo/demo.sh --fast runs every
# step to the end (the C nodes are this run's ASan build); its table must list every step ok and
# end with "cluster healthy: yes". Then a second run is interrupted with SIGINT (what Ctrl-C sends)
# after its first step: it must stop every node it started and exit 130.
# Appends "demo P F" to $BL_RESULTS.
set -u
SUITE=demo
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
BIN=${BEAMLET_BIN:-$ROOT/build/asan/beamlet}
: >"$LOGS/$SUITE.log"
export DEMO_BIN=$BIN DEMO_COOKIE=demo_$$
make --no-print-directory -C erlang_shim >/dev/null 2>&1
out=$(timeout -k 10 300 rel/demo/demo.sh --fast 2>&1)
rc=$?
echo "$out" >"$LOGS/$SUITE-fast.log"
[ "$rc" -eq 0 ] && ok "demo --fast ran to the end, exit 0" || bad "demo --fast exit $rc (log: $LOGS/$SUITE-fast.log)"
for s in "form the cluster" "register + discover" "service calls" "pub/sub" "kill -9 agent cam1" "heal cam1" \
    "kill -9 leader" "heal coord" "partition coord" "final check"; do
    line=$(grep "^$s" <<<"$out" | head -1)
    [[ "$line" == *" ok" ]] && ok "table: $line" || bad "table: '$s' not ok: $line"
done
[ "$(grep -c ' ok$' <<<"$out")" -eq 11 ] && ok "table: 11 steps, all ok" || bad "table rows ok: $(grep -c ' ok$' <<<"$out")"
tail -1 <<<"$out" | grep -q "^cluster healthy: yes" && ok "final line: $(tail -1 <<<"$out")" || bad "final line: $(tail -1 <<<"$out")"
left=$(epmd -names | grep -E "^name (coord[123]|cam[12]|sensor1|store1|gw1|tourshim) at" | wc -l)
[ "$left" -eq 0 ] && ok "no demo node left in EPMD after the run" || bad "$left demo nodes still registered"

# Ctrl-C: SIGINT to the script (python restores SIGINT's default for it: a background job of a
# script starts with SIGINT ignored, which no trap could undo)
python3 - "$LOGS/$SUITE-int.log" <<'PY' &
import signal, subprocess, sys, time
log = open(sys.argv[1], "w")
p = subprocess.Popen(["rel/demo/demo.sh"], stdout=log, stderr=subprocess.STDOUT,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
deadline = time.time() + 120
while time.time() < deadline and "[1/8]" not in open(sys.argv[1]).read():
    time.sleep(0.2)
p.send_signal(signal.SIGINT)
try:
    rc = p.wait(timeout=60)
except subprocess.TimeoutExpired:
    p.kill(); rc = -999
log.write("\nEXIT %d\n" % rc)
PY
wait $!
grep -q "^EXIT 130" "$LOGS/$SUITE-int.log" && ok "Ctrl-C (SIGINT) after the first step: exit 130" ||
    bad "SIGINT: $(tail -3 "$LOGS/$SUITE-int.log")"
grep -q "Ctrl-C: stopping every node" "$LOGS/$SUITE-int.log" && ok "Ctrl-C: it says it stops every node" || bad "no stop message"
left=$(epmd -names | grep -E "^name (coord[123]|cam[12]|sensor1|store1|gw1|tourshim) at" | wc -l)
[ "$left" -eq 0 ] && ok "after Ctrl-C no demo node is left" || bad "$left demo nodes left after Ctrl-C"
record
[ "$F" -eq 0 ]
