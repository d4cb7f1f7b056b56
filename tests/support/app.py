#!/usr/bin/env python3
"""The HTTP app every test node serves, on 127.0.0.1 only.

Usage: app.py PORT DEPLOY_PATH PID_FILE [--live]

It answers /up, and /version with the VERSION file of the release DEPLOY_PATH/current points
at. By default that file is read once, when the app starts, so a node serves a new release only
once its restart phase has restarted the app ("none" when there was no release yet). With --live
it is read on every request instead (500 while there is none), and /up answers 503 while there
is no `current`. Once the app listens it writes its pid to PID_FILE: a restart phase kills that
pid and starts the app again.
"""
import http.server
import os
import sys

port, deploy_path, pid_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
live = "--live" in sys.argv[4:]
current = os.path.join(deploy_path, "current")


def read_version():
    try:
        with open(os.path.join(current, "VERSION")) as f:
            return f.read().strip()
    except OSError:
        return None


version_at_start = read_version() or "none"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/up":
            if live and not os.path.isdir(current):
                self.reply(503, "no current release\n")
            else:
                self.reply(200, "up\n")
        elif self.path == "/version":
            version = read_version() if live else version_at_start
            if version is None:
                self.reply(500, "no VERSION\n")
            else:
                self.reply(200, version + "\n")
        else:
            self.reply(404, "not found\n")

    def reply(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
with open(pid_file, "w") as f:
    f.write(str(os.getpid()))
server.serve_forever()
