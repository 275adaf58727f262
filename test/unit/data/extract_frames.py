#!/usr/bin/env python3
"""extract_frames.py PCAP NODE OUT - the distribution frames NODE sent on the connection it opened.

Reads a classic pcap of loopback traffic (Ethernet or Linux cooked framing), finds the TCP flow
whose first packet is NODE's send_name ('N' with NODE's name), reassembles it by sequence number,
skips the handshake (2-byte length packets: send_name, challenge_reply) and writes every data
frame (ticks dropped) to OUT as a 4-byte big-endian length and the payload."""
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == 0xA1B2C3D4 else ">"
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            l2 = 14
        elif linktype == 113:
            l2 = 16
        else:
            raise SystemExit("unsupported link type %d" % linktype)
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:tot]
        sport, dport, seq = struct.unpack(">HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        payload = tcp[doff:]
        yield (ip[12:16], sport, ip[16:20], dport), seq, payload


def main():
    path, node, out = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
    flows = {}
    for key, seq, payload in packets(path):
        if payload:
            flows.setdefault(key, {})[seq] = payload
    stream = None
    for key, segs in flows.items():
        first = segs[min(segs)]
        if len(first) > 3 and first[2:3] == b"N" and first.endswith(node):
            stream = b"".join(segs[s] for s in sorted(segs))
            break
    if stream is None:
        raise SystemExit("no flow from %s" % node.decode())
    i = 0
    while True:  # handshake packets: send_name, then challenge_reply
        n = struct.unpack(">H", stream[i:i + 2])[0]
        tag = stream[i + 2:i + 3]
        i += 2 + n
        if tag == b"r":
            break
    frames = []
    while i + 4 <= len(stream):
        n = struct.unpack(">I", stream[i:i + 4])[0]
        if i + 4 + n > len(stream):
            break
        if n:
            frames.append(stream[i:i + 4 + n])
        i += 4 + n
    with open(out, "wb") as f:
        f.write(b"".join(frames))
    print("%d frames" % len(frames))


main()
