//! A 2026-07-28 request's envelope: the `_meta` every request carries, and the routing headers
//! that mirror the body, checked in the order the conformance suite and the SDK servers agree on.
//!
//! 1. `MCP-Protocol-Version` present, not repeated (400, -32020);
//! 2. `_meta` with `protocolVersion` (a string) and `clientCapabilities` (an object); a
//!    `logLevel` must name a level (400, -32602);
//! 3. the header equals `_meta`'s version (400, -32020);
//! 4. the version is one we speak (400, -32022 with `supported` and `requested`);
//! 5. `Mcp-Method` equals the method, `Mcp-Name` the name or URI (400, -32020).
//!
//! Header values are compared after trimming surrounding whitespace (ASCII: a value that is not
//! visible ASCII never gets this far), case kept; a value in the
//! `=?base64?…?=` form is decoded first and must be valid base64 of UTF-8.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::catalog::{ClientCapability, LogLevel};
use crate::mcp::era::{self, ModernVersion};
use crate::mcp::jsonrpc::{self, ErrorCode, RpcError};
use crate::mcp::transport::RequestHeaders;

/// A refused request: the HTTP status and the JSON-RPC error.
pub(crate) type Refusal = (u16, RpcError);

fn mismatch(message: impl Into<String>) -> Refusal {
    (400, RpcError::new(ErrorCode::HEADER_MISMATCH, message))
}

fn invalid(message: impl Into<String>) -> Refusal {
    (400, RpcError::new(ErrorCode::INVALID_PARAMS, message))
}

/// The params of any 2026-07-28 request, read in one pass: each method takes what it needs.
#[derive(Deserialize, Default, Debug, PartialEq)]
pub(crate) struct Params<'a> {
    #[serde(rename = "_meta", borrow, default)]
    pub meta: Option<Meta<'a>>,
    #[serde(borrow, default, deserialize_with = "jsonrpc::borrowed_str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "jsonrpc::borrowed_str")]
    pub uri: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub arguments: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub cursor: Option<Raw<'a>>,
    #[serde(rename = "inputResponses", borrow, default)]
    pub input_responses: Option<Raw<'a>>,
    #[serde(rename = "requestState", borrow, default)]
    pub request_state: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub notifications: Option<Raw<'a>>,
}

/// A JSON value's text as sent, valid JSON (checked by whoever read it: serde's `RawValue` on
/// the general path, the scanner on the fast one). Why not `&RawValue`: the scanner can only
/// make one of these without parsing the text again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Raw<'a>(pub(super) &'a str);

impl<'a> Raw<'a> {
    /// The value's JSON text.
    pub fn get(&self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Raw<'a>, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Raw(r.get()))
    }
}

/// `_meta` as sent, read in the same pass as the params: a value of the wrong type makes the
/// whole params invalid (-32602); [`Envelope::check`] checks what is there.
#[derive(Deserialize, Default, Debug, PartialEq)]
pub(crate) struct Meta<'a> {
    #[serde(
        rename = "io.modelcontextprotocol/protocolVersion",
        borrow,
        default,
        deserialize_with = "jsonrpc::borrowed_str"
    )]
    pub(super) version: Option<Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", default)]
    pub(super) capabilities: Option<Caps>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    pub(super) client_info: Option<ClientInfo<'a>>,
    #[serde(
        rename = "io.modelcontextprotocol/logLevel",
        borrow,
        default,
        deserialize_with = "jsonrpc::borrowed_str"
    )]
    pub(super) log_level: Option<Cow<'a, str>>,
    #[serde(rename = "progressToken", default)]
    pub(super) progress_token: Option<Value>,
}

/// Which of sampling, elicitation and roots a `ClientCapabilities` object declares (a key whose
/// value is not `null`). Only an object is one (a derived struct would take an array too).
#[derive(Default, Debug, PartialEq, Eq)]
pub(super) struct Caps {
    pub sampling: bool,
    pub elicitation: bool,
    pub roots: bool,
}

impl<'de> Deserialize<'de> for Caps {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Caps, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Caps;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a ClientCapabilities object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Caps, A::Error> {
                // A key borrowed from the input: `Cow`'s own impl always copies.
                #[derive(Deserialize)]
                struct Key<'a>(#[serde(borrow)] Cow<'a, str>);
                let mut caps = Caps::default();
                while let Some(Key(key)) = m.next_key::<Key<'de>>()? {
                    let declared = m.next_value::<Option<serde::de::IgnoredAny>>()?.is_some();
                    match key.as_ref() {
                        "sampling" => caps.sampling = declared,
                        "elicitation" => caps.elicitation = declared,
                        "roots" => caps.roots = declared,
                        _ => {}
                    }
                }
                Ok(caps)
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// `clientInfo`: only the name is used.
#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct ClientInfo<'a> {
    #[serde(borrow, default, deserialize_with = "jsonrpc::borrowed_str")]
    pub name: Option<Cow<'a, str>>,
}

/// What a valid envelope tells about the request.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub version: ModernVersion,
    /// `sampling`, `elicitation`, `roots` declared.
    pub capabilities: [bool; 3],
    /// `clientInfo.name`, self-reported (for logs and `node_info` only).
    pub client_name: std::sync::Arc<str>,
    /// The request opted into `notifications/message` from this level up.
    pub log_level: Option<LogLevel>,
    /// The request asked for progress.
    pub progress_token: Option<Value>,
}

impl Envelope {
    /// True when the client declared `cap` for this request.
    pub fn has(&self, cap: ClientCapability) -> bool {
        self.capabilities[match cap {
            ClientCapability::Sampling => 0,
            ClientCapability::Elicitation => 1,
            ClientCapability::Roots => 2,
        }]
    }

    /// Steps 1–5 of the module's ladder for `method`.
    pub fn check(
        h: &RequestHeaders<'_>,
        method: &str,
        meta: Option<&Meta<'_>>,
        names: &super::names::ClientNames,
    ) -> Result<Envelope, Refusal> {
        let Some(header) = h.protocol_version else {
            return Err(mismatch(
                "Header mismatch: the MCP-Protocol-Version header is required",
            ));
        };
        if let Some(name) = h.repeated {
            return Err(mismatch(format!(
                "Header mismatch: the {name} header was sent more than once"
            )));
        }
        let Some(meta) = meta else {
            return Err(invalid(
                "Invalid params: _meta with io.modelcontextprotocol/protocolVersion and \
                 io.modelcontextprotocol/clientCapabilities is required",
            ));
        };
        let Some(version) = meta.version.as_deref() else {
            return Err(invalid(
                "Invalid params: _meta io.modelcontextprotocol/protocolVersion is required",
            ));
        };
        let Some(caps) = &meta.capabilities else {
            return Err(invalid(
                "Invalid params: _meta io.modelcontextprotocol/clientCapabilities is required",
            ));
        };
        let capabilities = [caps.sampling, caps.elicitation, caps.roots];
        let log_level = match meta.log_level.as_deref() {
            None => None,
            Some(level) => Some(level.parse::<LogLevel>().map_err(|_| {
                invalid(format!(
                    "Invalid params: _meta io.modelcontextprotocol/logLevel {level:?} is not a log level"
                ))
            })?),
        };
        if header.trim_ascii() != version {
            return Err(mismatch(format!(
                "Header mismatch: MCP-Protocol-Version {header:?} does not match _meta protocolVersion {version:?}"
            )));
        }
        let Ok(parsed) = version.parse::<ModernVersion>() else {
            return Err((
                400,
                RpcError::new(
                    ErrorCode::UNSUPPORTED_VERSION,
                    format!("Unsupported protocol version {version:?}"),
                )
                .with_data(json!({"supported": era::supported_versions(), "requested": version})),
            ));
        };
        match h.method.map(str::trim_ascii) {
            None => {
                return Err(mismatch(
                    "Header mismatch: the Mcp-Method header is required",
                ))
            }
            Some(m) if m != method => {
                return Err(mismatch(format!(
                    "Header mismatch: Mcp-Method {m:?} does not match the body's method {method:?}"
                )))
            }
            Some(_) => {}
        }
        let client_name = names.get(
            meta.client_info
                .as_ref()
                .and_then(|i| i.name.as_deref())
                .unwrap_or("unknown"),
        );
        let progress_token = meta
            .progress_token
            .clone()
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64());
        Ok(Envelope {
            version: parsed,
            capabilities,
            client_name,
            log_level,
            progress_token,
        })
    }
}

/// Checks `Mcp-Name` against the body's `params.name` or `params.uri`.
pub(crate) fn check_name(h: &RequestHeaders<'_>, name: &str) -> Result<(), Refusal> {
    let Some(header) = h.name else {
        return Err(mismatch("Header mismatch: the Mcp-Name header is required"));
    };
    match decode(header) {
        Some(value) if value == name => Ok(()),
        Some(value) => Err(mismatch(format!(
            "Header mismatch: Mcp-Name {value:?} does not match the body's {name:?}"
        ))),
        None => Err(mismatch(
            "Header mismatch: Mcp-Name is not valid =?base64?…?= encoding",
        )),
    }
}

/// A header value as the client meant it: trimmed, and decoded from `=?base64?…?=`; `None` when
/// that form does not hold valid base64 of UTF-8.
pub(crate) fn decode(value: &str) -> Option<Cow<'_, str>> {
    let value = value.trim_ascii();
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = STANDARD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok().map(Cow::Owned)
        }
        None => Some(Cow::Borrowed(value)),
    }
}

/// A tool argument mirrored into a header (`x-mcp-header` in its input schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamHeader {
    /// The argument's name.
    pub argument: String,
    /// `{Name}` of `Mcp-Param-{Name}`, lower-cased.
    pub header: String,
}

/// The `x-mcp-header` annotations of an input schema: top-level properties of a primitive type.
pub(crate) fn param_headers(input_schema: &Value) -> Vec<ParamHeader> {
    let Some(props) = input_schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(argument, schema)| {
            let header = schema.get("x-mcp-header")?.as_str()?;
            Some(ParamHeader {
                argument: argument.clone(),
                header: header.to_ascii_lowercase(),
            })
        })
        .collect()
}

/// Checks the `Mcp-Param-*` headers of a `tools/call` against its arguments: every annotated
/// argument present in the body must come with its header, equal to it (integers compared as
/// numbers, booleans as `true`/`false`), and a header must not stand for an absent argument.
pub(crate) fn check_params(
    h: &RequestHeaders<'_>,
    annotated: &[ParamHeader],
    arguments: &Map<String, Value>,
) -> Result<(), Refusal> {
    for p in annotated {
        let header = h
            .params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&p.header))
            .map(|(_, v)| *v);
        let body = arguments.get(&p.argument).filter(|v| !v.is_null());
        match (body, header) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(mismatch(format!(
                    "Header mismatch: Mcp-Param-{} is sent but argument {:?} is not",
                    p.header, p.argument
                )))
            }
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "Header mismatch: argument {:?} requires the Mcp-Param-{} header",
                    p.argument, p.header
                )))
            }
            (Some(value), Some(header)) => {
                let Some(decoded) = decode(header) else {
                    return Err(mismatch(format!(
                        "Header mismatch: Mcp-Param-{} is not valid =?base64?…?= encoding",
                        p.header
                    )));
                };
                let same = match value {
                    Value::String(s) => *s == decoded,
                    Value::Bool(b) => decoded == if *b { "true" } else { "false" },
                    Value::Number(n) => match (n.as_i64(), decoded.parse::<i64>()) {
                        (Some(a), Ok(b)) => a == b,
                        _ => n
                            .as_f64()
                            .zip(decoded.parse::<f64>().ok())
                            .is_some_and(|(a, b)| a == b),
                    },
                    _ => false,
                };
                if !same {
                    return Err(mismatch(format!(
                        "Header mismatch: Mcp-Param-{} does not match argument {:?}",
                        p.header, p.argument
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(version: Option<&'a str>, method: Option<&'a str>) -> RequestHeaders<'a> {
        RequestHeaders {
            protocol_version: version,
            method,
            ..Default::default()
        }
    }

    fn check(h: &RequestHeaders<'_>, method: &str, params: &str) -> Result<Envelope, (u16, i64)> {
        // As the endpoint reads them: params that do not parse are invalid params.
        let p: Params<'_> = serde_json::from_str(params).map_err(|_| (400, -32602))?;
        Envelope::check(h, method, p.meta.as_ref(), &Default::default())
            .map_err(|(s, e)| (s, e.code.0))
    }

    const OK: &str = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{},"roots":null}}}"#;

    #[test]
    fn a_valid_envelope_reads_version_and_capabilities() {
        let e = check(
            &headers(Some("2026-07-28"), Some("tools/list")),
            "tools/list",
            OK,
        )
        .unwrap();
        assert_eq!(e.version, ModernVersion::V2026_07_28);
        assert!(e.has(ClientCapability::Sampling));
        assert!(!e.has(ClientCapability::Roots), "null is not a declaration");
        assert_eq!(&*e.client_name, "unknown");
    }

    #[test]
    fn each_rung_of_the_ladder_has_its_error() {
        let h = headers(Some("2026-07-28"), Some("tools/list"));
        assert_eq!(
            check(&headers(None, Some("tools/list")), "tools/list", OK).err(),
            Some((400, -32020))
        );
        assert_eq!(check(&h, "tools/list", "{}").err(), Some((400, -32602)));
        assert_eq!(
            check(
                &h,
                "tools/list",
                r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}"#
            )
            .err(),
            Some((400, -32602))
        );
        assert_eq!(
            check(
                &h,
                "tools/list",
                r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#
            )
            .err(),
            Some((400, -32602))
        );
        assert_eq!(
            check(&h, "tools/list", r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}}"#).err(),
            Some((400, -32602))
        );
        assert_eq!(
            check(&h, "tools/list", r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"loud"}}"#).err(),
            Some((400, -32602))
        );
        let v999 = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"v999","io.modelcontextprotocol/clientCapabilities":{}}}"#;
        assert_eq!(check(&h, "tools/list", v999).err(), Some((400, -32020)));
        assert_eq!(
            check(
                &headers(Some("v999"), Some("tools/list")),
                "tools/list",
                v999
            )
            .err(),
            Some((400, -32022))
        );
        assert_eq!(
            check(&headers(Some("2026-07-28"), None), "tools/list", OK).err(),
            Some((400, -32020))
        );
        assert_eq!(
            check(
                &headers(Some("2026-07-28"), Some("TOOLS/LIST")),
                "tools/list",
                OK
            )
            .err(),
            Some((400, -32020))
        );
        assert!(check(
            &headers(Some(" 2026-07-28 "), Some("  tools/list ")),
            "tools/list",
            OK
        )
        .is_ok());
        let repeated = RequestHeaders {
            repeated: Some("mcp-method"),
            ..h
        };
        assert_eq!(
            check(&repeated, "tools/list", OK).err(),
            Some((400, -32020))
        );
    }

    #[test]
    fn unsupported_versions_list_what_we_speak() {
        let v = r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}}"#;
        let p: Params<'_> = serde_json::from_str(v).unwrap();
        let (status, e) = Envelope::check(
            &headers(Some("2025-11-25"), Some("x")),
            "x",
            p.meta.as_ref(),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!((status, e.code), (400, ErrorCode::UNSUPPORTED_VERSION));
        let data = e.data.unwrap();
        assert_eq!(data["requested"], "2025-11-25");
        assert_eq!(data["supported"][0], "2026-07-28");
    }

    #[test]
    fn names_and_params_decode_base64_and_compare_exactly() {
        let h = RequestHeaders {
            name: Some("=?base64?SGVsbG8=?="),
            ..Default::default()
        };
        assert!(check_name(&h, "Hello").is_ok());
        for bad in ["=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?="] {
            let h = RequestHeaders {
                name: Some(bad),
                ..Default::default()
            };
            assert!(check_name(&h, "Hello").is_err(), "{bad}");
        }
        assert_eq!(decode("  x  ").as_deref(), Some("x"));
        assert_eq!(
            decode("=?base64?SGVsbG8=").as_deref(),
            Some("=?base64?SGVsbG8=")
        );
        let schema = json!({"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"},"other":{"type":"string"}}});
        let annotated = param_headers(&schema);
        assert_eq!(annotated.len(), 2);
        let args = json!({"region": "eu", "n": 7}).as_object().unwrap().clone();
        let with = |params: &'static [(&'static str, &'static str)]| RequestHeaders {
            params,
            ..Default::default()
        };
        assert!(check_params(&with(&[("region", "eu"), ("n", "7")]), &annotated, &args).is_ok());
        assert!(check_params(
            &with(&[("region", "=?base64?ZXU=?="), ("n", "07")]),
            &annotated,
            &args
        )
        .is_ok());
        assert!(check_params(&with(&[("region", "EU"), ("n", "7")]), &annotated, &args).is_err());
        assert!(check_params(&with(&[("n", "7")]), &annotated, &args).is_err());
        let none = Map::new();
        assert!(check_params(&with(&[("region", "eu")]), &annotated, &none).is_err());
        assert!(check_params(&with(&[]), &annotated, &none).is_ok());
    }
}
