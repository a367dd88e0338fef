//! The 2026-07-28 protocol against the real binary: the era decision, the envelope and header
//! rules with their errors, results, progress and opted-in logs on the request's own stream,
//! cancellation by disconnect, MRTR rounds with sealed `requestState`, and `subscriptions/listen`.

mod common;

use std::time::Duration;

use common::{open, send, Resp, Server, POST_HEADERS};
use serde_json::{json, Value};

const V: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}, "roots": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-test", "version": "1"}
    })
}

/// A modern request body: `params` with the envelope merged in.
fn body(id: i64, method: &str, mut params: Value) -> String {
    let m = params.as_object_mut().expect("params object");
    let mut envelope = meta();
    if let Some(extra) = m.remove("_meta") {
        for (k, v) in extra.as_object().expect("_meta object") {
            envelope[k] = v.clone();
        }
    }
    m.insert("_meta".into(), envelope);
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// The headers a conforming modern client sends for `method` (and `name`, if any).
fn headers<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut h: Vec<(&'static str, &'a str)> = POST_HEADERS.to_vec();
    h.push(("mcp-protocol-version", V));
    h.push(("mcp-method", method));
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    h
}

async fn post(s: &Server, headers: &[(&str, &str)], body: String) -> Resp {
    send(s.addr, "POST", "/mcp", headers, body).await
}

async fn rpc(s: &Server, method: &str, name: Option<&str>, params: Value) -> Resp {
    post(s, &headers(method, name), body(7, method, params)).await
}

async fn call(s: &Server, tool: &str, params: Value) -> Resp {
    let mut p = params;
    p["name"] = json!(tool);
    rpc(s, "tools/call", Some(tool), p).await
}

#[tokio::test]
async fn discover_lists_both_eras_and_names_the_server_in_meta() {
    let s = Server::start("");
    let r = rpc(&s, "server/discover", None, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("mcp-session-id").is_none(), "no session is minted");
    let v = r.json();
    assert_eq!(v["id"], 7);
    let res = &v["result"];
    assert_eq!(
        res["supportedVersions"],
        json!(["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"])
    );
    assert_eq!(res["resultType"], "complete");
    assert!(
        res["ttlMs"].is_u64() && res["cacheScope"].is_string(),
        "{res}"
    );
    assert_eq!(
        res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcpd"
    );
    assert_eq!(res["capabilities"]["resources"]["subscribe"], true);
}

#[tokio::test]
async fn each_envelope_and_header_fault_gets_its_status_and_code_with_the_request_id() {
    let s = Server::start("");
    let plain = |method: &str, params: Value| {
        json!({"jsonrpc":"2.0","id":3,"method":method,"params":params}).to_string()
    };
    // No envelope at all, with the modern header.
    let r = post(
        &s,
        &headers("tools/list", None),
        plain("tools/list", json!({})),
    )
    .await;
    r.assert_error(400, -32602);
    assert_eq!(r.json()["id"], 3);
    // The envelope without clientCapabilities.
    let partial = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": V}});
    let r = post(
        &s,
        &headers("tools/list", None),
        plain("tools/list", partial),
    )
    .await;
    r.assert_error(400, -32602);
    // The header missing, or naming another version than the body.
    let mut h = headers("tools/list", None);
    h.retain(|(k, _)| *k != "mcp-protocol-version");
    let r = post(&s, &h, body(3, "tools/list", json!({}))).await;
    r.assert_error(400, -32020);
    let mut h = headers("tools/list", None);
    h.retain(|(k, _)| *k != "mcp-protocol-version");
    h.push(("mcp-protocol-version", "2025-11-25"));
    let r = post(&s, &h, body(3, "tools/list", json!({}))).await;
    r.assert_error(400, -32020);
    // A version we do not speak, consistently in header and body.
    let mut h = headers("tools/list", None);
    h.retain(|(k, _)| *k != "mcp-protocol-version");
    h.push(("mcp-protocol-version", "v999"));
    let r = post(
        &s,
        &h,
        body(
            3,
            "tools/list",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "v999"}}),
        ),
    )
    .await;
    r.assert_error(400, -32022);
    assert_eq!(r.json()["error"]["data"]["requested"], "v999");
    assert_eq!(r.json()["error"]["data"]["supported"][0], V);
    // Mcp-Method missing, different, or repeated.
    let mut h = headers("tools/list", None);
    h.retain(|(k, _)| *k != "mcp-method");
    let r = post(&s, &h, body(3, "tools/list", json!({}))).await;
    r.assert_error(400, -32020);
    let r = post(
        &s,
        &headers("prompts/list", None),
        body(3, "tools/list", json!({})),
    )
    .await;
    r.assert_error(400, -32020);
    let mut h = headers("tools/list", None);
    h.push(("mcp-method", "tools/list"));
    let r = post(&s, &h, body(3, "tools/list", json!({}))).await;
    r.assert_error(400, -32020);
    // Mcp-Name missing, different, or not valid base64; a base64 form that decodes to the name.
    let p = json!({"name": "echo", "arguments": {"message": "x"}});
    for (name, status) in [
        (None, 400),
        (Some("node_info"), 400),
        (Some("=?base64?ZWNo!!!?="), 400),
        (Some("=?base64?ZWNobw==?="), 200),
    ] {
        let r = post(
            &s,
            &headers("tools/call", name),
            body(3, "tools/call", p.clone()),
        )
        .await;
        match status {
            200 => assert_eq!(r.status, 200, "{name:?}: {}", r.text()),
            _ => r.assert_error(400, -32020),
        }
    }
    // Removed and unknown methods.
    for m in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "no/such",
    ] {
        let r = post(&s, &headers(m, None), body(3, m, json!({}))).await;
        r.assert_error(404, -32601);
    }
    // A bad logLevel and a bad requestState.
    let r = rpc(
        &s,
        "tools/list",
        None,
        json!({"_meta": {"io.modelcontextprotocol/logLevel": "loud"}}),
    )
    .await;
    r.assert_error(400, -32602);
    for state in [
        json!(42),
        json!("v1.garbage"),
        json!("x".repeat(300 * 1024)),
    ] {
        let r = call(&s, "client_roots", json!({"requestState": state})).await;
        r.assert_error(400, -32602);
    }
    // `inputResponses: null` is no answers: a fresh round.
    let r = call(&s, "client_roots", json!({"inputResponses": null})).await;
    assert_eq!(r.json()["result"]["resultType"], "input_required");
    let r = call(&s, "client_roots", json!({"inputResponses": [1]})).await;
    r.assert_error(400, -32602);
    // After all that, the node still serves.
    let r = call(&s, "echo", json!({"arguments": {"message": "still here"}})).await;
    assert_eq!(r.json()["result"]["content"][0]["text"], "Echo: still here");
}

#[tokio::test]
async fn the_body_decides_the_era_and_a_session_id_on_a_modern_request_is_ignored() {
    let s = Server::start("");
    let sid = s.session().await;
    // A modern request naming a live session, or one that never existed: served, not 404.
    for id in [sid.as_str(), "00000000-0000-4000-8000-000000000000"] {
        let mut h = headers("tools/call", Some("echo"));
        h.push(("mcp-session-id", id));
        let r = post(
            &s,
            &h,
            body(
                1,
                "tools/call",
                json!({"name": "echo", "arguments": {"message": "m"}}),
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("mcp-session-id").is_none());
        let mut h = headers("tools/call", Some("node_info"));
        h.push(("mcp-session-id", id));
        let facts = post(&s, &h, body(1, "tools/call", json!({"name": "node_info"}))).await;
        assert!(facts.text().contains("modern-test"), "{}", facts.text());
    }
    // A legacy request on the session whose body claims the modern era: the header mismatch.
    let mut h = common::post_headers(&sid);
    h.push(("mcp-protocol-version", "2025-11-25"));
    let r = post(&s, &h, body(1, "tools/list", json!({}))).await;
    r.assert_error(400, -32020);
    // initialize sent with the modern header (and no envelope): 400 -32602.
    let mut h = POST_HEADERS.to_vec();
    h.push(("mcp-protocol-version", V));
    let r = post(&s, &h, common::initialize("2025-11-25").to_string()).await;
    r.assert_error(400, -32602);
    // A batch carrying a modern request.
    let batch = format!("[{}]", body(1, "tools/list", json!({})));
    let r = post(&s, &headers("tools/list", None), batch).await;
    r.assert_error(400, -32600);
    // GET and DELETE without a session: 405.
    for m in ["GET", "DELETE"] {
        let r = send(s.addr, m, "/mcp", &[("accept", "text/event-stream")], "").await;
        assert_eq!(r.status, 405, "{m}: {}", r.text());
    }
    // The session was not touched by any of this.
    s.assert_alive(&sid).await;
}

#[tokio::test]
async fn results_carry_result_type_server_info_and_cache_hints() {
    let s = Server::start("");
    let r = call(&s, "echo", json!({"arguments": {"message": "hi"}})).await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let res = &r.json()["result"];
    assert_eq!(res["content"][0]["text"], "Echo: hi");
    assert_eq!(res["resultType"], "complete");
    assert_eq!(
        res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcpd"
    );
    for list in [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        let res = rpc(&s, list, None, json!({})).await.json()["result"].clone();
        assert_eq!(res["resultType"], "complete", "{list}");
        assert!(res["ttlMs"].is_u64(), "{list}");
        assert!(
            res["cacheScope"] == "public" || res["cacheScope"] == "private",
            "{list}"
        );
    }
    let r = rpc(
        &s,
        "resources/read",
        Some("mcpd://node"),
        json!({"uri": "mcpd://node"}),
    )
    .await;
    assert_eq!(r.json()["result"]["cacheScope"], "private");
    let r = rpc(
        &s,
        "resources/read",
        Some("mcpd://nope"),
        json!({"uri": "mcpd://nope"}),
    )
    .await;
    assert_eq!(
        r.json()["error"]["code"],
        -32602,
        "resource not found is -32602 in 2026-07-28"
    );
    assert_eq!(r.json()["error"]["data"]["uri"], "mcpd://nope");
    let r = rpc(&s, "tools/list", None, json!({"cursor": "abc"})).await;
    assert_eq!(r.json()["error"]["code"], -32602);
    let metrics = send(s.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        metrics.contains("mcpd_rpc_requests_total{era=\"modern\",method=\"tools/call\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn progress_and_opted_in_logs_travel_on_the_request_stream() {
    let s = Server::start("[catalog]\nconformance = true\n");
    let r = call(
        &s,
        "long_task",
        json!({"arguments": {"steps": 3, "interval_ms": 10}, "_meta": {"progressToken": "p1"}}),
    )
    .await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let msgs = r.messages();
    let progress: Vec<_> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{msgs:?}");
    assert!(progress
        .iter()
        .all(|p| p["params"]["progressToken"] == "p1"));
    assert_eq!(
        msgs.last().unwrap()["result"]["content"][0]["text"],
        "completed 3 steps"
    );
    assert!(
        r.events().iter().all(|e| e.id.is_none()),
        "modern streams carry no event ids"
    );
    // Logs: none without logLevel, all at or above it with.
    let quiet = call(&s, "test_logging_tool", json!({})).await;
    assert_eq!(quiet.header("content-type"), Some("application/json"));
    let loud = call(
        &s,
        "test_logging_tool",
        json!({"_meta": {"io.modelcontextprotocol/logLevel": "info"}}),
    )
    .await;
    let logs = loud
        .messages()
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .count();
    assert_eq!(logs, 3, "{}", loud.text());
    let above = call(
        &s,
        "test_logging_tool",
        json!({"_meta": {"io.modelcontextprotocol/logLevel": "error"}}),
    )
    .await;
    assert_eq!(above.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn closing_the_stream_cancels_the_call() {
    let s = Server::start("[log]\nlevel = \"debug\"\n");
    let mut stream = open(
        s.addr,
        "POST",
        "/mcp",
        &headers("tools/call", Some("long_task")),
        body(5, "tools/call", json!({"name": "long_task", "arguments": {"steps": 100, "interval_ms": 100}, "_meta": {"progressToken": 1}})),
    )
    .await;
    let first = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("a progress event");
    assert_eq!(first["method"], "notifications/progress");
    drop(stream);
    // Waited for without blocking: the test's runtime must go on running the client connection,
    // which closes the socket.
    let mut cancelled = false;
    for _ in 0..100 {
        if !s
            .log_lines(&[
                "request cancelled: the client closed its stream",
                "long_task",
            ])
            .is_empty()
        {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cancelled, "{}", s.logs());
    let metrics = send(s.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        metrics.contains("mcpd_modern_cancelled_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_mrtr_round_trip_completes_and_its_state_is_sealed_and_bound() {
    let s = Server::start("");
    let r = call(&s, "client_roots", json!({})).await;
    let res = r.json()["result"].clone();
    assert_eq!(res["resultType"], "input_required", "{res}");
    assert_eq!(res["inputRequests"]["roots"]["method"], "roots/list");
    let state = res["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned();
    let roots = json!({"roots": {"roots": [{"uri": "file:///w", "name": "w"}]}});
    let r = call(
        &s,
        "client_roots",
        json!({"inputResponses": roots, "requestState": state}),
    )
    .await;
    let res = r.json()["result"].clone();
    assert_eq!(res["resultType"], "complete", "{res}");
    assert_eq!(res["structuredContent"]["roots"][0]["uri"], "file:///w");
    // An answer that is not a roots/list result.
    let r = call(
        &s,
        "client_roots",
        json!({"inputResponses": {"roots": 12345}}),
    )
    .await;
    r.assert_error(400, -32602);
    // The state of another tool, altered, or without the client's capability.
    let r = call(
        &s,
        "echo",
        json!({"arguments": {"message": "m"}, "requestState": state}),
    )
    .await;
    r.assert_error(400, -32602);
    let mut tampered = state.clone();
    tampered.push_str("-TAMPERED");
    let r = call(&s, "client_roots", json!({"requestState": tampered})).await;
    r.assert_error(400, -32602);
    assert_eq!(r.json()["error"]["data"]["reason"], "invalid_request_state");
    let r = call(
        &s,
        "client_roots",
        json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}),
    )
    .await;
    assert_eq!(
        r.json()["result"]["isError"],
        true,
        "no roots capability, no question: {}",
        r.text()
    );
}

#[tokio::test]
async fn nodes_sharing_a_state_secret_continue_each_others_rounds_and_others_refuse_them() {
    let secret = "[cluster]\nstate_secret = \"0123456789abcdef0123456789abcdef-shared\"\n";
    let a = Server::start(secret);
    let b = Server::start(secret);
    let c = Server::start("");
    let r = call(&a, "client_roots", json!({})).await;
    let state = r.json()["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    let retry = json!({"inputResponses": {"roots": {"roots": []}}, "requestState": state});
    let r = call(&b, "client_roots", retry.clone()).await;
    assert_eq!(r.json()["result"]["resultType"], "complete", "{}", r.text());
    let r = call(&c, "client_roots", retry).await;
    r.assert_error(400, -32602);
    assert!(
        c.wait_log(
            &[
                "requestState refused",
                "sealed by a key this node does not hold"
            ],
            Duration::from_secs(2)
        ),
        "{}",
        c.logs()
    );
}

#[tokio::test]
async fn a_too_short_state_secret_is_a_config_error_naming_the_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpd"))
        .args(["check-config", "--config"])
        .arg(&*common::TempFile::with(
            "toml",
            "[cluster]\nstate_secret = \"short\"\n",
        ))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cluster.state_secret"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_listener_gets_its_ack_then_only_what_it_asked_for_and_a_completion_at_the_drain() {
    let s = Server::start("[shutdown]\ngrace = \"200ms\"\n[session]\nsse_retry = \"200ms\"\n");
    let listen = |filter: Value| body(9, "subscriptions/listen", json!({"notifications": filter}));
    let mut stream = open(
        s.addr,
        "POST",
        "/mcp",
        &headers("subscriptions/listen", None),
        listen(json!({"resourceSubscriptions": ["mcpd://node"]})),
    )
    .await;
    assert_eq!(stream.status, 200);
    let ack = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    // The subscription is named by its listen request's id.
    let sub = ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"].clone();
    assert_eq!(sub, json!(9));
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!(["mcpd://node"])
    );
    // A legacy session subscribed on its GET stream hears the same change.
    let sid = s.session().await;
    let r = s.post(Some(&sid), &json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"mcpd://node"}})).await;
    assert_eq!(r.status, 200);
    let mut get = common::get_stream(s.addr, &sid, None).await;
    get.next_event(Duration::from_secs(2)).await; // the priming event
    call(
        &s,
        "touch_resource",
        json!({"arguments": {"uri": "mcpd://other"}}),
    )
    .await;
    call(
        &s,
        "touch_resource",
        json!({"arguments": {"uri": "mcpd://node"}}),
    )
    .await;
    let n = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("update");
    assert_eq!(n["method"], "notifications/resources/updated");
    assert_eq!(
        n["params"]["uri"], "mcpd://node",
        "mcpd://other was not asked for"
    );
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        sub
    );
    let legacy = get
        .next_message(Duration::from_secs(5))
        .await
        .expect("legacy update");
    assert_eq!(legacy["params"]["uri"], "mcpd://node");
    // Bad filters and a session id are refused.
    let r = post(
        &s,
        &headers("subscriptions/listen", None),
        listen(json!({"everything": true})),
    )
    .await;
    r.assert_error(400, -32602);
    let r = post(
        &s,
        &headers("subscriptions/listen", None),
        body(9, "subscriptions/listen", json!({})),
    )
    .await;
    r.assert_error(400, -32602);
    let mut h = headers("subscriptions/listen", None);
    h.push(("mcp-session-id", &sid));
    let r = post(&s, &h, listen(json!({}))).await;
    r.assert_error(400, -32600);
    // The drain ends the stream with the listen request's completion result.
    s.signal("TERM");
    let done = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("completion");
    assert_eq!(done["id"], 9);
    assert_eq!(done["result"]["resultType"], "complete");
    assert_eq!(
        done["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        sub
    );
    assert!(
        stream.wait_end(Duration::from_secs(2)).await,
        "the stream ends after it"
    );
}

#[tokio::test]
async fn an_interactive_prompt_asks_a_session_on_its_stream_and_a_modern_client_by_mrtr() {
    let s = Server::start("[catalog]\nconformance = true\n");
    // A session whose client can answer elicitations.
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},
        "clientInfo":{"name":"t","version":"1"}}});
    let r = s.post(None, &init).await;
    let sid = r.header("mcp-session-id").expect("session").to_owned();
    s.post(
        Some(&sid),
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    let get = json!({"jsonrpc":"2.0","id":"p1","method":"prompts/get",
        "params":{"name":"test_input_required_result_prompt"}});
    let mut stream = open(
        s.addr,
        "POST",
        "/mcp",
        &common::post_headers(&sid),
        get.to_string(),
    )
    .await;
    let ask = loop {
        let m = stream
            .next_message(Duration::from_secs(5))
            .await
            .expect("the question");
        if m.get("method").is_some() && m.get("id").is_some() {
            break m;
        }
    };
    assert_eq!(ask["method"], "elicitation/create");
    assert_eq!(
        ask["params"]["message"],
        "What context should the prompt use?"
    );
    let answer = json!({"jsonrpc":"2.0","id":ask["id"],"result":{"action":"accept","content":{"context":"legacy ctx"}}});
    assert_eq!(s.post(Some(&sid), &answer).await.status, 202);
    let done = stream
        .next_message(Duration::from_secs(5))
        .await
        .expect("the prompt");
    assert_eq!(done["id"], "p1");
    assert_eq!(
        done["result"]["messages"][0]["content"]["text"],
        "Use this context: legacy ctx"
    );
    // The same prompt for a 2026-07-28 client: two rounds.
    let p = json!({"name": "test_input_required_result_prompt"});
    let r = rpc(
        &s,
        "prompts/get",
        Some("test_input_required_result_prompt"),
        p,
    )
    .await;
    let first = r.json()["result"].clone();
    assert_eq!(first["resultType"], "input_required", "{first}");
    let retry = json!({"name": "test_input_required_result_prompt",
        "inputResponses": {"user_context": {"action": "accept", "content": {"context": "modern ctx"}}},
        "requestState": first["requestState"]});
    let r = rpc(
        &s,
        "prompts/get",
        Some("test_input_required_result_prompt"),
        retry,
    )
    .await;
    assert_eq!(
        r.json()["result"]["messages"][0]["content"]["text"],
        "Use this context: modern ctx"
    );
    assert_eq!(r.json()["result"]["resultType"], "complete");
}
