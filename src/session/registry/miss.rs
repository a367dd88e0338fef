//! The miss path: a request named a session this node does not hold. Say why (one Redis read,
//! logged once), then decide: forward it to the live node that holds it, adopt it because its
//! owner is gone, or answer 404.
//!
//! Finding the holder usually costs no Redis read: the id's owner tag names the node that minted
//! it, and the peer directory (from heartbeats) says where that node listens. Two things make the
//! tag wrong, and both fall back to Redis, whose record is the truth: the session was adopted by
//! another node since (remembered afterwards in a small "moved" map), or the tagged node does not
//! answer (remembered as *suspect* until its heartbeat would have expired).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::Options;

use super::{scripts, NodeBeat, Peer, Registry, SessionRecord};
use crate::session::{Session, SessionId};

/// A miss is logged at WARN once per session id (and class and action: a change is news) within
/// this window; repeats go to DEBUG, so a client hammering a dead id cannot flood the journal.
const LOG_ONCE_WINDOW: Duration = Duration::from_secs(60);
/// How many recently logged ids are remembered for that.
const LOG_ONCE_CAPACITY: usize = 4096;
/// How many adopted sessions' new owners are remembered (the map is cleared when full: it is a
/// shortcut, Redis stays the truth).
const MOVED_CAPACITY: usize = 4096;
/// How often a starting node's miss looks whether the node has joined the cluster yet, and for
/// how long at most (Redis may be down: then the miss is unclassified, as on a running node).
const JOIN_POLL: Duration = Duration::from_millis(20);
const JOIN_WAIT: Duration = Duration::from_secs(1);

/// Why a request named a session this node does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissClass {
    /// Another live node holds it: the client reached the wrong node.
    Misroute,
    /// Its owner is gone: the node's heartbeat expired, it restarted, it cannot be reached, or it
    /// was a previous boot of this node.
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

impl Miss {
    fn new(class: MissClass, owner: Option<String>) -> Miss {
        Miss { class, owner }
    }
}

/// What this node may do about a miss; the protocol layer fills it from the config, the drain
/// state and the request's forwarding path.
#[derive(Debug, Clone, Default)]
pub struct MissPolicy {
    /// Send the request on to a live peer (misroute rescue, with hops left).
    pub forward: bool,
    /// Trust the id's owner tag and the moved map (no Redis read): only on a request's first hop,
    /// since the node before already did.
    pub shortcut: bool,
    /// Continue an orphaned session here (`cluster.adopt_orphans`, and not draining).
    pub adopt: bool,
    /// This node is draining: orphans, and this node's own released sessions, are handed to a
    /// live peer to adopt instead of answered 404.
    pub handoff: bool,
    /// Nodes already on the request's path: never forwarded there again.
    pub avoid: Vec<String>,
    /// An owner that just could not be reached: evidence it is gone.
    pub unreachable: Option<String>,
}

/// An orphaned session, as read from Redis: what adoption claims.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub id: SessionId,
    /// The stored value, byte for byte: the claim succeeds only if it is unchanged.
    pub raw: String,
    pub record: SessionRecord,
}

/// The decision about a miss.
#[derive(Debug)]
pub enum Route {
    /// Serve it through this live peer.
    Forward(Peer),
    /// Continue it here (boxed: a record is large, and the enum is returned by value).
    Adopt(Box<Orphan>),
    /// Answer 404.
    NotFound,
}

/// What one Redis read says about an id.
struct Lookup {
    miss: Miss,
    orphan: Option<Orphan>,
    /// The owner's heartbeat, when it is alive.
    beat: Option<NodeBeat>,
}

/// A claim could not be decided (Redis unreachable or slow).
#[derive(Debug, thiserror::Error)]
#[error("registry did not answer the adoption claim: {0}")]
pub struct ClaimError(#[from] fred::error::Error);

impl Registry {
    /// Classifies a request for a session this node does not hold and decides what to do about
    /// it under `policy`. Logged once per id at WARN with `session_id`, `node`, `owner_node`,
    /// `class` and `action` — except a forward, logged once it was relayed
    /// ([`log_forwarded`](Self::log_forwarded): one that fails to connect ends in an adoption
    /// instead), and an adoption, logged once the claim is decided
    /// ([`log_adoption`](Self::log_adoption)).
    pub async fn route(&self, raw_id: &str, policy: &MissPolicy) -> (Miss, Route) {
        let Ok(id) = raw_id.parse::<SessionId>() else {
            // Not an id any node of ours mints: nothing to look up.
            let miss = Miss::new(MissClass::Unknown, None);
            self.log_miss(raw_id, &miss, "404");
            return (miss, Route::NotFound);
        };
        if policy.forward && policy.shortcut && policy.unreachable.is_none() {
            if let Some(peer) = self.shortcut(&id, policy) {
                let miss = Miss::new(MissClass::Misroute, Some(peer.node.clone()));
                return (miss, Route::Forward(peer));
            }
        }
        let Lookup {
            mut miss,
            orphan,
            beat,
        } = self.lookup(&id).await;
        let owner_unreachable = miss.owner.is_some() && miss.owner == policy.unreachable;
        if miss.class == MissClass::Misroute && owner_unreachable {
            // Its heartbeat has not expired yet, but its address refuses us: gone (SIGKILL, a
            // dead machine). The claim below still needs the record unchanged, so a node that
            // comes back and writes first keeps its session.
            miss.class = MissClass::Stale;
        }
        let route = match miss.class {
            MissClass::Misroute => {
                let owner = miss.owner.clone().unwrap_or_default();
                if owner != self.inner.node && id.owner() != crate::session::OwnerTag::of(&owner) {
                    self.remember_moved(id, &owner);
                }
                match beat {
                    Some(beat) if policy.forward && !policy.avoid.contains(&owner) => {
                        Route::Forward(Peer {
                            node: owner,
                            boot: beat.boot,
                            url: beat.url,
                        })
                    }
                    _ => Route::NotFound,
                }
            }
            MissClass::Stale if policy.adopt => match orphan {
                Some(orphan) => return (miss, Route::Adopt(Box::new(orphan))),
                None => Route::NotFound,
            },
            MissClass::Stale if policy.handoff && policy.forward => self.any_peer(policy),
            // Our own record, this boot, not in the table: closed (its deletion on the way) —
            // or, while draining, released: a peer adopts it.
            MissClass::Unknown
                if policy.handoff
                    && policy.forward
                    && miss.owner.as_deref() == Some(self.inner.node.as_str()) =>
            {
                miss.class = MissClass::Stale;
                self.any_peer(policy)
            }
            _ => Route::NotFound,
        };
        if !matches!(route, Route::Forward(_)) {
            self.log_miss(raw_id, &miss, "404");
        }
        (miss, route)
    }

    /// The live peer the id's tag (or the moved map) names, unless suspect or already on the
    /// request's path.
    fn shortcut(&self, id: &SessionId, policy: &MissPolicy) -> Option<Peer> {
        let moved = self
            .lock_moved()
            .get(id)
            .cloned()
            .and_then(|node| self.peer_named(&node));
        moved
            .or_else(|| self.peer_for(id))
            .filter(|p| !policy.avoid.contains(&p.node))
    }

    /// Any live peer not on the request's path (a draining node's handoff).
    fn any_peer(&self, policy: &MissPolicy) -> Route {
        let peers = self.live_peers();
        let candidates: Vec<&Peer> = peers
            .iter()
            .filter(|p| !policy.avoid.contains(&p.node))
            .collect();
        if candidates.is_empty() {
            return Route::NotFound;
        }
        Route::Forward(candidates[fastrand::usize(..candidates.len())].clone())
    }

    fn lock_moved(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, String>> {
        self.inner.moved.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_moved(&self, id: SessionId, node: &str) {
        let mut moved = self.lock_moved();
        if moved.len() >= MOVED_CAPACITY {
            moved.clear();
        }
        moved.insert(id, node.to_owned());
    }

    /// `node` did not accept a connection: skipped by the shortcut until its heartbeat would have
    /// expired or it comes back under a new boot, and forgotten as a moved session's holder.
    pub fn peer_unreachable(&self, node: &str) {
        let boot = self.peer_named(node).map(|p| p.boot).unwrap_or_default();
        let until = Instant::now() + self.inner.cfg.heartbeat_interval * 3;
        self.inner
            .suspects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_owned(), (boot, until));
        self.lock_moved().retain(|_, n| n != node);
    }

    /// Claims `orphan` for this node with the record of `session` (its local successor). Exactly
    /// one of several concurrent claimants gets `true`.
    pub async fn claim(&self, orphan: &Orphan, session: &Session) -> Result<bool, ClaimError> {
        let inner = &self.inner;
        let keys = &inner.keys;
        let record = self.record_json(session);
        let id = orphan.id.to_string();
        let ttl = i64::try_from(inner.cfg.session_ttl.as_secs())
            .unwrap_or(i64::MAX)
            .max(1)
            .to_string();
        let args = scripts::args(
            scripts::CLAIM,
            &[
                &keys.session(&orphan.id),
                &keys.node_sessions(&inner.node),
                &keys.node_sessions(&orphan.record.node),
            ],
            &[&orphan.raw, &record, &ttl, &id],
        );
        let opts = Options {
            timeout: Some(inner.cfg.command_timeout),
            fail_fast: true,
            max_attempts: Some(1),
            ..Default::default()
        };
        let won: i64 = inner
            .client
            .with_options(&opts)
            .custom(scripts::eval(), args)
            .await
            .inspect_err(|_| {
                inner.errors.fetch_add(1, Ordering::Relaxed);
            })?;
        if won == 1 {
            self.lock_moved().remove(&orphan.id);
        }
        Ok(won == 1)
    }

    /// Logs a miss whose request was relayed to its holder (`action=forwarded`).
    pub fn log_forwarded(&self, raw_id: &str, miss: &Miss) {
        self.log_miss(raw_id, miss, "forwarded");
    }

    /// Logs a decided adoption (`class=stale`, `action=adopted` or `404` when it failed).
    pub fn log_adoption(&self, raw_id: &str, previous_owner: &str, adopted: bool) {
        let miss = Miss::new(MissClass::Stale, Some(previous_owner.to_owned()));
        self.log_miss(raw_id, &miss, if adopted { "adopted" } else { "404" });
    }

    async fn lookup(&self, id: &SessionId) -> Lookup {
        let unclassified = |owner| Lookup {
            miss: Miss::new(MissClass::Unclassified, owner),
            orphan: None,
            beat: None,
        };
        // A node that has just started has not joined yet (connected, resynced, peers known):
        // wait for that, briefly, rather than answer a request it could route a moment later.
        let give_up = Instant::now() + JOIN_WAIT;
        while self.starting() && !self.inner.client.is_connected() && Instant::now() < give_up {
            tokio::time::sleep(JOIN_POLL).await;
        }
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
        let raw = match client
            .get::<Option<String>, _>(self.inner.keys.session(id))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "registry lookup failed");
                return unclassified(None);
            }
        };
        let Some((raw, record)) =
            raw.and_then(|raw| SessionRecord::decode(&raw).map(|record| (raw, record)))
        else {
            return Lookup {
                miss: Miss::new(MissClass::Unknown, None),
                orphan: None,
                beat: None,
            };
        };
        let owner = Some(record.node.clone());
        let orphan = |record| {
            Some(Orphan {
                id: *id,
                raw,
                record,
            })
        };
        if record.node == self.inner.node {
            // Our own id: a previous boot's (stale), or one this process already closed whose
            // deletion is still on its way (gone, so unknown).
            let (class, orphan) = if record.boot == self.inner.boot {
                (MissClass::Unknown, None)
            } else {
                (MissClass::Stale, orphan(record))
            };
            return Lookup {
                miss: Miss::new(class, owner),
                orphan,
                beat: None,
            };
        }
        let beat = client
            .get::<Option<String>, _>(self.inner.keys.heartbeat(&record.node))
            .await;
        match beat.map(|raw| raw.as_deref().and_then(NodeBeat::decode)) {
            Ok(Some(beat)) if beat.boot == record.boot => Lookup {
                miss: Miss::new(MissClass::Misroute, owner),
                orphan: orphan(record),
                beat: Some(beat),
            },
            Ok(_) => Lookup {
                miss: Miss::new(MissClass::Stale, owner),
                orphan: orphan(record),
                beat: None,
            },
            Err(e) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "registry heartbeat lookup failed");
                unclassified(owner)
            }
        }
    }

    fn log_miss(&self, raw_id: &str, miss: &Miss, action: &'static str) {
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
                match logged.get(&id) {
                    Some((at, class, act))
                        if now.duration_since(*at) < LOG_ONCE_WINDOW
                            && *class == miss.class
                            && *act == action =>
                    {
                        false
                    }
                    _ => {
                        logged.insert(id, (now, miss.class, action));
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
