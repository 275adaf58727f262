#!/usr/bin/env bash
# run.sh - the health suite: real beamlet nodes on loopback, asked through the real CLI and a real
# erl node. Metrics must agree with free -b, df -B1 and /proc/loadavg on this machine; bad
# health config is refused naming the key. Appends "health P F" to $BL_RESULTS.
set -u
SUITE=health
. "$(dirname "$0")/lib.sh"

start_node() { # name, extra flags...
    local name=$1; shift
    "$BEAMLET_BIN" node --sname "$name" --cookie "$BL_COOKIE" "$@" \
        >"$BL_LOG_DIR/health-$name.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
    for _ in $(seq 1 100); do
        "$BEAMLET_BIN" ping "$name@$HOST" --cookie "$BL_COOKIE" --timeout 1000 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

echo "--- metrics agree with free, df and /proc/loadavg"
start_node hm1 --health-interval-ms 500 || bad "node hm1 starts"
N1=hm1@$HOST
PID1=$LAST_PID
sleep 1.2 # a sample with a CPU delta
OUT=$BL_LOG_DIR/health-metrics.json
cli metrics --node "$N1" --format json >"$OUT" 2>"$OUT.err"
check "beamlet metrics --format json answers" test -s "$OUT"
free -b >"$OUT.free"
df -B1 --output=target,fstype,size,avail >"$OUT.df" 2>/dev/null
cat /proc/loadavg >"$OUT.load"
PYOUT=$(python3 - "$OUT" "$OUT.free" "$OUT.df" "$OUT.load" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
free = {l.split()[0].rstrip(':'): [int(x) for x in l.split()[1:]]
        for l in open(sys.argv[2]).read().splitlines()[1:]}
fails = []
def want(cond, what):
    print(("  ok: " if cond else "  FAILED: ") + what)
    if not cond: fails.append(what)
for k in ("total_bytes", "available_bytes", "used_bytes"):
    want(k in m["memory"], "memory.%s present" % k)
for k in ("load1", "load5", "load15"):
    want(k in m["load"], "load.%s present" % k)
want(0 <= m["cpu"]["percent"] <= 100, "cpu.percent in 0..100 (%s)" % m["cpu"]["percent"])
mem = m["memory"]
want(mem["total_bytes"] == free["Mem"][0], "memory.total_bytes == free -b total (%d)" % free["Mem"][0])
tol = 0.05 * free["Mem"][0]
want(abs(mem["available_bytes"] - free["Mem"][5]) <= tol,
     "memory.available_bytes within 5%% of total of free's available (%d vs %d)" % (mem["available_bytes"], free["Mem"][5]))
want(abs(mem["used_bytes"] - free["Mem"][1]) <= tol,
     "memory.used_bytes within 5%% of total of free's used (%d vs %d)" % (mem["used_bytes"], free["Mem"][1]))
want(mem["swap_total_bytes"] == free["Swap"][0], "memory.swap_total_bytes == free's swap total")
load = open(sys.argv[4]).read().split()
# load15 moves toward the current load by |load - load15| / 900 per second: between the sample
# and the read of /proc/loadavg (a few seconds on a loaded machine) allow 1% of that gap more
want(abs(m["load"]["load15"] - float(load[2])) <= 0.3 + 0.01 * abs(float(load[0]) - float(load[2])), "load.load15 ~ /proc/loadavg (%s vs %s)" % (m["load"]["load15"], load[2]))
want(abs(m["load"]["load1"] - float(load[0])) <= 1.5, "load.load1 ~ /proc/loadavg (%s vs %s)" % (m["load"]["load1"], load[0]))
df = {}
for l in open(sys.argv[3]).read().splitlines()[1:]:
    f = l.split()
    if len(f) >= 4: df[f[0]] = (f[1], int(f[2]), int(f[3]))
disks = {d["mount"]: d for d in m["disks"]}
want(len(disks) >= 1 and "/" in disks, "disks[] lists / (%s)" % sorted(disks))
for mnt, d in disks.items():
    if mnt not in df:
        want(False, "%s is in df -B1" % mnt); continue
    t, size, avail = df[mnt]
    want(d["size_bytes"] == size, "%s size_bytes == df (%d)" % (mnt, size))
    want(abs(d["avail_bytes"] - avail) <= max(0.01 * size, 64 << 20), "%s avail_bytes ~ df (%d vs %d)" % (mnt, d["avail_bytes"], avail))
pseudo = ("proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "overlay", "squashfs", "nsfs", "autofs")
for mnt, (t, size, avail) in df.items():
    if t in pseudo or size == 0 or mnt.startswith(("/dev", "/sys", "/proc", "/run/netns")): continue
    want(mnt in disks, "df's %s (%s) is reported" % (mnt, t))
want(not any(d["mount"].startswith(("/proc", "/sys", "/dev")) for d in m["disks"]), "no pseudo filesystems in disks[]")
want(len(m["network"]) >= 1 and any(i["interface"] == "lo" for i in m["network"]), "network lists lo")
want(m["process"]["rss_bytes"] > 0 and m["process"]["fds"] > 0 and m["process"]["threads"] >= 1, "process rss/fds/threads")
want(m["uptime_s"] > 0, "uptime_s")
sys.exit(1 if fails else 0)
PY
)
echo "$PYOUT"
P=$((P + $(grep -c '^  ok: ' <<<"$PYOUT")))
F=$((F + $(grep -c '^  FAILED: ' <<<"$PYOUT")))
grep -q '^  ok: memory.total_bytes ==' <<<"$PYOUT" || bad "the comparison ran"
TABLE=$(cli metrics --node "$N1")
check "table output shows memory and the root filesystem" \
    bash -c "grep -q '^memory' <<<\"\$1\" && grep -q '^/ ' <<<\"\$1\"" _ "$TABLE"
PROC_STATUS=$(grep -E '^Threads' /proc/$PID1/status | awk '{print $2}')
check "node's own threads seen ($PROC_STATUS in /proc)" test -n "$PROC_STATUS"

echo "--- from a BEAM node: gen_server:call({beamlet_health, Node}, metrics)"
ERL_OUT=$(erl -sname "blh_erl_$$" -setcookie "$BL_COOKIE" -noshell -eval "
    M = gen_server:call({beamlet_health, '$N1'}, metrics, 10000),
    #{memory := #{total_bytes := T}, disks := [_ | _], cpu := #{percent := C}} = M,
    pong = gen_server:call({beamlet_health, '$N1'}, ping),
    {error, unknown_request} = gen_server:call({beamlet_health, '$N1'}, what),
    io:format(\"ok ~p ~p~n\", [T, C]), halt()." 2>&1)
check "erl gets a metrics map ($ERL_OUT)" grep -q '^ok ' <<<"$ERL_OUT"

echo "--- events and history survive kill -9 and restart"
export XDG_STATE_HOME=$BL_LOG_DIR/health-state.$$ # the default data directory, under build/
rm -rf "$XDG_STATE_HOME"
start_node hm2 --health-interval-ms 300 --heartbeat-interval-ms 300 || bad "node hm2 starts"
N2=hm2@$HOST
PID2=$LAST_PID
start_node hm3 --join "$N2" --heartbeat-interval-ms 300 || bad "node hm3 starts"
PID3=$LAST_PID
sleep 2.5
kill -9 "$PID3" # hm2 sees hm3 suspected, then failed
for _ in $(seq 1 40); do
    cli events --node "$N2" --severity critical --format json 2>/dev/null | grep -q '"failed"' && break
    sleep 0.5
done
sleep 1.5 # the failed event and more samples written (batches go out once a second)
BEFORE=$(cli history --node "$N2" --metric cpu.percent --since 1h --format json |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')
check "history of cpu.percent before the kill ($BEFORE points)" test "${BEFORE:-0}" -ge 5
kill -9 "$PID2"
wait "$PID2" 2>/dev/null
check "the database is in the default state directory" test -s "$XDG_STATE_HOME/beamlet/$N2/health.db"
start_node hm2 --health-interval-ms 300 --heartbeat-interval-ms 300 || bad "node hm2 restarts"
PID2=$LAST_PID
EV=$BL_LOG_DIR/health-events.json
cli events --node "$N2" --format json >"$EV"
PYOUT=$(python3 - "$EV" "$BEFORE" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1]))
def want(cond, what):
    print(("  ok: " if cond else "  FAILED: ") + what)
started = [e for e in ev if e["type"] == "node" and e["body"].get("event") == "started"]
want(len(started) == 2 and started[0]["body"]["os_pid"] != started[1]["body"]["os_pid"],
     "two 'started' events of two runs (%d)" % len(started))
joined = [e for e in ev if e["type"] == "member" and e["body"].get("event") == "joined" and e["node"].startswith("hm3@")]
want(len(joined) >= 1, "hm3's join, from before the kill -9, is still there")
failed = [e for e in ev if e["type"] == "member" and e["body"].get("to") == "failed" and e["node"].startswith("hm3@")]
want(len(failed) >= 1 and failed[0]["severity"] == "critical", "hm3 failed, critical, is still there")
want(all(ev[i]["time_ms"] >= ev[i + 1]["time_ms"] for i in range(len(ev) - 1)), "newest first")
want(all(set(e) >= {"id", "time_ms", "node", "type", "severity", "who", "body"} for e in ev), "every event has time, node, type, severity, who, body")
PY
)
echo "$PYOUT"
P=$((P + $(grep -c '^  ok: ' <<<"$PYOUT")))
F=$((F + $(grep -c '^  FAILED: ' <<<"$PYOUT")))
CRIT=$(cli events --node "$N2" --severity critical --format json)
check "--severity critical shows only critical events" python3 -c '
import json, sys; e = json.loads(sys.argv[1]); sys.exit(0 if e and all(x["severity"] == "critical" for x in e) else 1)' "$CRIT"
TYPED=$(cli events --node "$N2" --type node --format json)
check "--type node shows only node events" python3 -c '
import json, sys; e = json.loads(sys.argv[1]); sys.exit(0 if len(e) >= 2 and all(x["type"] == "node" for x in e) else 1)' "$TYPED"
check "--since 1s shows fewer events than the default 24h" python3 -c '
import json, sys; a = json.loads(sys.argv[1]); b = json.loads(sys.argv[2]); sys.exit(0 if len(a) < len(b) else 1)' \
    "$(cli events --node "$N2" --since 1s --format json)" "$(cat "$EV")"
check "events table has a header and the started rows" bash -c "'$BEAMLET_BIN' events --node '$N2' --cookie '$BL_COOKIE' | grep -q 'started'"
AFTER=$(cli history --node "$N2" --metric cpu.percent --since 1h --format json |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')
check "history after the restart holds the points from before ($AFTER >= $BEFORE)" test "${AFTER:-0}" -ge "${BEFORE:-1}"
SPARK=$(cli history --node "$N2" --metric load.load1 --since 1h)
check "history prints a sparkline" grep -q $'\xe2\x96' <<<"$SPARK"
check "history of 24h uses 1 min rollups" bash -c "'$BEAMLET_BIN' history --node '$N2' --cookie '$BL_COOKIE' --metric load.load1 --since 24h --format json | grep -q '\"resolution_ms\": 60000'"
check "history without --metric lists the metrics" bash -c "'$BEAMLET_BIN' history --node '$N2' --cookie '$BL_COOKIE' | grep -q 'disk./.used_percent'"
check "a bad --since is refused" bash -c "! '$BEAMLET_BIN' history --node '$N2' --cookie '$BL_COOKIE' --since yesterday 2>/dev/null"
kill -TERM "$PID2"
wait "$PID2" 2>/dev/null

echo "--- node and cluster health, maintenance mode"
# thresholds far above what a loaded test machine shows, except where a test wants a warning
CALM="--health-interval-ms 300 --heartbeat-interval-ms 300 --load-warn-per-cpu 900 --load-crit-per-cpu 1000 --mem-warn-percent 0 --mem-crit-percent 0"
start_node hc1 --role coordinator $CALM || bad "node hc1 starts"
C1=hc1@$HOST
PC1=$LAST_PID
start_node hc2 --role coordinator --join "$C1" $CALM || bad "node hc2 starts"
PC2=$LAST_PID
start_node hc3 --role coordinator --join "$C1" $CALM || bad "node hc3 starts"
PC3=$LAST_PID
start_node ha1 --join "$C1" $CALM --disk-warn-percent 1 --disk-crit-percent 100 || bad "node ha1 starts"
PA1=$LAST_PID
A1=ha1@$HOST
hjson() { cli health --node "$1" --format json 2>/dev/null; }
hget() { # node, python expression on h (the reply)
    hjson "$1" | python3 -c "import json,sys; h=json.load(sys.stdin); print($2)" 2>/dev/null
}
wait_for() { # node, python condition on h, seconds
    local i
    for i in $(seq 1 $(($3 * 4))); do
        [ "$(hget "$1" "bool($2)")" = True ] && return 0
        sleep 0.25
    done
    return 1
}
NODES="[n for n in h['nodes'] if n['state'] == 'active']"
check "4 active members, a leader, quorum" wait_for "$C1" "len($NODES) == 4 and h['leader'] != None and h['components']['quorum']" 30
check "ha1 is warning: its fullest filesystem is above disk_warn_percent 1" \
    wait_for "$C1" "[n['status'] for n in h['nodes'] if n['node'] == '$A1'] == ['warning']" 15
check "the reason names the mount and the threshold" \
    wait_for "$C1" "any('full (warning at 1%)' in r for n in h['nodes'] for r in n['reasons'])" 5
check "the others are healthy; status active (a warning is not trouble), score between 0.8 and 1" \
    wait_for "$C1" "h['status'] == 'active' and 0.8 <= h['score'] < 1.0 and sorted(n['status'] for n in h['nodes']) == ['healthy'] * 3 + ['warning']" 10
SC2=$(hget hc2@$HOST "h['status'], h['score']")
SC1=$(hget "$C1" "h['status'], h['score']")
check "every node computes the same score and status ($SC1 / $SC2)" test "$SC1" = "$SC2"
 # (recommendations apply the asking node's thresholds: ha1's own are lowered)
check "a recommendation says where the disk is full and what to do" \
    wait_for "$A1" "any('on $A1 is' in r['condition'] and 'free space' in r['action'] for r in h['recommendations'])" 10
HT=$(cli health --node "$C1")
check "health table shows the score and every node" bash -c "grep -q '^cluster .*score' <<<\"\$1\" && [ \$(grep -c '@' <<<\"\$1\") -ge 4 ]" _ "$HT"
check "node maintenance on" bash -c "'$BEAMLET_BIN' node maintenance on --node '$A1' --who 'tester' --cookie '$BL_COOKIE' | grep -q 'maintenance on'"
check "status maintenance, seen from another node" wait_for hc2@$HOST "h['status'] == 'maintenance'" 10
kill -9 "$PA1"
wait "$PA1" 2>/dev/null
check "ha1 killed while in maintenance: failed, and the cluster stays 'maintenance' (score 1.0)" \
    wait_for "$C1" "[n['state'] for n in h['nodes'] if n['node'] == '$A1'] == ['failed'] and h['status'] == 'maintenance' and h['score'] == 1.0" 20
start_node ha1 --join "$C1" $CALM || bad "ha1 restarts"
PA1=$LAST_PID
check "maintenance is kept across the restart" wait_for "$A1" "[n['maintenance'] for n in h['nodes'] if n['node'] == '$A1'] == [True]" 10
check "the audit trail has who set maintenance" bash -c "'$BEAMLET_BIN' events --node '$A1' --type admin --format json --cookie '$BL_COOKIE' | grep -q '\"who\": \"tester\"'"
check "node maintenance off" bash -c "'$BEAMLET_BIN' node maintenance off --node '$A1' --cookie '$BL_COOKIE' | grep -q 'maintenance off'"
check "back to active" wait_for "$C1" "h['status'] == 'active' and h['score'] == 1.0" 15
check "node maintenance without on/off is refused" bash -c "! '$BEAMLET_BIN' node maintenance --node '$A1' --cookie '$BL_COOKIE' 2>/dev/null"
kill -9 "$PC3"
wait "$PC3" 2>/dev/null
check "a recommendation for the failed coordinator" wait_for "$C1" "any('hc3@' in r['condition'] and 'failed' in r['condition'] for r in h['recommendations'])" 20
check "a coordinator killed: degraded, quorum kept (2 of 3), score 0.825" \
    wait_for "$C1" "h['status'] == 'degraded' and h['components']['quorum'] and abs(h['score'] - 0.825) < 0.001" 20
kill -9 "$PC2"
wait "$PC2" 2>/dev/null
check "a second coordinator killed: offline, no quorum, score at most 0.25" \
    wait_for "$C1" "h['status'] == 'offline' and not h['components']['quorum'] and h['score'] <= 0.25" 20
kill "$PC1" "$PA1" 2>/dev/null
wait "$PC1" "$PA1" 2>/dev/null

echo "--- bad config is refused naming the key"
ERR=$("$BEAMLET_BIN" node --sname hm_bad --health-interval-ms 5 2>&1)
check "health_interval_ms 5 refused ($ERR)" grep -q "health_interval_ms" <<<"$ERR"
ERR=$(BEAMLET_HEALTH_INTERVAL_MS=abc "$BEAMLET_BIN" node --sname hm_bad 2>&1)
check "BEAMLET_HEALTH_INTERVAL_MS=abc refused" grep -q "health_interval_ms" <<<"$ERR"
for kv in "store-max-mb 0 store_max_mb" "health-store maybe health_store" "history-raw-s 5 history_raw_s" \
    "events-max x events_max" "history-1h-s 10 history_1h_s" "disk-warn-percent 101 disk_warn_percent" \
    "load-crit-per-cpu -1 load_crit_per_cpu" "mem-warn-percent abc mem_warn_percent"; do
    set -- $kv
    ERR=$("$BEAMLET_BIN" node --sname hm_bad --"$1" "$2" 2>&1)
    check "--$1 $2 refused naming $3" grep -q "invalid $3" <<<"$ERR"
done
echo "--- a warning threshold past its critical one is refused, at start and on a reload"
ERR=$("$BEAMLET_BIN" node --sname hm_bad --disk-warn-percent 96 2>&1)
check "disk_warn_percent 96 with disk_crit_percent 95 refused naming both keys and rules" \
    grep -q "invalid disk_warn_percent: 96 is above disk_crit_percent (95).*disk_warning and disk_critical" <<<"$ERR"
ERR=$("$BEAMLET_BIN" node --sname hm_bad --mem-warn-percent 3 2>&1)
check "mem_warn_percent 3 (below mem_crit_percent 5) refused" grep -q "invalid mem_warn_percent: 3 is below mem_crit_percent (5)" <<<"$ERR"
ERR=$("$BEAMLET_BIN" node --sname hm_bad --load-warn-per-cpu 5 2>&1)
check "load_warn_per_cpu 5 (above load_crit_per_cpu 4) refused" grep -q "invalid load_warn_per_cpu" <<<"$ERR"
ERR=$("$BEAMLET_BIN" node --sname hm_bad --alert-rules '[{"name":"var_warn","metric":"disk.used_percent","mount":"/var","op":">=","threshold":90,"severity":"warn"},{"name":"var_crit","metric":"disk.used_percent","mount":"/var","op":">=","threshold":85,"severity":"critical"}]' 2>&1)
check "alert_rules with a warn rule after its critical one refused naming both rules" \
    grep -q "invalid alert_rules: rule var_warn (warn at disk.used_percent >= 90 on /var) would fire only after rule var_crit" <<<"$ERR"
CF=$BL_LOG_DIR/health-thr.$$.json
printf '{"disk_warn_percent": 99, "disk_crit_percent": 95}\n' >"$CF"
check "config validate names the key" bash -c "'$BEAMLET_BIN' config validate '$CF' | grep -q 'disk_warn_percent: 99 is above disk_crit_percent'"
printf '{"disk_warn_percent": 80, "disk_crit_percent": 95}\n' >"$CF"
start_node hm_thr --config "$CF" || bad "hm_thr starts with warn 80 / crit 95"
PTHR=$LAST_PID
printf '{"disk_warn_percent": 97, "disk_crit_percent": 95}\n' >"$CF"
kill -HUP "$PTHR"
check "changed at runtime (SIGHUP): the reload is refused naming the key, nothing changed" bash -c "for i in \$(seq 1 40); do grep -q 'reload: invalid disk_warn_percent: 97 is above disk_crit_percent (95).*nothing changed' '$BL_LOG_DIR/health-hm_thr.log' && exit 0; sleep 0.25; done; exit 1"
check "and the node keeps its thresholds (80 / 95) and answers" bash -c "'$BEAMLET_BIN' config show --node hm_thr@$HOST --format json --cookie '$BL_COOKIE' | python3 -c 'import json,sys; j=json.load(sys.stdin); s=json.dumps(j); sys.exit(0 if \"80\" in s and \"97\" not in s else 1)'"
kill "$PTHR" 2>/dev/null
wait "$PTHR" 2>/dev/null
rm -f "$CF"
check "the node still answers after all that" bash -c "'$BEAMLET_BIN' ping '$N1' --cookie '$BL_COOKIE' >/dev/null"

echo "--- metrics of a missing node fail cleanly"
check "metrics of a node that is not there exits 1" \
    bash -c "! '$BEAMLET_BIN' metrics --node nosuch@$HOST --cookie '$BL_COOKIE' --timeout 2000 2>/dev/null"

cli metrics --node "$N1" --format json >/dev/null 2>&1
kill -TERM "$PID1"
wait "$PID1" 2>/dev/null
check "node stops cleanly on SIGTERM (worker thread joined)" grep -q "stopped" "$BL_LOG_DIR/health-hm1.log"

suite_done
