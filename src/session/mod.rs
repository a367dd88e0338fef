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
pub use params::{ProtocolVersion, SessionParams};
pub use state::{BusyGuard, ClientReply, InFlightError, PendingRequest, Session};
pub use stream::{EventLog, Read, ReaderGuard, StreamId};
pub use table::{CloseReason, SessionTable, TableFull};
