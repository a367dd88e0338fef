//! Helpers for the fixtures' unit tests: run a tool against a fake client and record what it
//! sends, read a result's texts, decode base64, build a catalog with the fixtures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::tools;
use crate::catalog::{
    Call, CallInfo, Catalog, ClientCapability, Emit, LogLevel, RequestError, ToolResult,
};

pub(super) fn info() -> CallInfo {
    CallInfo {
        principal: None,
        node: Arc::from("test-node"),
        session_id: Some(Arc::from("test-session")),
        protocol_version: "2025-11-25",
        client_name: Arc::from("test-client 1.0"),
        started: Instant::now(),
    }
}

/// What a tool sent, in order, without the reply channels.
#[derive(Debug, PartialEq)]
pub(super) enum Seen {
    Progress {
        token: Value,
        progress: f64,
        total: Option<f64>,
    },
    Log {
        level: LogLevel,
        logger: Option<String>,
        data: Value,
    },
    Request {
        method: &'static str,
        params: Value,
    },
    CloseConnection,
    Other,
}

/// Runs tool `name` with a progress token of `1` and every client capability, answering each
/// server→client request with `answer(method, params)`. Returns the result, what the tool
/// emitted and when (time since the call started).
pub(super) async fn run(
    name: &str,
    args: Value,
    answer: impl Fn(&str, &Value) -> Result<Value, RequestError>,
) -> (ToolResult, Vec<(Duration, Seen)>) {
    run_with(name, args, |_| true, answer).await
}

pub(super) async fn run_with(
    name: &str,
    args: Value,
    caps: impl Fn(ClientCapability) -> bool,
    answer: impl Fn(&str, &Value) -> Result<Value, RequestError>,
) -> (ToolResult, Vec<(Duration, Seen)>) {
    let tool = tools()
        .into_iter()
        .find(|t| t.name == name)
        .expect("tool exists");
    let emits = crate::catalog::Emits::new();
    let Some(mut rx) = emits.receiver() else {
        unreachable!("a new channel's receiver is there to take")
    };
    // The channel closes when the tool drops its `Call` (the only other clone of `emits`).
    let call = Call::new(
        info(),
        emits,
        CancellationToken::new(),
        Some(json!(1)),
        caps,
    );
    let args = match args {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let start = Instant::now();
    let task = tokio::spawn((tool.handler)(call, args));
    let mut seen = Vec::new();
    // The channel closes when the tool drops its `Call`, i.e. when it has finished.
    while let Some(emit) = rx.recv().await {
        let s = match *emit {
            Emit::Progress {
                token,
                progress,
                total,
                ..
            } => Seen::Progress {
                token,
                progress,
                total,
            },
            Emit::Log {
                level,
                logger,
                data,
            } => Seen::Log {
                level,
                logger,
                data,
            },
            Emit::Request {
                method,
                params,
                reply,
            } => {
                let _ = reply.send(answer(method, &params));
                Seen::Request { method, params }
            }
            Emit::CloseConnection => Seen::CloseConnection,
            _ => Seen::Other,
        };
        seen.push((start.elapsed(), s));
    }
    (task.await.expect("tool does not panic"), seen)
}

pub(super) fn no_requests(method: &str, _: &Value) -> Result<Value, RequestError> {
    panic!("unexpected request {method}")
}

pub(super) fn texts(result: &ToolResult) -> Vec<String> {
    result.to_value()["content"]
        .as_array()
        .expect("content array")
        .iter()
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect()
}

/// Standard base64 (with padding) decoded by hand, so the tests need no crate.
pub(super) fn base64_decode(s: &str) -> Vec<u8> {
    pub(super) const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(s.len() % 4, 0, "base64 length is a multiple of 4");
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("not base64: {:?}", c as char)) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

pub(super) fn catalog() -> Catalog {
    Catalog::new(true)
}
