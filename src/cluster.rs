//! What the 2026-07-28 protocol shares across the cluster through Redis: the secret its MRTR
//! `requestState` is sealed with, and resource and list changes.
//!
//! Sessions need Redis to tell a misroute from an unknown session ([`crate::session::registry`]);
//! a modern request needs no Redis at all on its path. Two things still cross nodes:
//! - **The state secret.** With Redis and no `cluster.state_secret`, the nodes agree on one
//!   generated secret: the first node to start writes it with `SET NX`, every node reads it. It is
//!   never logged. Until a node has read it (Redis away at start) it seals with its own random key,
//!   which stays in its ring to open what it sealed meanwhile.
//! - **Changes.** A change raised on any node is delivered on that node at once (the
//!   [`Bus`](crate::mcp::bus::Bus)) and published on one channel; each node has one subscriber
//!   connection and delivers the other nodes' changes to its listeners.
//!
//! Redis being down never fails a request: changes then stay on the node that raised them.

use std::sync::Arc;
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, KeysInterface, PubsubInterface};
use fred::types::{Builder, Expiration, SetOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::ListKind;
use crate::mcp::bus::{Change, Relay};
use crate::mcp::{random_secret, Endpoint, StateKeys};

/// How many changes may wait for the publisher before they are delivered on this node only.
const OUTBOX: usize = 1024;
/// Pause between attempts to read the shared secret while Redis is away.
const RETRY: Duration = Duration::from_secs(1);

/// Settings, from `[redis]` and `[cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub url: String,
    pub node: String,
    pub key_prefix: String,
    pub command_timeout: Duration,
    /// Agree on a state secret through Redis (no `cluster.state_secret` configured).
    pub agree_secret: bool,
    pub state_ttl: Duration,
    /// The secret this process sealed with before the agreement (kept in the ring to open what it
    /// sealed).
    pub own_secret: String,
}

/// A change as it travels on the channel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Wire {
    /// The node that raised it (for logs).
    n: String,
    /// `resource`, `tools`, `prompts` or `resources`.
    k: String,
    /// The resource's URI, for `resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
}

impl Wire {
    fn of(node: &str, change: &Change) -> Wire {
        let (k, u) = match change {
            Change::ResourceUpdated(uri) => ("resource", Some(uri.to_string())),
            Change::ListChanged(ListKind::Tools) => ("tools", None),
            Change::ListChanged(ListKind::Prompts) => ("prompts", None),
            Change::ListChanged(ListKind::Resources) => ("resources", None),
        };
        Wire {
            n: node.to_owned(),
            k: k.to_owned(),
            u,
        }
    }

    fn change(self) -> Option<Change> {
        Some(match (self.k.as_str(), self.u) {
            ("resource", Some(uri)) => Change::ResourceUpdated(uri.into()),
            ("tools", _) => Change::ListChanged(ListKind::Tools),
            ("prompts", _) => Change::ListChanged(ListKind::Prompts),
            ("resources", _) => Change::ListChanged(ListKind::Resources),
            _ => return None,
        })
    }
}

/// The relay the bus publishes through: a bounded outbox read by the publisher task.
struct Outbox {
    tx: mpsc::Sender<Change>,
}

impl Relay for Outbox {
    fn publish(&self, change: &Change) {
        if self.tx.try_send(change.clone()).is_err() {
            tracing::warn!("the cluster's change outbox is full; a change stays on this node");
        }
    }
}

/// Starts the cluster link for `endpoint`: the secret agreement (when asked for), the publisher
/// and the subscriber. Its tasks end when `stop` is cancelled.
pub fn start(
    cfg: ClusterConfig,
    endpoint: Endpoint,
    stop: CancellationToken,
) -> Result<JoinSet<()>, fred::error::Error> {
    let client = crate::session::registry::build_client(&cfg.url, cfg.command_timeout, true)?;
    let subscriber = Builder::from_config(fred::types::config::Config::from_url(&cfg.url)?)
        .with_connection_config(|c| c.connection_timeout = cfg.command_timeout)
        .set_policy(fred::types::config::ReconnectPolicy::new_exponential(
            0, 100, 2_000, 2,
        ))
        .build_subscriber_client()?;
    let channel = format!("{}changes", cfg.key_prefix);
    let (tx, rx) = mpsc::channel(OUTBOX);
    endpoint.bus().set_relay(Arc::new(Outbox { tx }));
    let mut tasks = JoinSet::new();
    // The connection tasks are fred's; `quit` at the end of each task below ends them.
    drop(client.connect());
    drop(subscriber.connect());
    tasks.spawn(publish(
        client.clone(),
        channel.clone(),
        cfg.node.clone(),
        rx,
        stop.clone(),
    ));
    tasks.spawn(subscribe(
        subscriber,
        channel,
        cfg.node.clone(),
        endpoint.clone(),
        stop.clone(),
    ));
    if cfg.agree_secret {
        tasks.spawn(agree_secret(client, cfg, endpoint, stop));
    }
    Ok(tasks)
}

/// Sends the outbox's changes (this node's, already delivered here) to the channel.
async fn publish(
    client: Client,
    channel: String,
    node: String,
    mut rx: mpsc::Receiver<Change>,
    stop: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            () = stop.cancelled() => break,
            c = rx.recv() => match c {
                Some(c) => c,
                None => break,
            },
        };
        let message = serde_json::to_string(&Wire::of(&node, &change)).unwrap_or_default();
        let sent: Result<i64, _> = client.publish(channel.as_str(), message).await;
        if let Err(e) = &sent {
            tracing::warn!(error = %e, "cannot publish a change to the cluster; delivered on this node only");
        }
    }
    let _ = client.quit().await;
}

/// Delivers the changes the other nodes publish on the channel (this node's own were delivered
/// when they were raised).
async fn subscribe(
    subscriber: SubscriberClient,
    channel: String,
    node: String,
    endpoint: Endpoint,
    stop: CancellationToken,
) {
    let mut messages = subscriber.message_rx();
    // Re-subscribes after every reconnect; ended below.
    let resubscriber = subscriber.manage_subscriptions();
    let mut subscribed = false;
    let mut retry = tokio::time::interval(RETRY);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = retry.tick(), if !subscribed => {
                match subscriber.subscribe(channel.as_str()).await {
                    Ok(()) => subscribed = true,
                    Err(e) => tracing::debug!(error = %e, "cannot subscribe to the cluster's changes yet"),
                }
            }
            m = messages.recv() => match m {
                Ok(m) => {
                    let wire = m.value.as_str().and_then(|s| serde_json::from_str::<Wire>(&s).ok());
                    let theirs = wire.filter(|w| w.n != node);
                    if let Some(change) = theirs.and_then(Wire::change) {
                        endpoint.bus().deliver(change);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "the cluster's change channel outran this node; changes were lost");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    resubscriber.abort();
    let _ = subscriber.quit().await;
}

/// Reads the cluster's state secret, writing a new one first if there is none, and seals with it
/// from then on (keeping this process's own key to open what it sealed before).
async fn agree_secret(
    client: Client,
    cfg: ClusterConfig,
    endpoint: Endpoint,
    stop: CancellationToken,
) {
    let key = format!("{}state-secret", cfg.key_prefix);
    let own = cfg.own_secret.as_str();
    loop {
        let proposal = random_secret();
        let agreed: Result<Option<String>, _> = async {
            let _: Option<String> = client
                .set(
                    key.as_str(),
                    proposal.as_str(),
                    None::<Expiration>,
                    Some(SetOptions::NX),
                    false,
                )
                .await?;
            client.get(key.as_str()).await
        }
        .await;
        match agreed {
            Ok(Some(secret)) if secret.len() >= crate::config::MIN_STATE_SECRET => {
                endpoint.set_state_keys(StateKeys::from_secrets(
                    &[secret.as_str(), own],
                    cfg.state_ttl,
                ));
                tracing::info!(node = %cfg.node, created = secret == proposal, "requestState sealed with the cluster's shared secret");
                return;
            }
            Ok(_) => {
                tracing::warn!(key = %key, "the cluster's state secret in Redis is missing or too short; retrying")
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the cluster's state secret yet"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_json_and_come_back_the_same() {
        for change in [
            Change::ResourceUpdated("mcpd://node".into()),
            Change::ListChanged(ListKind::Tools),
            Change::ListChanged(ListKind::Prompts),
            Change::ListChanged(ListKind::Resources),
        ] {
            let text = serde_json::to_string(&Wire::of("n1", &change)).unwrap();
            let back: Wire = serde_json::from_str(&text).unwrap();
            assert_eq!(back.n, "n1");
            assert_eq!(back.change(), Some(change));
        }
        let odd: Wire = serde_json::from_str(r#"{"n":"x","k":"weather"}"#).unwrap();
        assert_eq!(odd.change(), None);
        assert_eq!(
            serde_json::from_str::<Wire>(r#"{"n":"x","k":"resource"}"#)
                .unwrap()
                .change(),
            None
        );
    }
}
