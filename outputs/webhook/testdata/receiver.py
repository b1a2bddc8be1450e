"""A webhook receiver on Python's http.server for the receiver-matrix test: it appends the
uuid of every event it receives (CORRUPT for a body that is not an event) to the file named
by its second argument, answers 200, and closes keep-alive connections idle for 0.3 s."""
import http.server
import json
import sys

port, path = int(sys.argv[1]), sys.argv[2]
out = open(path, "a", buffering=1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 0.3  # idle keep-alive connections are closed after this

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            uid = json.loads(body)["uuid"]
        except Exception:
            uid = "CORRUPT"
        out.write(uid + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
