#!/bin/sh
# deps.sh - install the Debian packages beamlet needs to build, run and test, if any are missing.
# Says what it installs in one line; uses sudo when not root. Safe to run repeatedly.
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev erlang-nox erlang-dev erlang-src \
erlang-eunit erlang-dialyzer erlang-tools rebar3 libev-dev libjansson-dev libcmocka-dev \
uthash-dev libssl-dev libsqlite3-dev libcurl4-openssl-dev bear iproute2 valgrind procps python3 \
libmicrohttpd-dev libmicrohttpd12 openssl prometheus prometheus-node-exporter wrk chromium nodejs \
dpkg-dev lintian help2man systemd zsh"
[ "${1:-}" = "--run-only" ] && PKGS="build-essential pkg-config erlang-nox erlang-dev libev-dev libjansson-dev uthash-dev libssl-dev libsqlite3-0 libcurl4 libmicrohttpd12"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "beamlet: installing missing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
