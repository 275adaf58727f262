"""test_badinput.py - bad input to the gateway never takes the node down: malformed request lines,
huge headers and bodies, invalid JSON and UTF-8, path traversal, a slow client holding a
connection, a client that trickles a request byte by byte, 1,000 concurrent connections. Each is answered with the right 4xx or dropped, and
meanwhile a real BEAM node's gen_server:call round trips to the same node keep working at a
normal pace (measured alone first, then under the storm)."""
import os
import select
import socket
import threading
import time

from lib import Node, Runner, cleanup, erl_eval, raw, req, status_of, wait_until
from storm import storm

PORT = 18100
S = {}


def alive():
    assert req(PORT, "GET", "/healthz")[0] == 200
    assert S["n"].p.poll() is None, "the node died"


def test_malformed_request_lines():
    for bad in [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nNo-Colon-Header\r\n\r\n", b"\x00\x01\x02\xff\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                b"POST /api/v1/services HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]:
        out = raw(PORT, bad, timeout=5)
        st = status_of(out)
        assert st is None or 400 <= st < 500 or st == 505, (bad, out[:200])
    alive()


def test_huge_headers_and_bodies():
    out = raw(PORT, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n", timeout=10)
    st = status_of(out)
    assert st is None or st in (400, 413, 431), out[:200]
    out = raw(PORT, b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    st = status_of(out)
    assert st is None or st in (400, 413, 414, 431), out[:200]
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
    out = raw(PORT, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", timeout=10)
    st = status_of(out)
    assert st is None or st in (400, 413, 431), out[:200]
    # a body over the limit, announced and sent
    body = b"{" + b" " * (3 * 1024 * 1024) + b"}"
    out = raw(PORT, b"POST /api/v1/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body, timeout=10)
    assert status_of(out) in (None, 413, 401), out[:200]
    alive()


def test_invalid_json_and_utf8():
    for body in [b"{", b"\xff\xfe\xfd", b'{"a":"\xc3\x28"}', b'{"a":' * 5000, b"null", b'"str"']:
        st, h, b = req(PORT, "POST", "/api/v1/services", body=body, key=S["key"])
        assert st == 400 and h["content-type"] == "application/problem+json", (body[:20], st, b)
    st, _, _ = req(PORT, "GET", "/api/v1/services?tag=%C3%28")
    assert st == 400
    st, _, _ = req(PORT, "GET", "/api/v1/nodes/%FF%FE")
    assert st in (400, 404)
    alive()


def test_path_traversal():
    for p in ["/assets/../../../../etc/passwd", "/assets/..%2F..%2F..%2Fetc%2Fpasswd",
              "/%2e%2e/%2e%2e/etc/passwd", "/assets/%2e%2e/openapi.json", "/assets/openapi.json",
              "/assets/", "/assets//etc/passwd", "/../../etc/passwd", "/assets/app.js%00.png"]:
        out = raw(PORT, b"GET " + p.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
        st = status_of(out)
        assert st in (400, 404), (p, out[:200])
        assert b"root:" not in out
    alive()


def test_slow_client_cannot_hold_the_node():
    slow = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(20)]
    for s in slow:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never finish
    t0 = time.time()
    for _ in range(20):
        assert req(PORT, "GET", "/api/v1/cluster")[0] == 200
    assert time.time() - t0 < 10
    # the idle ones are closed after http_timeout_s (3 s here)
    time.sleep(5)
    closed = 0
    for s in slow:
        s.settimeout(2)
        try:
            closed += s.recv(100) == b""
        except (ConnectionResetError, socket.timeout):
            closed += 1
        s.close()
    assert closed == 20, closed
    alive()


def test_trickling_client_is_cut_by_the_request_timeout():
    """A client that sends a header byte every second is never idle for http_timeout_s (3 s here)
    but is closed once its request has taken http_request_timeout_s (5 s here)."""
    s = socket.create_connection(("127.0.0.1", PORT))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Trickle: ")
    t0, closed = time.time(), False
    while time.time() - t0 < 30:
        try:
            s.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        r, _, _ = select.select([s], [], [], 1.0)
        if r:
            try:
                closed = s.recv(100) == b""
            except ConnectionResetError:
                closed = True
            if closed:
                break
    took = time.time() - t0
    s.close()
    assert closed, "a trickling request was never cut"
    assert took >= 4, took  # not before the request timeout (5 s)
    m = req(PORT, "GET", "/metrics")[2].decode()
    assert any(l.startswith("beamlet_http_request_timeouts_total ") and int(l.split()[1]) >= 1
               for l in m.splitlines()), m[:500]
    alive()


ERL_RTT = ("N = '%s', pong = net_adm:ping(N), "
           "L = [begin timer:sleep(%d), T = erlang:monotonic_time(microsecond), "
           "pong = gen_server:call({beamlet, N}, ping, 10000), "
           "erlang:monotonic_time(microsecond) - T end || _ <- lists:seq(1, %d)], "
           "S = lists:sort(L), io:format(\"~p ~p ~p~n\", [lists:nth(length(S) div 2, S), "
           "lists:nth(length(S) * 99 div 100, S), lists:last(S)])")


def rtt(n=200, gap_ms=10):
    out = erl_eval(ERL_RTT % (S["n"].name, gap_ms, n), timeout=180)
    p50, p99, mx = (int(x) for x in out.split()[-3:])
    return p50, p99, mx


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def loop_lag_max_ms():
    m = req(PORT, "GET", "/metrics")[2].decode()
    return [float(l.split()[1]) * 1000 for l in m.splitlines()
            if l.startswith("beamlet_cluster_loop_lag_max_seconds ")][0]


def test_1000_connections_while_beam_calls_stay_normal():
    base = rtt()
    print("    BEAM gen_server:call alone: p50 %d us, p99 %d us, max %d us" % base)
    res, done = {}, threading.Event()

    def beam():
        try:
            res["load"] = rtt()
        finally:
            done.set()
    pid, lag0 = S["n"].p.pid, loop_lag_max_ms()
    c0, t0, me0 = cpu_s(pid), time.time(), os.times()
    t = threading.Thread(target=beam)
    t.start()
    rounds, ok, dropped = 0, 0, 0
    while not done.is_set():
        o, d, other, left = storm(PORT, 1000)
        assert not other, other  # only 200, or shed: dropped, refused, 429, 503, 504
        assert not left, "%d connections never answered nor closed" % left
        ok, dropped, rounds = ok + o, dropped + d, rounds + 1
    t.join()
    wall, node, me = time.time() - t0, cpu_s(pid) - c0, os.times()
    print("    under %d rounds of 1000 concurrent connections (%d answered 200, %d dropped/refused): "
          "p50 %d us, p99 %d us, max %d us" % ((rounds, ok, dropped) + res["load"]))
    # what the figure depends on: the node's loop is busy through the storm, so a call waits for
    # the loop's current turn, at the CPU share the node gets on a shared machine
    print("    node CPU %.1f s in %.1f s (%.0f%% of one core), %.2f ms per answer; client CPU %.1f s; "
          "loop lag max %.0f ms (before the storm %.0f ms)"
          % (node, wall, 100 * node / wall, 1000 * node / max(1, ok + dropped),
             me.user + me.system - me0.user - me0.system, loop_lag_max_ms(), lag0))
    assert ok >= 1000, ok
    # normal: every call answered (pong) and the median stays low. A loop turn does a bounded
    # share of the storm's work (64 local messages or 2 ms, 32 answers resumed; the longest turns
    # left are MHD's accept bursts, up to 14 ms of ASan CPU), so a call waits a few ms of the
    # node's CPU, stretched by the CPU share the node gets: medians of 10-16 ms with 35% of a
    # core, 40-48 ms with 7% (load 90-150 on this 2-core machine), p99 0.08-0.45 s. Before, one
    # turn took up to 190 ms of CPU: p99 0.8-5.5 s, and with this client a call timed out (10 s).
    # make bench prints the ratio to the same calls without the storm (gateway_bench.sh).
    assert res["load"][0] < max(20 * base[0], 50000), (base, res["load"])
    alive()


def main():
    r = Runner("gateway_badinput")
    try:
        S["n"] = Node("gw_bad1", PORT, role="gateway",
                      args=["--http-timeout-s", "3", "--http-request-timeout-s", "5", "--http-rate-limit", "1000000",
                            "--http-rate-burst", "1000000", "--http-max-body-bytes", "65536"]).wait_http()
        from lib import make_key
        S["key"] = make_key(S["n"].name, "operator", "bad")
        for t in (test_malformed_request_lines, test_huge_headers_and_bodies, test_invalid_json_and_utf8,
                  test_path_traversal, test_slow_client_cannot_hold_the_node,
                  test_1000_connections_while_beam_calls_stay_normal,
                  test_trickling_client_is_cut_by_the_request_timeout):
            r.run(t)
        r.run(alive)
    except Exception:
        import traceback
        traceback.print_exc()
        r.failed += 1
    finally:
        cleanup()
    return r.finish()


if __name__ == "__main__":
    raise SystemExit(main())
