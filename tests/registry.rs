//! The Redis session registry against a real, private `redis-server` and real mcpd nodes: keys and
//! TTLs, deletion regardless of the local outcome, the four miss classes with their log fields,
//! the purge of a killed node's keys, and Redis failing at start and mid-run.

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{send, Server};
use serde_json::json;

fn node(redis: &Redis, id: &str, extra: &str) -> Server {
    Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"{id}\"\n[redis]\nurl = \"{}\"\nheartbeat_interval = \"200ms\"\n{extra}",
        redis.url()
    ))
}

async fn wait_synced(s: &Server) {
    s.wait_registry_synced().await;
}

#[tokio::test]
async fn initialize_writes_the_session_key_with_its_ttl_owner_and_node_set() {
    let redis = Redis::start();
    let s = node(&redis, "n1", "session_ttl = \"1h\"\n");
    let sid = s.session().await;
    let key = format!("mcp:session:{sid}");
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.cmd(&["EXISTS", &key]).int()
            == 1)
    );
    let ttl = redis.cmd(&["TTL", &key]).int();
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    let record: serde_json::Value =
        serde_json::from_str(redis.cmd(&["GET", &key]).str().unwrap()).unwrap();
    assert_eq!(record["node"], "n1");
    assert_eq!(record["protocol"], "2025-11-25");
    assert_eq!(
        redis.cmd(&["SMEMBERS", "mcp:node:n1:sessions"]).strings(),
        vec![sid.clone()]
    );
    let beat: serde_json::Value =
        serde_json::from_str(redis.cmd(&["GET", "mcp:node:n1"]).str().unwrap()).unwrap();
    assert_eq!(
        beat["boot"], record["boot"],
        "heartbeat carries the boot id"
    );
    assert_eq!(
        beat["url"],
        format!("http://{}", s.addr),
        "and where peers reach the node"
    );
    let hb_ttl = redis.cmd(&["PTTL", "mcp:node:n1"]).int();
    assert!(
        hb_ttl > 0 && hb_ttl <= 600,
        "heartbeat lives three intervals: {hb_ttl}ms"
    );
    let (_, h) = s.health().await;
    assert_eq!(h["registry"]["state"], "connected");
}

#[tokio::test]
async fn the_key_prefix_is_configurable() {
    let redis = Redis::start();
    let s = node(&redis, "n1", "key_prefix = \"team-a:\"\n");
    let sid = s.session().await;
    assert!(redis.wait_until(Duration::from_secs(5), |r| r
        .keys(&format!("team-a:session:{sid}"))
        .len()
        == 1));
    assert!(redis.node_keys("mcp:*").is_empty());
}

#[tokio::test]
async fn closing_removes_the_key_by_delete_and_by_reaping() {
    let redis = Redis::start();
    let s = node(&redis, "n1", "[session]\ninit_timeout = \"300ms\"\n");
    let deleted = s.session().await;
    let r = s.post(None, &common::initialize("2025-11-25")).await; // never initialized: reaped
    let reaped = r.header("mcp-session-id").unwrap().to_owned();
    wait_synced(&s).await;
    assert_eq!(
        send(
            s.addr,
            "DELETE",
            "/mcp",
            &[("mcp-session-id", &deleted)],
            ""
        )
        .await
        .status,
        200
    );
    let gone = |id: &str| format!("mcp:session:{id}");
    assert!(redis.wait_until(Duration::from_secs(5), |r| r
        .cmd(&["EXISTS", &gone(&deleted), &gone(&reaped)])
        .int()
        == 0));
    assert!(redis
        .cmd(&["SMEMBERS", "mcp:node:n1:sessions"])
        .strings()
        .is_empty());
}

#[tokio::test]
async fn delete_removes_the_key_even_when_this_node_does_not_hold_the_session() {
    let redis = Redis::start();
    // The ADR's strict mode: without forwarding, b answers 404 but removes the key anyway.
    let strict = "[cluster]\nforward_misroutes = false\n";
    let a = node(&redis, "a", strict);
    let b = node(&redis, "b", strict);
    let sid = a.session().await;
    let key = format!("mcp:session:{sid}");
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.cmd(&["EXISTS", &key]).int()
            == 1)
    );
    let r = send(b.addr, "DELETE", "/mcp", &[("mcp-session-id", &sid)], "").await;
    assert_eq!(r.status, 404, "b does not hold it");
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.cmd(&["EXISTS", &key]).int()
            == 0),
        "key removed regardless"
    );
}

#[tokio::test]
async fn misses_are_classified_and_logged_once_with_their_fields() {
    let mut redis = Redis::start();
    // The ADR's strict mode (no forwarding, no adoption): every miss is a 404 and a log line.
    let strict = "[cluster]\nforward_misroutes = false\nadopt_orphans = false\n";
    let a = node(&redis, "a", strict);
    let b = node(&redis, "b", strict);
    let mut c = node(&redis, "c", strict);
    let on_a = a.session().await;
    let on_c = c.session().await;
    for n in [&a, &b, &c] {
        wait_synced(n).await; // before its first connection a node classifies nothing
    }
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});

    // misroute: a live node holds it.
    b.post(Some(&on_a), &ping).await.assert_error(404, -32001);
    b.post(Some(&on_a), &ping).await.assert_error(404, -32001);
    let lines = b.log_lines(&["WARN", &on_a]);
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    for field in [
        "class=\"misroute\"",
        "owner_node=\"a\"",
        "node=b",
        "action=\"404\"",
        &format!("session_id=\"{on_a}\""),
    ] {
        assert!(lines[0].contains(field), "{field} missing in {}", lines[0]);
    }

    // stale: its node died (no heartbeat).
    c.kill9();
    tokio::time::sleep(Duration::from_millis(800)).await; // heartbeat TTL is 3 × 200 ms
    b.post(Some(&on_c), &ping).await.assert_error(404, -32001);
    assert!(
        b.wait_log(
            &["WARN", &on_c, "class=\"stale\"", "owner_node=\"c\""],
            Duration::from_secs(2)
        ),
        "{}",
        b.logs()
    );

    // unknown: nobody registered it.
    let nobody = "6a1f0c3e-2b4d-4e8f-9a7b-1c2d3e4f5a6b-0badc0de";
    b.post(Some(nobody), &ping).await.assert_error(404, -32001);
    assert!(
        b.wait_log(
            &["WARN", nobody, "class=\"unknown\"", "owner_node=\"\""],
            Duration::from_secs(2)
        ),
        "{}",
        b.logs()
    );

    // unclassified: Redis does not answer.
    redis.kill();
    let later = "7b2a1d4f-3c5e-4f9a-8b6c-2d3e4f5a6b7c-0badc0de";
    let started = std::time::Instant::now();
    b.post(Some(later), &ping).await.assert_error(404, -32001);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a miss never waits long for Redis"
    );
    assert!(
        b.wait_log(
            &["WARN", later, "class=\"unclassified\""],
            Duration::from_secs(2)
        ),
        "{}",
        b.logs()
    );
}

#[tokio::test]
async fn without_adoption_a_sigkilled_nodes_keys_are_purged_by_its_next_start() {
    let redis = Redis::start();
    let no_adoption = "[cluster]\nadopt_orphans = false\n";
    let mut first = node(&redis, "n1", no_adoption);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(first.session().await);
    }
    wait_synced(&first).await;
    first.kill9();
    assert_eq!(
        redis.keys("mcp:session:*").len(),
        5,
        "a killed process leaves its keys"
    );
    let other = node(&redis, "n2", "");
    let kept = other.session().await;
    wait_synced(&other).await;
    let second = node(&redis, "n1", no_adoption);
    wait_synced(&second).await;
    assert_eq!(
        redis.keys("mcp:session:*"),
        vec![format!("mcp:session:{kept}")],
        "only n2's session remains"
    );
    assert!(redis
        .cmd(&["SMEMBERS", "mcp:node:n1:sessions"])
        .strings()
        .is_empty());
    assert!(
        second
            .logs()
            .contains("removed sessions this node no longer holds"),
        "{}",
        second.logs()
    );
}

#[tokio::test]
async fn with_redis_down_mid_run_requests_are_served_and_redis_converges_when_it_returns() {
    let mut redis = Redis::start();
    let s = node(&redis, "n1", "");
    let closed_meanwhile = s.session().await;
    let survivor = s.session().await;
    wait_synced(&s).await;
    redis.kill();
    // Served as usual: calls, a new session, a DELETE.
    s.assert_alive(&survivor).await;
    let created_meanwhile = s.session().await;
    s.assert_alive(&created_meanwhile).await;
    assert_eq!(
        send(
            s.addr,
            "DELETE",
            "/mcp",
            &[("mcp-session-id", &closed_meanwhile)],
            ""
        )
        .await
        .status,
        200
    );
    // /healthz shows the outage once fred notices the dead connection, with the work queued.
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        seen = s.health().await.1;
        if seen["registry"]["state"] != "connected" && seen["registry"]["synced"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(seen["registry"]["state"], "connected", "{seen}");
    assert!(
        seen["registry"]["queue"].as_u64().unwrap() >= 1,
        "work queued: {seen}"
    );
    s.assert_alive(&survivor).await;
    redis.restart(); // the same data: the closed session's key is still there
    assert_eq!(
        redis
            .cmd(&["EXISTS", &format!("mcp:session:{closed_meanwhile}")])
            .int(),
        1
    );
    wait_synced(&s).await;
    let mut want = vec![
        format!("mcp:session:{survivor}"),
        format!("mcp:session:{created_meanwhile}"),
    ];
    want.sort();
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.keys("mcp:session:*") == want),
        "registry converged to the live sessions: {:?}",
        redis.keys("mcp:session:*")
    );
}

#[tokio::test]
async fn with_redis_down_at_start_the_node_serves_and_registers_once_it_comes_up() {
    let port = common::redis::free_port();
    let s = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"early\"\n[redis]\nurl = \"redis://127.0.0.1:{port}\"\n"
    ));
    let sid = s.session().await;
    s.assert_alive(&sid).await;
    // Not yet in the cluster: the load balancer is told to wait (the node serves anyway).
    let (status, h) = s.health().await;
    assert_eq!(
        (status, h["status"].as_str()),
        (503, Some("starting")),
        "{h}"
    );
    let dir = common::temp_path("redis");
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start_on(port, dir);
    wait_synced(&s).await;
    let (status, h) = s.health().await;
    assert_eq!(
        (status, h["status"].as_str()),
        (200, Some("serving")),
        "{h}"
    );
    assert!(redis.wait_until(Duration::from_secs(5), |r| r
        .cmd(&["EXISTS", &format!("mcp:session:{sid}")])
        .int()
        == 1));
}

#[tokio::test]
async fn without_adoption_shutdown_removes_this_nodes_keys() {
    let redis = Redis::start();
    let mut s = node(&redis, "n1", "[cluster]\nadopt_orphans = false\n");
    for _ in 0..3 {
        s.session().await;
    }
    wait_synced(&s).await;
    assert_eq!(redis.keys("mcp:session:*").len(), 3);
    s.signal("TERM");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        redis.node_keys("mcp:*").is_empty(),
        "left: {:?}",
        redis.node_keys("mcp:*")
    );
}

#[tokio::test]
async fn mcpd_sessions_lists_counts_and_shows_where_sessions_live() {
    let redis = Redis::start();
    let a = node(&redis, "alpha", "");
    let sid = a.session().await;
    wait_synced(&a).await;
    let cfg = common::TempFile::with("toml", &format!("[redis]\nurl = \"{}\"\n", redis.url()));
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mcpd"))
            .arg("sessions")
            .arg("--config")
            .arg(&*cfg)
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, out) = run(&[]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&sid)
            && out.contains("alpha")
            && out.contains("alive")
            && out.contains("1 session(s)"),
        "{out}"
    );
    let (_, out) = run(&["count"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("alpha") && l.contains(" 1 ") && l.ends_with("alive")),
        "{out}"
    );
    let (_, out) = run(&["show", &sid]);
    assert!(out.contains("node      alpha (alive)"), "{out}");
    let (code, _) = run(&["show", "6a1f0c3e-2b4d-4e8f-9a7b-1c2d3e4f5a6b"]);
    assert_eq!(code, Some(1));
}

#[tokio::test]
async fn a_used_sessions_ttl_is_refreshed_at_most_once_per_touch_interval() {
    let redis = Redis::start();
    let s = node(
        &redis,
        "n1",
        "session_ttl = \"1h\"\ntouch_interval = \"1s\"\n",
    );
    let sid = s.session().await;
    wait_synced(&s).await;
    let key = format!("mcp:session:{sid}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    redis.cmd(&["EXPIRE", &key, "100"]);
    s.assert_alive(&sid).await; // due: refreshes
    assert!(
        redis.wait_until(Duration::from_secs(3), |r| r.cmd(&["TTL", &key]).int()
            > 3500),
        "refreshed"
    );
    redis.cmd(&["EXPIRE", &key, "100"]);
    s.assert_alive(&sid).await; // within the interval: no refresh
    wait_synced(&s).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        redis.cmd(&["TTL", &key]).int() <= 100,
        "not refreshed twice within touch_interval"
    );
}

#[tokio::test]
async fn a_hung_redis_does_not_slow_requests_and_the_registry_recovers() {
    let redis = Redis::start();
    let s = node(&redis, "n1", "command_timeout = \"500ms\"\n");
    let before = s.session().await;
    wait_synced(&s).await;
    redis.signal("STOP");
    let started = std::time::Instant::now();
    let during = s.session().await;
    s.assert_alive(&before).await;
    s.assert_alive(&during).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "served without waiting on Redis: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await; // let writes time out
    redis.signal("CONT");
    wait_synced(&s).await;
    let mut want = vec![
        format!("mcp:session:{before}"),
        format!("mcp:session:{during}"),
    ];
    want.sort();
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.keys("mcp:session:*") == want),
        "{:?}",
        redis.keys("mcp:session:*")
    );
}

#[tokio::test]
async fn the_record_keeps_the_sessions_durable_parameters_up_to_date() {
    let redis = Redis::start();
    let s = node(&redis, "n1", "");
    let sid = s.session().await;
    let key = format!("mcp:session:{sid}");
    let record = |r: &Redis| -> serde_json::Value {
        r.cmd(&["GET", &key])
            .str()
            .map(|raw| serde_json::from_str(raw).unwrap())
            .unwrap_or_default()
    };
    assert!(redis.wait_until(Duration::from_secs(5), |r| record(r)["log_level"] == "info"));
    let v = record(&redis);
    assert_eq!(v["client_info"]["name"], "mcpd-tests");
    assert!(v["capabilities"]["sampling"].is_object(), "{v}");
    s.post(
        Some(&sid),
        &json!({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}),
    )
    .await;
    s.post(Some(&sid), &json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"mcpd://node"}})).await;
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| {
            let v = record(r);
            v["log_level"] == "debug" && v["subscriptions"] == json!(["mcpd://node"])
        }),
        "{}",
        record(&redis)
    );
    let ttl = redis.cmd(&["TTL", &key]).int();
    assert!(ttl > 2_590_000, "a rewrite keeps the full TTL: {ttl}");
    s.post(Some(&sid), &json!({"jsonrpc":"2.0","id":3,"method":"resources/unsubscribe","params":{"uri":"mcpd://node"}})).await;
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| record(r)["subscriptions"]
            == json!([]))
    );
}

/// Calls of one Redis command since the last `CONFIG RESETSTAT`.
fn calls(redis: &Redis, command: &str) -> i64 {
    redis
        .info_field("commandstats", &format!("cmdstat_{command}"))
        .and_then(|v| v.strip_prefix("calls=")?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn sessions_queued_together_are_registered_and_removed_with_one_set_command_each_way() {
    let redis = Redis::start();
    let s = node(&redis, "n1", "");
    wait_synced(&s).await;
    let key = |id: &str| format!("mcp:session:{id}");
    let set = "mcp:node:n1:sessions";

    // Redis hangs while 30 sessions open: their writes queue up and go out as one batch.
    redis.cmd(&["CONFIG", "RESETSTAT"]);
    redis.signal("STOP");
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(s.session().await);
    }
    redis.signal("CONT");
    let keys: Vec<String> = ids.iter().map(|id| key(id)).collect();
    let mut exists = vec!["EXISTS"];
    exists.extend(keys.iter().map(String::as_str));
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.cmd(&exists).int() == 30
            && r.cmd(&["SCARD", set]).int() == 30),
        "all 30 keys and set members written"
    );
    for k in &keys {
        let ttl = redis.cmd(&["TTL", k]).int();
        assert!(ttl > 0, "{k} has its TTL: {ttl}");
    }
    // The heartbeat script's SET counts too (Redis counts commands a script runs), and at most
    // one batch may have been in flight when Redis stopped.
    let sets = calls(&redis, "set");
    assert!(
        (30..=35).contains(&sets),
        "one SET per record, plus heartbeats: {sets}"
    );
    let sadd = calls(&redis, "sadd");
    assert!(
        (1..=2).contains(&sadd),
        "set members added in one command per batch: {sadd}"
    );

    // The same for 30 DELETEs.
    redis.cmd(&["CONFIG", "RESETSTAT"]);
    redis.signal("STOP");
    for id in &ids {
        let r = send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", id)], "").await;
        assert_eq!(r.status, 200);
    }
    redis.signal("CONT");
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.cmd(&exists).int() == 0
            && r.cmd(&["SCARD", set]).int() == 0),
        "all 30 keys and set members removed"
    );
    let (srem, del) = (calls(&redis, "srem"), calls(&redis, "del"));
    assert!(
        (1..=2).contains(&srem),
        "members removed in one command per batch: {srem}"
    );
    assert!(
        (1..=2).contains(&del),
        "keys deleted in one command per batch: {del}"
    );
}

/// Write-family syscalls (`write`, `writev`) process `pid` has made so far: `syscw` in
/// /proc/PID/io.
fn write_syscalls(pid: u32) -> i64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscw in /proc/PID/io")
}

#[tokio::test]
async fn a_batch_of_registry_writes_goes_to_redis_in_one_write_not_one_per_command() {
    let redis = Redis::start();
    let s = node(&redis, "n1", "");
    wait_synced(&s).await;

    // 60 sessions opened at once queue up together and go out in a few batches.
    redis.cmd(&["CONFIG", "RESETSTAT"]);
    let before = write_syscalls(s.pid());
    let body = common::initialize("2025-11-25").to_string();
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let (addr, body) = (s.addr, body.clone());
        opening.spawn(async move {
            send(addr, "POST", "/mcp", &common::POST_HEADERS, body)
                .await
                .status
        });
    }
    while let Some(status) = opening.join_next().await {
        assert_eq!(status.expect("initialize task"), 200);
    }
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| r.keys("mcp:session:*").len()
            == 60),
        "all 60 sessions registered"
    );
    let writes = write_syscalls(s.pid()) - before;
    let commands = calls(&redis, "set") + calls(&redis, "sadd");
    assert!(commands >= 60, "a SET per session at least: {commands}");
    // Each session cost two writes of its own: its HTTP response and its "session created" log
    // line. The rest are the registry's writes to Redis (and the odd wake-up of the runtime):
    // written one command at a time, as a fred pipeline does, they are one or more per command.
    let registry_writes = writes - 2 * 60;
    assert!(
        2 * registry_writes < commands,
        "{registry_writes} writes for {commands} registry commands ({writes} write syscalls in \
         all): a batch must go to Redis in one write, not one per command"
    );
}
