"""Runs the benchmark: every peer in interleaved rounds, then memory, stream fan-out and Traefik.

Called by bench/run.sh (which builds everything first). Writes one JSON file of raw results.

Method (see BENCHMARKS.md): each server is pinned to core 0 (`taskset -c 0`), wrk and this driver
run on core 1. Server CPU comes from /proc/PID/stat (utime+stime) read around each wrk run; core
busy time from /proc/stat tells how loaded each core was and how much CPU something else on the
machine used during the cell ("other"). When `perf stat` can read hardware counters, the server's
instructions and cycles (user and kernel) are counted around each wrk run too: instructions per
call do not move with the VM's steal time or cross-CPU wake-ups, so they are the steady figure to
compare. /proc/interrupts (CAL on the load CPU) counts how often the server woke the sleeping load
generator. Every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import glob
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, HERE)
import mcpclient as mc  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"
LOAD_CPU = "1"
PATH = "/mcp"
HOST = "127.0.0.1"

CALL_TESTS = [  # name, sessions, wrk threads, connections
    ("1s_c1", 1, 1, 1),
    ("1s_c10", 1, 1, 10),
    ("1s_c50", 1, 1, 50),
    ("100s_c50", 100, 1, 50),
]
# The same echo call in protocol 2026-07-28 ("modern": no session, the `_meta` envelope and the
# Mcp-Method/Mcp-Name headers on every call; bench/lib/call.lua with BENCH_ERA=modern). A modern
# call has no session, so only the one-session shapes apply; the tests keep their names so the
# report puts these cells in the same columns as the legacy ones (the record says sessions 0).
MODERN_TESTS = [t for t in CALL_TESTS if t[1] == 1]
# Session churn: 4 connections as in the anchors (one lifecycle in flight per connection, bound by
# round trips), and 50 as in the call tests (enough lifecycles in flight to keep the server's core
# busy: its capacity).
CHURN_CONNS = (4, 50)
CHURN = os.path.join(BENCH, "peers/target/release/churn")

WORK = None
PROCS = []  # (name, Popen) still running


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- processes

def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start(name, cmd, env=None, cpu=SERVER_CPU):
    logf = open(os.path.join(WORK, f"{name}.log"), "ab")
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen(["taskset", "-c", cpu] + cmd, env=full_env, stdout=logf,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=WORK)
    logf.close()
    PROCS.append((name, p))
    return p


def stop(p, grace=5.0):
    """SIGTERM that PID, wait up to `grace` s, then SIGKILL; nothing else is touched."""
    if p is None:
        return
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        except ProcessLookupError:
            pass
    for i, (_, q) in enumerate(PROCS):
        if q is p:
            del PROCS[i]
            break


def stop_all():
    for _, p in list(reversed(PROCS)):
        stop(p, grace=3.0)


def tail(name, n=15):
    try:
        with open(os.path.join(WORK, f"{name}.log"), "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""


def wait_port(port, p, secs=20.0):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if p.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime
    except (OSError, ValueError):
        return None


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def core_times():
    """{cpuN: (busy_s, total_s, steal_s)} from /proc/stat (busy excludes steal: time the
    hypervisor gave to someone else is reported separately)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"(cpu\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()] + [0] * 8
                idle = v[3] + v[4]
                steal = v[7]
                tot = sum(v[:8])
                out[m.group(1)] = ((tot - idle - steal) / CLK, tot / CLK, steal / CLK)
    return out


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ----------------------------------------------------------------------------- peers

def load_env():
    """MCPT_* from the test deps' env.sh (Node 22, Traefik, redis-server)."""
    env_sh = os.path.join(os.environ.get("MCPT_TEST_DEPS", os.path.expanduser("~/.cache/mcpd-test-deps")), "env.sh")
    if os.path.exists(env_sh):
        with open(env_sh) as f:
            for line in f:
                m = re.match(r"export (MCPT_\w+)=(.*)$", line.strip())
                if m and m.group(1) not in os.environ:
                    os.environ[m.group(1)] = m.group(2).strip("'\"")


def mcpd_config(port, redis_port=None):
    path = os.path.join(WORK, f"mcpd-{port}.toml")
    text = f"""[server]
listen = "{HOST}:{port}"
node_id = "bench"
max_connections = 19500

[session]
max_sessions = 120000

[log]
format = "text"
level = "warn"
"""
    if redis_port:
        text += f'\n[redis]\nurl = "redis://{HOST}:{redis_port}"\n'
    with open(path, "w") as f:
        f.write(text)
    return path


class Peer:
    def __init__(self, name, label, cmd_fn, env=None, sessions=True, missing=None, modern_only=False):
        self.name, self.label, self.cmd_fn, self.env = name, label, cmd_fn, env or {}
        self.sessions = sessions
        self.missing = missing  # None when runnable, else why not
        # Serves only protocol 2026-07-28 calls in the rounds: no sessions to open, no churn.
        self.modern_only = modern_only

    def start(self, port, **kw):
        env = dict(self.env)
        env["PORT"] = str(port)
        p = start(self.name, self.cmd_fn(port, **kw), env)
        if not wait_port(port, p):
            out = tail(self.name)
            stop(p)
            raise RuntimeError(f"{self.name} did not listen on {port}: {out}")
        return p


def make_peers():
    mcpd = os.path.join(ROOT, "target/release/mcpd")
    floor = os.path.join(BENCH, "peers/target/release/floor")
    rmcp = os.path.join(BENCH, "peers/target/release/rmcp-echo")
    node = os.environ.get("MCPT_NODE22") or shutil.which("node") or ""
    ts = os.path.join(BENCH, "peers/ts/server.mjs")
    ts_mods = os.path.join(BENCH, "peers/ts/node_modules/@modelcontextprotocol/sdk")
    ts2 = os.path.join(BENCH, "peers/ts2/server.mjs")
    ts2_mods = os.path.join(BENCH, "peers/ts2/node_modules/@modelcontextprotocol/server")
    py_exe = os.environ.get("MCPT_VENV_PY") or ""
    py = os.path.join(BENCH, "peers/py/server.py")

    def missing(*paths):
        for p in paths:
            if not p or not os.path.exists(p):
                return f"not built ({os.path.relpath(p, ROOT) if p else 'node'} missing)"
        return None

    peers = [
        Peer("floor", "bare hyper floor", lambda port: [floor], sessions=False, missing=missing(floor)),
        Peer("mcpd", "mcpd", lambda port, redis_port=None: [mcpd, "serve", "--config", mcpd_config(port, redis_port)],
             missing=missing(mcpd)),
        Peer("rmcp-nd", "rmcp (TCP_NODELAY)", lambda port: [rmcp], env={"NODELAY": "1"}, missing=missing(rmcp)),
        Peer("rmcp", "rmcp as its example ships (no TCP_NODELAY)", lambda port: [rmcp], env={"NODELAY": "0"},
             missing=missing(rmcp)),
        Peer("ts", "TypeScript SDK", lambda port: [node, ts], missing=missing(node, ts, ts_mods)),
        # Stateless in the legacy era (no session id), so it runs the modern call cells only.
        Peer("ts2", "TypeScript SDK 2.x (2026-07-28)", lambda port: [node, ts2], sessions=False,
             missing=missing(node, ts2, ts2_mods), modern_only=True),
        Peer("py", "Python SDK", lambda port: [py_exe, py], missing=missing(py_exe, py)),
    ]
    return {p.name: p for p in peers}


# ----------------------------------------------------------------------------- measurements

_PERF = None


def perf_ok():
    """True when `perf stat` can count instructions here (hardware counters exposed to the VM)."""
    global _PERF
    if _PERF is None:
        try:
            r = subprocess.run(["perf", "stat", "-x,", "-e", "instructions:u", "true"],
                               capture_output=True, text=True, timeout=20)
            _PERF = r.returncode == 0 and bool(re.search(r"^\d+,", r.stderr, re.M))
        except (OSError, subprocess.TimeoutExpired):
            _PERF = False
    return _PERF


def perf_start(pid):
    """Counts a process's instructions (user, kernel) and cycles until perf_stop."""
    if not perf_ok():
        return None
    out = os.path.join(WORK, f"perf-{pid}-{time.monotonic_ns()}.csv")
    p = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions:u,instructions:k,cycles:u,cycles:k",
                          "-p", str(pid), "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.05)
    return p, out


def perf_stop(h):
    """{event: count} from a perf_start handle (empty when perf is missing or failed)."""
    if h is None:
        return {}
    p, out = h
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    counts = {}
    try:
        with open(out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) >= 3 and parts[0].isdigit():
                    counts[parts[2]] = int(parts[0])
        os.unlink(out)
    except OSError:
        pass
    return counts


def call_ipis(cpu):
    """Function-call IPIs received so far by `cpu` (/proc/interrupts CAL): a wake-up of a
    sleeping task on that CPU from the other one costs one."""
    try:
        with open("/proc/interrupts") as f:
            for line in f:
                if line.split(":")[0].strip() == "CAL":
                    return int(line.split()[1 + int(cpu)])
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_wrk(port, script, threads, conns, duration, env, pids, timeout_s="5s"):
    """One measured wrk run. `pids`: {role: pid} whose CPU is measured (role 'server' first)."""
    url = f"http://{HOST}:{port}{PATH}"
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration:g}s",
           "--timeout", timeout_s, "--latency", "-s", script, url]
    return run_load(cmd, duration, env, pids)


def run_churn(port, conns, duration, pids, timeout_s=5):
    """One measured run of the churn generator (bench/peers/churn): whole session lifecycles over
    `conns` connections, all on one thread of the load core."""
    cmd = [CHURN, "--conns", str(conns), "--duration", f"{duration:g}", "--timeout", f"{timeout_s:g}",
           f"http://{HOST}:{port}{PATH}"]
    return run_load(cmd, duration, {}, pids)


def run_load(cmd, duration, env, pids):
    """Runs one load generator on the load core and measures around it. The generator prints one
    line "BENCHJSON {...}" (bench/lib/benchjson.lua's fields); it is kept under the key "wrk",
    whichever generator wrote it. `pids`: {role: pid} whose CPU is measured ('server' first)."""
    cmd = ["taskset", "-c", LOAD_CPU] + cmd
    full_env = dict(os.environ)
    full_env.update(env)
    perf = perf_start(pids["server"]) if "server" in pids else None
    ipi0 = call_ipis(LOAD_CPU)
    cpu0 = {k: proc_cpu_s(v) for k, v in pids.items()}
    cores0 = core_times()
    ch0 = children_cpu_s()
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=duration + 60)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out, err, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout", -1
    except OSError as e:
        out, err, rc = "", f"cannot run {cmd[3]}: {e}", -1
    wall = time.monotonic() - t0
    ch1 = children_cpu_s()
    cores1 = core_times()
    cpu1 = {k: proc_cpu_s(v) for k, v in pids.items()}
    ipi1 = call_ipis(LOAD_CPU)
    counts = perf_stop(perf)
    res = {"wall_s": wall, "wrk_rc": rc, "server_counters": counts,
           "load_cpu_ipis": ipi1 - ipi0 if ipi0 is not None and ipi1 is not None else None}
    m = re.search(r"^BENCHJSON (.*)$", out, re.M)
    if not m:
        res.update({"error": f"no result from {os.path.basename(cmd[3])} (rc {rc}): {err.strip()[-300:]} "
                             f"{out.strip()[-300:]}", "errors": 1})
        return res
    w = json.loads(m.group(1))
    res["wrk"] = w
    dur = w["duration_us"] / 1e6
    res["duration_s"] = dur
    cpu = {}
    for k in pids:
        if cpu0[k] is None or cpu1[k] is None:
            cpu[k] = None
        else:
            cpu[k] = cpu1[k] - cpu0[k]
    res["cpu_s"] = cpu
    res["wrk_cpu_s"] = ch1 - ch0
    busy = {c: cores1[c][0] - cores0[c][0] for c in cores1 if c in cores0}
    tot = {c: cores1[c][1] - cores0[c][1] for c in cores1 if c in cores0}
    res["core_busy_pct"] = {c: 100.0 * busy[c] / tot[c] if tot[c] else None for c in busy}
    res["steal_s"] = sum(cores1[c][2] - cores0[c][2] for c in cores1 if c in cores0)
    known = sum(v for v in cpu.values() if v) + res["wrk_cpu_s"]
    res["other_cpu_s"] = max(0.0, sum(busy.values()) - known)
    res["noisy"] = res["other_cpu_s"] > 0.10 * wall or res["steal_s"] > 0.10 * wall
    errors = (w.get("bad_status", 0) + w.get("bad_body", 0) + w.get("no_sid", 0) + w["err_connect"]
              + w["err_read"] + w["err_write"] + w["err_timeout"])
    if w["requests"] == 0:
        errors += 1
        res["error"] = "no request completed"
    res["errors"] = errors
    if w.get("first_bad"):
        res["first_bad"] = w["first_bad"]
    res["req_per_s"] = w["requests"] / dur if dur else 0.0
    res["p50_ms"] = w["lat_p50_us"] / 1000.0
    res["p99_ms"] = w["lat_p99_us"] / 1000.0
    res["max_ms"] = w["lat_max_us"] / 1000.0
    return res


def call_cell(peer, port, srv, test, sids, duration, variant, aux=None):
    name, nsess, threads, conns = test
    env = {"BENCH_SIDS": ",".join(sids[:nsess]), "BENCH_PATH": PATH}
    if variant == "sse":
        env.update({"BENCH_TOOL": "long_task", "BENCH_EXPECT": "completed 1 steps"})
    if variant == "modern":
        env.update({"BENCH_SIDS": "", "BENCH_ERA": "modern"})
        nsess = 0
    pids = {"server": srv.pid}
    pids.update(aux or {})
    r = run_wrk(port, os.path.join(HERE, "call.lua"), threads, conns, duration, env, pids)
    r.update({"kind": "call", "peer": peer, "test": name, "variant": variant, "sessions": nsess,
              "conns": conns, "rss_kb": proc_rss_kb(srv.pid)})
    if "wrk" in r:
        n = r["wrk"]["requests"]
        r["calls_per_s"] = r["req_per_s"]
        c = r["cpu_s"].get("server")
        r["cpu_us_per_call"] = c * 1e6 / n if n and c is not None else None
        add_counters(r, n, "call")
        for k, v in (aux or {}).items():
            cv = r["cpu_s"].get(k)
            r[f"{k}_cpu_us_per_call"] = cv * 1e6 / n if n and cv is not None else None
    if srv.poll() is not None:
        r["errors"] = r.get("errors", 0) + 1
        r["error"] = f"server exited ({srv.returncode})"
    return r


def add_counters(r, n, unit):
    """Per-`unit` instruction and cycle counts (thousands) and load-CPU wake-ups, when measured."""
    c = r.get("server_counters") or {}
    if n and "instructions:u" in c and "instructions:k" in c:
        r[f"kinstr_per_{unit}"] = (c["instructions:u"] + c["instructions:k"]) / n / 1e3
        r[f"kinstr_user_per_{unit}"] = c["instructions:u"] / n / 1e3
    if n and "cycles:u" in c and "cycles:k" in c:
        r[f"kcycles_per_{unit}"] = (c["cycles:u"] + c["cycles:k"]) / n / 1e3
    if n and r.get("load_cpu_ipis") is not None:
        r[f"load_ipis_per_{unit}"] = r["load_cpu_ipis"] / n


def churn_cell(peer, port, srv, duration, conns, aux=None):
    """Session churn over `conns` connections. For the floor (no sessions: every `initialize`
    gets the same id) the same requests give the pattern's ceiling on this machine."""
    pids = {"server": srv.pid}
    pids.update(aux or {})
    r = run_churn(port, conns, duration, pids)
    r.update({"kind": "churn", "peer": peer, "test": f"churn_c{conns}", "conns": conns,
              "rss_kb": proc_rss_kb(srv.pid)})
    if peer == "floor":
        r["ceiling"] = True
    if "wrk" in r:
        s = r["wrk"]["sessions"]
        r["sessions_per_s"] = s / r["duration_s"] if r["duration_s"] else 0.0
        r["http_req_per_s"] = r["req_per_s"]
        c = r["cpu_s"].get("server")
        r["cpu_us_per_session"] = c * 1e6 / s if s and c is not None else None
        add_counters(r, s, "session")
        for k in (aux or {}):
            cv = r["cpu_s"].get(k)
            r[f"{k}_cpu_us_per_session"] = cv * 1e6 / s if s and cv is not None else None
        if s == 0:
            r["errors"] = r.get("errors", 0) + 1
            r["error"] = "no session lifecycle completed"
    if srv.poll() is not None:
        r["errors"] = r.get("errors", 0) + 1
        r["error"] = f"server exited ({srv.returncode})"
    return r


def open_sessions(port, n, conc=32, **kw):
    return mc.run(mc.open_sessions(HOST, port, PATH, n, conc=conc, **kw))


def start_redis():
    port = free_port()
    rdir = os.path.join(WORK, f"redis-{port}")
    os.makedirs(rdir, exist_ok=True)
    exe = os.environ.get("MCPT_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    p = start("redis", [exe, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
                        "--dir", rdir], cpu=SERVER_CPU)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            with socket.create_connection((HOST, port), timeout=1) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return p, port
        except OSError:
            time.sleep(0.05)
    stop(p)
    raise RuntimeError("redis-server did not answer PING")


def redis_cmd(port, *args):
    """One command to the private Redis (RESP by hand: no client library needed); the raw reply."""
    req = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((HOST, port), timeout=2) as c:
        c.sendall(req.encode())
        data = b""
        while True:
            chunk = c.recv(65536)
            data += chunk
            if not chunk or data.startswith((b"+", b"-", b":")) and data.endswith(b"\r\n"):
                break
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                if len(rest) >= int(head[1:]) + 2:
                    break
        return data.decode(errors="replace")


def redis_commandstats(port):
    """Calls per command since the last CONFIG RESETSTAT, from INFO commandstats."""
    out = {}
    for line in redis_cmd(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_") and "calls=" in line:
            name, _, rest = line[len("cmdstat_"):].partition(":")
            out[name] = int(rest.split("calls=")[1].split(",")[0])
    return out


def http_json(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def wait_mcpd_synced(port, p, secs=15):
    end = time.monotonic() + secs
    while time.monotonic() < end and p.poll() is None:
        try:
            if http_json(f"http://{HOST}:{port}/healthz").get("registry", {}).get("synced") is True:
                return True
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.1)
    return False


# ----------------------------------------------------------------------------- sections

def slot(peers, name, rnd, cfg, results):
    """One peer's turn in a round: fresh server, sessions, warm-up, its cells, stop."""
    duration = cfg["duration"]
    if name == "mcpd-redis":
        peer = peers["mcpd"]
        if peer.missing:
            return
        rp, rport = start_redis()
        try:
            port = free_port()
            srv = peer.start(port, redis_port=rport)
            try:
                if not wait_mcpd_synced(port, srv):
                    results.append({"kind": "churn", "peer": "mcpd-redis", "round": rnd, "errors": 1,
                                    "error": "registry not synced: " + tail("mcpd")})
                    return
                warm = run_churn(port, CHURN_CONNS[0], 1, {})
                for conns in CHURN_CONNS:
                    redis_cmd(rport, "CONFIG", "RESETSTAT")
                    r = churn_cell("mcpd-redis", port, srv, duration, conns, aux={"redis": rp.pid})
                    r["round"] = rnd
                    # What the cell cost Redis, by command: the report derives how many of the
                    # lifecycles reached Redis (SETs per completed lifecycle).
                    r["redis_commands"] = redis_commandstats(rport)
                    r["warmup_errors"] = warm.get("errors")
                    results.append(r)
                    try:
                        r["healthz_registry"] = http_json(f"http://{HOST}:{port}/healthz").get("registry")
                    except Exception as e:  # noqa: BLE001
                        r["healthz_registry"] = str(e)
                    log(f"  mcpd-redis churn c{conns}: {fmt_cell(r)}")
                    if srv.poll() is not None:
                        return
            finally:
                stop(srv)
        finally:
            stop(rp)
        return
    peer = peers[name]
    if peer.missing:
        return
    port = free_port()
    srv = peer.start(port)
    call_lua = os.path.join(HERE, "call.lua")
    if peer.modern_only:
        try:
            run_wrk(port, call_lua, 1, 50, 2, {"BENCH_ERA": "modern"}, {})  # warm-up, unmeasured
            modern_cells(name, port, srv, rnd, duration, results)
        finally:
            stop(srv)
        return
    try:
        sids, st = open_sessions(port, 100)
        if st.errors or len(sids) < 100:
            results.append({"kind": "call", "peer": name, "round": rnd, "test": "setup", "errors": st.errors or 1,
                            "error": f"opening 100 sessions: {st.first_errors}"})
            return
        one = [sids[0]]
        # warm-up, unmeasured (mcpd: both eras, before any measured cell)
        run_wrk(port, call_lua, 1, 50, 2, {"BENCH_SIDS": ",".join(sids)}, {})
        if name == "mcpd":
            run_wrk(port, call_lua, 1, 50, 1, {"BENCH_ERA": "modern"}, {})
        variants = ["json"] + (["sse"] if name == "mcpd" and cfg["sse"] else [])
        for variant in variants:
            for test in CALL_TESTS:
                r = call_cell(name, port, srv, test, one if test[1] == 1 else sids, duration, variant)
                r["round"] = rnd
                results.append(r)
                log(f"  {name} {variant} {test[0]}: {fmt_cell(r)}")
                if srv.poll() is not None:
                    return
            # mcpd's 2026-07-28 calls right after its legacy ones, in the same process: side by side.
            if name == "mcpd" and variant == "json" and not modern_cells(name, port, srv, rnd, duration, results):
                return
        for conns in CHURN_CONNS:
            r = churn_cell(name, port, srv, duration, conns)
            r["round"] = rnd
            results.append(r)
            log(f"  {name} churn c{conns}{' (ceiling)' if r.get('ceiling') else ''}: {fmt_cell(r)}")
            if srv.poll() is not None:
                return
    finally:
        stop(srv)


def modern_cells(name, port, srv, rnd, duration, results):
    """The protocol 2026-07-28 call cells (variant "modern"); False when the server died."""
    for test in MODERN_TESTS:
        r = call_cell(name, port, srv, test, [], duration, "modern")
        r["round"] = rnd
        results.append(r)
        log(f"  {name} modern {test[0].split('_')[-1]}: {fmt_cell(r)}")
        if srv.poll() is not None:
            return False
    return True


def fmt_cell(r):
    if "wrk" not in r:
        return f"ERROR {r.get('error')}"
    s = f"{r['req_per_s']:,.0f} req/s p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms"
    if r.get("cpu_us_per_call") is not None:
        s += f", {r['cpu_us_per_call']:.1f} us/call"
    if r.get("sessions_per_s") is not None:
        s += f", {r['sessions_per_s']:,.0f} sess/s"
        if r.get("cpu_us_per_session") is not None:
            s += f", {r['cpu_us_per_session']:.1f} us/session"
    busy = r.get("core_busy_pct", {})
    s += f" [core0 {busy.get('cpu0', 0):.0f}% core1 {busy.get('cpu1', 0):.0f}% other {r.get('other_cpu_s', 0):.2f}s]"
    if r.get("errors"):
        s += f" ERRORS {r['errors']} {r.get('first_bad', r.get('error', ''))[:200]}"
    return s


def warmed_base_rss(port, pid):
    """The start RSS of a fresh server: 20 sessions opened and deleted first, so one-time
    allocations (runtime, first connections) are not counted per session."""
    warm, _ = open_sessions(port, 20)
    mc.run(mc.delete_sessions(HOST, port, PATH, warm))
    return settle_rss(pid, 1.0)


def settle_rss(pid, secs):
    time.sleep(secs)
    return proc_rss_kb(pid)


def memory_section(peers, cfg, only=None):
    out = []
    for name in ("mcpd", "rmcp-nd", "ts", "py"):
        if only and name not in only:
            continue
        peer = peers.get(name)
        if peer is None or peer.missing:
            out.append({"peer": name, "skipped": peer.missing if peer else "unknown"})
            continue
        levels = cfg["mem_levels"].get(name, cfg["mem_levels"]["default"])
        # A: idle sessions
        rec = {"peer": name, "levels": [], "errors": 0, "notes": []}
        port = free_port()
        srv = peer.start(port)
        try:
            base = warmed_base_rss(port, srv.pid)
            rec["base_kb"] = base
            sids = []
            deadline = time.monotonic() + cfg["mem_open_budget_s"]
            for lvl in levels:
                t0 = time.monotonic()
                new, st = open_sessions(port, lvl - len(sids), deadline=deadline)
                dt_open = time.monotonic() - t0
                sids += new
                rec["errors"] += st.errors
                if st.errors:
                    rec["notes"].append(f"opening to {lvl}: {st.errors} errors, e.g. {st.first_errors[:2]}")
                rss = settle_rss(srv.pid, cfg["settle_s"])
                rec["levels"].append({"sessions": len(sids), "target": lvl, "rss_kb": rss,
                                      "kb_per_session": (rss - base) / len(sids) if sids else None,
                                      "open_s": dt_open, "open_per_s": len(new) / dt_open if dt_open else None})
                log(f"  memory {name}: {len(sids)} idle sessions, RSS {rss/1024:.1f} MiB "
                    f"({(rss - base) / max(len(sids), 1):.2f} KiB/session), opened in {dt_open:.1f} s")
                if len(sids) < lvl or srv.poll() is not None:
                    rec["notes"].append(f"stopped at {len(sids)} sessions (budget {cfg['mem_open_budget_s']} s or server exit)")
                    break
            t0 = time.monotonic()
            st = mc.run(mc.delete_sessions(HOST, port, PATH, sids))
            rec["delete_s"] = time.monotonic() - t0
            rec["errors"] += st.errors
            if st.errors:
                rec["notes"].append(f"DELETE: {st.errors} errors, e.g. {st.first_errors[:2]}")
            rec["after_delete_kb"] = settle_rss(srv.pid, cfg["settle_s"] + 1)
            if name == "mcpd":
                rec["healthz_after"] = http_json(f"http://{HOST}:{port}/healthz").get("sessions")
            log(f"  memory {name}: after DELETE of {len(sids)}: RSS {rec['after_delete_kb']/1024:.1f} MiB "
                f"(base {base/1024:.1f} MiB)")
        finally:
            stop(srv)
        # B: sessions with one open GET stream each (fresh server)
        n = cfg["stream_sessions"]
        port = free_port()
        srv = peer.start(port)
        try:
            base = warmed_base_rss(port, srv.pid)
            sids, st = open_sessions(port, n, deadline=time.monotonic() + cfg["mem_open_budget_s"])
            rec["errors"] += st.errors
            rss_a = settle_rss(srv.pid, cfg["settle_s"])

            async def hold():
                streams, sst = await mc.open_streams(HOST, port, PATH, sids)
                await asyncio.sleep(cfg["settle_s"])
                rss_b = proc_rss_kb(srv.pid)
                for s in streams:
                    s.close()
                await asyncio.sleep(0.5)
                return len(streams), sst, rss_b
            nstreams, sst, rss_b = mc.run(hold())
            rec["errors"] += sst.errors
            if sst.errors:
                rec["notes"].append(f"GET streams: {sst.errors} errors, e.g. {sst.first_errors[:2]}")
            st = mc.run(mc.delete_sessions(HOST, port, PATH, sids))
            rec["errors"] += st.errors
            after = settle_rss(srv.pid, cfg["settle_s"] + 1)
            rec["streams"] = {
                "base_kb": base, "sessions": len(sids), "streams": nstreams, "rss_sessions_kb": rss_a,
                "rss_streams_kb": rss_b,
                "kb_per_session": (rss_a - base) / len(sids) if sids else None,
                "kb_per_stream": (rss_b - rss_a) / nstreams if nstreams else None,
                "kb_per_session_with_stream": (rss_b - base) / len(sids) if sids else None,
                "after_delete_kb": after,
            }
            log(f"  memory {name}: {len(sids)} sessions + {nstreams} GET streams: RSS {rss_b/1024:.1f} MiB, "
                f"{rec['streams']['kb_per_session_with_stream'] or 0:.2f} KiB/session+stream; after DELETE {after/1024:.1f} MiB")
        finally:
            stop(srv)
        out.append(rec)
    # C: what one idle keep-alive connection costs (the transport under every GET stream)
    for name in ("floor", "mcpd", "rmcp-nd", "ts", "py"):
        peer = peers.get(name)
        if peer is None or peer.missing or (only and name not in only):
            continue
        n = cfg["stream_sessions"]
        port = free_port()
        srv = peer.start(port)
        try:
            base = settle_rss(srv.pid, 1.0)

            async def conns():
                cs, st = await mc.open_idle_conns(HOST, port, n)
                await asyncio.sleep(cfg["settle_s"])
                rss = proc_rss_kb(srv.pid)
                for c in cs:
                    c.close()
                return len(cs), st, rss
            k, st, rss = mc.run(conns())
            rec = next((r for r in out if r.get("peer") == name and not r.get("skipped")), None)
            if rec is None:
                rec = {"peer": name, "levels": [], "errors": 0, "notes": [], "conn_only": True}
                out.append(rec)
            rec["idle_conns"] = {"conns": k, "base_kb": base, "rss_kb": rss,
                                 "kb_per_conn": (rss - base) / k if k else None, "errors": st.errors}
            if st.errors:
                rec["notes"].append(f"idle connections: {st.errors} errors, e.g. {st.first_errors[:2]}")
            log(f"  memory {name}: {k} idle keep-alive connections (one GET /healthz each): "
                f"{(rss - base) / max(k, 1):.2f} KiB per connection")
        finally:
            stop(srv)
    return out


def fanout_section(peers, cfg):
    peer = peers["mcpd"]
    if peer.missing:
        return {"skipped": peer.missing}
    n = cfg["fanout_streams"]
    port = free_port()
    srv = peer.start(port)
    rec = {"streams_target": n, "errors": 0, "notes": []}
    try:
        base = proc_rss_kb(srv.pid)
        t0 = time.monotonic()
        sids, st = open_sessions(port, n, subscribe_uri="mcpd://node",
                                 deadline=time.monotonic() + cfg["mem_open_budget_s"])
        rec["open_s"] = time.monotonic() - t0
        rec["errors"] += st.errors
        if st.errors:
            rec["notes"].append(f"opening: {st.errors} errors, e.g. {st.first_errors[:2]}")
        ctl, st2 = open_sessions(port, 1)
        rec["errors"] += st2.errors

        async def go():
            t = time.monotonic()
            streams, sst = await mc.open_streams(HOST, port, PATH, sids)
            rec["streams_open_s"] = time.monotonic() - t
            rec["streams"] = len(streams)
            rec["errors"] += sst.errors
            if sst.errors:
                rec["notes"].append(f"GET streams: {sst.errors} errors, e.g. {sst.first_errors[:2]}")
            await asyncio.sleep(1.0)
            rec["rss_kb"] = proc_rss_kb(srv.pid)
            rec["base_kb"] = base
            try:
                h = await asyncio.get_running_loop().run_in_executor(
                    None, http_json, f"http://{HOST}:{port}/healthz")
                rec["healthz_sessions"] = h.get("sessions")
            except Exception as e:  # noqa: BLE001
                rec["notes"].append(f"healthz: {e}")
            reps = await mc.fanout(HOST, port, PATH, ctl[0], streams, "mcpd://node", reps=cfg["fanout_reps"],
                                   gap=0.5, cpu_reader=lambda: proc_cpu_s(srv.pid))
            for s in streams:
                s.close()
            return reps
        reps = mc.run(go())
        rec["reps"] = reps
        for i, r in enumerate(reps):
            if r["received"] != r["streams"] or r["status"] != 200 or not r["ok_body"]:
                rec["errors"] += 1
                rec["notes"].append(f"repetition {i + 1}: {r['received']} of {r['streams']} streams got the event, "
                                    f"call status {r['status']}")
            log(f"  fan-out {i + 1}: {r['received']}/{r['streams']} streams, p50 {r['p50_ms'] or 0:.1f} "
                f"p99 {r['p99_ms'] or 0:.1f} max {r['max_ms'] or 0:.1f} ms, reply {r['reply_ms']:.1f} ms, "
                f"server CPU {r['server_cpu_ms'] or 0:.0f} ms")
        st = mc.run(mc.delete_sessions(HOST, port, PATH, sids + ctl))
        rec["errors"] += st.errors
    finally:
        stop(srv)
    return rec


def traefik_section(peers, cfg, rounds):
    peer = peers["mcpd"]
    exe = os.environ.get("MCPT_TRAEFIK", "")
    if peer.missing:
        return {"skipped": peer.missing}
    if not exe or not os.path.exists(exe):
        return {"skipped": "traefik not installed (run tests/prereqs.sh)"}
    port = free_port()
    srv = peer.start(port)
    web, tls, admin = free_port(), free_port(), free_port()
    tdir = os.path.join(WORK, "traefik")
    os.makedirs(os.path.join(tdir, "dynamic"), exist_ok=True)
    os.makedirs(os.path.join(tdir, "certs"), exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-keyout", os.path.join(tdir, "certs/key.pem"), "-out", os.path.join(tdir, "certs/cert.pem")],
                   check=True, capture_output=True)

    def sub(text, pairs):
        for a, b in pairs:
            if a not in text:
                raise RuntimeError(f"{a!r} not in the committed Traefik config")
            text = text.replace(a, b)
        return text
    static = sub(open(os.path.join(ROOT, "traefik/traefik.yml")).read(), [
        ('address: ":80"', f'address: "{HOST}:{web}"'),
        ('address: ":443"', f'address: "{HOST}:{tls}"'),
        ('address: "127.0.0.1:8081"', f'address: "{HOST}:{admin}"'),
        ("directory: /etc/traefik/dynamic", f"directory: {tdir}/dynamic"),
    ])
    dyn = open(os.path.join(ROOT, "traefik/dynamic/mcpd.yml")).read()
    dyn = "\n".join(line for line in dyn.split("\n") if "10.0.0.2:8080" not in line and "10.0.0.3:8080" not in line)
    dyn = sub(dyn, [("http://10.0.0.1:8080", f"http://{HOST}:{port}"), ("/etc/traefik/certs/", f"{tdir}/certs/")])
    with open(os.path.join(tdir, "dynamic/mcpd.yml"), "w") as f:
        f.write(dyn)
    with open(os.path.join(tdir, "traefik.yml"), "w") as f:
        f.write(static)
    tp = start("traefik", [exe, f"--configFile={tdir}/traefik.yml"], cpu=SERVER_CPU)
    rec = {"cells": [], "notes": ["Traefik runs on core 0 with mcpd (the server side has one core); its committed "
                                  "config is used as is, its JSON access log of failed requests included (to a file)."]}
    try:
        end = time.monotonic() + 30
        up = False
        while time.monotonic() < end and tp.poll() is None:
            try:
                j = http_json(f"http://{HOST}:{admin}/api/http/services/mcpd-sticky@file")
                ss = j.get("serverStatus", {})
                if ss and all(v == "UP" for v in ss.values()):
                    up = True
                    break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.2)
        if not up:
            rec["error"] = "Traefik did not route to mcpd: " + tail("traefik")
            rec["errors"] = 1
            return rec
        sids, st = open_sessions(port, 1)
        env = {"BENCH_SIDS": sids[0]}
        for p_ in (port, web):  # warm-up both paths
            run_wrk(p_, os.path.join(HERE, "call.lua"), 1, 50, 2, env, {})
        for rnd in range(1, rounds + 1):
            for via, p_ in (("direct", port), ("traefik", web)):
                aux = {"traefik": tp.pid} if via == "traefik" else {}
                r = call_cell("mcpd", p_, srv, ("1s_c50", 1, 1, 50), sids, cfg["duration"], "json", aux=aux)
                r.update({"kind": "traefik", "via": via, "round": rnd})
                rec["cells"].append(r)
                log(f"  traefik round {rnd} {via}: {fmt_cell(r)}"
                    + (f", traefik {r.get('traefik_cpu_us_per_call') or 0:.1f} us/call" if via == "traefik" else ""))
    finally:
        stop(tp)
        stop(srv)
    return rec


# ----------------------------------------------------------------------------- machine

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def lock_version(lock, name):
    try:
        text = open(lock).read()
    except OSError:
        return None
    m = re.search(r'\[\[package\]\]\nname = "' + re.escape(name) + r'"\nversion = "([^"]+)"', text)
    return m.group(1) if m else None


def npm_version(pkg, peer="ts"):
    try:
        with open(os.path.join(BENCH, "peers", peer, "node_modules", pkg, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


def py_dist_version(dist):
    """The version of a distribution installed in the test deps' venv (the Python peer's)."""
    exe = os.environ.get("MCPT_VENV_PY")
    if not exe or not os.path.exists(exe):
        return None
    return sh([exe, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"]) or None


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    peers_lock = os.path.join(BENCH, "peers/Cargo.lock")
    root_lock = os.path.join(ROOT, "Cargo.lock")
    node = os.environ.get("MCPT_NODE22") or shutil.which("node") or ""
    return {
        "nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(), "mem_total": mem,
        "os": sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
        "versions": {
            "mcpd": sh([os.path.join(ROOT, "target/release/mcpd"), "--version"]) or lock_version(root_lock, "mcpd"),
            "mcpd hyper": lock_version(root_lock, "hyper"), "mcpd tokio": lock_version(root_lock, "tokio"),
            "rustc": sh(["rustc", "--version"]),
            "rmcp": lock_version(peers_lock, "rmcp"), "axum (rmcp peer)": lock_version(peers_lock, "axum"),
            "hyper (peers)": lock_version(peers_lock, "hyper"), "tokio (peers)": lock_version(peers_lock, "tokio"),
            "@modelcontextprotocol/sdk": npm_version("@modelcontextprotocol/sdk"),
            "mcp (Python SDK)": py_dist_version("mcp"), "uvicorn (Python peer)": py_dist_version("uvicorn"),
            "express": npm_version("express"),
            "@modelcontextprotocol/server (TS SDK 2.x peer)": npm_version("@modelcontextprotocol/server", "ts2"),
            "@modelcontextprotocol/node (TS SDK 2.x peer)": npm_version("@modelcontextprotocol/node", "ts2"),
            "node": sh([node, "--version"]) if node else None,
            "wrk": sh(["dpkg-query", "-W", "-f", "${Version}", "wrk"]),
            "redis-server": sh([os.environ.get("MCPT_REDIS_SERVER") or "redis-server", "--version"]).split(" sha=")[0],
            "traefik": (re.search(r"Version:\s+(\S+)", sh([os.environ.get("MCPT_TRAEFIK", "traefik"), "version"]) or "")
                        or [None, None])[1] if os.environ.get("MCPT_TRAEFIK") else None,
            "python": platform.python_version(),
        },
    }


# ----------------------------------------------------------------------------- main

def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=float)
    ap.add_argument("--peers", help="comma list (default: all)")
    ap.add_argument("--sections", default="rounds,memory,fanout,traefik")
    ap.add_argument("--fanout-streams", type=int)
    a = ap.parse_args()

    os.sched_setaffinity(0, {int(LOAD_CPU)})
    load_env()
    quick = a.quick
    cfg = {
        "quick": quick,
        "rounds": a.rounds or (1 if quick else 3),
        "duration": a.duration or (3 if quick else 8),
        "sse": True,
        "settle_s": 2.0 if quick else 3.0,
        "mem_levels": {"default": [10000] if quick else [10000, 50000],
                       "mcpd": [10000, 50000] if quick else [10000, 50000, 100000],
                       # The Python SDK opens sessions slowly and large: 10,000 is enough to read
                       # its cost per session, and keeps the run's length.
                       "py": [10000]},
        "mem_open_budget_s": 120 if quick else 240,
        "stream_sessions": 5000 if quick else 10000,
        "fanout_streams": a.fanout_streams or (2000 if quick else 18000),
        "fanout_reps": 3 if quick else 7,
    }
    WORK = tempfile.mkdtemp(prefix="mcpd-bench.")
    peers = make_peers()
    order = ["floor", "mcpd", "mcpd-redis", "rmcp-nd", "rmcp", "ts", "ts2", "py"]
    if a.peers:
        keep = set(a.peers.split(","))
        order = [o for o in order if o in keep]
    sections = set(a.sections.split(","))
    out = {"started": dt.datetime.now().isoformat(timespec="seconds"), "config": cfg, "machine": machine(),
           "peers": {n: {"label": p.label, "status": p.missing or "ok"} for n, p in peers.items()},
           "order": order, "cells": [], "memory": None, "fanout": None, "traefik": None, "timings": {}}
    out["peers"]["mcpd-redis"] = {"label": "mcpd + Redis registry", "status": peers["mcpd"].missing or "ok"}
    for n, p in peers.items():
        if p.missing:
            log(f"peer {n}: {p.missing} - skipped")

    def save():
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, a.out)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    t_all = time.monotonic()
    try:
        if "rounds" in sections:
            t = time.monotonic()
            for rnd in range(1, cfg["rounds"] + 1):
                log(f"round {rnd}/{cfg['rounds']}")
                for name in order:
                    try:
                        slot(peers, name, rnd, cfg, out["cells"])
                    except RuntimeError as e:
                        log(f"  {name}: {e}")
                        out["cells"].append({"kind": "call", "peer": name, "round": rnd, "test": "setup",
                                             "errors": 1, "error": str(e)[:500]})
                    save()
            out["timings"]["rounds_s"] = time.monotonic() - t
        if "memory" in sections:
            t = time.monotonic()
            log("memory per idle session")
            out["memory"] = memory_section(peers, cfg, set(order) if a.peers else None)
            out["timings"]["memory_s"] = time.monotonic() - t
            save()
        if "fanout" in sections:
            t = time.monotonic()
            log(f"open SSE streams and notification fan-out ({cfg['fanout_streams']} streams)")
            out["fanout"] = fanout_section(peers, cfg)
            out["timings"]["fanout_s"] = time.monotonic() - t
            save()
        if "traefik" in sections:
            t = time.monotonic()
            log("Traefik in front")
            out["traefik"] = traefik_section(peers, cfg, cfg["rounds"])
            out["timings"]["traefik_s"] = time.monotonic() - t
            save()
    finally:
        stop_all()
        out["timings"]["total_s"] = time.monotonic() - t_all
        out["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        out["machine"]["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
        save()
        if os.environ.get("BENCH_KEEP"):
            log(f"kept {WORK}")
        else:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
