#!/usr/bin/env bash
# trend.sh - the "days left" trend end to end, and history across the cluster. A real node sees
# a small tmpfs (mounted in its own mount namespace) that the test fills at a steady rate; the
# node's history records disk.MOUNT.used_percent, its trend job fits a line over it
# (health/trend.c) and `beamlet health` recommends acting, with a growth per day that matches a
# least-squares fit the test computes from the same history, and a time left that follows from
# it. A second member joins: `beamlet history --cluster` merges both members' points by time.
# Appends "trend P F" to $BL_RESULTS.
set -u
SUITE=trend
. "$(dirname "$0")/lib.sh"
TMPFS=/tmp/blt-tmpfs.$$
FILLER=
at_exit() {
    [ -n "$FILLER" ] && kill "$FILLER" 2>/dev/null
    rmdir "$TMPFS" 2>/dev/null
}
COMMON=(--cookie "$BL_COOKIE" --health-interval-ms 250 --heartbeat-interval-ms 300
    --load-warn-per-cpu 900 --load-crit-per-cpu 1000 --mem-warn-percent 0 --mem-crit-percent 0)
N1=htr1_$$@$HOST N2=htr2_$$@$HOST
rm -rf "$XDG_STATE_HOME/beamlet/$N1" "$XDG_STATE_HOME/beamlet/$N2"
mkdir -p "$TMPFS"

echo "--- a node with an 8 MiB tmpfs that fills steadily"
unshare -m --propagation private sh -c "mount -t tmpfs -o size=8m tmpfs '$TMPFS' && exec '$BEAMLET_BIN' node --sname htr1_$$ \"\$@\"" _ "${COMMON[@]}" \
    >"$BL_LOG_DIR/trend-htr1.log" 2>&1 &
P1=$!
PIDS+=($P1)
check "htr1 runs with its own tmpfs" wait_ping "$N1"
# 64 KiB a second: 0.78% of the tmpfs per second, about 55% in 70 s (below the warning level,
# so the recommendation is the "fills within 7 days" one, from the trend alone)
(
    i=0
    while [ $i -lt 110 ]; do
        nsenter -t "$P1" -m dd if=/dev/zero of="$TMPFS/fill" bs=64k count=1 oflag=append conv=notrunc status=none 2>/dev/null
        i=$((i + 1))
        sleep 1
    done
) &
FILLER=$!
"$BEAMLET_BIN" node --sname "htr2_$$" --join "$N1" "${COMMON[@]}" >"$BL_LOG_DIR/trend-htr2.log" 2>&1 &
PIDS+=($!)
check "htr2 joins" wait_ping "$N2"
METRIC="disk.$TMPFS.used_percent"
hist() { cli history --node "$1" --metric "$2" --since 10m --format json 2>/dev/null; }
check "the tmpfs is in htr1's history and rising" bash -c "for i in \$(seq 1 60); do '$BEAMLET_BIN' history --node '$N1' --metric '$METRIC' --since 10m --format json --cookie '$BL_COOKIE' 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin)[\"points\"]; sys.exit(0 if len(p) > 20 and p[-1][2] > p[0][2] + 5 else 1)' && exit 0; sleep 0.5; done; exit 1"

echo "--- the trend: a recommendation with the growth the history shows (refreshed every 30 s)"
REC=
for _ in $(seq 1 75); do
    REC=$(cli health --node "$N1" --format json 2>/dev/null | python3 -c "
import json, sys
h = json.load(sys.stdin)
r = [x for x in h['recommendations'] if '$TMPFS on $N1' in x['condition'] and 'grows' in x['condition']]
print(json.dumps(r[0]) if r else '')" 2>/dev/null)
    [ -n "$REC" ] && break
    sleep 2
done
check "beamlet health recommends acting on the filling tmpfs ($REC)" test -n "$REC"
H=$(hist "$N1" "$METRIC")
check "the growth per day agrees with a least-squares fit of the history (within 35%)" python3 -c '
import json, re, sys
rec = json.loads(sys.argv[1]); pts = json.loads(sys.argv[2])["points"]
m = re.search(r"is (\d+)% full and grows ([0-9.]+)%/day: about (\d+) (minutes|hours|days) left", rec["condition"])
if not m: sys.exit("no figures in: " + rec["condition"])
used, per_day, left, unit = float(m.group(1)), float(m.group(2)), float(m.group(3)), m.group(4)
t = [p[0] for p in pts]; v = [p[2] for p in pts]
mt = sum(t) / len(t); mv = sum(v) / len(v)
slope = sum((a - mt) * (b - mv) for a, b in zip(t, v)) / sum((a - mt) ** 2 for a in t)
mine = slope * 86400000.0
print("  node: %.0f%%/day, used %.0f%%, %s %s left; test fit over %d points: %.0f%%/day" % (per_day, used, left, unit, len(pts), mine))
if not (0.65 * mine <= per_day <= 1.35 * mine): sys.exit(1)
# the time left follows from used and the growth
days = (100 - used) / per_day
want = days * 1440 if unit == "minutes" else days * 24 if unit == "hours" else days
if abs(want - left) > max(1.5, 0.25 * want): sys.exit("time left %s %s, expected about %.1f" % (left, unit, want))
if "add space" not in rec["action"] and "stop it" not in rec["action"]: sys.exit("no action")
' "$REC" "$H"
check "the table of beamlet health shows it" bash -c "'$BEAMLET_BIN' health --node '$N1' --cookie '$BL_COOKIE' | grep -q '$TMPFS on $N1 is .* left'"
check "every member lists it (the growth travels with htr1's summary)" bash -c "for i in \$(seq 1 40); do '$BEAMLET_BIN' health --node '$N2' --format json --cookie '$BL_COOKIE' | grep -q '$TMPFS on $N1 is .*grows' && exit 0; sleep 0.5; done; exit 1"

echo "--- history across the cluster"
CH=$(cli history --cluster --node "$N1" --metric load.load1 --since 10m --format json 2>/dev/null)
check "history --cluster merges both members' points by time" python3 -c '
import json, sys
j = json.loads(sys.argv[1]); want = sorted(sys.argv[2:])
nodes = sorted(j["nodes"]); pts = j["points"]
assert nodes == want, nodes
assert sorted({p[4] for p in pts}) == want
assert [p[0] for p in pts] == sorted(p[0] for p in pts)
assert len(pts) == sum(len(j["nodes"][n]["points"]) for n in want)
assert j["metric"] == "load.load1"
' "$CH" "$N1" "$N2"
CT=$(cli history --cluster --node "$N2" --metric "$METRIC" --since 10m 2>/dev/null)
check "the table: a sparkline per member (htr2 has no such mount)" bash -c "grep -q '^$METRIC on $N1, [0-9]* points' <<<\"\$1\" && grep -q '^$METRIC on $N2, 0 points' <<<\"\$1\"" _ "$CT"
NAMES=$(cli history --cluster --node "$N1" 2>/dev/null)
check "without --metric: each metric with how many members record it" bash -c "grep -q '$METRIC  *1 member' <<<\"\$1\" && grep -q 'load.load1  *2 member' <<<\"\$1\"" _ "$NAMES"

kill "$FILLER" 2>/dev/null
FILLER=
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
check "the nodes stop cleanly" bash -c "grep -q stopped '$BL_LOG_DIR/trend-htr1.log' && grep -q stopped '$BL_LOG_DIR/trend-htr2.log'"
suite_done
