"""The official Python SDK client (`mcp` 2.3.0) against an mcpd that demands bearer tokens, as a
headless client would use it: `ClientCredentialsOAuthProvider` meets the 401, follows the
challenge to the Protected Resource Metadata, gets a token from the authorization server with
client_credentials (and the `resource` indicator), and calls tools, in both eras.

    $MCPT_VENV_PY tests/clients/py_oauth.py URL ISSUER CLIENT_ID CLIENT_SECRET

Prints "ok <step>: ..." / "FAIL <step>: ...", then "py-oauth: N passed, M failed"; exits 1 on any
failure. Every HTTP exchange is recorded: the first request must be refused with 401, and no
request may carry a token the client was not given by the authorization server.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Awaitable, Callable

import anyio
import httpx2
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

NAME = "py-oauth"
STEP_TIMEOUT_S = 20.0


class StepError(Exception):
    pass


def check(cond: Any, what: str, seen: Any) -> None:
    if not cond:
        raise StepError(f"{what}; saw {seen!r}")


class Memory:
    """Token storage in memory (the provider's `TokenStorage`)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def main(url: str, issuer: str, client_id: str, secret: str) -> int:
    results: list[tuple[str, bool, str]] = []
    exchanges: list[tuple[str, str, int]] = []

    async def record(response: httpx2.Response) -> None:
        exchanges.append((response.request.method, str(response.request.url), response.status_code))

    async def step(name: str, run: Callable[[], Awaitable[str]]) -> None:
        try:
            with anyio.fail_after(STEP_TIMEOUT_S):
                detail = await run()
            results.append((name, True, detail))
            print(f"ok   {name}: {detail}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none hides another
            results.append((name, False, repr(e)))
            print(f"FAIL {name}: {e!r}", flush=True)
            traceback.print_exc(file=sys.stderr)

    storage = Memory()

    def client(mode: str) -> tuple[httpx2.AsyncClient, Client]:
        provider = ClientCredentialsOAuthProvider(
            server_url=url,
            storage=storage,
            client_id=client_id,
            client_secret=secret,
            scope="mcp:tools",
            issuer=issuer,
        )
        http = httpx2.AsyncClient(auth=provider, event_hooks={"response": [record]})
        return http, Client(streamable_http_client(url, http_client=http), mode=mode)

    async def modern() -> str:
        http, c = client("auto")
        async with http, c:
            r = await c.call_tool("echo", {"message": "with a token"})
            check(r.content[0].text == "Echo: with a token", "echo", r.content)
        first = exchanges[0]
        check(first[2] == 401, "the first request is refused with 401", first)
        metadata = [e for e in exchanges if "/.well-known/oauth-protected-resource" in e[1]]
        check(metadata and metadata[0][2] == 200, "the metadata was fetched", exchanges)
        tokens = [e for e in exchanges if e[1].startswith(issuer) and e[1].endswith("/token")]
        check(tokens and tokens[0][2] == 200, "a token from the authorization server", exchanges)
        check(storage.tokens is not None, "the token is stored", storage.tokens)
        return f"auto mode with a token: {len(exchanges)} exchanges, first 401, metadata, token"

    async def legacy() -> str:
        before = len(exchanges)
        http, c = client("legacy")
        async with http, c:
            tools = await c.list_tools()
            check(any(t.name == "echo" for t in tools.tools), "echo is listed", tools)
            r = await c.call_tool("echo", {"message": "in a session"})
            check(r.content[0].text == "Echo: in a session", "echo", r.content)
        refused = [e for e in exchanges[before:] if e[2] == 401]
        check(not refused, "the stored token is used from the first request", refused)
        return f"a session with the stored token: {len(exchanges) - before} exchanges, none refused"

    await step("a-modern-auto", modern)
    await step("b-legacy-session", legacy)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print(f"{NAME}: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(anyio.run(main, *sys.argv[1:]))
