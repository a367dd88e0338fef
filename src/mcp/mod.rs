//! The protocol layer: MCP over Streamable HTTP, both eras on one endpoint — the stateless
//! 2026-07-28 protocol ("modern") and the session protocol of 2025-03-26 … 2025-11-25 ("legacy").
//!
//! - [`transport`]: what an HTTP request is to us, what we answer, header rules (no hyper types);
//! - [`jsonrpc`]: messages, error codes, encoding;
//! - [`sse`]: event framing and the byte stream of one SSE connection;
//! - [`era`]: which era a POST belongs to, decided once at the entry of [`Endpoint::post`];
//! - `endpoint`: POST/GET/DELETE entry points; legacy `initialize` and session lookup;
//! - `greeting`: the `initialize` result, encoded once per protocol version;
//! - `dispatch`: legacy per-method handling; `driver`: running a session's tool calls and
//!   choosing JSON or SSE;
//! - `modern`: the 2026-07-28 protocol, which never touches the session layer;
//! - `work`: a running tool or interactive prompt, as both drivers run it;
//! - `shared`: what every request of a node shares (table, catalog, limits, bus, tokens);
//! - [`bus`]: resource and list changes, delivered to the listeners of both eras.
//!
//! The catalog serves both eras without knowing which: a tool asks the client through its
//! [`Call`](crate::catalog::Call), and the era decides how that question travels.

pub mod bus;
mod dispatch;
mod driver;
mod endpoint;
pub mod era;
mod greeting;
pub mod jsonrpc;
mod modern;
mod shared;
pub mod sse;
pub mod transport;
mod work;

pub use endpoint::{Endpoint, HttpMethod};
pub use era::Era;
pub use modern::state::{random_secret, StateKeys};
pub use shared::Limits;
