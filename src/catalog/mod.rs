//! What the server offers: tools, resources, resource templates, prompts and completions.
//!
//! The catalog knows nothing about HTTP, JSON-RPC framing or sessions. A tool is a plain function
//! from its arguments and a [`Call`] (the handle through which it reports progress, logs, asks the
//! client for sampling or elicitation, and learns it was cancelled) to a [`ToolResult`]. Lists are
//! rendered to JSON once at start, so `tools/list` costs a copy, not a serialization.
//!
//! Two sets exist: the built-in set an operator finds useful ([`builtin`]) and the official
//! conformance suite's fixtures ([`conformance`]), switched on by `[catalog] conformance`.

pub mod builtin;
mod call;
pub mod conformance;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

pub use call::{
    Asking, Call, CallInfo, ClientCapability, Emit, EmitReceiver, EmitSender, Emits, InputRequest,
    Inputs, ListKind, LogLevel, RequestError, RoundOutcome, UnknownLogLevel,
};

/// A boxed future returned by tool handlers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A tool's implementation: arguments (an empty map when the client sent none) and the call handle.
pub type ToolFn = fn(Call, Map<String, Value>) -> BoxFuture<ToolResult>;

/// A tool: its `tools/list` entry and its implementation.
pub struct Tool {
    /// The tool's name, as clients call it.
    pub name: &'static str,
    /// The whole `tools/list` entry: `name`, `description`, `inputSchema`, optional `title`,
    /// `annotations`, `outputSchema`.
    pub definition: Value,
    pub handler: ToolFn,
}

/// The result of `tools/call`: a `CallToolResult` object (`content`, optional `isError`,
/// `structuredContent`). Failures of the tool itself are results with `isError: true`, never
/// JSON-RPC errors (the spec's rule since 2025-11-25).
///
/// A text result, most tools' answer, stays text until it is written into the reply: building a
/// JSON tree for it only to serialize it again was a measurable part of a call's cost. The wire
/// form is the same either way (keys in `json!`'s sorted order).
#[derive(Debug, Clone)]
pub struct ToolResult(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Text {
        text: String,
        is_error: bool,
    },
    Object(Value),
    /// The tool cannot run without a capability the client did not declare.
    Missing(ClientCapability),
}

impl ToolResult {
    /// One text item.
    pub fn text(text: impl Into<String>) -> Self {
        ToolResult(Repr::Text {
            text: text.into(),
            is_error: false,
        })
    }

    /// Content items as given.
    pub fn content(items: Vec<Value>) -> Self {
        ToolResult(Repr::Object(json!({ "content": items })))
    }

    /// A tool-level error the model can read and act on.
    pub fn error(text: impl Into<String>) -> Self {
        ToolResult(Repr::Text {
            text: text.into(),
            is_error: true,
        })
    }

    /// The call needs `cap`, which the client did not declare. A 2026-07-28 request is answered
    /// with the protocol's `MissingRequiredClientCapability` error (400, -32021); a session's with
    /// an `isError` result saying so (its protocol has no such error).
    pub fn missing(cap: ClientCapability) -> Self {
        ToolResult(Repr::Missing(cap))
    }

    /// The capability this result says is missing, if it is such a result.
    pub fn missing_capability(&self) -> Option<ClientCapability> {
        match self.0 {
            Repr::Missing(cap) => Some(cap),
            _ => None,
        }
    }

    /// Text content plus the same data as `structuredContent`.
    pub fn structured(value: Value) -> Self {
        let text = value.to_string();
        ToolResult(Repr::Object(
            json!({"content": [{"type": "text", "text": text}], "structuredContent": value}),
        ))
    }

    fn missing_text(cap: ClientCapability) -> ToolResult {
        ToolResult::error(format!(
            "this tool needs the client's {} capability, which it did not declare",
            cap.key()
        ))
    }

    /// The `CallToolResult` as a JSON value, for code that inspects results.
    pub fn to_value(&self) -> Value {
        match &self.0 {
            Repr::Object(v) => v.clone(),
            Repr::Missing(cap) => ToolResult::missing_text(*cap).to_value(),
            Repr::Text { text, is_error } => {
                let mut v = json!({"content": [{"type": "text", "text": text}]});
                if *is_error {
                    v["isError"] = Value::Bool(true);
                }
                v
            }
        }
    }
}

impl Serialize for ToolResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_fields(&[]).serialize(s)
    }
}

/// A [`ToolResult`] with extra top-level fields after its own (see [`ToolResult::with_fields`]).
pub struct WithFields<'a> {
    result: &'a ToolResult,
    extra: &'a [(&'static str, &'a serde_json::value::RawValue)],
}

impl ToolResult {
    /// This result with `extra` fields added (the protocol layer stamps `resultType` and
    /// `_meta` this way), written straight into the reply. An object result's own field of the
    /// same name gives way, except `_meta`, whose entries are merged (`extra`'s win).
    pub fn with_fields<'a>(
        &'a self,
        extra: &'a [(&'static str, &'a serde_json::value::RawValue)],
    ) -> WithFields<'a> {
        WithFields {
            result: self,
            extra,
        }
    }
}

impl Serialize for WithFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct TextItem<'a> {
            text: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
        }
        let own = match &self.result.0 {
            Repr::Text { text, is_error } => {
                let len = 1 + usize::from(*is_error) + self.extra.len();
                let mut m = s.serialize_map(Some(len))?;
                m.serialize_entry("content", &[TextItem { text, kind: "text" }])?;
                if *is_error {
                    m.serialize_entry("isError", &true)?;
                }
                for (k, v) in self.extra {
                    m.serialize_entry(k, v)?;
                }
                return m.end();
            }
            Repr::Missing(cap) => {
                return ToolResult::missing_text(*cap)
                    .with_fields(self.extra)
                    .serialize(s)
            }
            Repr::Object(v) if self.extra.is_empty() => return v.serialize(s),
            Repr::Object(Value::Object(own)) => own.clone(),
            Repr::Object(_) => Map::new(),
        };
        let mut merged = own;
        for (k, v) in self.extra {
            let v: Value = serde_json::from_str(v.get()).unwrap_or(Value::Null);
            match (merged.get_mut(*k), v) {
                (Some(Value::Object(mine)), Value::Object(theirs)) if *k == "_meta" => {
                    mine.extend(theirs);
                }
                (_, v) => {
                    merged.insert((*k).to_owned(), v);
                }
            }
        }
        merged.serialize(s)
    }
}

/// A fixed resource.
pub struct Resource {
    /// The `resources/list` entry: `uri`, `name`, optional `title`, `description`, `mimeType`.
    pub definition: Value,
    pub uri: &'static str,
    /// Produces the `contents` array of `resources/read`.
    pub read: fn(&CallInfo) -> Vec<Value>,
}

/// A resource template (`resources/templates/list`) and how to read URIs that match it.
pub struct ResourceTemplate {
    /// The `resources/templates/list` entry: `uriTemplate`, `name`, `description`, `mimeType`.
    pub definition: Value,
    /// Returns the `contents` for a URI this template matches, `None` otherwise.
    pub read: fn(&str) -> Option<Vec<Value>>,
}

/// A prompt.
pub struct Prompt {
    pub name: &'static str,
    /// The `prompts/list` entry: `name`, `description`, optional `title`, `arguments`.
    pub definition: Value,
    /// Renders the `GetPromptResult` (`description`, `messages`) or says what is wrong with the
    /// arguments.
    pub get: fn(&Map<String, Value>) -> Result<Value, String>,
    /// Completion candidates per argument name.
    pub completions: &'static [(&'static str, &'static [&'static str])],
    /// For a prompt that asks the client something before it can be rendered: the rendering,
    /// with a [`Call`] to ask through. Both eras then run it like a tool call (`get` is only
    /// what [`Catalog::get_prompt`] answers, which has no way to ask).
    pub asks: Option<PromptAskFn>,
}

/// An interactive prompt's rendering: the call handle to ask the client through, and the
/// arguments.
pub type PromptAskFn = fn(Call, Map<String, Value>) -> BoxFuture<Result<Value, String>>;

/// What a `completion/complete` request refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionRef<'a> {
    Prompt(&'a str),
    Resource(&'a str),
}

/// Why a catalog lookup failed; the protocol layer maps these to JSON-RPC errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("Unknown tool: {0}")]
    UnknownTool(String),
    #[error("Resource not found: {0}")]
    UnknownResource(String),
    #[error("Unknown prompt: {0}")]
    UnknownPrompt(String),
    #[error("Invalid arguments for prompt {prompt}: {message}")]
    BadPromptArguments { prompt: String, message: String },
}

/// The served set, indexed by name and with its list replies rendered once.
pub struct Catalog {
    tools: Vec<Tool>,
    /// Hashed with foldhash: fixed at start, so untrusted names only look up (no flooding), and a
    /// lookup costs a few dozen instructions against SipHash's ~100.
    tool_index: HashMap<&'static str, usize, foldhash::fast::RandomState>,
    resources: Vec<Resource>,
    templates: Vec<ResourceTemplate>,
    prompts: Vec<Prompt>,
    tools_list: Box<serde_json::value::RawValue>,
    resources_list: Box<serde_json::value::RawValue>,
    templates_list: Box<serde_json::value::RawValue>,
    prompts_list: Box<serde_json::value::RawValue>,
    lists_change: bool,
}

impl Catalog {
    /// The built-in set, plus the conformance fixtures when asked for.
    pub fn new(conformance: bool) -> Catalog {
        let mut tools = builtin::tools();
        let mut resources = builtin::resources();
        let mut templates = builtin::templates();
        let mut prompts = builtin::prompts();
        if conformance {
            tools.extend(conformance::tools());
            resources.extend(conformance::resources());
            templates.extend(conformance::templates());
            prompts.extend(conformance::prompts());
        }
        let mut catalog = Self::from_parts(tools, resources, templates, prompts);
        catalog.lists_change = conformance;
        catalog
    }

    fn from_parts(
        tools: Vec<Tool>,
        resources: Vec<Resource>,
        templates: Vec<ResourceTemplate>,
        prompts: Vec<Prompt>,
    ) -> Catalog {
        let tool_index = tools.iter().enumerate().map(|(i, t)| (t.name, i)).collect();
        let render = |key: &str, items: Vec<&Value>| {
            let mut obj = Map::new();
            obj.insert(
                key.to_owned(),
                Value::Array(items.into_iter().cloned().collect()),
            );
            raw(&Value::Object(obj))
        };
        Catalog {
            tools_list: render("tools", tools.iter().map(|t| &t.definition).collect()),
            resources_list: render(
                "resources",
                resources.iter().map(|r| &r.definition).collect(),
            ),
            templates_list: render(
                "resourceTemplates",
                templates.iter().map(|t| &t.definition).collect(),
            ),
            prompts_list: render("prompts", prompts.iter().map(|p| &p.definition).collect()),
            lists_change: false,
            tools,
            tool_index,
            resources,
            templates,
            prompts,
        }
    }

    /// The `tools/list` result.
    pub fn tools_list(&self) -> &serde_json::value::RawValue {
        &self.tools_list
    }

    /// The `resources/list` result.
    pub fn resources_list(&self) -> &serde_json::value::RawValue {
        &self.resources_list
    }

    /// The `resources/templates/list` result.
    pub fn templates_list(&self) -> &serde_json::value::RawValue {
        &self.templates_list
    }

    /// The `prompts/list` result.
    pub fn prompts_list(&self) -> &serde_json::value::RawValue {
        &self.prompts_list
    }

    /// The tool named `name`.
    pub fn tool(&self, name: &str) -> Result<&Tool, LookupError> {
        self.tool_index
            .get(name)
            .map(|&i| &self.tools[i])
            .ok_or_else(|| LookupError::UnknownTool(name.to_owned()))
    }

    /// The `contents` of `resources/read` for `uri`.
    pub fn read_resource(&self, uri: &str, info: &CallInfo) -> Result<Vec<Value>, LookupError> {
        if let Some(r) = self.resources.iter().find(|r| r.uri == uri) {
            return Ok((r.read)(info));
        }
        self.templates
            .iter()
            .find_map(|t| (t.read)(uri))
            .ok_or_else(|| LookupError::UnknownResource(uri.to_owned()))
    }

    /// True when `uri` names a resource or matches a template (subscriptions are only accepted
    /// for those).
    pub fn has_resource(&self, uri: &str) -> bool {
        self.resources.iter().any(|r| r.uri == uri)
            || self.templates.iter().any(|t| (t.read)(uri).is_some())
    }

    /// Every tool, in `tools/list` order.
    pub fn tools(&self) -> impl Iterator<Item = &Tool> {
        self.tools.iter()
    }

    /// Whether the lists can change while the process runs (then clients are told so): only the
    /// conformance fixtures change them, on request.
    pub fn lists_change(&self) -> bool {
        self.lists_change
    }

    /// The rendering of prompt `name` if it is interactive (asks the client something).
    pub fn interactive_prompt(&self, name: &str) -> Option<PromptAskFn> {
        self.prompts
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.asks)
    }

    /// The `GetPromptResult` of `prompts/get`.
    pub fn get_prompt(&self, name: &str, args: &Map<String, Value>) -> Result<Value, LookupError> {
        let prompt = self
            .prompts
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| LookupError::UnknownPrompt(name.to_owned()))?;
        (prompt.get)(args).map_err(|message| LookupError::BadPromptArguments {
            prompt: name.to_owned(),
            message,
        })
    }

    /// Completion candidates for `argument` of `reference` starting with `prefix`.
    pub fn complete(
        &self,
        reference: &CompletionRef<'_>,
        argument: &str,
        prefix: &str,
    ) -> Result<Vec<String>, LookupError> {
        match reference {
            CompletionRef::Prompt(name) => {
                let prompt = self
                    .prompts
                    .iter()
                    .find(|p| p.name == *name)
                    .ok_or_else(|| LookupError::UnknownPrompt((*name).to_owned()))?;
                Ok(prompt
                    .completions
                    .iter()
                    .filter(|(arg, _)| *arg == argument)
                    .flat_map(|(_, values)| values.iter())
                    .filter(|v| v.starts_with(prefix))
                    .map(|v| (*v).to_owned())
                    .collect())
            }
            // No template of ours has enumerable values; an empty list is the honest answer.
            CompletionRef::Resource(_) => Ok(Vec::new()),
        }
    }
}

fn raw(value: &Value) -> Box<serde_json::value::RawValue> {
    // A `Value` always serializes, and its serialization is always valid JSON.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| {
        serde_json::value::RawValue::from_string("{}".to_owned()).unwrap_or_default()
    })
}

/// Reads an optional string argument.
pub fn arg_str<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

/// Reads an optional non-negative integer argument.
pub fn arg_u64(args: &Map<String, Value>, key: &str) -> Option<u64> {
    args.get(key).and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_entry_has_the_fields_clients_require() {
        let c = Catalog::new(true);
        let tools: Value = serde_json::from_str(c.tools_list().get()).unwrap();
        for t in tools["tools"].as_array().unwrap() {
            assert!(t["name"].is_string(), "{t}");
            assert!(t["description"].is_string(), "{t}");
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        }
        let prompts: Value = serde_json::from_str(c.prompts_list().get()).unwrap();
        for p in prompts["prompts"].as_array().unwrap() {
            assert!(p["name"].is_string() && p["description"].is_string(), "{p}");
        }
        let resources: Value = serde_json::from_str(c.resources_list().get()).unwrap();
        for r in resources["resources"].as_array().unwrap() {
            assert!(r["uri"].is_string() && r["name"].is_string(), "{r}");
        }
    }

    #[test]
    fn names_are_unique_within_each_list() {
        let c = Catalog::new(true);
        assert_eq!(c.tool_index.len(), c.tools.len());
        let mut uris: Vec<_> = c.resources.iter().map(|r| r.uri).collect();
        uris.sort_unstable();
        uris.dedup();
        assert_eq!(uris.len(), c.resources.len());
    }

    #[test]
    fn conformance_fixtures_are_off_by_default() {
        let c = Catalog::new(false);
        assert!(c.tool("echo").is_ok());
        assert_eq!(
            c.tool("test_simple_text").err(),
            Some(LookupError::UnknownTool("test_simple_text".into()))
        );
    }
}
