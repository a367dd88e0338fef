//! The protocol layer: MCP over Streamable HTTP, legacy (session) era 2025-03-26 … 2025-11-25.
//!
//! - [`transport`]: what an HTTP request is to us, what we answer, header rules (no hyper types);
//! - [`jsonrpc`]: messages, error codes, encoding;
//! - [`sse`]: event framing and the byte stream of one SSE connection;
//! - `endpoint`: POST/GET/DELETE entry points, `initialize`, session lookup;
//! - `greeting`: the `initialize` result, encoded once per protocol version;
//! - `dispatch`: per-method handling; `driver`: running tool calls and choosing JSON or SSE.
//!
//! The era decision (the stateless 2026-07-28 protocol is planned next) belongs at the entry of
//! [`Endpoint::post`]; the session layer stays independent of it.

mod dispatch;
mod driver;
mod endpoint;
mod greeting;
pub mod jsonrpc;
pub mod sse;
pub mod transport;

pub use endpoint::{Endpoint, HttpMethod, Limits};
