//! The official MCP conformance suite's server fixtures.
//!
//! `npx @modelcontextprotocol/conformance server --url … --suite all` (version 0.1.16) calls tools,
//! reads resources and gets prompts by fixed names and checks what comes back. This module
//! provides exactly those fixtures, with the names, texts, schemas and data of the suite's
//! reference server (`examples/servers/typescript/everything-server.ts` at tag v0.1.16), so that
//! running the suite against mcpd tests our transport and protocol layers rather than our choice
//! of demo content. They are only served when `[catalog] conformance` is on.
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
//!
//! The fixtures, one idea a file:
//! - `content`: tools returning fixed content (text, image, audio, embedded resources), an
//!   `isError` result, or their arguments;
//! - `streaming`: tools that log, report progress or close their connection before answering;
//! - `client_requests`: tools that ask the client for sampling or elicitation;
//! - `input_required`: the multi round-trip (MRTR) tools and prompt of suite 0.2.0-alpha.12;
//! - `stateless`: the 2026-07-28 diagnostic tools (a missing capability, logs without opt-in,
//!   list-change triggers, an `x-mcp-header` argument);
//! - `resources`: the `test://` resources and the resource template;
//! - `prompts`: the `test_*` prompts;
//! - `data`: the reference server's media and texts, and the content items built from them.
//! - `testing` (tests only): running a tool against a fake client, and other test helpers.
//!
//! The tool definitions are listed here, in the reference server's order, since that order is
//! what `tools/list` shows.

mod client_requests;
mod content;
mod data;
mod input_required;
mod prompts;
mod resources;
mod stateless;
mod streaming;
#[cfg(test)]
mod testing;

use serde_json::{json, Value};

use crate::catalog::{Prompt, Resource, ResourceTemplate, Tool, ToolFn};

/// The dialect `json_schema_2020_12_tool` declares; the suite checks it is kept verbatim.
const JSON_SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// The conformance suite's `test_*` tools and `json_schema_2020_12_tool`.
pub fn tools() -> Vec<Tool> {
    vec![
        no_args_tool(
            "test_simple_text",
            "Tests simple text content response",
            content::simple_text,
        ),
        no_args_tool(
            "test_image_content",
            "Tests image content response",
            content::image_content,
        ),
        no_args_tool(
            "test_audio_content",
            "Tests audio content response",
            content::audio_content,
        ),
        no_args_tool(
            "test_embedded_resource",
            "Tests embedded resource content response",
            content::embedded_resource,
        ),
        no_args_tool(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            content::multiple_content_types,
        ),
        no_args_tool(
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
            streaming::tool_with_logging,
        ),
        no_args_tool(
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
            streaming::tool_with_progress,
        ),
        no_args_tool(
            "test_error_handling",
            "Tests error response handling",
            content::error_handling,
        ),
        no_args_tool(
            "test_reconnection",
            "Tests SSE stream disconnection and client reconnection (SEP-1699). Server will close the stream mid-call and send the result after client reconnects.",
            streaming::reconnection,
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
            handler: client_requests::sampling,
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
            handler: client_requests::elicitation,
        },
        no_args_tool(
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
            client_requests::elicitation_sep1034_defaults,
        ),
        no_args_tool(
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            client_requests::elicitation_sep1330_enums,
        ),
        Tool {
            name: "json_schema_2020_12_tool",
            definition: json!({
                "name": "json_schema_2020_12_tool",
                "description": "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
                "inputSchema": json_schema_2020_12_input_schema()
            }),
            handler: content::json_schema_2020_12_tool,
        },
        no_args_tool(
            "test_input_required_result_elicitation",
            "Asks the client for a name (key user_name) and greets it",
            input_required::elicitation,
        ),
        no_args_tool(
            "test_input_required_result_sampling",
            "Asks the client's model a question (key capital_question)",
            input_required::sampling_tool,
        ),
        no_args_tool(
            "test_input_required_result_list_roots",
            "Asks the client for its roots (key client_roots)",
            input_required::list_roots,
        ),
        no_args_tool(
            "test_input_required_result_request_state",
            "Asks for a confirmation, carrying its state in requestState",
            input_required::request_state,
        ),
        no_args_tool(
            "test_input_required_result_multiple_inputs",
            "Asks an elicitation, a sampling and the roots in one round",
            input_required::multiple_inputs,
        ),
        no_args_tool(
            "test_input_required_result_multi_round",
            "Asks a name, then a color: two rounds",
            input_required::multi_round,
        ),
        no_args_tool(
            "test_input_required_result_tampered_state",
            "Asks a confirmation; its requestState is integrity-protected",
            input_required::tampered_state,
        ),
        no_args_tool(
            "test_input_required_result_capabilities",
            "Asks only for what the client declared (elicitation, sampling)",
            input_required::capabilities,
        ),
        no_args_tool(
            "test_missing_capability",
            "Needs the client's sampling capability",
            stateless::missing_capability,
        ),
        no_args_tool(
            "test_streaming_elicitation",
            "Reports progress, then asks the client something",
            stateless::streaming_elicitation,
        ),
        no_args_tool(
            "test_logging_tool",
            "Logs three messages (sent only to clients that asked for logs)",
            stateless::logging_tool,
        ),
        no_args_tool(
            "test_trigger_tool_change",
            "Tells the listeners that the tool list changed",
            stateless::trigger_tool_change,
        ),
        no_args_tool(
            "test_trigger_prompt_change",
            "Tells the listeners that the prompt list changed",
            stateless::trigger_prompt_change,
        ),
        Tool {
            name: "test_x_mcp_header",
            definition: json!({
                "name": "test_x_mcp_header",
                "description": "Echoes its region argument, which clients mirror into the Mcp-Param-Region header (SEP-2243)",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "region": {"type": "string", "description": "A region name", "x-mcp-header": "Region"}
                    },
                    "required": ["region"]
                }
            }),
            handler: stateless::x_mcp_header,
        },
    ]
}

/// The `test://` resources: a text one, a binary one and one to subscribe to.
pub fn resources() -> Vec<Resource> {
    resources::list()
}

/// The `test://template/{id}/data` template.
pub fn templates() -> Vec<ResourceTemplate> {
    resources::templates()
}

/// The conformance suite's `test_*` prompts.
pub fn prompts() -> Vec<Prompt> {
    prompts::list()
}

// ----- definitions -----

/// A tool that takes no arguments (`inputSchema` is an object with no properties).
fn no_args_tool(name: &'static str, description: &'static str, handler: ToolFn) -> Tool {
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
                "$anchor": "addressDef",
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string"}
                }
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::resources::{STATIC_BINARY_URI, STATIC_TEXT_URI, WATCHED_URI};
    use super::testing::catalog;

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
}
