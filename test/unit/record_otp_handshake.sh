#!/usr/bin/env bash
# record_otp_handshake.sh - record the handshakes test_hsm.c replays, from real erl nodes on
# loopback: `erl -sname ra` pings `erl -sname rb` (cookie reccookie), then `erl -sname rc` with
# cookie wrongcookie does; tshark captures lo inside a private namespace and the TCP payloads are
# printed as "stream srcport dstport hex". Needs tshark (not a make-test dependency: the recorded
# bytes live in test_hsm.c). Run: /work/wt/isolate.sh test/unit/record_otp_handshake.sh
set -eu
PCAP=$(mktemp --suffix=.pcap)
HOST=$(hostname -s)
tshark -i lo -w "$PCAP" -f tcp -q >/dev/null 2>&1 &
TP=$!
sleep 2
erl -sname rb -setcookie reccookie -noshell -eval 'timer:sleep(10000), halt().' &
sleep 4
erl -sname ra -setcookie reccookie -noshell -eval "io:format(\"~p~n\", [net_adm:ping(rb@$HOST)]), halt()."
sleep 0.5
erl -sname rc -setcookie wrongcookie -noshell -eval "io:format(\"~p~n\", [net_adm:ping(rb@$HOST)]), halt()."
sleep 1
kill "$TP"
wait "$TP" || true
tshark -r "$PCAP" -T fields -e tcp.stream -e tcp.srcport -e tcp.dstport -e tcp.payload -Y "tcp.len>0"
rm -f "$PCAP"
