//! The translation between hyper's request heads and responses and the protocol layer's
//! [`RequestHeaders`] and [`Reply`]: the MCP headers read in one pass, and a reply written into
//! the request's own header map.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::Body;
use crate::mcp::jsonrpc::ErrorCode;
use crate::mcp::transport::{header as mcp_header, Reply, ReplyBody, RequestHeaders};

/// The MCP headers as `HeaderName`s, built at compile time: looking a header up by string parses
/// and hashes the name first, on every request.
mod names {
    use super::mcp_header;
    use http::HeaderName;

    pub const SESSION_ID: HeaderName = HeaderName::from_static(mcp_header::SESSION_ID);
    pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static(mcp_header::PROTOCOL_VERSION);
    pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static(mcp_header::LAST_EVENT_ID);
    pub const FORWARDED_BY: HeaderName = HeaderName::from_static(mcp_header::FORWARDED_BY);
    pub const PEER_SECRET: HeaderName = HeaderName::from_static(mcp_header::PEER_SECRET);
    pub const METHOD: HeaderName = HeaderName::from_static(mcp_header::METHOD);
    pub const NAME: HeaderName = HeaderName::from_static(mcp_header::NAME);
}

/// The MCP-relevant headers as strings; the `Mcp-Param-*` ones go to `params`. A value that is
/// not visible ASCII is refused: 403 for `Origin`/`Host` (never let an unreadable origin through
/// the DNS-rebinding guard), 400 with `HeaderMismatch` (-32020) for the 2026-07-28 routing
/// headers, 400 for the others.
pub(super) fn read_headers<'a>(
    h: &'a HeaderMap,
    authority: Option<&'a str>,
    params: &mut Vec<(&'a str, &'a str)>,
) -> Result<RequestHeaders<'a>, Reply> {
    const INVALID: ErrorCode = ErrorCode::INVALID_REQUEST;
    const MISMATCH: ErrorCode = ErrorCode::HEADER_MISMATCH;
    let mut r = RequestHeaders::default();
    let text = |name: &http::HeaderName, value: &'a HeaderValue, status, code| {
        value.to_str().map_err(|_| {
            Reply::error(
                status,
                code,
                format!("invalid characters in the {name} header"),
            )
        })
    };
    // One pass over the handful of headers that arrived rather than a hashed lookup for each of
    // the ones we read; a repeated header keeps its first value, as `HeaderMap::get` would.
    for (name, value) in h {
        let (slot, status, code, routing) = match name {
            n if n == header::ACCEPT => (&mut r.accept, 400, INVALID, None),
            n if n == header::CONTENT_TYPE => (&mut r.content_type, 400, INVALID, None),
            n if n == names::SESSION_ID => (&mut r.session_id, 400, INVALID, None),
            n if n == names::PROTOCOL_VERSION => (
                &mut r.protocol_version,
                400,
                INVALID,
                Some(mcp_header::PROTOCOL_VERSION),
            ),
            n if n == names::METHOD => (&mut r.method, 400, MISMATCH, Some(mcp_header::METHOD)),
            n if n == names::NAME => (&mut r.name, 400, MISMATCH, Some(mcp_header::NAME)),
            n if n == names::LAST_EVENT_ID => (&mut r.last_event_id, 400, INVALID, None),
            n if n == header::ORIGIN => (&mut r.origin, 403, INVALID, None),
            n if n == names::FORWARDED_BY => (&mut r.forwarded_by, 400, INVALID, None),
            n if n == names::PEER_SECRET => (&mut r.peer_secret, 403, INVALID, None),
            n if n == header::HOST => (&mut r.host, 403, INVALID, None),
            n => {
                if let Some(param) = n.as_str().strip_prefix(mcp_header::PARAM_PREFIX) {
                    params.push((param, text(n, value, 400, MISMATCH)?));
                }
                continue;
            }
        };
        match slot {
            None => *slot = Some(text(name, value, status, code)?),
            Some(_) => r.repeated = r.repeated.or(routing),
        }
    }
    r.host = r.host.or(authority);
    Ok(r)
}

/// The response to `reply`, its headers written into the request's own header map.
///
/// Why: hyper parses the next request on a connection into the map of the response before it,
/// so a response map sized by the request keeps both without an allocation; a fresh, small one
/// had to grow (past glibc's thread cache, at 2026-07-28's eight headers) on every request.
pub(super) fn respond(reply: Reply, request: &mut HeaderMap) -> Response<Body> {
    let mut map = std::mem::take(request);
    map.clear();
    into_response(reply, map)
}

/// The response to `reply`, its headers added to `map` (which is expected to be empty).
pub(super) fn into_response(reply: Reply, map: HeaderMap) -> Response<Body> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Constants: `HeaderValue::from_static` on a value chosen at run time checks its bytes each
    // time.
    const JSON: HeaderValue = HeaderValue::from_static("application/json");
    const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
    let mut challenge = None;
    let (body, content_type) = match reply.body {
        ReplyBody::Empty => (Body::Empty, None),
        ReplyBody::Json(bytes) => (Body::full(bytes), Some(JSON)),
        ReplyBody::Sse(stream) => (Body::Stream(stream), Some(EVENT_STREAM)),
        ReplyBody::Challenged(b) => {
            let (bytes, c) = *b;
            challenge = HeaderValue::from_str(&c).ok();
            (Body::full(bytes), Some(JSON))
        }
    };
    let streams = matches!(body, Body::Stream(_));
    let mut response = Response::new(body);
    *response.headers_mut() = map;
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Some(t) = content_type {
        h.insert(header::CONTENT_TYPE, t);
    }
    if streams {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    if let Some(id) = reply.session_id {
        if let Ok(v) = HeaderValue::from_str(id.text().as_str()) {
            h.insert(names::SESSION_ID, v);
        }
    }
    if reply.allow {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    }
    if let Some(secs) = reply.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(c) = challenge {
        h.insert(header::WWW_AUTHENTICATE, c);
    }
    response
}
