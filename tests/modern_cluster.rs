//! The 2026-07-28 protocol across real nodes sharing a real Redis: calls spread over the nodes
//! send no Redis command, an MRTR round started on one node completes on another under the
//! secret the nodes agreed on (and a node of another cluster refuses it), and a change raised on
//! one node reaches listeners of both eras on the others.

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{open, send, Resp, Server, POST_HEADERS};
use serde_json::{json, Value};

const V: &str = "2026-07-28";

fn node(redis: &Redis, id: &str) -> Server {
    Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nnode_id = \"{id}\"\n[redis]\nurl = \"{}\"\n\
         heartbeat_interval = \"1h\"\ntouch_interval = \"1h\"\n",
        redis.url()
    ))
}

fn body(id: i64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V,
        "io.modelcontextprotocol/clientCapabilities": {"roots": {}}
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

async fn modern(s: &Server, method: &str, name: Option<&str>, params: Value) -> Resp {
    let mut h: Vec<(&str, &str)> = POST_HEADERS.to_vec();
    h.push(("mcp-protocol-version", V));
    h.push(("mcp-method", method));
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    send(s.addr, "POST", "/mcp", &h, body(1, method, params)).await
}

async fn call(s: &Server, tool: &str, params: Value) -> Resp {
    let mut p = params;
    p["name"] = json!(tool);
    modern(s, "tools/call", Some(tool), p).await
}

fn commands(redis: &Redis) -> i64 {
    redis
        .info_field("stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .expect("INFO stats")
}

/// Waits (without blocking the runtime) until every node says it seals with the shared secret.
async fn agreed(nodes: &[&Server]) {
    for _ in 0..200 {
        if nodes.iter().all(|n| {
            !n.log_lines(&["requestState sealed with the cluster's shared secret"])
                .is_empty()
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the nodes never agreed on a state secret");
}

#[tokio::test]
async fn modern_calls_spread_over_the_nodes_send_no_redis_command() {
    let redis = Redis::start();
    let nodes = [node(&redis, "a"), node(&redis, "b"), node(&redis, "c")];
    for n in &nodes {
        n.wait_registry_synced().await;
    }
    agreed(&nodes.iter().collect::<Vec<_>>()).await;
    // What reading the counter itself costs, over a pause as long as the calls take.
    let idle_start = commands(&redis);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = commands(&redis) - idle_start;
    let start = commands(&redis);
    let began = std::time::Instant::now();
    for i in 0..150 {
        let n = &nodes[i % 3];
        let r = call(
            n,
            "echo",
            json!({"arguments": {"message": format!("m{i}")}}),
        )
        .await;
        assert_eq!(
            r.json()["result"]["content"][0]["text"],
            format!("Echo: m{i}")
        );
    }
    let list = modern(&nodes[1], "tools/list", None, json!({})).await;
    assert!(list.json()["result"]["tools"].is_array());
    let spent = commands(&redis) - start;
    assert!(began.elapsed() < Duration::from_secs(30));
    assert_eq!(
        spent, idle,
        "151 modern requests on three nodes sent Redis commands"
    );
    for n in &nodes {
        assert!(
            n.log_lines(&["forwarding"]).is_empty(),
            "nothing is forwarded"
        );
    }
}

#[tokio::test]
async fn an_mrtr_round_started_on_one_node_completes_on_another_and_a_foreign_node_refuses_it() {
    let redis = Redis::start();
    let (a, b, c) = (node(&redis, "a"), node(&redis, "b"), node(&redis, "c"));
    agreed(&[&a, &b, &c]).await;
    assert_eq!(
        redis.keys("*state-secret").len(),
        1,
        "one secret for the cluster"
    );
    assert!(
        !a.logs().contains(
            &redis
                .cmd(&["GET", &redis.keys("*state-secret")[0]])
                .str()
                .unwrap_or("")
                .to_owned()
        ),
        "the secret is never logged"
    );
    let first = call(&a, "client_roots", json!({})).await;
    let state = first.json()["result"]["requestState"]
        .as_str()
        .expect("state")
        .to_owned();
    let answers = json!({"roots": {"roots": [{"uri": "file:///b"}]}});
    let done = call(
        &b,
        "client_roots",
        json!({"inputResponses": answers, "requestState": state}),
    )
    .await;
    assert_eq!(
        done.json()["result"]["structuredContent"]["roots"][0]["uri"],
        "file:///b",
        "{}",
        done.text()
    );
    let mut tampered = state.into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let refused = call(
        &c,
        "client_roots",
        json!({"inputResponses": answers, "requestState": tampered}),
    )
    .await;
    refused.assert_error(400, -32602);
    // A node of another cluster (no Redis, its own key) refuses a good state too.
    let first = call(&a, "client_roots", json!({})).await;
    let state = first.json()["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    let stranger = Server::start("");
    let r = call(
        &stranger,
        "client_roots",
        json!({"inputResponses": answers, "requestState": state}),
    )
    .await;
    r.assert_error(400, -32602);
}

#[tokio::test]
async fn a_resource_touched_on_one_node_reaches_listeners_of_both_eras_on_another() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    a.wait_registry_synced().await;
    b.wait_registry_synced().await;
    let mut h: Vec<(&str, &str)> = POST_HEADERS.to_vec();
    h.push(("mcp-protocol-version", V));
    h.push(("mcp-method", "subscriptions/listen"));
    let listen = body(
        9,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": ["mcpd://node"]}}),
    );
    let mut listener = open(b.addr, "POST", "/mcp", &h, listen).await;
    let ack = listener
        .next_message(Duration::from_secs(5))
        .await
        .expect("ack");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    let sid = b.session().await;
    let r = b
        .post(Some(&sid), &json!({"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"mcpd://node"}}))
        .await;
    assert_eq!(r.status, 200);
    let mut get = common::get_stream(b.addr, &sid, None).await;
    get.next_event(Duration::from_secs(2)).await; // priming
                                                  // The subscriber of b may still be joining the channel: touch until the listener hears it.
    let mut heard = None;
    for _ in 0..20 {
        call(
            &a,
            "touch_resource",
            json!({"arguments": {"uri": "mcpd://node"}}),
        )
        .await;
        if let Some(m) = listener.next_message(Duration::from_millis(250)).await {
            heard = Some(m);
            break;
        }
    }
    let heard = heard.expect("the change raised on a reached a listener on b");
    assert_eq!(heard["method"], "notifications/resources/updated");
    assert_eq!(heard["params"]["uri"], "mcpd://node");
    let legacy = get
        .next_message(Duration::from_secs(5))
        .await
        .expect("legacy GET stream");
    assert_eq!(legacy["params"]["uri"], "mcpd://node");
}
