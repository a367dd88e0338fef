//! `subscriptions/listen`: the 2026-07-28 replacement for the GET stream and
//! `resources/subscribe` (spec `basic/patterns/subscriptions.mdx`).
//!
//! The reply is an SSE stream: first `notifications/subscriptions/acknowledged` naming the subset
//! of the filter this server honours, then only the notifications the filter asked for, each
//! tagged with the subscription's id, with keep-alive comments between them. When the node
//! drains, each stream waits a random part of `session.sse_retry` (so that the clients do not all
//! come back at once) and ends with the completion result of the listen request. A client ends
//! its subscription by closing the stream.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast::error::RecvError;

use super::envelope::{Params, Refusal};
use super::refused;
use crate::catalog::ListKind;
use crate::mcp::bus::Change;
use crate::mcp::era::Era;
use crate::mcp::jsonrpc::{self, ErrorCode, RequestId, RpcError};
use crate::mcp::shared::Shared;
use crate::mcp::sse;
use crate::mcp::transport::{Reply, RequestHeaders};

/// The `_meta` key tagging every message of a subscription.
const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";
/// At most this many resource URIs per subscription, each at most `MAX_URI` bytes.
const MAX_URIS: usize = 1000;
const MAX_URI: usize = 4096;

/// What a subscription asked for (spec `SubscriptionFilter`); anything else is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    tools_list_changed: bool,
    #[serde(default)]
    prompts_list_changed: bool,
    #[serde(default)]
    resources_list_changed: bool,
    #[serde(default)]
    resource_subscriptions: Vec<String>,
}

impl Filter {
    fn wants(&self, change: &Change) -> bool {
        match change {
            Change::ListChanged(ListKind::Tools) => self.tools_list_changed,
            Change::ListChanged(ListKind::Prompts) => self.prompts_list_changed,
            Change::ListChanged(ListKind::Resources) => self.resources_list_changed,
            Change::ResourceUpdated(uri) => {
                self.resource_subscriptions.iter().any(|u| **u == **uri)
            }
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.tools_list_changed {
            m.insert("toolsListChanged".into(), json!(true));
        }
        if self.prompts_list_changed {
            m.insert("promptsListChanged".into(), json!(true));
        }
        if self.resources_list_changed {
            m.insert("resourcesListChanged".into(), json!(true));
        }
        if !self.resource_subscriptions.is_empty() {
            m.insert(
                "resourceSubscriptions".into(),
                json!(self.resource_subscriptions),
            );
        }
        Value::Object(m)
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    (400, RpcError::new(ErrorCode::INVALID_PARAMS, message))
}

/// Opens a subscription.
pub(super) fn open(
    shared: &Arc<Shared>,
    h: &RequestHeaders<'_>,
    id: RequestId,
    p: Params<'_>,
) -> Reply {
    if h.session_id.is_some() {
        return refused(
            &id,
            (
                400,
                RpcError::new(
                    ErrorCode::INVALID_REQUEST,
                    "Invalid Request: subscriptions/listen belongs to protocol 2026-07-28, which has \
                     no sessions; drop Mcp-Session-Id (a session listens on its GET stream)",
                ),
            ),
        );
    }
    let Some(raw) = p.notifications else {
        return refused(
            &id,
            invalid("Invalid params: notifications (the subscription filter) is required"),
        );
    };
    let asked: Filter = match serde_json::from_str(raw.get()) {
        Ok(f) => f,
        Err(e) => return refused(&id, invalid(format!("Invalid params: notifications: {e}"))),
    };
    if asked.resource_subscriptions.len() > MAX_URIS
        || asked
            .resource_subscriptions
            .iter()
            .any(|u| u.len() > MAX_URI)
    {
        return refused(
            &id,
            invalid(format!(
                "Invalid params: at most {MAX_URIS} resourceSubscriptions of at most {MAX_URI} bytes each"
            )),
        );
    }
    if shared.draining.is_cancelled() {
        return Reply::unavailable("Service Unavailable: this node is shutting down", 1);
    }
    let lists = shared.modern.lists_change;
    let honoured = Filter {
        tools_list_changed: asked.tools_list_changed && lists,
        prompts_list_changed: asked.prompts_list_changed && lists,
        resources_list_changed: asked.resources_list_changed && lists,
        resource_subscriptions: asked.resource_subscriptions,
    };
    // The subscription's id is its listen request's id (the spec's `RequestId`): clients match
    // the acknowledgement and every event to their listen request by it.
    let subscription = serde_json::to_value(&id).unwrap_or(Value::Null);
    // Subscribed before the acknowledgement is sent: no change after it is missed.
    let changes = shared.bus.subscribe();
    let ack = jsonrpc::notification(
        "notifications/subscriptions/acknowledged",
        json!({"notifications": honoured.to_json(), "_meta": { SUBSCRIPTION_KEY: &subscription }}),
    );
    tracing::debug!(era = %Era::Modern, subscription = %subscription, filter = %honoured.to_json(), "listening");
    let keep_alive = sse::keep_alive_timer(shared.limits.keep_alive);
    let state = Listen {
        shared: Arc::clone(shared),
        id,
        subscription,
        filter: honoured,
        changes,
        keep_alive,
        first: Some(sse::data(&ack)),
        done: false,
        _open: sse::OpenStream::new(),
    };
    Reply::sse(Box::pin(stream::unfold(state, |mut st| async move {
        let frame = st.next().await?;
        Some((frame, st))
    })))
}

struct Listen {
    shared: Arc<Shared>,
    id: RequestId,
    subscription: Value,
    filter: Filter,
    changes: tokio::sync::broadcast::Receiver<Change>,
    keep_alive: tokio::time::Interval,
    first: Option<Bytes>,
    done: bool,
    _open: sse::OpenStream,
}

impl Listen {
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            tokio::select! {
                biased;
                () = self.shared.closing.cancelled() => {
                    // Spread the ends over the retry delay, then complete the request.
                    let spread = fastrand::u64(0..=self.shared.limits.sse_retry.as_millis() as u64);
                    tokio::time::sleep(std::time::Duration::from_millis(spread)).await;
                    self.done = true;
                    let result = json!({
                        "resultType": "complete",
                        "_meta": {
                            SUBSCRIPTION_KEY: &self.subscription,
                            super::results::SERVER_INFO_KEY: self.shared.modern.stamps.server_info(),
                        }
                    });
                    return Some(sse::data(&jsonrpc::response(&self.id, result)));
                }
                change = self.changes.recv() => match change {
                    Ok(change) if self.filter.wants(&change) => return Some(sse::data(&self.message(&change))),
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(era = %Era::Modern, subscription = %self.subscription, missed, "a listen stream fell behind; changes were lost");
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(sse::KEEP_ALIVE)),
            }
        }
    }

    fn message(&self, change: &Change) -> Bytes {
        let meta = json!({ SUBSCRIPTION_KEY: &self.subscription });
        match change {
            Change::ResourceUpdated(uri) => jsonrpc::notification(
                "notifications/resources/updated",
                json!({"uri": &**uri, "_meta": meta}),
            ),
            Change::ListChanged(kind) => {
                jsonrpc::notification(kind.method(), json!({ "_meta": meta }))
            }
        }
    }
}
