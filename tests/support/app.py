#!/usr/bin/env python3
"""A node's HTTP app for deckhand's tests: serves /up and /version from the node's `current`
release, on 127.0.0.1 only. Usage: app.py PORT DEPLOY_PATH. Writes its pid to
DEPLOY_PATH/shared/app.pid; a restart phase kills it and starts it again."""
import http.server
import os
import sys

port = int(sys.argv[1])
deploy_path = sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        current = os.path.join(deploy_path, "current")
        if self.path == "/up":
            ok = os.path.isdir(current)
            self.reply(200 if ok else 503, "ok\n" if ok else "no current release\n")
        elif self.path == "/version":
            try:
                with open(os.path.join(current, "VERSION")) as f:
                    self.reply(200, f.read().strip() + "\n")
            except OSError:
                self.reply(500, "no VERSION\n")
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


os.makedirs(os.path.join(deploy_path, "shared"), exist_ok=True)
with open(os.path.join(deploy_path, "shared", "app.pid"), "w") as f:
    f.write(str(os.getpid()))
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
server.serve_forever()
