//! What every 2026-07-28 result carries besides its content: `resultType`, this server's identity
//! in `_meta`, and the caching hints of the cacheable results (`ttlMs`, `cacheScope`).
//!
//! The catalog's list results are fixed for the life of the process, so their modern forms are
//! encoded once, next to the legacy ones the catalog keeps.

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::catalog::Catalog;
use crate::mcp::era;

/// The `_meta` key naming the server.
pub const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// How long clients may reuse a list result (`ttlMs`): the catalog cannot change while the
/// process runs, but a rolling upgrade can change it, and a minute bounds how long a client
/// keeps an old list.
pub const LIST_TTL_MS: u64 = 60_000;

/// The stamps of this node's modern results, encoded once.
pub(crate) struct Stamps {
    /// `"complete"`, as JSON.
    complete: Box<RawValue>,
    /// `{"io.modelcontextprotocol/serverInfo": {...}}`.
    meta: Box<RawValue>,
    server_info: Value,
    pub tools_list: Box<RawValue>,
    pub prompts_list: Box<RawValue>,
    pub resources_list: Box<RawValue>,
    pub templates_list: Box<RawValue>,
}

fn raw(value: &Value) -> Box<RawValue> {
    // A `Value` always encodes.
    serde_json::value::to_raw_value(value).unwrap_or_default()
}

impl Stamps {
    /// The stamps of `catalog`'s results.
    pub fn new(catalog: &Catalog) -> Stamps {
        let server_info =
            json!({"name": "mcpd", "title": "mcpd", "version": env!("CARGO_PKG_VERSION")});
        let meta = raw(&json!({ SERVER_INFO_KEY: server_info.clone() }));
        let list = |list: &RawValue| {
            let mut v: Value = serde_json::from_str(list.get()).unwrap_or_else(|_| json!({}));
            stamp_cacheable(&mut v, &server_info, LIST_TTL_MS, "public");
            raw(&v)
        };
        Stamps {
            complete: raw(&json!("complete")),
            tools_list: list(catalog.tools_list()),
            prompts_list: list(catalog.prompts_list()),
            resources_list: list(catalog.resources_list()),
            templates_list: list(catalog.templates_list()),
            meta,
            server_info,
        }
    }

    /// The fields to add to a tool's result: `resultType` and `_meta`.
    pub fn fields(&self) -> [(&'static str, &RawValue); 2] {
        [("resultType", &self.complete), ("_meta", &self.meta)]
    }

    /// `{name, title, version}` of this server.
    pub fn server_info(&self) -> &Value {
        &self.server_info
    }

    /// `value` (an object) as a complete result.
    pub fn complete(&self, mut value: Value) -> Value {
        stamp(&mut value, &self.server_info, "complete");
        value
    }

    /// `value` (an object) as a complete, cacheable result.
    pub fn cacheable(&self, mut value: Value, ttl_ms: u64, scope: &str) -> Value {
        stamp_cacheable(&mut value, &self.server_info, ttl_ms, scope);
        value
    }

    /// The `server/discover` result of a node whose catalog may announce list changes when
    /// `lists_change`.
    pub fn discover(&self, node: &str, lists_change: bool) -> Value {
        self.cacheable(
            json!({
                "supportedVersions": era::supported_versions(),
                "capabilities": {
                    "tools": {"listChanged": lists_change},
                    "resources": {"subscribe": true, "listChanged": lists_change},
                    "prompts": {"listChanged": lists_change},
                    "logging": {},
                    "completions": {}
                },
                "instructions": format!(
                    "mcpd node {node}. Call the node_info tool to see which node serves you."
                ),
            }),
            // Names this node: not to be shared across nodes or callers.
            0,
            "private",
        )
    }
}

fn stamp(value: &mut Value, server_info: &Value, result_type: &str) {
    if let Value::Object(m) = value {
        m.insert("resultType".into(), json!(result_type));
        let meta = m
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert(SERVER_INFO_KEY.into(), server_info.clone());
        }
    }
}

fn stamp_cacheable(value: &mut Value, server_info: &Value, ttl_ms: u64, scope: &str) {
    stamp(value, server_info, "complete");
    if let Value::Object(m) = value {
        m.insert("ttlMs".into(), json!(ttl_ms));
        m.insert("cacheScope".into(), json!(scope));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_discover_carry_the_cache_hints_and_the_server() {
        let s = Stamps::new(&Catalog::new(false));
        let tools: Value = serde_json::from_str(s.tools_list.get()).unwrap();
        assert_eq!(tools["resultType"], "complete");
        assert_eq!(tools["ttlMs"], LIST_TTL_MS);
        assert_eq!(tools["cacheScope"], "public");
        assert_eq!(tools["_meta"][SERVER_INFO_KEY]["name"], "mcpd");
        assert!(tools["tools"].as_array().is_some_and(|t| !t.is_empty()));
        let d = s.discover("n1", false);
        assert_eq!(d["supportedVersions"][0], "2026-07-28");
        assert_eq!(d["ttlMs"], 0);
        assert_eq!(
            d["_meta"][SERVER_INFO_KEY]["version"],
            env!("CARGO_PKG_VERSION")
        );
    }

    #[test]
    fn a_result_keeps_its_own_meta_entries() {
        let s = Stamps::new(&Catalog::new(false));
        let v = s.complete(json!({"_meta": {"x": 1}, "a": 2}));
        assert_eq!(v["_meta"]["x"], 1);
        assert_eq!(v["_meta"][SERVER_INFO_KEY]["name"], "mcpd");
        assert_eq!(v["resultType"], "complete");
    }
}
