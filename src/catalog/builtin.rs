//! The built-in set: small tools an operator uses to see and exercise a cluster.
//!
//! - `node_info` says which node, session and protocol version a client is pinned to;
//! - `echo` is the cheapest round trip (and what benchmarks call);
//! - `long_task` runs for a while, reports progress and stops when cancelled;
//! - `notify` sends a message on the session's standalone GET stream;
//! - `touch_resource` tells subscribers of a resource that it changed;
//! - `client_roots` asks the client for its roots (a server→client request answered by POST).

use serde_json::{json, Map, Value};

use super::{
    arg_str, arg_u64, BoxFuture, Call, CallInfo, LogLevel, Prompt, Resource, ResourceTemplate,
    Tool, ToolResult,
};

/// URI of the resource describing this node.
pub const NODE_RESOURCE: &str = "mcpd://node";

const LONG_TASK_MAX_STEPS: u64 = 10_000;
const LONG_TASK_MAX_INTERVAL_MS: u64 = 60_000;

/// The built-in tools.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "node_info",
            definition: json!({
                "name": "node_info",
                "title": "Node info",
                "description": "Which mcpd node serves this session: node id, session id, negotiated protocol version, client name, process uptime and version.",
                "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
                "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
            }),
            handler: node_info,
        },
        Tool {
            name: "echo",
            definition: json!({
                "name": "echo",
                "title": "Echo",
                "description": "Returns \"Echo: <message>\". The cheapest full round trip through the server.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"message": {"type": "string", "description": "Text to echo back"}},
                    "required": ["message"]
                },
                "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
            }),
            handler: echo,
        },
        Tool {
            name: "long_task",
            definition: json!({
                "name": "long_task",
                "title": "Long task",
                "description": "Runs `steps` steps of `interval_ms` each, reporting progress after every step; stops early when the request is cancelled.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "steps": {"type": "integer", "minimum": 1, "maximum": LONG_TASK_MAX_STEPS, "default": 10},
                        "interval_ms": {"type": "integer", "minimum": 0, "maximum": LONG_TASK_MAX_INTERVAL_MS, "default": 100}
                    }
                },
                "annotations": {"readOnlyHint": true, "openWorldHint": false}
            }),
            handler: long_task,
        },
        Tool {
            name: "notify",
            definition: json!({
                "name": "notify",
                "title": "Notify",
                "description": "Sends `message` as a notifications/message on this session's standalone (GET) stream, proving the server can reach the client outside a request.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "level": {"type": "string", "enum": ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"], "default": "info"}
                    },
                    "required": ["message"]
                },
                "annotations": {"readOnlyHint": true, "openWorldHint": false}
            }),
            handler: notify,
        },
        Tool {
            name: "touch_resource",
            definition: json!({
                "name": "touch_resource",
                "title": "Touch resource",
                "description": "Sends notifications/resources/updated for `uri` to every session on this node subscribed to it.",
                "inputSchema": {
                    "type": "object",
                    "properties": {"uri": {"type": "string"}},
                    "required": ["uri"]
                },
                "annotations": {"readOnlyHint": true, "openWorldHint": false}
            }),
            handler: touch_resource,
        },
        Tool {
            name: "client_roots",
            definition: json!({
                "name": "client_roots",
                "title": "Client roots",
                "description": "Asks the client for its roots (roots/list) and returns its answer: proves that a server-to-client request and its POSTed response reach this session.",
                "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
                "annotations": {"readOnlyHint": true, "openWorldHint": false}
            }),
            handler: client_roots,
        },
    ]
}

/// The built-in resources.
pub fn resources() -> Vec<Resource> {
    vec![Resource {
        uri: NODE_RESOURCE,
        definition: json!({
            "uri": NODE_RESOURCE,
            "name": "node",
            "title": "This node",
            "description": "The node serving this session, as JSON (the same facts as the node_info tool).",
            "mimeType": "application/json"
        }),
        read: |info| {
            vec![json!({
                "uri": NODE_RESOURCE,
                "mimeType": "application/json",
                "text": node_facts(info).to_string()
            })]
        },
    }]
}

/// The built-in resource templates (none yet).
pub fn templates() -> Vec<ResourceTemplate> {
    Vec::new()
}

/// The built-in prompts.
pub fn prompts() -> Vec<Prompt> {
    vec![Prompt {
        name: "routing_report",
        definition: json!({
            "name": "routing_report",
            "title": "Routing report",
            "description": "Asks the model to find out which mcpd node serves this session (node_info) and report it.",
            "arguments": [{
                "name": "detail",
                "description": "\"brief\" (node and session only) or \"full\" (every node_info field)",
                "required": false
            }]
        }),
        get: routing_report,
        completions: &[("detail", &["brief", "full"])],
        asks: None,
    }]
}

fn routing_report(args: &Map<String, Value>) -> Result<Value, String> {
    let detail = match args.get("detail") {
        None | Some(Value::Null) => "brief",
        Some(Value::String(d)) if d == "brief" || d == "full" => d.as_str(),
        Some(other) => return Err(format!("detail must be \"brief\" or \"full\", not {other}")),
    };
    let ask = if detail == "full" {
        "Call the node_info tool and report every field it returns."
    } else {
        "Call the node_info tool and say in one line which node and session serve us."
    };
    Ok(json!({
        "description": "Which mcpd node serves this session",
        "messages": [{"role": "user", "content": {"type": "text", "text": ask}}]
    }))
}

fn node_facts(info: &CallInfo) -> Value {
    let mut facts = json!({
        "node": &*info.node,
        "session_id": info.session_id.as_deref(),
        "protocol_version": info.protocol_version,
        "client": &*info.client_name,
        "uptime_seconds": info.started.elapsed().as_secs(),
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    // Who the caller is, when authorization is on (never the token itself).
    if let Some(p) = &info.principal {
        facts["principal"] = json!({
            "iss": p.issuer(),
            "sub": p.subject(),
            "client_id": p.client_id(),
            "scopes": p.scopes(),
        });
    }
    facts
}

fn node_info(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    let facts = node_facts(call.info());
    Box::pin(async move { ToolResult::structured(facts) })
}

fn echo(_call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    let result = match arg_str(&args, "message") {
        Some(m) => ToolResult::text(format!("Echo: {m}")),
        None => ToolResult::error("echo needs a string argument `message`"),
    };
    Box::pin(async move { result })
}

fn long_task(call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let steps = arg_u64(&args, "steps").unwrap_or(10);
        let interval = arg_u64(&args, "interval_ms").unwrap_or(100);
        if !(1..=LONG_TASK_MAX_STEPS).contains(&steps) || interval > LONG_TASK_MAX_INTERVAL_MS {
            return ToolResult::error(format!(
                "steps must be 1..={LONG_TASK_MAX_STEPS} and interval_ms 0..={LONG_TASK_MAX_INTERVAL_MS}"
            ));
        }
        let total = steps as f64;
        for step in 1..=steps {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(interval)) => {}
                () = call.cancelled() => return ToolResult::error(format!("cancelled after {} of {steps} steps", step - 1)),
            }
            call.progress(
                step as f64,
                Some(total),
                Some(format!("step {step} of {steps}")),
            )
            .await;
        }
        ToolResult::text(format!("completed {steps} steps"))
    })
}

fn notify(call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let Some(message) = arg_str(&args, "message") else {
            return ToolResult::error("notify needs a string argument `message`");
        };
        let level = match arg_str(&args, "level").map(str::parse::<LogLevel>) {
            None => LogLevel::Info,
            Some(Ok(level)) => level,
            Some(Err(e)) => return ToolResult::error(e.to_string()),
        };
        call.log_to_session(level, json!(message)).await;
        ToolResult::text("sent on the session stream")
    })
}

fn touch_resource(call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let Some(uri) = arg_str(&args, "uri") else {
            return ToolResult::error("touch_resource needs a string argument `uri`");
        };
        call.resource_updated(uri).await;
        ToolResult::text(format!("subscribers of {uri} notified"))
    })
}

fn client_roots(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        match call.ask("roots", "roots/list", json!({})).await {
            Ok(answer) => ToolResult::structured(answer),
            Err(e) => ToolResult::error(format!("roots/list failed: {e}")),
        }
    })
}
