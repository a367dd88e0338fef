//! mcpd: a single-binary MCP server (Streamable HTTP) whose sessions live in the process.
//!
//! The modules follow one request top-down:
//! - [`config`]: the typed configuration (embedded defaults < file < `MCPD_*` environment);
//! - [`telemetry`]: log output (text, JSON, journald);
//! - [`daemon`]: process lifecycle, signals and the drain;
//! - [`http`]: listener, connections, routing to `/mcp` and `/healthz`;
//! - [`mcp`]: the protocol (JSON-RPC, Streamable HTTP rules, SSE, dispatch);
//! - [`session`]: in-process session state and the session table;
//! - [`catalog`]: tools, resources, prompts and completions, ignorant of transport;
//! - [`cluster`]: what the stateless era shares through Redis (the state secret, changes).
//!
//! Dependencies point one way: `http → mcp → {session, catalog}`.

pub mod auth;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod http;
pub mod mcp;
pub mod session;
pub mod telemetry;
