"""test_api.py - the HTTP gateway against a real 3-node C cluster on loopback (g1 a gateway, a1
and a2 agents, all serving HTTP), with a real HTTP client: every route and filter, problem
details, the OpenAPI document checked against what the server answers, the auth matrix (no key,
wrong key, each role on each write) with keys made by the CLI on g1 and used on a1, rate limits,
the audit trail, /metrics through promtool and a real Prometheus, HTTPS, bad configuration, the
SSE stream delivering a kill -9 and resuming with Last-Event-ID, and a node asked to leave."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from lib import (Node, Runner, cleanup, cli, jreq, make_key, node_name, req, wait_until, BEAMLET,
                 LOG_DIR, COOKIE)

P_G1, P_A1, P_A2 = 18080, 18081, 18082
G1, A1, A2 = node_name("gw_g1"), node_name("gw_a1"), node_name("gw_a2")
S = {}  # shared between tests: keys, ids, nodes


def start_cluster():
    S["g1"] = Node("gw_g1", P_G1, role="gateway").wait_http()
    S["a1"] = Node("gw_a1", P_A1, join=["gw_g1"]).wait_http()
    S["a2"] = Node("gw_a2", P_A2, join=["gw_g1"]).wait_http()
    wait_until(lambda: all(m["state"] == "active" for m in jreq(P_G1, "GET", "/api/v1/nodes")[2])
               and len(jreq(P_G1, "GET", "/api/v1/nodes")[2]) == 3, what="3 active members")


# ---- a small JSON Schema checker for the OpenAPI document's schemas ----

def resolve(doc, s):
    while isinstance(s, dict) and "$ref" in s:
        parts = s["$ref"].lstrip("#/").split("/")
        s = doc
        for p in parts:
            s = s[p]
    return s


def check(doc, schema, v, where="$"):
    s = resolve(doc, schema)
    for sub in s.get("allOf", []):
        check(doc, sub, v, where)
    if "oneOf" in s:  # exactly one alternative fits
        fits = 0
        for sub in s["oneOf"]:
            try:
                check(doc, sub, v, where)
                fits += 1
            except AssertionError:
                pass
        assert fits == 1, "%s: %r fits %d of oneOf %s" % (where, v, fits, s["oneOf"])
    t = s.get("type")
    if t:
        types = t if isinstance(t, list) else [t]
        ok = {"object": isinstance(v, dict), "array": isinstance(v, list),
              "string": isinstance(v, str), "boolean": isinstance(v, bool),
              "integer": isinstance(v, int) and not isinstance(v, bool),
              "number": isinstance(v, (int, float)) and not isinstance(v, bool),
              "null": v is None}
        assert any(ok[x] for x in types), "%s: %r is not %s" % (where, v, t)
    if "enum" in s and v is not None:
        assert v in s["enum"], "%s: %r not in %s" % (where, v, s["enum"])
    if isinstance(v, dict):
        for k in s.get("required", []):
            assert k in v, "%s: missing %s in %r" % (where, k, v)
        for k, sub in s.get("properties", {}).items():
            if k in v:
                check(doc, sub, v[k], where + "." + k)
    if isinstance(v, list) and "items" in s:
        for i, x in enumerate(v):
            check(doc, s["items"], x, "%s[%d]" % (where, i))


# ---- tests ----

def test_reads_every_route():
    for path in ["/api/v1/cluster", "/api/v1/nodes", "/api/v1/services", "/api/v1/pg",
                 "/api/v1/global", "/api/v1/pubsub/topics", "/api/v1/events",
                 "/api/v1/openapi.json", "/healthz", "/readyz"]:
        st, h, j = jreq(P_G1, "GET", path)
        assert st == 200, (path, st, j)
        assert h["content-type"].startswith("application/json"), (path, h)
    st, _, c = jreq(P_G1, "GET", "/api/v1/cluster")
    assert c["size"] == 3 and c["states"]["active"] == 3 and c["name"] == "default", c
    st, _, ns = jreq(P_A1, "GET", "/api/v1/nodes")
    assert sorted(m["node"] for m in ns) == sorted([G1, A1, A2]), ns
    assert [m["role"] for m in ns if m["node"] == G1] == ["gateway"]
    for n in (G1, A1, A2):  # one node: membership plus what it says itself (remote for two)
        st, _, d = jreq(P_G1, "GET", "/api/v1/nodes/" + n)
        assert st == 200 and d["node"] == n and d["detail"]["node"] == n, d
        assert d["detail"]["stats"]["connections"] >= 2, d
    st, _, d = jreq(P_G1, "GET", "/api/v1/nodes/nosuch@nowhere")
    assert st == 404 and d["status"] == 404, d
    st, h, b = req(P_G1, "GET", "/")
    assert st == 200 and h["content-type"].startswith("text/html") and b"/assets/app.js" in b
    st, h, b = req(P_G1, "GET", "/assets/app.js")
    assert st == 200 and "javascript" in h["content-type"] and b"EventSource" not in b[:0]
    st, h, b = req(P_G1, "GET", "/assets/htm-preact.js")
    assert st == 200 and b"useState" in b


def test_services_and_filters():
    op = S["operator"]
    bodies = [({"name": "web", "tags": ["a", "b"], "port": 80, "metadata": {"zone": "x"}}, P_G1),
              ({"name": "web", "tags": ["b"], "health": "warning"}, P_G1),
              ({"name": "db", "address": "10.0.0.5", "port": 5432}, P_G1),
              ({"name": "web", "id": "web-a1", "tags": ["c"]}, P_A1)]
    ids = []
    for b, port in bodies:
        st, _, j = jreq(port, "POST", "/api/v1/services", b, key=op)
        assert st == 201, (st, j)
        assert j["name"] == b["name"] and j["id"], j
        ids.append(j["id"])
    S["service_id"] = ids[0]
    wait_until(lambda: len(jreq(P_G1, "GET", "/api/v1/services?name=web")[2]) == 3,
               what="replicated web entries")
    assert len(jreq(P_G1, "GET", "/api/v1/services?tag=a")[2]) == 1
    assert len(jreq(P_G1, "GET", "/api/v1/services?tag=b")[2]) == 2
    w = jreq(P_G1, "GET", "/api/v1/services?health=warning")[2]
    assert len(w) == 1 and w[0]["health"] == "warning", w
    assert jreq(P_G1, "GET", "/api/v1/services?health=sideways")[0] == 400
    st, _, one = jreq(P_G1, "GET", "/api/v1/services/" + ids[0])
    assert st == 200 and one["tags"] == ["a", "b"] and one["metadata"] == {"zone": "x"}, one
    assert all(e["maintenance"] is False for e in jreq(P_G1, "GET", "/api/v1/services")[2])
    # usable: what a service call would choose, passing ones first
    u = jreq(P_G1, "GET", "/api/v1/services?name=web&usable=true")[2]
    assert [e["health"] for e in u] == ["passing", "passing", "warning"], u
    assert jreq(P_G1, "GET", "/api/v1/services?usable=maybe")[0] == 400
    # a1 in maintenance: its entry stays listed, says so, and is not usable until it ends
    op_put = jreq(P_G1, "PUT", "/api/v1/nodes/%s/maintenance" % A1, key=op)
    assert op_put[0] == 200, op_put
    wait_until(lambda: [e for e in jreq(P_G1, "GET", "/api/v1/services?name=web")[2]
                        if e["id"] == "web-a1" and e["maintenance"]], what="web-a1 in maintenance")
    u = jreq(P_G1, "GET", "/api/v1/services?name=web&usable=true")[2]
    assert "web-a1" not in [e["id"] for e in u] and len(u) == 2, u
    assert jreq(P_G1, "DELETE", "/api/v1/nodes/%s/maintenance" % A1, key=op)[0] == 200
    wait_until(lambda: "web-a1" in [e["id"] for e in
                                    jreq(P_G1, "GET", "/api/v1/services?name=web&usable=true")[2]],
               what="web-a1 usable again")
    # a registration that carries a check: the entry's health follows it (port 1: refused)
    st, _, j = jreq(P_G1, "POST", "/api/v1/services",
                    {"name": "chk", "id": "chk-1",
                     "check": {"tcp": "127.0.0.1:1", "interval_s": 0.3, "consecutive": 1}}, key=op)
    assert st == 201, (st, j)
    wait_until(lambda: [e for e in jreq(P_G1, "GET", "/api/v1/services?name=chk")[2]
                        if e["health"] == "critical"], what="chk-1 critical from its check")
    st, _, j = jreq(P_G1, "POST", "/api/v1/services", {"name": "chk", "check": {"tcp": "nohost"}},
                    key=op)
    assert st == 422 and "check" in j["detail"], (st, j)
    assert jreq(P_G1, "DELETE", "/api/v1/services/chk-1", key=op)[0] == 204
    # deregister a1's entry through g1: the owner does it
    st, _, _ = jreq(P_G1, "DELETE", "/api/v1/services/web-a1", key=op)
    assert st == 204, st
    wait_until(lambda: jreq(P_G1, "GET", "/api/v1/services/web-a1")[0] == 404, what="deregistered")
    assert jreq(P_G1, "DELETE", "/api/v1/services/web-a1", key=op)[0] == 404


def test_publish_and_topics():
    st, _, j = jreq(P_G1, "POST", "/api/v1/pubsub/publish",
                    {"topic": "gw.test", "payload": {"x": 1}, "priority": "high"}, key=S["operator"])
    assert st == 202 and j["id"], j
    st, _, t = jreq(P_G1, "GET", "/api/v1/pubsub/topics")
    assert any(x["topic"] == "gw.test" and x["published"] >= 1 for x in t), t
    st, _, j = jreq(P_G1, "POST", "/api/v1/pubsub/publish", {"topic": "bad..topic", "payload": 1},
                    key=S["operator"])
    assert st == 422 and j["status"] == 422, j


def test_pg_and_global():
    # a real BEAM node joins a pg group (its pg started before it connects); polled while it lives
    p = subprocess.Popen(
        ["erl", "-sname", "gw_beam_pg", "-setcookie", COOKIE, "-noshell", "-eval",
         "{ok, _} = pg:start_link(), pong = net_adm:ping('%s'), ok = pg:join(gw_group, self()), "
         "timer:sleep(20000), halt()." % G1],
        stdout=open(os.path.join(LOG_DIR, "gateway-beam-pg.log"), "w"), stderr=subprocess.STDOUT)
    try:
        g = wait_until(lambda: [x for x in jreq(P_G1, "GET", "/api/v1/pg")[2] if x["key"] == "gw_group"],
                       timeout=30, what="pg group from BEAM")
        assert g[0]["size"] == 1 and "gw_beam_pg@" in g[0]["members"][0], g
        st, _, one = jreq(P_G1, "GET", "/api/v1/pg/gw_group")
        assert st == 200 and one["size"] == 1, one
        assert jreq(P_G1, "GET", "/api/v1/pg/nosuch")[0] == 404
        assert jreq(P_G1, "GET", "/api/v1/pg?scope=nosuchscope")[0] == 404
        st, _, names = jreq(P_G1, "GET", "/api/v1/global")
        assert st == 200 and isinstance(names, list), names
        wait_until(lambda: [m for m in jreq(P_G1, "GET", "/api/v1/nodes")[2] if m["kind"] == "beam"
                            and m["node"].startswith("gw_beam_pg@")], what="the BEAM peer listed")
    finally:
        p.kill()
        p.wait()


def test_problem_details():
    st, h, j = jreq(P_G1, "GET", "/api/v1/nope")
    assert st == 404 and h["content-type"] == "application/problem+json", h
    assert j["type"].endswith("/not-found") and j["title"] and j["instance"] == "/api/v1/nope", j
    st, h, j = jreq(P_G1, "PUT", "/api/v1/cluster")
    assert st == 405 and "GET" in h["allow"], h
    op = S["operator"]
    assert jreq(P_G1, "POST", "/api/v1/services", "{not json", key=op)[0] == 400
    assert jreq(P_G1, "POST", "/api/v1/services", "[1,2]", key=op)[0] == 400
    assert jreq(P_G1, "POST", "/api/v1/services", b'{"name":"\xff\xfe"}', key=op)[0] == 400
    assert jreq(P_G1, "POST", "/api/v1/services", '{"name":"a","name":"b"}', key=op)[0] == 400
    assert jreq(P_G1, "POST", "/api/v1/services", "{}", key=op,
                headers={"Content-Type": "text/plain"})[0] == 415
    st, _, j = jreq(P_G1, "POST", "/api/v1/services", {"port": 99999}, key=op)
    assert st == 422 and "name" in j["detail"], j
    assert jreq(P_G1, "POST", "/api/v1/services", None, key=op)[0] == 400
    assert jreq(P_G1, "GET", "/api/v1/services?name=%FF%FE")[0] == 400
    assert jreq(P_G1, "GET", "/api/v1/events?since=yesterday")[0] == 400
    assert jreq(P_G1, "GET", "/api/v1/events?limit=0")[0] == 400
    assert jreq(P_G1, "GET", "/metrics?scope=galaxy")[0] == 400
    big = "x" * (2 * 1024 * 1024)
    st, _, j = jreq(P_G1, "POST", "/api/v1/services", '{"name":"%s"}' % big, key=op)
    assert st == 413, st


def test_openapi_matches_the_server():
    st, _, doc = jreq(P_G1, "GET", "/api/v1/openapi.json")
    assert st == 200 and doc["openapi"].startswith("3."), doc.get("openapi")
    params = {"node": G1, "id": S["service_id"], "group": "nosuch", "file": "app.js", "version": "1"}
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            url = path
            for k, v in params.items():
                url = url.replace("{%s}" % k, v)
            if path == "/api/v1/stream":  # endless: the status line and headers only
                c = socket.create_connection(("127.0.0.1", P_G1), timeout=10)
                c.sendall(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    head += c.recv(4096)
                c.close()
                lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
                st = int(lines[0].split()[1])
                h = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
                b = b""
            elif method == "get":
                st, h, b = req(P_G1, "GET", url)
            else:  # writes without a key: the documented refusal
                st, h, b = req(P_G1, method.upper(), url, body={})
            assert str(st) in op["responses"], "%s %s answered %s, documented %s" % (
                method, path, st, list(op["responses"]))
            resp = resolve(doc, op["responses"][str(st)])
            ctype = h.get("content-type", "").split(";")[0]
            content = resp.get("content", {})
            if content:
                assert ctype in content, "%s %s: %s not documented (%s)" % (method, path, ctype, list(content))
                if "json" in ctype:
                    check(doc, content[ctype]["schema"], json.loads(b), "%s %s" % (method, path))
            checked += 1
    # a write with the right role answers one of its documented successes too
    st, _, j = jreq(P_G1, "POST", "/api/v1/services", {"name": "doc-check"}, key=S["operator"])
    assert str(st) in doc["paths"]["/api/v1/services"]["post"]["responses"]
    check(doc, doc["paths"]["/api/v1/services"]["post"]["responses"]["201"]["content"]["application/json"]["schema"], j)
    assert checked >= 25, checked


def test_keys_replicated_and_roles():
    # made on g1 by the CLI, used on a1 and a2
    for port in (P_A1, P_A2):
        wait_until(lambda: jreq(port, "GET", "/api/v1/apikeys", key=S["admin"])[0] == 200,
                   what="admin key replicated to %d" % port)
    rc, out, err = cli("apikey", "list", "--node", A2, "--format", "json")
    assert rc == 0, err
    listed = json.loads(out)
    assert {k["role"] for k in listed} >= {"viewer", "operator", "admin"}, listed
    assert all("key" not in k and "sha256" not in k for k in listed), listed
    rc, out, err = cli("apikey", "create", "--node", G1, "--role", "superuser")
    assert rc == 2, (rc, err)


def test_auth_matrix():
    keys = {"none": None, "wrong": "blk_0000000000000000_" + "0" * 48, "viewer": S["viewer"],
            "operator": S["operator"], "admin": S["admin"]}
    throwaway = make_key(G1, "viewer", "throwaway")
    tid = throwaway.split("_")[1]
    wait_until(lambda: jreq(P_A1, "GET", "/api/v1/cluster", key=throwaway)[0] == 200, what="throwaway key")
    writes = [  # method, path, body, least role, answer when allowed
        ("POST", "/api/v1/services", {"name": "matrix"}, "operator", (201,)),
        ("DELETE", "/api/v1/services/nosuch", None, "operator", (404,)),
        ("POST", "/api/v1/pubsub/publish", {"topic": "gw.matrix", "payload": "m"}, "operator", (202,)),
        ("POST", "/api/v1/apikeys", {"role": "viewer", "name": "m"}, "admin", (201,)),
        ("DELETE", "/api/v1/apikeys/" + tid, None, "admin", (204, 404)),
        ("POST", "/api/v1/nodes/nosuch@nowhere/leave", None, "admin", (404,)),
    ]
    order = ["viewer", "operator", "admin"]
    for method, path, body, least, allowed in writes:
        for who, key in keys.items():
            st, _, j = jreq(P_A1, method, path, body, key=key)
            if who in ("none", "wrong"):
                want = (401,)
            elif order.index(who) < order.index(least):
                want = (403,)
            else:
                want = allowed
            assert st in want, "%s %s as %s: %s, want %s (%s)" % (method, path, who, st, want, j)
    # reads: keyless on loopback; a wrong key is refused even for reads
    assert jreq(P_A1, "GET", "/api/v1/nodes")[0] == 200
    assert jreq(P_A1, "GET", "/api/v1/nodes", key=keys["wrong"])[0] == 401
    assert jreq(P_A1, "GET", "/api/v1/audit", key=S["viewer"])[0] == 403
    # revoked on g1 -> refused on a1 and a2
    rc, out, err = cli("apikey", "revoke", "--node", G1, S["viewer2_id"])
    assert rc == 0, err
    for port in (P_A1, P_A2):
        wait_until(lambda: jreq(port, "GET", "/api/v1/cluster", key=S["viewer2"])[0] == 401,
                   what="revocation on %d" % port)


def test_audit_trail():
    st, _, a = jreq(P_A1, "GET", "/api/v1/audit?limit=1024", key=S["admin"])
    assert st == 200, a
    outcomes = {e["outcome"] for e in a}
    assert {"ok", "no_key", "bad_key", "forbidden"} <= outcomes, outcomes
    ok = [e for e in a if e["outcome"] == "ok" and e["path"] == "/api/v1/services" and e["method"] == "POST"]
    assert [e for e in ok if e["who"] == "ops" and e["address"] == "127.0.0.1" and e["status"] == 201], ok
    refused = [e for e in a if e["outcome"] == "forbidden"]
    assert refused[0]["who"] == "viewer" and refused[0]["status"] == 403, refused


def test_rate_limit():
    r = Node("gw_r1", 18090, args=["--http-rate-limit", "2", "--http-rate-burst", "3"]).wait_http()
    try:
        time.sleep(2)  # the bucket refills after wait_http's probes
        got = [req(18090, "GET", "/api/v1/cluster") for _ in range(10)]
        codes = [g[0] for g in got]
        assert 429 in codes and codes[:3] == [200, 200, 200], codes
        limited = [g for g in got if g[0] == 429][0]
        assert limited[1]["retry-after"] == "1" and json.loads(limited[2])["status"] == 429
        time.sleep(1.6)
        assert req(18090, "GET", "/api/v1/cluster")[0] == 200
        k = make_key(r.name, "admin", "rl")
        time.sleep(2)
        a = jreq(18090, "GET", "/api/v1/audit", key=k)[2]
        assert any(e["outcome"] == "rate_limited" and e["status"] == 429 for e in a), a
    finally:
        r.stop()


def test_metrics_promtool():
    st, h, b = req(P_G1, "GET", "/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain; version=0.0.4"), h
    text = b.decode()
    assert 'beamlet_members{state="active"} 3' in text, text[:2000]
    for name in ("beamlet_build_info", "beamlet_messages_received_total", "beamlet_sent_bytes_total",
                 "beamlet_send_queue_bytes", "beamlet_handshakes_failed_total", "beamlet_connections",
                 "beamlet_registry_entries", "beamlet_pubsub_published_total", "beamlet_cluster_term"):
        assert "\n# TYPE %s " % name in text, name
    promtool_ok(b)
    for name in ("node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes",
                 "node_filesystem_avail_bytes", "node_network_receive_bytes_total",
                 "process_resident_memory_bytes"):
        assert "\n# TYPE %s " % name in text, name
    assert 'node_filesystem_avail_bytes{device="' in text and 'mountpoint="/"' in text, text
    # one node_cpu_seconds_total series per CPU and mode, as node_exporter (the CPUs /proc/stat lists)
    with open("/proc/stat") as f:
        cpus = sorted(l.split()[0][3:] for l in f if re.match(r"cpu\d", l))
    seen = sorted(set(re.findall(r'^node_cpu_seconds_total\{cpu="(\d+)",mode="idle"\} ', text, re.M)))
    assert seen == cpus, (seen, cpus)
    assert 'cpu="all"' not in text
    st, h, b = req(P_G1, "GET", "/metrics?scope=cluster")
    assert st == 200
    text = b.decode()
    for n in (G1, A1, A2):
        assert 'beamlet_members{node="%s",state="active"} 3' % n in text, (n, text[:3000])
    assert text.count("# TYPE beamlet_members gauge") == 1
    promtool_ok(b)


CAMEL = re.compile(r"^node_memory_\w+ metric names should be written in 'snake_case' not 'camelCase'$")


def promtool_ok(b):
    """promtool check metrics: a valid exposition (exit 0), or exit 3 (lint only) whose every
    complaint is the camelCase of node_exporter's own node_memory_* names, which node_exporter's
    /metrics gets from the same promtool (test_node_exporter_names_lint_alike)."""
    p = subprocess.run(["promtool", "check", "metrics"], input=b, capture_output=True)
    out = (p.stdout + p.stderr).decode().strip().splitlines()
    assert p.returncode in (0, 3), (p.returncode, out)
    assert p.returncode == 0 or all(CAMEL.match(l) for l in out), out


def test_node_exporter_names_lint_alike():
    ne = subprocess.Popen(["prometheus-node-exporter", "--web.listen-address=127.0.0.1:19100"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        b = wait_until(lambda: req(19100, "GET", "/metrics")[2], what="node_exporter")
        p = subprocess.run(["promtool", "check", "metrics"], input=b, capture_output=True)
        out = (p.stdout + p.stderr).decode()
        assert "node_memory_MemAvailable_bytes metric names should be written in 'snake_case'" in out, out[:500]
        ours = req(P_G1, "GET", "/metrics")[2].decode()
        theirs = b.decode()
        for name in ("node_load1", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
                     "node_cpu_seconds_total"):
            assert "# TYPE %s " % name in theirs and "# TYPE %s " % name in ours, name
    finally:
        ne.terminate()
        ne.wait(10)


def test_real_prometheus_scrapes():
    d = tempfile.mkdtemp(prefix="gw-prom-")
    cfg = os.path.join(d, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: beamlet\n    metrics_path: /metrics\n"
                "    params:\n      scope: [cluster]\n    honor_labels: true\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % P_G1)
    log = open(os.path.join(LOG_DIR, "gateway-prometheus.log"), "w")
    p = subprocess.Popen(["prometheus", "--config.file", cfg, "--storage.tsdb.path", d + "/data",
                          "--web.listen-address", "127.0.0.1:19090"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def query():
            st, _, j = jreq(19090, "GET", "/api/v1/query?query=beamlet_members%7Bstate%3D%22active%22%7D")
            res = j["data"]["result"] if st == 200 else []
            return res if len({r["metric"].get("node") for r in res}) == 3 else None
        res = wait_until(query, timeout=60, step=0.5, what="Prometheus answering beamlet_members")
        assert all(r["value"][1] == "3" for r in res), res
        st, _, t = jreq(19090, "GET", "/api/v1/targets")
        assert t["data"]["activeTargets"][0]["health"] == "up", t
    finally:
        p.terminate()
        p.wait(20)
        shutil.rmtree(d, ignore_errors=True)


def test_https():
    d = tempfile.mkdtemp(prefix="gw-tls-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    d + "/key.pem", "-out", d + "/cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    t = Node("gw_t1", 18091, args=["--http-tls-cert", d + "/cert.pem", "--http-tls-key", d + "/key.pem"])
    try:
        wait_until(lambda: req(18091, "GET", "/healthz", tls=True)[0] == 200, what="https")
        st, _, j = jreq(18091, "GET", "/api/v1/cluster", tls=True)
        assert st == 200 and j["size"] >= 1, j
        try:  # plain HTTP to the TLS port is not answered as HTTP
            st = req(18091, "GET", "/healthz", timeout=5)[0]
        except Exception:  # the server drops it: what we want
            st = None
        assert st != 200
    finally:
        t.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_bad_config_refused():
    p = subprocess.run([BEAMLET, "node", "--sname", "gw_bad", "--http-port", "abc"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "http_port" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([BEAMLET, "node", "--sname", "gw_bad", "--http-address", "300.1.1.1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "http_address" in p.stderr, p.stderr
    p = subprocess.run([BEAMLET, "node", "--sname", "gw_bad", "--cookie", "x", "--http-port",
                        "18092", "--http-tls-cert", "/nonexistent.pem", "--http-tls-key",
                        "/nonexistent.pem"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "http_tls_cert" in p.stdout + p.stderr, (p.returncode, p.stdout, p.stderr)
    # the port in use: a clear line, exit 1
    p = subprocess.run([BEAMLET, "node", "--sname", "gw_bad2", "--cookie", "x", "--http-port",
                        str(P_G1)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot listen" in p.stdout + p.stderr, (p.stdout, p.stderr)


class SSE:
    """A reader of /api/v1/stream on a thread: events as (time, id, type, data)."""

    def __init__(self, port, last_id=None):
        self.events, self.lock = [], threading.Lock()
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        h = "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
        if last_id is not None:
            h += "Last-Event-ID: %s\r\n" % last_id
        self.s.sendall((h + "\r\n").encode())
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        buf = b""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return
                buf += d
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    ev = {}
                    for line in block.decode(errors="replace").split("\n"):
                        if ":" in line and not line.startswith(":"):
                            k, v = line.split(":", 1)
                            ev[k.strip().split("\r")[-1]] = v.strip()
                    if "data" in ev:
                        with self.lock:
                            self.events.append((time.time(), int(ev.get("id", 0)), ev.get("event"),
                                                json.loads(ev["data"])))
        except OSError:
            return

    def find(self, fn):
        with self.lock:
            return [e for e in self.events if fn(e)]

    def close(self):
        self.s.close()


def test_sse_kill9_and_resume():
    s = SSE(P_G1)
    try:
        time.sleep(0.5)
        t_kill = time.time()
        S["a2"].kill9()
        hit = wait_until(lambda: s.find(lambda e: e[2] == "node_state_changed" and e[3]["node"] == A2),
                         timeout=10, step=0.02, what="a2 state change on the stream")
        delay = hit[0][0] - t_kill
        print("    kill -9 -> stream event %.0f ms (%s -> %s)" % (delay * 1000, hit[0][3]["from"], hit[0][3]["to"]))
        assert delay < 2.0, delay
        failed = wait_until(lambda: s.find(lambda e: e[2] == "node_state_changed" and e[3]["node"] == A2
                                           and e[3]["to"] == "failed"), timeout=10, what="a2 failed")
        assert failed[0][3]["severity"] == "error"
        first_id = hit[0][1]
        # the health service raises one member_failed alert; an operator acknowledges it
        alert = wait_until(lambda: [a for a in jreq(P_G1, "GET", "/api/v1/alerts?state=firing")[2]
                                    if a["rule"] == "member_failed" and a.get("node") == A2],
                           timeout=30, what="a member_failed alert for a2")
        wait_until(lambda: s.find(lambda e: e[2] == "alert_firing" and e[3]["alert"]["rule"] == "member_failed"),
                   timeout=10, what="alert_firing on the stream")
        st, _, j = jreq(P_G1, "POST", "/api/v1/alerts/%d/ack" % alert[0]["id"], key=S["operator"])
        assert st == 200 and j["acked_by"] == "ops", j
        wait_until(lambda: [a for a in jreq(P_G1, "GET", "/api/v1/alerts")[2]
                            if a["id"] == alert[0]["id"] and a.get("acked_by") == "ops"], what="acked")
    finally:
        s.close()
    # resume from just before the first a2 event: it is sent again, then what followed
    r = SSE(P_G1, last_id=first_id - 1)
    try:
        got = wait_until(lambda: r.find(lambda e: e[1] >= first_id), timeout=5, what="replay")
        assert got[0][1] == first_id and got[0][3]["node"] == A2, got
        assert not r.find(lambda e: e[1] < first_id)
    finally:
        r.close()
    ev = jreq(P_G1, "GET", "/api/v1/events?node=%s&type=node_state_changed&severity=error" % A2)[2]
    assert ev and all(e["severity"] == "error" and e["node"] == A2 for e in ev), ev
    assert jreq(P_G1, "GET", "/api/v1/events?since=1h&limit=2")[2].__len__() == 2
    # a2 comes back with the same name: active again, seen on the stream
    s2 = SSE(P_G1)
    try:
        S["a2"] = Node("gw_a2", P_A2, join=["gw_g1"]).wait_http()
        wait_until(lambda: s2.find(lambda e: e[2] == "node_state_changed" and e[3]["node"] == A2
                                   and e[3]["to"] == "active") or
                   s2.find(lambda e: e[2] == "node_joined" and e[3]["node"] == A2),
                   timeout=20, what="a2 back")
    finally:
        s2.close()


def test_topology_is_the_real_links():
    """/api/v1/topology: each pair of the C-only cluster, reported by both ends; a fourth member
    adds its three links; after its kill -9 its links go, and it is listed as unreachable for as
    long as the cluster still counts it live (suspected)."""
    def topo():
        return jreq(P_G1, "GET", "/api/v1/topology")[2]

    def pairs(t):
        return sorted((l["source"], l["target"], tuple(sorted(l["seen_by"]))) for l in t["links"])

    three = sorted([(a, b, tuple(sorted((a, b)))) for a, b in
                    [tuple(sorted(p)) for p in ((G1, A1), (G1, A2), (A1, A2))]])
    wait_until(lambda: pairs(topo()) == three and not topo()["unreachable"], timeout=20, what="3 links")
    t4 = Node("gw_t4", 18083, join=["gw_g1"]).wait_http()
    T4 = t4.name
    try:
        wait_until(lambda: len([l for l in topo()["links"] if T4 in (l["source"], l["target"])
                                and len(l["seen_by"]) == 2]) == 3, timeout=30, what="t4's 3 links")
        assert len(topo()["links"]) == 6
        t4.kill9()
        def gone():
            t = topo()
            st = [m["state"] for m in t["nodes"] if m["node"] == T4]
            return not [l for l in t["links"] if T4 in (l["source"], l["target"])] and \
                (T4 in t["unreachable"] or st in (["failed"], ["left"], []))
        wait_until(gone, timeout=30, step=0.05, what="t4's links gone")
        assert pairs(topo()) == three, topo()
    finally:
        t4.stop()


def test_events_and_keys_survive_a_restart():
    """/api/v1/events?source=store reads the node's persisted event log (what `beamlet events`
    reads): an event from before a restart of the node is still answered after it. And an API
    key made on a lone gateway without data_dir still works after it restarts alone (no member
    to resync the key table from)."""
    n = Node("gw_ev1", 18084).wait_http()
    ev1 = n.name
    try:
        key = make_key(ev1, "admin", "lone")
        for onoff in ("on", "off"):
            rc, out, err = cli("node", "maintenance", onoff, "--node", ev1, "--who", "tester")
            assert rc == 0, (rc, out, err)

        def admin_events():
            st, _, j = jreq(18084, "GET", "/api/v1/events?source=store&since=1h&limit=5000")
            assert st == 200, (st, j)
            return [e for e in j if e.get("who") == "tester"]
        before = wait_until(lambda: len(admin_events()) >= 2 and admin_events(), timeout=15,
                            what="the maintenance events in the store")
        assert all(isinstance(e["body"], dict) and e["severity"] in ("info", "warn", "critical")
                   for e in before), before
        assert [e["time_ms"] for e in before] == sorted(e["time_ms"] for e in before)  # oldest first
        n.stop()
        n = Node("gw_ev1", 18084).wait_http()
        after = admin_events()
        st, _, keys = jreq(18084, "GET", "/api/v1/apikeys", key=key)
        assert st == 200 and any(k["name"] == "lone" for k in keys), (st, keys)
        assert [e["id"] for e in before] == [e["id"] for e in after][:len(before)], (before, after)
        assert jreq(18084, "GET", "/api/v1/events?source=nosuch")[0] == 400
        assert jreq(18084, "GET", "/api/v1/events?limit=5000")[0] == 400  # the ring holds 1024
        assert jreq(18084, "GET", "/api/v1/events?source=store&type=" + "x" * 100)[0] == 400
    finally:
        n.stop()


def test_non_loopback_needs_keys():
    p = subprocess.run(["unshare", "-n", "sh", os.path.join(os.path.dirname(__file__), "nonloopback.sh"),
                        BEAMLET], capture_output=True, text=True, timeout=120)
    lines = dict(l.split(" ", 1) for l in p.stdout.strip().splitlines() if " " in l)
    assert lines.get("private") == "401 401 200", (p.stdout, p.stderr)  # reads need a key, /healthz open
    assert lines.get("public") == "200 401", (p.stdout, p.stderr)  # http_public_read: reads, not writes


def test_health_routes():
    st, _, h = jreq(P_G1, "GET", "/api/v1/health")
    assert st == 200 and 0.0 <= h["score"] <= 1.0 and h["status"], h
    st, _, c = jreq(P_G1, "GET", "/api/v1/cluster")
    assert "score" in c["health"], c
    op = S["operator"]
    assert jreq(P_G1, "PUT", "/api/v1/nodes/%s/maintenance" % A1, key=S["viewer"])[0] == 403
    st, _, j = jreq(P_G1, "PUT", "/api/v1/nodes/%s/maintenance" % A1, key=op)
    assert st == 200 and j["maintenance"] is True and j["by"] == "ops", j
    wait_until(lambda: [n for n in jreq(P_G1, "GET", "/api/v1/health")[2]["nodes"]
                        if n["node"] == A1 and n["maintenance"]], what="a1 in maintenance")
    st, _, j = jreq(P_G1, "DELETE", "/api/v1/nodes/%s/maintenance" % A1, key=op)
    assert st == 200 and j["maintenance"] is False, j
    assert jreq(P_G1, "PUT", "/api/v1/nodes/nosuch@nowhere/maintenance", key=op)[0] == 404
    names = wait_until(lambda: jreq(P_G1, "GET", "/api/v1/metrics/history?node=" + A1)[2],
                       what="history metric names")
    assert isinstance(names, list) and names, names
    m = "cpu.percent" if "cpu.percent" in names else names[0]
    st, _, hist = jreq(P_G1, "GET", "/api/v1/metrics/history?node=%s&metric=%s&from=10m&step=60000" % (A1, m))
    assert st == 200 and hist["node"] == A1 and isinstance(hist["points"], list), hist
    assert jreq(P_G1, "GET", "/api/v1/metrics/history?metric=%s&from=never" % m)[0] == 400
    st, _, al = jreq(P_G1, "GET", "/api/v1/alerts")
    assert st == 200 and isinstance(al, list), al
    assert jreq(P_G1, "GET", "/api/v1/alerts?state=sideways")[0] == 400
    assert jreq(P_G1, "POST", "/api/v1/alerts/999999/ack", key=op)[0] == 404
    assert jreq(P_G1, "POST", "/api/v1/alerts/1/ack")[0] == 401


def test_node_leave():
    n = Node("gw_l1", 18093, join=["gw_g1"]).wait_http()
    wait_until(lambda: any(m["node"] == n.name and m["state"] == "active"
                           for m in jreq(P_G1, "GET", "/api/v1/nodes")[2]), what="l1 active")
    st, _, j = jreq(P_G1, "POST", "/api/v1/nodes/%s/leave" % n.name, key=S["admin"])
    assert st == 202 and j["status"] == "leaving", j
    n.p.wait(20)
    assert n.p.returncode == 0, n.p.returncode
    wait_until(lambda: [m for m in jreq(P_G1, "GET", "/api/v1/nodes")[2]
                        if m["node"] == n.name and m["state"] == "left"], what="l1 left")


def test_cluster_config():
    """/api/v1/config: reads on any node; writes (admin) through the leader, refused with 503
    while the cluster has no coordinator, checked with the configuration file's rules (400
    naming the key), applied on the other members, with history and unset."""
    st, _, doc = jreq(P_G1, "GET", "/api/v1/openapi.json")
    st, _, c = jreq(P_A1, "GET", "/api/v1/config")
    assert st == 200 and isinstance(c["settings"], list), (st, c)
    check(doc, doc["paths"]["/api/v1/config"]["get"]["responses"]["200"]["content"]["application/json"]["schema"], c)
    path = "/api/v1/config/failure_threshold"
    assert jreq(P_G1, "PUT", path, {"value": 4})[0] == 401
    assert jreq(P_G1, "PUT", path, {"value": 4}, key=S["viewer"])[0] == 403
    st, _, j = jreq(P_G1, "PUT", path, {"value": 4}, key=S["admin"])
    assert st == 503 and "no leader" in j["detail"], (st, j)
    c1 = Node("gw_c1", 18089, role="coordinator", join=["gw_g1"]).wait_http()
    try:
        wait_until(lambda: jreq(P_G1, "GET", "/api/v1/cluster")[2].get("leader") == c1.name,
                   what="c1 leads")
        st, _, j = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(
            jreq(P_G1, "PUT", path, {"value": 4}, key=S["admin"])), what="a write accepted")
        assert j["key"] == "failure_threshold" and j["value"] == "4" and j["live"] is True, j
        # 200 means committed (a majority of the coordinators hold it), and says so
        assert j["state"] == "committed" and j["holders"] >= j["needed"] == 1, j
        check(doc, doc["paths"]["/api/v1/config/{key}"]["put"]["responses"]["200"]["content"]["application/json"]["schema"], j)
        st, _, vs = jreq(P_A1, "GET", "/api/v1/config/versions/%d?term=%d" % (j["version"], j["term"]))
        assert st == 200 and vs["state"] == "committed" and vs["key"] == "failure_threshold", (st, vs)
        check(doc, doc["paths"]["/api/v1/config/versions/{version}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"], vs)
        st, _, vs = jreq(P_A1, "GET", "/api/v1/config/versions/%d?term=%d" % (j["version"], j["term"] + 5))
        assert st == 200 and vs["state"] == "lost", (st, vs)  # another write's term: not this one
        assert jreq(P_A1, "GET", "/api/v1/config/versions/abc")[0] == 400
        assert jreq(P_A1, "GET", "/api/v1/config/versions/1?term=-1")[0] == 400
        wait_until(lambda: [x for x in jreq(P_A2, "GET", "/api/v1/config")[2]["settings"]
                            if x["key"] == "failure_threshold" and x["value"] == "4"
                            and x["applied"] == "running"], what="a2 runs failure_threshold 4")
        st, _, j = jreq(P_G1, "PUT", "/api/v1/config/heartbeat_interval_ms", {"value": "abc"},
                        key=S["admin"])
        assert st == 400 and "heartbeat_interval_ms" in j["detail"], (st, j)
        st, _, j = jreq(P_G1, "PUT", "/api/v1/config/role", {"value": "agent"}, key=S["admin"])
        assert st == 400 and "role" in j["detail"], (st, j)
        assert jreq(P_G1, "PUT", path, {"nothing": 1}, key=S["admin"])[0] == 400
        st, _, one = jreq(P_A1, "GET", path)
        assert st == 200 and one["settings"][0]["value"] == "4", one
        assert jreq(P_A1, "GET", "/api/v1/config/event_log_size")[0] == 404
        st, _, h = jreq(P_A1, "GET", "/api/v1/config/history?key=failure_threshold")
        assert st == 200 and h and h[0]["new"] == "4" and h[0]["who"] == "root", h
        check(doc, doc["paths"]["/api/v1/config/history"]["get"]["responses"]["200"]["content"]["application/json"]["schema"], h)
        st, _, j = jreq(P_G1, "DELETE", path, key=S["admin"])
        assert st == 200 and j["value"] is None and j["state"] == "committed", (st, j)
        assert jreq(P_G1, "DELETE", path, key=S["admin"])[0] == 404
        tasks_queue_timeout_and_changes(doc)
    finally:
        c1.stop()


def tasks_queue_timeout_and_changes(doc):
    """(with a coordinator up) POST /api/v1/tasks with queue_timeout_ms: a task no agent can take
    fails with queue_timeout; GET /api/v1/tasks/changes streams every task's transitions with a
    cursor, filtered, as a long poll."""
    op = S["operator"]
    st, _, cur = jreq(P_G1, "GET", "/api/v1/tasks/changes?wait_ms=0")
    assert st == 200 and cur["changes"] == [] and cur["missed"] == 0, (st, cur)
    check(doc, doc["paths"]["/api/v1/tasks/changes"]["get"]["responses"]["200"]["content"]["application/json"]["schema"], cur)
    st, _, b = jreq(P_G1, "POST", "/api/v1/tasks", {"type": "echo", "capabilities": ["gw-none"],
                                                     "queue_timeout_ms": 700}, key=op)
    assert st == 202, (st, b)
    t = wait_until(lambda: (lambda r: r[2] if r[2] and r[2].get("state") == "failed" else None)(
        jreq(P_A1, "GET", "/api/v1/tasks/" + b["id"])), what="the task failed in the queue")
    assert t["error"] == "queue_timeout" and t["attempt"] == 0 and t["queue_timeout_ms"] == 700, t
    st, _, ch = jreq(P_A2, "GET", "/api/v1/tasks/changes?since=%d&term=%d&wait_ms=0" % (cur["next"], cur["term"]))
    assert st == 200, (st, ch)
    mine = [(c["state"], c.get("error")) for c in ch["changes"] if c["id"] == b["id"]]
    assert mine == [("queued", None), ("failed", "queue_timeout")], ch
    check(doc, doc["paths"]["/api/v1/tasks/changes"]["get"]["responses"]["200"]["content"]["application/json"]["schema"], ch)
    # a long poll filtered by state: answered when the next failure comes, not before
    got = {}
    def poll():
        got["r"] = jreq(P_A1, "GET", "/api/v1/tasks/changes?since=%d&term=%d&state=failed&wait_ms=20000"
                        % (ch["next"], ch["term"]), timeout=40)
    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    assert "r" not in got
    st, _, b2 = jreq(P_G1, "POST", "/api/v1/tasks", {"type": "echo", "capabilities": ["gw-none"],
                                                      "queue_timeout_ms": 300}, key=op)
    th.join(30)
    st, _, r = got["r"]
    assert st == 200 and [c["id"] for c in r["changes"]] == [b2["id"]], (st, r)
    assert jreq(P_G1, "GET", "/api/v1/tasks/changes?wait_ms=abc")[0] == 400
    assert jreq(P_G1, "GET", "/api/v1/tasks/changes?state=nope")[0] == 422
    assert jreq(P_G1, "POST", "/api/v1/tasks", {"type": "echo", "queue_timeout_ms": "x"}, key=op)[0] == 422


def main():
    r = Runner("gateway")
    try:
        start_cluster()
        S["viewer"] = make_key(G1, "viewer", "viewer")
        S["viewer2"] = make_key(G1, "viewer", "viewer2")
        S["viewer2_id"] = S["viewer2"].split("_")[1]
        S["operator"] = make_key(G1, "operator", "ops")
        S["admin"] = make_key(G1, "admin", "root")
        for t in (test_reads_every_route, test_services_and_filters, test_publish_and_topics,
                  test_pg_and_global, test_problem_details, test_openapi_matches_the_server,
                  test_keys_replicated_and_roles, test_auth_matrix, test_audit_trail,
                  test_rate_limit, test_metrics_promtool, test_node_exporter_names_lint_alike, test_real_prometheus_scrapes,
                  test_https, test_bad_config_refused, test_non_loopback_needs_keys, test_health_routes, test_topology_is_the_real_links,
                  test_events_and_keys_survive_a_restart, test_sse_kill9_and_resume,
                  test_node_leave, test_cluster_config):
            r.run(t)
    except Exception:
        import traceback
        traceback.print_exc()
        r.failed += 1
    finally:
        cleanup()
    return r.finish()


if __name__ == "__main__":
    raise SystemExit(main())
