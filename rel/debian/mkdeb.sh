#!/usr/bin/env bash
# mkdeb.sh - build build/beamlet_VERSION-REV_ARCH.deb and beamlet-dev_... from the hardened build
# (make dist-bin) with the standard tools: rel/release/stage.sh lays the files out in FHS places,
# dpkg-shlibdeps finds the Depends of the binary, dpkg-gencontrol writes DEBIAN/control from
# rel/debian/control and the generated changelog, dpkg-deb builds (owner root, no fakeroot).
# Why not debhelper: dh drives a build from a debian/ directory at the top of the source tree,
# which this repository's fixed layout does not have, and its steps here would be exactly these
# (dh_shlibdeps, dh_gencontrol, dh_builddeb); see docs/deploy.md.
# DEB_REVISION (default 1) sets the Debian revision, so a test can build an upgrade.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
VERSION=$(sed -n 's/^#define BL_VERSION "\(.*\)"/\1/p' include/beamlet/beamlet.h)
DEBVER=$VERSION-${DEB_REVISION:-1}
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
W=$ROOT/build/deb
rm -rf "$W"
mkdir -p "$W/src/debian" "$W/pkg"
P=$W/pkg/beamlet D=$W/pkg/beamlet-dev
mkdir -p "$P"
rel/release/stage.sh "$P" deb
# beamlet-dev: the headers and the static library
install -d "$D/usr/lib/$MA" "$D/usr/share/doc/beamlet-dev"
mv "$P/usr/include" "$D/usr/"
mv "$P/usr/lib/$MA/libbeamlet.a" "$D/usr/lib/$MA/"
rmdir "$P/usr/lib/$MA"
strip --strip-debug --remove-section=.comment --remove-section=.note \
    --enable-deterministic-archives "$D/usr/lib/$MA/libbeamlet.a"
# changelog and copyright in each package's doc directory
DATE=$(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
sed -e "s/@DEBVERSION@/$DEBVER/" -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$DATE/" \
    -e "s/@GITREV@/$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)/" \
    rel/debian/changelog.in >"$W/src/debian/changelog"
for pkg in "$P" "$D"; do
    doc=$pkg/usr/share/doc/$(basename "$pkg")
    install -d "$doc"
    install -m 0644 rel/debian/copyright "$doc/copyright"
    gzip -9n <"$W/src/debian/changelog" >"$doc/changelog.Debian.gz"
    chmod 0644 "$doc/changelog.Debian.gz"
done
# lintian tags that stay, each with the reason (docs/deploy.md)
for pkg in "$P" "$D"; do
    name=$(basename "$pkg")
    install -d "$pkg/usr/share/lintian/overrides"
    install -m 0644 "rel/debian/$name.lintian-overrides" "$pkg/usr/share/lintian/overrides/$name"
done
# maintainer scripts and conffiles
install -d "$P/DEBIAN" "$D/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "rel/debian/$s" "$P/DEBIAN/$s"; done
install -m 0644 rel/debian/conffiles "$P/DEBIAN/conffiles"
# control: shlibs from the binary's NEEDED entries, then the fields
cp rel/debian/control "$W/src/debian/control"
(
    cd "$W/src"
    echo "misc:Depends=" >debian/beamlet.substvars
    echo "misc:Depends=" >debian/beamlet-dev.substvars
    dpkg-shlibdeps -Tdebian/beamlet.substvars "$P/usr/bin/beamlet"
    dpkg-gencontrol -pbeamlet -Tdebian/beamlet.substvars -P"$P" -v"$DEBVER"
    dpkg-gencontrol -pbeamlet-dev -Tdebian/beamlet-dev.substvars -P"$D" -v"$DEBVER"
)
for pkg in "$P" "$D"; do
    (cd "$pkg" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z |
        xargs -0 md5sum >DEBIAN/md5sums)
    chmod 0644 "$pkg/DEBIAN/md5sums" "$pkg/DEBIAN/control"
    out=build/$(basename "$pkg")_${DEBVER}_$ARCH.deb
    dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
    echo "deb: $out ($(du -k "$out" | cut -f1) kB)"
done
