#!/usr/bin/env bash
# record_dist.sh - records the distribution frames one OTP node sends another on loopback, for
# test/unit/test_disthdr.c. Run inside /work/wt/isolate.sh (or any private network namespace with
# EPMD): two erl nodes, tshark on lo, then extract_frames.py keeps node A's frames to node B.
# Writes beam_frames.bin (frames, each with its 4-byte length) and beam_expected.bin (what A sent).
set -eu
cd "$(dirname "$0")"
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
erlc -o "$T" bl_record.erl
tshark -i lo -F pcap -w "$T/cap.pcap" -f tcp -q 2>"$T/tshark.log" &
sleep 2
erl -sname rec_b -setcookie bl_rec -noshell -pa "$T" -eval 'bl_record:sink()' &
sleep 1
H=$(hostname -s)
BL_RECORD_PEER="rec_b@$H" BL_RECORD_EXPECTED="$PWD/beam_expected.bin" \
    erl -sname rec_a -setcookie bl_rec -noshell -pa "$T" -eval 'bl_record:main()'
sleep 1
kill -INT %1
wait %1 || true
python3 extract_frames.py "$T/cap.pcap" "rec_a@$H" beam_frames.bin
erl -noshell -eval "{ok,B}=file:read_file(\"beam_frames.bin\"),io:format(\"~p bytes of frames~n\",[byte_size(B)]),halt()."
