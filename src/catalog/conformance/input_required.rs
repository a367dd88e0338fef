//! Fixtures that ask the client something before they can answer (SEP-2322, multi round-trip
//! requests): the `test_input_required_result_*` tools and prompt of suite 0.2.0-alpha.12.
//!
//! Each asks through [`Call::ask`] under a fixed key, so the same fixture serves both eras: a
//! session's client gets server→client requests on the call's stream, a 2026-07-28 client gets an
//! `InputRequiredResult` and answers under the key in its next round.

use serde_json::{json, Map, Value};

use crate::catalog::{BoxFuture, Call, ClientCapability, RequestError, ToolResult};

fn ask_name() -> Value {
    json!({
        "message": "What is your name?",
        "requestedSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"]
        }
    })
}

fn sampling(text: &str, max_tokens: u64) -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        "maxTokens": max_tokens
    })
}

/// `content.<field>` of an accepted elicitation, or why there is none.
fn accepted(answer: &Value, field: &str) -> Result<String, String> {
    match answer.get("action").and_then(Value::as_str) {
        Some("accept") => Ok(answer
            .pointer(&format!("/content/{field}"))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()),
        Some(other) => Err(format!("the user chose {other}")),
        None => Err("the answer has no action".into()),
    }
}

fn failed(e: RequestError) -> ToolResult {
    ToolResult::error(format!("the client could not answer: {e}"))
}

/// The text of a sampling answer.
fn sampled(answer: &Value) -> String {
    answer
        .pointer("/content/text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

pub(super) fn elicitation(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        match call
            .ask("user_name", "elicitation/create", ask_name())
            .await
        {
            Ok(answer) => match accepted(&answer, "name") {
                Ok(name) => ToolResult::text(format!("Hello, {name}!")),
                Err(why) => ToolResult::text(format!("No name given: {why}")),
            },
            Err(e) => failed(e),
        }
    })
}

pub(super) fn sampling_tool(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let params = sampling("What is the capital of France?", 100);
        match call
            .ask("capital_question", "sampling/createMessage", params)
            .await
        {
            Ok(answer) => ToolResult::text(format!("The model answered: {}", sampled(&answer))),
            Err(e) => failed(e),
        }
    })
}

pub(super) fn list_roots(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        match call.ask("client_roots", "roots/list", json!({})).await {
            Ok(answer) => {
                let n = answer
                    .get("roots")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                ToolResult::text(format!("The client has {n} root(s): {answer}"))
            }
            Err(e) => failed(e),
        }
    })
}

pub(super) fn request_state(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let params = json!({
            "message": "Please confirm",
            "requestedSchema": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"]
            }
        });
        match call.ask("confirm", "elicitation/create", params).await {
            Ok(answer) => match accepted(&answer, "ok") {
                Ok(ok) => ToolResult::text(format!("state-ok: confirmed={ok}")),
                Err(why) => ToolResult::text(format!("state-ok: not confirmed ({why})")),
            },
            Err(e) => failed(e),
        }
    })
}

pub(super) fn multiple_inputs(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let answers = call
            .ask_all(vec![
                ("user_name", "elicitation/create", ask_name()),
                (
                    "greeting",
                    "sampling/createMessage",
                    sampling("Generate a greeting", 50),
                ),
                ("client_roots", "roots/list", json!({})),
            ])
            .await;
        let mut it = answers.into_iter();
        let (Some(name), Some(greeting), Some(roots)) = (it.next(), it.next(), it.next()) else {
            return ToolResult::error("three questions, fewer answers");
        };
        match (name, greeting, roots) {
            (Ok(name), Ok(greeting), Ok(roots)) => {
                let name = accepted(&name, "name").unwrap_or_else(|why| why);
                let n = roots
                    .get("roots")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                ToolResult::text(format!(
                    "name={name}; greeting={}; roots={n}",
                    sampled(&greeting)
                ))
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => failed(e),
        }
    })
}

pub(super) fn multi_round(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let first = json!({
            "message": "Step 1: What is your name?",
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        });
        let name = match call.ask("step1", "elicitation/create", first).await {
            Ok(a) => accepted(&a, "name").unwrap_or_else(|why| why),
            Err(e) => return failed(e),
        };
        let second = json!({
            "message": format!("Step 2: What is your favorite color, {name}?"),
            "requestedSchema": {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
        });
        match call.ask("step2", "elicitation/create", second).await {
            Ok(a) => {
                let color = accepted(&a, "color").unwrap_or_else(|why| why);
                ToolResult::text(format!("{name} likes {color}"))
            }
            Err(e) => failed(e),
        }
    })
}

pub(super) fn tampered_state(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let params = json!({
            "message": "Please confirm (the state of this request is integrity-protected)",
            "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
        });
        match call.ask("confirm", "elicitation/create", params).await {
            Ok(_) => ToolResult::text("state verified"),
            Err(e) => failed(e),
        }
    })
}

/// Asks only for what the client declared: an elicitation if it can, a sampling if it can.
pub(super) fn capabilities(call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        let mut questions = Vec::new();
        if call.supports(ClientCapability::Elicitation) {
            questions.push(("elicit_input", "elicitation/create", ask_name()));
        }
        if call.supports(ClientCapability::Sampling) {
            questions.push((
                "sample_input",
                "sampling/createMessage",
                sampling("Say hello", 50),
            ));
        }
        if questions.is_empty() {
            return ToolResult::text(
                "capabilities-ok: the client declared neither elicitation nor sampling",
            );
        }
        let asked: Vec<&str> = questions.iter().map(|(k, _, _)| *k).collect::<Vec<_>>();
        let asked = asked.join(", ");
        let answers = call.ask_all(questions).await;
        match answers.into_iter().find_map(Result::err) {
            Some(e) => failed(e),
            None => ToolResult::text(format!("capabilities-ok: received {asked}")),
        }
    })
}

/// `test_input_required_result_prompt`: asks what context the prompt should use, then renders.
pub(super) fn prompt(call: Call, _args: Map<String, Value>) -> BoxFuture<Result<Value, String>> {
    Box::pin(async move {
        let params = json!({
            "message": "What context should the prompt use?",
            "requestedSchema": {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]}
        });
        let answer = call
            .ask("user_context", "elicitation/create", params)
            .await
            .map_err(|e| format!("the client could not answer: {e}"))?;
        let context = accepted(&answer, "context")?;
        Ok(json!({
            "description": "A prompt rendered with context the client gave",
            "messages": [{"role": "user", "content": {"type": "text", "text": format!("Use this context: {context}")}}]
        }))
    })
}

/// The prompt rendered without a way to ask (not reached through either era, which both run
/// [`prompt`]).
pub(super) fn prompt_without_asking(_args: &Map<String, Value>) -> Result<Value, String> {
    Err("test_input_required_result_prompt asks the client for context first".into())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, texts};
    use serde_json::json;

    #[tokio::test]
    async fn each_fixture_asks_under_its_keys_and_uses_the_answers() {
        let (r, seen) = run(
            "test_input_required_result_elicitation",
            json!({}),
            |m, _| {
                assert_eq!(m, "elicitation/create");
                Ok(json!({"action": "accept", "content": {"name": "Alice"}}))
            },
        )
        .await;
        assert_eq!(texts(&r), ["Hello, Alice!"]);
        assert_eq!(seen.len(), 1);
        let (r, seen) = run(
            "test_input_required_result_multiple_inputs",
            json!({}),
            |m, _| {
                Ok(match m {
                    "elicitation/create" => json!({"action": "accept", "content": {"name": "Bo"}}),
                    "sampling/createMessage" => {
                        json!({"role": "assistant", "content": {"type": "text", "text": "Hi"}})
                    }
                    _ => json!({"roots": [{"uri": "file:///r"}]}),
                })
            },
        )
        .await;
        assert_eq!(texts(&r), ["name=Bo; greeting=Hi; roots=1"]);
        assert_eq!(seen.len(), 3);
        let (r, _) = run(
            "test_input_required_result_multi_round",
            json!({}),
            |_, p| {
                Ok(if p["message"].as_str().unwrap().starts_with("Step 1") {
                    json!({"action": "accept", "content": {"name": "Alice"}})
                } else {
                    json!({"action": "accept", "content": {"color": "blue"}})
                })
            },
        )
        .await;
        assert_eq!(texts(&r), ["Alice likes blue"]);
    }
}
