#!/usr/bin/env python3
"""webhook_listener.py - a real HTTP server for the alerts and checks suites: records every POST
body as one JSON line in OUT, answers 500 to the first FAIL_FIRST POSTs (to make the node retry),
200 after; a GET /status/NNN answers NNN (HTTP health checks). Binds 127.0.0.1 on a free port and
writes the port to PORTFILE."""
import http.server
import sys

out, portfile, fail_first = sys.argv[1], sys.argv[2], int(sys.argv[3])
count = {"n": 0}


class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8", "replace")
        count["n"] += 1
        status = 500 if count["n"] <= fail_first else 200
        with open(out, "a") as f:
            f.write("%d %s %s\n" % (status, self.headers.get("Content-Type", ""), body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        try:
            code = int(self.path.rsplit("/", 1)[-1])
        except ValueError:
            code = 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(portfile, "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
