//! Misroute rescue with three real nodes sharing a real Redis: a session opened on node A is used
//! through B and C for every kind of message, and only bytes travel one extra hop.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{get_stream, open, post_headers, send, Server};
use serde_json::json;

fn node(redis: &Redis, id: &str, extra: &str) -> Server {
    Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"{id}\"\n[redis]\nurl = \"{}\"\nheartbeat_interval = \"200ms\"\n[catalog]\nconformance = true\n{extra}",
        redis.url()
    ))
}

/// Waits until `via` serves `sid` (its peer directory knows the owner).
async fn wait_forwarding(via: &Server, sid: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if via
            .post(Some(sid), &json!({"jsonrpc":"2.0","id":0,"method":"ping"}))
            .await
            .status
            == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never forwarded: {}", via.addr, via.logs());
}

#[tokio::test]
async fn a_session_on_a_is_served_through_b_and_c_for_every_kind_of_message() {
    let redis = Redis::start();
    let a = node(&redis, "a", "");
    let b = node(&redis, "b", "");
    let c = node(&redis, "c", "");
    let sid = a.session().await;
    wait_forwarding(&b, &sid).await;
    wait_forwarding(&c, &sid).await;

    // JSON replies: the state stays on A.
    let r = c.call(&sid, 1, "node_info", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["structuredContent"]["node"],
        "a",
        "served by the owner"
    );
    b.assert_alive(&sid).await;

    // An SSE reply with progress, relayed event by event.
    let body = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"long_task","arguments":{"steps":3,"interval_ms":20},"_meta":{"progressToken":"p"}}});
    let r = b.post(Some(&sid), &body).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let messages = r.messages();
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count(),
        3
    );
    assert_eq!(
        messages.last().unwrap()["result"]["content"][0]["text"],
        "completed 3 steps"
    );

    // A server→client request asked through B and answered through C.
    let body = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"hi"}}});
    let mut post = open(
        b.addr,
        "POST",
        "/mcp",
        &post_headers(&sid),
        body.to_string(),
    )
    .await;
    let req = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("sampling request via B");
    assert_eq!(req["method"], "sampling/createMessage");
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","content":{"type":"text","text":"hello back"},"model":"m"}});
    assert_eq!(
        c.post(Some(&sid), &answer).await.status,
        202,
        "answer accepted via C"
    );
    let result = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("result via B");
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hello back"),
        "{result}"
    );

    // The standalone GET stream opened through C.
    let mut get = get_stream(c.addr, &sid, None).await;
    assert_eq!(get.status, 200);
    b.call(&sid, 4, "notify", json!({"message": "across nodes"}))
        .await;
    let m = get
        .next_message(Duration::from_secs(5))
        .await
        .expect("notification via C");
    assert_eq!(m["params"]["data"], "across nodes");

    // DELETE through C ends the session on A.
    assert_eq!(
        send(c.addr, "DELETE", "/mcp", &[("mcp-session-id", &sid)], "")
            .await
            .status,
        200
    );
    a.post(Some(&sid), &json!({"jsonrpc":"2.0","id":5,"method":"ping"}))
        .await
        .assert_error(404, -32001);
    assert!(redis.wait_until(Duration::from_secs(5), |r| r
        .keys("mcp:session:*")
        .is_empty()));
    assert!(
        b.wait_log(
            &[
                "WARN",
                &sid,
                "class=\"misroute\"",
                "action=\"forwarded\"",
                "owner_node=\"a\""
            ],
            Duration::from_secs(2)
        ),
        "{}",
        b.logs()
    );
    let metrics = send(b.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        metrics.contains("mcpd_forwarded_requests_total{to=\"a\",outcome=\"relayed\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_adoption_a_dead_owner_answers_404_quickly() {
    let redis = Redis::start();
    let no_adoption = "[cluster]\nadopt_orphans = false\n";
    let mut a = node(&redis, "a", no_adoption);
    let b = node(&redis, "b", no_adoption);
    let sid = a.session().await;
    wait_forwarding(&b, &sid).await;
    a.kill9();
    let started = Instant::now();
    let r = b
        .post(Some(&sid), &json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    r.assert_error(404, -32001);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no long stall: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_request_is_forwarded_at_most_twice_and_never_back_along_its_path() {
    let redis = Redis::start();
    let a = node(&redis, "a", "");
    let b = node(&redis, "b", "");
    let sid = a.session().await;
    wait_forwarding(&b, &sid).await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let via_b = |path: &'static str| {
        let mut h = post_headers(&sid);
        h.push(("mcpd-forwarded-by", path));
        let (addr, body) = (b.addr, ping.clone());
        async move { send(addr, "POST", "/mcp", &h, body).await }
    };
    // One hop so far (a node that found the session moved): B sends it on to the owner.
    let r = via_b("c").await;
    assert_eq!(r.status, 200, "one more hop is allowed: {}", r.text());
    // Two hops already: B answers itself.
    via_b("c,d").await.assert_error(404, -32001);
    // The owner is on the path: never sent back there.
    via_b("a").await.assert_error(404, -32001);
    assert!(
        b.wait_log(&["WARN", &sid, "action=\"404\""], Duration::from_secs(2)),
        "{}",
        b.logs()
    );
}

#[tokio::test]
async fn with_a_peer_secret_only_nodes_that_know_it_may_forward() {
    let redis = Redis::start();
    let secret = "[cluster]\npeer_secret = \"s3cret\"\n";
    let a = node(&redis, "a", secret);
    let b = node(&redis, "b", secret);
    let sid = a.session().await;
    wait_forwarding(&b, &sid).await; // B carries the secret: served
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    for secret_header in [None, Some("wrong")] {
        let mut h = post_headers(&sid);
        h.push(("mcpd-forwarded-by", "mallory"));
        if let Some(s) = secret_header {
            h.push(("mcpd-peer-secret", s));
        }
        send(a.addr, "POST", "/mcp", &h, ping.clone())
            .await
            .assert_error(403, -32600);
    }
}

#[tokio::test]
async fn a_draining_node_ends_the_streams_it_relays_and_exits_promptly() {
    let redis = Redis::start();
    let a = node(&redis, "a", "");
    let mut b = node(&redis, "b", "[shutdown]\ngrace = \"200ms\"\n");
    let sid = a.session().await;
    wait_forwarding(&b, &sid).await;
    let mut relayed = get_stream(b.addr, &sid, None).await;
    assert_eq!(relayed.status, 200);
    relayed.read_for(Duration::from_millis(100)).await;
    let started = Instant::now();
    b.signal("TERM");
    assert!(
        relayed.wait_end(Duration::from_secs(3)).await,
        "the relayed stream ends with the drain"
    );
    assert_eq!(b.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not held until the drain deadline: {:?}",
        started.elapsed()
    );
    a.assert_alive(&sid).await; // the session itself lives on at its owner
}

/// Stands in for an owner that is closing its idle keep-alive connections as it stops: each
/// connection answers its first request and is closed, unanswered, when the next one arrives —
/// the race a draining node's connections lose to requests already on their way. Counts the
/// requests answered.
async fn closing_owner(listener: tokio::net::TcpListener, answered: Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // The first request, whole: headers, then Content-Length bytes of body.
            let whole = loop {
                let Ok(n) = conn.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break true;
                    }
                }
            };
            if !whole {
                return;
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
                BODY.len()
            );
            if conn.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
            answered.fetch_add(1, Ordering::SeqCst);
            // The next request finds the connection closing.
            let _ = conn.read(&mut chunk).await;
        });
    }
}

/// Kills node a (once its session is in Redis) and points its heartbeat, same boot, at a new
/// listener: a stand-in for the owner, which the test then plays.
async fn stand_in_for(redis: &Redis, a: &mut Server) -> tokio::net::TcpListener {
    a.wait_registry_synced().await;
    let beat = redis.cmd(&["GET", "mcp:node:a"]);
    let mut beat: serde_json::Value =
        serde_json::from_str(beat.str().expect("a's heartbeat")).expect("JSON heartbeat");
    a.kill9();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    beat["url"] = json!(format!("http://{}", listener.local_addr().unwrap()));
    redis.cmd(&["SET", "mcp:node:a", &beat.to_string(), "PX", "60000"]);
    listener
}

/// Nodes a and b, a session made on a, and a stand-in owner in a's place ([`stand_in_for`])
/// played by `play`, once b's directory has its address. Fields drop in the order written:
/// the owner's task, then the nodes, then Redis.
struct StandIn {
    owner: tokio::task::JoinHandle<()>,
    sid: String,
    b: Server,
    _a: Server,
    _redis: Redis,
}

impl StandIn {
    async fn start<F, Fut>(play: F) -> StandIn
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        StandIn::start_with("", play).await
    }

    /// The same, with `b_extra` added to b's config.
    async fn start_with<F, Fut>(b_extra: &str, play: F) -> StandIn
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let redis = Redis::start();
        let mut a = node(&redis, "a", "");
        let b = node(&redis, "b", b_extra);
        let sid = a.session().await;
        let listener = stand_in_for(&redis, &mut a).await;
        let owner = tokio::spawn(play(listener));
        // B's directory takes the new address at its next heartbeats.
        tokio::time::sleep(Duration::from_millis(700)).await;
        StandIn {
            owner,
            sid,
            b,
            _a: a,
            _redis: redis,
        }
    }
}

#[tokio::test]
async fn a_request_that_meets_the_owners_closing_pooled_connections_is_retried_on_a_new_one() {
    let answered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    let t = StandIn::start(|l| closing_owner(l, count)).await;
    let (b, sid) = (&t.b, t.sid.as_str());
    let ping = || {
        let (addr, h) = (b.addr, post_headers(sid));
        async move {
            send(
                addr,
                "POST",
                "/mcp",
                &h,
                json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(),
            )
            .await
        }
    };
    // Several at once leave B holding several idle connections to the owner...
    let together: Vec<_> = futures_util::future::join_all((0..4).map(|_| ping())).await;
    for r in &together {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // ...each of which the owner closes when the next request arrives on it.
    for _ in 0..3 {
        let r = ping().await;
        assert_eq!(r.status, 200, "{}\n{}", r.text(), b.logs());
        assert_eq!(r.json()["result"], json!({}), "the owner's answer, relayed");
    }
    assert!(answered.load(Ordering::SeqCst) >= 7);
    t.owner.abort();
}

/// The end of an owner's drain: its listener closes while connections wait in its queue, so a
/// new connection is accepted by the kernel and then reset, with the request never read. That
/// owner is gone (its sessions released): the request is served here by adopting the session,
/// not answered 404.
#[tokio::test]
async fn a_new_connection_the_owner_closes_unanswered_counts_as_the_owner_gone() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    // The stand-in closes every connection unread.
    let t = StandIn::start(|listener| async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    })
    .await;
    let (b, sid) = (&t.b, t.sid.as_str());
    let r = send(
        b.addr,
        "POST",
        "/mcp",
        &post_headers(sid),
        json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), b.logs());
    assert_eq!(r.json()["result"], json!({}));
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "B tried the owner first"
    );
    assert!(
        b.wait_log(&["session adopted", sid], Duration::from_secs(2)),
        "{}",
        b.logs()
    );
    t.owner.abort();
}

/// A stand-in owner that answers every connection with `partial` (a response's head and part of
/// its body), then breaks the connection off without the rest.
async fn breaking_owner(listener: tokio::net::TcpListener, partial: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((mut conn, _)) = listener.accept().await {
        let mut buf = [0u8; 4096];
        // Enough of the request to answer it (its head and small body arrive together).
        if !matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {
            continue;
        }
        let _ = conn.write_all(partial.as_bytes()).await;
        let _ = conn.flush().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(conn);
    }
}

/// The owner sends a JSON answer's head and part of its body, then its connection breaks. The
/// relaying node reads a relayed answer whole before it sends anything, so its client gets a
/// whole 502 with a JSON-RPC error that says the request may have run, never a cut body (which
/// the Python SDK cannot survive) nor a short one ended as if it were whole.
#[tokio::test]
async fn an_answer_the_owner_breaks_off_is_answered_with_a_whole_502_not_cut() {
    const PART: &str = r#"{"jsonrpc":"2.0","id":1,"res"#;
    // 100 bytes promised, fewer sent.
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    let partial = format!("{head}{PART}");
    let t = StandIn::start(|l| breaking_owner(l, partial)).await;
    let (b, sid) = (&t.b, t.sid.as_str());
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let r = send(b.addr, "POST", "/mcp", &post_headers(sid), ping).await;
    r.assert_error(502, -32603);
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        message.contains("node a") && message.contains("may have run"),
        "{message}"
    );
    r.assert_sent_with_length();
    assert!(
        b.wait_log(
            &["the owner's answer broke off; answering 502"],
            Duration::from_secs(2)
        ),
        "{}",
        b.logs()
    );
    // The node is fine: the same session is served on (here: adopted, the owner is a stand-in).
    t.owner.abort();
}

/// A JSON answer relayed from the owner reaches the client with its length (Content-Length), as
/// the owner sent it, not re-chunked by the relaying node.
#[tokio::test]
async fn a_relayed_json_answer_is_sent_with_its_length_not_chunked() {
    let redis = Redis::start();
    let a = node(&redis, "a", "");
    let b = node(&redis, "b", "");
    let sid = a.session().await;
    a.wait_registry_synced().await;
    wait_forwarding(&b, &sid).await;
    let r = b.call(&sid, 5, "echo", json!({"message": "whole"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["content"][0]["text"], "Echo: whole");
    r.assert_sent_with_length();
    // A relayed answer without a body (202 to a notification) is empty here too, and neither
    // counts as an answer cut short.
    let note = json!({"jsonrpc":"2.0","method":"notifications/progress",
        "params":{"progressToken":"t","progress":1}});
    let r = b.post(Some(&sid), &note).await;
    assert_eq!((r.status, r.body.len()), (202, 0), "{}", r.text());
    let metrics = send(b.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        metrics.contains("mcpd_http_truncated_responses_total{cause=\"connection\"} 0\n"),
        "{metrics}"
    );
}

/// A call forwarded to its owner while the owner drains: the owner finishes it (within its
/// `shutdown.request_grace`) before it closes the connection, and the relaying node passes the
/// answer on whole, with its length.
#[tokio::test]
async fn a_forwarded_call_whose_owner_drains_gets_its_whole_answer_through_the_relay() {
    let redis = Redis::start();
    let mut a = node(&redis, "a", "[shutdown]\ngrace = \"50ms\"\n");
    let b = node(&redis, "b", "");
    let sid = a.session().await;
    a.wait_registry_synced().await;
    wait_forwarding(&b, &sid).await;
    let (addr, owned) = (b.addr, sid.clone());
    let call = tokio::spawn(async move {
        let body = json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
            "params":{"name":"long_task","arguments":{"steps":1,"interval_ms":1500}}});
        send(
            addr,
            "POST",
            "/mcp",
            &post_headers(&owned),
            body.to_string(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.signal("TERM");
    let r = call.await.expect("the call's task");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), b.logs());
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "completed 1 steps"
    );
    r.assert_sent_with_length();
    assert_eq!(a.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        a.wait_log(&["connections drained", "cut=0"], Duration::from_secs(1)),
        "{}",
        a.logs()
    );
}

/// A stand-in owner that reads each request and never answers it.
async fn silent_owner(listener: tokio::net::TcpListener) {
    use tokio::io::AsyncReadExt;
    let mut held = Vec::new();
    while let Ok((mut conn, _)) = listener.accept().await {
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).await;
        held.push(conn);
    }
}

/// A request relayed through a node that drains, to an owner that does not answer: when the
/// relaying node's `shutdown.request_grace` is over it answers the request itself, whole, with
/// 503 and a JSON-RPC error, instead of leaving it cut when the process exits; its drain log
/// line counts it.
#[tokio::test]
async fn a_request_without_an_answer_at_the_drain_deadline_gets_a_whole_503() {
    let mut t = StandIn::start_with(
        "[shutdown]\ngrace = \"50ms\"\nrequest_grace = \"300ms\"\n",
        silent_owner,
    )
    .await;
    let (addr, sid) = (t.b.addr, t.sid.clone());
    let call = tokio::spawn(async move {
        let ping = json!({"jsonrpc":"2.0","id":4,"method":"ping"}).to_string();
        send(addr, "POST", "/mcp", &post_headers(&sid), ping).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.b.signal("TERM");
    let r = call.await.expect("the call's task");
    r.assert_error(503, -32000);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("may or may not have run")),
        "{}",
        r.text()
    );
    assert_eq!(t.b.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        t.b.wait_log(
            &["connections drained", "answered_503=1", "cut=0"],
            Duration::from_secs(1)
        ),
        "{}",
        t.b.logs()
    );
    t.owner.abort();
}

/// An SSE stream that breaks at the owner ends cleanly at the relaying node, as it always has:
/// its client resumes with Last-Event-ID through any node, which SDKs do when a stream ends but
/// not all when a connection breaks.
#[tokio::test]
async fn a_stream_the_owner_breaks_off_ends_cleanly_for_the_client() {
    const EVENT: &str = "id: 1-0\ndata: {}\n\n";
    // One chunk of a chunked SSE body, without the last chunk.
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    let chunk = format!("{:x}\r\n{EVENT}\r\n", EVENT.len());
    let partial = format!("{head}{chunk}");
    let t = StandIn::start(|l| breaking_owner(l, partial)).await;
    let (b, sid) = (&t.b, t.sid.as_str());
    let mut r = get_stream(b.addr, sid, None).await;
    assert_eq!(r.status, 200);
    let body = r.read_for(Duration::from_secs(5)).await;
    assert!(r.ended, "the stream ended: {body:?}");
    assert!(!r.broken, "cleanly: {body:?}\n{}", b.logs());
    assert_eq!(body, EVENT, "the owner's event got through");
    t.owner.abort();
}
