//! The one task that writes the registry.
//!
//! Loop: wait for queued operations, the heartbeat tick or a reconnect; if connected, resync when
//! needed, then send everything queued as one batch of commands (with the heartbeat), handed to
//! fred together so that they reach Redis in one write ([`send_together`]), no sooner than
//! [`FLUSH_SPACING`] after the previous batch, with set membership and DELETEs as multi-key
//! commands. A failed batch puts its deletions back and asks for a resync, and so does a
//! heartbeat that finds its key gone (peers may have adopted sessions meanwhile). On stop: one last
//! batch that removes this node's sessions (the drain closed them all), its heartbeat and its
//! set.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use fred::interfaces::{ClientLike, EventInterface, KeysInterface, SetsInterface};
use fred::types::{Expiration, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::queue::{Batch, Removal, Write};
use super::{scripts, NodeBeat, Registry, SessionRecord};
use crate::session::{SessionId, SessionTable};

/// Commands per batch sent together: large enough that thousands of sessions cost a few round
/// trips, small enough that one batch stays well inside the command timeout.
const PIPELINE_CHUNK: usize = 1000;

/// Keys per multi-key command (a batch's new set members and its deletions): one command
/// stays small next to Redis's limits and quick to run.
const KEYS_PER_COMMAND: usize = 500;

/// The least time between two flushes. The first operation after a quiet spell goes out at once;
/// under load, what queues meanwhile waits at most this long and goes out together, so the cost
/// of a round trip (wake-ups and syscalls on both ends) is paid per batch, not per session, and a
/// session that lives shorter than this never reaches Redis at all (the queue coalesces it
/// away). Small next to anything a misroute needs the registry for: a client's next request
/// after `initialize` arrives later than this over any real network.
const FLUSH_SPACING: std::time::Duration = std::time::Duration::from_millis(1);

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
    // When the last heartbeat that found its key was sent (for the log of one that did not).
    let mut last_beat = tokio::time::Instant::now();
    let mut last_flush: Option<tokio::time::Instant> = None;
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
                    last_beat = tokio::time::Instant::now();
                    // Peers at once, not a heartbeat later: a node that just (re)joined is sent
                    // misrouted requests right away.
                    if let Err(e) = refresh_peers(&reg).await {
                        tracing::debug!(node = %inner.node, error = %e, "peer directory refresh failed");
                    }
                    inner.synced.store(true, Ordering::Relaxed);
                    inner.joined.store(true, Ordering::Relaxed);
                    tracing::info!(node = %inner.node, sessions = n, "registry resynced");
                }
                Err(e) => {
                    inner.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(node = %inner.node, error = %e, "registry resync failed; will retry");
                    continue;
                }
            }
        }
        if let Some(at) = last_flush.map(|t| t + FLUSH_SPACING) {
            if at > tokio::time::Instant::now() {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep_until(at) => {}
                }
            }
        }
        let batch = reg.queue().take();
        if batch.is_empty() && !beat_due {
            continue;
        }
        let started = tokio::time::Instant::now();
        last_flush = Some(started);
        let deletes = batch.deletes.clone();
        let beat = beat_due;
        match flush(&reg, &table, &batch, beat_due).await {
            Ok(Beat::Lapsed) => {
                // The key expired (this process was stopped or cut off for longer than its TTL)
                // or Redis lost it: peers saw this node as dead and may have adopted its
                // sessions. The resync finds out and closes the copies no longer this node's.
                // Told by Redis, not by a clock: a stop that lands between sending a beat and
                // reading its answer is invisible to any timer in this process.
                beat_due = false;
                let silent_ms = u64::try_from(last_beat.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(node = %inner.node, silent_ms, "this node's heartbeat had lapsed; checking which sessions are still its own");
                needs_resync = true;
                inner.wake.notify_one();
            }
            Ok(found) => {
                beat_due = false;
                if beat {
                    if found == Beat::Found {
                        last_beat = started;
                    }
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
        // More may have queued while the batch was in flight.
        if !reg.queue().is_empty() {
            inner.wake.notify_one();
        }
    }
    final_cleanup(&reg).await;
    let _ = tokio::time::timeout(inner.cfg.command_timeout, inner.client.quit()).await;
    connection.abort();
}

/// Sends one batch (and the heartbeat) in chunks of at most [`PIPELINE_CHUNK`] commands.
/// Sessions whose rewrite found them owned by another node (adopted while this node was cut
/// off) are closed here: the adopter's copy is the session now.
async fn flush(
    reg: &Registry,
    table: &SessionTable,
    batch: &Batch,
    beat: bool,
) -> FredResult<Beat> {
    let inner = &reg.inner;
    let keys = &inner.keys;
    let set = keys.node_sessions(&inner.node);
    let ttl = ttl_secs(inner.cfg.session_ttl);
    let mut ops: Vec<Op> = Vec::with_capacity(batch.len() + 4);
    // Set membership and DELETEs go out as multi-key commands, a few per batch rather than one
    // or two per session: the command count sets Redis's cost. Each new record is its own plain
    // `SET`: there is no multi-key `SET` with a TTL, and one script for a batch's records does not
    // pay. Measured with callgrind (15 records a batch): Redis spends 25.8k instructions a record
    // in the script against 15.2k for a `SET`, while mcpd saves 14k a record in fred: about 2 %
    // fewer instructions for the two together, inside this machine's noise.
    let mut fresh: Vec<String> = Vec::new();
    for (id, session, write) in &batch.creates {
        let record = reg.record_json(session);
        match write {
            Write::New => {
                ops.push(Op::Set(keys.session(id), record, Expiration::EX(ttl)));
                fresh.push(id.to_string());
            }
            Write::Own => ops.push(put_own(reg, id, &record)),
        }
    }
    let mut fresh = fresh.into_iter().peekable();
    while fresh.peek().is_some() {
        let members = fresh.by_ref().take(KEYS_PER_COMMAND).collect();
        ops.push(Op::Sadd(set.clone(), members));
    }
    ops.extend(removals(reg, &batch.deletes));
    for id in &batch.touches {
        ops.push(Op::Expire(keys.session(id), ttl));
    }
    if beat && !inner.leaving.load(Ordering::Relaxed) {
        ops.push(heartbeat(reg));
    }
    let answers = send(reg, ops).await?;
    close_superseded(reg, table, &answers.sessions);
    Ok(match answers.beat {
        None => Beat::NotSent,
        Some(previous)
            if previous
                .as_str()
                .and_then(|raw| NodeBeat::decode(&raw))
                .is_some_and(|b| b.boot == inner.boot) =>
        {
            Beat::Found
        }
        Some(_) => Beat::Lapsed,
    })
}

/// What a flush's heartbeat found in Redis ([`scripts::BEAT`] answers the value it replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// The batch went without a heartbeat.
    NotSent,
    /// This boot's previous heartbeat was still there: peers never saw this node as dead.
    Found,
    /// The key was gone (or named another process): it lapsed since the previous beat.
    Lapsed,
}

/// Closes the local copies of sessions another node took over (a `PUT_OWN` that answered 0).
fn close_superseded(reg: &Registry, table: &SessionTable, answers: &[(SessionId, Value)]) {
    for (id, value) in answers {
        if value.as_i64() == Some(0) {
            tracing::warn!(node = %reg.inner.node, session_id = %id, "session was adopted by another node while this one held it; closing the local copy");
            table.close(id, crate::session::CloseReason::Superseded);
        }
    }
}

/// The commands that remove (or release) sessions' keys: the deletions a client asked for as two
/// multi-key commands per [`KEYS_PER_COMMAND`], the conditional ones a script each.
fn removals(reg: &Registry, deletes: &[(SessionId, Removal)]) -> Vec<Op> {
    let inner = &reg.inner;
    let set = inner.keys.node_sessions(&inner.node);
    let mut ops = Vec::new();
    let mut any: Vec<SessionId> = Vec::new();
    for (id, kind) in deletes {
        let key = || inner.keys.session(id);
        let member = || id.to_string();
        match kind {
            Removal::Any => any.push(*id),
            Removal::Own => ops.push(Op::Eval(
                None,
                scripts::args(scripts::DEL_OWN, &[&key(), &set], &[&inner.node, &member()]),
            )),
            Removal::Release => {
                let ms = u64::try_from(inner.cfg.orphan_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1)
                    .to_string();
                ops.push(Op::Eval(
                    None,
                    scripts::args(
                        scripts::RELEASE_OWN,
                        &[&key(), &set],
                        &[&inner.node, &ms, &member()],
                    ),
                ));
            }
        }
    }
    for chunk in any.chunks(KEYS_PER_COMMAND) {
        ops.push(Op::Srem(
            set.clone(),
            chunk.iter().map(ToString::to_string).collect(),
        ));
        ops.push(Op::Del(
            chunk.iter().map(|id| inner.keys.session(id)).collect(),
        ));
    }
    ops
}

/// Writes `record` for `id` unless another node owns the key; answers 0 then.
fn put_own(reg: &Registry, id: &SessionId, record: &str) -> Op {
    let inner = &reg.inner;
    let ttl = ttl_secs(inner.cfg.session_ttl).to_string();
    let member = id.to_string();
    Op::Eval(
        Some(*id),
        scripts::args(
            scripts::PUT_OWN,
            &[
                &inner.keys.session(id),
                &inner.keys.node_sessions(&inner.node),
            ],
            &[&inner.node, record, &ttl, &member],
        ),
    )
}

/// Makes Redis reflect this node: removes what it registered that is not live (closes that did
/// not reach Redis; a previous boot's leftovers are released for adoption or deleted, per
/// `adopt`), then writes every live session — unless another node adopted it meanwhile, in which
/// case the local copy is closed. Returns the number of live sessions written.
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
    let (mut purged, mut released) = (0usize, 0usize);
    for chunk in stale.chunks(PIPELINE_CHUNK) {
        let pipeline = inner.client.pipeline();
        for member in chunk {
            let _: () = pipeline
                .get(format!("{}session:{member}", inner.cfg.key_prefix))
                .await?;
        }
        let values: Vec<Value> = pipeline.all().await?;
        let mut removed = Vec::with_capacity(chunk.len());
        let mut foreign = Vec::new();
        for (member, value) in chunk.iter().zip(values) {
            let record = value.as_str().and_then(|raw| SessionRecord::decode(&raw));
            let id = member.parse::<SessionId>().ok();
            match (record, id) {
                (Some(r), Some(id)) if r.node == inner.node => {
                    // A previous boot's session is an orphan another node (or this one) may
                    // continue; one of this boot's was closed and its deletion lost.
                    if r.boot != inner.boot && inner.cfg.adopt {
                        removed.push((id, Removal::Release));
                        released += 1;
                    } else {
                        removed.push((id, Removal::Own));
                        purged += 1;
                    }
                }
                _ => foreign.push(member.clone()),
            }
        }
        let mut ops = removals(reg, &removed);
        if !foreign.is_empty() {
            ops.push(Op::Srem(set.clone(), foreign));
        }
        send(reg, ops).await?;
    }
    if purged + released > 0 {
        tracing::info!(node = %inner.node, purged, released, "removed sessions this node no longer holds from the registry (released ones stay adoptable until they expire)");
    }
    let mut ops = Vec::with_capacity(live.len() + 1);
    for session in &live {
        ops.push(put_own(reg, &session.id(), &reg.record_json(session)));
    }
    if !inner.leaving.load(Ordering::Relaxed) {
        ops.push(heartbeat(reg));
    }
    // The heartbeat's answer does not matter here: this resync is what a lapse asks for.
    let answers = send(reg, ops).await?;
    close_superseded(reg, table, &answers.sessions);
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
    let mut ops = removals(reg, &batch.deletes);
    ops.push(Op::Del(vec![set, keys.heartbeat(&inner.node)]));
    let n = ops.len();
    match send(reg, ops).await {
        Ok(_) => {
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
    let ms = u64::try_from((inner.cfg.heartbeat_interval * 3).as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
        .to_string();
    Op::Beat(scripts::args(
        scripts::BEAT,
        &[&inner.keys.heartbeat(&inner.node)],
        &[&reg.beat().encode(), &ms],
    ))
}

fn ttl_secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// One registry command.
enum Op {
    Set(String, String, Expiration),
    /// This node's heartbeat (`EVAL` arguments of [`scripts::BEAT`]): its answer, the value it
    /// replaced, tells whether the key lapsed since the previous beat.
    Beat(Vec<String>),
    Del(Vec<String>),
    Expire(String, i64),
    Sadd(String, Vec<String>),
    Srem(String, Vec<String>),
    /// A script (`EVAL` arguments); its answer is reported with the session id when given.
    Eval(Option<SessionId>, Vec<String>),
}

/// The answers [`send`] reports.
#[derive(Default)]
struct Answers {
    /// Each `Eval` that named a session, with its answer.
    sessions: Vec<(SessionId, Value)>,
    /// The heartbeat's previous value, when one was sent.
    beat: Option<Value>,
}

/// Sends `ops` in chunks of at most [`PIPELINE_CHUNK`] commands, each chunk handed to fred at
/// once ([`send_together`]). Returns the answers of the `Eval`s that named a session and of the
/// heartbeat.
async fn send(reg: &Registry, ops: Vec<Op>) -> FredResult<Answers> {
    let client = &reg.inner.client;
    let mut answers = Answers::default();
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        let mut commands: Vec<Pending<'_>> = Vec::new();
        let mut sessions = Vec::new();
        let mut beat = None;
        // Each op is moved into its command: keys, members and records are not copied again.
        for (n, op) in ops.by_ref().take(PIPELINE_CHUNK).enumerate() {
            commands.push(match op {
                Op::Set(k, v, ttl) => Box::pin(client.set(k, v, Some(ttl), None, false)),
                Op::Beat(args) => {
                    beat = Some(n);
                    Box::pin(client.custom(scripts::eval(), args))
                }
                Op::Del(k) => Box::pin(client.del(k)),
                Op::Expire(k, ttl) => Box::pin(client.expire(k, ttl, None)),
                Op::Sadd(k, m) => Box::pin(client.sadd(k, m)),
                Op::Srem(k, m) => Box::pin(client.srem(k, m)),
                Op::Eval(id, args) => {
                    if let Some(id) = id {
                        sessions.push((n, id));
                    }
                    Box::pin(client.custom(scripts::eval(), args))
                }
            });
        }
        let mut values = send_together(commands).await?;
        reg.inner.flushes.fetch_add(1, Ordering::Relaxed);
        for (pos, id) in sessions {
            if let Some(v) = values.get_mut(pos) {
                answers
                    .sessions
                    .push((id, std::mem::replace(v, Value::Null)));
            }
        }
        if let Some(v) = beat.and_then(|pos| values.get_mut(pos)) {
            answers.beat = Some(std::mem::replace(v, Value::Null));
        }
    }
    Ok(answers)
}

/// One command handed to fred, answering its reply.
type Pending<'a> = Pin<Box<dyn Future<Output = FredResult<Value>> + Send + 'a>>;

/// Hands `commands` to fred together and answers their replies in order, or the first error
/// once all have answered (Redis runs every command either way, as with a pipeline).
///
/// Why not a fred pipeline: fred's router flushes the socket after a command when no other
/// command waits behind it in its queue, and a pipeline reaches the router as one entry, so
/// each of its commands was written and flushed on its own. Every flush is a write to Redis,
/// which wakes it, and Redis shares the node's cores. Commands queued together are fed to the
/// socket and flushed once, after the last; none waits for the one before (fred's
/// auto-pipelining). They go out in the order given: each command reaches the router on its
/// first poll, and all are polled once, in order, before any reply is awaited.
async fn send_together(mut commands: Vec<Pending<'_>>) -> FredResult<Vec<Value>> {
    let mut early: Vec<Option<FredResult<Value>>> = Vec::with_capacity(commands.len());
    std::future::poll_fn(|cx| {
        early.extend(commands.iter_mut().map(|c| match c.as_mut().poll(cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }));
        Poll::Ready(())
    })
    .await;
    let mut values = Vec::with_capacity(commands.len());
    let mut first_error = None;
    for (command, early) in commands.into_iter().zip(early) {
        let answer = match early {
            Some(answer) => answer,
            None => command.await,
        };
        match answer {
            Ok(v) => values.push(v),
            Err(e) => {
                first_error.get_or_insert(e);
                values.push(Value::Null);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(values),
    }
}
