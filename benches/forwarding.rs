//! Misroute rescue's cost: tool calls/s and latency for one session used through its owner and
//! through a non-owner node (one extra hop), in interleaved rounds of the same run. Prints
//! numbers; asserts only that every answer is right.
//!
//!     cargo bench --bench forwarding                      # 3 rounds × 5 s, 16 connections
//!     FORWARDING_BENCH_SECONDS=10 FORWARDING_BENCH_ROUNDS=5 cargo bench --bench forwarding

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::json;

use common::redis::Redis;
use common::Server;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    calls_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

fn main() {
    let seconds = env_or("FORWARDING_BENCH_SECONDS", 5);
    let rounds = env_or("FORWARDING_BENCH_ROUNDS", 3);
    let conns = env_or("FORWARDING_BENCH_CONNECTIONS", 16) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let redis = Redis::start();
    let extra = |id: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"{id}\"\n[redis]\nurl = \"{}\"\nheartbeat_interval = \"500ms\"\n[log]\nlevel = \"warn,mcpd::daemon=info\"\nformat = \"text\"\n",
            redis.url()
        )
    };
    let owner = Server::start(&extra("owner"));
    let other = Server::start(&extra("other"));
    let (owned, direct, hop) = rt.block_on(async {
        let sid = owner.session().await;
        // Wait until the non-owner knows the owner from its heartbeat.
        for _ in 0..100 {
            if other
                .post(Some(&sid), &json!({"jsonrpc":"2.0","id":0,"method":"ping"}))
                .await
                .status
                == 200
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (sid, owner.addr, other.addr)
    });
    println!("forwarding bench: {rounds} interleaved rounds of {seconds} s, {conns} connections, one session on node 'owner'");
    let mut via_owner = Vec::new();
    let mut via_other = Vec::new();
    for round in 1..=rounds {
        for (label, addr, runs) in [
            ("owner    ", direct, &mut via_owner),
            ("non-owner", hop, &mut via_other),
        ] {
            let r = rt.block_on(load(addr, &owned, conns, Duration::from_secs(seconds)));
            println!(
                "round {round} via {label}: {:>8.0} calls/s, p50 {:>5} us, p99 {:>6} us",
                r.calls_per_s, r.p50_us, r.p99_us
            );
            runs.push(r);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let summary = |runs: &[Run]| {
        let mut c: Vec<f64> = runs.iter().map(|r| r.calls_per_s).collect();
        let mut p99: Vec<f64> = runs.iter().map(|r| r.p99_us as f64).collect();
        (med(&mut c), med(&mut p99))
    };
    let (c_own, p_own) = summary(&via_owner);
    let (c_hop, p_hop) = summary(&via_other);
    println!();
    println!("median over {rounds} rounds:");
    println!("  via owner    : {c_own:.0} calls/s, p99 {p_own:.0} us");
    println!(
        "  via non-owner: {c_hop:.0} calls/s, p99 {p_hop:.0} us ({:.0}% of the owner's throughput)",
        100.0 * c_hop / c_own
    );
}

/// `conns` keep-alive connections calling `echo` on `sid` through `addr` for `dur`.
async fn load(addr: SocketAddr, sid: &str, conns: usize, dur: Duration) -> Run {
    let deadline = Instant::now() + dur;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let sid = sid.to_owned();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut tx, conn) = http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut n: u64 = 0;
            while Instant::now() < deadline {
                n += 1;
                let body = json!({"jsonrpc":"2.0","id": (c as u64) << 32 | n,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}});
                let req = hyper::Request::post("/mcp")
                    .header("host", addr.to_string())
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", sid.as_str())
                    .body(Full::new(Bytes::from(body.to_string())))
                    .expect("request");
                let t = Instant::now();
                let res = tx.send_request(req).await.expect("response");
                assert_eq!(res.status(), 200);
                let bytes = res.into_body().collect().await.expect("body").to_bytes();
                latencies.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                assert!(bytes.windows(11).any(|w| w == b"Echo: hello"), "wrong answer");
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Run {
        calls_per_s: all.len() as f64 / elapsed.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}
