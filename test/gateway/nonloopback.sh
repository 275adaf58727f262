#!/bin/sh
# nonloopback.sh BEAMLET - run by test_api.py inside `unshare -n` (a network namespace of its own,
# with 10.254.0.1 added to its loopback device): a gateway bound to a non-loopback address
# refuses keyless reads (401) but keeps /healthz open; with http_public_read it lets reads through
# and still refuses keyless writes. Prints "private CLUSTER INDEX HEALTHZ" and "public READ WRITE".
ip link set lo up
ip addr add 10.254.0.1/32 dev lo || exit 3
B=$1
$B node --sname gwnl --cookie x --no-publish --listen-address 10.254.0.1 --http-address 10.254.0.1 --http-port 18400 >/dev/null 2>&1 &
P=$!
for i in $(seq 50); do curl -s -o /dev/null http://10.254.0.1:18400/healthz && break; sleep 0.1; done
echo "private $(curl -s -o /dev/null -w '%{http_code}' http://10.254.0.1:18400/api/v1/cluster) $(curl -s -o /dev/null -w '%{http_code}' http://10.254.0.1:18400/) $(curl -s -o /dev/null -w '%{http_code}' http://10.254.0.1:18400/healthz)"
kill $P; wait $P
$B node --sname gwnl --cookie x --no-publish --listen-address 10.254.0.1 --http-address 10.254.0.1 --http-port 18400 --http-public-read true >/dev/null 2>&1 &
P=$!
for i in $(seq 50); do curl -s -o /dev/null http://10.254.0.1:18400/healthz && break; sleep 0.1; done
echo "public $(curl -s -o /dev/null -w '%{http_code}' http://10.254.0.1:18400/api/v1/cluster) $(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"name":"x"}' http://10.254.0.1:18400/api/v1/services)"
kill $P; wait $P
