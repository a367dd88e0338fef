//! The `test_*` prompts: a plain one, one with arguments, one embedding a resource and one with
//! an image.

use serde_json::{json, Map, Value};

use super::data::{image_item, text_item};
use crate::catalog::Prompt;

/// The conformance suite's `test_*` prompts.
pub(super) fn list() -> Vec<Prompt> {
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
            asks: None,
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
            asks: None,
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
            asks: None,
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
            asks: None,
        },
        Prompt {
            name: "test_input_required_result_prompt",
            definition: json!({
                "name": "test_input_required_result_prompt",
                "description": "Asks the client what context to use before rendering (key user_context)"
            }),
            get: super::input_required::prompt_without_asking,
            completions: &[],
            asks: Some(super::input_required::prompt),
        },
    ]
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

#[cfg(test)]
mod tests {
    use super::super::data::image_item;
    use super::super::testing::catalog;
    use super::*;
    use crate::catalog::LookupError;

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
        use crate::catalog::CompletionRef;
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
