#!/usr/bin/env bash
# stage.sh DIR tarball|deb - lay out beamlet's files under DIR, the one place that knows what
# ships: `make release` packs DIR (a self-contained tree, everything relative to it); `make deb`
# passes DIR/usr-style paths (FHS: /usr/bin, /usr/lib/erlang/lib/beamlet-VERSION, /etc/beamlet).
set -eu
DIR=$1 KIND=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
VERSION=$(sed -n 's/^#define BL_VERSION "\(.*\)"/\1/p' include/beamlet/beamlet.h)
BIN=build/dist/beamlet
[ -x "$BIN" ] || { echo "stage.sh: $BIN missing (make dist-bin)" >&2; exit 1; }
if [ "$KIND" = tarball ]; then
    P_BIN=$DIR/bin P_LIB=$DIR/lib P_APP=$DIR/lib/beamlet-$VERSION P_INC=$DIR/include
    P_SHARE=$DIR/share P_ETC=$DIR/etc/beamlet P_UNIT=$DIR/lib/systemd/system
    APP_TO_BIN=../../../bin/beamlet
else
    P_BIN=$DIR/usr/bin P_LIB=$DIR/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH) \
        P_APP=$DIR/usr/lib/erlang/lib/beamlet-$VERSION P_INC=$DIR/usr/include P_SHARE=$DIR/usr/share \
        P_ETC=$DIR/etc/beamlet P_UNIT=$DIR/lib/systemd/system
    APP_TO_BIN=../../../../../bin/beamlet
fi
install -d "$P_BIN" "$P_LIB" "$P_APP/ebin" "$P_APP/src" "$P_APP/priv" "$P_INC/beamlet" \
    "$P_SHARE/doc/beamlet/docs" "$P_ETC" "$P_UNIT" "$P_SHARE/beamlet/gleam"
install -m 0755 "$BIN" "$P_BIN/beamlet"
install -m 0644 build/dist/libbeamlet.a "$P_LIB/libbeamlet.a"
install -m 0644 include/beamlet/*.h "$P_INC/beamlet/"
# the shim: compiled modules, the .app, sources; priv/beamlet -> the installed binary
install -m 0644 erlang_shim/ebin/*.beam erlang_shim/ebin/beamlet.app "$P_APP/ebin/"
install -m 0644 erlang_shim/src/*.erl erlang_shim/src/beamlet.app.src "$P_APP/src/"
ln -sfn "$APP_TO_BIN" "$P_APP/priv/beamlet"
# the Gleam package (its src/ links to the shim's modules: copy what they point at)
cp -rL erlang_shim/gleam/gleam.toml erlang_shim/gleam/README.md erlang_shim/gleam/src \
    erlang_shim/gleam/test "$P_SHARE/beamlet/gleam/"
find "$P_SHARE/beamlet/gleam" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
install -m 0644 README.md "$P_SHARE/doc/beamlet/"
install -m 0644 docs/*.md "$P_SHARE/doc/beamlet/docs/"
# configuration: the production template, and the unit
if "$BIN" config template prod >/dev/null 2>&1; then
    "$BIN" config template prod >"$P_ETC/beamlet.json"
else
    install -m 0644 rel/config/beamlet.json "$P_ETC/beamlet.json"
fi
chmod 0644 "$P_ETC/beamlet.json"
[ -f rel/systemd/beamlet@.service ] && install -m 0644 rel/systemd/beamlet@.service "$P_UNIT/"
# man page and shell completion, generated from the binary's own help
if command -v help2man >/dev/null && "$BIN" completion bash >/dev/null 2>&1; then
    install -d "$P_SHARE/man/man1" "$P_SHARE/bash-completion/completions" \
        "$P_SHARE/zsh/vendor-completions"
    rel/release/manpage.sh "$BIN" | gzip -9n >"$P_SHARE/man/man1/beamlet.1.gz"
    "$BIN" completion bash >"$P_SHARE/bash-completion/completions/beamlet"
    "$BIN" completion zsh >"$P_SHARE/zsh/vendor-completions/_beamlet"
    chmod 0644 "$P_SHARE/man/man1/beamlet.1.gz" "$P_SHARE/bash-completion/completions/beamlet" \
        "$P_SHARE/zsh/vendor-completions/_beamlet"
fi
rmdir "$P_UNIT" 2>/dev/null || true
