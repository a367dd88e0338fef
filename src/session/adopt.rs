//! Session adoption: a request for a session whose owner is gone (its node died or redeployed, or
//! it was a previous boot of this node) continues it here, under the same id, from the durable
//! parameters its registry record kept — so a deploy is invisible to clients that never
//! re-initialize after a 404 (none of the official ones does).
//!
//! What survives: the id, the negotiated protocol version, client info and capabilities, the log
//! level and the resource subscriptions. What does not (it was in the dead process, as ADR-0066
//! decides): requests that were running, server→client requests not yet answered, and SSE replay
//! history — a `Last-Event-ID` from before gets a fresh stream.
//!
//! Ownership moves by an atomic claim in Redis that succeeds only if the record is unchanged since
//! it was read: of several nodes asked for the same orphan at once exactly one wins, and the
//! others forward to it. Within one node, concurrent requests for the same orphan wait for the
//! first one's adoption.

use std::sync::Arc;

use super::registry::{Miss, MissClass, MissPolicy, Orphan, Peer, Registry, Route, SessionRecord};
use super::{ProtocolVersion, Session, SessionId, SessionParams, SessionTable, TableFull};
use crate::catalog::LogLevel;

/// How a request for a session this node does not hold is answered.
#[derive(Debug)]
pub enum Resolved {
    /// Here after all: adopted just now, or by a concurrent request.
    Here(Arc<Session>),
    /// Through the live peer that holds it; the miss is logged once the request was relayed
    /// ([`Registry::log_forwarded`]).
    Forward(Peer, Miss),
    /// 404.
    NotFound,
    /// An orphan that cannot be adopted because this node is full (503).
    Full(TableFull),
}

impl SessionTable {
    /// Decides what to do with a request for `raw_id`, which this node does not hold, under
    /// `policy` (see [`MissPolicy`]); adopts the session when its owner is gone. Without a
    /// registry every miss is unclassified and answered 404.
    pub async fn resolve_miss(
        &self,
        raw_id: &str,
        policy: &MissPolicy,
        replay_events: usize,
    ) -> Resolved {
        let Some(registry) = self.registry() else {
            count_miss(MissClass::Unclassified);
            return Resolved::NotFound;
        };
        let (miss, route) = registry.route(raw_id, policy).await;
        count_miss(miss.class);
        match route {
            Route::Forward(peer) => Resolved::Forward(peer, miss),
            Route::Adopt(orphan) => self.adopt(registry, *orphan, policy, replay_events).await,
            Route::NotFound => match raw_id.parse::<SessionId>() {
                // The record may name this node because a concurrent request is adopting it.
                Ok(id) => self
                    .after_adoption(&id)
                    .await
                    .map_or(Resolved::NotFound, Resolved::Here),
                Err(_) => Resolved::NotFound,
            },
        }
    }

    async fn adopt(
        &self,
        registry: &Registry,
        orphan: Orphan,
        policy: &MissPolicy,
        replay_events: usize,
    ) -> Resolved {
        let id = orphan.id;
        let lock = self.adoption_lock(id);
        let claimed = {
            let _turn = lock.lock().await;
            self.claim(registry, &orphan, replay_events).await
        };
        self.finish_adoption(id, lock);
        if let Some(resolved) = claimed {
            return resolved;
        }
        // Someone else claimed it (or its owner rewrote it) since it was read: ask again, this
        // time without adopting — it is somebody's now.
        let again = MissPolicy {
            adopt: false,
            shortcut: false,
            ..policy.clone()
        };
        match registry.route(&id.to_string(), &again).await {
            (miss, Route::Forward(peer)) => Resolved::Forward(peer, miss),
            _ => Resolved::NotFound,
        }
    }

    /// Adopts `orphan` unless a concurrent request here did; `None` when another node won the
    /// claim.
    async fn claim(
        &self,
        registry: &Registry,
        orphan: &Orphan,
        replay_events: usize,
    ) -> Option<Resolved> {
        let raw_id = orphan.id.to_string();
        if let Some(session) = self.get(&orphan.id) {
            return Some(Resolved::Here(session));
        }
        if self.len() >= self.max {
            tracing::warn!(session_id = %raw_id, limit = self.max, "cannot adopt: session limit reached");
            return Some(Resolved::Full(TableFull(self.max)));
        }
        let Some(session) = successor(orphan, replay_events) else {
            tracing::warn!(session_id = %raw_id, owner_node = %orphan.record.node, "cannot adopt: the stored record is not usable");
            return Some(Resolved::NotFound);
        };
        match registry.claim(orphan, &session).await {
            Ok(true) => {
                self.insert_claimed(Arc::clone(&session));
                registry.log_adoption(&raw_id, &orphan.record.node, true);
                crate::telemetry::metrics().sessions_adopted.inc();
                tracing::info!(
                    session_id = %raw_id,
                    previous_node = %orphan.record.node,
                    protocol = %session.params().protocol,
                    log_level = session.log_level().as_str(),
                    subscriptions = session.subscriptions().len(),
                    "session adopted"
                );
                Some(Resolved::Here(session))
            }
            Ok(false) => {
                tracing::info!(session_id = %raw_id, "another node adopted this session first");
                None
            }
            Err(e) => {
                registry.log_adoption(&raw_id, &orphan.record.node, false);
                tracing::warn!(session_id = %raw_id, error = %e, "adoption not decided; answering 404");
                Some(Resolved::NotFound)
            }
        }
    }

    /// The per-id lock of an adoption here.
    fn adoption_lock(&self, id: SessionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut adopting = self.adopting.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(adopting.entry(id).or_default())
    }

    /// Drops the per-id lock once nobody else waits on it.
    fn finish_adoption(&self, id: SessionId, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut adopting = self.adopting.lock().unwrap_or_else(|p| p.into_inner());
        drop(lock);
        if adopting.get(&id).is_some_and(|l| Arc::strong_count(l) == 1) {
            adopting.remove(&id);
        }
    }

    /// Waits for an adoption of `id` under way here, then looks again (also when none is under
    /// way any more: one may have finished while this request read Redis).
    async fn after_adoption(&self, id: &SessionId) -> Option<Arc<Session>> {
        let lock = {
            let adopting = self.adopting.lock().unwrap_or_else(|p| p.into_inner());
            adopting.get(id).cloned()
        };
        if let Some(lock) = lock {
            drop(lock.lock().await);
            self.finish_adoption(*id, lock);
        }
        self.get(id)
    }
}

/// The local session that continues `orphan`, or `None` when its record cannot be read back (an
/// unknown protocol version: written by a newer or foreign node).
fn successor(orphan: &Orphan, replay_events: usize) -> Option<Arc<Session>> {
    let SessionRecord {
        protocol,
        client_info,
        capabilities,
        log_level,
        subscriptions,
        bearer,
        ..
    } = &orphan.record;
    let protocol = protocol.parse::<ProtocolVersion>().ok()?;
    let client_name = client_info
        .get("name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown")
        .into();
    let params = SessionParams {
        protocol,
        client_info: client_info.clone(),
        client_name,
        capabilities: capabilities.clone(),
        bearer: bearer.clone(),
    };
    let level = log_level.parse::<LogLevel>().unwrap_or(LogLevel::Info);
    let session = Arc::new(Session::continued(
        orphan.id,
        params,
        replay_events,
        orphan.record.created_ms,
        level,
        subscriptions.iter().cloned(),
    ));
    session.touch();
    Some(session)
}

fn count_miss(class: MissClass) {
    crate::telemetry::metrics()
        .session_misses
        .get_or_create(&crate::telemetry::metrics::ClassLabels {
            class: class.as_str(),
        })
        .inc();
}
