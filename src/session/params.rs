//! A session's durable parameters: what `initialize` settled. Unlike streams and tasks these are
//! plain data that could be written down and used to recreate the session elsewhere.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The legacy-era (session) protocol versions this server speaks, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProtocolVersion {
    #[serde(rename = "2025-03-26")]
    V2025_03_26,
    #[serde(rename = "2025-06-18")]
    V2025_06_18,
    #[serde(rename = "2025-11-25")]
    V2025_11_25,
}

impl ProtocolVersion {
    /// Every supported version, newest first (the order `supported` lists use).
    pub const ALL: [ProtocolVersion; 3] = [
        ProtocolVersion::V2025_11_25,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_03_26,
    ];

    /// The newest supported version: the answer to a client asking for one we do not speak.
    pub const LATEST: ProtocolVersion = ProtocolVersion::V2025_11_25;

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
        }
    }

    /// JSON-RPC batches may be received (2025-03-26 only; 2025-06-18 removed them).
    pub fn allows_batches(self) -> bool {
        self == ProtocolVersion::V2025_03_26
    }

    /// SSE streams start with a priming event and announce `retry:` (SEP-1699, 2025-11-25).
    pub fn primes_streams(self) -> bool {
        self >= ProtocolVersion::V2025_11_25
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string this server does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported protocol version {0:?}")]
pub struct UnsupportedVersion(pub String);

impl FromStr for ProtocolVersion {
    type Err = UnsupportedVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProtocolVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnsupportedVersion(s.to_owned()))
    }
}

/// Who a session belongs to, when authorization is on: the `iss`, `sub` and `client_id` of the
/// token that initialized it. Every later request must come with a token of the same bearer
/// (another one gets the 404 of an unknown session), on whichever node serves it: the registry
/// record carries it, so an adopted session stays bound.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bearer {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What `initialize` settled for the life of the session.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// The negotiated protocol version.
    pub protocol: ProtocolVersion,
    /// The client's `clientInfo` as sent.
    pub client_info: Value,
    /// `clientInfo.name`, for logs and `node_info`.
    pub client_name: Arc<str>,
    /// The client's `capabilities` as sent.
    pub capabilities: Value,
    /// The bearer the session is bound to (`auth` on); `None` without authorization.
    pub bearer: Option<Bearer>,
}

impl SessionParams {
    /// True when the client declared capability `key` (`sampling`, `elicitation`, `roots`).
    pub fn client_has(&self, key: &str) -> bool {
        self.capabilities.get(key).is_some_and(|v| !v.is_null())
    }
}
