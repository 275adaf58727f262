"""storm.py - an HTTP connection storm against a gateway on 127.0.0.1, shared by the bad-input
suite (test_badinput.py) and make bench (test/bench/gateway_bench.sh): CONNS connections opened at
once, one GET /api/v1/cluster with Connection: close on each, every answer read to its end. The
client waits in epoll and touches only the sockets that are ready, so it takes little of the CPU
it shares with the node it measures (it used to rebuild select() lists of 1000 sockets per wake).

As a command: storm.py PORT SECONDS [CONNS] runs rounds until SECONDS have gone or SIGTERM and
prints "rounds answered dropped client_cpu_s". Loopback only; bounded in time."""
import os
import selectors
import signal
import socket
import sys
import time

REQ = b"GET /api/v1/cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
STOP = []


def status_of(buf):
    if not buf.startswith(b"HTTP/"):
        return None
    try:
        return int(buf.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def storm(port, conns=1000, timeout=60):
    """One round: (answered 200, shed (dropped, refused, or answered 429, 503, or 504: the node's
    own service did not answer within the gateway's 3 s), [other answers], connections neither
    answered nor closed within timeout)."""
    sel = selectors.DefaultSelector()
    got = {}
    for _ in range(conns):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        got[s] = b""
    ok = dropped = 0
    other = []
    deadline = time.time() + timeout
    while got and time.time() < deadline and not STOP:
        for key, ev in sel.select(1.0):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE:
                try:
                    s.send(REQ)
                except OSError:
                    pass  # refused or reset: the read below sees the end
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if d:
                got[s] += d
                continue
            st = status_of(got.pop(s))
            sel.unregister(s)
            s.close()
            if st == 200:
                ok += 1
            elif st is None or st in (429, 503, 504):  # shed: dropped, limited, timed out
                dropped += 1
            else:
                other.append(st)
    left = len(got)
    for s in got:
        sel.unregister(s)
        s.close()
    sel.close()
    return ok, dropped, other, left


def main():
    port, secs = int(sys.argv[1]), float(sys.argv[2])
    conns = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    end = time.time() + secs
    signal.signal(signal.SIGTERM, lambda *_: STOP.append(1))
    rounds = ok = dropped = 0
    while time.time() < end and not STOP:
        o, d, other, left = storm(port, conns)
        rounds, ok, dropped = rounds + 1, ok + o, dropped + d + len(other) + left
    t = os.times()
    print(rounds, ok, dropped, "%.1f" % (t.user + t.system), flush=True)


if __name__ == "__main__":
    main()
