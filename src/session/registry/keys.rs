//! Redis key names and the record stored under a session key.
//!
//! - `<prefix>session:<id>`: a [`SessionRecord`] (JSON), TTL `session_ttl`;
//! - `<prefix>node:<node>`: the node's heartbeat, its boot id, short TTL;
//! - `<prefix>node:<node>:sessions`: the set of session ids the node registered.

use serde::{Deserialize, Serialize};

use crate::session::SessionId;

/// Builds the key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (for example `mcp:`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The key of one session.
    pub fn session(&self, id: &SessionId) -> String {
        format!("{}session:{id}", self.prefix)
    }

    /// The pattern matching every session key (for SCAN).
    pub fn session_pattern(&self) -> String {
        format!("{}session:*", self.prefix)
    }

    /// The session id in a session key, if it is one.
    pub fn session_id_of(&self, key: &str) -> Option<SessionId> {
        key.strip_prefix(&self.prefix)?
            .strip_prefix("session:")?
            .parse()
            .ok()
    }

    /// A node's heartbeat key.
    pub fn heartbeat(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// The pattern matching every heartbeat key (and, with `:sessions`, the node sets).
    pub fn node_pattern(&self) -> String {
        format!("{}node:*", self.prefix)
    }

    /// The node named by a heartbeat key (not by a node-set key).
    pub fn node_of(&self, key: &str) -> Option<String> {
        let node = key.strip_prefix(&self.prefix)?.strip_prefix("node:")?;
        (!node.contains(':')).then(|| node.to_owned())
    }

    /// A node's set of session ids.
    pub fn node_sessions(&self, node: &str) -> String {
        format!("{}node:{node}:sessions", self.prefix)
    }
}

/// What the registry records about a session: who owns it, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The owning node's id.
    pub node: String,
    /// The owning process's boot id (a new one at every start).
    pub boot: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The negotiated protocol version.
    pub protocol: String,
    /// The session's durable parameters, so that another node could continue it (session
    /// adoption): what `initialize` settled and what `logging/setLevel` and subscriptions changed.
    /// Never transport state (streams, channels, tasks, in-flight requests).
    #[serde(default)]
    pub client_info: serde_json::Value,
    #[serde(default)]
    pub capabilities: serde_json::Value,
    #[serde(default)]
    pub log_level: String,
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// The bearer the session is bound to (absent without authorization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<crate::session::Bearer>,
}

impl SessionRecord {
    /// The JSON stored in Redis.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored record; `None` for anything that is not one of ours.
    pub fn decode(raw: &str) -> Option<SessionRecord> {
        serde_json::from_str(raw).ok()
    }
}

/// A [`SessionRecord`] borrowed from a live session, so that writing one copies none of its
/// parameters first: the writer encodes one for every session it writes. It serializes field for
/// field as [`SessionRecord`] does; a test holds the two together.
#[derive(Debug, Serialize)]
pub struct SessionRecordRef<'a> {
    /// The owning node's id.
    pub node: &'a str,
    /// The owning process's boot id.
    pub boot: &'a str,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The negotiated protocol version.
    pub protocol: &'a str,
    /// The client's `clientInfo` as sent.
    pub client_info: &'a serde_json::Value,
    /// The client's `capabilities` as sent.
    pub capabilities: &'a serde_json::Value,
    /// The minimum level of `notifications/message`.
    pub log_level: &'a str,
    /// The resources the session subscribed to.
    pub subscriptions: &'a [String],
    /// The bearer the session is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer: Option<&'a crate::session::Bearer>,
}

impl SessionRecordRef<'_> {
    /// The JSON stored in Redis, the same as [`SessionRecord::encode`] gives.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a node's heartbeat says: which process (boot) is alive, and where peers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeBeat {
    /// The live process's boot id.
    pub boot: String,
    /// The node's internal base URL (`cluster.advertise_url`), for forwarding.
    pub url: String,
}

impl NodeBeat {
    /// The JSON stored in Redis.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored heartbeat; `None` for anything else.
    pub fn decode(raw: &str) -> Option<NodeBeat> {
        serde_json::from_str(raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_record_encodes_exactly_as_the_owned_one_and_decodes_back() {
        let owned = SessionRecord {
            node: "n1".into(),
            boot: "b-1".into(),
            created_ms: 1_764_000_000_123,
            protocol: "2025-06-18".into(),
            client_info: serde_json::json!({"name": "c", "version": "1", "extra": [1, "\u{e9}"]}),
            capabilities: serde_json::json!({"sampling": {}, "roots": {"listChanged": true}}),
            log_level: "warning".into(),
            subscriptions: vec!["file:///a".into(), "file:///b \"q\"".into()],
            bearer: Some(crate::session::Bearer {
                iss: "https://as".into(),
                sub: "u1".into(),
                client_id: Some("c1".into()),
            }),
        };
        let borrowed = SessionRecordRef {
            node: &owned.node,
            boot: &owned.boot,
            created_ms: owned.created_ms,
            protocol: &owned.protocol,
            client_info: &owned.client_info,
            capabilities: &owned.capabilities,
            log_level: &owned.log_level,
            subscriptions: &owned.subscriptions,
            bearer: owned.bearer.as_ref(),
        };
        assert_eq!(borrowed.encode(), owned.encode());
        assert_eq!(SessionRecord::decode(&borrowed.encode()), Some(owned));
    }

    #[test]
    fn keys_are_prefixed_and_session_keys_parse_back() {
        let k = Keys::new("mcp:");
        let id = SessionId::random();
        assert_eq!(k.session(&id), format!("mcp:session:{id}"));
        assert_eq!(k.session_id_of(&k.session(&id)), Some(id));
        assert_eq!(k.session_id_of("mcp:session:nope"), None);
        assert_eq!(k.session_id_of("other:session:x"), None);
        assert_eq!(k.heartbeat("n1"), "mcp:node:n1");
        assert_eq!(k.node_sessions("n1"), "mcp:node:n1:sessions");
    }

    #[test]
    fn records_round_trip_and_foreign_values_are_ignored() {
        let r = SessionRecord {
            node: "n1".into(),
            boot: "b".into(),
            created_ms: 5,
            protocol: "2025-11-25".into(),
            client_info: serde_json::json!({"name": "c", "version": "1"}),
            capabilities: serde_json::json!({}),
            log_level: "info".into(),
            subscriptions: vec!["mcpd://node".into()],
            bearer: None,
        };
        assert_eq!(SessionRecord::decode(&r.encode()), Some(r));
        assert_eq!(SessionRecord::decode("hello"), None);
    }
}
