"""Part 5 of tests/cluster/cluster-e2e.sh: N raw-HTTP MCP clients through Traefik during a
rolling deploy (python3 stdlib only, one process, two threads per client).

    python3 e2e_rolling.py --url http://127.0.0.1:PORT --clients 20 --label a \
        --stopfile F --marks F --ready F --redis-port P [--interval-ms 50] [--cookies manual|none]

Each client:
  * POST thread: initialize + notifications/initialized, then `tools/call echo` every
    --interval-ms on one keep-alive connection. A call fails on anything but 200 with the right
    echo text. On a 404 (the session is gone: ADR-0066's answer) the client re-initializes
    (ADR-mode client behaviour) and counts it with a timestamp; a 503 on initialize waits
    Retry-After. At the end it DELETEs its session.
  * GET thread: holds `GET /mcp` (Accept: text/event-stream) open; when the stream ends it waits
    the last `retry:` the server sent (1 s before any) and reconnects with Last-Event-ID. A 404
    makes it wait for the POST thread's next session.
  * Cookies (--cookies manual, the default): the last `_mcp_backend` value Traefik set is sent
    back by hand on both threads. The cookie is `Secure`, so a standard jar would never return it
    over the http entry point; without it every request is round-robined and ADR mode (forwarding
    off) could not work at all. --cookies none sends none.

The shell script appends `restart <node> <epoch ms of SIGTERM>` lines to --marks before each
restart and creates --stopfile at the end. Output: a summary (see `report`) and one
`RESULT key=value ...` line; --dump FILE also writes every client's failures, re-inits and GET
stream events as JSON (kept in $WORK with MCPT_CLUSTER_KEEP=1).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import socket
import sys
import threading
import time

from e2e_lib import PROTOCOL, RawTransport, Reply, Session, now_ms, redis_session_keys


class Client:
    def __init__(self, idx: int, a: argparse.Namespace, stop: threading.Event):
        self.idx = idx
        self.a = a
        self.stop = stop
        self.t = RawTransport(a.url, cookie_mode=a.cookies, timeout=a.call_timeout)
        self.sess = Session(self.t, f"e2e-rolling-{idx}")
        self.cond = threading.Condition()
        self.sid: str | None = None          # current session, shared with the GET thread
        self.calls: list[tuple[int, bool, str]] = []   # (end ms, ok, why)
        self.reinits: list[int] = []
        self.init_fail: collections.Counter[str] = collections.Counter()
        self.minted: list[str] = []          # every Mcp-Session-Id an initialize returned
        self.abandoned: list[str] = []       # sessions given up after a 404
        self.gets: collections.Counter[str] = collections.Counter()   # GET outcomes
        self.get_retry_ms: list[int] = []
        self.get_log: list[tuple[int, str, str]] = []   # (ms, sid, what) for --dump
        self.get_conn: http.client.HTTPConnection | None = None
        self.final_delete = "-"
        self.nodes_seen: set[str] = set()

    # ---------------------------------------------------------------- POST side
    def init(self) -> bool:
        try:
            r = self.sess.initialize()
        except Exception as e:  # noqa: BLE001
            self.init_fail[type(e).__name__] += 1
            self.stop.wait(0.2)
            return False
        minted = r.header("mcp-session-id") if r.status == 200 else None
        if minted:
            self.minted.append(minted)
        if not self.sess.sid:
            self.init_fail[self.sess.init_error or "?"] += 1
            wait = 0.2
            ra = r.header("retry-after")
            if r.status == 503 and ra:
                try:
                    wait = min(float(ra), 5.0)
                except ValueError:
                    pass
            self.stop.wait(wait)
            return False
        if self.sid is not None or self.abandoned:
            self.reinits.append(now_ms())
        with self.cond:
            self.sid = self.sess.sid
            self.cond.notify_all()
        return True

    def post_loop(self) -> None:
        n = 0
        while not self.stop.is_set():
            if self.sess.sid is None:
                if not self.init():
                    continue
            n += 1
            msg = f"c{self.idx}-{n}"
            why = ""
            try:
                r = self.sess.call("echo", {"message": msg})
                res = r.result()
                text = "".join(c.get("text", "") for c in res.get("content", [])) if isinstance(res, dict) else ""
                ok = r.status == 200 and text == f"Echo: {msg}" and not res.get("isError")
                if not ok:
                    why = f"{r.status}" + (f"/{r.error_code()}" if r.error_code() else "") + ("" if r.status != 200 else f" {text[:40]!r}")
            except Exception as e:  # noqa: BLE001
                r = None
                ok, why = False, type(e).__name__
            self.calls.append((now_ms(), ok, why))
            if r is not None and r.status == 404:
                self.abandoned.append(self.sess.sid or "")
                self.sess.sid = None
                with self.cond:
                    self.sid = None
                    self.cond.notify_all()
                continue          # re-initialize at once
            self.stop.wait(self.a.interval_ms / 1000)
        if self.sess.sid:
            try:
                self.final_delete = str(self.sess.delete().status)
            except Exception as e:  # noqa: BLE001
                self.final_delete = type(e).__name__
        with self.cond:
            self.cond.notify_all()

    # ---------------------------------------------------------------- GET side
    def get_loop(self) -> None:
        last_id: dict[str, str] = {}
        retry_ms = 1000
        while not self.stop.is_set():
            with self.cond:
                while self.sid is None and not self.stop.is_set():
                    self.cond.wait(0.5)
                sid = self.sid
            if sid is None:
                break
            h = {"Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL}
            h.update(self.t.cookie_header())
            if sid in last_id:
                h["Last-Event-ID"] = last_id[sid]
            conn = self.t.new_conn(timeout=self.a.get_timeout)
            self.get_conn = conn
            status = None
            try:
                conn.request("GET", "/mcp", headers=h)
                r = conn.getresponse()
                status = r.status
                self.gets[f"open {r.status}"] += 1
                self.get_log.append((now_ms(), sid, f"open {r.status} lei={h.get('Last-Event-ID')}"))
                self.t.took(Reply(r.status, r.getheaders(), b""))
                if r.status == 200:
                    event_id = None
                    while True:
                        line = r.readline()
                        if not line:
                            why = "closed at the stop" if self.stop.is_set() else "ended by the server"
                            self.gets[why] += 1
                            self.get_log.append((now_ms(), sid, f"{why} retry={retry_ms}"))
                            break
                        s = line.decode("utf-8", "replace").rstrip("\r\n")
                        if s.startswith("id:"):
                            event_id = s[3:].strip()
                        elif s.startswith("retry:"):
                            try:
                                retry_ms = int(s[6:].strip())
                                self.get_retry_ms.append(retry_ms)
                            except ValueError:
                                pass
                        elif s == "" and event_id:
                            last_id[sid] = event_id
                            event_id = None
                else:
                    r.read()
            except Exception as e:  # noqa: BLE001
                if not self.stop.is_set():
                    self.gets[f"error {type(e).__name__}"] += 1
                    self.get_log.append((now_ms(), sid, f"error {type(e).__name__}"))
            finally:
                self.get_conn = None
                conn.close()
            if self.stop.is_set():
                break
            if status == 404:
                with self.cond:      # wait for the POST thread's next session
                    while self.sid == sid and not self.stop.is_set():
                        self.cond.wait(0.5)
                continue
            self.stop.wait(retry_ms / 1000 if status == 200 else 0.5)

    def shutdown_get(self) -> None:
        c = self.get_conn
        if c is not None and c.sock is not None:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def sliding_peak(times: list[int], window_ms: int = 1000) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window_ms:
            j += 1
        best = max(best, i - j + 1)
    return best


def report(a: argparse.Namespace, clients: list[Client], t_start: int, t_end: int, baseline: dict[str, str]) -> None:
    marks = []
    if os.path.exists(a.marks):
        for line in open(a.marks):
            p = line.split()
            if len(p) == 3 and p[0] == "restart":
                marks.append((p[1], int(p[2])))
    rel = lambda ms: f"+{(ms - t_start) / 1000:.1f}s"  # noqa: E731
    calls = [c for cl in clients for c in cl.calls]
    failed = [c for c in calls if not c[1]]
    why = collections.Counter(c[2] for c in failed)
    reinits = sorted(t for cl in clients for t in cl.reinits)
    init_fail = sum((cl.init_fail for cl in clients), collections.Counter())
    gets = sum((cl.gets for cl in clients), collections.Counter())
    print(f"[{a.label}] {len(clients)} clients, cookies={a.cookies}, echo every {a.interval_ms} ms, "
          f"ran {(t_end - t_start) / 1000:.1f} s")
    print(f"[{a.label}] tools/call attempted {len(calls)}, failed {len(failed)}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in why.most_common())})" if failed else ""))
    print(f"[{a.label}] re-initializations {len(reinits)}"
          + (f" at {', '.join(rel(t) for t in reinits[:40])}{' ...' if len(reinits) > 40 else ''}" if reinits else "")
          + f"; peak {sliding_peak(reinits)} in any 1 s window; failed initialize attempts: "
          + (", ".join(f"{k}: {v}" for k, v in init_fail.most_common()) or "0"))
    print(f"[{a.label}] GET /mcp streams: " + ", ".join(f"{k}: {v}" for k, v in sorted(gets.items()))
          + (f"; retry: values seen {min(x for cl in clients for x in cl.get_retry_ms)}-"
             f"{max(x for cl in clients for x in cl.get_retry_ms)} ms" if any(cl.get_retry_ms for cl in clients) else ""))
    print(f"[{a.label}] recovery per restart = for each client with a failed call between this SIGTERM and the next"
          f" one, (its first successful call after its last failed call in that window) - SIGTERM; max over clients:")
    never_total, max_rec = 0, 0
    fails_outside = 0
    bounds = [m[1] for m in marks] + [t_end + 1]
    if marks:
        fails_outside = sum(1 for c in failed if c[0] < marks[0][1])
    for k, (node, t0) in enumerate(marks):
        t1 = bounds[k + 1]
        affected, never, rec = 0, 0, []
        win_fails = 0
        for cl in clients:
            fails = [c[0] for c in cl.calls if not c[1] and t0 <= c[0] < t1]
            win_fails += len(fails)
            if not fails:
                continue
            affected += 1
            last = max(fails)
            nxt = next((c[0] for c in cl.calls if c[1] and c[0] > last), None)
            if nxt is None:
                never += 1
            else:
                rec.append(nxt - t0)
        win_reinits = sum(1 for t in reinits if t0 <= t < t1)
        never_total += never
        worst = max(rec) if rec else 0
        max_rec = max(max_rec, worst)
        print(f"[{a.label}]   restart {node} (SIGTERM at {rel(t0)}): {affected}/{len(clients)} clients had failed calls"
              f" ({win_fails} calls), {win_reinits} re-inits; every client serving again "
              + (f"{worst} ms after SIGTERM" if affected else "throughout (no failure)")
              + (f"; {never} client(s) NEVER served again" if never else ""))
    last_restart = marks[-1][1] if marks else t_start
    not_serving = sum(1 for cl in clients if not any(c[1] and c[0] > last_restart for c in cl.calls))
    if fails_outside:
        print(f"[{a.label}] failed calls before the first restart: {fails_outside}")

    # Redis: the keys of sessions this run created, after every client DELETEd its last one.
    mine = {s: ("final" if cl.sess.sid == s or (cl.minted and cl.minted[-1] == s) else
                "abandoned" if s in cl.abandoned else "minted-unused")
            for cl in clients for s in cl.minted}
    left: dict[str, str] = {}
    other: dict[str, str] = {}
    deadline = time.monotonic() + a.redis_settle
    while True:
        keys = redis_session_keys(a.redis_port)
        left = {s: keys[s] for s in mine if s in keys}
        other = {s: n for s, n in keys.items() if s not in mine and s not in baseline}
        if (not left and not other) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    kinds = collections.Counter(mine[s] for s in left)
    deletes = collections.Counter(cl.final_delete for cl in clients)
    print(f"[{a.label}] sessions created {len(mine)} (abandoned after a 404: {sum(len(cl.abandoned) for cl in clients)});"
          f" final DELETE: {dict(deletes)}")
    print(f"[{a.label}] redis mcp:session:* keys left for this run's sessions: {len(left)}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in kinds.items())}; owners: {dict(collections.Counter(left.values()))})" if left else "")
          + f"; other new keys: {len(other)}; keys present before the run: {len(baseline)}")
    for s in list(left)[:5]:
        print(f"[{a.label}]   left: mcp:session:{s} node={left[s]} ({mine[s]})")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in dict(
        clients=len(clients), calls=len(calls), failed=len(failed), reinits=len(reinits),
        peak_reinit=sliding_peak(reinits), never=never_total, max_recovery_ms=max_rec, restarts=len(marks),
        not_serving_at_end=not_serving, keys_left=len(left), keys_left_abandoned=kinds.get("abandoned", 0),
        keys_left_final=kinds.get("final", 0), keys_other=len(other),
        get_errors=sum(v for k, v in gets.items() if not k.startswith(("open 200", "ended by", "closed at"))),
        fails_outside=fails_outside,
    ).items()), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--label", default="run")
    ap.add_argument("--stopfile", required=True)
    ap.add_argument("--marks", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--interval-ms", type=int, default=50)
    ap.add_argument("--cookies", choices=["manual", "none"], default="manual")
    ap.add_argument("--call-timeout", type=float, default=10.0)
    ap.add_argument("--get-timeout", type=float, default=40.0)
    ap.add_argument("--max-seconds", type=float, default=100.0)
    ap.add_argument("--redis-settle", type=float, default=5.0)
    ap.add_argument("--dump", help="write per-client events (failures, re-inits, GET streams) as JSON here")
    a = ap.parse_args()

    baseline = redis_session_keys(a.redis_port)
    stop = threading.Event()
    clients = [Client(i + 1, a, stop) for i in range(a.clients)]
    threads = []
    t_start = now_ms()
    for cl in clients:
        for target in (cl.post_loop, cl.get_loop):
            th = threading.Thread(target=target, daemon=True)
            th.start()
            threads.append(th)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(cl.sid for cl in clients):
        time.sleep(0.05)
    ready = sum(1 for cl in clients if cl.sid)
    print(f"[{a.label}] {ready}/{len(clients)} clients initialized in {(now_ms() - t_start)} ms", flush=True)
    with open(a.ready, "w") as f:
        f.write(json.dumps({"ready": ready}))
    end = time.monotonic() + a.max_seconds
    while not os.path.exists(a.stopfile) and time.monotonic() < end:
        time.sleep(0.1)
    t_end = now_ms()
    stop.set()
    for th in threads[0::2]:       # POST threads: last call + DELETE
        th.join(timeout=a.call_timeout + 5)
    for cl in clients:
        cl.shutdown_get()
    for th in threads[1::2]:
        th.join(timeout=5)
    alive = sum(1 for th in threads if th.is_alive())
    if alive:
        print(f"[{a.label}] {alive} client thread(s) still running at the end", flush=True)
    report(a, clients, t_start, t_end, baseline)
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump({"t_start": t_start, "t_end": t_end, "clients": [
                {"idx": cl.idx, "minted": cl.minted, "abandoned": cl.abandoned, "reinits": cl.reinits,
                 "fails": [c for c in cl.calls if not c[1]], "gets": cl.get_log} for cl in clients]}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
