//! One session's in-process state.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::stream::{EventLog, StreamId};
use super::{RequestId, SessionId, SessionParams};
use crate::catalog::{LogLevel, RequestError};

/// Completed POST streams kept for `Last-Event-ID` resumption; older ones are dropped first.
const RETAINED_FINISHED_STREAMS: usize = 8;

/// Pending server→client requests are swept of abandoned waiters once this many accumulate.
const PRUNE_PENDING_AT: usize = 16;

/// How a server→client request was answered.
pub type ClientReply = Result<Value, RequestError>;

/// A server→client request waiting for the client's POSTed response.
pub type PendingRequest = oneshot::Sender<ClientReply>;

/// A live session.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    /// `id` as text, made once: every tool call hands it to the tool.
    id_text: Arc<str>,
    params: SessionParams,
    created: Instant,
    created_unix_ms: u64,
    /// Milliseconds since `created` of the last registry TTL refresh (rate limit).
    registry_touch_ms: AtomicU64,
    /// Milliseconds since `created` of the last request (for idle reaping).
    last_seen_ms: AtomicU64,
    /// Requests running plus connections reading streams: a busy session is never idle.
    busy: AtomicUsize,
    /// Requests between their lookup and their reply ([`Entered`]): a shutdown lets them finish
    /// before it closes the session.
    entered: AtomicUsize,
    initialized: AtomicBool,
    cancel: CancellationToken,
    tasks: TaskTracker,
    standalone: Arc<EventLog>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    log_level: LogLevel,
    subscriptions: BTreeSet<String>,
    streams: HashMap<StreamId, Arc<EventLog>>,
    next_stream: StreamId,
    in_flight: super::FastMap<RequestId, CancellationToken>,
    pending: HashMap<i64, PendingRequest>,
    next_request: i64,
    /// Set by [`Session::stop_requests`]: the node is shutting down, and requests cancelled from
    /// then on are answered as stopped by the shutdown, not as cancelled by the client.
    stopping: bool,
}

/// Why a request could not be registered as in flight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InFlightError {
    #[error("request id {0} is already in use by a running request")]
    Duplicate(RequestId),
    #[error("too many requests running in this session (limit {0})")]
    TooMany(usize),
}

impl Session {
    /// A new session; `replay_events` bounds each stream's replay ring.
    pub fn new(id: SessionId, params: SessionParams, replay_events: usize) -> Session {
        Session::with_streams_from(id, params, replay_events, 0)
    }

    /// A fresh session with made-up parameters, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Arc<Session> {
        Arc::new(Session::new(
            SessionId::random(),
            SessionParams {
                protocol: super::ProtocolVersion::LATEST,
                client_info: serde_json::json!({"name": "t", "version": "1"}),
                client_name: "t".into(),
                capabilities: serde_json::json!({}),
                bearer: None,
            },
            8,
        ))
    }

    /// A session continued here after its owner went away (adoption): initialized already, with
    /// the log level and subscriptions its record kept. Its streams are numbered from a random
    /// base, so an event id from the previous incarnation (a GET with `Last-Event-ID`) names no
    /// stream of this one and gets a fresh stream instead of a wrong replay.
    /// `created_unix_ms` is the original creation time (what the registry keeps reporting).
    pub fn continued(
        id: SessionId,
        params: SessionParams,
        replay_events: usize,
        created_unix_ms: u64,
        log_level: LogLevel,
        subscriptions: impl IntoIterator<Item = String>,
    ) -> Session {
        let base = fastrand::u32(1 << 20..1 << 30);
        let mut session = Session::with_streams_from(id, params, replay_events, base);
        session.created_unix_ms = created_unix_ms;
        {
            let mut st = session.lock();
            st.log_level = log_level;
            st.subscriptions = subscriptions.into_iter().collect();
        }
        session.mark_initialized();
        session
    }

    fn with_streams_from(
        id: SessionId,
        params: SessionParams,
        replay_events: usize,
        base: StreamId,
    ) -> Session {
        Session {
            id,
            id_text: Arc::from(id.text().as_str()),
            params,
            created: Instant::now(),
            created_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            registry_touch_ms: AtomicU64::new(0),
            last_seen_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            entered: AtomicUsize::new(0),
            initialized: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            standalone: EventLog::new(base, replay_events),
            state: Mutex::new(State {
                log_level: LogLevel::Info,
                subscriptions: BTreeSet::new(),
                streams: HashMap::new(),
                next_stream: base + 1,
                in_flight: super::FastMap::default(),
                pending: HashMap::new(),
                next_request: 0,
                stopping: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The id as text (what `Mcp-Session-Id` carries), shared rather than formatted again.
    pub fn id_text(&self) -> &Arc<str> {
        &self.id_text
    }

    /// What `initialize` settled.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// When the session was created.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Creation time as milliseconds since the Unix epoch (what the registry records).
    pub fn created_unix_ms(&self) -> u64 {
        self.created_unix_ms
    }

    /// True (once per `interval`) when the registry's TTL for this session should be refreshed.
    pub fn registry_touch_due(&self, interval: std::time::Duration) -> bool {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.registry_touch_ms.load(Ordering::Relaxed);
        let every = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(last) >= every
            && self
                .registry_touch_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Records activity (every request does this).
    pub fn touch(&self) {
        let ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_seen_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last request.
    pub fn idle_for(&self, now: Instant) -> std::time::Duration {
        let seen = self.created
            + std::time::Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(seen)
    }

    /// Requests running plus open stream connections.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Requests inside the session now (see [`Entered`]).
    pub fn entered(&self) -> usize {
        self.entered.load(Ordering::Acquire)
    }

    /// Counts a request in until the returned guard drops (see [`Entered`]).
    pub fn enter(self: &Arc<Self>) -> Entered {
        self.entered.fetch_add(1, Ordering::Relaxed);
        Entered(Arc::clone(self))
    }

    /// Marks the start of something that keeps the session from being idle; the returned guard
    /// ends it.
    pub fn hold(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard(Arc::clone(self))
    }

    /// `notifications/initialized` arrived.
    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Relaxed);
    }

    /// True once `notifications/initialized` arrived.
    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Relaxed)
    }

    /// Cancelled when the session closes; every request token is a child of it.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// True once the session was closed.
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The tasks running this session's requests (closed and awaited by the table).
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// The standalone (GET) stream.
    pub fn standalone(&self) -> &Arc<EventLog> {
        &self.standalone
    }

    /// The level `logging/setLevel` chose (default `info`).
    pub fn log_level(&self) -> LogLevel {
        self.lock().log_level
    }

    /// Sets the minimum level of `notifications/message`.
    pub fn set_log_level(&self, level: LogLevel) {
        self.lock().log_level = level;
    }

    /// Subscribes to `notifications/resources/updated` for `uri`.
    pub fn subscribe(&self, uri: &str) {
        self.lock().subscriptions.insert(uri.to_owned());
    }

    /// Ends a subscription (unknown ones are ignored).
    pub fn unsubscribe(&self, uri: &str) {
        self.lock().subscriptions.remove(uri);
    }

    /// The resource URIs subscribed to, sorted.
    pub fn subscriptions(&self) -> Vec<String> {
        self.lock().subscriptions.iter().cloned().collect()
    }

    /// True when subscribed to `uri`.
    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.lock().subscriptions.contains(uri)
    }

    /// Opens a new POST stream. Finished streams beyond the retention limit are dropped.
    pub fn open_stream(&self, replay_events: usize) -> Arc<EventLog> {
        let mut st = self.lock();
        let id = st.next_stream;
        // Never the standalone stream's number, even after wrapping.
        st.next_stream = st.next_stream.wrapping_add(1);
        if st.next_stream == self.standalone.id() {
            st.next_stream = st.next_stream.wrapping_add(1);
        }
        let mut finished: Vec<StreamId> = st
            .streams
            .iter()
            .filter(|(_, log)| log.is_finished())
            .map(|(id, _)| *id)
            .collect();
        if finished.len() >= RETAINED_FINISHED_STREAMS {
            finished.sort_unstable();
            for old in &finished[..=finished.len() - RETAINED_FINISHED_STREAMS] {
                st.streams.remove(old);
            }
        }
        let log = EventLog::new(id, replay_events);
        st.streams.insert(id, Arc::clone(&log));
        log
    }

    /// The stream numbered `id` (the standalone stream's is 0, or an adopted session's random
    /// base), if still known.
    pub fn stream(&self, id: StreamId) -> Option<Arc<EventLog>> {
        if id == self.standalone.id() {
            return Some(Arc::clone(&self.standalone));
        }
        self.lock().streams.get(&id).cloned()
    }

    /// Registers a running request so `notifications/cancelled` can reach it. The token is a
    /// child of the session's.
    pub fn start_request(
        &self,
        id: RequestId,
        limit: usize,
    ) -> Result<CancellationToken, InFlightError> {
        let mut st = self.lock();
        if st.in_flight.contains_key(&id) {
            return Err(InFlightError::Duplicate(id));
        }
        if st.in_flight.len() >= limit {
            return Err(InFlightError::TooMany(limit));
        }
        let token = self.cancel.child_token();
        if st.stopping {
            token.cancel();
        }
        st.in_flight.insert(id, token.clone());
        Ok(token)
    }

    /// Requests registered as running ([`Session::start_request`]) and not yet ended.
    pub fn running(&self) -> usize {
        self.lock().in_flight.len()
    }

    /// Cancels every running request (and any registered later) because the node shuts down:
    /// each is still answered, whole, on its own reply ([`Session::is_stopping`] tells the
    /// answer apart from a client's cancellation), before the session is closed.
    pub fn stop_requests(&self) {
        let mut st = self.lock();
        st.stopping = true;
        for token in st.in_flight.values() {
            token.cancel();
        }
    }

    /// Whether [`Session::stop_requests`] was called.
    pub fn is_stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Server→client requests still awaiting an answer.
    pub fn pending_requests(&self) -> usize {
        self.lock().pending.len()
    }

    /// Forgets a finished request.
    pub fn end_request(&self, id: &RequestId) {
        self.lock().in_flight.remove(id);
    }

    /// Cancels a running request (`notifications/cancelled`); unknown ids are ignored, as the
    /// spec allows. Returns whether a request was cancelled.
    pub fn cancel_request(&self, id: &RequestId) -> bool {
        match self.lock().in_flight.get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Registers a server→client request and returns its id.
    pub fn register_pending(&self, reply: PendingRequest) -> i64 {
        let mut st = self.lock();
        if st.pending.len() >= PRUNE_PENDING_AT {
            // Waiters that timed out or were cancelled left their entry behind; the client
            // never answered them and nobody listens any more.
            st.pending.retain(|_, tx| !tx.is_closed());
        }
        let id = st.next_request;
        st.next_request += 1;
        st.pending.insert(id, reply);
        id
    }

    /// Delivers the client's answer to a server→client request. Returns false for ids nobody
    /// waits for (already answered, cancelled, or never sent).
    pub fn answer_pending(&self, id: i64, reply: ClientReply) -> bool {
        let waiter = self.lock().pending.remove(&id);
        match waiter {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// Closes the session: cancels its requests, ends its streams and fails its pending
    /// server→client requests. Idempotent.
    pub fn close(&self) {
        self.cancel.cancel();
        self.tasks.close();
        let (streams, pending) = {
            let mut st = self.lock();
            (
                std::mem::take(&mut st.streams),
                std::mem::take(&mut st.pending),
            )
        };
        self.standalone.finish();
        for log in streams.values() {
            log.finish();
        }
        for (_, tx) in pending {
            let _ = tx.send(Err(RequestError::Closed));
        }
    }
}

/// A request inside a session, from its lookup to its reply. A shutdown closes a session only
/// once no request is inside it (or a short bound passed), so a request that found the session
/// gets its answer rather than a 404 for a session that lives on elsewhere.
#[derive(Debug)]
pub struct Entered(Arc<Session>);

impl std::ops::Deref for Entered {
    type Target = Arc<Session>;
    fn deref(&self) -> &Arc<Session> {
        &self.0
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.entered.fetch_sub(1, Ordering::Release);
    }
}

/// Keeps a session busy while alive (see [`Session::hold`]).
#[derive(Debug)]
pub struct BusyGuard(Arc<Session>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}
