"""test_browser.py - the dashboard in a real headless Chromium (Debian `chromium`), driven over
the DevTools protocol by cdp/dashboard.js (node + the vendored `ws` package), against a real
3-node cluster: no console errors or failed loads, every member in the topology, one member
turning failed after a kill -9 without a reload and within a second of the cluster noticing, the
services grid, the event log with a filter, a metrics graph, phone width. Screenshots land in
build/ for review."""
import json
import os
import shutil
import subprocess

from lib import Node, Runner, cleanup, jreq, make_key, node_name, wait_until, ROOT

PORT = 18200
S = {}


def test_dashboard_in_chromium():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chrome, "chromium is not installed (rel/tools/deps.sh installs it)"
    out = os.path.join(ROOT, "build")
    p = subprocess.run(["node", os.path.join(ROOT, "test/gateway/cdp/dashboard.js"),
                        "http://127.0.0.1:%d/" % PORT, out, ",".join(n.name for n in S["nodes"]),
                        S["victim"].name, str(S["victim"].p.pid), chrome, S["key"]],
                       capture_output=True, text=True, timeout=200)
    line = (p.stdout.strip().splitlines() or ["{}"])[-1]
    res = json.loads(line)
    print("    " + json.dumps(res.get("checks", {}))[:600])
    for f in res.get("screenshots", []):
        print("    screenshot " + os.path.relpath(f, ROOT))
    assert p.returncode == 0, (res.get("failed"), res.get("errors"), res.get("debug"), p.stderr[-2000:])
    assert res["checks"]["members"] == 3 and not res["checks"]["reloaded"], res
    assert res["errors"] == [], res["errors"]
    # with the health service the member_failed alert is acknowledged from the page
    assert res["checks"]["alert_acked"] in (True, "no health service on this node"), res["checks"]


def test_tasks_view_in_chromium():
    # a second cluster with a coordinator (the leader runs the task dispatcher)
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    port = PORT + 10
    g = Node("gw_t1", port, role="gateway").wait_http()
    c = Node("gw_t2", None, role="coordinator", join=["gw_t1"])
    a = Node("gw_t3", None, join=["gw_t1"])
    wait_until(lambda: jreq(port, "GET", "/api/v1/agents")[0] == 200 and
               len(jreq(port, "GET", "/api/v1/agents")[2]) == 1, timeout=40, what="the agent advertised")
    key = make_key(g.name, "operator", "tasks")
    # a task that runs (on gw_t3, the one agent) and one no agent can take (stays queued)
    st, _, b = jreq(port, "POST", "/api/v1/tasks", {"type": "echo", "payload": {"n": 1}}, key=key)
    assert st == 202, (st, b)
    wait_until(lambda: jreq(port, "GET", "/api/v1/tasks/" + b["id"])[2].get("state") == "succeeded",
               what="the echo task done")
    st, _, t = jreq(port, "GET", "/api/v1/tasks/" + b["id"])
    assert t["result"] == {"n": 1} and t["agent"] == a.name and len(t["trace_id"]) == 32, t
    st, _, q = jreq(port, "POST", "/api/v1/tasks", {"type": "echo", "capabilities": ["dash-none"]}, key=key)
    assert st == 202, (st, q)
    assert jreq(port, "POST", "/api/v1/tasks", {"type": "echo"})[0] == 401  # writes need a key
    assert jreq(port, "POST", "/api/v1/tasks", {"payload": 1}, key=key)[0] == 422
    # the payload goes through the one JSON-to-term encoder: nested deeper than 64 levels is
    # refused before anything is sent; reals and binary keys come back as given
    deep = 1
    for _ in range(70):
        deep = [deep]
    st, _, e = jreq(port, "POST", "/api/v1/tasks", {"type": "echo", "payload": deep}, key=key)
    assert st == 422 and "64" in e.get("detail", ""), (st, e)
    pl = {"r": 2.5, "k": [{"n": None, "t": True}], "é": "x"}
    st, _, b2 = jreq(port, "POST", "/api/v1/tasks", {"type": "echo", "payload": pl}, key=key)
    assert st == 202, (st, b2)
    wait_until(lambda: jreq(port, "GET", "/api/v1/tasks/" + b2["id"])[2].get("state") == "succeeded",
               what="the echo task with a nested payload done")
    assert jreq(port, "GET", "/api/v1/tasks/" + b2["id"])[2]["result"] == pl
    assert jreq(port, "GET", "/api/v1/tasks/nosuch")[0] == 404
    st, _, lst = jreq(port, "GET", "/api/v1/tasks?state=queued")
    # (the coordinator keeps its queue on disk across runs: earlier runs' tasks may be listed)
    assert st == 200 and q["id"] in [x["id"] for x in lst], lst
    assert all(x["state"] == "queued" for x in lst), lst
    p = subprocess.run(["node", os.path.join(ROOT, "test/gateway/cdp/dashboard.js"),
                        "http://127.0.0.1:%d/" % port, os.path.join(ROOT, "build"),
                        ",".join(n.name for n in (g, c, a)), "-", "0", chrome, key, q["id"], "tasks"],
                       capture_output=True, text=True, timeout=200)
    line = (p.stdout.strip().splitlines() or ["{}"])[-1]
    res = json.loads(line)
    print("    " + json.dumps(res.get("checks", {}))[:300])
    assert p.returncode == 0, (res.get("failed"), res.get("errors"), p.stderr[-2000:])
    assert res["checks"]["task_cancelled"] is True and res["checks"]["agents"] == 1, res["checks"]
    st, _, t = jreq(port, "GET", "/api/v1/tasks/" + q["id"])
    assert st == 200 and t["state"] == "cancelled", (st, t)
    assert jreq(port, "POST", "/api/v1/tasks/%s/cancel" % q["id"], key=key)[0] == 409


def main():
    r = Runner("dashboard")
    try:
        g1 = Node("gw_d1", PORT, role="gateway").wait_http()
        a1 = Node("gw_d2", PORT + 1, join=["gw_d1"]).wait_http()
        a2 = Node("gw_d3", None, join=["gw_d1"])
        S["nodes"], S["victim"] = [g1, a1, a2], a2
        wait_until(lambda: len([m for m in jreq(PORT, "GET", "/api/v1/nodes")[2] if m["state"] == "active"]) == 3,
                   what="3 active members")
        key = S["key"] = make_key(g1.name, "operator", "dash")
        # the key was made on gw_d1 and reaches gw_d2 by replication: it may take a moment there
        for port, name in ((PORT, "web"), (PORT + 1, "web"), (PORT + 1, "db")):
            wait_until(lambda: jreq(port, "POST", "/api/v1/services", {"name": name}, key=key)[0] == 201,
                       timeout=15, what="service %s registered through port %d" % (name, port))
        r.run(test_dashboard_in_chromium)
        r.run(test_tasks_view_in_chromium)
    except Exception:
        import traceback
        traceback.print_exc()
        r.failed += 1
    finally:
        cleanup()
    return r.finish()


if __name__ == "__main__":
    raise SystemExit(main())
