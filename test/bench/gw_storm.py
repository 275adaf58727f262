"""gw_storm.py PORT SECONDS [CONNS] - an HTTP connection storm for gateway_bench.sh (make bench):
rounds of CONNS (1000) connections opened at once to 127.0.0.1:PORT, each sending one
GET /api/v1/cluster with Connection: close and reading the answer, until SECONDS have gone or
SIGTERM. Prints "rounds answered dropped client_cpu_s". Loopback only; bounded in time."""
import os
import select
import signal
import socket
import sys
import time

STOP = []
REQ = b"GET /api/v1/cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def storm(port, conns):
    pending = {}
    for _ in range(conns):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        pending[s.fileno()] = [s, b"", False]
    deadline = time.time() + 60
    ok = dropped = 0
    while pending and time.time() < deadline and not STOP:
        w = [v[0] for v in pending.values() if not v[2]]
        r = [v[0] for v in pending.values() if v[2]]
        rr, ww, _ = select.select(r, w, [], 1.0)
        for s in ww:
            try:
                s.send(REQ)
                pending[s.fileno()][2] = True
            except OSError:
                pass
        for s in rr:
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            v = pending[s.fileno()]
            if d:
                v[1] += d
                continue
            if v[1].startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                dropped += 1
            del pending[s.fileno()]
            s.close()
    for v in pending.values():
        dropped += 1
        v[0].close()
    return ok, dropped


def main():
    port, secs = int(sys.argv[1]), float(sys.argv[2])
    conns = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    end = time.time() + secs
    signal.signal(signal.SIGTERM, lambda *_: STOP.append(1))
    rounds = ok = dropped = 0
    while time.time() < end and not STOP:
        o, d = storm(port, conns)
        rounds, ok, dropped = rounds + 1, ok + o, dropped + d
    t = os.times()
    print(rounds, ok, dropped, "%.1f" % (t.user + t.system), flush=True)


if __name__ == "__main__":
    main()
