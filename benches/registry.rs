//! Session creation with the Redis registry off and on, in interleaved rounds on the same machine:
//! sessions/s (initialize + notifications/initialized over keep-alive connections), and what the
//! registry cost Redis per 1,000 creations — pipelines (round trips, counted by mcpd) and commands
//! (counted by Redis, `INFO stats`). Prints numbers; asserts nothing about speed.
//!
//!     cargo bench --bench registry                 # 3 rounds × 5,000 sessions, 16 connections
//!     REGISTRY_BENCH_SESSIONS=20000 REGISTRY_BENCH_ROUNDS=5 cargo bench --bench registry

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::json;

use common::redis::Redis;
use common::Server;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Round {
    sessions_per_s: f64,
    pipelines_per_1000: Option<f64>,
    commands_per_1000: Option<f64>,
}

fn main() {
    let sessions = env_or("REGISTRY_BENCH_SESSIONS", 5_000);
    let rounds = env_or("REGISTRY_BENCH_ROUNDS", 3);
    let conns = env_or("REGISTRY_BENCH_CONNECTIONS", 16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut off = Vec::new();
    let mut on = Vec::new();
    println!("registry bench: {rounds} interleaved rounds of {sessions} sessions over {conns} keep-alive connections");
    for round in 1..=rounds {
        let r = rt.block_on(run(None, sessions, conns));
        println!(
            "round {round} registry off: {:>8.0} sessions/s",
            r.sessions_per_s
        );
        off.push(r);
        let redis = Redis::start();
        let r = rt.block_on(run(Some(&redis), sessions, conns));
        println!(
            "round {round} registry on : {:>8.0} sessions/s, per 1,000 creations: {:.1} pipelines (round trips), {:.0} Redis commands",
            r.sessions_per_s,
            r.pipelines_per_1000.unwrap_or(f64::NAN),
            r.commands_per_1000.unwrap_or(f64::NAN)
        );
        on.push(r);
    }
    let med = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (m_off, lo_off, hi_off) = med(off.iter().map(|r| r.sessions_per_s).collect());
    let (m_on, lo_on, hi_on) = med(on.iter().map(|r| r.sessions_per_s).collect());
    let (m_p, lo_p, hi_p) = med(on.iter().filter_map(|r| r.pipelines_per_1000).collect());
    let (m_c, _, _) = med(on.iter().filter_map(|r| r.commands_per_1000).collect());
    println!();
    println!("median (min-max) over {rounds} rounds:");
    println!("  registry off: {m_off:.0} sessions/s ({lo_off:.0}-{hi_off:.0})");
    println!(
        "  registry on : {m_on:.0} sessions/s ({lo_on:.0}-{hi_on:.0}), {:.0}% of off",
        100.0 * m_on / m_off
    );
    println!(
        "  Redis per 1,000 creations: {m_p:.1} pipelines ({lo_p:.1}-{hi_p:.1}), {m_c:.0} commands"
    );
}

async fn run(redis: Option<&Redis>, sessions: usize, conns: usize) -> Round {
    let extra = match redis {
        Some(r) => format!("[redis]\nurl = \"{}\"\n[session]\nmax_sessions = {}\n[log]\nlevel = \"warn,mcpd::daemon=info\"\nformat = \"text\"\n", r.url(), sessions + 10),
        None => format!("[session]\nmax_sessions = {}\n[log]\nlevel = \"warn,mcpd::daemon=info\"\nformat = \"text\"\n", sessions + 10),
    };
    let server = Server::start(&extra);
    if redis.is_some() {
        wait_registry(&server).await;
    }
    let before_flushes = server.health().await.1["registry"]["flushes"].as_u64();
    let before_cmds = redis.map(total_commands);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..conns {
        let n = sessions / conns + usize::from(w < sessions % conns);
        workers.push(tokio::spawn(create(server.addr, n)));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let elapsed = started.elapsed();
    let (pipelines, commands) = match redis {
        Some(r) => {
            wait_registry(&server).await; // every creation has reached Redis
            let flushes = server.health().await.1["registry"]["flushes"]
                .as_u64()
                .unwrap_or(0);
            let p = flushes.saturating_sub(before_flushes.unwrap_or(0)) as f64;
            let c = total_commands(r).saturating_sub(before_cmds.unwrap_or(0)) as f64;
            let keys = r.keys("mcp:session:*").len();
            assert_eq!(keys, sessions, "every session registered");
            (
                Some(p * 1000.0 / sessions as f64),
                Some(c * 1000.0 / sessions as f64),
            )
        }
        None => (None, None),
    };
    Round {
        sessions_per_s: sessions as f64 / elapsed.as_secs_f64(),
        pipelines_per_1000: pipelines,
        commands_per_1000: commands,
    }
}

async fn wait_registry(s: &Server) {
    for _ in 0..400 {
        let h = s.health().await.1;
        if h["registry"]["synced"] == true && h["registry"]["queue"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("registry never caught up");
}

/// `total_commands_processed` from `INFO stats`.
fn total_commands(r: &Redis) -> u64 {
    r.info_field("stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens `n` sessions over one keep-alive connection, checking every answer.
async fn create(addr: std::net::SocketAddr, n: usize) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut tx, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let init = Bytes::from(common::initialize("2025-11-25").to_string());
    let done =
        Bytes::from(json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string());
    for _ in 0..n {
        let req = hyper::Request::post("/mcp")
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(init.clone()))
            .expect("request");
        let res = tx.send_request(req).await.expect("initialize");
        assert_eq!(res.status(), 200, "initialize");
        let sid = res
            .headers()
            .get("mcp-session-id")
            .expect("session id")
            .clone();
        res.into_body().collect().await.expect("body");
        let req = hyper::Request::post("/mcp")
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", sid)
            .body(Full::new(done.clone()))
            .expect("request");
        let res = tx.send_request(req).await.expect("initialized");
        assert_eq!(res.status(), 202, "initialized");
        res.into_body().collect().await.expect("body");
    }
}
