"""End-to-end scenario against a running mcpd, driven by the official Python SDK client
(`mcp` 2.3.0, installed into the venv by tests/prereqs.sh).

    $MCPT_VENV_PY tests/clients/py_client.py http://127.0.0.1:PORT/mcp

Uses the low-level API (`streamable_http_client` + `ClientSession`), which does a plain
`initialize` handshake (the high-level `mcp.Client` would first probe `server/discover`).
An httpx2 client with event hooks records every HTTP exchange (method, JSON-RPC method,
status) for diagnostics and to check what went over the wire (GET stream, cancel, DELETE).

Prints one line per step ("ok <step>: ..." / "FAIL <step>: ..."), then
"py-client: N passed, M failed"; exits 1 on any failure. MCPT_CLIENT_VERBOSE=1 also
prints every HTTP exchange.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
import warnings
from typing import Any, Awaitable, Callable

import anyio
import httpx2
import mcp.types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

# resources/subscribe is deprecated for the 2026-07-28 revision; we speak 2025-11-25 on purpose.
warnings.filterwarnings("ignore", message=r"resources/(un)?subscribe is removed")

NAME = "py-client"
PROTOCOL = "2025-11-25"
STEP_TIMEOUT_S = 20.0
GRACE_S = 0.25  # see step_cancel


class StepError(Exception):
    pass


def check(cond: Any, what: str, seen: Any) -> None:
    if not cond:
        raise StepError(f"{what}; saw {seen if isinstance(seen, str) else repr(seen)}")


async def wait_for(pred: Callable[[], Any], seconds: float, what: Callable[[], str] | str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        await anyio.sleep(0.02)
    raise StepError(f"timed out after {seconds:g} s waiting for {what() if callable(what) else what}")


def texts(result: Any) -> list[str]:
    return [c.text for c in (result.content or []) if getattr(c, "type", None) == "text"]


class Recorder:
    """HTTP exchanges and server notifications, with arrival times."""

    def __init__(self) -> None:
        self.http: list[dict[str, Any]] = []
        self.session_id: str | None = None
        self.notifications: list[tuple[float, types.ServerNotification]] = []
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self.errors: list[str] = []

    async def on_request(self, request: Any) -> None:
        rpc, body = "", None
        try:
            body = json.loads(request.content or b"null")
            if isinstance(body, dict):
                rpc = body.get("method") or (f"response#{body.get('id')}" if "id" in body else "")
        except Exception:  # streaming / non-JSON body: leave it blank
            pass
        entry = {"method": request.method, "rpc": rpc, "body": body, "status": 0, "ctype": ""}
        request.extensions["mcpd_entry"] = entry
        self.http.append(entry)

    async def on_response(self, response: Any) -> None:
        entry = response.request.extensions.get("mcpd_entry")
        if entry is not None:
            entry["status"] = response.status_code
            entry["ctype"] = response.headers.get("content-type", "")
        sid = response.headers.get("mcp-session-id")
        if sid and self.session_id is None:
            self.session_id = sid

    def summary(self) -> str:
        return ", ".join(f"{h['method']}{' ' + h['rpc'] if h['rpc'] else ''}→{h['status']}" for h in self.http)

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.errors.append(repr(message))
        else:
            self.notifications.append((time.monotonic(), message))

    def of(self, cls: type) -> list[tuple[float, Any]]:
        return [(t, n) for t, n in self.notifications if isinstance(n, cls)]


rec = Recorder()


async def step_connect(s: ClientSession) -> str:
    await s.initialize()
    info = s.server_info
    check(info is not None and info.name == "mcpd", 'serverInfo.name must be "mcpd"', info)
    check(s.protocol_version == PROTOCOL, f"negotiated protocol version must be {PROTOCOL}", s.protocol_version)
    check(rec.session_id, "server must assign an Mcp-Session-Id", rec.summary())
    return f"server {info.name} {info.version}, protocol {s.protocol_version}, session {rec.session_id}"


async def step_tools_list(s: ClientSession) -> str:
    names = [t.name for t in (await s.list_tools()).tools]
    want = ["node_info", "echo", "long_task", "notify", "touch_resource"]
    missing = [n for n in want if n not in names]
    check(not missing, f"tools/list must contain {', '.join(want)} (missing {', '.join(missing)})", names)
    return f"{len(names)} tools: {', '.join(names)}"


async def step_echo(s: ClientSession) -> str:
    r = await s.call_tool("echo", {"message": "hello"})
    check(not r.is_error and texts(r) == ["Echo: hello"], 'echo must return one text item "Echo: hello"', r)
    return "Echo: hello"


async def step_node_info(s: ClientSession) -> str:
    r = await s.call_tool("node_info", {})
    sc = r.structured_content
    check(not r.is_error and isinstance(sc, dict), "node_info must return structuredContent", r)
    check(isinstance(sc.get("node"), str), "structuredContent.node must be a string", sc)
    check(sc.get("session_id") == rec.session_id, f"structuredContent.session_id must equal the client's session id {rec.session_id}", sc)
    return f"node {sc['node']!r}, session_id matches"


async def step_notify(s: ClientSession) -> str:
    # Notifications outside a request need the standalone GET stream, which the SDK opens
    # after the 202 for notifications/initialized.
    await wait_for(
        lambda: any(h["method"] == "GET" and h["status"] == 200 for h in rec.http),
        5,
        lambda: f"the standalone GET stream to open (HTTP so far: {rec.summary()})",
    )
    msg = f"ping-from-server-{uuid.uuid4()}"
    r = await s.call_tool("notify", {"message": msg})
    check(not r.is_error, "notify must not return isError", r)
    seen = await wait_for(
        lambda: next((p for p in rec.logs if p.data == msg), None),
        5,
        lambda: f"notifications/message with data {msg!r} (got {[p.data for p in rec.logs]!r})",
    )
    check(seen.level == "info", 'notification level must be "info"', seen)
    return f"notifications/message level=info data={msg}"


async def step_progress(s: ClientSession) -> str:
    prog: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        prog.append((progress, total, message))

    r = await s.call_tool("long_task", {"steps": 3, "interval_ms": 50}, progress_callback=on_progress)
    # Progress callbacks run in spawned tasks: give the last one a moment to land.
    await wait_for(lambda: len(prog) >= 3, 1, lambda: f"3 progress callbacks (got {prog!r})")
    check(not r.is_error and "completed 3 steps" in texts(r), 'long_task result text must be "completed 3 steps"', r)
    values = [p[0] for p in prog]
    check(all(b > a for a, b in zip(values, values[1:])), "progress must increase", prog)
    check(all(p[1] == 3 for p in prog), "every progress notification must carry total 3", prog)
    return f"{len(prog)} progress notifications ({','.join(f'{v:g}' for v in values)}/3), {texts(r)[0]!r}"


async def step_cancel(s: ClientSession) -> str:
    first = anyio.Event()
    prog: list[float] = []
    out: dict[str, Any] = {}
    started = time.monotonic()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        prog.append(progress)
        first.set()

    scope = anyio.CancelScope()

    async def run_call() -> None:
        # Cancelling the scope around call_tool is the 2.x way to abandon a request: the
        # dispatcher then sends notifications/cancelled for it (courtesy cancel).
        with scope:
            try:
                out["result"] = await s.call_tool(
                    "long_task", {"steps": 100, "interval_ms": 100}, progress_callback=on_progress
                )
            except Exception as e:  # noqa: BLE001 - reported below
                out["error"] = e
        out["ended"] = time.monotonic()

    # (No raising inside the task group: anyio would wrap the error in an ExceptionGroup.)
    cancelled_at = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_call)
        with anyio.move_on_after(10):
            await first.wait()
        cancelled_at = time.monotonic()
        scope.cancel()
    check(prog, "a first progress notification within 10 s", f"none (HTTP so far: {rec.summary()})")
    ended_ms = (out["ended"] - cancelled_at) * 1000
    check(scope.cancelled_caught and "result" not in out, "the call must end as cancelled, not with a result", out)
    check(ended_ms <= 2000, "the cancelled call must end within 2 s", f"{ended_ms:.0f} ms")
    # The SDK uses the request's JSON-RPC id as its progress token: take it from the POST.
    token = next(
        (h["body"]["id"] for h in rec.http
         if h["rpc"] == "tools/call" and h["body"].get("params", {}).get("arguments", {}).get("steps") == 100),
        None,
    )
    check(token is not None, "the long_task tools/call POST on the wire", rec.summary())
    check(any(n.params.progress_token == token for t, n in rec.of(types.ProgressNotification) if t >= started),
          f"progress notifications with progressToken {token} in the message handler", rec.notifications[-5:])
    # Allow GRACE_S for notifications already in flight when we cancelled (a loaded CI box
    # may take a while to process the cancel), then watch 500 ms: none may arrive.
    await anyio.sleep(GRACE_S + 0.5)
    sent = [h for h in rec.http if h["rpc"] == "notifications/cancelled"]
    check(sent and sent[-1]["status"] == 202, "the SDK must POST notifications/cancelled and get 202", rec.summary())
    late = [
        (t - cancelled_at, n.params.progress)
        for t, n in rec.of(types.ProgressNotification)
        if n.params.progress_token == token and t > cancelled_at + GRACE_S
    ]
    check(not late, f"no progress notifications for the cancelled call {GRACE_S * 1000:.0f}..{GRACE_S * 1000 + 500:.0f} ms "
          "after cancelling (the handler must stop)",
          [f"+{dt * 1000:.0f}ms progress={p:g}" for dt, p in late])
    r = await s.call_tool("echo", {"message": "after-cancel"})
    check(texts(r) == ["Echo: after-cancel"], "echo after the cancellation must still work", r)
    return (f"cancelled after {len(prog)} progress notification(s), call ended in {ended_ms:.0f} ms, "
            f"no progress afterwards, session still works")


async def step_subscribe(s: ClientSession) -> str:
    caps = s.server_capabilities
    check(caps and caps.resources and caps.resources.subscribe, "server must declare resources.subscribe", caps)
    await s.subscribe_resource("mcpd://node")
    r = await s.call_tool("touch_resource", {"uri": "mcpd://node"})
    check(not r.is_error, "touch_resource must not return isError", r)
    await wait_for(
        lambda: any(str(n.params.uri) == "mcpd://node" for _, n in rec.of(types.ResourceUpdatedNotification)),
        5,
        lambda: f"notifications/resources/updated for mcpd://node (got {[n for _, n in rec.of(types.ResourceUpdatedNotification)]!r})",
    )
    return "notifications/resources/updated uri=mcpd://node received"


def step_delete_then_404(url: str) -> str:
    # Leaving streamable_http_client(...) sent DELETE (terminate_on_close=True); the SDK only
    # logs a non-2xx answer, so check the recorded status ourselves.
    deletes = [h for h in rec.http if h["method"] == "DELETE"]
    check(deletes, "leaving the client context must send DELETE", rec.summary())
    check(200 <= deletes[-1]["status"] < 300, "DELETE of the session must answer 2xx", deletes[-1])
    body = json.dumps({"jsonrpc": "2.0", "id": 9001, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"message": "dead"}}}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": PROTOCOL,
        "Mcp-Session-Id": rec.session_id or "",
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, ctype, text = resp.status, resp.headers.get("content-type", ""), resp.read(300).decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, ctype, text = e.code, e.headers.get("content-type", ""), e.read(300).decode(errors="replace")
    check(status == 404, "POST with the terminated session id must get HTTP 404", f"HTTP {status} {ctype} {text}")
    return f"DELETE → {deletes[-1]['status']}; POST with the old session id → 404"


def leaf_exceptions(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaf_exceptions(sub)]
    return [e]


async def main(url: str) -> int:
    passed = failed = 0
    connected = False

    reported: set[str] = set()

    def report(name: str, ok: bool, what: str, details: bool = True) -> None:
        nonlocal passed, failed
        reported.add(name)
        if ok:
            passed += 1
            print(f"ok   {name}: {what}", flush=True)
        else:
            failed += 1
            print(f"FAIL {name}: {what}", flush=True)
            if details:
                print(f"     HTTP so far: {rec.summary()}", flush=True)
            if rec.errors:
                print(f"     transport errors: {' | '.join(rec.errors[-5:])}", flush=True)

    async def run(name: str, fn: Callable[[ClientSession], Awaitable[str]], s: ClientSession) -> None:
        nonlocal connected
        if not connected and name != "a-connect":
            report(name, False, "skipped, not connected", details=False)
            return
        try:
            with anyio.fail_after(STEP_TIMEOUT_S):
                what = await fn(s)
            if name == "a-connect":
                connected = True
            report(name, True, what)
        except StepError as e:
            report(name, False, str(e))
        except TimeoutError:
            report(name, False, f"step did not finish within {STEP_TIMEOUT_S:g} s")
        except Exception as e:  # noqa: BLE001 - any SDK error is a failed step
            report(name, False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")

    # Same timeouts as the SDK's own default client (30 s, 300 s read for SSE), plus hooks.
    http = httpx2.AsyncClient(
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"request": [rec.on_request], "response": [rec.on_response]},
    )
    steps = [
        ("a-connect", step_connect),
        ("b-tools-list", step_tools_list),
        ("c-echo", step_echo),
        ("d-node-info", step_node_info),
        ("e-notify-get-stream", step_notify),
        ("f-progress", step_progress),
        ("g-cancel", step_cancel),
        ("h-resource-subscribe", step_subscribe),
    ]
    try:
        async with http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(
                    read, write,
                    logging_callback=rec.on_log,
                    message_handler=rec.on_message,
                    client_info=types.Implementation(name="mcpd-py-client", version="1.0.0"),
                ) as session:
                    for name, fn in steps:
                        await run(name, fn, session)
            # streamable_http_client has exited here: it sent DELETE for the session.
    except BaseException as e:  # noqa: BLE001 - transport/teardown errors are failures too
        # The transport's task group wraps what went wrong (refused connection, ...).
        cause = "; ".join(f"{type(x).__name__}: {x}" for x in leaf_exceptions(e))
        missing = [name for name, _ in steps if name not in reported]
        for i, name in enumerate(missing):
            report(name, False, f"not finished, the client session failed: {cause}", details=i == len(missing) - 1)
        if not missing:
            report("teardown", False, f"leaving the client session failed: {cause}")
    if connected:
        try:
            report("i-delete-then-404", True, step_delete_then_404(url))
        except StepError as e:
            report("i-delete-then-404", False, str(e))
        except Exception as e:  # noqa: BLE001
            report("i-delete-then-404", False, f"{type(e).__name__}: {e}")
    else:
        report("i-delete-then-404", False, "skipped, not connected", details=False)
    if rec.errors:
        print(f"note: transport errors seen by the SDK: {' | '.join(rec.errors[:5])}", flush=True)
    if os.environ.get("MCPT_CLIENT_VERBOSE"):
        print(f"HTTP exchanges: {rec.summary()}", flush=True)
    print(f"(mcp {importlib.metadata.version('mcp')}, python {sys.version.split()[0]})", flush=True)
    print(f"{NAME}: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: py_client.py http://127.0.0.1:PORT/mcp", file=sys.stderr)
        sys.exit(2)
    sys.exit(anyio.run(main, sys.argv[1]))
