#!/usr/bin/env python3
"""notify_listen.py SOCKET OUT - a stand-in for systemd's notify socket: bind an AF_UNIX datagram
socket (a path, or @name for the abstract namespace, as NOTIFY_SOCKET says), write every datagram
to OUT as "<seconds since start> <text with newlines as |>" lines until killed."""
import os, socket, sys, time

path, out = sys.argv[1], sys.argv[2]
addr = "\0" + path[1:] if path.startswith("@") else path
if not path.startswith("@") and os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(addr)
t0 = time.time()
with open(out, "w", buffering=1) as f:
    f.write("listening\n")
    while True:
        d = s.recv(8192).decode(errors="replace")
        f.write("%.3f %s\n" % (time.time() - t0, d.replace("\n", "|")))
