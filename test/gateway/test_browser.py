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
                        S["victim"].name, str(S["victim"].p.pid), chrome, S["key"], S["queued_task"]],
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
    # the tasks view: a queued task cancelled from the page, the agent listed
    assert res["checks"]["task_cancelled"] is True and res["checks"]["agents"] >= 1, res["checks"]
    st, _, t = jreq(PORT, "GET", "/api/v1/tasks/" + S["queued_task"])
    assert st == 200 and t["state"] == "cancelled", (st, t)


def main():
    r = Runner("dashboard")
    try:
        g1 = Node("gw_d1", PORT, role="gateway").wait_http()
        # a coordinator: the leader that runs the task dispatcher (the Tasks view)
        a1 = Node("gw_d2", PORT + 1, role="coordinator", join=["gw_d1"]).wait_http()
        a2 = Node("gw_d3", None, join=["gw_d1"])
        S["nodes"], S["victim"] = [g1, a1, a2], a2
        wait_until(lambda: len([m for m in jreq(PORT, "GET", "/api/v1/nodes")[2] if m["state"] == "active"]) == 3,
                   what="3 active members")
        key = S["key"] = make_key(g1.name, "operator", "dash")
        for port, name in ((PORT, "web"), (PORT + 1, "web"), (PORT + 1, "db")):
            assert jreq(port, "POST", "/api/v1/services", {"name": name}, key=key)[0] == 201
        # a task that runs (on gw_d3, the one agent) and one no agent can take (stays queued)
        wait_until(lambda: jreq(PORT, "GET", "/api/v1/agents")[0] == 200 and
                   len(jreq(PORT, "GET", "/api/v1/agents")[2]) == 1, what="the agent advertised")
        st, _, b = jreq(PORT, "POST", "/api/v1/tasks", {"type": "echo", "payload": {"n": 1}}, key=key)
        assert st == 202, (st, b)
        wait_until(lambda: jreq(PORT, "GET", "/api/v1/tasks/" + b["id"])[2].get("state") == "succeeded",
                   what="the echo task done")
        st, _, q = jreq(PORT, "POST", "/api/v1/tasks", {"type": "echo", "capabilities": ["dash-none"]}, key=key)
        assert st == 202, (st, q)
        S["queued_task"] = q["id"]
        r.run(test_dashboard_in_chromium)
    except Exception:
        import traceback
        traceback.print_exc()
        r.failed += 1
    finally:
        cleanup()
    return r.finish()


if __name__ == "__main__":
    raise SystemExit(main())
