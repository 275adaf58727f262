#!/usr/bin/env bash
# checks.sh - health checks against real things: a real HTTP server (python3 http.server)
# answering 200, 429 and 503, its TCP port and a closed one, commands exiting 0, 1 and 3, one
# that never ends (killed after its timeout), one whose result flips on every run (damped: it
# never changes state) and one that changes for real (after `consecutive` results). Checks feed
# the cluster score and raise service_critical alerts. Appends "checks P F" to $BL_RESULTS.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
: "${BEAMLET_BIN:=$ROOT/build/asan/beamlet}"
: "${BL_COOKIE:=blc_$$}"
: "${BL_LOG_DIR:=$ROOT/build/test-logs}"
: "${XDG_STATE_HOME:=$ROOT/build/state}"
export XDG_STATE_HOME BEAMLET_LISTEN_ADDRESS=127.0.0.1
mkdir -p "$BL_LOG_DIR"
HOST=$(hostname -s)
P=0
F=0
PIDS=()
ok() { P=$((P + 1)); echo "  ok: $1"; }
bad() { F=$((F + 1)); echo "  FAILED: $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
epmd -daemon 2>/dev/null || true
W=$BL_LOG_DIR/checks.$$
rm -rf "$W"
mkdir -p "$W"
python3 test/health/webhook_listener.py "$W/posts" "$W/port" 0 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$W/port" ] && break; sleep 0.1; done
PORT=$(cat "$W/port")
U=http://127.0.0.1:$PORT/status
echo 0 >"$W/count"
touch "$W/up"
# a closed port: bind one, close it
CLOSED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
CHECKS='[
 {"name":"http_ok","http":"'$U'/200","interval_s":0.3},
 {"name":"http_busy","http":"'$U'/429","interval_s":0.3},
 {"name":"http_down","http":"'$U'/503","interval_s":0.3},
 {"name":"tcp_ok","tcp":"127.0.0.1:'$PORT'","interval_s":0.3},
 {"name":"tcp_closed","tcp":"127.0.0.1:'$CLOSED'","interval_s":0.3},
 {"name":"cmd_ok","command":["true"],"interval_s":0.3},
 {"name":"cmd_warn","command":["sh","-c","exit 1"],"interval_s":0.3},
 {"name":"cmd_crit","command":["sh","-c","exit 3"],"interval_s":0.3},
 {"name":"cmd_hangs","command":["sleep","30"],"interval_s":0.3,"timeout_s":0.5},
 {"name":"cmd_flaps","command":["sh","-c","n=$(cat '$W'/count); echo $((n+1)) > '$W'/count; exit $((n % 2))"],"interval_s":0.2,"consecutive":2},
 {"name":"cmd_file","command":["test","-f","'$W'/up"],"interval_s":0.3,"consecutive":3}
]'
N=hck1@$HOST
"$BEAMLET_BIN" node --sname hck1 --cookie "$BL_COOKIE" --health-interval-ms 300 \
    --load-warn-per-cpu 900 --load-crit-per-cpu 1000 --mem-warn-percent 0 --mem-crit-percent 0 \
    --health-checks "$CHECKS" >"$BL_LOG_DIR/checks-hck1.log" 2>&1 &
PN=$!
PIDS+=($PN)
cj() { "$BEAMLET_BIN" checks --node "$N" --format json --cookie "$BL_COOKIE" 2>/dev/null; }
cget() { cj | python3 -c "import json,sys; c={x['name']: x for x in json.load(sys.stdin)}; print($1)" 2>/dev/null; }
wait_c() { for _ in $(seq 1 $(($2 * 4))); do [ "$(cget "bool($1)")" = True ] && return 0; sleep 0.25; done; return 1; }
status_is() { wait_c "c['$1']['status'] == '$2'" "${3:-20}"; }
for _ in $(seq 1 100); do "$BEAMLET_BIN" ping "$N" --cookie "$BL_COOKIE" >/dev/null 2>&1 && break; sleep 0.1; done
echo "--- each kind of check"
check "HTTP 200 is passing" status_is http_ok passing
check "HTTP 429 is warning" status_is http_busy warning
check "HTTP 503 is critical" status_is http_down critical
check "TCP to a listening port is passing" status_is tcp_ok passing
check "TCP to a closed port is critical" status_is tcp_closed critical
check "a command exiting 0 is passing" status_is cmd_ok passing
check "exit 1 is warning" status_is cmd_warn warning
check "exit 3 is critical" status_is cmd_crit critical
check "a command that hangs is killed after its timeout: critical" status_is cmd_hangs critical
check "its output says it was killed" wait_c "'killed after 500 ms' in c['cmd_hangs']['output']" 10
check "every hung command is killed at its timeout (no sleep older than 6 s, of 30)" bash -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do for p in \$(pgrep -x sleep -P $PN); do [ \$(ps -o etimes= -p \$p) -le 6 ] || { ps -o pid,etimes,stat,cmd -p \$p; exit 1; }; done; sleep 0.5; done"
echo "--- flapping is damped"
check "the flapping command ran at least 8 times" wait_c "c['cmd_flaps']['runs'] >= 8" 20
check "and never left its first state (passing)" wait_c "c['cmd_flaps']['status'] == 'passing'" 1
FIRST=$(cget "c['cmd_flaps']['changed_ms']")
sleep 2
check "its state never changed ($FIRST)" test "$(cget "c['cmd_flaps']['changed_ms']")" = "$FIRST"
echo "--- a real change needs 'consecutive' results"
check "cmd_file passing" status_is cmd_file passing
RUNS=$(cget "c['cmd_file']['runs']")
rm -f "$W/up"
check "after the file goes: warning" status_is cmd_file warning 20
AFTER=$(cget "c['cmd_file']['runs']")
check "it took at least 3 more runs ($RUNS -> $AFTER)" test "$AFTER" -ge $((RUNS + 3))
echo "--- checks feed health and alerts"
H=$("$BEAMLET_BIN" health --node "$N" --format json --cookie "$BL_COOKIE")
check "the score's services part counts the checks" python3 -c '
import json, sys; h = json.loads(sys.argv[1]); s = h["components"]["services"]
sys.exit(0 if 0 < s < 1 and h["status"] == "degraded" and len(h["checks"]) == 11 else 1)' "$H"
check "a service_critical alert per critical check" bash -c "for i in \$(seq 1 40); do n=\$('$BEAMLET_BIN' alerts --node '$N' --format json --cookie '$BL_COOKIE' | python3 -c 'import json,sys; print(len([a for a in json.load(sys.stdin) if a[\"rule\"]==\"service_critical\" and a[\"state\"]==\"firing\"]))'); [ \"\$n\" = 4 ] && exit 0; sleep 0.25; done; exit 1"
check "check changes are events" bash -c "'$BEAMLET_BIN' events --node '$N' --type check --format json --cookie '$BL_COOKIE' | grep -q 'cmd_file'"
check "beamlet checks prints a table" bash -c "'$BEAMLET_BIN' checks --node '$N' --cookie '$BL_COOKIE' | grep -q '^tcp_closed .*critical'"
echo "--- bad checks are refused naming the key"
for bad_check in '[{"name":"x","tcp":"example.com:80"}]' '[{"name":"x","command":"sh -c true"}]' \
    '[{"name":"x","http":"ftp://x"}]' '[{"name":"x","tcp":"127.0.0.1:1","interval_s":0}]' \
    '[{"name":"x","tcp":"127.0.0.1:1"},{"name":"x","tcp":"127.0.0.1:2"}]'; do
    ERR=$("$BEAMLET_BIN" node --sname hck_bad --health-checks "$bad_check" 2>&1)
    check "health_checks $bad_check refused" grep -q "invalid health_checks" <<<"$ERR"
done
kill "$PN"
wait "$PN" 2>/dev/null
check "the node stops cleanly with commands running" grep -q "stopped" "$BL_LOG_DIR/checks-hck1.log"
echo "checks: $P passed, $F failed"
[ -n "${BL_RESULTS:-}" ] && echo "checks $P $F" >>"$BL_RESULTS"
[ "$F" -eq 0 ]
