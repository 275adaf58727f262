#!/usr/bin/env bash
# run.sh - the health suite: real beamlet nodes on loopback, asked through the real CLI and a real
# erl node. Metrics must agree with free -b, df -B1 and /proc/loadavg on this machine; bad
# health config is refused naming the key. Appends "health P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${BL_COOKIE:=blh_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
mkdir -p "$BL_LOG_DIR"
export BEAMLET_LISTEN_ADDRESS=127.0.0.1
HOST=$(hostname -s)
P=0
F=0
PIDS=()
ok() { P=$((P + 1)); echo "  ok: $1"; }
bad() { F=$((F + 1)); echo "  FAILED: $1"; }
check() { # description, command...
    local d=$1; shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
epmd -daemon 2>/dev/null || true

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
cli() { "$BEAMLET_BIN" "$@" --cookie "$BL_COOKIE" --timeout 10000; }

echo "--- metrics agree with free, df and /proc/loadavg"
start_node hm1 --health-interval-ms 500 || bad "node hm1 starts"
N1=hm1@$HOST
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
want(abs(m["load"]["load15"] - float(load[2])) <= 0.3, "load.load15 ~ /proc/loadavg (%s vs %s)" % (m["load"]["load15"], load[2]))
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
PROC_STATUS=$(grep -E '^Threads' /proc/$LAST_PID/status | awk '{print $2}')
check "node's own threads seen ($PROC_STATUS in /proc)" test -n "$PROC_STATUS"

echo "--- from a BEAM node: gen_server:call({beamlet_health, Node}, metrics)"
ERL_OUT=$(erl -sname "blh_erl_$$" -setcookie "$BL_COOKIE" -noshell -eval "
    M = gen_server:call({beamlet_health, '$N1'}, metrics, 10000),
    #{memory := #{total_bytes := T}, disks := [_ | _], cpu := #{percent := C}} = M,
    pong = gen_server:call({beamlet_health, '$N1'}, ping),
    {error, unknown_request} = gen_server:call({beamlet_health, '$N1'}, what),
    io:format(\"ok ~p ~p~n\", [T, C]), halt()." 2>&1)
check "erl gets a metrics map ($ERL_OUT)" grep -q '^ok ' <<<"$ERL_OUT"

echo "--- bad config is refused naming the key"
ERR=$("$BEAMLET_BIN" node --sname hm_bad --health-interval-ms 5 2>&1)
check "health_interval_ms 5 refused ($ERR)" grep -q "health_interval_ms" <<<"$ERR"
ERR=$(BEAMLET_HEALTH_INTERVAL_MS=abc "$BEAMLET_BIN" node --sname hm_bad 2>&1)
check "BEAMLET_HEALTH_INTERVAL_MS=abc refused" grep -q "health_interval_ms" <<<"$ERR"
check "the node still answers after all that" bash -c "'$BEAMLET_BIN' ping '$N1' --cookie '$BL_COOKIE' >/dev/null"

echo "--- metrics of a missing node fail cleanly"
check "metrics of a node that is not there exits 1" \
    bash -c "! '$BEAMLET_BIN' metrics --node nosuch@$HOST --cookie '$BL_COOKIE' --timeout 2000 2>/dev/null"

cli metrics --node "$N1" --format json >/dev/null 2>&1
kill -TERM "$LAST_PID"
wait "$LAST_PID" 2>/dev/null
check "node stops cleanly on SIGTERM (worker thread joined)" grep -q "stopped" "$BL_LOG_DIR/health-hm1.log"

echo "health: $P passed, $F failed"
[ -n "${BL_RESULTS:-}" ] && echo "health $P $F" >>"$BL_RESULTS"
[ "$F" -eq 0 ]
