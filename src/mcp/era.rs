//! Which protocol era a POST belongs to, decided once, at the entry, from its body and headers.
//!
//! mcpd is a dual-era server (spec 2026-07-28, `basic/versioning.mdx`): the stateless protocol
//! of 2026-07-28 ("modern") and the session protocol of 2025-03-26 … 2025-11-25 ("legacy") on
//! one endpoint. The body decides, the header only cross-checks (as the TypeScript SDK and rmcp
//! do; the Python SDK still routes on the header alone):
//!
//! | the POST                                                         | era                       |
//! |------------------------------------------------------------------|---------------------------|
//! | a message whose `params._meta` names a protocol version          | modern (whatever headers) |
//! | no such claim, `MCP-Protocol-Version` a legacy version or absent | legacy                    |
//! | no claim, header `2026-07-28`                                    | modern (→ 400 -32602: no envelope) |
//! | no claim, an unknown header version, no `Mcp-Session-Id`         | modern (→ 400 -32602)     |
//! | no claim, an unknown header version, with `Mcp-Session-Id`       | legacy (→ 400, as before) |
//! | a batch (2025-03-26) without claims / with one                   | legacy / 400 -32600       |
//!
//! So a modern request carrying an `Mcp-Session-Id` is modern (the id is ignored: never looked
//! up, never answered 404), a legacy request on a live session whose body claims 2026-07-28 gets
//! the modern header-mismatch error, and `initialize` with a modern header gets 400 -32602.
//! GET and DELETE have no body: they are legacy session operations, and without a session id a
//! modern client's GET or DELETE gets 405.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonrpc::{Body, ErrorCode, Message};
use super::transport::{Reply, RequestHeaders};
use crate::session::ProtocolVersion;

/// The two protocol eras one endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25: `initialize`, sessions, GET streams.
    Legacy,
    /// 2026-07-28: every request stands alone.
    Modern,
}

impl Era {
    /// The label in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stateless protocol revisions this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModernVersion {
    V2026_07_28,
}

impl ModernVersion {
    /// Every supported modern revision, newest first.
    pub const ALL: [ModernVersion; 1] = [ModernVersion::V2026_07_28];

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ModernVersion::V2026_07_28 => "2026-07-28",
        }
    }
}

impl fmt::Display for ModernVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModernVersion {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        ModernVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(())
    }
}

/// Every protocol version this server speaks, both eras, newest first: `server/discover`'s
/// `supportedVersions` and the `supported` list of an unsupported-version error.
pub fn supported_versions() -> Vec<&'static str> {
    ModernVersion::ALL
        .iter()
        .map(|v| v.as_str())
        .chain(ProtocolVersion::ALL.iter().map(|v| v.as_str()))
        .collect()
}

/// The `_meta` key through which a request claims the modern era.
pub const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// Decides the era of a parsed POST (see the module's table). Errs only for a batch that mixes in
/// a modern request.
pub fn classify(h: &RequestHeaders<'_>, body: &Body<'_>) -> Result<Era, Reply> {
    if body.batch {
        if body.messages.iter().any(claims_modern) {
            return Err(Reply::error(
                400,
                ErrorCode::INVALID_REQUEST,
                "Invalid Request: a 2026-07-28 request cannot be part of a JSON-RPC batch",
            ));
        }
        return Ok(Era::Legacy);
    }
    // A modern header makes the request modern with or without a claim: the body need not be
    // looked at (what every 2026-07-28 client sends).
    if modern_header(h) {
        return Ok(Era::Modern);
    }
    let header = h.protocol_version.map(str::trim_ascii);
    if body.messages.first().is_some_and(claims_modern) {
        return Ok(Era::Modern);
    }
    Ok(match header {
        None => Era::Legacy,
        Some(v) if v.parse::<ProtocolVersion>().is_ok() => Era::Legacy,
        Some(_) if h.session_id.is_some() => Era::Legacy,
        Some(_) => Era::Modern,
    })
}

/// True when `MCP-Protocol-Version` names a modern revision: the request is modern whatever its
/// body (a single message; a batch is refused by the modern path).
pub fn modern_header(h: &RequestHeaders<'_>) -> bool {
    h.protocol_version.is_some_and(|v| {
        // What clients send, compared whole before anything is trimmed.
        v == ModernVersion::V2026_07_28.as_str() || v.trim_ascii().parse::<ModernVersion>().is_ok()
    })
}

/// True when a request's or notification's `params._meta` carries the protocol version key. A
/// plain substring test first: legacy traffic never pays for more.
fn claims_modern(m: &Message<'_>) -> bool {
    let params = match m {
        Message::Request { params, .. } | Message::Notification { params, .. } => *params,
        Message::Response { .. } => None,
    };
    let Some(params) = params else { return false };
    // Legacy requests pay for this on every call: first the cheapest test that can rule a claim
    // out (no `_meta"` after any `_`), then a searcher built once (`str::contains` builds one
    // per call: a tenth of a legacy request).
    let bytes = params.get().as_bytes();
    if !memchr::memchr_iter(b'_', bytes).any(|i| bytes[i..].starts_with(b"_meta\"")) {
        return false;
    }
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(VERSION_KEY));
    if KEY.find(bytes).is_none() {
        return false;
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<Meta<'a>>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
        version: Option<&'a RawValue>,
    }
    serde_json::from_str::<Params<'_>>(params.get())
        .ok()
        .and_then(|p| p.meta)
        .is_some_and(|m| m.version.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::parse;

    fn era(version: Option<&str>, session: Option<&str>, body: &str) -> Result<Era, u16> {
        let h = RequestHeaders {
            protocol_version: version,
            session_id: session,
            ..Default::default()
        };
        let body = parse(body.as_bytes()).expect("valid JSON-RPC");
        classify(&h, &body).map_err(|r| r.status)
    }

    const MODERN: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    const PLAIN: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;

    #[test]
    fn the_body_claim_decides_whatever_the_headers_say() {
        assert_eq!(era(Some("2026-07-28"), None, MODERN), Ok(Era::Modern));
        assert_eq!(era(None, None, MODERN), Ok(Era::Modern));
        assert_eq!(era(Some("2025-11-25"), Some("s"), MODERN), Ok(Era::Modern));
    }

    #[test]
    fn without_a_claim_the_header_decides() {
        assert_eq!(era(None, Some("s"), PLAIN), Ok(Era::Legacy));
        assert_eq!(era(Some("2025-06-18"), Some("s"), PLAIN), Ok(Era::Legacy));
        assert_eq!(era(Some("2026-07-28"), None, PLAIN), Ok(Era::Modern));
        assert_eq!(era(Some("2026-07-28"), Some("s"), PLAIN), Ok(Era::Modern));
        assert_eq!(era(Some("v999"), None, PLAIN), Ok(Era::Modern));
        assert_eq!(era(Some("v999"), Some("s"), PLAIN), Ok(Era::Legacy));
    }

    #[test]
    fn the_key_must_be_in_meta_not_anywhere_in_params() {
        let in_args = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"io.modelcontextprotocol/protocolVersion"}}}"#;
        assert_eq!(era(None, Some("s"), in_args), Ok(Era::Legacy));
    }

    #[test]
    fn batches_are_legacy_unless_they_carry_a_modern_request() {
        assert_eq!(era(None, Some("s"), &format!("[{PLAIN}]")), Ok(Era::Legacy));
        assert_eq!(
            era(None, Some("s"), &format!("[{PLAIN},{MODERN}]")),
            Err(400)
        );
    }

    #[test]
    fn supported_versions_list_both_eras_newest_first() {
        assert_eq!(
            supported_versions(),
            ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]
        );
    }
}
