//! Sessions: the in-process state ADR-0066 pins clients to, and the table that holds them.
//!
//! A [`Session`] owns what cannot leave the process: its SSE streams ([`EventLog`]s), the
//! cancellation tokens of its running requests, the server→client requests waiting for the
//! client's answer, and the tasks running its tool calls. Everything is bounded; closing a session
//! cancels its tasks and ends its streams. The [`SessionTable`] holds the sessions of this node,
//! enforces `max_sessions` and reaps idle and never-initialized ones.
//!
//! [`registry`] records the sessions of the cluster in Redis (ADR-0066); [`adopt`] continues a
//! session whose node is gone from the durable parameters recorded there.
//!
//! This layer knows nothing about HTTP or JSON-RPC framing: stream payloads are opaque bytes
//! produced by the protocol layer.

mod adopt;
mod id;
mod params;
pub mod registry;
mod state;
mod stream;
mod table;

pub use adopt::Resolved;
pub use id::{OwnerTag, RequestId, SessionId};
pub use params::{Bearer, ProtocolVersion, SessionParams};
pub use state::{BusyGuard, ClientReply, Entered, InFlightError, PendingRequest, Session};
pub use stream::{EventLog, Read, ReaderGuard, StreamId};
pub use table::{CloseReason, SessionTable, TableFull};

/// A hash map for the maps every request reads (the session table, a session's requests in
/// flight). foldhash costs a few dozen instructions per key where std's SipHash costs a few
/// hundred; its per-map random seed keeps keys a client chooses (request ids) from being steered
/// into one bucket, and those maps are bounded (`max_sessions`, `max_in_flight`) regardless.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
