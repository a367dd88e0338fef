//! `/metrics` against the real binary: every family an operator alerts on moves with what the node
//! did.

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{get_stream, send, Server};
use serde_json::json;

async fn scrape(s: &Server) -> String {
    let r = send(s.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    r.text()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_sessions_requests_streams_misses_and_the_registry() {
    let redis = Redis::start();
    let s = Server::start(&format!("[redis]\nurl = \"{}\"\n", redis.url()));
    s.wait_registry_synced().await; // before its first connection a miss is unclassified
    let a = s.session().await;
    let b = s.session().await;
    s.call(&a, 1, "echo", json!({"message": "m"})).await;
    let _stream = get_stream(s.addr, &b, None).await;
    send(s.addr, "DELETE", "/mcp", &[("mcp-session-id", &a)], "").await;
    s.post(
        Some("6a1f0c3e-2b4d-4e8f-9a7b-1c2d3e4f5a6b"),
        &json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = scrape(&s).await;
    assert_eq!(value(&text, "mcpd_sessions "), 1.0);
    assert_eq!(value(&text, "mcpd_sessions_created_total "), 2.0);
    assert_eq!(
        value(&text, "mcpd_sessions_closed_total{reason=\"delete\"} "),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "mcpd_rpc_requests_total{era=\"legacy\",method=\"initialize\"} "
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "mcpd_rpc_requests_total{era=\"legacy\",method=\"tools/call\"} "
        ),
        1.0
    );
    assert!(
        value(
            &text,
            "mcpd_http_requests_total{method=\"POST\",status=\"202\"} "
        ) >= 2.0
    );
    assert_eq!(
        value(
            &text,
            "mcpd_http_requests_total{method=\"POST\",status=\"404\"} "
        ),
        1.0
    );
    assert_eq!(
        value(&text, "mcpd_session_misses_total{class=\"unknown\"} "),
        1.0
    );
    assert_eq!(value(&text, "mcpd_sse_streams_open "), 1.0);
    // Every answer was handed over whole; the series are there at 0 for alerts to watch.
    for cause in ["connection", "drain"] {
        let series = format!("mcpd_http_truncated_responses_total{{cause=\"{cause}\"}} ");
        assert_eq!(value(&text, &series), 0.0, "{series}");
    }
    assert_eq!(value(&text, "mcpd_registry_connected "), 1.0);
    assert_eq!(value(&text, "mcpd_registry_queue_depth "), 0.0);
    assert_eq!(value(&text, "mcpd_draining "), 0.0);
    assert!(text.trim_end().ends_with("# EOF"));
}
