#!/usr/bin/env bash
# deb.sh - the Debian packages: `make deb` (revision 1, and 2 for the upgrade), inspected
# (dpkg-deb -I/-c: dependencies from dpkg-shlibdeps, conffiles, maintainer scripts, file list),
# lintian with no tag left but the overridden ones, then installed, used, upgraded, removed and
# purged by test/release/deb_inside.sh in a throwaway root: an overlay of / (writes go to a tmpfs)
# chrooted in a private mount namespace, so the real machine never sees the package. Without
# overlayfs it installs on the machine itself and always purges (trap).
# Appends "deb P F" to $BL_RESULTS.
set -u
SUITE=deb
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
: >"$LOGS/$SUITE.log"
VERSION=$(sed -n 's/^#define BL_VERSION "\(.*\)"/\1/p' include/beamlet/beamlet.h)
ARCH=$(dpkg --print-architecture)
TMP=$(mktemp -d /tmp/beamlet-deb-test.XXXXXX)
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
for rev in 2 1; do
    if ! DEB_REVISION=$rev make --no-print-directory deb >>"$LOGS/$SUITE.log" 2>&1; then
        bad "make deb (revision $rev; see $LOGS/$SUITE.log)"; record; exit 1
    fi
    cp "build/beamlet_$VERSION-${rev}_$ARCH.deb" "build/beamlet-dev_$VERSION-${rev}_$ARCH.deb" "$TMP/"
done
DEB=$TMP/beamlet_$VERSION-1_$ARCH.deb
DEV=$TMP/beamlet-dev_$VERSION-1_$ARCH.deb
ok "make deb: $(basename "$DEB") ($(du -k "$DEB" | cut -f1) kB), $(basename "$DEV")"

# ---- inspect ----
dep=$(dpkg-deb -f "$DEB" Depends)
echo "Depends: $dep" >>"$LOGS/$SUITE.log"
for lib in libc6 libev4 libjansson4; do
    grep -q "$lib (>= " <<<"$dep" && ok "Depends has $lib with a version (dpkg-shlibdeps)" || bad "Depends lacks $lib: $dep"
done
list=$(dpkg-deb -c "$DEB")
devlist=$(dpkg-deb -c "$DEV")
for f in ./usr/bin/beamlet "./usr/lib/erlang/lib/beamlet-$VERSION/ebin/beamlet.app" \
    "./usr/lib/erlang/lib/beamlet-$VERSION/priv/beamlet -> ../../../../../bin/beamlet" \
    ./etc/beamlet/beamlet.json ./lib/systemd/system/beamlet@.service ./usr/share/man/man1/beamlet.1.gz \
    ./usr/share/doc/beamlet/copyright ./usr/share/doc/beamlet/docs/deploy.md \
    ./usr/share/bash-completion/completions/beamlet ./usr/share/beamlet/gleam/gleam.toml; do
    grep -qF " $f" <<<"$list" && ok "beamlet.deb holds ${f#./}" || bad "beamlet.deb lacks $f"
done
grep -q " ./usr/include/beamlet/beamlet.h" <<<"$devlist" && grep -q "/libbeamlet.a$" <<<"$devlist" &&
    ok "beamlet-dev.deb holds the headers and libbeamlet.a" || bad "beamlet-dev contents"
[ "$(awk '{print $2}' <<<"$list$devlist" | sort -u)" = root/root ] && ok "every file owned by root" || bad "owners"
[ "$(dpkg-deb -I "$DEB" conffiles)" = /etc/beamlet/beamlet.json ] &&
    ok "conffiles: /etc/beamlet/beamlet.json" || bad "conffiles"
if command -v lintian >/dev/null; then
    lintian -I --pedantic "$DEB" "$DEV" >"$TMP/lintian.txt" 2>&1
    rc=$?
    lint=$(grep -v "running with root privileges" "$TMP/lintian.txt")
    echo "lintian: $lint" >>"$LOGS/$SUITE.log"
    [ "$rc" -eq 0 ] && [ -z "$lint" ] && ok "lintian -I --pedantic: no tags (the overridden ones are explained in rel/debian/*.lintian-overrides)" ||
        bad "lintian: $lint"
else
    echo "  skipped: lintian not installed"
fi

# ---- install, use, upgrade, remove, purge in a throwaway root ----
if [ "$(id -u)" -ne 0 ]; then
    echo "  skipped: installing needs root"
    record; [ "$F" -eq 0 ]; exit
fi
inside=$TMP/inside.txt
cat >"$TMP/ns.sh" <<NS
set -e
OV=$TMP/ov
mkdir -p "\$OV"
mount -t tmpfs tmpfs "\$OV"
mkdir -p "\$OV/u" "\$OV/w" "\$OV/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=\$OV/u,workdir=\$OV/w" "\$OV/root"
mount -t proc proc "\$OV/root/proc"
mount --rbind /sys "\$OV/root/sys"
mount --rbind /dev "\$OV/root/dev"
mount -t tmpfs tmpfs "\$OV/root/tmp"
mount -t tmpfs tmpfs "\$OV/root/run"
mkdir -p "\$OV/root/tmp/debs"
cp $TMP/*.deb "\$OV/root/tmp/debs/"
cp "$ROOT/test/release/deb_inside.sh" "\$OV/root/tmp/inside.sh"
echo overlay-root-ready
chroot "\$OV/root" /bin/bash /tmp/inside.sh /tmp/debs
NS
if unshare -m --propagation private bash "$TMP/ns.sh" >"$inside" 2>"$TMP/ns.err" && grep -q overlay-root-ready "$inside"; then
    ok "a throwaway root: overlay of / in a private mount namespace"
elif ! grep -q overlay-root-ready "$inside"; then
    echo "  no overlayfs ($(head -2 "$TMP/ns.err")): installing on this machine, purged at the end"
    trap 'dpkg --purge beamlet-dev beamlet >/dev/null 2>&1; cleanup' EXIT
    bash test/release/deb_inside.sh "$TMP" >"$inside" 2>&1
fi
cat "$inside" >>"$LOGS/$SUITE.log"
while read -r line; do
    case $line in
    ok:*) ok "${line#ok: }" ;;
    FAILED:*) bad "${line#FAILED: }" ;;
    esac
done <"$inside"
grep -q "after purge erl" "$inside" || bad "the install run stopped early: $(tail -3 "$TMP/ns.err")"
# the real machine is untouched
[ ! -e /usr/bin/beamlet ] && ! ls -d /usr/lib/erlang/lib/beamlet-* >/dev/null 2>&1 && ! getent passwd beamlet >/dev/null &&
    ok "the real machine has no beamlet package, shim or user afterwards" || bad "the real machine was changed"
record
[ "$F" -eq 0 ]
