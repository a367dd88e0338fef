//! Tools that send something on the call's stream before their result: log messages
//! (`test_tool_with_logging`), progress notifications (`test_tool_with_progress`) and the end of
//! the HTTP response carrying the call (`test_reconnection`, SEP-1699). They stop early when the
//! call is cancelled.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::catalog::{BoxFuture, Call, LogLevel, ToolResult};

/// Gap between the notifications of the logging and progress tools.
const STEP: Duration = Duration::from_millis(50);

/// How long `test_reconnection` keeps running after closing its SSE connection (the reference's
/// 100 ms). The suite reconnects at once and waits up to 5 s, so the result reaches it either
/// replayed after its Last-Event-ID or live on the resumed stream.
const RECONNECTION_DELAY: Duration = Duration::from_millis(100);

/// Sleeps for `d`; false when the call was cancelled meanwhile.
async fn pause(call: &Call, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = call.cancelled() => false,
    }
}

fn cancelled() -> ToolResult {
    ToolResult::error("cancelled")
}

pub(super) fn tool_with_logging(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let messages = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, message) in messages.into_iter().enumerate() {
            if i > 0 && !pause(&call, STEP).await {
                return cancelled();
            }
            call.log(LogLevel::Info, None, json!(message)).await;
        }
        ToolResult::text("Tool with logging executed successfully")
    })
}

pub(super) fn tool_with_progress(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        pub(super) const TOTAL: u32 = 100;
        for (i, step) in [0, 50, TOTAL].into_iter().enumerate() {
            if i > 0 && !pause(&call, STEP).await {
                return cancelled();
            }
            call.progress(
                f64::from(step),
                Some(f64::from(TOTAL)),
                Some(format!("Completed step {step} of {TOTAL}")),
            )
            .await;
        }
        ToolResult::text(format!("Completed {TOTAL} of {TOTAL} steps"))
    })
}

pub(super) fn reconnection(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        // Ends the HTTP response carrying this call (after its priming event) without ending the
        // stream: the client comes back with GET + Last-Event-ID and gets the result there.
        call.close_connection().await;
        if !pause(&call, RECONNECTION_DELAY).await {
            return cancelled();
        }
        ToolResult::text(
            "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::testing::{no_requests, run, texts, Seen};
    use super::*;

    #[tokio::test]
    async fn logging_tool_sends_three_info_messages_about_50ms_apart() {
        let (r, seen) = run("test_tool_with_logging", json!({}), no_requests).await;
        assert_eq!(texts(&r), ["Tool with logging executed successfully"]);
        let logs: Vec<&Seen> = seen.iter().map(|(_, s)| s).collect();
        let expected: Vec<Seen> = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ]
        .into_iter()
        .map(|m| Seen::Log {
            level: LogLevel::Info,
            logger: None,
            data: json!(m),
        })
        .collect();
        assert_eq!(logs, expected.iter().collect::<Vec<_>>());
        assert!(seen[2].0 >= STEP * 2, "{:?}", seen[2].0);
    }

    #[tokio::test]
    async fn progress_tool_reports_0_50_100_of_100_with_the_callers_token() {
        let (r, seen) = run("test_tool_with_progress", json!({}), no_requests).await;
        assert!(r.to_value().get("isError").is_none());
        let progress: Vec<&Seen> = seen.iter().map(|(_, s)| s).collect();
        let expected: Vec<Seen> = [0.0, 50.0, 100.0]
            .into_iter()
            .map(|p| Seen::Progress {
                token: json!(1),
                progress: p,
                total: Some(100.0),
            })
            .collect();
        assert_eq!(progress, expected.iter().collect::<Vec<_>>());
        assert!(seen[2].0 >= STEP * 2, "{:?}", seen[2].0);
    }

    #[tokio::test]
    async fn reconnection_tool_closes_the_connection_before_its_result() {
        let start = Instant::now();
        let (r, seen) = run("test_reconnection", json!({}), no_requests).await;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1, Seen::CloseConnection);
        assert!(
            seen[0].0 < RECONNECTION_DELAY,
            "closes first: {:?}",
            seen[0].0
        );
        assert!(start.elapsed() >= RECONNECTION_DELAY);
        assert!(
            r.to_value().get("isError").is_none(),
            "an isError result fails the scenario"
        );
        assert!(texts(&r)[0].starts_with("Reconnection test completed successfully."));
    }
}
