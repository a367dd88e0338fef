//! Change notifications: a resource was updated, a list changed. Raised by a tool on any node,
//! delivered to every listener of both eras — legacy sessions subscribed to the resource (on
//! their GET stream) and 2026-07-28 `subscriptions/listen` streams whose filter asked for it.
//!
//! Within a node a change goes to the session table and a broadcast channel the listen streams
//! read. A change raised here is delivered here at once, in order with everything else this node
//! sends; the other nodes get it through a [`Relay`] (Redis pub/sub, see `crate::cluster`), whose
//! subscriber on each node skips the changes that node raised itself.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::jsonrpc;
use super::sse::push;
use crate::catalog::ListKind;
use crate::session::SessionTable;

/// How many changes a listen stream may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `notifications/resources/updated` for this URI.
    ResourceUpdated(Arc<str>),
    /// `notifications/{tools,prompts,resources}/list_changed`.
    ListChanged(ListKind),
}

/// Where changes go beyond this node.
pub trait Relay: Send + Sync {
    /// Hands `change` to the other nodes (each delivers it through [`Bus::deliver`]); best
    /// effort: a change that cannot be sent stays on this node.
    fn publish(&self, change: &Change);
}

/// The node's change bus.
pub struct Bus {
    table: Arc<SessionTable>,
    tx: broadcast::Sender<Change>,
    relay: std::sync::OnceLock<Arc<dyn Relay>>,
}

impl Bus {
    /// A node-local bus over `table`'s sessions.
    pub fn new(table: Arc<SessionTable>) -> Bus {
        Bus {
            table,
            tx: broadcast::channel(BACKLOG).0,
            relay: std::sync::OnceLock::new(),
        }
    }

    /// Sends changes through `relay` from now on (set once, when the cluster link is up).
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// Raises `change` everywhere it can reach.
    pub fn publish(&self, change: Change) {
        if let Some(relay) = self.relay.get() {
            relay.publish(&change);
        }
        self.deliver(change);
    }

    /// Delivers `change` to this node's listeners.
    pub fn deliver(&self, change: Change) {
        if let Change::ResourceUpdated(uri) = &change {
            let message = jsonrpc::notification(
                "notifications/resources/updated",
                serde_json::json!({ "uri": &**uri }),
            );
            for s in self.table.all() {
                if s.is_subscribed(uri) {
                    push(s.standalone(), &message);
                }
            }
        }
        // No receiver (no listen stream open) is not an error.
        let _ = self.tx.send(change);
    }

    /// A receiver of every change delivered from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}
