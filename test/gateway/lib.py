"""lib.py - what the gateway suites share: starting real beamlet nodes (the ASan build) with HTTP
on loopback, a real HTTP client (http.client), raw sockets for bad input, API keys through the
real CLI, a real erl node for distribution round trips, and a tiny test runner that appends
"SUITE PASSED FAILED" to $BL_RESULTS."""
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BEAMLET = os.environ.get("BEAMLET_BIN", os.path.join(ROOT, "build/asan/beamlet"))
LOG_DIR = os.environ.get("BL_LOG_DIR", os.path.join(ROOT, "build/test-logs"))
COOKIE = os.environ.get("BL_COOKIE", "gw_cookie_%d" % os.getpid())
HOST = socket.gethostname().split(".")[0]
os.makedirs(LOG_DIR, exist_ok=True)

_procs = []


def node_name(short):
    return "%s@%s" % (short, HOST)


class Node:
    def __init__(self, short, http_port=None, args=(), role="agent", join=(), env=None):
        self.short, self.name, self.port = short, node_name(short), http_port
        cmd = [BEAMLET, "node", "--sname", short, "--cookie", COOKIE, "--role", role,
               "--heartbeat-interval-ms", "300", "--failure-threshold", "3",
               "--listen-address", "127.0.0.1"]
        if http_port is not None:
            cmd += ["--http-port", str(http_port)]
        if join:
            cmd += ["--join", ",".join(node_name(j) for j in join)]
        cmd += list(args)
        self.log = os.path.join(LOG_DIR, "gateway-%s.log" % short)
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=e)
        _procs.append(self.p)

    def wait_http(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise AssertionError("%s exited with %s (see %s)" % (self.name, self.p.returncode, self.log))
            try:
                st, _, _ = req(self.port, "GET", "/healthz")
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("%s: no HTTP on %s" % (self.name, self.port))

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def cleanup():
    for p in _procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in _procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def req(port, method, path, body=None, key=None, headers=None, tls=False, timeout=15):
    """One request with http.client: (status, headers dict (lower-case), body bytes)."""
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + key
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def jreq(port, method, path, body=None, key=None, **kw):
    st, h, b = req(port, method, path, body, key, **kw)
    try:
        j = json.loads(b) if b else None
    except ValueError:
        j = None
    return st, h, j


def raw(port, data, timeout=10, read=True):
    """Send raw bytes; return what came back before the server closed or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
            if b"\r\n\r\n" in out and b"Content-Length" not in out and b"content-length" not in out.lower():
                pass
        return out
    finally:
        s.close()


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def cli(*args, timeout=30):
    p = subprocess.run([BEAMLET] + list(args) + ["--cookie", COOKIE], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def make_key(node, role, name=None):
    args = ["apikey", "create", "--node", node, "--role", role]
    if name:
        args += ["--name", name]
    rc, out, err = cli(*args)
    assert rc == 0, "apikey create: rc %s: %s" % (rc, err)
    key = out.strip()
    assert key.startswith("blk_"), out
    return key


def erl_eval(expr, timeout=120):
    """Run expr in a fresh erl node on this host (same cookie); its stdout."""
    name = "bl_gwerl_%d_%d" % (os.getpid(), int(time.time() * 1000) % 100000)
    p = subprocess.run(["erl", "-sname", name, "-setcookie", COOKIE, "-noshell", "-eval",
                        expr + ", halt()."], capture_output=True, text=True, timeout=timeout)
    return p.stdout.strip()


def wait_until(fn, timeout=20, step=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, AssertionError, ValueError) as e:
            last = e
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Runner:
    def __init__(self, suite):
        self.suite, self.passed, self.failed = suite, 0, 0

    def run(self, fn, *a):
        t0 = time.time()
        try:
            fn(*a)
            self.passed += 1
            print("  %-44s ok (%.1fs)" % (fn.__name__, time.time() - t0), flush=True)
        except Exception:  # a failed assertion or an unexpected error both fail the test
            self.failed += 1
            print("  %-44s FAILED" % fn.__name__, flush=True)
            traceback.print_exc(file=sys.stdout)

    def finish(self):
        res = os.environ.get("BL_RESULTS")
        if res:
            with open(res, "a") as f:
                f.write("%s %d %d\n" % (self.suite, self.passed, self.failed))
        print("%s: %d passed, %d failed" % (self.suite, self.passed, self.failed))
        return 0 if self.failed == 0 else 1
