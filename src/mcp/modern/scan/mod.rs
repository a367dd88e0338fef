//! The common 2026-07-28 request read in one pass over its bytes: a single `tools/call`.
//!
//! Why not serde: its per-token work (visitors, field matching, capturing a `RawValue`) made
//! reading the `_meta` envelope that every modern request carries cost about what the session
//! lookup a modern request saves (~2k instructions of a ~30k call; see bench/CHANGES.md). This
//! reads the shape nearly all modern traffic has with the strict scanner of [`json`], borrowing
//! every string it keeps.
//!
//! It is partial, never lenient: it gives up (`None`) on whatever it would not read exactly as
//! serde reads it into [`Params`] — what the scanner refuses (see [`json`]), a field given
//! twice, an id or progress token that is not a plain integer or string, another method. The
//! caller then takes the general path, which answers every input with serde's exact errors. So
//! an input reads the same whichever path reads it; the tests compare the two on valid and
//! broken inputs.

mod json;

use std::borrow::Cow;

use serde_json::Value;

use super::envelope::{Caps, ClientInfo, Meta, Params, Raw};
use crate::mcp::jsonrpc::RequestId;
use json::Scanner;

/// Reads `text` as one `tools/call` request: its id and params. `None` when it is not one, or
/// not plainly enough (see the module).
pub(super) fn tools_call(text: &str) -> Option<(RequestId, Params<'_>)> {
    let mut s = Scanner::new(text);
    let (mut jsonrpc, mut id, mut method, mut params) = (None, None, None, None);
    s.object(|s, key| match key {
        "jsonrpc" => once(&mut jsonrpc, s.string()?),
        "id" => once(&mut id, request_id(s)?),
        "method" => once(&mut method, s.string()?),
        "params" => once(&mut params, self::params(s)?),
        _ => s.skip(),
    })?;
    s.end()?;
    (jsonrpc? == "2.0" && method? == "tools/call").then_some((id?, params?))
}

/// Fills `slot` with the value of a field; a field given twice is serde's error, so `None`.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// Marks a field seen; `None` (serde's duplicate-field error) if it already was.
fn first(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

/// `null` or a string without escapes (serde's `Option<Cow<str>>`).
fn opt_string<'a>(s: &mut Scanner<'a>) -> Option<Option<Cow<'a, str>>> {
    if s.null()? {
        return Some(None);
    }
    s.string().map(|t| Some(Cow::Borrowed(t)))
}

/// `null`, or any value as its text (serde's `Option<&RawValue>`).
fn opt_raw<'a>(s: &mut Scanner<'a>) -> Option<Option<Raw<'a>>> {
    if s.null()? {
        return Some(None);
    }
    s.raw().map(|t| Some(Raw(t)))
}

/// A request id: a string or an integer that fits an `i64` (`-0` is a float to serde).
fn request_id(s: &mut Scanner<'_>) -> Option<RequestId> {
    if s.peek()? == b'"' {
        return s.string().map(|t| RequestId::Str(t.into()));
    }
    match s.integer()? {
        (false, n) => i64::try_from(n).ok().map(RequestId::Num),
        (true, 0) => None,
        (true, n) => i64::try_from(-i128::from(n)).ok().map(RequestId::Num),
    }
}

/// A progress token: `null`, a string or an integer (what the envelope keeps of one).
fn progress_token(s: &mut Scanner<'_>) -> Option<Option<Value>> {
    if s.null()? {
        return Some(None);
    }
    if s.peek()? == b'"' {
        return s.string().map(|t| Some(Value::from(t)));
    }
    match s.integer()? {
        (false, n) => Some(Some(Value::from(n))),
        (true, 0) => None,
        (true, n) => i64::try_from(-i128::from(n))
            .ok()
            .map(|n| Some(Value::from(n))),
    }
}

/// `params`: an object ([`Params`]).
fn params<'a>(s: &mut Scanner<'a>) -> Option<Params<'a>> {
    let mut p = Params::default();
    let mut seen = [false; 8];
    s.object(|s, key| {
        let slot = match key {
            "_meta" => {
                p.meta = meta(s)?;
                0
            }
            "name" => {
                p.name = opt_string(s)?;
                1
            }
            "uri" => {
                p.uri = opt_string(s)?;
                2
            }
            "arguments" => {
                p.arguments = opt_raw(s)?;
                3
            }
            "cursor" => {
                p.cursor = opt_raw(s)?;
                4
            }
            "inputResponses" => {
                p.input_responses = opt_raw(s)?;
                5
            }
            "requestState" => {
                p.request_state = opt_raw(s)?;
                6
            }
            "notifications" => {
                p.notifications = opt_raw(s)?;
                7
            }
            _ => return s.skip(),
        };
        first(&mut seen[slot])
    })?;
    Some(p)
}

/// `_meta`: `null` or an object ([`Meta`]).
fn meta<'a>(s: &mut Scanner<'a>) -> Option<Option<Meta<'a>>> {
    if s.null()? {
        return Some(None);
    }
    let mut m = Meta::default();
    let mut seen = [false; 5];
    s.object(|s, key| {
        let slot = match key {
            "io.modelcontextprotocol/protocolVersion" => {
                m.version = opt_string(s)?;
                0
            }
            "io.modelcontextprotocol/clientCapabilities" => {
                m.capabilities = capabilities(s)?;
                1
            }
            "io.modelcontextprotocol/clientInfo" => {
                m.client_info = client_info(s)?;
                2
            }
            "io.modelcontextprotocol/logLevel" => {
                m.log_level = opt_string(s)?;
                3
            }
            "progressToken" => {
                m.progress_token = progress_token(s)?;
                4
            }
            _ => return s.skip(),
        };
        first(&mut seen[slot])
    })?;
    Some(Some(m))
}

/// `clientCapabilities`: which of the three a non-`null` value declares (a key given twice: the
/// last one counts, as in serde's visitor).
fn capabilities(s: &mut Scanner<'_>) -> Option<Option<Caps>> {
    if s.null()? {
        return Some(None);
    }
    let mut caps = Caps::default();
    s.object(|s, key| {
        let declared = !s.null()?;
        if declared {
            s.skip()?;
        }
        match key {
            "sampling" => caps.sampling = declared,
            "elicitation" => caps.elicitation = declared,
            "roots" => caps.roots = declared,
            _ => {}
        }
        Some(())
    })?;
    Some(Some(caps))
}

/// `clientInfo`: its name.
fn client_info<'a>(s: &mut Scanner<'a>) -> Option<Option<ClientInfo<'a>>> {
    if s.null()? {
        return Some(None);
    }
    let mut info = ClientInfo::default();
    let mut seen = false;
    s.object(|s, key| match key {
        "name" => {
            info.name = opt_string(s)?;
            first(&mut seen)
        }
        _ => s.skip(),
    })?;
    Some(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// serde's reading of the same request: what the scanner must agree with.
    fn serde_reads(text: &str) -> Option<(RequestId, Params<'_>)> {
        #[derive(Deserialize)]
        struct Wire<'a> {
            #[serde(borrow)]
            jsonrpc: Cow<'a, str>,
            id: RequestId,
            #[serde(borrow)]
            method: Cow<'a, str>,
            #[serde(borrow, deserialize_with = "object")]
            params: Params<'a>,
        }
        fn object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Params<'de>, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Params<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    m: A,
                ) -> Result<Params<'de>, A::Error> {
                    Params::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                }
            }
            d.deserialize_map(Visitor)
        }
        let w: Wire<'_> = serde_json::from_str(text).ok()?;
        (w.jsonrpc == "2.0" && w.method == "tools/call").then_some((w.id, w.params))
    }

    /// Whatever the scanner reads, serde reads the same; `true` when the scanner read it.
    fn agrees(text: &str) -> bool {
        match tools_call(text) {
            None => false,
            Some(scanned) => {
                assert_eq!(Some(&scanned), serde_reads(text).as_ref(), "on {text:?}");
                true
            }
        }
    }

    const ENVELOPE: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}"#;

    fn call(id: &str, rest: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo",{rest}}}}}"#
        )
    }

    /// The shapes official clients send: each must take the fast path.
    fn common() -> Vec<String> {
        vec![
            call("10000001", &format!(r#""arguments":{{"message":"hello"}},{ENVELOPE}"#)),
            call(r#""req-7""#, &format!(r#""arguments":{{"message":"say \"hi\"\n\u00e9 \ud83d\ude00"}},{ENVELOPE}"#)),
            format!(
                " {{ \"method\" : \"tools/call\" ,\n\t\"params\":{{{ENVELOPE},\"name\":\"long_task\",\"arguments\":{{\"steps\":3,\"interval_ms\":-1.5e-3,\"list\":[1,[],{{}},[true,false,null,\"x\"]]}}}},\r\n\"id\":-42,\"jsonrpc\":\"2.0\",\"extra\":[{{\"a\":{{\"b\":[0.5]}}}}]}} "
            ),
            call(
                "3",
                r#""arguments":{},"_meta":{"progressToken":"p1","io.modelcontextprotocol/logLevel":"debug","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}},"sampling":null,"roots":{"listChanged":true},"x":1},"io.modelcontextprotocol/clientInfo":null,"vendor/x":{"deep":[{"k":"v"}]}},"requestState":"c3RhdGU","inputResponses":{"q1":{"action":"accept","content":{"n":1}}}"#,
            ),
            call("0", r#""arguments":null,"_meta":{"progressToken":18446744073709551615}"#),
            call("-9223372036854775808", r#""_meta":{"progressToken":-9223372036854775808}"#),
            call("9223372036854775807", r#""_meta":null,"requestState":null"#),
        ]
    }

    #[test]
    fn the_shapes_clients_send_take_the_fast_path_and_read_as_serde_reads_them() {
        for text in common() {
            assert!(agrees(&text), "not scanned: {text}");
        }
        let first = &common()[0];
        let (id, p) = tools_call(first).unwrap_or_else(|| panic!("not scanned"));
        assert_eq!(id, RequestId::Num(10000001));
        assert_eq!(p.arguments.map(|a| a.get()), Some(r#"{"message":"hello"}"#));
        let meta = p.meta.unwrap_or_else(|| panic!("no _meta"));
        assert_eq!(meta.version.as_deref(), Some("2026-07-28"));
        assert_eq!(
            meta.client_info.and_then(|i| i.name).as_deref(),
            Some("bench")
        );
    }

    #[test]
    fn what_the_scanner_leaves_to_serde_is_never_misread() {
        let cases = [
            // Not a tools/call, or not a request at all.
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_owned(),
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{}}"#.to_owned(),
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}]"#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{}}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}} x"#.to_owned(),
            // Ids serde refuses or reads as another type.
            call("-0", ""),
            call("1.0", ""),
            call("1e2", ""),
            call("01", ""),
            call("null", ""),
            call("9223372036854775808", ""),
            call("-9223372036854775809", ""),
            call("true", ""),
            // Fields twice, escaped strings to keep, wrong types.
            call("1", r#""name":"again""#),
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#
                .to_owned(),
            call("1", r#""_meta":{"progressToken":1,"progressToken":2}"#),
            call(
                "1",
                r#""_meta":{"io.modelcontextprotocol/clientInfo":{"name":"a","name":"b"}}"#,
            ),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"echo"}}"#
                .to_owned(),
            r#"{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"echo"}}"#
                .to_owned(),
            call(
                "1",
                r#""_meta":{"io.modelcontextprotocol/protocolVersion":7}"#,
            ),
            call(
                "1",
                r#""_meta":{"io.modelcontextprotocol/clientCapabilities":[]}"#,
            ),
            call("1", r#""_meta":{"progressToken":1.5}"#),
            call("1", r#""_meta":{"progressToken":{}}"#),
            call("1", r#""_meta":[]"#),
            call("1", r#""arguments":{"s":"\ud800"}"#),
            call("1", r#""arguments":{"s":"\ud800\u0041"}"#),
            call("1", r#""arguments":{"s":"\udc00\ud800"}"#),
            call("1", r#""arguments":{"s":"\u12"}"#),
            call("1", r#""arguments":{"s":"\x"}"#),
            call("1", r#""arguments":{"n":1.}"#),
            call("1", r#""arguments":{"n":-}"#),
            call("1", r#""arguments":{"n":.5}"#),
            call("1", r#""arguments":{"n":1e}"#),
            call("1", r#""arguments":{"n":tru}"#),
            call("1", r#""arguments":{"a":[1,]}"#),
            call("1", r#""arguments":{"a":{"b":1,}}"#),
            call("1", r#""arguments":{"a":[}"#),
            call("1", "\"arguments\":{\"s\":\"tab\there\"}"),
            call("1", r#""arguments":{"s":1}}"#),
        ];
        for text in cases {
            assert!(
                !agrees(&text),
                "scanned, but serde reads it otherwise or not at all: {text}"
            );
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_left_to_serde() {
        let nested = |depth: usize| {
            call(
                "1",
                &format!(
                    r#""arguments":{{"a":{}1{}}}"#,
                    "[".repeat(depth),
                    "]".repeat(depth)
                ),
            )
        };
        assert!(agrees(&nested(json::MAX_DEPTH as usize - 1)));
        assert!(!agrees(&nested(json::MAX_DEPTH as usize + 1)));
        assert!(!agrees(&nested(10_000)));
    }

    /// Every one-byte deletion, insertion and replacement of the common shapes: whatever the
    /// scanner still reads, serde reads the same.
    #[test]
    fn no_one_byte_mutation_is_read_differently_from_serde() {
        let inserts = [
            b'"', b'\\', b',', b':', b'{', b'}', b'[', b']', b' ', b'0', b'-', b'.', b'e', b'n',
            b'u', b'\n', 0x01, b'a',
        ];
        let (mut tried, mut scanned) = (0, 0);
        for text in common() {
            let bytes = text.as_bytes();
            let mut mutants: Vec<Vec<u8>> = Vec::new();
            for i in 0..bytes.len() {
                let mut deleted = bytes.to_vec();
                deleted.remove(i);
                mutants.push(deleted);
                for &c in &inserts {
                    let mut inserted = bytes.to_vec();
                    inserted.insert(i, c);
                    mutants.push(inserted);
                    let mut replaced = bytes.to_vec();
                    replaced[i] = c;
                    mutants.push(replaced);
                }
            }
            for m in mutants {
                let Ok(m) = String::from_utf8(m) else {
                    continue;
                };
                tried += 1;
                scanned += usize::from(agrees(&m));
            }
        }
        assert!(
            tried > 30_000 && scanned > 1_000,
            "{tried} mutants, {scanned} scanned"
        );
    }
}
