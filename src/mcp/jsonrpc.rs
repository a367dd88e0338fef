//! JSON-RPC 2.0 as MCP uses it: parsing a POST body into messages, and writing responses.
//!
//! Parsing borrows from the body (`params`, `result` and `error` stay raw until a handler asks
//! for them), so a request costs one pass over its bytes.

use std::borrow::Cow;

use bytes::Bytes;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub use crate::session::RequestId;

/// JSON-RPC and MCP error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorCode(pub i64);

impl ErrorCode {
    pub const PARSE_ERROR: ErrorCode = ErrorCode(-32700);
    pub const INVALID_REQUEST: ErrorCode = ErrorCode(-32600);
    pub const METHOD_NOT_FOUND: ErrorCode = ErrorCode(-32601);
    pub const INVALID_PARAMS: ErrorCode = ErrorCode(-32602);
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(-32603);
    /// Implementation-defined: the session is unknown or ended (the TypeScript SDK's code, which
    /// clients surface verbatim).
    pub const SESSION_NOT_FOUND: ErrorCode = ErrorCode(-32001);
    /// Implementation-defined: the server cannot take this now (session cap, shutdown).
    pub const SERVER_BUSY: ErrorCode = ErrorCode(-32000);
    /// MCP (≤ 2025-11-25): resource not found.
    pub const RESOURCE_NOT_FOUND: ErrorCode = ErrorCode(-32002);
    /// MCP 2026-07-28: a routing header is missing, malformed, or does not match the body.
    pub const HEADER_MISMATCH: ErrorCode = ErrorCode(-32020);
    /// MCP 2026-07-28: the request needs a client capability the client did not declare.
    pub const MISSING_CAPABILITY: ErrorCode = ErrorCode(-32021);
    /// MCP 2026-07-28: the request's protocol version is not one this server speaks.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(-32022);
    /// Outside the reserved range: the client cancelled the request (the code LSP uses).
    pub const REQUEST_CANCELLED: ErrorCode = ErrorCode(-32800);
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Serialize)]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data`.
    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }
}

/// One JSON-RPC message from the client.
#[derive(Debug)]
pub enum Message<'a> {
    Request {
        id: RequestId,
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    Notification {
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    Response {
        id: RequestId,
        result: Result<&'a RawValue, &'a RawValue>,
    },
}

impl Message<'_> {
    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request { method, .. } | Message::Notification { method, .. } => Some(method),
            Message::Response { .. } => None,
        }
    }
}

/// A POST body: one message or (2025-03-26) a batch.
#[derive(Debug)]
pub struct Body<'a> {
    pub messages: Vec<Message<'a>>,
    pub batch: bool,
}

/// Why a body is not acceptable JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Parse error: {0}")]
    Json(String),
    #[error("Invalid Request: {0}")]
    Invalid(String),
}

impl ParseError {
    /// The JSON-RPC error for the 400 reply.
    pub fn to_rpc(&self) -> RpcError {
        match self {
            ParseError::Json(_) => RpcError::new(ErrorCode::PARSE_ERROR, self.to_string()),
            ParseError::Invalid(_) => RpcError::new(ErrorCode::INVALID_REQUEST, self.to_string()),
        }
    }
}

/// The `id` member: absent, `null`, or a usable id.
#[derive(Debug, Default)]
enum WireId {
    #[default]
    Absent,
    Null,
    Id(RequestId),
    Bad,
}

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match v {
            Value::Null => WireId::Null,
            Value::String(s) => WireId::Id(RequestId::Str(s.into_boxed_str())),
            Value::Number(n) => match n.as_i64() {
                Some(i) => WireId::Id(RequestId::Num(i)),
                None => WireId::Bad,
            },
            _ => WireId::Bad,
        })
    }
}

/// `deserialize_with` for an `Option<Cow<str>>` field, borrowing from the input unless the
/// string has escapes. Why: serde's derive borrows a `Cow<str>` field marked `borrow`, but not
/// one inside an `Option`, which then allocated on every request.
pub(crate) fn borrowed_str<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_str")]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(default)]
    id: WireId,
    #[serde(borrow, default, deserialize_with = "method")]
    method: Option<Result<Cow<'a, str>, ()>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Reads `method`, remembering a non-string value as an error instead of failing the parse (so
/// the reply can say what is wrong).
fn method<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Result<Cow<'de, str>, ()>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum M<'a> {
        S(#[serde(borrow)] Cow<'a, str>),
        Other(de::IgnoredAny),
    }
    Ok(Some(match M::deserialize(d)? {
        M::S(s) => Ok(s),
        M::Other(_) => Err(()),
    }))
}

/// Parses a POST body.
pub fn parse(body: &[u8]) -> Result<Body<'_>, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&RawValue> =
            serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
        if items.is_empty() {
            return Err(ParseError::Invalid("empty batch".into()));
        }
        let messages = items
            .into_iter()
            .map(|raw| parse_one(raw.get()))
            .collect::<Result<_, _>>()?;
        Ok(Body {
            messages,
            batch: true,
        })
    } else {
        let text = std::str::from_utf8(body).map_err(|e| ParseError::Json(e.to_string()))?;
        // One pass for the common case, a well-formed object; only a body that fails it is
        // scanned again, as plain JSON, to tell garbage (a parse error) from an invalid request.
        let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
        let message = match parse_one(trimmed) {
            Ok(m) => m,
            Err(invalid) => {
                serde_json::from_str::<&RawValue>(text)
                    .map_err(|e| ParseError::Json(e.to_string()))?;
                return Err(invalid);
            }
        };
        Ok(Body {
            messages: vec![message],
            batch: false,
        })
    }
}

fn parse_one(text: &str) -> Result<Message<'_>, ParseError> {
    if !text.starts_with('{') {
        return Err(ParseError::Invalid(
            "a message must be a JSON object".into(),
        ));
    }
    let w: Wire<'_> = serde_json::from_str(text).map_err(|e| ParseError::Invalid(e.to_string()))?;
    if w.jsonrpc.as_deref() != Some("2.0") {
        return Err(ParseError::Invalid("\"jsonrpc\" must be \"2.0\"".into()));
    }
    if let Some(p) = w.params {
        if !(p.get().starts_with('{') || p.get().starts_with('[')) {
            return Err(ParseError::Invalid(
                "\"params\" must be an object or array".into(),
            ));
        }
    }
    match (w.method, w.id) {
        (Some(Err(())), _) => Err(ParseError::Invalid("\"method\" must be a string".into())),
        (Some(Ok(method)), WireId::Id(id)) => Ok(Message::Request {
            id,
            method,
            params: w.params,
        }),
        (Some(Ok(method)), WireId::Absent) => Ok(Message::Notification {
            method,
            params: w.params,
        }),
        (Some(Ok(_)), WireId::Null) => Err(ParseError::Invalid(
            "request \"id\" must not be null".into(),
        )),
        (_, WireId::Bad) => Err(ParseError::Invalid(
            "\"id\" must be a string or an integer".into(),
        )),
        (None, WireId::Id(id)) => match (w.result, w.error) {
            (Some(r), None) => Ok(Message::Response { id, result: Ok(r) }),
            (None, Some(e)) => Ok(Message::Response { id, result: Err(e) }),
            _ => Err(ParseError::Invalid(
                "a response needs exactly one of \"result\" and \"error\"".into(),
            )),
        },
        (None, _) => Err(ParseError::Invalid("missing \"method\"".into())),
    }
}

/// Parses a request's `params` into `T`; absent params parse as `{}`.
pub fn params<'a, T: Deserialize<'a>>(params: Option<&'a RawValue>) -> Result<T, RpcError> {
    let text = params.map_or("{}", RawValue::get);
    serde_json::from_str(text)
        .map_err(|e| RpcError::new(ErrorCode::INVALID_PARAMS, format!("Invalid params: {e}")))
}

#[derive(Serialize)]
struct Envelope<'a, R: Serialize> {
    jsonrpc: &'static str,
    id: Option<&'a RequestId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}

/// A response to `id` carrying `result`.
pub fn response<R: Serialize>(id: &RequestId, result: R) -> Bytes {
    encode(&Envelope {
        jsonrpc: "2.0",
        id: Some(id),
        result: Some(result),
        error: None,
    })
}

/// An error response; `id` is `None` (serialized as `null`) when the request could not be read.
pub fn error_response(id: Option<&RequestId>, error: &RpcError) -> Bytes {
    encode(&Envelope::<()> {
        jsonrpc: "2.0",
        id,
        result: None,
        error: Some(error),
    })
}

/// A notification from the server.
pub fn notification<P: Serialize>(method: &str, params: P) -> Bytes {
    #[derive(Serialize)]
    struct N<'a, P> {
        jsonrpc: &'static str,
        method: &'a str,
        params: P,
    }
    encode(&N {
        jsonrpc: "2.0",
        method,
        params,
    })
}

/// A request from the server to the client.
pub fn request<P: Serialize>(id: i64, method: &str, params: P) -> Bytes {
    #[derive(Serialize)]
    struct R<'a, P> {
        jsonrpc: &'static str,
        id: i64,
        method: &'a str,
        params: P,
    }
    encode(&R {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    // 256 bytes: a typical answer (a 2026-07-28 one carries `serverInfo`, ~200 bytes) is written
    // without growing the buffer; serde_json's own 128 had to be copied once per such answer.
    let mut out = Vec::with_capacity(256);
    // Our envelopes hold strings, numbers, `Value`s and raw JSON: serialization cannot fail.
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => Bytes::from(out),
        Err(e) => Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32603,"message":"cannot encode reply: {e}"}}}}"#
        )),
    }
}

/// The JSON body answering a POST's requests: the array of their responses for a batch, else its
/// one response.
pub fn reply_body(mut responses: Vec<Bytes>, batch: bool) -> Bytes {
    if batch {
        array(&responses)
    } else {
        responses.pop().unwrap_or_default()
    }
}

/// Joins encoded messages into a JSON array (the reply to a batch).
pub fn array(items: &[Bytes]) -> Bytes {
    let mut out = Vec::with_capacity(items.iter().map(Bytes::len).sum::<usize>() + items.len() + 1);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let b = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert!(
            matches!(&b.messages[0], Message::Request { id: RequestId::Num(1), method, .. } if method == "ping")
        );
        let b = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(&b.messages[0], Message::Notification { .. }));
        let b = parse(br#"{"jsonrpc":"2.0","id":"x","result":{}}"#).unwrap();
        assert!(matches!(
            &b.messages[0],
            Message::Response { result: Ok(_), .. }
        ));
        let b = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#)
            .unwrap();
        assert!(b.batch);
        assert_eq!(b.messages.len(), 2);
    }

    #[test]
    fn escaped_method_names_are_read() {
        let b = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools\/list"}"#).unwrap();
        assert_eq!(b.messages[0].method(), Some("tools/list"));
    }

    #[test]
    fn garbage_is_a_parse_error_and_wrong_shapes_are_invalid_requests() {
        for garbage in [&b"{"[..], b"\xff\xfe", b"", b"nul", b"{\"jsonrpc\":"] {
            assert!(
                matches!(parse(garbage), Err(ParseError::Json(_))),
                "{garbage:?}"
            );
        }
        for shape in [
            r#"[]"#,
            r#"42"#,
            r#""ping""#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"[1]"#,
        ] {
            assert!(
                matches!(parse(shape.as_bytes()), Err(ParseError::Invalid(_))),
                "{shape}"
            );
        }
    }

    #[test]
    fn responses_echo_the_id_and_errors_without_one_say_null() {
        let r = response(&RequestId::Str("a".into()), serde_json::json!({}));
        assert_eq!(&r[..], br#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        let e = error_response(None, &RpcError::new(ErrorCode::PARSE_ERROR, "x"));
        assert_eq!(
            &e[..],
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#
        );
    }
}
