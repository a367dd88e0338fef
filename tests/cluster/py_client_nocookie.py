"""tests/clients/py_client.py with every cookie refused (forces "not pinned" behind Traefik).

    $MCPT_VENV_PY tests/cluster/py_client_nocookie.py http://127.0.0.1:PORT/mcp

Same scenario and output as py_client.py ("py-client: N passed, M failed"); the only change is
that every httpx2.AsyncClient it creates gets a cookie jar whose policy accepts no domain, so
Traefik's `_mcp_backend` cookie is never stored (let alone sent, whatever the scheme).
"""

import http.cookiejar
import importlib.util
import pathlib
import sys

import anyio
import httpx2

_orig_init = httpx2.AsyncClient.__init__


def _init_without_cookies(self, *args, **kwargs):
    kwargs["cookies"] = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    _orig_init(self, *args, **kwargs)


httpx2.AsyncClient.__init__ = _init_without_cookies

_path = pathlib.Path(__file__).resolve().parent.parent / "clients" / "py_client.py"
_spec = importlib.util.spec_from_file_location("py_client", _path)
py_client = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(py_client)

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: py_client_nocookie.py http://127.0.0.1:PORT/mcp", file=sys.stderr)
        sys.exit(2)
    sys.exit(anyio.run(py_client.main, sys.argv[1]))
