//! The Streamable HTTP status codes and headers, against the real binary: every rule answers
//! with its status (and a JSON-RPC error body where the spec allows one), and no bad input
//! disturbs another session.

mod common;

use common::{send, Server, POST_HEADERS};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn initialize_returns_a_session_id_and_echoes_each_supported_version() {
    let s = Server::start("");
    for v in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let r = s.post(None, &common::initialize(v)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let sid = r.header("mcp-session-id").expect("session id");
        assert_eq!(sid.len(), 45, "a UUIDv4 and the owner tag");
        assert!(
            sid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII"
        );
        let body = r.json();
        assert_eq!(body["id"], 0);
        assert_eq!(body["result"]["protocolVersion"], v);
        assert_eq!(body["result"]["serverInfo"]["name"], "mcpd");
        for cap in ["tools", "resources", "prompts", "logging", "completions"] {
            assert!(body["result"]["capabilities"][cap].is_object(), "{cap}");
        }
    }
}

#[tokio::test]
async fn an_unsupported_requested_version_gets_the_latest() {
    let s = Server::start("");
    for v in ["2024-11-05", "2099-01-01", "2026-07-28"] {
        let r = s.post(None, &common::initialize(v)).await;
        assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25", "{v}");
    }
}

#[tokio::test]
async fn session_ids_are_unique() {
    let s = Server::start("");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        assert!(seen.insert(s.session().await));
    }
}

#[tokio::test]
async fn notifications_and_responses_get_202_without_a_body() {
    let s = Server::start("");
    let sid = s.session().await;
    for msg in [
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed"}),
        json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77}}),
        json!({"jsonrpc":"2.0","id":12345,"result":{}}),
        json!({"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"no"}}),
    ] {
        let r = s.post(Some(&sid), &msg).await;
        assert_eq!(r.status, 202, "{msg}");
        assert!(r.body.is_empty());
    }
}

#[tokio::test]
async fn request_without_session_id_gets_400_with_jsonrpc_body() {
    let s = Server::start("");
    let r = s
        .post(None, &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    r.assert_error(400, -32600);
    assert!(r.json()["id"].is_null());
    // mcp 2.x clients probe with server/discover first and fall back on any 4xx.
    let r = s
        .post(
            None,
            &json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn unknown_session_gets_404_with_jsonrpc_body() {
    let s = Server::start("");
    let live = s.session().await;
    let unknown = uuid_like();
    for sid in [
        unknown.as_str(),
        "nope",
        "../../etc/passwd",
        "00000000-0000-0000-0000-000000000000",
        "",
    ] {
        let r = s
            .post(Some(sid), &json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
            .await;
        r.assert_error(404, -32001);
        let get = send(
            s.addr,
            "GET",
            "/mcp",
            &[("accept", "text/event-stream"), ("mcp-session-id", sid)],
            "",
        )
        .await;
        assert_eq!(get.status, 404);
        let del = send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", sid)], "").await;
        assert_eq!(del.status, 404);
    }
    s.assert_alive(&live).await;
}

#[tokio::test]
async fn delete_ends_the_session_and_later_requests_get_404() {
    let s = Server::start("");
    let sid = s.session().await;
    let other = s.session().await;
    let r = send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", &sid)], "").await;
    assert_eq!(r.status, 200);
    s.post(Some(&sid), &json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await
        .assert_error(404, -32001);
    let r = send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", &sid)], "").await;
    assert_eq!(r.status, 404);
    s.assert_alive(&other).await;
    assert_eq!(s.health().await.1["sessions"], 1);
}

#[tokio::test]
async fn bad_origin_gets_403_and_loopback_or_allowed_origins_pass() {
    let s = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\nallowed_origins = [\"https://app.example.com\"]\n",
    );
    let sid = s.session().await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    for (origin, status) in [
        ("http://evil.example.com", 403),
        ("null", 403),
        ("http://localhost.evil.example.com", 403),
        ("https://app.example.com.evil.example.com", 403),
        ("http://localhost:6274", 200),
        ("http://127.0.0.1:1234", 200),
        ("https://app.example.com", 200),
    ] {
        let mut h = common::post_headers(&sid);
        h.push(("origin", origin));
        let r = send(s.addr, "POST", "/mcp", &h, ping.clone()).await;
        assert_eq!(r.status, status, "{origin}: {}", r.text());
        if status == 403 {
            r.assert_error(403, -32600);
        }
    }
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn dns_rebinding_host_gets_403_on_a_loopback_listener() {
    let s = Server::start("");
    let mut h = POST_HEADERS.to_vec();
    h.push(("host", "evil.example.com"));
    let r = send(
        s.addr,
        "POST",
        "/mcp",
        &h,
        common::initialize("2025-11-25").to_string(),
    )
    .await;
    r.assert_error(403, -32600);
    let own = s.addr.to_string();
    let mut h = POST_HEADERS.to_vec();
    h.push(("host", &own));
    h.push(("origin", "http://localhost"));
    let r = send(
        s.addr,
        "POST",
        "/mcp",
        &h,
        common::initialize("2025-11-25").to_string(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s.health().await.1["sessions"],
        1,
        "the refused initialize created nothing"
    );
}

#[tokio::test]
async fn header_values_that_are_not_visible_ascii_get_400_and_403_for_host() {
    let s = Server::start("");
    let init = || common::initialize("2025-11-25").to_string();
    let h = [
        ("content-type", "application/json"),
        (
            "accept",
            "application/json, text/event-stream, text/caf\u{e9}",
        ),
    ];
    let r = send(s.addr, "POST", "/mcp", &h, init()).await;
    r.assert_error(400, -32600);
    assert!(r.text().contains("accept header"), "{}", r.text());
    let mut h = POST_HEADERS.to_vec();
    h.push(("host", "caf\u{e9}.example"));
    let r = send(s.addr, "POST", "/mcp", &h, init()).await;
    r.assert_error(403, -32600);
    assert!(r.text().contains("host header"), "{}", r.text());
    assert_eq!(s.health().await.1["sessions"], 0, "nothing was created");
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let s = Server::start("");
    for m in ["PUT", "PATCH", "OPTIONS", "HEAD"] {
        let r = send(s.addr, m, "/mcp", &[], "").await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, POST, DELETE"), "{m}");
    }
}

#[tokio::test]
async fn wrong_accept_gets_406_and_wrong_content_type_gets_415() {
    let s = Server::start("");
    let sid = s.session().await;
    let body = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    for accept in ["application/json", "text/event-stream", "text/html"] {
        let h = [
            ("content-type", "application/json"),
            ("accept", accept),
            ("mcp-session-id", &sid),
        ];
        send(s.addr, "POST", "/mcp", &h, body.clone())
            .await
            .assert_error(406, -32600);
    }
    for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let h = [
            ("content-type", ct),
            ("accept", "application/json, text/event-stream"),
            ("mcp-session-id", &sid),
        ];
        send(s.addr, "POST", "/mcp", &h, body.clone())
            .await
            .assert_error(415, -32600);
    }
    let r = send(
        s.addr,
        "GET",
        "/mcp",
        &[("accept", "application/json"), ("mcp-session-id", &sid)],
        "",
    )
    .await;
    r.assert_error(406, -32600);
    // Accept lists in either order, with parameters, and wildcards are fine.
    for accept in [
        "text/event-stream, application/json",
        "application/json;q=0.9, text/event-stream;q=1",
        "*/*",
    ] {
        let h = [
            ("content-type", "application/json; charset=utf-8"),
            ("accept", accept),
            ("mcp-session-id", &sid),
        ];
        assert_eq!(
            send(s.addr, "POST", "/mcp", &h, body.clone()).await.status,
            200,
            "{accept}"
        );
    }
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_nothing_else_is_lost() {
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 1024\n");
    let sid = s.session().await;
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x".repeat(4096)}}});
    s.post(Some(&sid), &big).await.assert_error(413, -32600);
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn garbage_gets_400_parse_error() {
    let s = Server::start("");
    let sid = s.session().await;
    for garbage in [
        &b"{"[..],
        b"\x00\x01\x02\xff",
        b"",
        b"not json",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,",
    ] {
        let h = common::post_headers(&sid);
        let r = send(s.addr, "POST", "/mcp", &h, garbage.to_vec()).await;
        r.assert_error(400, -32700);
    }
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn wrong_jsonrpc_shapes_get_400_invalid_request() {
    let s = Server::start("");
    let sid = s.session().await;
    for shape in [
        json!([]),
        json!(42),
        json!("ping"),
        json!({"id":1,"method":"ping"}),
        json!({"jsonrpc":"1.0","id":1,"method":"ping"}),
        json!({"jsonrpc":"2.0","id":null,"method":"ping"}),
        json!({"jsonrpc":"2.0","id":{"a":1},"method":"ping"}),
        json!({"jsonrpc":"2.0","id":1,"method":42}),
        json!({"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}),
        json!({"jsonrpc":"2.0","id":1}),
        json!({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}),
    ] {
        s.post(Some(&sid), &shape).await.assert_error(400, -32600);
    }
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn unknown_methods_and_bad_params_are_jsonrpc_errors_in_a_200() {
    let s = Server::start("");
    let sid = s.session().await;
    let cases = [
        (json!({"jsonrpc":"2.0","id":1,"method":"no/such"}), -32601),
        (
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"no_such_tool"}}),
            -32602,
        ),
        (
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}),
            -32602,
        ),
        (
            json!({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"nope://x"}}),
            -32002,
        ),
        (
            json!({"jsonrpc":"2.0","id":5,"method":"logging/setLevel","params":{"level":"loud"}}),
            -32602,
        ),
        (
            json!({"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"cursor":"bogus"}}),
            -32602,
        ),
        (
            json!({"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"nope"}}),
            -32602,
        ),
    ];
    for (req, code) in cases {
        let r = s.post(Some(&sid), &req).await;
        assert_eq!(r.status, 200, "{req}");
        let v = r.json();
        assert_eq!(v["id"], req["id"], "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn protocol_version_header_must_be_supported_but_need_not_match() {
    let s = Server::start("");
    let sid = s.session().await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    for (v, status) in [
        ("2025-11-25", 200),
        ("2025-06-18", 200),
        ("2025-03-26", 200),
        ("banana", 400),
    ] {
        let mut h = common::post_headers(&sid);
        h.push(("mcp-protocol-version", v));
        let r = send(s.addr, "POST", "/mcp", &h, ping.clone()).await;
        assert_eq!(r.status, status, "{v}");
        if status == 400 {
            r.assert_error(400, -32600);
            assert!(r.json()["error"]["data"]["supported"].is_array());
        }
    }
    // The 2026-07-28 header makes it a modern request (the session id is ignored), which lacks
    // the `_meta` envelope: 400 -32602, not a session's answer.
    let mut h = common::post_headers(&sid);
    h.push(("mcp-protocol-version", "2026-07-28"));
    let r = send(s.addr, "POST", "/mcp", &h, ping.clone()).await;
    r.assert_error(400, -32602);
}

#[tokio::test]
async fn batches_are_accepted_only_for_2025_03_26_sessions() {
    let s = Server::start("");
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"b"}}}
    ]);
    let old = s.session_at("2025-03-26").await;
    let r = s.post(Some(&old), &batch).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let replies = r.json();
    let ids: Vec<_> = replies
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(1), json!(2)]);
    assert_eq!(replies[1]["result"]["content"][0]["text"], "Echo: b");
    let only_notes = json!([{"jsonrpc":"2.0","method":"notifications/initialized"}]);
    assert_eq!(s.post(Some(&old), &only_notes).await.status, 202);

    let new = s.session().await;
    s.post(Some(&new), &batch).await.assert_error(400, -32600);
    s.assert_alive(&new).await;
}

#[tokio::test]
async fn initialize_in_a_batch_or_inside_a_session_gets_400() {
    let s = Server::start("");
    let sid = s.session().await;
    let batch = json!([common::initialize("2025-03-26")]);
    s.post(None, &batch).await.assert_error(400, -32600);
    s.post(Some(&sid), &common::initialize("2025-11-25"))
        .await
        .assert_error(400, -32600);
    assert_eq!(s.health().await.1["sessions"], 1);
}

#[tokio::test]
async fn past_max_sessions_initialize_gets_503_with_retry_after() {
    let s = Server::start("[session]\nmax_sessions = 2\n");
    let a = s.session().await;
    let _b = s.session().await;
    let r = s.post(None, &common::initialize("2025-11-25")).await;
    r.assert_error(503, -32000);
    assert!(r.header("retry-after").is_some());
    s.assert_alive(&a).await;
    send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", &a)], "").await;
    assert_eq!(
        s.post(None, &common::initialize("2025-11-25")).await.status,
        200,
        "room again after DELETE"
    );
}

#[tokio::test]
async fn healthz_reports_node_and_session_count_and_other_paths_404() {
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"node-a\"\n");
    let (status, h) = s.health().await;
    assert_eq!(status, 200);
    assert_eq!(h["node"], "node-a");
    assert_eq!(h["sessions"], 0);
    s.session().await;
    assert_eq!(s.health().await.1["sessions"], 1);
    for path in ["/healthz", "/metrics"] {
        let r = send(s.addr, "POST", path, &[], "").await;
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{path}");
    }
    assert_eq!(send(s.addr, "GET", "/", &[], "").await.status, 404);
    assert_eq!(
        send(s.addr, "POST", "/mcp/extra", &POST_HEADERS, "{}")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn raw_garbage_on_the_socket_does_not_hurt_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start("");
    let sid = s.session().await;
    for junk in [
        &b"\x16\x03\x01\x02\x00garbage-tls-hello"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /mcp HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ] {
        let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        sock.write_all(junk).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            sock.read_to_end(&mut buf),
        )
        .await;
    }
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    use http_body_util::{BodyExt, Full};
    let s = Server::start("");
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://{}/mcp", s.addr))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(bytes::Bytes::from(
            common::initialize("2025-11-25").to_string(),
        )))
        .unwrap();
    let res = sender.send_request(req).await.expect("h2 response");
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("mcp-session-id"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("\"protocolVersion\":\"2025-11-25\""));
}

fn uuid_like() -> String {
    "3f1c2a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60".to_owned()
}

#[tokio::test]
async fn a_stalled_connection_is_closed_after_the_header_read_timeout_and_a_split_request_line_is_served(
) {
    use tokio::io::AsyncWriteExt;
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"300ms\"\n");
    // Half an HTTP/2 preface, then nothing: the server must not wait for the rest forever.
    let mut stalled = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stalled.write_all(b"PRI * HT").await.unwrap();
    let started = std::time::Instant::now();
    assert_closed_unanswered_after(&mut stalled, started, Duration::from_millis(250)).await;
    // A request line that starts like the preface ("P") and arrives in pieces is HTTP/1.1.
    let mut split = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    split.write_all(b"P").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    split
        .write_all(b"OST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let reply = read_reply(&mut split).await.unwrap_or_default();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
}

/// Reads one HTTP/1.1 response with a `content-length` from a raw connection; `None` if the
/// server closed it first.
async fn read_reply(conn: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().expect("content-length"));
                if got.len() >= end + 4 + len {
                    return Some(String::from_utf8_lossy(&got).into_owned());
                }
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a reply or a close within 10 s")
}

/// Waits for the server to close a raw connection; returns how many bytes it sent first.
async fn bytes_before_close(conn: &mut tokio::net::TcpStream) -> usize {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 1024];
    let mut total = 0;
    let read = async {
        while let Ok(n) = conn.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            total += n;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("closed well before 10 s");
    total
}

/// Asserts the server closes `conn` without sending anything, no sooner than `at_least` after
/// `since`.
async fn assert_closed_unanswered_after(
    conn: &mut tokio::net::TcpStream,
    since: std::time::Instant,
    at_least: Duration,
) {
    assert_eq!(bytes_before_close(conn).await, 0, "closed without a reply");
    let after = since.elapsed();
    assert!(after >= at_least, "not before the timeout: {after:?}");
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test]
async fn the_header_read_timeout_counts_from_each_response_and_cuts_off_a_stalled_head() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"400ms\"\n");
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    // Six requests 250 ms apart keep one connection busy for 1.5 s, well past 400 ms from when
    // it was accepted: each response starts the timeout afresh.
    for i in 0..6 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        conn.write_all(GET_HEALTHZ).await.unwrap();
        let reply = read_reply(&mut conn).await;
        assert!(
            reply
                .as_deref()
                .is_some_and(|r| r.starts_with("HTTP/1.1 200")),
            "request {i}: {reply:?}"
        );
    }
    let answered = std::time::Instant::now();
    // Half a request head, then nothing: cut off 400 ms after the last response, unanswered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert_closed_unanswered_after(&mut conn, answered, Duration::from_millis(350)).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"400ms\"\n");
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(GET_HEALTHZ).await.unwrap();
    assert!(read_reply(&mut conn).await.is_some());
    let answered = std::time::Instant::now();
    assert_closed_unanswered_after(&mut conn, answered, Duration::from_millis(350)).await;
}

#[tokio::test]
async fn requests_in_flight_are_not_cut_by_the_header_read_timeout() {
    let s = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"300ms\"\n\
         [session]\nkeep_alive = \"200ms\"\n",
    );
    let sid = s.session().await;
    // A GET stream held open for four timeouts keeps receiving its keep-alive comments.
    let mut stream = common::get_stream(s.addr, &sid, None).await;
    assert_eq!(stream.status, 200);
    let text = stream.read_for(Duration::from_millis(1200)).await;
    assert!(!stream.ended, "the stream was cut: {text:?}");
    assert!(
        text.matches(':').count() >= 3,
        "keep-alive comments: {text:?}"
    );
    // A tool call that runs for three timeouts gets its result.
    let r = s
        .call(
            &sid,
            7,
            "long_task",
            json!({"steps": 3, "interval_ms": 300}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("completed 3 steps"), "{}", r.text());
}

/// Connects and sends an `initialize` POST whose body is `len` bytes: its head and `first`, the
/// start of the body.
async fn start_initialize(
    addr: std::net::SocketAddr,
    len: usize,
    first: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {len}\r\n\r\n"
    );
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(first).await.unwrap();
    conn
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_with_a_jsonrpc_error_and_one_in_two_pieces_is_served()
{
    use tokio::io::AsyncWriteExt;
    let s = Server::start("[server]\nlisten = \"127.0.0.1:0\"\nbody_read_timeout = \"300ms\"\n");
    let body = serde_json::to_vec(&common::initialize("2025-06-18")).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);

    // Half the body, then nothing.
    let mut stalled = start_initialize(s.addr, body.len(), first).await;
    let sent = std::time::Instant::now();
    let reply = read_reply(&mut stalled)
        .await
        .expect("an answer, not a close");
    let waited = sent.elapsed();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        waited >= Duration::from_millis(250),
        "not before the timeout: {waited:?}"
    );
    let json = &reply[reply.find("\r\n\r\n").expect("head end") + 4..];
    let json: serde_json::Value = serde_json::from_str(json).expect("JSON body");
    assert_eq!(json["error"]["code"], -32600, "{json}");

    // The same body in two pieces 100 ms apart, within the timeout: served.
    let mut split = start_initialize(s.addr, body.len(), first).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    split.write_all(rest).await.unwrap();
    let reply = read_reply(&mut split).await.expect("an answer");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("mcp-session-id:"),
        "{reply}"
    );
}
