"""The official Python SDK's high-level client (`mcp` 2.3.0 `mcp.Client`) against a running mcpd
in the stateless protocol 2026-07-28, as a new user would use it.

    $MCPT_VENV_PY tests/clients/py_modern.py [--no-cookies] [--metrics URL[,URL...]] http://127.0.0.1:PORT/mcp

With --no-cookies the client's cookie jar refuses every cookie (a proxy's sticky cookie pins
nothing).

With --metrics (the /metrics of every node the URL may reach), a cancelled call must show in
their summed `mcpd_modern_cancelled_total`; without it that step is not run.

The server must serve the conformance fixtures (`[catalog] conformance = true`). Steps:
`Client(url)` (mode "auto") probes `server/discover` first and settles on 2026-07-28; tools are
listed and called; progress arrives; an MRTR elicitation and a roots request are answered through
the callbacks; log messages arrive only when asked for; a `listen` stream hears a resource being
touched; a cancelled call is counted cancelled by the server; `mode="2026-07-28"` works without a
probe. Every HTTP exchange is recorded: no `Mcp-Session-Id` may go either way.

Prints "ok <step>: ..." / "FAIL <step>: ...", then "py-modern: N passed, M failed"; exits 1 on
any failure.
"""

from __future__ import annotations

import http.cookiejar
import re
import sys
import time
import traceback
import urllib.request
from typing import Any, Awaitable, Callable

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated

NAME = "py-modern"
MODERN = "2026-07-28"
STEP_TIMEOUT_S = 20.0


class StepError(Exception):
    pass


def check(cond: Any, what: str, seen: Any) -> None:
    if not cond:
        raise StepError(f"{what}; saw {seen if isinstance(seen, str) else repr(seen)}")


class Wire:
    """Every HTTP exchange: (method, mcp-method header, status, session id sent, session id got)."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[str, str, int, str | None, str | None]] = []

    async def on_response(self, response: httpx2.Response) -> None:
        req = response.request
        self.exchanges.append(
            (
                req.method,
                req.headers.get("mcp-method", ""),
                response.status_code,
                req.headers.get("mcp-session-id"),
                response.headers.get("mcp-session-id"),
            )
        )

    def methods(self) -> list[str]:
        return [m for (_, m, _, _, _) in self.exchanges]


def cancelled_total(metrics: list[str]) -> int:
    """The nodes' summed count of cancelled 2026-07-28 requests."""
    total = 0
    for url in metrics:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^mcpd_modern_cancelled_total (\d+)", text, re.M)
        if not m:
            raise StepError(f"no mcpd_modern_cancelled_total at {url}")
        total += int(m.group(1))
    return total


async def main(url: str, metrics: list[str], no_cookies: bool) -> int:
    wire = Wire()

    def http_client() -> httpx2.AsyncClient:
        kwargs: dict[str, Any] = {
            "timeout": httpx2.Timeout(30.0, read=300.0),
            "event_hooks": {"response": [wire.on_response]},
        }
        if no_cookies:
            kwargs["cookies"] = http.cookiejar.CookieJar(
                policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            )
        return httpx2.AsyncClient(**kwargs)

    results: list[tuple[str, bool, str]] = []
    elicited: list[str] = []
    logs: list[Any] = []
    progress: list[tuple[float, float | None]] = []

    async def on_elicit(ctx: ClientRequestContext, p: types.ElicitRequestParams) -> types.ElicitResult:
        elicited.append(p.message)
        return types.ElicitResult(action="accept", content={"name": "Alice"})

    async def on_roots(ctx: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///workspace", name="workspace")])

    async def on_log(p: types.LoggingMessageNotificationParams) -> None:
        logs.append(p.data)

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    async def step(name: str, body: Callable[[], Awaitable[str]]) -> None:
        try:
            with anyio.fail_after(STEP_TIMEOUT_S):
                detail = await body()
            results.append((name, True, detail))
            print(f"ok   {name}: {detail}", flush=True)
        except Exception as e:  # noqa: BLE001 - a failed step is reported, the others still run
            msg = f"{type(e).__name__}: {e}"
            if not isinstance(e, StepError):
                msg += " | " + traceback.format_exc().splitlines()[-1]
            results.append((name, False, msg))
            print(f"FAIL {name}: {msg}", flush=True)

    info = types.Implementation(name="mcpd-py-modern", version="1.0.0")
    async with http_client() as http_:
        async with Client(
            streamable_http_client(url, http_client=http_),
            client_info=info,
            elicitation_callback=on_elicit,
            list_roots_callback=on_roots,
            logging_callback=on_log,
            cache=None,
        ) as client:

            async def connect() -> str:
                check(client.protocol_version == MODERN, f"auto mode settles on {MODERN}", client.protocol_version)
                check(client.session.discover_result is not None, "a discover result", None)
                check(wire.methods()[:1] == ["server/discover"], "server/discover is the first request", wire.methods())
                return f"auto negotiated {client.protocol_version} after server/discover"

            async def tools() -> str:
                names = [t.name for t in (await client.list_tools()).tools]
                for want in ("echo", "long_task", "test_input_required_result_elicitation"):
                    check(want in names, f"{want} listed", names)
                r = await client.call_tool("echo", {"message": "hi"})
                text = r.content[0].text
                check(text == "Echo: hi", "echo answers", text)
                return f"{len(names)} tools; echo: {text!r}"

            async def with_progress() -> str:
                r = await client.call_tool("long_task", {"steps": 3, "interval_ms": 20}, progress_callback=on_progress)
                await anyio.sleep(0.1)  # callbacks run in tasks
                check(r.content[0].text == "completed 3 steps", "long_task result", r.content[0].text)
                check([p for p, _ in progress] == [1, 2, 3], "three progress notifications, in order", progress)
                return f"progress {progress}"

            async def mrtr() -> str:
                r = await client.call_tool("test_input_required_result_elicitation", {})
                text = r.content[0].text
                check(text == "Hello, Alice!", "the elicitation answered through the callback", text)
                check(elicited == ["What is your name?"], "the callback was asked once", elicited)
                r = await client.call_tool("client_roots", {})
                roots = (r.structured_content or {}).get("roots", [])
                check(roots and roots[0]["uri"] == "file:///workspace", "client_roots got the roots", r)
                return f"{text!r}; roots {roots}"

            async def no_logs_unasked() -> str:
                await client.call_tool("test_logging_tool", {})
                await anyio.sleep(0.1)
                check(logs == [], "no log without logLevel", logs)
                return "no notifications/message without logLevel"

            async def listen() -> str:
                async with client.listen(resource_subscriptions=["mcpd://node"]) as sub:
                    # Through a cluster the change travels Redis pub/sub, which delivers at most
                    # once (a node's subscriber may still be joining): touch every 0.5 s until
                    # the update arrives, 5 s at most.
                    touches = 0

                    async def touch() -> None:
                        nonlocal touches
                        while True:
                            touches += 1
                            await client.call_tool("touch_resource", {"uri": "mcpd://node"})
                            await anyio.sleep(0.5)

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(touch)
                        with anyio.fail_after(5):
                            async for ev in sub:
                                if isinstance(ev, ResourceUpdated):
                                    check(ev.uri == "mcpd://node", "the touched URI", ev.uri)
                                    tg.cancel_scope.cancel()
                                    return f"listen {sub.subscription_id}: updated {ev.uri} after {touches} touch(es)"
                raise StepError("the listen stream ended without the update")

            async def cancel() -> str:
                before = cancelled_total(metrics)
                with anyio.move_on_after(0.5):
                    await client.call_tool("long_task", {"steps": 50, "interval_ms": 100})
                for _ in range(50):
                    if cancelled_total(metrics) > before:
                        return f"the server counted the call cancelled ({before} -> {cancelled_total(metrics)})"
                    await anyio.sleep(0.1)
                raise StepError(f"mcpd_modern_cancelled_total stayed at {before}")

            await step("a-connect-auto", connect)
            await step("b-tools", tools)
            await step("c-progress", with_progress)
            await step("d-mrtr-elicitation-and-roots", mrtr)
            await step("e-no-logs-unasked", no_logs_unasked)
            await step("f-listen", listen)
            if metrics:
                await step("g-cancel", cancel)

    async def logged() -> str:
        async with http_client() as http_, Client(
            streamable_http_client(url, http_client=http_),
            mode=MODERN,
            logging_callback=on_log,
            log_level="info",
            cache=None,
        ) as c:
            r = await c.call_tool("test_logging_tool", {})
            await anyio.sleep(0.1)
            check(r.content[0].text == "logged three messages", "result", r.content[0].text)
            check(len(logs) == 3, "three log messages with logLevel info", logs)
            return f"mode={MODERN} (no probe): {len(logs)} log messages"

    await step("h-pinned-with-logs", logged)

    async def wire_check() -> str:
        sent = [x for x in wire.exchanges if x[3]]
        got = [x for x in wire.exchanges if x[4]]
        check(not sent and not got, "no Mcp-Session-Id either way", sent + got)
        check(all(m == "POST" for (m, _, _, _, _) in wire.exchanges), "POST only", wire.exchanges)
        return f"{len(wire.exchanges)} exchanges, all POST, no session id"

    await step("i-wire", wire_check)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    import importlib.metadata

    print(f"(mcp {importlib.metadata.version('mcp')}, python {sys.version.split()[0]})")
    print(f"{NAME}: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    metrics: list[str] = []
    no_cookies = False
    while len(args) > 1:
        if args[0] == "--no-cookies":
            no_cookies, args = True, args[1:]
        elif args[0] == "--metrics" and len(args) > 2:
            metrics, args = args[1].split(","), args[2:]
        else:
            break
    if len(args) != 1:
        sys.exit("usage: py_modern.py [--no-cookies] [--metrics URL[,URL...]] MCP_URL")
    sys.exit(anyio.run(main, args[0], metrics, no_cookies))
