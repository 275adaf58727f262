#!/usr/bin/env bash
# run.sh - the release tarball as a user gets it: `make release`, unpacked into a temporary
# directory (then moved, to prove nothing points back at where it was unpacked or built), its
# bin/beamlet run from there: version string, a node that answers ping from the unpacked CLI and
# from erl, the shim loaded with ERL_LIBS from the unpacked lib/, the default config valid.
# Appends "release P F" to $BL_RESULTS.
set -u
SUITE=release
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
VERSION=$(sed -n 's/^#define BL_VERSION "\(.*\)"/\1/p' include/beamlet/beamlet.h)
NAME=beamlet-$VERSION-linux-$(uname -m)
TGZ=build/$NAME.tar.gz
: >"$LOGS/$SUITE.log"
if ! make --no-print-directory release >>"$LOGS/$SUITE.log" 2>&1; then
    bad "make release (see $LOGS/$SUITE.log)"; tail -20 "$LOGS/$SUITE.log"; record; exit 1
fi
ok "make release built $TGZ"
TMP=$(mktemp -d /tmp/beamlet-release-test.XXXXXX)
NODEPID=
cleanup() { [ -n "$NODEPID" ] && kill -9 "$NODEPID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
list=$(tar tzf "$TGZ")
for f in bin/beamlet "lib/beamlet-$VERSION/ebin/beamlet.app" "lib/beamlet-$VERSION/ebin/beamlet.beam" \
    "lib/beamlet-$VERSION/priv/beamlet" lib/libbeamlet.a include/beamlet/beamlet.h \
    share/beamlet/gleam/gleam.toml share/beamlet/gleam/src/beamlet.gleam \
    share/beamlet/gleam/src/beamlet_app.erl share/doc/beamlet/README.md \
    share/doc/beamlet/docs/deploy.md etc/beamlet/beamlet.json lib/systemd/system/beamlet@.service \
    share/man/man1/beamlet.1.gz share/bash-completion/completions/beamlet \
    share/zsh/vendor-completions/_beamlet; do
    if grep -qx "$NAME/$f" <<<"$list"; then ok "tarball holds $f"; else bad "tarball lacks $f"; fi
done
tar xzf "$TGZ" -C "$TMP" && mv "$TMP/$NAME" "$TMP/elsewhere"
D=$TMP/elsewhere
v=$("$D/bin/beamlet" version)
echo "version: $v" >>"$LOGS/$SUITE.log"
if [[ "$v" =~ ^beamlet\ $VERSION\ \(git\ [0-9a-f]{7,}(-dirty)?,\ built\ [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\)$ ]]; then
    ok "version from the unpacked tree: $v"
else
    bad "version string: '$v'"
fi
if strings "$D/bin/beamlet" | grep -q "$ROOT"; then bad "the binary names the build directory $ROOT"; else ok "no build path in bin/beamlet"; fi
if [ "$(readlink -f "$D/lib/beamlet-$VERSION/priv/beamlet")" = "$D/bin/beamlet" ]; then
    ok "the shim's priv/beamlet resolves to the unpacked bin/beamlet"
else
    bad "priv/beamlet -> $(readlink -f "$D/lib/beamlet-$VERSION/priv/beamlet")"
fi
check "the shipped default config validates" "$D/bin/beamlet" config validate "$D/etc/beamlet/beamlet.json"
COOKIE=rel_$$
N=rel$$
(cd / && exec "$D/bin/beamlet" node --sname "$N" --cookie "$COOKIE" --listen-address 127.0.0.1 \
    >"$LOGS/$SUITE-node.log" 2>&1) &
NODEPID=$!
if wait_for 80 "$D/bin/beamlet" ping "$N@$HOST" --cookie "$COOKIE" --timeout 2000; then
    ok "a node run from the unpacked tree answers ping from the unpacked CLI"
else
    bad "no pong from $N@$HOST (log: $LOGS/$SUITE-node.log)"
fi
out=$(cd / && ERL_LIBS="$D/lib" timeout -k 5 60 erl -sname "relerl$$" -setcookie "$COOKIE" -noshell -eval "
    {ok, Started} = application:ensure_all_started(beamlet),
    true = lists:member(beamlet, Started),
    Dir = code:lib_dir(beamlet),
    pong = net_adm:ping('$N@$HOST'),
    {ok, #{version := V}} = beamlet:call('$N@$HOST', beamlet, info),
    io:format(\"shim from ~s, node version ~s~n\", [Dir, V]), halt()." 2>&1)
echo "$out" >>"$LOGS/$SUITE.log"
if grep -q "shim from $D/lib/beamlet-$VERSION, node version $VERSION" <<<"$out"; then
    ok "ERL_LIBS=<unpacked>/lib: application:ensure_all_started(beamlet), a call to the node"
else
    bad "shim with ERL_LIBS: $out"
fi
kill -TERM "$NODEPID" 2>/dev/null
if wait "$NODEPID"; then ok "the node stops cleanly on SIGTERM"; else bad "node exit status $?"; fi
NODEPID=
record
[ "$F" -eq 0 ]
