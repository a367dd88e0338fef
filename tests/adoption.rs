//! Session adoption with real nodes sharing a real Redis: a session whose node is gone (SIGKILL,
//! a restart, a stop long enough for its heartbeat to lapse) continues on the node the client
//! reaches next, under the same id, with its protocol version, client info, log level and
//! subscriptions; concurrent adopters end with exactly one owner; with adoption off the ADR's 404
//! and `stale` log line stay.

mod common;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{get_stream, send, Server};
use serde_json::{json, Value};

fn node(redis: &Redis, id: &str, extra: &str) -> Server {
    Server::start(&format!(
        // A generous lookup timeout: these tests are about who owns what, not about a loaded
        // machine's Redis latency.
        "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"{id}\"\n[redis]\nurl = \"{}\"\nheartbeat_interval = \"200ms\"\nlookup_timeout = \"2s\"\n{extra}",
        redis.url()
    ))
}

fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})
}

/// The node `node_info` reports for `sid` when asked through `via` (asserting a 200).
async fn served_by(via: &Server, sid: &str) -> String {
    // Distinct request ids: concurrent calls in one session must not share one.
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(100);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let r = via.call(sid, id, "node_info", json!({})).await;
    assert_eq!(
        r.status,
        200,
        "node_info through {}: {}",
        via.addr,
        r.text()
    );
    let facts = &r.json()["result"]["structuredContent"];
    facts["node"]
        .as_str()
        .unwrap_or_else(|| panic!("node_info: {}", r.text()))
        .to_owned()
}

/// The session's record in Redis (`null` when there is none).
fn record(redis: &Redis, sid: &str) -> Value {
    let raw = redis.cmd(&["GET", &format!("mcp:session:{sid}")]);
    raw.str().map_or(Value::Null, |s| {
        serde_json::from_str(s).expect("JSON record")
    })
}

/// `mcpd_sessions_adopted_total` on `s`.
async fn adopted_total(s: &Server) -> u64 {
    let r = send(s.addr, "GET", "/metrics", &[], "").await;
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("mcpd_sessions_adopted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_session_continues_through_b_after_its_node_is_sigkilled_with_its_parameters_intact() {
    let redis = Redis::start();
    let mut a = node(&redis, "a", "");
    let b = node(&redis, "b", "");
    b.wait_registry_synced().await;
    let sid = a.session_at("2025-06-18").await;
    let r = a
        .post(
            Some(&sid),
            &rpc(1, "logging/setLevel", json!({"level":"warning"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = a
        .post(
            Some(&sid),
            &rpc(2, "resources/subscribe", json!({"uri":"mcpd://node"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| {
            let rec = record(r, &sid);
            rec["log_level"] == "warning" && rec["subscriptions"] == json!(["mcpd://node"])
        }),
        "the durable parameters reach Redis: {}",
        record(&redis, &sid)
    );

    let created_ms = record(&redis, &sid)["created_ms"].clone();
    a.kill9();
    let started = Instant::now();
    let r = b.call(&sid, 3, "node_info", json!({})).await;
    assert_eq!(r.status, 200, "no error for the client: {}", r.text());
    let facts = &r.json()["result"]["structuredContent"];
    assert_eq!(facts["node"], "b", "continued on b");
    assert_eq!(facts["session_id"], sid.as_str(), "under the same id");
    assert_eq!(facts["protocol_version"], "2025-06-18", "protocol kept");
    assert_eq!(facts["client"], "mcpd-tests", "client info kept");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "adopted at once (the dead owner refuses connections): {:?}",
        started.elapsed()
    );

    // Subscriptions and log level came along: an update reaches the client, an `info` message
    // stays below the session's `warning` level, an `error` one gets through.
    let mut stream = get_stream(b.addr, &sid, None).await;
    assert_eq!(stream.status, 200);
    for (id, tool, args) in [
        (4, "touch_resource", json!({"uri":"mcpd://node"})),
        (5, "notify", json!({"message":"quiet","level":"info"})),
        (6, "notify", json!({"message":"loud","level":"error"})),
    ] {
        let r = b.call(&sid, id, tool, args).await;
        assert_eq!(r.status, 200, "{tool}: {}", r.text());
    }
    let mut methods = Vec::new();
    while let Some(m) = stream.next_message(Duration::from_secs(2)).await {
        methods.push(m);
        if methods.len() == 2 {
            break;
        }
    }
    assert_eq!(
        methods
            .iter()
            .map(|m| m["method"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        vec!["notifications/resources/updated", "notifications/message"],
        "{methods:?}"
    );
    assert_eq!(methods[0]["params"]["uri"], "mcpd://node");
    assert_eq!(methods[1]["params"]["level"], "error", "{methods:?}");

    let rec = record(&redis, &sid);
    assert_eq!(rec["node"], "b", "b owns it in Redis");
    assert_eq!(rec["protocol"], "2025-06-18");
    assert_eq!(
        rec["created_ms"], created_ms,
        "still the session's creation time"
    );
    assert_eq!(
        rec["capabilities"],
        json!({"sampling": {}, "elicitation": {}})
    );
    assert!(redis.cmd(&["SISMEMBER", "mcp:node:b:sessions", &sid]).int() == 1);
    assert!(
        b.wait_log(
            &[
                "WARN",
                &sid,
                "owner_node=\"a\"",
                "class=\"stale\"",
                "action=\"adopted\""
            ],
            Duration::from_secs(2)
        ),
        "{}",
        b.logs()
    );
    assert_eq!(adopted_total(&b).await, 1);
    assert!(
        b.log_lines(&["WARN", &sid, "action=\"forwarded\""])
            .is_empty(),
        "the forward that was refused is not logged as one: {}",
        b.logs()
    );
}

#[tokio::test]
async fn nodes_asked_for_the_same_orphans_at_once_end_with_exactly_one_owner_each_and_serve_all() {
    let redis = Redis::start();
    let mut a = node(&redis, "a", "");
    let b = node(&redis, "b", "");
    let c = node(&redis, "c", "");
    b.wait_registry_synced().await;
    c.wait_registry_synced().await;
    let mut orphans = Vec::new();
    for _ in 0..12 {
        orphans.push(a.session().await);
    }
    a.wait_registry_synced().await;
    a.kill9();
    let mut winners = Vec::new();
    for sid in &orphans {
        // The first requests for this orphan reach B and C at the same moment, twice each.
        let (x, y, z, w) = tokio::join!(
            served_by(&b, sid),
            served_by(&c, sid),
            served_by(&b, sid),
            served_by(&c, sid)
        );
        assert!(
            x == y && y == z && z == w,
            "one owner serves every request for {sid}: {x} {y} {z} {w}"
        );
        assert!(x == "b" || x == "c", "adopted by a live node: {x}");
        assert_eq!(record(&redis, sid)["node"], x.as_str(), "Redis agrees");
        winners.push(x);
    }
    let (on_b, on_c) = (adopted_total(&b).await, adopted_total(&c).await);
    println!("adopted: b {on_b}, c {on_c}; lost claims forwarded to the winner");
    assert_eq!(
        on_b + on_c,
        orphans.len() as u64,
        "each orphan adopted exactly once (b {on_b}, c {on_c}; winners {winners:?})"
    );
    assert_eq!(
        on_b,
        winners.iter().filter(|w| *w == "b").count() as u64,
        "b's count matches the sessions it serves"
    );
}

/// The owner went down, a peer adopted the session, then that peer went down too (a rolling
/// restart takes nodes one after the other), and both heartbeats are still in Redis. A request
/// reaching a third node is refused by the owner its id names, then by the adopter Redis names:
/// the third node continues the session instead of answering 404.
#[tokio::test]
async fn a_session_whose_owner_and_then_its_adopter_went_down_is_adopted_by_the_next_node_not_404()
{
    let redis = Redis::start();
    // Long heartbeats for a and b: their keys outlive their SIGKILLs for the whole test, so c
    // still lists both as live and learns that they are gone only from refused connections.
    let long_beat = |id: &str| {
        Server::start(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"{id}\"\n[redis]\nurl = \"{}\"\nheartbeat_interval = \"10s\"\nlookup_timeout = \"2s\"\n",
            redis.url()
        ))
    };
    let mut a = long_beat("a");
    let mut b = long_beat("b");
    a.wait_registry_synced().await;
    b.wait_registry_synced().await;
    let c = node(&redis, "c", "");
    c.wait_registry_synced().await;
    let sid = a.session().await;
    assert!(
        redis.wait_until(Duration::from_secs(5), |r| record(r, &sid)["node"] == "a"),
        "a's session reaches Redis: {}",
        record(&redis, &sid)
    );

    a.kill9();
    assert_eq!(served_by(&b, &sid).await, "b", "b adopts it from a");
    assert_eq!(record(&redis, &sid)["node"], "b");
    b.kill9();

    let r = c.call(&sid, 1, "node_info", json!({})).await;
    assert_eq!(r.status, 200, "no 404 for the client: {}", r.text());
    assert_eq!(r.json()["result"]["structuredContent"]["node"], "c");
    assert_eq!(record(&redis, &sid)["node"], "c", "c holds it now");
    assert_eq!(adopted_total(&c).await, 1);
}

#[tokio::test]
async fn with_adoption_off_an_orphan_gets_404_and_a_stale_log_line() {
    let redis = Redis::start();
    let off = "[cluster]\nadopt_orphans = false\n";
    let mut a = node(&redis, "a", off);
    let b = node(&redis, "b", off);
    b.wait_registry_synced().await;
    let sid = a.session().await;
    a.wait_registry_synced().await;
    a.kill9();
    let r = b
        .post(Some(&sid), &json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    r.assert_error(404, -32001);
    assert!(
        b.wait_log(
            &[
                "WARN",
                &sid,
                "owner_node=\"a\"",
                "class=\"stale\"",
                "action=\"404\""
            ],
            Duration::from_secs(2)
        ),
        "{}",
        b.logs()
    );
    assert_eq!(record(&redis, &sid)["node"], "a", "nobody took it");
    assert_eq!(adopted_total(&b).await, 0);
}

#[tokio::test]
async fn a_restarted_node_continues_its_previous_boots_sessions_and_old_event_ids_get_a_fresh_stream(
) {
    let redis = Redis::start();
    let mut first = node(&redis, "a", "[shutdown]\ngrace = \"100ms\"\n");
    let sid = first.session().await;
    first.wait_registry_synced().await;
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    let second = node(&redis, "a", "");
    second.wait_registry_synced().await;
    assert_eq!(served_by(&second, &sid).await, "a");

    // An event id from the previous process names no stream of this one: a fresh stream, primed
    // with an id of its own, never an error.
    let mut stream = get_stream(second.addr, &sid, Some("0-5")).await;
    assert_eq!(stream.status, 200, "{}", stream.pending_text());
    let primed = stream
        .next_event(Duration::from_secs(2))
        .await
        .expect("priming event");
    let id = primed.id.expect("priming id");
    assert!(!id.starts_with("0-"), "a new incarnation's stream: {id}");
    let r = second
        .call(&sid, 9, "notify", json!({"message":"hello"}))
        .await;
    assert_eq!(r.status, 200);
    let m = stream
        .next_message(Duration::from_secs(2))
        .await
        .expect("the fresh stream delivers");
    assert_eq!(m["params"]["data"], "hello", "{m}");
    assert!(second.wait_log(
        &["WARN", &sid, "class=\"stale\"", "action=\"adopted\""],
        Duration::from_secs(2)
    ));
}

/// Nodes `a` and `b`, both synced, and one session `a` holds.
async fn a_holding_one_session(redis: &Redis) -> (Server, Server, String) {
    let a = node(redis, "a", "");
    let b = node(redis, "b", "");
    b.wait_registry_synced().await;
    let sid = a.session().await;
    a.wait_registry_synced().await;
    (a, b, sid)
}

/// `a`, stopped while `b` adopted `sid`, resumes: it closes its copy and forwards to `b`'s.
async fn resumed_a_gives_the_session_to_b(redis: &Redis, a: &Server, b: &Server, sid: &str) {
    assert_eq!(served_by(b, sid).await, "b", "adopted while a was away");
    a.signal("CONT");
    assert!(
        a.wait_log(&["adopted by another node", sid], Duration::from_secs(10)),
        "{}",
        a.logs()
    );
    // A's copy is gone: a request reaching A is served by B's.
    assert_eq!(served_by(a, sid).await, "b");
    assert_eq!(record(redis, sid)["node"], "b");
}

#[tokio::test]
async fn a_node_whose_heartbeat_lapsed_closes_the_sessions_adopted_meanwhile_and_forwards_them() {
    let redis = Redis::start();
    let (a, b, sid) = a_holding_one_session(&redis).await;
    // A stops answering long enough for its heartbeat to expire and B's directory to drop it.
    a.signal("STOP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    resumed_a_gives_the_session_to_b(&redis, &a, &b, &sid).await;
}

#[tokio::test]
async fn a_stop_that_lands_while_a_heartbeat_is_in_flight_still_finds_the_sessions_adopted_meanwhile(
) {
    let redis = Redis::start();
    let (a, b, sid) = a_holding_one_session(&redis).await;
    // Redis pauses longer than a's beat period, so a's next heartbeat is sent and waits for its
    // answer; a stops there. Redis resumes and answers into a's socket — the beat landed, then
    // expires while a is stopped, and b adopts. On waking, a reads a successful answer: only the
    // next beat can tell it the key lapsed meanwhile.
    redis.signal("STOP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.signal("STOP");
    redis.signal("CONT");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    resumed_a_gives_the_session_to_b(&redis, &a, &b, &sid).await;
    assert!(a.wait_log(&["heartbeat had lapsed"], Duration::from_secs(1)));
}
