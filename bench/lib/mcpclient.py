"""A small MCP Streamable HTTP client for the benchmarks: stdlib only (asyncio, raw HTTP/1.1).

It opens sessions (initialize + notifications/initialized [+ resources/subscribe]) over a bounded
number of keep-alive connections, holds one GET SSE stream per session, measures notification
fan-out to those streams, and DELETEs sessions. Every reply is checked; failures are counted and
returned, never ignored.

Arrival times of stream data are the time the event loop's epoll returned (TimedSelector), not
the time Python got round to the callback, so a slow client adds less to the measured latency.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import time

PROTOCOL = "2025-06-18"
ACCEPT = "application/json, text/event-stream"

_last_poll = 0.0
# all SSEStream marker arrivals, and a future fan-out waits on (set when the count reaches target)
_arrivals = {"count": 0, "target": None, "fut": None}


class TimedSelector(selectors.EpollSelector):
    """An epoll selector that records when each poll returned."""

    def select(self, timeout=None):
        events = super().select(timeout)
        global _last_poll
        _last_poll = time.perf_counter()
        return events


def new_loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop(TimedSelector())


def run(coro):
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


class HttpError(Exception):
    pass


def _request_bytes(method, host, port, path, body, headers):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for k, v in headers.items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    elif method in ("POST", "DELETE"):
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class Conn:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, host, port, path):
        self.host, self.port, self.path = host, port, path
        self.reader = self.writer = None

    async def _connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(self, method, body=None, headers=None, timeout=30.0):
        """Returns (status, headers (lower-case names), body bytes)."""
        if self.writer is None:
            await self._connect()
        data = _request_bytes(method, self.host, self.port, self.path, body, headers or {})
        try:
            self.writer.write(data)
            return await asyncio.wait_for(self._read_response(), timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, HttpError):
            self.close()
            raise

    async def _read_response(self):
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            body = await self.reader.readexactly(int(hdrs["content-length"]))
        elif "chunked" in hdrs.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers expected
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        elif status in (202, 204, 304) or status < 200:
            body = b""
        else:  # read to close
            body = await self.reader.read()
            self.close()
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, body


def init_body(rid=1):
    return json.dumps({
        "jsonrpc": "2.0", "id": rid, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                   "clientInfo": {"name": "mcpd-bench", "version": "1"}},
    }).encode()


INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def sess_headers(sid):
    return {"Accept": ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL}


def call_body(rid, name, arguments):
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode()


class Stats:
    def __init__(self):
        self.errors = 0
        self.first_errors = []

    def err(self, what):
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(what)


async def _open_one(conn, stats, subscribe_uri, rid):
    st, h, body = await conn.request("POST", init_body(rid), {"Accept": ACCEPT})
    sid = h.get("mcp-session-id")
    if st != 200 or not sid:
        stats.err(f"initialize: {st} sid={sid!r} {body[:120]!r}")
        return None
    st, _, body = await conn.request("POST", INITIALIZED, sess_headers(sid))
    if not 200 <= st < 300:
        stats.err(f"initialized: {st} {body[:120]!r}")
        return None
    if subscribe_uri:
        b = json.dumps({"jsonrpc": "2.0", "id": rid + 1, "method": "resources/subscribe",
                        "params": {"uri": subscribe_uri}}).encode()
        st, _, body = await conn.request("POST", b, sess_headers(sid))
        if st != 200 or b'"result"' not in body:
            stats.err(f"subscribe: {st} {body[:120]!r}")
            return None
    return sid


async def open_sessions(host, port, path, n, conc=32, subscribe_uri=None, deadline=None):
    """Opens n sessions over `conc` keep-alive connections. Returns (sids, stats)."""
    stats = Stats()
    sids = []
    todo = iter(range(n))

    async def worker():
        conn = Conn(host, port, path)
        try:
            for i in todo:
                if deadline and time.monotonic() > deadline:
                    stats.err("deadline reached")
                    return
                try:
                    sid = await _open_one(conn, stats, subscribe_uri, 1 + 2 * i)
                except Exception as e:  # noqa: BLE001 - counted, the run goes on
                    stats.err(f"open: {type(e).__name__} {e}")
                    sid = None
                if sid:
                    sids.append(sid)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(min(conc, max(n, 1)))))
    return sids, stats


async def delete_sessions(host, port, path, sids, conc=32):
    stats = Stats()
    todo = iter(list(sids))

    async def worker():
        conn = Conn(host, port, path)
        try:
            for sid in todo:
                try:
                    st, _, body = await conn.request("DELETE", None, sess_headers(sid))
                    if not 200 <= st < 300:
                        stats.err(f"DELETE: {st} {body[:120]!r}")
                except Exception as e:  # noqa: BLE001
                    stats.err(f"DELETE: {type(e).__name__} {e}")
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(min(conc, max(len(sids), 1)))))
    return stats


async def call_tool(host, port, path, sid, name, arguments, rid=1):
    conn = Conn(host, port, path)
    try:
        return await conn.request("POST", call_body(rid, name, arguments), sess_headers(sid))
    finally:
        conn.close()


class SSEStream(asyncio.Protocol):
    """A GET stream: checks the response head, then timestamps every occurrence of `marker`."""

    def __init__(self, marker: bytes):
        self.marker = marker
        self.head = b""
        self.head_done = asyncio.get_event_loop().create_future()
        self.status = None
        self.ctype = ""
        self.tail = b""
        self.arrivals = []   # perf_counter() of the poll that delivered each marker
        self.closed = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        t = _last_poll
        if not self.head_done.done():
            self.head += data
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                return
            head, data = self.head[:i].decode("latin-1"), self.head[i + 4:]
            lines = head.split("\r\n")
            try:
                self.status = int(lines[0].split(" ")[1])
            except (IndexError, ValueError):
                self.status = -1
            for line in lines[1:]:
                if line.lower().startswith("content-type:"):
                    self.ctype = line.split(":", 1)[1].strip()
            self.head_done.set_result(True)
        buf = self.tail + data
        start = 0
        m = self.marker
        while True:
            j = buf.find(m, start)
            if j < 0:
                break
            self.arrivals.append(t)
            start = j + len(m)
            _arrivals["count"] += 1
            fut = _arrivals["fut"]
            if fut is not None and _arrivals["count"] >= _arrivals["target"] and not fut.done():
                fut.set_result(True)
        keep = len(m) - 1
        self.tail = buf[max(start, len(buf) - keep):] if keep > 0 else b""

    def connection_lost(self, exc):
        self.closed = True
        if not self.head_done.done():
            self.head_done.set_result(False)

    def close(self):
        if self.transport is not None:
            self.transport.close()


async def open_streams(host, port, path, sids, marker=b"notifications/resources/updated",
                       conc=128, timeout=15.0):
    """One GET SSE stream per session. Returns (streams, stats); streams are held open."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    streams = []
    todo = iter(list(sids))

    async def worker():
        for sid in todo:
            try:
                tr, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: SSEStream(marker), host, port), timeout)
                hdrs = {"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                        "MCP-Protocol-Version": PROTOCOL}
                tr.write(_request_bytes("GET", host, port, path, None, hdrs))
                ok = await asyncio.wait_for(proto.head_done, timeout)
                if not ok or proto.status != 200 or "text/event-stream" not in proto.ctype:
                    stats.err(f"GET: status={proto.status} ctype={proto.ctype!r}")
                    proto.close()
                    continue
                streams.append(proto)
            except Exception as e:  # noqa: BLE001
                stats.err(f"GET: {type(e).__name__} {e}")

    await asyncio.gather(*(worker() for _ in range(min(conc, max(len(sids), 1)))))
    return streams, stats


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def fanout(host, port, path, control_sid, streams, uri, reps=5, gap=1.0, timeout=10.0,
                 cpu_reader=None):
    """Calls touch_resource `reps` times; for each, latency from just before the POST to every
    stream's arrival. Returns a list of per-repetition dicts."""
    out = []
    conn = Conn(host, port, path)
    try:
        for r in range(reps):
            base = [len(s.arrivals) for s in streams]
            fut = asyncio.get_running_loop().create_future()
            _arrivals.update(target=_arrivals["count"] + len(streams), fut=fut)
            cpu0 = cpu_reader() if cpu_reader else None
            t0 = time.perf_counter()
            st, _, body = await conn.request(
                "POST", call_body(1000 + r, "touch_resource", {"uri": uri}),
                sess_headers(control_sid))
            t_reply = time.perf_counter()
            try:
                await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                pass
            _arrivals.update(target=None, fut=None)
            got = [s.arrivals[b] for s, b in zip(streams, base) if len(s.arrivals) > b]
            lat = [(t - t0) * 1000.0 for t in got]
            polls = len(set(got))
            cpu1 = cpu_reader() if cpu_reader else None
            out.append({
                "status": st, "ok_body": b"notified" in body,
                "reply_ms": (t_reply - t0) * 1000.0,
                "received": len(lat), "streams": len(streams),
                "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else None,
                "min_ms": min(lat) if lat else None,
                # how many epoll returns delivered them: ~1 stream per poll means the client kept
                # up (the spread is the server's); big batches mean the client was the bottleneck
                "polls": polls, "streams_per_poll": len(lat) / polls if polls else None,
                "server_cpu_ms": (cpu1 - cpu0) * 1000.0 if cpu_reader else None,
            })
            await asyncio.sleep(gap)
    finally:
        conn.close()
    return out


async def open_idle_conns(host, port, n, conc=128, path="/healthz"):
    """n keep-alive connections, each after one small GET (any status), then left idle.
    Returns (conns, stats); the caller closes them."""
    stats = Stats()
    conns = []
    todo = iter(range(n))

    async def worker():
        for _ in todo:
            c = Conn(host, port, path)
            try:
                st, _, _ = await c.request("GET", None, {})
                if c.writer is None:
                    stats.err(f"GET {path}: {st}, connection closed by the server")
                    continue
                conns.append(c)
            except Exception as e:  # noqa: BLE001
                stats.err(f"GET {path}: {type(e).__name__} {e}")
                c.close()

    await asyncio.gather(*(worker() for _ in range(min(conc, max(n, 1)))))
    return conns, stats
