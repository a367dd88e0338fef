//! This node's sessions: lookup, the `max_sessions` cap, and reaping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::registry::{Registry, Removal};
use super::{Entered, Session, SessionId};

/// How long a shutdown waits for stopped requests to be answered, and then for their streams to
/// be read, before it closes the sessions.
pub const SETTLE: Duration = Duration::from_millis(250);

/// Why a session ended (logged, and counted once metrics exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DELETE.
    Delete,
    /// No requests and no open stream for `idle_timeout`.
    Idle,
    /// No `notifications/initialized` within `init_timeout`.
    InitTimeout,
    /// The server is shutting down.
    Shutdown,
    /// Another node adopted it while this one was cut off from the cluster: its copy wins.
    Superseded,
}

impl CloseReason {
    /// The label used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Delete => "delete",
            CloseReason::Idle => "idle",
            CloseReason::InitTimeout => "init-timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Superseded => "superseded",
        }
    }
}

/// The table is at `max_sessions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session limit of {0} reached")]
pub struct TableFull(pub usize);

/// The sessions this process holds, and (when configured) their record in the cluster registry.
#[derive(Debug)]
pub struct SessionTable {
    map: RwLock<super::FastMap<SessionId, Arc<Session>>>,
    pub(super) max: usize,
    registry: Option<Registry>,
    /// Adoptions under way here, one lock per id: concurrent requests for the same orphan wait
    /// for the first to finish instead of claiming it twice (see [`super::adopt`]).
    pub(super) adopting: Mutex<HashMap<SessionId, Arc<tokio::sync::Mutex<()>>>>,
}

impl SessionTable {
    /// An empty table holding at most `max` sessions, recording them in `registry` if given.
    pub fn new(max: usize, registry: Option<Registry>) -> SessionTable {
        SessionTable {
            map: RwLock::new(super::FastMap::default()),
            max,
            registry,
            adopting: Mutex::new(HashMap::new()),
        }
    }

    /// The registry, when one is configured.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// Records a request on `session` (idle clock, and the registry TTL at most once per
    /// `touch_interval`).
    pub fn touch(&self, session: &Session) {
        session.touch();
        if let Some(r) = &self.registry {
            r.touched(session);
        }
    }

    /// `session`'s durable parameters changed: the registry record is rewritten.
    pub fn updated(&self, session: &Arc<Session>) {
        if let Some(r) = &self.registry {
            r.updated(session);
        }
    }

    /// A DELETE for `raw_id`, which this node does not hold: its registry key goes anyway
    /// (ADR-0066: the session may belong to another node or a previous process).
    pub fn forget(&self, raw_id: &str) {
        if let (Some(r), Ok(id)) = (&self.registry, raw_id.parse::<SessionId>()) {
            r.closed(id, Removal::Any);
        }
    }

    /// Adds a session unless the table is full.
    pub fn insert(&self, session: Arc<Session>) -> Result<(), TableFull> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max {
            return Err(TableFull(self.max));
        }
        if let Some(r) = &self.registry {
            r.created(&session);
        }
        map.insert(session.id(), session);
        Ok(())
    }

    /// Adds an adopted session whose registry record the claim already wrote. The cap was
    /// checked before the claim (concurrent adoptions may pass it by a few: refusing a claimed
    /// session would strand it).
    pub(super) fn insert_claimed(&self, session: Arc<Session>) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.id(), session);
    }

    /// The session with this id.
    pub fn get(&self, id: &SessionId) -> Option<Arc<Session>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The session with this id, with the request counted in until the guard drops. Counted
    /// under the table's lock: a shutdown that removed the session afterwards sees the request.
    pub fn enter(&self, id: &SessionId) -> Option<Entered> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(Session::enter)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live session (a snapshot).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Removes and closes a session. Returns it if it was here.
    pub fn close(&self, id: &SessionId, reason: CloseReason) -> Option<Arc<Session>> {
        let session = self
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)?;
        self.close_removed(&session, reason);
        Some(session)
    }

    /// Closes a session already taken out of the map.
    fn close_removed(&self, session: &Arc<Session>, reason: CloseReason) {
        let id = &session.id();
        session.close();
        if let Some(r) = &self.registry {
            r.closed(
                *id,
                match reason {
                    // The client ended it: the key goes whoever holds it (ADR-0066).
                    CloseReason::Delete => Removal::Any,
                    // Left for another node to continue, when adoption is on.
                    CloseReason::Shutdown => r.shutdown_removal(),
                    _ => Removal::Own,
                },
            );
        }
        crate::telemetry::metrics()
            .sessions_closed
            .get_or_create(&crate::telemetry::metrics::ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
        tracing::info!(
            session_id = %id,
            reason = reason.as_str(),
            age_ms = u64::try_from(session.created().elapsed().as_millis()).unwrap_or(u64::MAX),
            "session closed"
        );
    }

    /// Closes sessions idle for `idle` (nothing running, no stream open) or not initialized
    /// within `init`. Returns how many were closed.
    pub fn reap(&self, now: Instant, idle: Duration, init: Duration) -> usize {
        let expired: Vec<(SessionId, CloseReason)> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|s| {
                if !s.is_initialized() && now.saturating_duration_since(s.created()) >= init {
                    Some((s.id(), CloseReason::InitTimeout))
                } else if s.busy() == 0 && s.entered() == 0 && s.idle_for(now) >= idle {
                    Some((s.id(), CloseReason::Idle))
                } else {
                    None
                }
            })
            .collect();
        expired
            .into_iter()
            .filter(|(id, reason)| self.close(id, *reason).is_some())
            .count()
    }

    /// Reaps every `period` until `stop` is cancelled.
    pub async fn run_reaper(
        self: Arc<Self>,
        idle: Duration,
        init: Duration,
        stop: CancellationToken,
    ) {
        let period =
            (idle.min(init) / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let n = self.reap(Instant::now(), idle, init);
                    if n > 0 {
                        tracing::debug!(closed = n, live = self.len(), "reaped sessions");
                    }
                }
                () = stop.cancelled() => return,
            }
        }
    }

    /// Closes every session (shutdown) and waits for their tasks to finish.
    ///
    /// The sessions leave the table first, so a request that arrives from then on misses (and a
    /// draining node hands it to a peer). The requests already inside a session ([`Entered`]) and
    /// the calls they run get up to `finish_within` to be answered as usual; those still running
    /// then are stopped ([`Session::stop_requests`]) and answered with a whole error on their own
    /// reply, with up to [`SETTLE`] for that and again for the streams that carry the answers
    /// to be read. Only then is each session closed, so no answer is cut short by the close.
    pub async fn close_all(&self, reason: CloseReason, finish_within: Duration) -> Drained {
        let sessions: Vec<Arc<Session>> = self
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        let running = |sessions: &[Arc<Session>]| -> usize {
            sessions.iter().map(|s| s.running().max(s.entered())).sum()
        };
        let mut drained = Drained {
            running: running(&sessions),
            ..Drained::default()
        };
        let answered = |s: &Session| s.entered() == 0 && s.running() == 0;
        settle(&sessions, finish_within, answered).await;
        drained.stopped = running(&sessions);
        if drained.stopped > 0 {
            for s in &sessions {
                s.stop_requests();
            }
            settle(&sessions, SETTLE, answered).await;
        }
        // The answers are in their replies; the streams that carry some are read to their end.
        settle(&sessions, SETTLE, |s| s.busy() == 0).await;
        drained.unanswered = running(&sessions);
        for s in &sessions {
            self.close_removed(s, reason);
        }
        for s in sessions {
            s.tasks().wait().await;
        }
        drained
    }
}

/// Waits until `quiet` holds for every session, or `within` has passed.
async fn settle(sessions: &[Arc<Session>], within: Duration, quiet: impl Fn(&Session) -> bool) {
    let deadline = Instant::now() + within;
    while !sessions.iter().all(|s| quiet(s)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What [`SessionTable::close_all`] found and did: requests running when it began, how many of
/// them were still running after the grace and were stopped (each answered with an error), and
/// how many had no answer even then (closed unanswered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub running: usize,
    pub stopped: usize,
    pub unanswered: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    fn session() -> Arc<Session> {
        Session::for_tests()
    }

    #[test]
    fn closing_a_session_cancels_its_running_requests_and_any_registered_later() {
        use crate::session::RequestId;
        let s = session();
        let running = s.start_request(RequestId::Num(1), 8).unwrap();
        let other = s.start_request(RequestId::Num(2), 8).unwrap();
        assert!(s.cancel_request(&RequestId::Num(2)));
        assert!(other.is_cancelled() && !running.is_cancelled());
        s.close();
        assert!(running.is_cancelled());
        let late = s.start_request(RequestId::Num(3), 8).unwrap();
        assert!(late.is_cancelled());
    }

    #[test]
    fn the_table_refuses_sessions_past_its_cap() {
        let t = SessionTable::new(2, None);
        t.insert(session()).unwrap();
        t.insert(session()).unwrap();
        assert_eq!(t.insert(session()), Err(TableFull(2)));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn abandoned_server_requests_are_pruned_and_closing_fails_the_rest() {
        let s = session();
        let mut kept = Vec::new();
        for i in 0..40 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.register_pending(tx);
            if i % 10 == 0 {
                kept.push(rx); // still waiting
            }
        }
        assert!(
            s.pending_requests() < 20,
            "abandoned waiters pruned: {}",
            s.pending_requests()
        );
        s.close();
        assert_eq!(s.pending_requests(), 0);
        for mut rx in kept {
            assert_eq!(
                rx.try_recv().unwrap(),
                Err(crate::catalog::RequestError::Closed)
            );
        }
    }

    #[test]
    fn reaping_closes_uninitialized_and_idle_sessions_but_not_busy_ones() {
        let t = SessionTable::new(10, None);
        let fresh = session();
        let idle = session();
        let busy = session();
        idle.mark_initialized();
        busy.mark_initialized();
        let _hold = busy.hold();
        for s in [&fresh, &idle, &busy] {
            t.insert(Arc::clone(s)).unwrap();
        }
        let later = Instant::now() + Duration::from_secs(120);
        assert_eq!(
            t.reap(later, Duration::from_secs(60), Duration::from_secs(60)),
            2
        );
        assert!(fresh.is_closed() && idle.is_closed());
        assert!(!busy.is_closed());
        assert_eq!(t.len(), 1);
    }
}
