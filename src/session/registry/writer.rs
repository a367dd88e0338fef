//! The one task that writes the registry.
//!
//! Loop: wait for queued operations, the heartbeat tick or a reconnect; if connected, resync when
//! needed, then send everything queued as one pipeline (with the heartbeat). A failed pipeline
//! puts its deletions back and asks for a resync. On stop: one last pipeline that removes this
//! node's sessions (the drain closed them all), its heartbeat and its set.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use fred::interfaces::{ClientLike, EventInterface, KeysInterface, SetsInterface};
use fred::types::{Expiration, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::queue::Batch;
use super::{Registry, SessionRecord};
use crate::session::{SessionId, SessionTable};

/// Commands per pipeline: large enough that thousands of sessions cost a few round trips, small
/// enough that one pipeline stays well inside the command timeout.
const PIPELINE_CHUNK: usize = 1000;

type FredResult<T> = Result<T, fred::error::Error>;

pub(super) async fn run(reg: Registry, table: Arc<SessionTable>, stop: CancellationToken) {
    let inner = &reg.inner;
    let connection = inner.client.connect();
    let mut reconnects = inner.client.reconnect_rx();
    let mut heartbeat = tokio::time::interval(inner.cfg.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut needs_resync = true;
    let mut beat_due = true;
    let mut was_connected = false;
    let mut reconnect_events = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = inner.wake.notified() => {}
            _ = heartbeat.tick() => beat_due = true,
            r = reconnects.recv(), if reconnect_events => match r {
                // A reconnect (or reconnects we missed) means Redis may have lost or kept anything.
                Ok(_) | Err(RecvError::Lagged(_)) => needs_resync = true,
                // No more events (the client is going away): rely on the state checks below
                // rather than spin on a closed channel.
                Err(RecvError::Closed) => reconnect_events = false,
            },
        }
        let connected = inner.client.is_connected();
        if connected != was_connected {
            tracing::info!(node = %inner.node, connected, "registry connection {}", if connected { "up" } else { "down" });
            was_connected = connected;
            if !connected {
                inner.synced.store(false, Ordering::Relaxed);
                needs_resync = true;
            }
        }
        if !connected {
            continue; // operations wait in the queue; a reconnect wakes us
        }
        if needs_resync {
            match resync(&reg, &table).await {
                Ok(n) => {
                    needs_resync = false;
                    beat_due = false;
                    inner.synced.store(true, Ordering::Relaxed);
                    tracing::info!(node = %inner.node, sessions = n, "registry resynced");
                }
                Err(e) => {
                    inner.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(node = %inner.node, error = %e, "registry resync failed; will retry");
                    continue;
                }
            }
        }
        let batch = reg.queue().take();
        if batch.is_empty() && !beat_due {
            continue;
        }
        let deletes = batch.deletes.clone();
        let beat = beat_due;
        match flush(&reg, &batch, beat_due).await {
            Ok(()) => {
                beat_due = false;
                if beat {
                    if let Err(e) = refresh_peers(&reg).await {
                        tracing::debug!(node = %inner.node, error = %e, "peer directory refresh failed");
                    }
                }
            }
            Err(e) => {
                inner.errors.fetch_add(1, Ordering::Relaxed);
                inner.synced.store(false, Ordering::Relaxed);
                tracing::warn!(node = %inner.node, error = %e, ops = batch.len(), "registry write failed; will resync");
                reg.queue().requeue_deletes(deletes);
                needs_resync = true;
            }
        }
        // More may have queued while the pipeline was in flight.
        if !reg.queue().is_empty() {
            inner.wake.notify_one();
        }
    }
    final_cleanup(&reg).await;
    let _ = tokio::time::timeout(inner.cfg.command_timeout, inner.client.quit()).await;
    connection.abort();
}

/// Sends one batch (and the heartbeat) as pipelines of at most [`PIPELINE_CHUNK`] commands.
async fn flush(reg: &Registry, batch: &Batch, beat: bool) -> FredResult<()> {
    let inner = &reg.inner;
    let keys = &inner.keys;
    let set = keys.node_sessions(&inner.node);
    let ttl = ttl_secs(inner.cfg.session_ttl);
    let mut ops: Vec<Op> = Vec::with_capacity(batch.len() + 1);
    for (id, record) in &batch.creates {
        ops.push(Op::Set(
            keys.session(id),
            record.encode(),
            Expiration::EX(ttl),
        ));
        ops.push(Op::Sadd(set.clone(), id.to_string()));
    }
    for id in &batch.deletes {
        ops.push(Op::Del(keys.session(id)));
        ops.push(Op::Srem(set.clone(), id.to_string()));
    }
    for id in &batch.touches {
        ops.push(Op::Expire(keys.session(id), ttl));
    }
    if beat {
        ops.push(heartbeat(reg));
    }
    send(reg, ops).await
}

/// Makes Redis reflect this node: removes what it registered that is not live (a previous boot's
/// leftovers, or closes that did not reach Redis), then writes every live session. Returns the
/// number of live sessions written.
async fn resync(reg: &Registry, table: &SessionTable) -> FredResult<usize> {
    let inner = &reg.inner;
    let keys = &inner.keys;
    let set = keys.node_sessions(&inner.node);
    // Clear queued writes before the snapshot: a session created after the snapshot queues a new
    // creation that the next flush sends.
    reg.queue().clear_writes();
    let live = table.all();
    let live_ids: HashSet<SessionId> = live.iter().map(|s| s.id()).collect();

    let members: Vec<String> = inner.client.smembers(&set).await?;
    let stale: Vec<String> = members
        .into_iter()
        .filter(|m| {
            m.parse::<SessionId>()
                .map_or(true, |id| !live_ids.contains(&id))
        })
        .collect();
    let mut purged = 0usize;
    for chunk in stale.chunks(PIPELINE_CHUNK) {
        let pipeline = inner.client.pipeline();
        for member in chunk {
            let _: () = pipeline
                .get(format!("{}session:{member}", inner.cfg.key_prefix))
                .await?;
        }
        let values: Vec<Value> = pipeline.all().await?;
        let mut ops = Vec::with_capacity(chunk.len() * 2);
        for (member, value) in chunk.iter().zip(values) {
            let owned = value
                .as_str()
                .and_then(|raw| SessionRecord::decode(&raw))
                .is_some_and(|r| r.node == inner.node);
            if owned {
                ops.push(Op::Del(format!("{}session:{member}", inner.cfg.key_prefix)));
                purged += 1;
            }
            ops.push(Op::Srem(set.clone(), member.clone()));
        }
        send(reg, ops).await?;
    }
    if purged > 0 {
        tracing::info!(node = %inner.node, purged, "removed sessions this node no longer holds from the registry");
    }
    let ttl = ttl_secs(inner.cfg.session_ttl);
    let mut ops = Vec::with_capacity(live.len() * 2 + 1);
    for session in &live {
        let id = session.id();
        ops.push(Op::Set(
            keys.session(&id),
            reg.record(session).encode(),
            Expiration::EX(ttl),
        ));
        ops.push(Op::Sadd(set.clone(), id.to_string()));
    }
    ops.push(heartbeat(reg));
    send(reg, ops).await?;
    Ok(live.len())
}

/// Rebuilds the directory of live peers from their heartbeats (one SCAN and one pipelined read:
/// a handful of keys in a cluster of a few nodes).
async fn refresh_peers(reg: &Registry) -> FredResult<()> {
    use futures_util::StreamExt;
    let inner = &reg.inner;
    let mut names = Vec::new();
    let mut scan = inner
        .client
        .scan_buffered(inner.keys.node_pattern(), Some(100), None);
    while let Some(key) = scan.next().await {
        if let Some(node) = key?.as_str().and_then(|k| inner.keys.node_of(k)) {
            if node != inner.node {
                names.push(node);
            }
        }
    }
    let mut peers = std::collections::HashMap::new();
    if !names.is_empty() {
        let pipeline = inner.client.pipeline();
        for node in &names {
            let _: () = pipeline.get(inner.keys.heartbeat(node)).await?;
        }
        let values: Vec<Value> = pipeline.all().await?;
        for (node, value) in names.into_iter().zip(values) {
            if let Some(beat) = value.as_str().and_then(|raw| super::NodeBeat::decode(&raw)) {
                peers.insert(
                    crate::session::OwnerTag::of(&node),
                    super::Peer {
                        node,
                        boot: beat.boot,
                        url: beat.url,
                    },
                );
            }
        }
    }
    reg.set_peers(peers);
    Ok(())
}

/// At shutdown: send what is queued (the drain's closes) and remove the heartbeat and the set.
async fn final_cleanup(reg: &Registry) {
    let inner = &reg.inner;
    if !inner.client.is_connected() {
        let n = reg.queue().len();
        if n > 0 {
            tracing::warn!(node = %inner.node, pending = n, "registry unreachable at shutdown; its keys expire by TTL or are purged at the next start");
        }
        return;
    }
    let batch = reg.queue().take();
    let keys = &inner.keys;
    let set = keys.node_sessions(&inner.node);
    let mut ops: Vec<Op> = batch
        .deletes
        .iter()
        .map(|id| Op::Del(keys.session(id)))
        .collect();
    ops.push(Op::Del(set));
    ops.push(Op::Del(keys.heartbeat(&inner.node)));
    let n = ops.len();
    match send(reg, ops).await {
        Ok(()) => {
            tracing::info!(node = %inner.node, removed = batch.deletes.len(), pipeline_ops = n, "registry cleaned up")
        }
        Err(e) => {
            tracing::warn!(node = %inner.node, error = %e, "registry cleanup failed; keys are purged at the next start")
        }
    }
}

fn heartbeat(reg: &Registry) -> Op {
    let inner = &reg.inner;
    // Three beats of slack: one late tick does not make a live node look dead.
    let ms = i64::try_from((inner.cfg.heartbeat_interval * 3).as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    Op::Set(
        inner.keys.heartbeat(&inner.node),
        reg.beat().encode(),
        Expiration::PX(ms),
    )
}

fn ttl_secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// One registry command.
enum Op {
    Set(String, String, Expiration),
    Del(String),
    Expire(String, i64),
    Sadd(String, String),
    Srem(String, String),
}

/// Sends `ops` as pipelines of at most [`PIPELINE_CHUNK`] commands.
async fn send(reg: &Registry, ops: Vec<Op>) -> FredResult<()> {
    for chunk in ops.chunks(PIPELINE_CHUNK) {
        let pipeline = reg.inner.client.pipeline();
        for op in chunk {
            // Commands on a pipeline only buffer; they answer when `all` runs.
            let _: () = match op {
                Op::Set(k, v, ttl) => {
                    pipeline
                        .set(k.as_str(), v.as_str(), Some(ttl.clone()), None, false)
                        .await?
                }
                Op::Del(k) => pipeline.del(k.as_str()).await?,
                Op::Expire(k, ttl) => pipeline.expire(k.as_str(), *ttl, None).await?,
                Op::Sadd(k, m) => pipeline.sadd(k.as_str(), m.as_str()).await?,
                Op::Srem(k, m) => pipeline.srem(k.as_str(), m.as_str()).await?,
            };
        }
        let _: Vec<Value> = pipeline.all().await?;
        reg.inner.flushes.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
