#!/usr/bin/env bash
# mkrelease.sh VERSION ARCH - stage and pack build/beamlet-VERSION-linux-ARCH.tar.gz from the
# hardened build (make dist-bin). Layout, relative to wherever it is unpacked (docs/deploy.md):
#   bin/beamlet                         the node and admin CLI (stripped)
#   lib/beamlet-VERSION/{ebin,src,priv} the Erlang shim as an OTP application directory
#                                       (ERL_LIBS=.../lib or erl -pa .../lib/beamlet-VERSION/ebin);
#                                       priv/beamlet is a relative link to bin/beamlet
#   lib/libbeamlet.a, include/beamlet/  for C programs
#   share/beamlet/gleam/                the Gleam package sources
#   share/doc/beamlet/                  README and docs/
#   share/man/man1/beamlet.1, share/bash-completion/, share/zsh/  when help2man is present
#   etc/beamlet/beamlet.json            a default (production) configuration
#   lib/systemd/system/beamlet@.service the unit (expects /usr/bin/beamlet: see docs/deploy.md)
# Nothing in it names the build directory; a test unpacks it elsewhere and runs it from there.
set -eu
VERSION=$1 ARCH=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
NAME=beamlet-$VERSION-linux-$ARCH
STAGE=build/release-stage/$NAME
rm -rf "build/release-stage"
mkdir -p "$STAGE"
rel/release/stage.sh "$STAGE" tarball
# reproducible archive: sorted names, fixed owner and times
MTIME=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" \
    -C build/release-stage -czf "build/$NAME.tar.gz" "$NAME"
echo "release: build/$NAME.tar.gz ($(du -k "build/$NAME.tar.gz" | cut -f1) kB, $("$STAGE/bin/beamlet" version))"
