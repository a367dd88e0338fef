//! The cluster's session registry in Redis (ADR-0066): which sessions exist and which node holds
//! them. Transport state never goes there; Redis only answers "why is this session not here?".
//!
//! The request path never waits on Redis. Creations, closes and TTL refreshes go into a bounded,
//! coalescing [`queue`] that one writer task ([`writer`]) flushes as a single fred pipeline per
//! batch. Redis is read only on a local miss, with a short timeout, to classify the miss
//! ([`MissClass`]) and log it once. Redis being down never fails a client: operations wait in the
//! queue, and on every (re)connect the writer resyncs — it rewrites every live session of this
//! node and removes what this node registered that is no longer live — so Redis converges to the
//! truth. The first resync at start is also the purge of what a previous process of this node
//! (SIGKILL, crash) left behind.

mod inspect;
mod keys;
mod queue;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::{Config as FredConfig, Options, ReconnectPolicy};
use fred::types::Builder;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use inspect::{inspect, Inspection, NodeSummary, RegisteredSession};
pub use keys::{Keys, NodeBeat, SessionRecord};

use super::{OwnerTag, Session, SessionId, SessionTable};
use queue::Queue;

/// A miss is logged at WARN once per session id (and class and action: a change is news) within
/// this window; repeats go to DEBUG, so a
/// client hammering a dead id cannot flood the journal.
const LOG_ONCE_WINDOW: Duration = Duration::from_secs(60);
/// How many recently logged ids are remembered for that.
const LOG_ONCE_CAPACITY: usize = 4096;
/// Refreshes kept while Redis is slow or away (older ones are dropped first).
const MAX_QUEUED_TOUCHES: usize = 100_000;

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
}

/// The registry could not be set up (a bad URL; connection problems are never errors).
#[derive(Debug, thiserror::Error)]
#[error("invalid redis.url")]
pub struct RegistryError(#[from] fred::error::Error);

/// Why a request named a session this node does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissClass {
    /// Another live node holds it: the client reached the wrong node.
    Misroute,
    /// Its owner is gone: the node's heartbeat expired, it restarted, or it was a previous boot
    /// of this node.
    Stale,
    /// No such session is registered (never existed, expired, or already closed).
    Unknown,
    /// Redis did not answer in time (or the registry is off).
    Unclassified,
}

impl MissClass {
    /// The label in logs (`class=`).
    pub fn as_str(self) -> &'static str {
        match self {
            MissClass::Misroute => "misroute",
            MissClass::Stale => "stale",
            MissClass::Unknown => "unknown",
            MissClass::Unclassified => "unclassified",
        }
    }
}

/// A classified miss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub class: MissClass,
    /// The node the registry names as owner, when it names one.
    pub owner: Option<String>,
}

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
    /// Pipelines sent.
    pub flushes: u64,
    /// Failed pipelines and lookups.
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
    logged: Mutex<HashMap<SessionId, (Instant, MissClass, bool)>>,
    /// Live peers by owner tag, refreshed with every heartbeat (this node excluded).
    peers: std::sync::RwLock<HashMap<OwnerTag, Peer>>,
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
        self.inner
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id.owner())
            .cloned()
    }

    /// The live peer named `node`.
    pub fn peer_named(&self, node: &str) -> Option<Peer> {
        self.inner
            .peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|p| p.node == node)
            .cloned()
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

    /// The record this node writes for `session`.
    fn record(&self, session: &Session) -> SessionRecord {
        SessionRecord {
            node: self.inner.node.clone(),
            boot: self.inner.boot.clone(),
            created_ms: session.created_unix_ms(),
            protocol: session.params().protocol.as_str().to_owned(),
            client_info: session.params().client_info.clone(),
            capabilities: session.params().capabilities.clone(),
            log_level: session.log_level().as_str().to_owned(),
            subscriptions: session.subscriptions(),
        }
    }

    /// A session's durable parameters changed (log level, subscriptions): its record is written
    /// again, through the same queue (a pending write of the same session is replaced).
    pub fn updated(&self, session: &Session) {
        self.created(session);
    }

    /// A session was created here.
    pub fn created(&self, session: &Session) {
        let record = self.record(session);
        self.queue().create(session.id(), record);
        self.inner.wake.notify_one();
    }

    /// A session ended, here or (DELETE of an id this node does not hold) anywhere: its key goes,
    /// whatever the local outcome (ADR-0066).
    pub fn closed(&self, id: SessionId) {
        self.queue().delete(id);
        self.inner.wake.notify_one();
    }

    /// A request used `session`: refreshes its TTL at most once per `touch_interval`.
    pub fn touched(&self, session: &Session) {
        if session.registry_touch_due(self.inner.cfg.touch_interval) {
            self.queue().touch(session.id());
            self.inner.wake.notify_one();
        }
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

    /// Classifies a request for a session this node does not hold and, with `forward`, finds the
    /// live peer to serve it through. The owner tag in the id usually names that peer without a
    /// Redis read; otherwise one short-timeout read (two for a misroute) decides. Logged once per
    /// id at WARN with `session_id`, `node`, `owner_node`, `class` and `action` (`forwarded` or
    /// `404`).
    pub async fn route(&self, raw_id: &str, forward: bool) -> (Miss, Option<Peer>) {
        let Ok(id) = raw_id.parse::<SessionId>() else {
            // Not an id any node of ours mints: nothing to look up.
            let miss = Miss {
                class: MissClass::Unknown,
                owner: None,
            };
            self.log_miss(raw_id, &miss, "404");
            return (miss, None);
        };
        if forward {
            if let Some(peer) = self.peer_for(&id) {
                let miss = Miss {
                    class: MissClass::Misroute,
                    owner: Some(peer.node.clone()),
                };
                self.log_miss(raw_id, &miss, "forwarded");
                return (miss, Some(peer));
            }
        }
        let miss = self.lookup(&id).await;
        let target = match (&miss.class, &miss.owner) {
            (MissClass::Misroute, Some(owner)) if forward => self.peer_named(owner),
            _ => None,
        };
        self.log_miss(
            raw_id,
            &miss,
            if target.is_some() { "forwarded" } else { "404" },
        );
        (miss, target)
    }

    async fn lookup(&self, id: &SessionId) -> Miss {
        let unclassified = |owner| Miss {
            class: MissClass::Unclassified,
            owner,
        };
        if !self.inner.client.is_connected() {
            return unclassified(None);
        }
        let opts = Options {
            timeout: Some(self.inner.cfg.lookup_timeout),
            fail_fast: true,
            max_attempts: Some(1),
            ..Default::default()
        };
        let client = self.inner.client.with_options(&opts);
        let record = match client
            .get::<Option<String>, _>(self.inner.keys.session(id))
            .await
        {
            Ok(v) => v.as_deref().and_then(SessionRecord::decode),
            Err(e) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "registry lookup failed");
                return unclassified(None);
            }
        };
        let Some(record) = record else {
            return Miss {
                class: MissClass::Unknown,
                owner: None,
            };
        };
        if record.node == self.inner.node {
            // Our own id: a previous boot's (stale), or one this process already closed whose
            // deletion is still on its way (gone, so unknown).
            let class = if record.boot == self.inner.boot {
                MissClass::Unknown
            } else {
                MissClass::Stale
            };
            return Miss {
                class,
                owner: Some(record.node),
            };
        }
        let beat = client
            .get::<Option<String>, _>(self.inner.keys.heartbeat(&record.node))
            .await;
        match beat.map(|raw| raw.as_deref().and_then(NodeBeat::decode)) {
            Ok(Some(beat)) if beat.boot == record.boot => Miss {
                class: MissClass::Misroute,
                owner: Some(record.node),
            },
            Ok(_) => Miss {
                class: MissClass::Stale,
                owner: Some(record.node),
            },
            Err(e) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "registry heartbeat lookup failed");
                unclassified(Some(record.node))
            }
        }
    }

    fn log_miss(&self, raw_id: &str, miss: &Miss, action: &str) {
        let first = match raw_id.parse::<SessionId>() {
            Ok(id) => {
                let mut logged = self.inner.logged.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if logged.len() >= LOG_ONCE_CAPACITY {
                    logged.retain(|_, (at, _, _)| now.duration_since(*at) < LOG_ONCE_WINDOW);
                    if logged.len() >= LOG_ONCE_CAPACITY {
                        logged.clear();
                    }
                }
                let forwarded = action == "forwarded";
                match logged.get(&id) {
                    Some((at, class, fwd))
                        if now.duration_since(*at) < LOG_ONCE_WINDOW
                            && *class == miss.class
                            && *fwd == forwarded =>
                    {
                        false
                    }
                    _ => {
                        logged.insert(id, (now, miss.class, forwarded));
                        true
                    }
                }
            }
            // Garbage ids are logged at DEBUG only: they are noise, not routing problems.
            Err(_) => false,
        };
        let owner = miss.owner.as_deref().unwrap_or("");
        if first {
            tracing::warn!(
                session_id = raw_id,
                node = %self.inner.node,
                owner_node = owner,
                class = miss.class.as_str(),
                action,
                "request for a session this node does not hold"
            );
        } else {
            tracing::debug!(
                session_id = raw_id,
                node = %self.inner.node,
                owner_node = owner,
                class = miss.class.as_str(),
                action,
                "request for a session this node does not hold (repeat)"
            );
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
