"""tests/clients/py_client.py over Traefik's TLS entry point, keeping cookies (the SDK default).

    MCPT_TLS_CA=CA.pem $MCPT_VENV_PY tests/cluster/py_client_tls.py https://127.0.0.1:PORT/mcp

Same scenario and output as py_client.py ("py-client: N passed, M failed"). The only change: every
HTTPS connection it makes (httpx2 for the SDK, urllib for the raw check) trusts CA.pem, the
harness's self-signed certificate (`MCPT_TLS_CA`). Over https the default cookie jar keeps Traefik's `Secure`
`_mcp_backend` cookie and sends it back, so this client is pinned to one node.
"""

import importlib.util
import os
import pathlib
import ssl
import sys

import anyio
import httpx2

if len(sys.argv) != 2 or not os.environ.get("MCPT_TLS_CA"):
    print("usage: MCPT_TLS_CA=CA.pem py_client_tls.py https://127.0.0.1:PORT/mcp", file=sys.stderr)
    sys.exit(2)
_CONTEXT = ssl.create_default_context(cafile=os.environ["MCPT_TLS_CA"])
_orig_init = httpx2.AsyncClient.__init__


def _init_trusting_the_harness_ca(self, *args, **kwargs):
    kwargs["verify"] = _CONTEXT
    _orig_init(self, *args, **kwargs)


httpx2.AsyncClient.__init__ = _init_trusting_the_harness_ca
ssl._create_default_https_context = lambda: _CONTEXT  # urllib's raw POST after DELETE

_path = pathlib.Path(__file__).resolve().parent.parent / "clients" / "py_client.py"
_spec = importlib.util.spec_from_file_location("py_client", _path)
py_client = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(py_client)

if __name__ == "__main__":
    sys.exit(anyio.run(py_client.main, sys.argv[1]))
