//! The official MCP conformance suite's server fixtures.
//!
//! `npx @modelcontextprotocol/conformance server --url … --suite all` (version 0.1.16) calls tools,
//! reads resources and gets prompts by fixed names and checks what comes back. This file provides
//! exactly those fixtures, with the names, texts, schemas and data of the suite's reference server
//! (`examples/servers/typescript/everything-server.ts` at tag v0.1.16), so that running the suite
//! against mcpd tests our transport and protocol layers rather than our choice of demo content.
//! They are only served when `[catalog] conformance` is on.
//!
//! Deliberate differences from the reference server (none changes a check's outcome):
//! - a failed `sampling/createMessage` or `elicitation/create` gives an `isError` result, where the
//!   reference returns a plain text result;
//! - `test_tool_with_progress` cannot see its progress token, so its result text is a summary
//!   instead of the token;
//! - the tools stop early when the call is cancelled;
//! - `test_prompt_with_arguments` offers a few completions for `arg1` (the reference offers none),
//!   prompts' `GetPromptResult`s carry their description, and `test://watched-resource` does not
//!   claim to update itself (the reference's description says so, but it never does).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{
    arg_str, BoxFuture, Call, LogLevel, Prompt, RequestError, Resource, ResourceTemplate, Tool,
    ToolResult,
};

/// A 1×1 red PNG, base64 (the reference server's `TEST_IMAGE_BASE64`).
const TEST_IMAGE_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A minimal WAV file, base64 (the reference server's `TEST_AUDIO_BASE64`).
const TEST_AUDIO_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// The text of the JSON resource embedded by `test_multiple_content_types`, byte for byte what
/// `JSON.stringify({test: 'data', value: 123})` gives.
const MIXED_CONTENT_JSON: &str = r#"{"test":"data","value":123}"#;

const STATIC_TEXT_URI: &str = "test://static-text";
const STATIC_BINARY_URI: &str = "test://static-binary";
const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE_URI: &str = "test://template/{id}/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

/// The dialect `json_schema_2020_12_tool` declares; the suite checks it is kept verbatim.
const JSON_SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Gap between the notifications of the logging and progress tools.
const STEP: Duration = Duration::from_millis(50);

/// How long `test_reconnection` keeps running after closing its SSE connection (the reference's
/// 100 ms). The suite reconnects at once and waits up to 5 s, so the result reaches it either
/// replayed after its Last-Event-ID or live on the resumed stream.
const RECONNECTION_DELAY: Duration = Duration::from_millis(100);

/// The conformance suite's `test_*` tools and `json_schema_2020_12_tool`.
pub fn tools() -> Vec<Tool> {
    vec![
        no_args_tool(
            "test_simple_text",
            "Tests simple text content response",
            simple_text,
        ),
        no_args_tool(
            "test_image_content",
            "Tests image content response",
            image_content,
        ),
        no_args_tool(
            "test_audio_content",
            "Tests audio content response",
            audio_content,
        ),
        no_args_tool(
            "test_embedded_resource",
            "Tests embedded resource content response",
            embedded_resource,
        ),
        no_args_tool(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            multiple_content_types,
        ),
        no_args_tool(
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
            tool_with_logging,
        ),
        no_args_tool(
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
            tool_with_progress,
        ),
        no_args_tool(
            "test_error_handling",
            "Tests error response handling",
            error_handling,
        ),
        no_args_tool(
            "test_reconnection",
            "Tests SSE stream disconnection and client reconnection (SEP-1699). Server will close the stream mid-call and send the result after client reconnects.",
            reconnection,
        ),
        Tool {
            name: "test_sampling",
            definition: json!({
                "name": "test_sampling",
                "description": "Tests server-initiated sampling (LLM completion request)",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "prompt": {"type": "string", "description": "The prompt to send to the LLM"}
                    },
                    "required": ["prompt"]
                }
            }),
            handler: sampling,
        },
        Tool {
            name: "test_elicitation",
            definition: json!({
                "name": "test_elicitation",
                "description": "Tests server-initiated elicitation (user input request)",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string", "description": "The message to show the user"}
                    },
                    "required": ["message"]
                }
            }),
            handler: elicitation,
        },
        no_args_tool(
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
            elicitation_sep1034_defaults,
        ),
        no_args_tool(
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            elicitation_sep1330_enums,
        ),
        Tool {
            name: "json_schema_2020_12_tool",
            definition: json!({
                "name": "json_schema_2020_12_tool",
                "description": "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
                "inputSchema": json_schema_2020_12_input_schema()
            }),
            handler: json_schema_2020_12_tool,
        },
    ]
}

/// The `test://` resources: a text one, a binary one and one to subscribe to.
pub fn resources() -> Vec<Resource> {
    vec![
        Resource {
            uri: STATIC_TEXT_URI,
            definition: json!({
                "uri": STATIC_TEXT_URI,
                "name": "static-text",
                "title": "Static Text Resource",
                "description": "A static text resource for testing",
                "mimeType": "text/plain"
            }),
            read: |_| {
                vec![json!({
                    "uri": STATIC_TEXT_URI,
                    "mimeType": "text/plain",
                    "text": "This is the content of the static text resource."
                })]
            },
        },
        Resource {
            uri: STATIC_BINARY_URI,
            definition: json!({
                "uri": STATIC_BINARY_URI,
                "name": "static-binary",
                "title": "Static Binary Resource",
                "description": "A static binary resource (image) for testing",
                "mimeType": "image/png"
            }),
            read: |_| {
                vec![json!({
                    "uri": STATIC_BINARY_URI,
                    "mimeType": "image/png",
                    "blob": TEST_IMAGE_BASE64
                })]
            },
        },
        Resource {
            uri: WATCHED_URI,
            definition: json!({
                "uri": WATCHED_URI,
                "name": "watched-resource",
                "title": "Watched Resource",
                // The reference says "auto-updates every 3 seconds" but never updates it; neither
                // do we (the `touch_resource` tool can notify its subscribers by hand).
                "description": "A resource to subscribe to (resources/subscribe and resources/unsubscribe tests)",
                "mimeType": "text/plain"
            }),
            read: |_| {
                vec![json!({
                    "uri": WATCHED_URI,
                    "mimeType": "text/plain",
                    "text": "Watched resource content"
                })]
            },
        },
    ]
}

/// The `test://template/{id}/data` template.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![ResourceTemplate {
        definition: json!({
            "uriTemplate": TEMPLATE_URI,
            "name": "template",
            "title": "Resource Template",
            "description": "A resource template with parameter substitution",
            "mimeType": "application/json"
        }),
        read: read_template,
    }]
}

/// The conformance suite's `test_*` prompts.
pub fn prompts() -> Vec<Prompt> {
    vec![
        Prompt {
            name: "test_simple_prompt",
            definition: json!({
                "name": "test_simple_prompt",
                "title": "Simple Test Prompt",
                "description": "A simple prompt without arguments"
            }),
            get: |_| {
                Ok(json!({
                    "description": "A simple prompt without arguments",
                    "messages": [user_text("This is a simple prompt for testing.")]
                }))
            },
            completions: &[],
        },
        Prompt {
            name: "test_prompt_with_arguments",
            definition: json!({
                "name": "test_prompt_with_arguments",
                "title": "Prompt With Arguments",
                "description": "A prompt with required arguments",
                "arguments": [
                    {"name": "arg1", "description": "First test argument", "required": true},
                    {"name": "arg2", "description": "Second test argument", "required": true}
                ]
            }),
            get: |args| {
                let arg1 = required_string(args, "arg1")?;
                let arg2 = required_string(args, "arg2")?;
                Ok(json!({
                    "description": "A prompt with required arguments",
                    "messages": [user_text(&format!(
                        "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
                    ))]
                }))
            },
            // The reference answers every completion with an empty list; a few candidates make
            // `completion/complete` show it really filters by prefix.
            completions: &[("arg1", &["paris", "park", "party", "test", "testValue1"])],
        },
        Prompt {
            name: "test_prompt_with_embedded_resource",
            definition: json!({
                "name": "test_prompt_with_embedded_resource",
                "title": "Prompt With Embedded Resource",
                "description": "A prompt that includes an embedded resource",
                "arguments": [
                    {"name": "resourceUri", "description": "URI of the resource to embed", "required": true}
                ]
            }),
            get: |args| {
                let uri = required_string(args, "resourceUri")?;
                Ok(json!({
                    "description": "A prompt that includes an embedded resource",
                    "messages": [
                        {
                            "role": "user",
                            "content": {
                                "type": "resource",
                                "resource": {
                                    "uri": uri,
                                    "mimeType": "text/plain",
                                    "text": "Embedded resource content for testing."
                                }
                            }
                        },
                        user_text("Please process the embedded resource above.")
                    ]
                }))
            },
            completions: &[],
        },
        Prompt {
            name: "test_prompt_with_image",
            definition: json!({
                "name": "test_prompt_with_image",
                "title": "Prompt With Image",
                "description": "A prompt that includes image content"
            }),
            get: |_| {
                Ok(json!({
                    "description": "A prompt that includes image content",
                    "messages": [
                        {"role": "user", "content": image_item()},
                        user_text("Please analyze the image above.")
                    ]
                }))
            },
            completions: &[],
        },
    ]
}

// ----- definitions and content helpers -----

/// A tool that takes no arguments (`inputSchema` is an object with no properties).
fn no_args_tool(name: &'static str, description: &'static str, handler: super::ToolFn) -> Tool {
    Tool {
        name,
        definition: json!({
            "name": name,
            "description": description,
            "inputSchema": {"type": "object", "properties": {}}
        }),
        handler,
    }
}

/// `json_schema_2020_12_tool`'s input schema, verbatim from the scenario: the suite checks that
/// `$schema`, `$defs.address` and `additionalProperties: false` survive `tools/list`.
fn json_schema_2020_12_input_schema() -> Value {
    json!({
        "$schema": JSON_SCHEMA_2020_12,
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string"}
                }
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"}
        },
        "additionalProperties": false
    })
}

fn image_item() -> Value {
    json!({"type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png"})
}

fn text_item(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn user_text(text: &str) -> Value {
    json!({"role": "user", "content": text_item(text)})
}

/// A prompt argument the client must send, as a string.
fn required_string<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match args.get(name) {
        None | Some(Value::Null) => Err(format!("missing required argument `{name}`")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("argument `{name}` must be a string")),
    }
}

/// `resources/read` for `test://template/{id}/data`: `id` is one non-empty path segment.
fn read_template(uri: &str) -> Option<Vec<Value>> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    // Written by hand to keep the reference's key order (`JSON.stringify` keeps insertion order,
    // serde_json's map sorts); `Value::String` escapes the id.
    let text = format!(
        r#"{{"id":{},"templateTest":true,"data":{}}}"#,
        Value::String(id.to_owned()),
        Value::String(format!("Data for ID: {id}")),
    );
    Some(vec![json!({
        "uri": uri,
        "mimeType": "application/json",
        "text": text
    })])
}

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

/// Renders the result of an `elicitation/create` the way the reference server does:
/// `<prefix>: action=<action>, content=<content as JSON>`.
fn elicitation_outcome(prefix: &str, answer: Result<Value, RequestError>) -> ToolResult {
    match answer {
        Ok(result) => {
            let action = result
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let content = result.get("content").cloned().unwrap_or_else(|| json!({}));
            ToolResult::text(format!("{prefix}: action={action}, content={content}"))
        }
        Err(e) => ToolResult::error(format!("Elicitation not supported or error: {e}")),
    }
}

// ----- tool handlers -----

fn simple_text(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async { ToolResult::text("This is a simple text response for testing.") })
}

fn image_content(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async { ToolResult::content(vec![image_item()]) })
}

fn audio_content(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async {
        ToolResult::content(vec![json!({
            "type": "audio",
            "data": TEST_AUDIO_BASE64,
            "mimeType": "audio/wav"
        })])
    })
}

fn embedded_resource(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async {
        ToolResult::content(vec![json!({
            "type": "resource",
            "resource": {
                "uri": "test://embedded-resource",
                "mimeType": "text/plain",
                "text": "This is an embedded resource content."
            }
        })])
    })
}

fn multiple_content_types(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async {
        ToolResult::content(vec![
            text_item("Multiple content types test:"),
            image_item(),
            json!({
                "type": "resource",
                "resource": {
                    "uri": "test://mixed-content-resource",
                    "mimeType": "application/json",
                    "text": MIXED_CONTENT_JSON
                }
            }),
        ])
    })
}

fn tool_with_logging(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
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

fn tool_with_progress(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        const TOTAL: u32 = 100;
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

fn error_handling(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async { ToolResult::error("This tool intentionally returns an error for testing") })
}

fn reconnection(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
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

fn sampling(call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let Some(prompt) = arg_str(&args, "prompt") else {
            return ToolResult::error("test_sampling needs a string argument `prompt`");
        };
        let params = json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": 100
        });
        match call.request("sampling/createMessage", params).await {
            Ok(result) => {
                // `CreateMessageResult.content`; older clients nest it under `message`.
                let text = result
                    .pointer("/content/text")
                    .or_else(|| result.pointer("/message/content/text"))
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .unwrap_or("No response");
                ToolResult::text(format!("LLM response: {text}"))
            }
            Err(e) => ToolResult::error(format!("Sampling not supported or error: {e}")),
        }
    })
}

fn elicitation(call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let Some(message) = arg_str(&args, "message") else {
            return ToolResult::error("test_elicitation needs a string argument `message`");
        };
        let params = json!({
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "response": {"type": "string", "description": "User's response"}
                },
                "required": ["response"]
            }
        });
        elicitation_outcome(
            "User response",
            call.request("elicitation/create", params).await,
        )
    })
}

fn elicitation_sep1034_defaults(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let params = json!({
            "message": "Please review and update the form fields with defaults",
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {
                        "type": "string",
                        "description": "User status",
                        "enum": ["active", "inactive", "pending"],
                        "default": "active"
                    },
                    "verified": {"type": "boolean", "description": "Verification status", "default": true}
                },
                "required": []
            }
        });
        elicitation_outcome(
            "Elicitation completed",
            call.request("elicitation/create", params).await,
        )
    })
}

fn elicitation_sep1330_enums(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let params = json!({
            "message": "Please select options from the enum fields",
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "untitledSingle": {
                        "type": "string",
                        "description": "Select one option",
                        "enum": ["option1", "option2", "option3"]
                    },
                    "titledSingle": {
                        "type": "string",
                        "description": "Select one option with titles",
                        "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"}
                        ]
                    },
                    "legacyEnum": {
                        "type": "string",
                        "description": "Select one option (legacy)",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"]
                    },
                    "untitledMulti": {
                        "type": "array",
                        "description": "Select multiple options",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
                    },
                    "titledMulti": {
                        "type": "array",
                        "description": "Select multiple options with titles",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {
                            "anyOf": [
                                {"const": "value1", "title": "First Choice"},
                                {"const": "value2", "title": "Second Choice"},
                                {"const": "value3", "title": "Third Choice"}
                            ]
                        }
                    }
                },
                "required": []
            }
        });
        elicitation_outcome(
            "Elicitation completed",
            call.request("elicitation/create", params).await,
        )
    })
}

fn json_schema_2020_12_tool(_call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        ToolResult::text(format!(
            "JSON Schema 2020-12 tool called with: {}",
            Value::Object(args)
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::super::{CallInfo, Catalog, ClientCapability, Emit, LookupError};
    use super::*;

    fn info() -> CallInfo {
        CallInfo {
            node: Arc::from("test-node"),
            session_id: Arc::from("test-session"),
            protocol_version: "2025-11-25",
            client_name: Arc::from("test-client 1.0"),
            started: Instant::now(),
        }
    }

    /// What a tool sent, in order, without the reply channels.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Progress {
            token: Value,
            progress: f64,
            total: Option<f64>,
        },
        Log {
            level: LogLevel,
            logger: Option<String>,
            data: Value,
        },
        Request {
            method: &'static str,
            params: Value,
        },
        CloseConnection,
        Other,
    }

    /// Runs tool `name` with a progress token of `1` and every client capability, answering each
    /// server→client request with `answer(method, params)`. Returns the result, what the tool
    /// emitted and when (time since the call started).
    async fn run(
        name: &str,
        args: Value,
        answer: impl Fn(&str, &Value) -> Result<Value, RequestError>,
    ) -> (ToolResult, Vec<(Duration, Seen)>) {
        run_with(name, args, |_| true, answer).await
    }

    async fn run_with(
        name: &str,
        args: Value,
        caps: impl Fn(ClientCapability) -> bool,
        answer: impl Fn(&str, &Value) -> Result<Value, RequestError>,
    ) -> (ToolResult, Vec<(Duration, Seen)>) {
        let tool = tools()
            .into_iter()
            .find(|t| t.name == name)
            .expect("tool exists");
        let (tx, mut rx) = mpsc::channel(16);
        let call = Call::new(info(), tx, CancellationToken::new(), Some(json!(1)), caps);
        let args = match args {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let start = Instant::now();
        let task = tokio::spawn((tool.handler)(call, args));
        let mut seen = Vec::new();
        // The channel closes when the tool drops its `Call`, i.e. when it has finished.
        while let Some(emit) = rx.recv().await {
            let s = match emit {
                Emit::Progress {
                    token,
                    progress,
                    total,
                    ..
                } => Seen::Progress {
                    token,
                    progress,
                    total,
                },
                Emit::Log {
                    level,
                    logger,
                    data,
                } => Seen::Log {
                    level,
                    logger,
                    data,
                },
                Emit::Request {
                    method,
                    params,
                    reply,
                } => {
                    let _ = reply.send(answer(method, &params));
                    Seen::Request { method, params }
                }
                Emit::CloseConnection => Seen::CloseConnection,
                _ => Seen::Other,
            };
            seen.push((start.elapsed(), s));
        }
        (task.await.expect("tool does not panic"), seen)
    }

    fn no_requests(method: &str, _: &Value) -> Result<Value, RequestError> {
        panic!("unexpected request {method}")
    }

    fn texts(result: &ToolResult) -> Vec<&str> {
        result.0["content"]
            .as_array()
            .expect("content array")
            .iter()
            .filter_map(|c| c["text"].as_str())
            .collect()
    }

    /// Standard base64 (with padding) decoded by hand, so the tests need no crate.
    fn base64_decode(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        assert_eq!(s.len() % 4, 0, "base64 length is a multiple of 4");
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes().filter(|&c| c != b'=') {
            let v = ALPHABET
                .iter()
                .position(|&a| a == c)
                .unwrap_or_else(|| panic!("not base64: {:?}", c as char))
                as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    fn catalog() -> Catalog {
        Catalog::new(true)
    }

    // ----- lists -----

    #[test]
    fn every_fixture_the_suite_names_is_served() {
        let c = catalog();
        for name in [
            "test_simple_text",
            "test_image_content",
            "test_audio_content",
            "test_embedded_resource",
            "test_multiple_content_types",
            "test_tool_with_logging",
            "test_error_handling",
            "test_tool_with_progress",
            "test_sampling",
            "test_elicitation",
            "test_elicitation_sep1034_defaults",
            "test_elicitation_sep1330_enums",
            "json_schema_2020_12_tool",
            "test_reconnection",
        ] {
            let tool = c.tool(name).unwrap_or_else(|e| panic!("{e}"));
            let d = &tool.definition;
            assert_eq!(d["name"], name);
            assert!(!d["description"].as_str().unwrap().is_empty(), "{name}");
            assert_eq!(d["inputSchema"]["type"], "object", "{name}");
        }
        for uri in [STATIC_TEXT_URI, STATIC_BINARY_URI, WATCHED_URI] {
            assert!(c.has_resource(uri), "{uri}");
        }
        let prompts: Value = serde_json::from_str(c.prompts_list().get()).unwrap();
        let names: Vec<&str> = prompts["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "test_simple_prompt",
            "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource",
            "test_prompt_with_image",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        let templates: Value = serde_json::from_str(c.templates_list().get()).unwrap();
        assert_eq!(
            templates["resourceTemplates"][0]["uriTemplate"],
            "test://template/{id}/data"
        );
    }

    #[test]
    fn json_schema_2020_12_tool_keeps_its_keywords_in_tools_list() {
        // Through the rendered `tools/list`, as the suite sees it.
        let list: Value = serde_json::from_str(catalog().tools_list().get()).unwrap();
        let tool = list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "json_schema_2020_12_tool")
            .expect("listed");
        let schema = &tool["inputSchema"];
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["$defs"]["address"]["type"], "object");
        assert_eq!(
            schema["$defs"]["address"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(schema["properties"]["address"]["$ref"], "#/$defs/address");
        assert_eq!(schema["additionalProperties"], Value::Bool(false));
    }

    // ----- content -----

    #[test]
    fn the_image_is_a_1x1_png_and_the_audio_a_wav() {
        let png = base64_decode(TEST_IMAGE_BASE64);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..24], &[0, 0, 0, 1, 0, 0, 0, 1], "1×1 pixels");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");

        let wav = base64_decode(TEST_AUDIO_BASE64);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
    }

    #[tokio::test]
    async fn content_tools_return_the_reference_content() {
        let (r, _) = run("test_simple_text", json!(null), no_requests).await;
        assert_eq!(texts(&r), ["This is a simple text response for testing."]);

        let (r, _) = run("test_image_content", json!({}), no_requests).await;
        assert_eq!(
            r.0["content"][0],
            json!({"type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png"})
        );

        let (r, _) = run("test_audio_content", json!({}), no_requests).await;
        assert_eq!(r.0["content"][0]["type"], "audio");
        assert_eq!(r.0["content"][0]["mimeType"], "audio/wav");
        assert_eq!(r.0["content"][0]["data"], TEST_AUDIO_BASE64);

        let (r, _) = run("test_embedded_resource", json!({}), no_requests).await;
        let res = &r.0["content"][0];
        assert_eq!(res["type"], "resource");
        assert_eq!(res["resource"]["uri"], "test://embedded-resource");
        assert_eq!(res["resource"]["mimeType"], "text/plain");
        assert_eq!(
            res["resource"]["text"],
            "This is an embedded resource content."
        );

        let (r, _) = run("test_multiple_content_types", json!({}), no_requests).await;
        let types: Vec<&str> = r.0["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["text", "image", "resource"]);
        assert_eq!(
            r.0["content"][2]["resource"]["text"],
            r#"{"test":"data","value":123}"#
        );
        assert!(r.0.get("isError").is_none());
    }

    #[tokio::test]
    async fn the_error_tool_returns_an_is_error_result() {
        let (r, _) = run("test_error_handling", json!({}), no_requests).await;
        assert_eq!(r.0["isError"], true);
        assert_eq!(
            texts(&r),
            ["This tool intentionally returns an error for testing"]
        );
    }

    #[tokio::test]
    async fn json_schema_tool_echoes_its_arguments() {
        let (r, _) = run(
            "json_schema_2020_12_tool",
            json!({"name": "x"}),
            no_requests,
        )
        .await;
        assert_eq!(
            texts(&r),
            [r#"JSON Schema 2020-12 tool called with: {"name":"x"}"#]
        );
    }

    // ----- notifications during a call -----

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
        assert!(r.0.get("isError").is_none());
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
            r.0.get("isError").is_none(),
            "an isError result fails the scenario"
        );
        assert!(texts(&r)[0].starts_with("Reconnection test completed successfully."));
    }

    // ----- server→client requests -----

    #[tokio::test]
    async fn sampling_tool_asks_the_client_and_reports_its_answer() {
        let (r, seen) = run(
            "test_sampling",
            json!({"prompt": "Test prompt for sampling"}),
            |_, _| {
                Ok(json!({
                    "role": "assistant",
                    "content": {"type": "text", "text": "This is a test response from the client"},
                    "model": "test-model",
                    "stopReason": "endTurn"
                }))
            },
        )
        .await;
        assert_eq!(
            seen[0].1,
            Seen::Request {
                method: "sampling/createMessage",
                params: json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": "Test prompt for sampling"}}],
                    "maxTokens": 100
                })
            }
        );
        assert_eq!(
            texts(&r),
            ["LLM response: This is a test response from the client"]
        );
    }

    #[tokio::test]
    async fn a_failed_client_request_becomes_an_is_error_result() {
        let (r, _) = run("test_sampling", json!({"prompt": "p"}), |_, _| {
            Err(RequestError::Rejected {
                code: -32600,
                message: "no".into(),
            })
        })
        .await;
        assert_eq!(r.0["isError"], true);

        // Without the capability nothing is sent at all.
        let (r, seen) = run_with(
            "test_elicitation",
            json!({"message": "m"}),
            |_| false,
            no_requests,
        )
        .await;
        assert!(seen.is_empty());
        assert_eq!(r.0["isError"], true);
        assert!(texts(&r)[0].contains("elicitation"), "{:?}", texts(&r));

        let (r, seen) = run("test_sampling", json!({}), no_requests).await;
        assert!(seen.is_empty());
        assert_eq!(r.0["isError"], true);
    }

    #[tokio::test]
    async fn elicitation_tool_sends_the_message_and_reports_the_answer() {
        let (r, seen) = run(
            "test_elicitation",
            json!({"message": "Please provide your information"}),
            |_, _| Ok(json!({"action": "accept", "content": {"username": "testuser"}})),
        )
        .await;
        let Seen::Request { method, params } = &seen[0].1 else {
            panic!("{seen:?}")
        };
        assert_eq!(*method, "elicitation/create");
        assert_eq!(params["message"], "Please provide your information");
        assert_eq!(params["requestedSchema"]["type"], "object");
        assert!(params["requestedSchema"]["properties"].is_object());
        assert_eq!(
            texts(&r),
            [r#"User response: action=accept, content={"username":"testuser"}"#]
        );
    }

    #[tokio::test]
    async fn sep1034_elicitation_carries_a_default_for_every_primitive_type() {
        let (r, seen) = run("test_elicitation_sep1034_defaults", json!({}), |_, _| {
            Ok(json!({"action": "decline"}))
        })
        .await;
        let Seen::Request { method, params } = &seen[0].1 else {
            panic!("{seen:?}")
        };
        assert_eq!(*method, "elicitation/create");
        let p = &params["requestedSchema"]["properties"];
        assert_eq!(p["name"]["type"], "string");
        assert_eq!(p["name"]["default"], "John Doe");
        assert_eq!(p["age"]["type"], "integer");
        assert!(p["age"]["default"].is_u64() && p["age"]["default"] == 30);
        assert_eq!(p["score"]["type"], "number");
        assert_eq!(p["score"]["default"], 95.5);
        assert_eq!(p["status"]["type"], "string");
        assert_eq!(
            p["status"]["enum"],
            json!(["active", "inactive", "pending"])
        );
        assert_eq!(p["status"]["default"], "active");
        assert_eq!(p["verified"]["type"], "boolean");
        assert_eq!(p["verified"]["default"], true);
        assert_eq!(
            texts(&r),
            ["Elicitation completed: action=decline, content={}"]
        );
    }

    #[tokio::test]
    async fn sep1330_elicitation_carries_all_five_enum_shapes() {
        let (_, seen) = run("test_elicitation_sep1330_enums", json!({}), |_, _| {
            Ok(json!({"action": "cancel"}))
        })
        .await;
        let Seen::Request { params, .. } = &seen[0].1 else {
            panic!("{seen:?}")
        };
        let p = &params["requestedSchema"]["properties"];
        let titled = |v: &Value| {
            v.as_array().is_some_and(|a| {
                !a.is_empty()
                    && a.iter()
                        .all(|i| i["const"].is_string() && i["title"].is_string())
            })
        };

        assert_eq!(p["untitledSingle"]["type"], "string");
        assert!(p["untitledSingle"]["enum"].is_array());
        assert!(p["untitledSingle"].get("oneOf").is_none());
        assert!(p["untitledSingle"].get("enumNames").is_none());

        assert_eq!(p["titledSingle"]["type"], "string");
        assert!(titled(&p["titledSingle"]["oneOf"]));
        assert!(p["titledSingle"].get("enum").is_none());

        assert_eq!(p["legacyEnum"]["type"], "string");
        assert_eq!(
            p["legacyEnum"]["enum"].as_array().unwrap().len(),
            p["legacyEnum"]["enumNames"].as_array().unwrap().len()
        );

        assert_eq!(p["untitledMulti"]["type"], "array");
        assert_eq!(p["untitledMulti"]["items"]["type"], "string");
        assert!(p["untitledMulti"]["items"]["enum"].is_array());
        assert!(p["untitledMulti"]["items"].get("anyOf").is_none());

        assert_eq!(p["titledMulti"]["type"], "array");
        assert!(titled(&p["titledMulti"]["items"]["anyOf"]));
        assert!(p["titledMulti"]["items"].get("enum").is_none());
    }

    // ----- resources -----

    #[test]
    fn static_resources_read_with_uri_mime_type_and_content() {
        let c = catalog();
        let text = c.read_resource(STATIC_TEXT_URI, &info()).unwrap();
        assert_eq!(
            text,
            [json!({
                "uri": "test://static-text",
                "mimeType": "text/plain",
                "text": "This is the content of the static text resource."
            })]
        );
        let binary = c.read_resource(STATIC_BINARY_URI, &info()).unwrap();
        assert_eq!(binary[0]["uri"], "test://static-binary");
        assert_eq!(binary[0]["mimeType"], "image/png");
        assert_eq!(
            &base64_decode(binary[0]["blob"].as_str().unwrap())[..4],
            b"\x89PNG"
        );
        let watched = c.read_resource(WATCHED_URI, &info()).unwrap();
        assert_eq!(watched[0]["text"], "Watched resource content");
    }

    #[test]
    fn the_template_substitutes_the_id() {
        let contents = catalog()
            .read_resource("test://template/123/data", &info())
            .unwrap();
        assert_eq!(
            contents,
            [json!({
                "uri": "test://template/123/data",
                "mimeType": "application/json",
                "text": r#"{"id":"123","templateTest":true,"data":"Data for ID: 123"}"#
            })]
        );
        // An id that needs escaping still gives valid JSON.
        let odd = read_template(r#"test://template/a"b/data"#).unwrap();
        let parsed: Value = serde_json::from_str(odd[0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(parsed["id"], r#"a"b"#);
    }

    #[test]
    fn the_template_rejects_other_uris() {
        for uri in [
            "test://template//data",
            "test://template/1/2/data",
            "test://template/123/data/",
            "test://template/123",
            "test://template/data",
            "test://other/123/data",
        ] {
            assert_eq!(read_template(uri), None, "{uri}");
        }
        assert_eq!(
            catalog().read_resource("test://nope", &info()),
            Err(LookupError::UnknownResource("test://nope".into()))
        );
    }

    // ----- prompts -----

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn prompts_render_the_reference_messages() {
        let c = catalog();
        let simple = c.get_prompt("test_simple_prompt", &Map::new()).unwrap();
        assert_eq!(simple["messages"][0]["role"], "user");
        assert_eq!(
            simple["messages"][0]["content"]["text"],
            "This is a simple prompt for testing."
        );

        let with_args = c
            .get_prompt(
                "test_prompt_with_arguments",
                &args(json!({"arg1": "testValue1", "arg2": "testValue2"})),
            )
            .unwrap();
        assert_eq!(
            with_args["messages"][0]["content"]["text"],
            "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
        );

        let embedded = c
            .get_prompt(
                "test_prompt_with_embedded_resource",
                &args(json!({"resourceUri": "test://example-resource"})),
            )
            .unwrap();
        assert_eq!(embedded["messages"][0]["content"]["type"], "resource");
        assert_eq!(
            embedded["messages"][0]["content"]["resource"]["uri"],
            "test://example-resource"
        );

        let image = c.get_prompt("test_prompt_with_image", &Map::new()).unwrap();
        assert_eq!(image["messages"][0]["content"], image_item());
        assert_eq!(image["messages"][1]["content"]["type"], "text");
    }

    #[test]
    fn prompts_reject_missing_or_non_string_required_arguments() {
        let c = catalog();
        let err = c
            .get_prompt(
                "test_prompt_with_arguments",
                &args(json!({"arg1": "only one"})),
            )
            .unwrap_err();
        assert_eq!(
            err,
            LookupError::BadPromptArguments {
                prompt: "test_prompt_with_arguments".into(),
                message: "missing required argument `arg2`".into()
            }
        );
        assert!(c
            .get_prompt(
                "test_prompt_with_arguments",
                &args(json!({"arg1": 1, "arg2": "x"}))
            )
            .is_err());
        assert!(c
            .get_prompt("test_prompt_with_embedded_resource", &Map::new())
            .is_err());
    }

    #[test]
    fn completion_of_arg1_filters_by_prefix() {
        use super::super::CompletionRef;
        let c = catalog();
        let r = CompletionRef::Prompt("test_prompt_with_arguments");
        assert_eq!(
            c.complete(&r, "arg1", "test").unwrap(),
            ["test", "testValue1"]
        );
        assert_eq!(
            c.complete(&r, "arg1", "par").unwrap(),
            ["paris", "park", "party"]
        );
        assert!(c.complete(&r, "arg2", "").unwrap().is_empty());
    }
}
