"""Raw-HTTP clients for parts 1-4 of tests/cluster/cluster-e2e.sh (python3 stdlib only).

    python3 e2e_parts.py pinning  --url https://127.0.0.1:P --cafile cert.pem --nodes n1=URL,n2=URL,n3=URL
    python3 e2e_parts.py misroute --url ... --cafile ... --nodes ... --expect forwarded|404
    python3 e2e_parts.py nodeloss --url ... --cafile ... --nodes ... --pids n1=PID,... --mode adr|adopt
    python3 e2e_parts.py probe    --url ... --cafile ... --nodes ... --sid ID --node n2   (one node_info, cookie of n2)
    python3 e2e_parts.py pinnable --urls http://..,https://.. --cafile ... --node n2   (fresh sessions land on n2 again)
    python3 e2e_parts.py redis-keys --port REDIS_PORT [--ids ID,ID]

Each prints human-readable lines, then one `RESULT key=value ...` line the shell script parses.
Exit status 0 unless the client itself broke (a wrong answer is reported in RESULT, not by rc).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import sys
import time

from e2e_lib import (
    JarTransport, RawTransport, Session, cookie_value, parse_node_map, redis_session_keys,
)


def result(**kv: object) -> None:
    print("RESULT " + " ".join(f"{k}={v}" for k, v in kv.items()), flush=True)


def node_of_cookie(nodes: dict[str, str], value: str | None) -> str:
    for name, url in nodes.items():
        if cookie_value(url) == value:
            return name
    return "?" if value else "-"


def must_init(s: Session) -> None:
    r = s.initialize()
    if not s.sid:
        sys.exit(f"{s.init_error}: {r.short()}")


# ------------------------------------------------------------------ 1. pinning


def cmd_pinning(a: argparse.Namespace) -> None:
    nodes = parse_node_map(a.nodes)
    t = JarTransport(a.url, a.cafile)
    s = Session(t, "e2e-pinning")
    must_init(s)
    jar = t.jar_cookie()
    counts: collections.Counter[str] = collections.Counter()
    bad: collections.Counter[str] = collections.Counter()
    cookie_changes = 0
    for _ in range(a.calls):
        r = s.call("node_info")
        if r.status == 200 and r.node():
            counts[r.node()] += 1
        else:
            bad[str(r.status)] += 1
        if r.backend_cookie():
            cookie_changes += 1
    ok = sum(counts.values())
    top, top_n = (counts.most_common(1)[0] if counts else ("-", 0))
    print(f"session {s.sid}: jar cookie {jar} (= sha256 of {node_of_cookie(nodes, jar)}'s URL)")
    print(f"tools/call node_info x{a.calls}: {dict(counts)} failed {dict(bad)}; Set-Cookie on {cookie_changes} of them")
    d = s.delete()
    # The default router: /healthz, no sticky cookie.
    hz: collections.Counter[str] = collections.Counter()
    order, set_cookie, hz_bad = [], 0, 0
    for _ in range(a.gets):
        r = t.request("GET", "/healthz")
        set_cookie += len(r.set_cookies())
        n = r.msg.get("node") if isinstance(r.msg, dict) else None
        if r.status == 200 and n:
            hz[n] += 1
            order.append(n)
        else:
            hz_bad += 1
    print(f"GET /healthz x{a.gets} (default router): {' '.join(order)}")
    # Round robin: every node answered, and evenly (counts differ by at most one).
    rotating = len(hz) == len(nodes) and max(hz.values()) - min(hz.values()) <= 1
    result(
        calls=a.calls, ok=ok, top=top, top_n=top_n, distinct=len(counts), jar_node=node_of_cookie(nodes, jar),
        delete=d.status,
        hz=",".join(f"{n}={hz[n]}" for n in sorted(nodes)), hz_nodes=len(hz), hz_bad=hz_bad,
        hz_rotating=int(rotating), hz_cookies=set_cookie,
    )


# ------------------------------------------------------------------ 2. misroute


def cmd_misroute(a: argparse.Namespace) -> None:
    nodes = parse_node_map(a.nodes)
    names = sorted(nodes)
    # The cookie map: sha256(url)[:16] per server; proven by pinning an initialize with each.
    proven = []
    for n in names:
        t = RawTransport(a.url, a.cafile, cookie_mode="fixed", fixed_cookie=cookie_value(nodes[n]))
        s = Session(t, "e2e-cookiemap")
        r = s.initialize()
        instr = (r.result() or {}).get("instructions", "") if isinstance(r.result(), dict) else ""
        served = instr.split("mcpd node ", 1)[1].split(".", 1)[0] if "mcpd node " in instr else "?"
        proven.append(f"{n}={cookie_value(nodes[n])}" + ("" if served == n and not r.backend_cookie() else f"(WRONG: served by {served})"))
        if s.sid:
            s.delete()
        t.close()
    print("cookie map (sha256(server url)[:16], each proven by an initialize pinned with it): " + " ".join(proven))
    cookie_ok = all("WRONG" not in p for p in proven)

    t = JarTransport(a.url, a.cafile)
    s = Session(t, "e2e-misroute")
    must_init(s)
    r = s.call("node_info")
    x = r.node() or "?"
    jar = t.jar_cookie()
    y = names[(names.index(x) + 1) % len(names)] if x in names else names[0]
    print(f"session {s.sid} created on {x} (node_info), jar cookie {jar} = {node_of_cookie(nodes, jar)}")
    wrong = RawTransport(a.url, a.cafile, cookie_mode="fixed", fixed_cookie=cookie_value(nodes[y]))
    m = Session(wrong)
    m.sid = s.sid
    r = m.call("node_info")
    moved = r.backend_cookie()
    print(f"same session with {y}'s cookie ({cookie_value(nodes[y])}): HTTP {r.status}, node_info node={r.node()}, "
          f"error code={r.error_code()}, Traefik re-pinned: {'yes -> ' + node_of_cookie(nodes, moved) if moved else 'no'}")
    wrong.close()
    d = s.delete()
    result(sid=s.sid, x=x, y=y, status=r.status, node=r.node() or "-", code=r.error_code() or "-",
           repinned=int(bool(moved)), cookie_ok=int(cookie_ok and node_of_cookie(nodes, jar) == x), delete=d.status)


# ------------------------------------------------------------------ 3/4. node loss


def cmd_nodeloss(a: argparse.Namespace) -> None:
    nodes = parse_node_map(a.nodes)
    pids = {k: int(v) for k, v in parse_node_map(a.pids).items()}
    t = JarTransport(a.url, a.cafile)
    s = Session(t, f"e2e-nodeloss-{a.mode}")
    must_init(s)
    r = s.call("node_info")
    p = r.node()
    if not p or p not in pids:
        sys.exit(f"node_info gave no usable node: {r.short()}")
    dead = [s.sid]
    for _ in range(a.extra):       # more sessions on P (same jar, same cookie) for the purge check
        e = Session(t, "e2e-nodeloss-extra")
        must_init(e)
        if e.call("node_info").node() != p:
            sys.exit("an extra session was not created on the pinned node")
        dead.append(e.sid)
    print(f"client pinned to {p} (jar cookie {t.jar_cookie()}), session {s.sid}; {a.extra} more session(s) on {p}")

    os.kill(pids[p], signal.SIGKILL)
    t_kill = time.monotonic()
    print(f"SIGKILL {p} (pid {pids[p]})")
    attempts = []
    gateway = 0
    first = None
    deadline = t_kill + a.timeout
    while time.monotonic() < deadline:
        try:
            r = s.call("node_info")
        except Exception as e:  # noqa: BLE001
            attempts.append(f"+{int((time.monotonic() - t_kill) * 1000)}ms {type(e).__name__}")
            gateway += 1
            time.sleep(0.1)
            continue
        ms = int((time.monotonic() - t_kill) * 1000)
        via = node_of_cookie(nodes, r.backend_cookie()) if r.backend_cookie() else f"cookie {node_of_cookie(nodes, t.jar_cookie())}"
        attempts.append(f"+{ms}ms {r.status}" + (f" node={r.node()}" if r.node() else "") + (f" code={r.error_code()}" if r.error_code() else "") + f" [{via}]")
        if r.status not in (502, 503, 504):
            first = (ms, r, node_of_cookie(nodes, t.jar_cookie()))
            break
        gateway += 1
        time.sleep(0.1)
    print("requests after the kill: " + "; ".join(attempts))
    if first is None:
        result(p=p, dead=",".join(dead), first_status="timeout", gateway_errors=gateway)
        return
    ms, r, answered_by = first
    if a.mode == "adr":
        print(f"first non-gateway answer +{ms} ms: HTTP {r.status} code {r.error_code()} from {answered_by}")
        r2 = s.initialize()
        n2 = s.call("node_info") if s.sid else r2
        more = collections.Counter(s.call("node_info").node() or "FAIL" for _ in range(5)) if s.sid else {}
        print(f"re-initialized: HTTP {r2.status}, new session {s.sid} on {n2.node()}; 5 more calls: {dict(more)}")
        if s.sid:
            s.delete()
        result(p=p, dead=",".join(dead), first_status=r.status, first_code=r.error_code() or "-", answered_by=answered_by,
               first_ms=ms, gateway_errors=gateway, new_sid=s.sid or "-", new_node=n2.node() or "-",
               more_ok=sum(v for k, v in dict(more).items() if k == n2.node()))
    else:
        same = (r.result() or {}).get("structuredContent", {}).get("session_id") == s.sid if r.result() else False
        more = collections.Counter(s.call("node_info").node() or "FAIL" for _ in range(5))
        print(f"first non-gateway answer +{ms} ms after SIGKILL: HTTP {r.status}, node_info node={r.node()}, "
              f"session id unchanged: {same}; 5 more calls: {dict(more)}")
        d = s.delete()
        result(p=p, dead=",".join(dead), first_status=r.status, first_ms=ms, gateway_errors=gateway,
               new_node=r.node() or "-", same_sid=int(same), sid=dead[0],
               more_ok=sum(v for k, v in dict(more).items() if k == r.node()), delete=d.status)


# ------------------------------------------------------------------ one request, pinned by hand


def cmd_probe(a: argparse.Namespace) -> None:
    nodes = parse_node_map(a.nodes)
    t = RawTransport(a.url, a.cafile, cookie_mode="fixed", fixed_cookie=cookie_value(nodes[a.node]))
    s = Session(t)
    s.sid = a.sid
    r = s.call("node_info")
    moved = r.backend_cookie()
    print(f"node_info for {a.sid} pinned to {a.node}: HTTP {r.status} code {r.error_code()} node={r.node()}"
          + (f" (Traefik re-pinned to {node_of_cookie(nodes, moved)})" if moved else ""))
    result(status=r.status, code=r.error_code() or "-", node=r.node() or "-", repinned=int(bool(moved)))


# ------------------------------------------------------------------ new clients reach a node again


def cmd_pinnable(a: argparse.Namespace) -> None:
    """Until a cookie-less initialize through each of --urls is served by --node (then DELETE).
    Traefik's API can say UP while its load balancer still skips a server that failed a real
    request (passive health check) — new sessions would then avoid the node."""
    t0 = time.monotonic()
    seen: dict[str, float] = {}
    tries = 0
    while time.monotonic() - t0 < a.timeout and len(seen) < len(a.urls.split(",")):
        for url in a.urls.split(","):
            if url in seen:
                continue
            # The cookie Traefik sets on the initialize pins the follow-ups (initialized, DELETE)
            # to the same node, so nothing is misrouted (forwarding may be off).
            tr = RawTransport(url, a.cafile, cookie_mode="manual")
            s = Session(tr, "e2e-pinnable")
            r = s.initialize()
            tries += 1
            res = r.result()
            instr = res.get("instructions", "") if isinstance(res, dict) else ""
            if s.sid:
                s.delete()
            tr.close()
            if f"mcpd node {a.node}." in instr:
                seen[url] = time.monotonic() - t0
        time.sleep(0.05)
    ok = len(seen) == len(a.urls.split(","))
    print(f"new sessions reach {a.node} again: " + ("yes" if ok else "NO") + f" after {int((time.monotonic() - t0) * 1000)} ms, {tries} initialize(s)")
    result(ok=int(ok), ms=int((time.monotonic() - t0) * 1000), tries=tries)


# ------------------------------------------------------------------ Redis


def cmd_redis_keys(a: argparse.Namespace) -> None:
    keys = redis_session_keys(a.port)
    if a.ids:
        ids = [i for i in a.ids.split(",") if i]
        present = [i for i in ids if i in keys]
        for i in ids:
            print(f"  mcp:session:{i}: " + (f"present (node {keys[i]})" if i in keys else "absent"))
        result(total=len(keys), asked=len(ids), present=len(present))
    else:
        by_node = collections.Counter(keys.values())
        result(total=len(keys), by_node=",".join(f"{k}={v}" for k, v in sorted(by_node.items())) or "-")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("pinning", "misroute", "nodeloss", "probe"):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--cafile")
        p.add_argument("--nodes", required=True)
    sub.choices["pinning"].add_argument("--calls", type=int, default=200)
    sub.choices["pinning"].add_argument("--gets", type=int, default=30)
    sub.choices["misroute"].add_argument("--expect", choices=["forwarded", "404"], required=True)
    sub.choices["nodeloss"].add_argument("--pids", required=True)
    sub.choices["nodeloss"].add_argument("--mode", choices=["adr", "adopt"], required=True)
    sub.choices["nodeloss"].add_argument("--extra", type=int, default=0)
    sub.choices["nodeloss"].add_argument("--timeout", type=float, default=15.0)
    sub.choices["probe"].add_argument("--sid", required=True)
    sub.choices["probe"].add_argument("--node", required=True)
    p = sub.add_parser("pinnable")
    p.add_argument("--urls", required=True, help="comma-separated Traefik base URLs (http and https)")
    p.add_argument("--cafile")
    p.add_argument("--node", required=True)
    p.add_argument("--timeout", type=float, default=20.0)
    p = sub.add_parser("redis-keys")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ids")
    a = ap.parse_args()
    {"pinning": cmd_pinning, "misroute": cmd_misroute, "nodeloss": cmd_nodeloss, "probe": cmd_probe,
     "pinnable": cmd_pinnable,
     "redis-keys": cmd_redis_keys}[a.cmd](a)


if __name__ == "__main__":
    main()
