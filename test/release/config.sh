#!/usr/bin/env bash
# config.sh - configuration and admin commands as an operator uses them: the three templates
# validate; `config validate` finds every kind of error (syntax, top level, unknown key, wrong
# type, out of range, bad enum, bad element, keys in conflict) naming each key, exit 2; `config
# show` of a running node gives each value's source (default/file/env/flag, the seeds' NODE_ID and
# CLUSTER_PORT aliases) with secrets redacted; SIGHUP re-reads the file (live keys applied, the rest
# reported, a bad file refused with the node untouched); `service list|restart` (the restarted
# registry gets the peer's entries back); `node leave` (the peer sees it leave, exit 0); `--help`
# on every command; bash/zsh completion. Appends "config_admin P F" to $BL_RESULTS.
set -u
SUITE=config_admin
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
BIN=${BEAMLET_BIN:-$ROOT/build/asan/beamlet}
: >"$LOGS/$SUITE.log"
TMP=$(mktemp -d /tmp/beamlet-config-test.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT
log() { echo "$*" >>"$LOGS/$SUITE.log"; }

# ---- templates ----
for e in dev staging prod; do
    "$BIN" config template "$e" >"$TMP/$e.json"
    if out=$("$BIN" config validate "$TMP/$e.json") && python3 -m json.tool "$TMP/$e.json" >/dev/null; then
        ok "template $e is JSON and validates ($out)"
    else
        bad "template $e: $out"
    fi
done
j() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get(sys.argv[2], d.get('_'+sys.argv[2], '')))" "$@"; }
[ "$(j "$TMP/dev.json" log_level)" = debug ] && [ "$(j "$TMP/prod.json" log_format)" = json ] &&
    [ "$(j "$TMP/dev.json" listen_address)" = 127.0.0.1 ] && [ "$(j "$TMP/prod.json" failure_threshold)" = 5 ] &&
    ok "templates differ as documented (dev: debug on loopback; prod: json logs, threshold 5)" ||
    bad "template values"
grep -q '"_\?tls": true' "$TMP/prod.json" && grep -q 'allow' "$TMP/prod.json" &&
    grep -q '"_comment"' "$TMP/prod.json" && ok "prod template: TLS on, an allow-list placeholder, notes as _ keys" ||
    bad "prod template lacks TLS/allow/notes"
"$BIN" config template nosuch >/dev/null 2>&1
[ $? -eq 2 ] && ok "config template with an unknown environment: exit 2" || bad "config template nosuch"

# ---- validate: every kind of error, each named ----
cat >"$TMP/bad.json" <<'J'
{
  "_comment": "every kind of mistake",
  "heartbeat_interval": 500,
  "net_ticktime": "abc",
  "listen_port": 70000,
  "role": "boss",
  "join": ["good@host", 7],
  "capabilities": {"a": 1},
  "publish": "maybe",
  "sname": "a",
  "name": "a@b.c",
  "heartbeat_interval_ms": 2000,
  "election_timeout_ms": 1000,
  "remove_after_ms": 500,
  "data_dir": "relative/dir",
  "gossip_secret": "s3cr3t"
}
J
out=$("$BIN" config validate "$TMP/bad.json")
rc=$?
log "$out"
[ "$rc" -eq 2 ] && ok "config validate of a bad file: exit 2" || bad "exit $rc for a bad file"
for k in "heartbeat_interval: unknown key (did you mean heartbeat_interval_ms?)" "net_ticktime: 'abc'" \
    "listen_port: '70000'" "role: 'boss'" "join: element 1 is not a string" "capabilities: wrong JSON type" \
    "publish: 'maybe'" "name: give only one of sname, name and node_name" \
    "election_timeout_ms: must be larger than heartbeat_interval_ms" "remove_after_ms: must be longer" \
    "data_dir: 'relative/dir' must be an absolute path" "gossip_secret: is set but gossip is false"; do
    grep -qF "$TMP/bad.json: $k" <<<"$out" && ok "validate names: $k" || bad "validate misses: $k"
done
grep -q "^12 problems$" <<<"$out" && ok "validate lists all 12 problems" || bad "problem count: $(tail -1 <<<"$out")"
printf '{"cluster": "x",\n  "role": }\n' >"$TMP/syntax.json"
out=$("$BIN" config validate "$TMP/syntax.json")
[ $? -eq 2 ] && grep -q "syntax.json:2:.*(syntax)" <<<"$out" && ok "syntax error: exit 2 with line:column ($out)" || bad "syntax: $out"
echo '["a"]' >"$TMP/top.json"
out=$("$BIN" config validate "$TMP/top.json")
[ $? -eq 2 ] && grep -q "top level" <<<"$out" && ok "a top-level array: exit 2" || bad "top level: $out"
"$BIN" config validate "$TMP/nosuch.json" >/dev/null
[ $? -eq 2 ] && ok "a missing file: exit 2" || bad "missing file"

# ---- a running node: show, sources, aliases, redaction ----
COOKIE=cfgsecret_$$
PORT=$((20000 + $$ % 20000))
cat >"$TMP/node.json" <<J
{"_comment": "test", "cluster": "cfgtest", "log_level": "info", "role": "coordinator",
 "event_log_size": 300}
J
NODE_ID="cfga$$" CLUSTER_PORT=$PORT COOKIE=$COOKIE "$BIN" node --config "$TMP/node.json" \
    --gossip-secret "topsecret$$" --heartbeat-interval-ms 700 >"$LOGS/$SUITE-a.log" 2>&1 &
A=$!
PIDS+=($A)
N=cfga$$@$HOST
wait_for 80 "$BIN" ping "$N" --cookie "$COOKIE" --timeout 2000 && ok "node named by NODE_ID is up" || bad "node cfga did not start"
epmd -names | grep -q "^name cfga$$ at port $PORT\$" && ok "CLUSTER_PORT=$PORT: the node listens there (epmd -names)" ||
    bad "CLUSTER_PORT not applied: $(epmd -names)"
show=$("$BIN" config show --node "$N" --cookie "$COOKIE")
log "$show"
row() { awk -v k="$1" '$1 == k { print $2, $3, $4 }' <<<"$show" | sed 's/ *$//'; }
[ "$(row name)" = "cfga$$ env NODE_ID" ] && ok "show: name from env NODE_ID" || bad "show name: $(row name)"
[ "$(row listen_port)" = "$PORT env CLUSTER_PORT" ] && ok "show: listen_port from env CLUSTER_PORT" || bad "show listen_port: $(row listen_port)"
[ "$(row event_log_size)" = "300 file $TMP/node.json" ] && ok "show: event_log_size from the file" || bad "show file: $(row event_log_size)"
[ "$(row heartbeat_interval_ms)" = "700 flag --heartbeat-interval-ms" ] && ok "show: heartbeat_interval_ms from a flag" || bad "show flag: $(row heartbeat_interval_ms)"
[ "$(row failure_threshold)" = "3 default" ] && ok "show: failure_threshold default" || bad "show default: $(row failure_threshold)"
[ "$(row cookie)" = "(redacted) env COOKIE" ] && [ "$(row gossip_secret)" = "(redacted) flag --gossip-secret" ] &&
    ok "show: cookie and gossip_secret redacted, sources kept" || bad "redaction: $(row cookie) / $(row gossip_secret)"
json=$("$BIN" config show --node "$N" --cookie "$COOKIE" --format json)
if grep -q "$COOKIE\|topsecret$$" <<<"$show$json"; then bad "a secret appears in config show"; else ok "no secret in the table or the JSON"; fi
python3 -c "import json,sys; d=json.loads(sys.argv[1]); r={x['key']: x for x in d}; assert r['cluster']['source']=='file' and r['cluster']['value']=='cfgtest'" "$json" &&
    ok "show --format json: rows of key/value/source/from" || bad "show json: $json"

# ---- SIGHUP reload ----
sed -i 's/"info"/"debug"/; s/"cfgtest"/"other"/' "$TMP/node.json"
kill -HUP "$A"
wait_for 40 grep -q "reload: log_level info -> debug (applied)" "$LOGS/$SUITE-a.log" &&
    ok "SIGHUP: log_level info -> debug applied" || bad "no applied log_level"
grep -q "reload: cluster cfgtest -> other (needs a restart; not applied)" "$LOGS/$SUITE-a.log" &&
    ok "SIGHUP: cluster change reported as needing a restart" || bad "no restart-needed line"
show=$("$BIN" config show --node "$N" --cookie "$COOKIE")
[ "$(row log_level)" = "debug file $TMP/node.json" ] && [ "$(row cluster | cut -d' ' -f1)" = cfgtest ] &&
    ok "show after reload: log_level debug, cluster still cfgtest" || bad "after reload: $(row log_level) / $(row cluster)"
echo '{"log_level": "loud"}' >"$TMP/node.json"
kill -HUP "$A"
wait_for 40 grep -q "reload: invalid log_level: 'loud'.*nothing changed" "$LOGS/$SUITE-a.log" &&
    "$BIN" ping "$N" --cookie "$COOKIE" >/dev/null && ok "a bad file on reload: refused, nothing changed, node up" ||
    bad "bad reload"

# ---- services ----
"$BIN" node --sname "cfgb$$" --cookie "$COOKIE" --cluster cfgtest --join "$N" >"$LOGS/$SUITE-b.log" 2>&1 &
B=$!
PIDS+=($B)
NB=cfgb$$@$HOST
wait_for 80 "$BIN" ping "$NB" --cookie "$COOKIE" --timeout 2000 || bad "node cfgb did not start"
list=$("$BIN" service list --node "$N" --cookie "$COOKIE")
log "$list"
[ "$(grep -c ' running ' <<<"$list")" -eq 4 ] && ok "service list: pg, registry, global, pubsub running" || bad "service list: $list"
before=$(awk '$1 == "registry" { print $4 }' <<<"$list")
out=$(erl -sname "cfgerl$$" -setcookie "$COOKIE" -noshell -eval "
    {ok, _} = gen_server:call({beamlet_registry, '$NB'}, {register, #{name => <<\"svc_$$\">>}}),
    io:format(\"registered~n\"), halt()." 2>&1)
grep -q registered <<<"$out" && ok "an entry registered on the peer" || bad "register: $out"
"$BIN" service restart registry --node "$N" --cookie "$COOKIE" >"$TMP/restart.txt"
rc=$?
after=$("$BIN" service list --node "$N" --cookie "$COOKIE" | awk '$1 == "registry" { print $4, $5 }')
[ "$rc" -eq 0 ] && [ "${after% *}" != "$before" ] && [ "${after#* }" = 1 ] &&
    ok "service restart registry: a new pid ($before -> ${after% *}), 1 restart ($(cat "$TMP/restart.txt"))" ||
    bad "restart: rc $rc, $before -> $after"
found=$(timeout 60 erl -sname "cfgerl2$$" -setcookie "$COOKIE" -noshell -eval "
    F = fun L(0) -> none; L(K) -> case gen_server:call({beamlet_registry, '$N'}, {find, #{name => <<\"svc_$$\">>}}) of
            [_ | _] -> found; [] -> timer:sleep(250), L(K - 1) end end,
    io:format(\"~p~n\", [F(120)]), halt()." 2>&1)
grep -q found <<<"$found" && ok "the restarted registry has the peer's entry again" || bad "after restart: $found"
if out=$("$BIN" metrics --node "$N" --cookie "$COOKIE" --format=json 2>&1) &&
    python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert 'memory' in d" "$out"; then
    ok "metrics --format=json (as the seeds write it): JSON with memory"
else
    bad "metrics --format=json: $out"
fi
"$BIN" service restart nosuch --node "$N" --cookie "$COOKIE" 2>/dev/null
[ $? -eq 1 ] && ok "service restart of an unknown service: exit 1" || bad "unknown service restart"
"$BIN" config show --node "$N" --cookie wrongcookie --timeout 2000 >/dev/null 2>&1
[ $? -eq 1 ] && ok "config show with a wrong cookie: exit 1" || bad "wrong cookie"

# ---- the key table and the cluster configuration on this one coordinator (its own leader) ----
keys=$("$BIN" config keys)
awk '$1 == "failure_threshold" && $4 == "live" && $5 == "yes"' <<<"$keys" | grep -q . &&
    awk '$1 == "role" && $5 == "no"' <<<"$keys" | grep -q . &&
    [ "$("$BIN" config keys --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)) > 60)')" = True ] &&
    ok "config keys: failure_threshold live and cluster-wide, role per node, JSON" || bad "config keys: $keys"
out=$("$BIN" config set heartbeat_interval_ms 5 --node "$N" --cookie "$COOKIE" 2>&1)
[ $? -eq 1 ] && grep -q "invalid heartbeat_interval_ms" <<<"$out" &&
    ok "config set of a bad value: exit 1 naming the key ($out)" || bad "config set bad value: $out"
"$BIN" config set failure_threshold 4 --node "$N" --cookie "$COOKIE" >/dev/null &&
    [ "$("$BIN" config get failure_threshold --node "$N" --cookie "$COOKIE")" = 4 ] &&
    "$BIN" config show --node "$N" --cookie "$COOKIE" | awk '$1 == "failure_threshold" {print $2, $3}' | grep -qx "4 cluster" &&
    "$BIN" config history --node "$N" --cookie "$COOKIE" | grep -q "failure_threshold .*-> 4" &&
    ok "config set/get/history: failure_threshold 4 set, running (config show: source cluster), recorded" || bad "config set/get/history"
"$BIN" config unset failure_threshold --node "$N" --cookie "$COOKIE" >/dev/null &&
    ! "$BIN" config get failure_threshold --node "$N" --cookie "$COOKIE" >/dev/null 2>&1 &&
    ok "config unset: the key is gone (get exits 1)" || bad "config unset"

# an embedded node (a C program on the library, no beamlet_admin): a clear message
if [ -x "${TEST_WORKER_BIN:-}" ]; then
    "$TEST_WORKER_BIN" --sname "cfgw$$" --cookie "$COOKIE" >"$LOGS/$SUITE-w.log" 2>&1 &
    W=$!
    PIDS+=($W)
    wait_for 80 "$BIN" ping "cfgw$$@$HOST" --cookie "$COOKIE" --timeout 2000
    out=$("$BIN" service list --node "cfgw$$@$HOST" --cookie "$COOKIE" 2>&1)
    [ $? -eq 1 ] && grep -q "does not run beamlet's admin process" <<<"$out" &&
        ok "a node without beamlet_admin: exit 1, says so" || bad "embedded node: $out"
    kill -TERM "$W"
fi

# ---- node leave ----
"$BIN" node leave --node "$NB" --cookie "$COOKIE" >/dev/null
rc=$?
wait "$B"
brc=$?
[ "$rc" -eq 0 ] && [ "$brc" -eq 0 ] && ok "node leave: acknowledged, the node exits 0" || bad "node leave rc $rc, exit $brc"
grep -q "cfgb$$@$HOST active -> leaving" "$LOGS/$SUITE-a.log" && ok "the peer saw it leave (active -> leaving)" ||
    bad "peer did not see leaving"
kill -TERM "$A"
wait "$A"

# ---- --help everywhere ----
cmds="node
ping
info
stats
cluster status
cluster events
nodes list
version
config template
config validate
config show
config keys
config get
config set
config unset
config history
config status
config watch
service list
service restart
node leave
completion
metrics"
n=0
while read -r c; do
    [ -z "$c" ] && continue
    out=$("$BIN" $c --help 2>&1)
    if [ $? -eq 0 ] && grep -q "^usage: beamlet $c" <<<"$out"; then n=$((n + 1)); else bad "'$c --help': $out"; fi
done <<<"$cmds"
[ "$n" -eq 23 ] && ok "--help on all $n commands" || bad "only $n commands with --help"

# ---- completion ----
"$BIN" completion bash >"$TMP/c.bash"
comp() { bash -c ". '$TMP/c.bash'; COMP_WORDS=($1); COMP_CWORD=$2; _beamlet; echo \"\${COMPREPLY[*]}\""; }
[[ " $(comp 'beamlet con' 1) " == *" config "* ]] && [[ "$(comp 'beamlet config ""' 2)" == "template validate show keys get set unset history status watch" ]] &&
    [[ " $(comp 'beamlet node --log-l' 2) " == *" --log-level "* ]] && [[ "$(comp 'beamlet config template ""' 3)" == "dev staging prod" ]] &&
    ok "bash completion: commands, subcommands, node flags, template names" || bad "bash completion"
if command -v zsh >/dev/null; then
    "$BIN" completion zsh >"$TMP/_beamlet" && zsh -n "$TMP/_beamlet" && ok "zsh completion parses (zsh -n)" || bad "zsh completion"
else
    echo "  skipped: zsh not installed (zsh completion syntax)"
fi
record
[ "$F" -eq 0 ]
