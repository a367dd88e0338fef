"""A stand-in MCP server for checking the churn generator's checks (bench/peers/smoke.sh).

Usage: python3 check_server.py PORT GOOD|BAD

It answers like a stateful server that replies with SSE: `initialize` gets a session id and a
body naming protocolVersion, a notification gets 202, a call gets its result, DELETE gets 200.
Every SSE body goes out chunked, split in two chunks in the middle, so "Echo: hello" only
appears once the generator has joined the chunks. BAD answers the call with "Echo: goodbye":
the generator must count every lifecycle as a bad body and complete none.
"""

import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    good = True

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if b'"id"' not in body:
            self.empty(202)
            return
        if b'"initialize"' in body:
            data = b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}\n\n'
        else:
            text = b"Echo: hello" if self.good else b"Echo: goodbye"
            data = b'event: message\ndata: {"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"' \
                + text + b'"}]}}\n\n'
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("mcp-session-id", "check-session")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        half = data.index(b"Echo") + 3 if b"Echo" in data else len(data) // 2
        for part in (data[:half], data[half:]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def do_DELETE(self):
        self.empty(200)

    def empty(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    Handler.good = sys.argv[2] == "GOOD"
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
