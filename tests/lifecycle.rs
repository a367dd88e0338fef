//! Session lifecycle and process lifecycle against the real binary: reaping, the session count
//! returning to zero, and the drain on SIGTERM.

mod common;

use std::time::Duration;

use common::{get_stream, send, Server};
use serde_json::json;

async fn wait_sessions(s: &Server, n: u64, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if s.health().await.1["sessions"] == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn sessions_never_initialized_are_reaped_after_init_timeout() {
    let s = Server::start("[session]\ninit_timeout = \"400ms\"\n");
    let r = s.post(None, &common::initialize("2025-11-25")).await;
    let sid = r.header("mcp-session-id").unwrap().to_owned();
    let kept = s.session().await; // initialized: survives
    assert!(
        wait_sessions(&s, 1, Duration::from_secs(5)).await,
        "uninitialized session reaped"
    );
    s.post(Some(&sid), &json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await
        .assert_error(404, -32001);
    s.assert_alive(&kept).await;
    assert!(
        s.logs().contains("reason=\"init-timeout\"") || s.logs().contains("reason=init-timeout"),
        "{}",
        s.logs()
    );
}

#[tokio::test]
async fn idle_sessions_are_reaped_but_an_open_stream_keeps_one_alive() {
    let s = Server::start("[session]\nidle_timeout = \"500ms\"\n");
    let idle = s.session().await;
    let streaming = s.session().await;
    let mut get = get_stream(s.addr, &streaming, None).await;
    assert!(
        wait_sessions(&s, 1, Duration::from_secs(5)).await,
        "idle session reaped"
    );
    s.post(
        Some(&idle),
        &json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
    )
    .await
    .assert_error(404, -32001);
    tokio::time::sleep(Duration::from_millis(800)).await;
    s.assert_alive(&streaming).await;
    get.read_for(Duration::from_millis(10)).await;
    drop(get);
    assert!(
        wait_sessions(&s, 0, Duration::from_secs(5)).await,
        "reaped once its stream closed"
    );
}

#[tokio::test]
async fn a_long_running_call_keeps_its_session_alive() {
    let s = Server::start("[session]\nidle_timeout = \"300ms\"\n");
    let sid = s.session().await;
    let r = s
        .call(
            &sid,
            1,
            "long_task",
            json!({"steps": 8, "interval_ms": 100}),
        )
        .await;
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "completed 8 steps"
    );
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn nothing_leaks_the_session_count_returns_to_zero() {
    let s = Server::start("");
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(s.session().await);
    }
    assert_eq!(s.health().await.1["sessions"], 200);
    for sid in &ids {
        let mut get = get_stream(s.addr, sid, None).await;
        s.call(sid, 1, "notify", json!({"message": "m"})).await;
        get.next_message(Duration::from_secs(2))
            .await
            .expect("delivered");
        assert_eq!(
            send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", sid)], "")
                .await
                .status,
            200
        );
        assert!(get.wait_end(Duration::from_secs(2)).await);
    }
    assert_eq!(s.health().await.1["sessions"], 0);
}

#[tokio::test]
async fn sigterm_drains_healthz_503_then_streams_get_retry_and_end_then_exit_0() {
    let mut s = Server::start("[shutdown]\ngrace = \"700ms\"\n");
    let sid = s.session().await;
    let mut get = get_stream(s.addr, &sid, None).await;
    get.read_for(Duration::from_millis(50)).await;
    s.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, h) = s.health().await;
    assert_eq!(status, 503, "healthz turns 503 first");
    assert_eq!(h["status"], "draining");
    s.post(None, &common::initialize("2025-11-25"))
        .await
        .assert_error(503, -32000);
    s.assert_alive(&sid).await; // existing sessions are still served during the grace
    let rest = get.read_for(Duration::from_secs(5)).await;
    assert!(get.ended, "stream ended");
    let retry: u64 = rest
        .lines()
        .find_map(|l| l.strip_prefix("retry: "))
        .expect("a retry hint before the end")
        .parse()
        .unwrap();
    assert!(
        (3000..=6000).contains(&retry),
        "jittered around sse_retry: {retry}"
    );
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Starts a `long_task` of one step of `interval_ms` in a new session of `s`, sends SIGTERM while
/// it runs, and returns its answer.
async fn long_task_at_drain(s: &mut Server, id: i64, interval_ms: u64) -> common::Resp {
    let sid = s.session().await;
    let call = json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
        "params":{"name":"long_task","arguments":{"steps":1,"interval_ms":interval_ms}}});
    let addr = s.addr;
    let running = tokio::spawn(async move {
        let h = common::post_headers(&sid);
        send(addr, "POST", "/mcp", &h, call.to_string()).await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.signal("TERM");
    running.await.expect("request task")
}

/// The drain's end closes every session; a request already inside one is answered first (for
/// up to 250 ms), not told the session is gone — with adoption a peer continues the session, and
/// a 404 would make its client start over.
#[tokio::test]
async fn a_request_inside_a_session_when_the_drain_closes_it_gets_its_answer_not_404() {
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\n");
    let r = long_task_at_drain(&mut s, 7, 150).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "completed 1 steps"
    );
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        s.logs().contains("reason=\"shutdown\""),
        "closed by the drain: {}",
        s.logs()
    );
}

/// A request still running when the drain's wait for it ends loses its session: it gets the 404
/// of a session that is gone, and the node logs why, so the journal accounts for every 404.
#[tokio::test]
async fn a_request_still_running_when_the_drain_closes_its_session_gets_404_and_a_log_line() {
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\n");
    // Far longer than the drain waits for a request inside a session (250 ms).
    let r = long_task_at_drain(&mut s, 8, 3000).await;
    r.assert_error(404, -32001);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        s.logs()
            .contains("the session closed while its request ran; answering 404"),
        "the 404 is logged: {}",
        s.logs()
    );
}

/// An idle keep-alive connection does not hold the stop: the server closes it as soon as the
/// drain ends, not at the 5 s deadline that only a connection still busy with a request waits for.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_when_the_drain_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\n");
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    s.signal("TERM");
    // EOF well before the 5 s drain deadline (the grace is 50 ms).
    let closed = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the idle connection was closed by the server: {closed:?}"
    );
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mut s = Server::start("[shutdown]\ngrace = \"30s\"\n");
    s.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.signal("INT");
    assert_eq!(s.wait_exit(Duration::from_secs(3)), Some(0));
}
