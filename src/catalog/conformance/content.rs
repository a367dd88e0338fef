//! The content tools: each answers with fixed content of one kind (text, image, audio, an
//! embedded resource, several kinds at once), with an `isError` result, or with its arguments.

use serde_json::{json, Map, Value};

use super::data::{image_item, text_item, MIXED_CONTENT_JSON, TEST_AUDIO_BASE64};
use crate::catalog::{BoxFuture, Call, ToolResult};

pub(super) fn simple_text(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async { ToolResult::text("This is a simple text response for testing.") })
}

pub(super) fn image_content(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async { ToolResult::content(vec![image_item()]) })
}

pub(super) fn audio_content(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async {
        ToolResult::content(vec![json!({
            "type": "audio",
            "data": TEST_AUDIO_BASE64,
            "mimeType": "audio/wav"
        })])
    })
}

pub(super) fn embedded_resource(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
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

pub(super) fn multiple_content_types(
    _call: Call,
    _args: Map<String, Value>,
) -> BoxFuture<ToolResult> {
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

pub(super) fn error_handling(_call: Call, _args: Map<String, Value>) -> BoxFuture<ToolResult> {
    Box::pin(async { ToolResult::error("This tool intentionally returns an error for testing") })
}

pub(super) fn json_schema_2020_12_tool(
    _call: Call,
    args: Map<String, Value>,
) -> BoxFuture<ToolResult> {
    Box::pin(async move {
        ToolResult::text(format!(
            "JSON Schema 2020-12 tool called with: {}",
            Value::Object(args)
        ))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::data::{TEST_AUDIO_BASE64, TEST_IMAGE_BASE64};
    use super::super::testing::{no_requests, run, texts};

    #[tokio::test]
    async fn content_tools_return_the_reference_content() {
        let (r, _) = run("test_simple_text", json!(null), no_requests).await;
        assert_eq!(texts(&r), ["This is a simple text response for testing."]);

        let (r, _) = run("test_image_content", json!({}), no_requests).await;
        assert_eq!(
            r.to_value()["content"][0],
            json!({"type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png"})
        );

        let (r, _) = run("test_audio_content", json!({}), no_requests).await;
        assert_eq!(r.to_value()["content"][0]["type"], "audio");
        assert_eq!(r.to_value()["content"][0]["mimeType"], "audio/wav");
        assert_eq!(r.to_value()["content"][0]["data"], TEST_AUDIO_BASE64);

        let (r, _) = run("test_embedded_resource", json!({}), no_requests).await;
        let res = &r.to_value()["content"][0];
        assert_eq!(res["type"], "resource");
        assert_eq!(res["resource"]["uri"], "test://embedded-resource");
        assert_eq!(res["resource"]["mimeType"], "text/plain");
        assert_eq!(
            res["resource"]["text"],
            "This is an embedded resource content."
        );

        let (r, _) = run("test_multiple_content_types", json!({}), no_requests).await;
        let v = r.to_value();
        let types: Vec<&str> = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["text", "image", "resource"]);
        assert_eq!(
            r.to_value()["content"][2]["resource"]["text"],
            r#"{"test":"data","value":123}"#
        );
        assert!(r.to_value().get("isError").is_none());
    }

    #[tokio::test]
    async fn the_error_tool_returns_an_is_error_result() {
        let (r, _) = run("test_error_handling", json!({}), no_requests).await;
        assert_eq!(r.to_value()["isError"], true);
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
}
