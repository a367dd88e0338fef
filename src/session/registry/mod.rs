//! The cluster's session registry in Redis (ADR-0066): which sessions exist and which node holds
//! them. Transport state never goes there; Redis only answers "why is this session not here?".
//!
//! The request path never waits on Redis. Creations, closes and TTL refreshes go into a bounded,
//! coalescing [`queue`] that one writer task ([`writer`]) sends as one batch of commands,
//! written to Redis together. Redis is read only on a local miss, with a short timeout, to
//! classify the miss ([`MissClass`]) and log it once. Redis being down never fails a client:
//! operations wait in the queue, and on every (re)connect the writer resyncs — it rewrites every
//! live session of this node and removes what this node registered that is no longer live — so
//! Redis converges to the truth. The first resync at start is also the purge of what a previous
//! process of this node (SIGKILL, crash) left behind.

mod inspect;
mod keys;
mod miss;
mod queue;
mod scripts;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::{Config as FredConfig, ReconnectPolicy};
use fred::types::Builder;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use inspect::{inspect, Inspection, NodeSummary, RegisteredSession};
pub use keys::{Keys, NodeBeat, SessionRecord, SessionRecordRef};
pub use miss::{ClaimError, Miss, MissClass, MissPolicy, Orphan, Route};

use super::{OwnerTag, Session, SessionId, SessionTable};
pub use queue::Removal;
use queue::{Queue, Write};

/// Refreshes kept while Redis is slow or away (older ones are dropped first).
const MAX_QUEUED_TOUCHES: usize = 100_000;
/// How long a starting node waits for its first resync before it reports healthy anyway: Redis
/// is not a dependency, but a node that cannot yet route misses should not be sent traffic while
/// Redis is merely a few milliseconds away.
const STARTUP_WAIT: Duration = Duration::from_secs(5);

/// Registry settings, from `[redis]` and the node id.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub url: String,
    pub node: String,
    /// How peers reach this node (`cluster.advertise_url`, resolved).
    pub advertise_url: String,
    pub key_prefix: String,
    pub session_ttl: Duration,
    pub touch_interval: Duration,
    pub heartbeat_interval: Duration,
    pub lookup_timeout: Duration,
    pub command_timeout: Duration,
    pub max_queued_deletes: usize,
    /// `cluster.adopt_orphans`: at shutdown (and when purging a previous boot's leftovers) this
    /// node's sessions are released for adoption instead of deleted.
    pub adopt: bool,
    /// How long a released session's record stays adoptable (`session.idle_timeout`: as long as
    /// the session itself would have lived without requests).
    pub orphan_ttl: Duration,
}

/// The registry could not be set up (a bad URL; connection problems are never errors).
#[derive(Debug, thiserror::Error)]
#[error("invalid redis.url")]
pub struct RegistryError(#[from] fred::error::Error);

/// The registry's state for `/healthz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistryStatus {
    /// `connected`, `connecting`, `disconnected` (fred's view of the connection).
    pub state: &'static str,
    /// True once the registry reflects this node's live sessions (the last resync succeeded).
    pub synced: bool,
    /// Operations waiting for Redis.
    pub queue: usize,
    /// Operations dropped to stay within the queue's bounds.
    pub dropped: u64,
    /// Batches of commands sent (a large batch counts once per chunk).
    pub flushes: u64,
    /// Failed batches and lookups.
    pub errors: u64,
}

/// A handle to the registry (cheap to clone).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    keys: Keys,
    node: String,
    boot: String,
    cfg: RegistryConfig,
    queue: Mutex<Queue>,
    wake: Notify,
    flushes: AtomicU64,
    errors: AtomicU64,
    synced: AtomicBool,
    logged: Mutex<HashMap<SessionId, (Instant, MissClass, &'static str)>>,
    /// Live peers by owner tag, refreshed with every heartbeat (this node excluded).
    peers: std::sync::RwLock<HashMap<OwnerTag, Peer>>,
    /// Adopted sessions' new holders, learnt from Redis (see [`miss`]).
    moved: Mutex<HashMap<SessionId, String>>,
    /// Peers that refused a connection: node → (its boot then, skip until).
    suspects: Mutex<HashMap<String, (String, Instant)>>,
    /// Set by [`leave`](Registry::leave): no more heartbeats.
    leaving: AtomicBool,
    /// Set by the first successful resync (the registry and the peer directory reflect the
    /// cluster); never cleared.
    joined: AtomicBool,
    started: Instant,
}

/// Another live node, as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub boot: String,
    pub url: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("node", &self.inner.node)
            .field("boot", &self.inner.boot)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Builds the client; nothing connects until [`start`](Self::start).
    pub fn new(cfg: RegistryConfig) -> Result<Registry, RegistryError> {
        let client = build_client(&cfg.url, cfg.command_timeout, true)?;
        Ok(Registry {
            inner: Arc::new(Inner {
                client,
                keys: Keys::new(&cfg.key_prefix),
                node: cfg.node.clone(),
                boot: uuid::Uuid::new_v4().to_string(),
                queue: Mutex::new(Queue::new(cfg.max_queued_deletes, MAX_QUEUED_TOUCHES)),
                cfg,
                wake: Notify::new(),
                flushes: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                synced: AtomicBool::new(false),
                logged: Mutex::new(HashMap::new()),
                peers: std::sync::RwLock::new(HashMap::new()),
                moved: Mutex::new(HashMap::new()),
                suspects: Mutex::new(HashMap::new()),
                leaving: AtomicBool::new(false),
                joined: AtomicBool::new(false),
                started: Instant::now(),
            }),
        })
    }

    /// Connects in the background (retrying forever) and starts the writer; the task ends after
    /// a final flush once `stop` is cancelled.
    pub fn start(&self, table: Arc<SessionTable>, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(writer::run(self.clone(), table, stop))
    }

    /// The live peer that minted `id`, from the directory the heartbeats keep (no Redis read).
    pub fn peer_for(&self, id: &SessionId) -> Option<Peer> {
        let peer = self
            .inner
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id.owner())
            .cloned()?;
        (!self.is_suspect(&peer)).then_some(peer)
    }

    /// The live peer named `node`.
    pub fn peer_named(&self, node: &str) -> Option<Peer> {
        let peer = self
            .inner
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|p| p.node == node)
            .cloned()?;
        (!self.is_suspect(&peer)).then_some(peer)
    }

    /// Every live peer in the directory that is not suspect.
    pub fn live_peers(&self) -> Vec<Peer> {
        let peers: Vec<Peer> = self
            .inner
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        peers.into_iter().filter(|p| !self.is_suspect(p)).collect()
    }

    /// True while `peer` refused a connection recently under the same boot.
    fn is_suspect(&self, peer: &Peer) -> bool {
        let mut suspects = self
            .inner
            .suspects
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match suspects.get(&peer.node) {
            None => false,
            Some((boot, until)) if *boot == peer.boot && Instant::now() < *until => true,
            Some(_) => {
                suspects.remove(&peer.node);
                false
            }
        }
    }

    fn set_peers(&self, peers: HashMap<OwnerTag, Peer>) {
        *self.inner.peers.write().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    /// This node's heartbeat value.
    fn beat(&self) -> NodeBeat {
        NodeBeat {
            boot: self.inner.boot.clone(),
            url: self.inner.cfg.advertise_url.clone(),
        }
    }

    /// This process's boot id.
    pub fn boot(&self) -> &str {
        &self.inner.boot
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record this node writes for `session`, encoded: borrowed from the session, so its
    /// parameters are not copied first.
    fn record_json(&self, session: &Session) -> String {
        let params = session.params();
        let subscriptions = session.subscriptions();
        SessionRecordRef {
            node: &self.inner.node,
            boot: &self.inner.boot,
            created_ms: session.created_unix_ms(),
            protocol: params.protocol.as_str(),
            client_info: &params.client_info,
            capabilities: &params.capabilities,
            log_level: session.log_level().as_str(),
            subscriptions: &subscriptions,
            bearer: params.bearer.as_ref(),
        }
        .encode()
    }

    /// A session's durable parameters changed (log level, subscriptions): its record is written
    /// again, through the same queue (a pending write of the same session is replaced), unless
    /// another node owns it by now.
    pub fn updated(&self, session: &Arc<Session>) {
        self.queue()
            .create(session.id(), Arc::clone(session), Write::Own);
        self.inner.wake.notify_one();
    }

    /// A session was created here.
    pub fn created(&self, session: &Arc<Session>) {
        self.queue()
            .create(session.id(), Arc::clone(session), Write::New);
        self.inner.wake.notify_one();
    }

    /// A session's key is to go: `Any` for a client's DELETE (whatever the local outcome,
    /// ADR-0066), `Own` for this node's closes, `Release` to leave it for adoption.
    pub fn closed(&self, id: SessionId, kind: Removal) {
        self.queue().delete(id, kind);
        self.inner.wake.notify_one();
    }

    /// How this node's shutdown removes its sessions' keys: released for adoption, or deleted.
    pub fn shutdown_removal(&self) -> Removal {
        if self.inner.cfg.adopt {
            Removal::Release
        } else {
            Removal::Own
        }
    }

    /// The node is going away (drain): its heartbeat is deleted now and never written again, so
    /// peers see its sessions as orphans and adopt them the moment they are asked for one — while
    /// this node still serves them until it closes them. Bounded by the command timeout; without
    /// Redis, the heartbeat expires on its own.
    pub async fn leave(&self) {
        let inner = &self.inner;
        inner.leaving.store(true, Ordering::Relaxed);
        if !inner.client.is_connected() {
            return;
        }
        let key = inner.keys.heartbeat(&inner.node);
        match tokio::time::timeout(inner.cfg.command_timeout, inner.client.del::<i64, _>(key)).await
        {
            Ok(Ok(_)) => {
                tracing::info!(node = %inner.node, "left the cluster: heartbeat removed, sessions adoptable")
            }
            Ok(Err(e)) => {
                tracing::warn!(node = %inner.node, error = %e, "could not remove the heartbeat; it expires on its own")
            }
            Err(_) => {
                tracing::warn!(node = %inner.node, "removing the heartbeat timed out; it expires on its own")
            }
        }
    }

    /// A request used `session`: refreshes its TTL at most once per `touch_interval`.
    pub fn touched(&self, session: &Session) {
        if session.registry_touch_due(self.inner.cfg.touch_interval) {
            self.queue().touch(session.id());
            self.inner.wake.notify_one();
        }
    }

    /// True while the node has not yet joined the cluster (first resync and peer directory),
    /// for at most a few seconds after start: `/healthz` says `starting` (503) meanwhile.
    pub fn starting(&self) -> bool {
        !self.inner.joined.load(Ordering::Relaxed) && self.inner.started.elapsed() < STARTUP_WAIT
    }

    /// State for `/healthz`.
    pub fn status(&self) -> RegistryStatus {
        use fred::types::ClientState;
        let (queue, dropped) = {
            let q = self.queue();
            (q.len(), q.dropped())
        };
        RegistryStatus {
            state: match self.inner.client.state() {
                ClientState::Connected => "connected",
                ClientState::Connecting => "connecting",
                ClientState::Disconnected | ClientState::Disconnecting => "disconnected",
            },
            synced: self.inner.synced.load(Ordering::Relaxed),
            queue,
            dropped,
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
        }
    }
}

/// A fred client that reconnects forever (a spent policy leaves a client dead for good), never
/// re-sends a command on its own (a timed-out write must not land later behind our back), and
/// bounds every command.
pub(crate) fn build_client(
    url: &str,
    command_timeout: Duration,
    background: bool,
) -> Result<Client, fred::error::Error> {
    let mut config = FredConfig::from_url(url)?;
    // With fail_fast the first connection attempt gives up when Redis is down; the daemon must
    // keep trying instead. The CLI wants the quick answer.
    config.fail_fast = !background;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = command_timeout;
            c.internal_command_timeout = command_timeout;
            c.max_command_attempts = 1;
            c.unresponsive.max_timeout = Some(command_timeout);
            c.unresponsive.interval = command_timeout / 2;
        })
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build()?;
    Ok(client)
}
