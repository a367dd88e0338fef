//! The drain on SIGTERM against requests on the wire: a large answer read slowly by its client
//! goes out whole while the node drains; one that cannot be finished within
//! `shutdown.request_grace` is the one thing the drain cuts, and it says so (log line and
//! `mcpd_http_truncated_responses_total{cause="drain"}`); a request whose body has not arrived by
//! the deadline is answered 503, whole.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The size of the `echo` message, well past what the kernel's socket buffers hold between the
/// server and a client with a small receive buffer, so the server is still writing at the stop.
const MESSAGE_BYTES: usize = 12 << 20;

/// How a slowly read answer ended.
struct SlowRead {
    /// The `Content-Length` the head announced.
    announced: usize,
    /// The body bytes that arrived before the body was complete or the connection closed.
    body: Vec<u8>,
}

/// Calls `echo` with a [`MESSAGE_BYTES`] message on a connection with a small receive buffer,
/// reads the answer's head, sends SIGTERM, then reads the body at about `bytes_per_sec`.
async fn echo_read_slowly_across_the_drain(s: &Server, bytes_per_sec: usize) -> SlowRead {
    let sid = s.session().await;
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"echo","arguments":{"message":"x".repeat(MESSAGE_BYTES)}}})
    .to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 << 10).expect("SO_RCVBUF");
    let mut conn = socket.connect(s.addr).await.expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\n\
         Content-Length: {}\r\n\r\n",
        call.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(call.as_bytes()).await.expect("body");
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let end = loop {
        let n = conn.read(&mut chunk).await.expect("the answer's head");
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&chunk[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let announced: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("a JSON answer with its length: {head}"));
    let mut body = got.split_off(end + 4);
    s.signal("TERM");
    let started = Instant::now();
    let step = 16 << 10;
    while body.len() < announced {
        let n = match conn.read(&mut chunk[..step]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        body.extend_from_slice(&chunk[..n]);
        // Paced: `bytes_per_sec` on average since the stop.
        let due = Duration::from_secs_f64(body.len() as f64 / bytes_per_sec as f64);
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
    }
    SlowRead { announced, body }
}

/// An answer still being written when the drain begins is written to its end — the node waits
/// for it within `shutdown.request_grace` — and its connection closes only after it.
#[tokio::test]
async fn a_large_answer_read_slowly_across_the_drain_arrives_whole() {
    let mut s = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 33554432\n[shutdown]\ngrace = \"50ms\"\n",
    );
    // About 2 s of reading after the stop.
    let r = echo_read_slowly_across_the_drain(&s, MESSAGE_BYTES / 2).await;
    assert_eq!(r.body.len(), r.announced, "the whole body arrived");
    let answer: serde_json::Value = serde_json::from_slice(&r.body).expect("a whole JSON answer");
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    assert_eq!(text.len(), "Echo: ".len() + MESSAGE_BYTES);
    assert_eq!(s.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(
        s.wait_log(
            &["connections drained", "connections=1", "cut=0"],
            Duration::from_secs(1)
        ),
        "{}",
        s.logs()
    );
}

/// An answer that cannot be finished within `shutdown.request_grace` (its client reads too slowly)
/// is cut when the process exits — the one case the drain cannot avoid — and the node says so:
/// a WARN line with the count, the same count as `cut` in the drain's line.
#[tokio::test]
async fn an_answer_still_being_written_when_the_drain_ends_is_counted_as_cut() {
    let mut s = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 33554432\n\
         [shutdown]\ngrace = \"50ms\"\nrequest_grace = \"200ms\"\n",
    );
    // Far slower than the 0.2 s + 1 s + 1 s the node waits.
    let r = echo_read_slowly_across_the_drain(&s, MESSAGE_BYTES / 8).await;
    assert!(
        r.body.len() < r.announced,
        "the answer was cut: {} of {} bytes",
        r.body.len(),
        r.announced
    );
    assert_eq!(s.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(
        s.wait_log(
            &["connections drained", "connections=1", "cut=1"],
            Duration::from_secs(1)
        ),
        "{}",
        s.logs()
    );
    assert!(
        s.logs()
            .contains("requests were still in flight when the drain ended"),
        "{}",
        s.logs()
    );
}

/// A request whose body is still arriving when the drain's deadline comes is answered there,
/// whole, with a 503 that says the node shut down, rather than dropped with its connection.
#[tokio::test]
async fn a_request_whose_body_is_still_arriving_at_the_deadline_gets_a_whole_503() {
    let mut s = Server::start("[shutdown]\ngrace = \"50ms\"\nrequest_grace = \"200ms\"\n");
    let sid = s.session().await;
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\n\
         Content-Length: 100\r\n\r\n{{\"jsonrpc\":"
    );
    conn.write_all(head.as_bytes())
        .await
        .expect("head and part of the body");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.signal("TERM");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got)).await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "the server closed the connection: {read:?}"
    );
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
    assert!(head.starts_with("HTTP/1.1 503"), "{text}");
    let length: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .expect("an answer with its length");
    assert_eq!(body.len(), length, "the whole body: {text}");
    let error: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(error["error"]["code"], -32000, "{error}");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        s.wait_log(
            &["connections drained", "answered_503=1", "cut=0"],
            Duration::from_secs(1)
        ),
        "{}",
        s.logs()
    );
}
