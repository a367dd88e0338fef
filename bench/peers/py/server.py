"""Benchmark peer: the official Python SDK (`mcp` 2.x, `MCPServer`) serving one `echo` tool over
Streamable HTTP with sessions, as the SDK runs it itself (`run_streamable_http_async`: Starlette
under uvicorn, stateful, SSE answers).

    PORT=8080 $MCPT_VENV_PY bench/peers/py/server.py

The SDK's default cap of 10,000 sessions is lifted (and the 30-minute idle expiry switched off) so
the memory cells can open as many sessions as for the other peers. Logging stays at WARNING: at
INFO uvicorn writes an access-log line per request, which no production deployment benchmarks.
"""

import asyncio
import os
import sys

import mcp
from mcp.server.mcpserver import MCPServer


def main() -> None:
    try:
        port = int(os.environ["PORT"])
    except (KeyError, ValueError):
        print("PORT must be set to a port number", file=sys.stderr)
        sys.exit(2)
    server = MCPServer("py-echo", version="0.0.0", log_level="WARNING")

    @server.tool(description="Echo a message back", structured_output=False)
    def echo(message: str) -> str:
        return f"Echo: {message}"

    version = getattr(mcp, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("mcp")
    print(f"py-echo (mcp {version}, python {sys.version.split()[0]}) listening on "
          f"http://127.0.0.1:{port}/mcp", flush=True)
    asyncio.run(server.run_streamable_http_async(host="127.0.0.1", port=port, max_sessions=None,
                                                 session_idle_timeout=None))


if __name__ == "__main__":
    main()
