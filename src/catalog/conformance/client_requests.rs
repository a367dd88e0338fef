//! Tools that ask the client something (a server→client request) and report its answer:
//! `test_sampling` (`sampling/createMessage`) and the three `elicitation/create` variants (plain,
//! with SEP-1034 defaults, with SEP-1330 enums). A failed request gives an `isError` result.

use serde_json::{json, Map, Value};

use crate::catalog::{arg_str, BoxFuture, Call, RequestError, ToolResult};

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

pub(super) fn sampling(call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let Some(prompt) = arg_str(&args, "prompt") else {
            return ToolResult::error("test_sampling needs a string argument `prompt`");
        };
        let params = json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": 100
        });
        match call.ask("sampling", "sampling/createMessage", params).await {
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

pub(super) fn elicitation(call: Call, args: Map<String, Value>) -> BoxFuture<ToolResult> {
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
            call.ask("elicitation", "elicitation/create", params).await,
        )
    })
}

pub(super) fn elicitation_sep1034_defaults(
    call: Call,
    _args: Map<String, Value>,
) -> BoxFuture<ToolResult> {
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
            call.ask("elicitation", "elicitation/create", params).await,
        )
    })
}

pub(super) fn elicitation_sep1330_enums(
    call: Call,
    _args: Map<String, Value>,
) -> BoxFuture<ToolResult> {
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
            call.ask("elicitation", "elicitation/create", params).await,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{no_requests, run, run_with, texts, Seen};
    use super::*;

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
        assert_eq!(r.to_value()["isError"], true);

        // Without the capability nothing is sent at all.
        let (r, seen) = run_with(
            "test_elicitation",
            json!({"message": "m"}),
            |_| false,
            no_requests,
        )
        .await;
        assert!(seen.is_empty());
        assert_eq!(r.to_value()["isError"], true);
        assert!(texts(&r)[0].contains("elicitation"), "{:?}", texts(&r));

        let (r, seen) = run("test_sampling", json!({}), no_requests).await;
        assert!(seen.is_empty());
        assert_eq!(r.to_value()["isError"], true);
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
}
