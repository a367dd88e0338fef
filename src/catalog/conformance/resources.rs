//! The `test://` resources (static text, static binary, one to subscribe to) and the
//! `test://template/{id}/data` resource template.

use serde_json::{json, Value};

use super::data::TEST_IMAGE_BASE64;
use crate::catalog::{Resource, ResourceTemplate};

pub(super) const STATIC_TEXT_URI: &str = "test://static-text";
pub(super) const STATIC_BINARY_URI: &str = "test://static-binary";
pub(super) const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE_URI: &str = "test://template/{id}/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

/// The `test://` resources: a text one, a binary one and one to subscribe to.
pub(super) fn list() -> Vec<Resource> {
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
pub(super) fn templates() -> Vec<ResourceTemplate> {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{base64_decode, catalog, info};
    use super::*;
    use crate::catalog::LookupError;

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
}
