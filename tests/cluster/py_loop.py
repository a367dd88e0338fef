"""Long-running official Python SDK client for tests/cluster/rolling-restart-clients.sh.

    $MCPT_VENV_PY tests/cluster/py_loop.py URL NAME STOPFILE [--max-seconds S] [--no-cookies]
                                           [--cafile PEM] [--client-mode legacy|auto]

Initializes ONE session (`streamable_http_client` + `ClientSession`, as tests/clients/py_client.py
does; with --client-mode, the SDK's high-level `mcp.Client` over the same transport, in that
`mode=`: `auto` probes `server/discover` first and falls back to `initialize`), then calls `echo` (and every 10th call `node_info`) every ~20 ms until STOPFILE exists or
--max-seconds pass. It never re-initializes and never retries: a call that raises, returns
isError, returns the wrong text or exceeds the per-call timeout is one failure, and the loop goes
on with the same session. If the SDK's transport itself dies (its task group ends the session:
one POST that cannot connect does that), that is one more failure; no call is possible after it,
and the client waits for the stop with no further requests.

--no-cookies: every cookie is refused (like py_client_nocookie.py), so Traefik round-robins.
--cafile PEM: trust this certificate (the harness's self-signed one) for an https:// URL; over
https the httpx2 cookie jar keeps and returns Traefik's Secure `_mcp_backend` cookie.

Output (stdout):
  session <id>                       once, after initialize
  FAIL <iso time> +<ms> #<n> <tool>: <error>    the first 20 failures
  INFO ...                           HTTP status counts, cookie use, GET stream (re)opens
  <NAME>: requests=N failures=M longest_gap_ms=G session_changed=no|yes nodes=n1,n2
longest_gap_ms: the longest wall-clock time without a successful call: between two consecutive
successes, from the loop start to the first one, and from the last one to the loop's end (so a
session lost for good shows as a long gap). session_changed compares the Mcp-Session-Id the transport sends on
its last request with the one initialize returned. Exits 0 once the summary is printed.
Env: MCPT_LOOP_INTERVAL_MS (20), MCPT_CALL_TIMEOUT_MS (10000).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import signal
import ssl
import sys
import time
from datetime import datetime, timezone
from typing import Any

import anyio
import httpx2
import mcp.types as types
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

INTERVAL_S = float(os.environ.get("MCPT_LOOP_INTERVAL_MS", "20")) / 1000
CALL_TIMEOUT_S = float(os.environ.get("MCPT_CALL_TIMEOUT_MS", "10000")) / 1000
MAX_FAIL_LINES = 20
MAX_GET_LINES = 30


def one_line(s: Any) -> str:
    return " ".join(str(s).split())[:300]


def leaf_exceptions(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaf_exceptions(sub)]
    return [e]


class Loop:
    def __init__(self, name: str) -> None:
        self.name = name
        self.t0 = time.monotonic()
        self.requests = 0
        self.failures = 0
        self.longest_gap = 0.0
        self.nodes: set[str] = set()
        self.start_session: str | None = None
        self.last_sent_session: str | None = None
        self.status: dict[str, int] = {}
        self.cookie_sent = 0
        self.http_requests = 0
        self.get_lines: list[str] = []
        self.get_count = 0
        self.stopping = False
        self.connected = False

    def ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)

    def fail(self, n: int, tool: str, err: Any) -> None:
        self.failures += 1
        if self.failures <= MAX_FAIL_LINES:
            now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            print(f"FAIL {now} +{self.ms()}ms #{n} {tool}: {one_line(err)}", flush=True)
        elif self.failures == MAX_FAIL_LINES + 1:
            print("FAIL (further failures are counted, not printed)", flush=True)

    # httpx2 event hooks: what the transport really sends and gets.
    async def on_request(self, request: Any) -> None:
        self.http_requests += 1
        sid = request.headers.get("mcp-session-id")
        if sid:
            self.last_sent_session = sid
        if "_mcp_backend=" in request.headers.get("cookie", ""):
            self.cookie_sent += 1

    async def on_response(self, response: Any) -> None:
        req = response.request
        key = f"{req.method} {response.status_code}"
        self.status[key] = self.status.get(key, 0) + 1
        if req.method == "GET":
            self.get_count += 1
            if len(self.get_lines) < MAX_GET_LINES:
                lei = req.headers.get("last-event-id")
                self.get_lines.append(f"+{self.ms()}ms GET{f' Last-Event-ID={lei}' if lei else ''} -> {response.status_code}")


def stop_requested(args: argparse.Namespace, lp: Loop, loop_start: float) -> bool:
    if lp.stopping or time.monotonic() - loop_start >= args.max_seconds:
        return True
    return bool(args.stopfile) and os.path.exists(args.stopfile)


async def call_once(session: ClientSession | Client, lp: Loop, n: int) -> bool:
    """One tools/call; True on success, otherwise one failure recorded."""
    tool = "node_info" if n % 10 == 0 else "echo"
    message = f"{lp.name}-{n}"
    lp.requests += 1
    try:
        with anyio.fail_after(CALL_TIMEOUT_S + 1):
            r = await session.call_tool(
                tool, {"message": message} if tool == "echo" else {}, read_timeout_seconds=CALL_TIMEOUT_S
            )
        if getattr(r, "is_error", False):
            raise RuntimeError(f"isError result: {r.content!r}")
        text = "".join(c.text for c in (r.content or []) if getattr(c, "type", None) == "text")
        if tool == "echo":
            if text != f"Echo: {message}":
                raise RuntimeError(f"wrong echo text {text!r}")
            return True
        sc = getattr(r, "structured_content", None)
        node = sc.get("node") if isinstance(sc, dict) else None
        if not isinstance(node, str):
            try:
                node = json.loads(text).get("node")
            except Exception:  # noqa: BLE001
                node = None
        if not isinstance(node, str) or not node:
            raise RuntimeError(f"node_info without a node id: {text!r}")
        lp.nodes.add(node)
        return True
    except TimeoutError:
        lp.fail(n, tool, f"no answer within {CALL_TIMEOUT_S + 1:g} s")
    except Exception as e:  # noqa: BLE001 - every SDK error is one failure
        lp.fail(n, tool, f"{type(e).__name__}: {e}")
    return False


async def run(args: argparse.Namespace, lp: Loop) -> None:
    kwargs: dict[str, Any] = {
        # The SDK's own defaults (30 s, 300 s read for SSE) plus our hooks.
        "timeout": httpx2.Timeout(30.0, read=300.0),
        "event_hooks": {"request": [lp.on_request], "response": [lp.on_response]},
    }
    if args.no_cookies:
        kwargs["cookies"] = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    if args.cafile:
        kwargs["verify"] = ssl.create_default_context(cafile=args.cafile)

    n = 0
    loop_start = last_ok = loop_end = 0.0
    # Once the loop is over, the teardown (DELETE, closing the streams) gets 5 s at most.
    teardown = anyio.CancelScope()

    async def session_loop(session: ClientSession | Client) -> None:
        nonlocal n, loop_start, last_ok, loop_end
        try:
            with anyio.fail_after(CALL_TIMEOUT_S + 1):
                if isinstance(session, ClientSession):
                    await session.initialize()
                # call_tool fetches tools/list once to learn output schemas: do it here, so the
                # loop sends tools/call only.
                await session.list_tools()
        except Exception as e:  # noqa: BLE001
            lp.fail(0, "initialize", f"{type(e).__name__}: {e}")
            return
        modern = getattr(session, "protocol_version", None) == "2026-07-28"
        lp.start_session = lp.last_sent_session
        if modern:
            # The stateless protocol: no session to keep, none may be sent.
            if lp.start_session:
                lp.fail(0, "discover", f"a 2026-07-28 client sent Mcp-Session-Id {lp.start_session}")
                return
            print("stateless 2026-07-28", flush=True)
        elif not lp.start_session:
            lp.fail(0, "initialize", "no Mcp-Session-Id after initialize")
            return
        else:
            print(f"session {lp.start_session}", flush=True)
        lp.connected = True
        loop_start = last_ok = time.monotonic()
        try:
            while not stop_requested(args, lp, loop_start):
                n += 1
                if await call_once(session, lp, n):
                    now = time.monotonic()
                    lp.longest_gap = max(lp.longest_gap, now - last_ok)
                    last_ok = now
                await anyio.sleep(INTERVAL_S)
        finally:  # also when the transport dies and cancels the loop
            loop_end = time.monotonic()

    try:
        with teardown:
            async with httpx2.AsyncClient(**kwargs) as client:
                if args.client_mode:
                    info = types.Implementation(name=f"mcpd-{lp.name}", version="1.0.0")
                    transport = streamable_http_client(args.url, http_client=client)
                    # Entering runs the handshake of that mode (initialize, or discover first).
                    async with Client(transport, mode=args.client_mode, client_info=info) as high:
                        await session_loop(high)
                        teardown.deadline = anyio.current_time() + 5
                    return
                async with streamable_http_client(args.url, http_client=client) as (read, write):
                    async with ClientSession(
                        read, write, client_info=types.Implementation(name=f"mcpd-{lp.name}", version="1.0.0")
                    ) as session:
                        await session_loop(session)
                        teardown.deadline = anyio.current_time() + 5
                # Leaving streamable_http_client sent DELETE for the session (terminate_on_close).
    except Exception as e:  # noqa: BLE001 - the transport's task group died, or teardown failed
        cause = "; ".join(f"{type(x).__name__}: {x}" for x in leaf_exceptions(e))
        lp.fail(n, "transport", f"the SDK client session ended: {cause}")
        if lp.connected and not stop_requested(args, lp, loop_start):
            # One failed POST (connection refused, reset) ends the SDK's whole transport: no
            # further call is possible. Wait for the stop like the others, so the outage shows
            # in longest_gap_ms.
            print(f"INFO the SDK transport died at +{lp.ms()}ms after {lp.requests} requests; idle until the stop", flush=True)
            while not stop_requested(args, lp, loop_start):
                await anyio.sleep(0.1)
            loop_end = time.monotonic()
    if teardown.cancelled_caught:
        print("INFO teardown (DELETE, closing the transport) took over 5 s: abandoned", flush=True)
    if lp.requests > 0:
        lp.longest_gap = max(lp.longest_gap, loop_end - last_ok)  # the tail counts too


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("name")
    ap.add_argument("stopfile")
    ap.add_argument("--max-seconds", type=float, default=180.0)
    ap.add_argument("--no-cookies", action="store_true")
    ap.add_argument("--cafile")
    ap.add_argument("--client-mode", choices=["legacy", "auto"])
    args = ap.parse_args()

    lp = Loop(args.name)

    def on_signal(*_: Any) -> None:
        lp.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        anyio.run(run, args, lp)
    except BaseException as e:  # noqa: BLE001 - still print the summary
        lp.fail(0, "client", f"{type(e).__name__}: {e}")
    connected = lp.connected
    changed = "yes" if connected and lp.last_sent_session != lp.start_session else "no"
    counts = " ".join(f"{k}={v}" for k, v in sorted(lp.status.items()))
    print(f"INFO http: {counts}", flush=True)
    print(f"INFO _mcp_backend cookie sent on {lp.cookie_sent} of {lp.http_requests} requests", flush=True)
    shown = f" (first {len(lp.get_lines)} shown)" if lp.get_count > len(lp.get_lines) else ""
    print(f"INFO GET requests: {lp.get_count}{shown}", flush=True)
    for line in lp.get_lines:
        print(f"INFO   {line}", flush=True)
    if changed == "yes":
        print(f"INFO session id changed: {lp.start_session} -> {lp.last_sent_session}", flush=True)
    print(
        f"{lp.name}: requests={lp.requests} failures={lp.failures} "
        f"longest_gap_ms={int(lp.longest_gap * 1000)} session_changed={changed} nodes={','.join(sorted(lp.nodes))}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
