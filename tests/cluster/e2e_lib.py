"""Shared stdlib-only helpers for tests/cluster/cluster-e2e.sh (raw HTTP MCP clients, RESP).

Nothing here uses an MCP SDK: requests are built by hand so the test sees exactly what goes
over the wire (status codes, Set-Cookie, Mcp-Session-Id) through Traefik.
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Any

PROTOCOL = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
COOKIE = "_mcp_backend"


def cookie_value(server_url: str) -> str:
    """Traefik 3.7's sticky cookie value for a server: sha256(url as configured)[:16]."""
    return hashlib.sha256(server_url.encode()).hexdigest()[:16]


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_node_map(spec: str) -> dict[str, str]:
    """'n1=http://127.0.0.1:1,n2=...' -> {'n1': 'http://...', ...}"""
    out = {}
    for part in spec.split(","):
        k, v = part.split("=", 1)
        out[k] = v
    return out


# ------------------------------------------------------------------ replies


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes, want_id: Any = None):
        self.status = status
        self.headers = headers
        self.body = body
        self.msg: Any = None
        ctype = self.header("content-type") or ""
        try:
            if ctype.startswith("application/json") and body:
                self.msg = json.loads(body)
            elif ctype.startswith("text/event-stream"):
                self.msg = sse_find_response(body.decode("utf-8", "replace"), want_id)
        except ValueError:
            self.msg = None

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def backend_cookie(self) -> str | None:
        for sc in self.set_cookies():
            first = sc.split(";", 1)[0].strip()
            if first.startswith(COOKIE + "="):
                return first[len(COOKIE) + 1 :]
        return None

    def error_code(self) -> int | None:
        if isinstance(self.msg, dict) and isinstance(self.msg.get("error"), dict):
            return self.msg["error"].get("code")
        return None

    def result(self) -> Any:
        if isinstance(self.msg, dict):
            return self.msg.get("result")
        return None

    def node(self) -> str | None:
        """node_info's structuredContent.node, when this is a node_info result."""
        r = self.result()
        if isinstance(r, dict) and isinstance(r.get("structuredContent"), dict):
            n = r["structuredContent"].get("node")
            return n if isinstance(n, str) else None
        return None

    def short(self) -> str:
        return f"{self.status} {self.body[:160]!r}"


def sse_find_response(text: str, want_id: Any) -> Any:
    """The JSON-RPC response with id want_id in an SSE body (POST answered with a stream)."""
    data: list[str] = []
    for line in text.splitlines() + [""]:
        if line == "":
            if data:
                try:
                    m = json.loads("\n".join(data))
                except ValueError:
                    m = None
                if isinstance(m, dict) and "id" in m and ("result" in m or "error" in m):
                    if want_id is None or m["id"] == want_id:
                        return m
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" ") if line.startswith("data: ") else line[5:])
    return None


# ------------------------------------------------------------------ transports


class JarTransport:
    """urllib + http.cookiejar: a client that keeps cookies the way a browser-ish jar does
    (Secure cookies only go back over https). One connection per request."""

    def __init__(self, base: str, cafile: str | None = None):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        handlers: list[Any] = [urllib.request.HTTPCookieProcessor(self.jar)]
        if cafile:
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=cafile)))
        self.opener = urllib.request.build_opener(*handlers)

    def jar_cookie(self) -> str | None:
        for c in self.jar:
            if c.name == COOKIE:
                return c.value
        return None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        want_id: Any = None, timeout: float = 10.0,
    ) -> Reply:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return Reply(r.status, list(r.headers.items()), r.read(), want_id)
        except urllib.error.HTTPError as e:
            return Reply(e.code, list(e.headers.items()), e.read(), want_id)


class RawTransport:
    """One persistent http.client connection; cookies by hand (or none), so no urllib policy
    gets in the way (the _mcp_backend cookie is Secure; over the http entry point a jar would
    never send it back). `cookie_mode`: 'manual' keeps the last _mcp_backend value it was given
    and always sends it; 'none' never sends one; 'fixed' sends `fixed_cookie` only."""

    def __init__(self, base: str, cafile: str | None = None, cookie_mode: str = "manual",
                 fixed_cookie: str | None = None, timeout: float = 10.0):
        u = urllib.request.urlparse(base)
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=cafile) if u.scheme == "https" else None
        self.cookie_mode = cookie_mode
        self.cookie: str | None = fixed_cookie
        self.lock = threading.Lock()
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def new_conn(self, timeout: float | None = None) -> http.client.HTTPConnection:
        t = self.timeout if timeout is None else timeout
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=t, context=self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=t)

    def cookie_header(self) -> dict[str, str]:
        with self.lock:
            if self.cookie_mode in ("manual", "fixed") and self.cookie:
                return {"Cookie": f"{COOKIE}={self.cookie}"}
        return {}

    def took(self, reply: Reply) -> None:
        if self.cookie_mode == "manual":
            c = reply.backend_cookie()
            if c:
                with self.lock:
                    self.cookie = c

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        want_id: Any = None, timeout: float | None = None,
    ) -> Reply:
        h = dict(headers or {})
        h.update(self.cookie_header())
        data = json.dumps(body).encode() if body is not None else None
        if self.conn is None:
            self.conn = self.new_conn(timeout)
        try:
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            reply = Reply(r.status, r.getheaders(), r.read(), want_id)
        except Exception:
            # No silent retry: a POST may have been processed. The caller counts the failure.
            self.close()
            raise
        if r.will_close:
            self.close()
        self.took(reply)
        return reply


# ------------------------------------------------------------------ MCP session on a transport


def post_headers(sid: str | None) -> dict[str, str]:
    h = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if sid:
        h["Mcp-Session-Id"] = sid
        h["MCP-Protocol-Version"] = PROTOCOL
    return h


class Session:
    def __init__(self, transport: Any, name: str = "cluster-e2e"):
        self.t = transport
        self.name = name
        self.sid: str | None = None
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def initialize(self) -> Reply:
        """initialize + notifications/initialized. Returns the initialize reply; self.sid is set
        only when both succeeded, else self.init_error says what failed."""
        rid = self._id()
        body = {
            "jsonrpc": "2.0", "id": rid, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": self.name, "version": "1.0.0"}},
        }
        self.init_error: str | None = None
        r = self.t.request("POST", "/mcp", body, post_headers(None), want_id=rid)
        sid = r.header("mcp-session-id")
        if r.status != 200 or not sid or r.result() is None:
            self.init_error = f"initialize {r.status}"
            return r
        n = self.t.request("POST", "/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"},
                           post_headers(sid))
        if n.status != 202:
            self.init_error = f"initialized {n.status}"
            return r
        self.sid = sid
        return r

    def call(self, tool: str, args: dict[str, Any] | None = None, sid: str | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        rid = self._id()
        body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                "params": {"name": tool, "arguments": args or {}}}
        h = post_headers(sid or self.sid)
        h.update(headers or {})
        return self.t.request("POST", "/mcp", body, h, want_id=rid)

    def delete(self) -> Reply:
        return self.t.request("DELETE", "/mcp", None, post_headers(self.sid))


# ------------------------------------------------------------------ Redis (RESP over a socket)


class Redis:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.f = self.sock.makefile("rb")

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def cmd(self, *args: str) -> Any:
        enc = [a.encode() for a in args]
        self.sock.sendall(b"*%d\r\n" % len(enc) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in enc))
        return self._read()

    def _read(self) -> Any:
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise RuntimeError(f"unexpected RESP line {line!r}")

    def session_keys(self, prefix: str = "mcp:") -> dict[str, str]:
        """{session id: owner node} for every <prefix>session:* key (SCAN, not KEYS)."""
        out: dict[str, str] = {}
        cursor = "0"
        while True:
            cursor, keys = self.cmd("SCAN", cursor, "MATCH", f"{prefix}session:*", "COUNT", "1000")
            for k in keys:
                raw = self.cmd("GET", k)
                node = "?"
                try:
                    node = json.loads(raw).get("node", "?") if raw else "(gone)"
                except ValueError:
                    pass
                out[k[len(prefix) + len("session:") :]] = node
            if cursor == "0":
                return out


def redis_session_keys(port: int) -> dict[str, str]:
    r = Redis(port)
    try:
        return r.session_keys()
    finally:
        r.close()
