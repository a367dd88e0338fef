//! Session lifecycle and process lifecycle against the real binary: reaping, the session count
//! returning to zero, and the drain on SIGTERM.

mod common;

use std::time::Duration;

use common::{get_stream, open, send, Server};
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

/// A call slower than the old 250 ms wait, running when the drain closes the sessions, finishes
/// within `shutdown.request_grace` and gets its own result, sent whole with its length.
#[tokio::test]
async fn a_slow_call_running_at_the_drain_is_answered_whole_with_its_result() {
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\n");
    let r = long_task_at_drain(&mut s, 8, 1500).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "completed 1 steps"
    );
    r.assert_sent_with_length();
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        s.wait_log(
            &[
                "the requests running in them were answered",
                "running=1",
                "finished=1",
                "stopped=0"
            ],
            Duration::from_secs(1)
        ),
        "{}",
        s.logs()
    );
}

/// A call still running when `shutdown.request_grace` ends is stopped, and its POST is answered
/// whole with an error result that names the node and says the session goes on: never cut, never
/// the 404 of a session that is gone (a peer continues it).
#[tokio::test]
async fn a_call_running_past_the_request_grace_is_answered_whole_with_an_error_not_404() {
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\nrequest_grace = \"300ms\"\n");
    let r = long_task_at_drain(&mut s, 8, 5000).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let result = &r.json()["result"];
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("shut down") && text.contains("continues on another node"),
        "{text}"
    );
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(
        s.wait_log(
            &["running=1", "stopped=1", "unanswered=0"],
            Duration::from_secs(1)
        ),
        "{}",
        s.logs()
    );
}

/// Starts a `long_task` of `steps` × `interval_ms` with a progress token in a new session of
/// `s` (so its POST answers with an SSE stream), waits for its first progress event, and sends
/// SIGTERM. Returns the stream.
async fn streaming_task_at_drain(s: &mut Server, steps: u64, interval_ms: u64) -> common::Stream {
    let sid = s.session().await;
    let call = json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"long_task",
        "arguments":{"steps":steps,"interval_ms":interval_ms},"_meta":{"progressToken":"p"}}});
    let mut r = open(
        s.addr,
        "POST",
        "/mcp",
        &common::post_headers(&sid),
        call.to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    let first = r
        .next_message(Duration::from_secs(5))
        .await
        .expect("progress");
    assert_eq!(first["method"], "notifications/progress", "{first}");
    s.signal("TERM");
    r
}

/// The messages left on `r` until its end, which must come whole (not broken) within 10 s.
async fn rest_of(r: &mut common::Stream) -> Vec<serde_json::Value> {
    let mut messages = Vec::new();
    while let Some(m) = r.next_message(Duration::from_secs(10)).await {
        messages.push(m);
    }
    assert!(
        r.ended && !r.broken,
        "ended whole: ended={} broken={}",
        r.ended,
        r.broken
    );
    messages
}

/// A POST whose answer is an SSE stream (the call sends progress) is not cut by the drain the way
/// the GET streams are: its stream carries the call's result, then ends cleanly.
#[tokio::test]
async fn a_streaming_call_running_at_the_drain_gets_its_result_on_its_own_stream() {
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\n");
    let mut r = streaming_task_at_drain(&mut s, 4, 300).await;
    let messages = rest_of(&mut r).await;
    let last = messages.last().expect("messages after the SIGTERM");
    assert_eq!(last["id"], 9, "{messages:?}");
    assert_eq!(last["result"]["content"][0]["text"], "completed 4 steps");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A streaming call still running when `shutdown.request_grace` ends gets an error result on its
/// stream, which then ends cleanly: the client has its answer, not a stream to resume forever.
#[tokio::test]
async fn a_streaming_call_past_the_request_grace_ends_its_stream_with_an_error_result() {
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\nrequest_grace = \"300ms\"\n");
    let mut r = streaming_task_at_drain(&mut s, 50, 200).await;
    let messages = rest_of(&mut r).await;
    let last = messages.last().expect("messages after the SIGTERM");
    assert_eq!(last["id"], 9, "{messages:?}");
    assert_eq!(last["result"]["isError"], true, "{last}");
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(0));
}

/// An idle keep-alive connection does not hold the stop: the server closes it as soon as the
/// drain ends, not at the deadline that only a connection still busy with a request waits for.
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
