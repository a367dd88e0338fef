//! SSE behaviour against the real binary: when a reply becomes a stream, event ids and priming,
//! the standalone GET stream, resumption with Last-Event-ID, cancellation, server→client
//! requests and keep-alives.

mod common;

use std::time::Duration;

use common::{get_stream, open, Server};
use serde_json::json;

const CONFORMANCE: &str = "[catalog]\nconformance = true\n";

#[tokio::test]
async fn a_call_that_reports_progress_switches_to_sse_with_primed_stream_scoped_ids() {
    let s = Server::start("");
    let sid = s.session().await;
    let r = s
        .post(
            Some(&sid),
            &json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
                "name":"long_task","arguments":{"steps":3,"interval_ms":10},"_meta":{"progressToken":"tok"}}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
    let events = r.events();
    assert!(
        events[0].data.is_empty() && events[0].retry.is_some(),
        "priming first: {events:?}"
    );
    let ids: Vec<_> = events.iter().map(|e| e.id.clone().unwrap()).collect();
    let stream = ids[0].split('-').next().unwrap().to_owned();
    assert!(
        ids.iter().all(|id| id.starts_with(&format!("{stream}-"))),
        "{ids:?}"
    );
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    let messages = r.messages();
    let progress: Vec<_> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3);
    for (i, p) in progress.iter().enumerate() {
        assert_eq!(p["params"]["progressToken"], "tok");
        assert_eq!(p["params"]["progress"], i as u64 + 1);
        assert_eq!(p["params"]["total"], 3);
    }
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 7);
    assert_eq!(last["result"]["content"][0]["text"], "completed 3 steps");
}

#[tokio::test]
async fn a_call_without_a_progress_token_stays_json() {
    let s = Server::start("");
    let sid = s.session().await;
    let r = s
        .call(&sid, 1, "long_task", json!({"steps": 2, "interval_ms": 1}))
        .await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "completed 2 steps"
    );
}

#[tokio::test]
async fn older_protocol_versions_get_no_priming_event() {
    let s = Server::start("");
    let sid = s.session_at("2025-06-18").await;
    let r = s
        .post(
            Some(&sid),
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
                "name":"long_task","arguments":{"steps":1,"interval_ms":1},"_meta":{"progressToken":1}}}),
        )
        .await;
    let events = r.events();
    assert!(
        events
            .iter()
            .all(|e| !e.data.is_empty() && e.retry.is_none()),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_get_stream_receives_session_notifications() {
    let s = Server::start("");
    let sid = s.session().await;
    let mut get = get_stream(s.addr, &sid, None).await;
    assert_eq!(get.status, 200);
    assert_eq!(
        get.headers.get("content-type").unwrap(),
        "text/event-stream"
    );
    let r = s
        .call(
            &sid,
            1,
            "notify",
            json!({"message": "hello from the server"}),
        )
        .await;
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "sent on the session stream"
    );
    let m = get
        .next_message(Duration::from_secs(5))
        .await
        .expect("notification on GET");
    assert_eq!(m["method"], "notifications/message");
    assert_eq!(m["params"]["data"], "hello from the server");
    assert_eq!(m["params"]["level"], "info");
}

#[tokio::test]
async fn a_get_starts_with_a_priming_event_that_is_a_resume_point() {
    let s = Server::start("");
    let sid = s.session().await;
    let mut get = get_stream(s.addr, &sid, None).await;
    let priming = get
        .next_event(Duration::from_secs(2))
        .await
        .expect("priming");
    assert!(priming.data.is_empty());
    assert!(priming.retry.is_some());
    let id = priming.id.expect("priming id");
    drop(get);
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.call(&sid, 1, "notify", json!({"message": "after the cut"}))
        .await;
    let mut resumed = get_stream(s.addr, &sid, Some(&id)).await;
    let m = resumed
        .next_message(Duration::from_secs(2))
        .await
        .expect("resumed");
    assert_eq!(m["params"]["data"], "after the cut");
}

#[tokio::test]
async fn a_second_get_is_not_409_and_each_message_is_sent_once() {
    let s = Server::start("");
    let sid = s.session().await;
    let mut first = get_stream(s.addr, &sid, None).await;
    let mut second = get_stream(s.addr, &sid, None).await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    s.call(&sid, 1, "notify", json!({"message": "once"})).await;
    let a = first.next_message(Duration::from_secs(2)).await;
    let b = second.next_message(Duration::from_millis(500)).await;
    assert_eq!(a.map(|m| m["params"]["data"].clone()), Some(json!("once")));
    assert!(b.is_none(), "broadcast to a second stream: {b:?}");
    // When the first stream goes away the second one takes over.
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.call(&sid, 2, "notify", json!({"message": "twice"})).await;
    let b = second.next_message(Duration::from_secs(2)).await;
    assert_eq!(b.map(|m| m["params"]["data"].clone()), Some(json!("twice")));
}

#[tokio::test]
async fn notifications_sent_while_no_get_is_open_arrive_when_one_opens() {
    let s = Server::start("");
    let sid = s.session().await;
    s.call(&sid, 1, "notify", json!({"message": "early"})).await;
    let mut get = get_stream(s.addr, &sid, None).await;
    let m = get
        .next_message(Duration::from_secs(2))
        .await
        .expect("buffered notification");
    assert_eq!(m["params"]["data"], "early");
}

#[tokio::test]
async fn last_event_id_resumes_a_stream_the_server_closed_mid_call() {
    let s = Server::start(CONFORMANCE);
    let sid = s.session().await;
    let h = common::post_headers(&sid);
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_reconnection","arguments":{}}});
    let mut post = open(s.addr, "POST", "/mcp", &h, body.to_string()).await;
    assert!(
        post.wait_end(Duration::from_secs(5)).await,
        "server closes the connection"
    );
    let text = post.pending_text().to_owned();
    let events = common::parse_events(&text);
    assert!(
        events[0].data.is_empty() && events[0].id.is_some(),
        "priming first: {text}"
    );
    assert!(text.contains("retry: "), "retry before close: {text}");
    assert!(
        !text.contains("\"result\""),
        "no result on the cut connection: {text}"
    );
    let last = events.iter().rev().find_map(|e| e.id.clone()).unwrap();
    let mut resumed = get_stream(s.addr, &sid, Some(&last)).await;
    assert_eq!(resumed.status, 200);
    let m = resumed
        .next_message(Duration::from_secs(5))
        .await
        .expect("result on resume");
    assert_eq!(m["id"], 1);
    assert!(m["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Reconnection test completed"));
    assert_ne!(m["result"]["isError"], true);
    // A resumed stream that has delivered everything stays open (keep-alives), so clients do not
    // resume it again in a loop.
    assert!(!resumed.wait_end(Duration::from_millis(300)).await);
}

#[tokio::test]
async fn an_unknown_last_event_id_gets_a_fresh_stream_not_an_error() {
    let s = Server::start("");
    let sid = s.session().await;
    for bogus in ["999-1", "garbage", "0-99999"] {
        let g = get_stream(s.addr, &sid, Some(bogus)).await;
        assert_eq!(g.status, 200, "{bogus}");
    }
}

#[tokio::test]
async fn notifications_cancelled_stops_the_running_call() {
    let s = Server::start("");
    let sid = s.session().await;
    let h = common::post_headers(&sid);
    let body = json!({"jsonrpc":"2.0","id":"long-1","method":"tools/call","params":{
        "name":"long_task","arguments":{"steps":100,"interval_ms":50},"_meta":{"progressToken":5}}});
    let mut post = open(s.addr, "POST", "/mcp", &h, body.to_string()).await;
    let first = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("progress");
    assert_eq!(first["method"], "notifications/progress");
    let r = s
        .post(Some(&sid), &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"long-1","reason":"test"}}))
        .await;
    assert_eq!(r.status, 202);
    let mut after = Vec::new();
    while let Some(m) = post.next_message(Duration::from_secs(3)).await {
        after.push(m);
    }
    assert!(post.ended, "the stream ends after the cancelled call");
    let result = after.last().expect("a final message");
    assert_eq!(result["id"], "long-1");
    assert_eq!(result["result"]["isError"], true);
    let progress_after = after
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(
        progress_after <= 1,
        "progress kept coming after cancel: {after:?}"
    );
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn disconnecting_does_not_cancel_a_call() {
    let s = Server::start("");
    let sid = s.session().await;
    let h = common::post_headers(&sid);
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"long_task","arguments":{"steps":3,"interval_ms":100},"_meta":{"progressToken":1}}});
    let mut post = open(s.addr, "POST", "/mcp", &h, body.to_string()).await;
    let priming = post.next_event(Duration::from_secs(5)).await.unwrap();
    let stream_id = priming.id.unwrap();
    drop(post);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut resumed = get_stream(s.addr, &sid, Some(&stream_id)).await;
    let mut last = None;
    while let Some(m) = resumed.next_message(Duration::from_secs(2)).await {
        last = Some(m);
        if last.as_ref().is_some_and(|m| m.get("result").is_some()) {
            break;
        }
    }
    assert_eq!(
        last.unwrap()["result"]["content"][0]["text"],
        "completed 3 steps"
    );
}

#[tokio::test]
async fn a_server_to_client_request_is_answered_by_post_and_wakes_the_tool() {
    let s = Server::start(CONFORMANCE);
    let sid = s.session().await;
    let h = common::post_headers(&sid);
    let body = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"2+2?"}}});
    let mut post = open(s.addr, "POST", "/mcp", &h, body.to_string()).await;
    let req = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("sampling request");
    assert_eq!(req["method"], "sampling/createMessage");
    assert_eq!(req["params"]["messages"][0]["content"]["text"], "2+2?");
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","content":{"type":"text","text":"four"},"model":"m","stopReason":"endTurn"}});
    assert_eq!(s.post(Some(&sid), &answer).await.status, 202);
    let result = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("tool result");
    assert_eq!(result["id"], 3);
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("four"),
        "{result}"
    );
}

#[tokio::test]
async fn roots_list_round_trips_through_the_builtin_tool() {
    let s = Server::start("");
    let r = s
        .post(None, &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{"roots":{"listChanged":true}},"clientInfo":{"name":"r","version":"1"}}}))
        .await;
    let sid = r.header("mcp-session-id").unwrap().to_owned();
    let h = common::post_headers(&sid);
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"client_roots","arguments":{}}});
    let mut post = open(s.addr, "POST", "/mcp", &h, body.to_string()).await;
    let req = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("roots/list request");
    assert_eq!(req["method"], "roots/list");
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"roots":[{"uri":"file:///srv","name":"srv"}]}});
    assert_eq!(s.post(Some(&sid), &answer).await.status, 202);
    let result = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("tool result");
    assert_eq!(
        result["result"]["structuredContent"]["roots"][0]["uri"],
        "file:///srv"
    );
    // An error answer is reported as a tool error.
    let mut post = open(s.addr, "POST", "/mcp", &h, body.to_string()).await;
    let req = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("second request");
    let answer =
        json!({"jsonrpc":"2.0","id":req["id"],"error":{"code":-32601,"message":"no roots here"}});
    s.post(Some(&sid), &answer).await;
    let result = post
        .next_message(Duration::from_secs(5))
        .await
        .expect("tool result");
    assert_eq!(result["result"]["isError"], true);
    assert!(result["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("no roots here"));
}

#[tokio::test]
async fn a_client_without_the_capability_gets_a_tool_error_not_a_hang() {
    let s = Server::start(CONFORMANCE);
    let r = s
        .post(None, &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bare","version":"1"}}}))
        .await;
    let sid = r.header("mcp-session-id").unwrap().to_owned();
    let r = s
        .call(&sid, 1, "test_sampling", json!({"prompt": "x"}))
        .await;
    assert_eq!(r.json()["result"]["isError"], true);
}

#[tokio::test]
async fn log_messages_follow_the_session_level() {
    let s = Server::start(CONFORMANCE);
    let sid = s.session().await;
    let r = s
        .post(
            Some(&sid),
            &json!({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"error"}}),
        )
        .await;
    assert_eq!(r.json()["result"], json!({}));
    let quiet = s.call(&sid, 2, "test_tool_with_logging", json!({})).await;
    assert_eq!(
        quiet
            .messages()
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count(),
        0
    );
    s.post(
        Some(&sid),
        &json!({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"debug"}}),
    )
    .await;
    let loud = s.call(&sid, 4, "test_tool_with_logging", json!({})).await;
    assert_eq!(
        loud.messages()
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count(),
        3
    );
}

#[tokio::test]
async fn resource_updates_reach_subscribed_sessions_only() {
    let s = Server::start("");
    let sub = s.session().await;
    let other = s.session().await;
    let r = s.post(Some(&sub), &json!({"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"mcpd://node"}})).await;
    assert_eq!(r.json()["result"], json!({}));
    let mut sub_get = get_stream(s.addr, &sub, None).await;
    let mut other_get = get_stream(s.addr, &other, None).await;
    s.call(&other, 2, "touch_resource", json!({"uri": "mcpd://node"}))
        .await;
    let m = sub_get
        .next_message(Duration::from_secs(2))
        .await
        .expect("update");
    assert_eq!(m["method"], "notifications/resources/updated");
    assert_eq!(m["params"]["uri"], "mcpd://node");
    assert!(other_get
        .next_message(Duration::from_millis(300))
        .await
        .is_none());
    s.post(Some(&sub), &json!({"jsonrpc":"2.0","id":3,"method":"resources/unsubscribe","params":{"uri":"mcpd://node"}})).await;
    s.call(&other, 4, "touch_resource", json!({"uri": "mcpd://node"}))
        .await;
    assert!(sub_get
        .next_message(Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test]
async fn idle_streams_carry_keep_alive_comments() {
    let s = Server::start("[session]\nkeep_alive = \"100ms\"\n");
    let sid = s.session().await;
    let mut get = get_stream(s.addr, &sid, None).await;
    let text = get.read_for(Duration::from_millis(450)).await;
    assert!(text.matches(": keep-alive").count() >= 2, "{text:?}");
}

#[tokio::test]
async fn delete_ends_open_streams() {
    let s = Server::start("");
    let sid = s.session().await;
    let mut get = get_stream(s.addr, &sid, None).await;
    get.read_for(Duration::from_millis(100)).await;
    common::send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", &sid)], "").await;
    assert!(
        get.wait_end(Duration::from_secs(2)).await,
        "GET stream must end with its session"
    );
}

#[tokio::test]
async fn the_builtin_prompt_renders_validates_and_completes() {
    let s = Server::start("");
    let sid = s.session().await;
    let r = s
        .post(
            Some(&sid),
            &json!({"jsonrpc":"2.0","id":1,"method":"prompts/list"}),
        )
        .await;
    assert_eq!(r.json()["result"]["prompts"][0]["name"], "routing_report");
    let r = s
        .post(Some(&sid), &json!({"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"routing_report","arguments":{"detail":"full"}}}))
        .await;
    assert!(r.json()["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .contains("every field"));
    let r = s
        .post(Some(&sid), &json!({"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"routing_report","arguments":{"detail":"loud"}}}))
        .await;
    assert_eq!(r.json()["error"]["code"], -32602);
    let r = s
        .post(Some(&sid), &json!({"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{
            "ref":{"type":"ref/prompt","name":"routing_report"},"argument":{"name":"detail","value":"f"}}}))
        .await;
    assert_eq!(r.json()["result"]["completion"]["values"], json!(["full"]));
}

#[tokio::test]
async fn every_conformance_fixture_answers() {
    let s = Server::start(CONFORMANCE);
    let sid = s.session().await;
    for (i, tool) in [
        "test_simple_text",
        "test_image_content",
        "test_audio_content",
        "test_embedded_resource",
        "test_multiple_content_types",
    ]
    .iter()
    .enumerate()
    {
        let r = s
            .post(
                Some(&sid),
                &json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":tool}}),
            )
            .await;
        let v = r.json();
        assert!(
            v["result"]["content"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
            "{tool}: {v}"
        );
        assert_ne!(v["result"]["isError"], true, "{tool}");
    }
    let r = s.post(Some(&sid), &json!({"jsonrpc":"2.0","id":20,"method":"resources/read","params":{"uri":"test://template/123/data"}})).await;
    assert!(r.json()["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("123"));
    let r = s
        .post(Some(&sid), &json!({"jsonrpc":"2.0","id":21,"method":"completion/complete","params":{
            "ref":{"type":"ref/prompt","name":"test_prompt_with_arguments"},"argument":{"name":"arg1","value":"te"}}}))
        .await;
    assert!(r.json()["result"]["completion"]["values"].is_array());
}
