//! Diagnostic fixtures of the 2026-07-28 scenarios (suite 0.2.0-alpha.12, `server-stateless`
//! and SEP-2243): a tool that needs a capability, one that asks on its own stream, one that logs,
//! triggers of list changes, and a tool whose argument is mirrored into an `Mcp-Param-*` header.

use serde_json::{json, Map, Value};

use crate::catalog::{arg_str, BoxFuture, Call, ClientCapability, ListKind, LogLevel, ToolResult};

/// Needs sampling: without it a 2026-07-28 request is refused with -32021.
pub(super) fn missing_capability(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    let result = if call.supports(ClientCapability::Sampling) {
        ToolResult::text("the client declared sampling")
    } else {
        ToolResult::missing(ClientCapability::Sampling)
    };
    Box::pin(async move { result })
}

/// Asks for an elicitation while it runs: on the call's stream for a session, as an
/// `InputRequiredResult` for a 2026-07-28 request (never as a request on its stream).
pub(super) fn streaming_elicitation(
    call: Call,
    _args: Map<String, Value>,
) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        call.progress(0.0, Some(1.0), Some("asking".into())).await;
        let params = json!({
            "message": "Anything to add?",
            "requestedSchema": {"type": "object", "properties": {"note": {"type": "string"}}}
        });
        match call.ask("note", "elicitation/create", params).await {
            Ok(answer) => ToolResult::text(format!("answered: {answer}")),
            Err(e) => ToolResult::text(format!("not asked: {e}")),
        }
    })
}

/// Logs three messages: a 2026-07-28 client sees them only if its request set a log level.
pub(super) fn logging_tool(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        for step in ["started", "working", "done"] {
            call.log(LogLevel::Info, Some("test_logging_tool"), json!(step))
                .await;
        }
        ToolResult::text("logged three messages")
    })
}

pub(super) fn trigger_tool_change(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        call.list_changed(ListKind::Tools).await;
        ToolResult::text("listeners told that the tool list changed")
    })
}

pub(super) fn trigger_prompt_change(
    call: Call,
    _args: Map<String, Value>,
) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        call.list_changed(ListKind::Prompts).await;
        ToolResult::text("listeners told that the prompt list changed")
    })
}

/// `test_x_mcp_header`: its `region` argument travels in `Mcp-Param-Region` too.
pub(super) fn x_mcp_header(_call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    let result = match arg_str(&args, "region") {
        Some(region) => ToolResult::text(format!("region: {region}")),
        None => ToolResult::error("test_x_mcp_header needs a string argument `region`"),
    };
    Box::pin(async move { result })
}
