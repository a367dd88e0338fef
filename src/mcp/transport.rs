//! The Streamable HTTP rules that do not depend on a session: what an HTTP request looks like to
//! the protocol layer, what it answers, and the header checks (Origin/Host, Accept,
//! Content-Type) with their status codes.
//!
//! The HTTP layer hands over header values as plain strings and turns a [`Reply`] back into a
//! response; this module never sees hyper types.

use std::net::IpAddr;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::jsonrpc::{self, ErrorCode, RpcError};
use crate::session::registry::Miss;
use crate::session::SessionId;

/// Header names of the transport.
pub mod header {
    pub const SESSION_ID: &str = "mcp-session-id";
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    pub const LAST_EVENT_ID: &str = "last-event-id";
    /// 2026-07-28: the request's JSON-RPC method, mirrored for intermediaries.
    pub const METHOD: &str = "mcp-method";
    /// 2026-07-28: `params.name` or `params.uri` of `tools/call`, `prompts/get`, `resources/read`.
    pub const NAME: &str = "mcp-name";
    /// 2026-07-28: the prefix of the headers mirroring `x-mcp-header` tool arguments.
    pub const PARAM_PREFIX: &str = "mcp-param-";
    /// The nodes a request was forwarded through, comma-separated, each appended by the node
    /// that forwards it: a request is forwarded at most twice and never back to a node on its
    /// path (no loops).
    pub const FORWARDED_BY: &str = "mcpd-forwarded-by";
    /// The cluster's shared secret on forwarded requests (`cluster.peer_secret`).
    pub const PEER_SECRET: &str = "mcpd-peer-secret";
}

/// The parts of an HTTP request the protocol layer reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestHeaders<'a> {
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub last_event_id: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub host: Option<&'a str>,
    /// `mcpd-forwarded-by`: the nodes that forwarded this request, if any did.
    pub forwarded_by: Option<&'a str>,
    pub peer_secret: Option<&'a str>,
    /// `Mcp-Method` (2026-07-28).
    pub method: Option<&'a str>,
    /// `Mcp-Name` (2026-07-28).
    pub name: Option<&'a str>,
    /// The `Mcp-Param-{Name}` headers: `{Name}` lower-cased (header names have no case), and the
    /// value. Empty for nearly every request.
    pub params: &'a [(&'a str, &'a str)],
    /// The first of `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` that came more than once
    /// (a 2026-07-28 request with a repeated routing header is refused).
    pub repeated: Option<&'static str>,
    /// Not a header: who the request is from, when `auth` is on (its token was checked).
    pub principal: Option<&'a crate::auth::Principal>,
    /// Not a header: set by the HTTP layer when it runs a request again here because forwarding
    /// it to this node (the session's owner) failed to connect — evidence the owner is gone.
    pub unreachable_owner: Option<&'a str>,
}

/// How many times a request may be forwarded: once to the node the id's tag or the registry
/// names, once more when that node finds the session has moved (adopted elsewhere).
pub const MAX_HOPS: usize = 2;

/// The nodes in an `mcpd-forwarded-by` value.
pub fn forwarding_path(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The body of a reply.
pub enum ReplyBody {
    Empty,
    Json(Bytes),
    /// An SSE stream; the HTTP layer sends it with the SSE headers.
    Sse(BoxStream<'static, Bytes>),
    /// A JSON body sent with `WWW-Authenticate: <challenge>` (a 403 for missing scopes).
    /// Boxed: the rare case must not make every reply larger.
    Challenged(Box<(Bytes, String)>),
}

/// What the protocol layer answers; the HTTP layer adds the standard headers.
pub struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    /// Sent as `Mcp-Session-Id` (on the `initialize` reply).
    pub session_id: Option<SessionId>,
    /// Add `Allow: GET, POST, DELETE` (405).
    pub allow: bool,
    /// Add `Retry-After` (503).
    pub retry_after: Option<u32>,
    /// Not answered here: the HTTP layer sends the request on to this peer and relays its answer.
    /// Boxed: the rare case must not make every reply larger.
    pub forward: Option<Box<Forward>>,
}

/// Where a misrouted request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The owner's node id (for logs and metrics).
    pub node: String,
    /// The owner's base URL (`cluster.advertise_url`).
    pub url: String,
    /// The session id as sent, and why it missed here: logged once the request was relayed.
    pub session_id: String,
    pub miss: Miss,
}

impl Reply {
    /// 202 Accepted, no body.
    pub fn accepted() -> Reply {
        Reply::empty(202)
    }

    /// A status without a body.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: ReplyBody::Empty,
            session_id: None,
            allow: false,
            retry_after: None,
            forward: None,
        }
    }

    /// Hand the request to the session's owner.
    pub fn forward(to: Forward) -> Reply {
        Reply {
            forward: Some(Box::new(to)),
            ..Reply::empty(502)
        }
    }

    /// 200 with a JSON body.
    pub fn json(body: Bytes) -> Reply {
        Reply {
            body: ReplyBody::Json(body),
            ..Reply::empty(200)
        }
    }

    /// 200 with an SSE stream.
    pub fn sse(stream: BoxStream<'static, Bytes>) -> Reply {
        Reply {
            body: ReplyBody::Sse(stream),
            ..Reply::empty(200)
        }
    }

    /// An HTTP error whose body is a JSON-RPC error response without an id.
    pub fn error(status: u16, code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::rpc_error(status, &RpcError::new(code, message))
    }

    /// An HTTP error carrying `error`.
    pub fn rpc_error(status: u16, error: &RpcError) -> Reply {
        Reply {
            body: ReplyBody::Json(jsonrpc::error_response(None, error)),
            ..Reply::empty(status)
        }
    }

    /// An HTTP error answering request `id` with `error`.
    pub fn rpc_error_to(status: u16, id: &jsonrpc::RequestId, error: &RpcError) -> Reply {
        Reply {
            body: ReplyBody::Json(jsonrpc::error_response(Some(id), error)),
            ..Reply::empty(status)
        }
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed() -> Reply {
        Reply {
            allow: true,
            ..Reply::error(
                405,
                ErrorCode::INVALID_REQUEST,
                "Method not allowed: use POST, GET or DELETE",
            )
        }
    }

    /// 405 for a GET or DELETE without a session: only sessions (2025-03-26 … 2025-11-25) have
    /// a stream to GET or an end to DELETE; protocol 2026-07-28 has neither.
    pub fn sessionless_not_allowed(method: &str) -> Reply {
        Reply {
            allow: true,
            ..Reply::error(
                405,
                ErrorCode::INVALID_REQUEST,
                format!(
                    "Method Not Allowed: {method} needs the Mcp-Session-Id of a session; \
                     protocol 2026-07-28 uses POST only"
                ),
            )
        }
    }

    /// 404 for a session id this node does not hold.
    pub fn session_not_found() -> Reply {
        Reply::error(404, ErrorCode::SESSION_NOT_FOUND, "Session not found")
    }

    /// The answer to a request the authorization check refused (an OAuth error body and the
    /// challenge).
    pub fn refused(r: &crate::auth::Refusal) -> Reply {
        let error = match r.status {
            403 => "insufficient_scope",
            503 => "temporarily_unavailable",
            _ => "invalid_token",
        };
        let body = Bytes::from(
            serde_json::json!({"error": error, "error_description": r.description}).to_string(),
        );
        let mut reply = Reply::empty(r.status);
        reply.body = match &r.challenge {
            Some(c) => ReplyBody::Challenged(Box::new((body, c.clone()))),
            None => ReplyBody::Json(body),
        };
        reply.retry_after = r.retry_after;
        reply
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> Reply {
        Reply {
            retry_after: Some(retry_after),
            ..Reply::error(503, ErrorCode::SERVER_BUSY, message)
        }
    }
}

/// Which browser origins and `Host` values may reach the endpoint (DNS-rebinding guard).
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    origins: Vec<String>,
    hosts: Vec<String>,
    any_host: bool,
}

impl OriginPolicy {
    /// Loopback origins are always allowed, plus `allowed_origins`. `Host` must be a loopback
    /// name or one of `allowed_hosts`, except that an empty `allowed_hosts` on a non-loopback
    /// listener allows any host (the operator exposed the node on purpose, usually behind a proxy
    /// that passes the public host name).
    pub fn new(
        allowed_origins: &[String],
        allowed_hosts: &[String],
        listen_is_loopback: bool,
    ) -> OriginPolicy {
        OriginPolicy {
            origins: allowed_origins
                .iter()
                .filter_map(|o| crate::config::parse_origin(o))
                .collect(),
            hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            any_host: allowed_hosts.is_empty() && !listen_is_loopback,
        }
    }

    /// 403 unless both headers pass.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), Reply> {
        if let Some(origin) = origin {
            let ok = crate::config::parse_origin(origin)
                .is_some_and(|o| is_loopback_origin(&o) || self.origins.contains(&o));
            if !ok {
                return Err(Reply::error(
                    403,
                    ErrorCode::INVALID_REQUEST,
                    format!("Forbidden: origin {origin:?} is not allowed"),
                ));
            }
        }
        if let (Some(host), false) = (host, self.any_host) {
            // Compared without case rather than lower-cased: no allocation on every request.
            let allowed = |a: &String| {
                a.eq_ignore_ascii_case(host) || host_name(host).eq_ignore_ascii_case(a)
            };
            if !(is_loopback_host(host) || self.hosts.iter().any(allowed)) {
                return Err(Reply::error(
                    403,
                    ErrorCode::INVALID_REQUEST,
                    format!("Forbidden: host {host:?} is not allowed"),
                ));
            }
        }
        Ok(())
    }
}

fn is_loopback_origin(origin: &str) -> bool {
    origin
        .split_once("://")
        .is_some_and(|(_, host)| is_loopback_host(host))
}

/// The host part of `host[:port]` (IPv6 keeps its brackets).
fn host_name(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port.split_inclusive(']').next().unwrap_or(host_port);
    }
    match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

fn is_loopback_host(host_port: &str) -> bool {
    let host = host_name(host_port);
    // The common cases without an address parse (~170 instructions per request).
    if host == "127.0.0.1" || host == "[::1]" || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The media types of an Accept or Content-Type value, parameters dropped, case kept. Plain byte
/// scans and an ASCII trim (header values are visible ASCII by the time they get here): `str`
/// splitting by a char costs a searcher per call, and this runs on every request.
fn media_types(header: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let (part, next) = cut(rest?, b',');
        rest = next;
        Some(cut(part, b';').0.trim_ascii())
    })
}

/// `s` up to the first `sep` (an ASCII byte, so both sides are on char boundaries) and what
/// follows it, if `sep` occurs.
fn cut(s: &str, sep: u8) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == sep) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Which of `wanted` an Accept value admits (the type itself, `major/*` or `*/*`, in any case),
/// in one allocation-free pass: it runs on every request.
fn accepted<const N: usize>(header: Option<&str>, wanted: [&str; N]) -> [bool; N] {
    let Some(header) = header else {
        return [true; N]; // no Accept means anything (RFC 9110 §12.5.1)
    };
    let mut ok = [false; N];
    for m in media_types(header) {
        let (major, minor) = cut(m, b'/');
        let minor = minor.unwrap_or("");
        for (w, ok) in wanted.iter().zip(ok.iter_mut()) {
            *ok = *ok
                || m.eq_ignore_ascii_case(w)
                || (minor == "*"
                    && (major == "*"
                        || w.split_once('/')
                            .is_some_and(|(wm, _)| wm.eq_ignore_ascii_case(major))));
        }
    }
    ok
}

/// POST needs both `application/json` and `text/event-stream` acceptable (406 otherwise), and a
/// JSON body (415 otherwise).
pub fn check_post_headers(h: &RequestHeaders<'_>) -> Result<(), Reply> {
    // What the SDK clients send, compared whole before anything is parsed.
    const USUAL_ACCEPT: &str = "application/json, text/event-stream";
    const JSON: &str = "application/json";
    if h.accept == Some(USUAL_ACCEPT) && h.content_type == Some(JSON) {
        return Ok(());
    }
    if accepted(h.accept, [JSON, "text/event-stream"]) != [true, true] {
        return Err(Reply::error(
            406,
            ErrorCode::INVALID_REQUEST,
            "Not Acceptable: the client must accept both application/json and text/event-stream",
        ));
    }
    let json = h
        .content_type
        .and_then(|ct| media_types(ct).next())
        .is_some_and(|m| m.eq_ignore_ascii_case(JSON));
    if !json {
        return Err(Reply::error(
            415,
            ErrorCode::INVALID_REQUEST,
            "Unsupported Media Type: Content-Type must be application/json",
        ));
    }
    Ok(())
}

/// GET needs `text/event-stream` acceptable (406 otherwise).
pub fn check_get_headers(h: &RequestHeaders<'_>) -> Result<(), Reply> {
    if accepted(h.accept, ["text/event-stream"]) == [true] {
        Ok(())
    } else {
        Err(Reply::error(
            406,
            ErrorCode::INVALID_REQUEST,
            "Not Acceptable: the client must accept text/event-stream",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_pass_and_others_need_the_allow_list() {
        let p = OriginPolicy::new(&["https://App.example.com".into()], &[], true);
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:8443",
            "https://app.example.com",
        ] {
            assert!(p.check(Some(ok), None).is_ok(), "{ok}");
        }
        for bad in [
            "http://evil.example.com",
            "null",
            "file://x",
            "http://localhost.evil.com",
            "https://app.example.com.evil",
        ] {
            assert_eq!(
                p.check(Some(bad), None).err().map(|r| r.status),
                Some(403),
                "{bad}"
            );
        }
    }

    #[test]
    fn hosts_are_loopback_only_on_a_loopback_listener_unless_listed() {
        let p = OriginPolicy::new(&[], &["mcp.example.com".into()], true);
        for ok in [
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "mcp.example.com",
            "mcp.example.com:443",
            // Host names compare without case.
            "LocalHost:8080",
            "MCP.Example.com",
            "mcp.EXAMPLE.com:443",
        ] {
            assert!(p.check(None, Some(ok)).is_ok(), "{ok}");
        }
        assert_eq!(
            p.check(None, Some("evil.example.com"))
                .err()
                .map(|r| r.status),
            Some(403)
        );
        let open = OriginPolicy::new(&[], &[], false);
        assert!(open.check(None, Some("evil.example.com")).is_ok());
    }

    #[test]
    fn accept_and_content_type_rules() {
        let h = |accept, ct| RequestHeaders {
            accept,
            content_type: ct,
            ..Default::default()
        };
        let json = Some("application/json; charset=utf-8");
        assert!(check_post_headers(&h(Some("application/json, text/event-stream"), json)).is_ok());
        assert!(check_post_headers(&h(Some("*/*"), json)).is_ok());
        assert!(check_post_headers(&h(None, json)).is_ok());
        assert!(check_post_headers(&h(
            Some("text/event-stream;q=1,\tapplication/json ; q=0.5"),
            Some(" application/json;charset=utf-8")
        ))
        .is_ok());
        assert!(check_post_headers(&h(
            Some("Application/JSON;q=0.9 , TEXT/*"),
            Some("Application/Json")
        ))
        .is_ok());
        assert_eq!(
            check_post_headers(&h(Some("application/*, text/plain"), json))
                .err()
                .map(|r| r.status),
            Some(406)
        );
        assert_eq!(
            check_post_headers(&h(Some("application/json"), json))
                .err()
                .map(|r| r.status),
            Some(406)
        );
        assert_eq!(
            check_post_headers(&h(Some("*/*"), Some("text/plain")))
                .err()
                .map(|r| r.status),
            Some(415)
        );
        assert_eq!(
            check_post_headers(&h(Some("*/*"), None))
                .err()
                .map(|r| r.status),
            Some(415)
        );
        assert!(check_get_headers(&h(Some("text/event-stream"), None)).is_ok());
        assert_eq!(
            check_get_headers(&h(Some("application/json"), None))
                .err()
                .map(|r| r.status),
            Some(406)
        );
    }
}
