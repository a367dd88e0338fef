//! The registry's write queue: what still has to reach Redis, coalesced and bounded.
//!
//! Requests never wait on Redis: they drop an operation here and go on. The writer takes the whole
//! queue at once and sends it as one batch, so N operations that pile up during one round
//! trip cost one more round trip, not N.
//!
//! Coalescing: a session created and closed before the writer saw it is never written — nor is its
//! record even built: the queue keeps the session, and the writer encodes its record at flush
//! time (most of a short-lived session's registry cost was building a record nobody sent); a TTL
//! refresh for a session whose creation is still queued is dropped (the creation sets the TTL).
//! Bounds: refreshes are capped and the oldest go first (a lost refresh only shortens a 30-day
//! TTL until the next one); creations are bounded by the live-session cap; deletions are capped
//! too, oldest first — when Redis is back, the resync removes every registered session that is no
//! longer live, so a dropped deletion of one of ours is repaired; only deletions for other nodes'
//! sessions (a DELETE that reached the wrong node) can be lost, and those keys expire by TTL.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::session::{FastMap, Session, SessionId};

type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// How a session's record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A session created here under a fresh id: a plain `SET` (nobody else can own the id).
    New,
    /// A record rewritten later (log level, subscriptions): only while this node still owns it
    /// (it may have been adopted elsewhere since).
    Own,
}

/// How a session's key goes away; a stronger kind replaces a weaker one queued for the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Removal {
    /// Shutdown with adoption on: the record stays for another node to continue the session,
    /// expiring after the idle timeout.
    Release,
    /// This node closed its session (idle, init timeout, shutdown): deleted unless another node
    /// owns it by now.
    Own,
    /// The client sent DELETE: the key goes whoever holds it (ADR-0066).
    Any,
}

/// One batch taken by the writer.
#[derive(Debug, Default)]
pub struct Batch {
    /// Sessions whose records are to be written (encoded by the writer as it sends them).
    pub creates: Vec<(SessionId, Arc<Session>, Write)>,
    pub deletes: Vec<(SessionId, Removal)>,
    pub touches: Vec<SessionId>,
}

impl Batch {
    /// Number of operations.
    pub fn len(&self) -> usize {
        self.creates.len() + self.deletes.len() + self.touches.len()
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Pending operations.
#[derive(Debug)]
pub struct Queue {
    creates: FastMap<SessionId, (Arc<Session>, Write)>,
    deletes: VecDeque<SessionId>,
    delete_kind: FastMap<SessionId, Removal>,
    touches: VecDeque<SessionId>,
    touch_set: FastSet<SessionId>,
    max_deletes: usize,
    max_touches: usize,
    dropped: u64,
}

impl Queue {
    /// An empty queue keeping at most `max_deletes` deletions and `max_touches` refreshes.
    pub fn new(max_deletes: usize, max_touches: usize) -> Queue {
        Queue {
            creates: FastMap::default(),
            deletes: VecDeque::new(),
            delete_kind: FastMap::default(),
            touches: VecDeque::new(),
            touch_set: FastSet::default(),
            max_deletes: max_deletes.max(1),
            max_touches: max_touches.max(1),
            dropped: 0,
        }
    }

    /// Pending operations.
    pub fn len(&self) -> usize {
        self.creates.len() + self.deletes.len() + self.touches.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Operations dropped to stay within bounds, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A session's record is to be written. A rewrite of a record whose first write is still
    /// queued stays a first write.
    pub fn create(&mut self, id: SessionId, session: Arc<Session>, write: Write) {
        let write = match self.creates.get(&id) {
            Some((_, Write::New)) => Write::New,
            _ => write,
        };
        self.creates.insert(id, (session, write));
    }

    /// A session ended (or a DELETE named an id this node does not hold).
    pub fn delete(&mut self, id: SessionId, kind: Removal) {
        self.forget_touch(&id);
        if let Some((_, write)) = self.creates.remove(&id) {
            if write == Write::New {
                return; // never written
            }
        }
        match self.delete_kind.get_mut(&id) {
            Some(queued) => *queued = (*queued).max(kind),
            None => {
                self.delete_kind.insert(id, kind);
                self.deletes.push_back(id);
                if self.deletes.len() > self.max_deletes {
                    if let Some(old) = self.deletes.pop_front() {
                        self.delete_kind.remove(&old);
                        self.dropped += 1;
                    }
                }
            }
        }
    }

    /// A session's TTL should be refreshed.
    pub fn touch(&mut self, id: SessionId) {
        if self.creates.contains_key(&id)
            || self.delete_kind.contains_key(&id)
            || !self.touch_set.insert(id)
        {
            return;
        }
        self.touches.push_back(id);
        if self.touches.len() > self.max_touches {
            if let Some(old) = self.touches.pop_front() {
                self.touch_set.remove(&old);
                self.dropped += 1;
            }
        }
    }

    fn forget_touch(&mut self, id: &SessionId) {
        if self.touch_set.remove(id) {
            self.touches.retain(|t| t != id);
        }
    }

    /// Takes everything pending.
    pub fn take(&mut self) -> Batch {
        self.touch_set.clear();
        let mut kinds = std::mem::take(&mut self.delete_kind);
        Batch {
            creates: self
                .creates
                .drain()
                .map(|(id, (session, write))| (id, session, write))
                .collect(),
            deletes: self
                .deletes
                .drain(..)
                .map(|id| (id, kinds.remove(&id).unwrap_or(Removal::Own)))
                .collect(),
            touches: self.touches.drain(..).collect(),
        }
    }

    /// Puts back the deletions of a batch that did not reach Redis. Creations and refreshes are
    /// not needed: the resync that follows a failure rewrites every live session.
    pub fn requeue_deletes(&mut self, deletes: Vec<(SessionId, Removal)>) {
        for (id, kind) in deletes {
            if !self.creates.contains_key(&id) {
                self.delete(id, kind);
            }
        }
    }

    /// Drops queued creations and refreshes (a resync writes every live session anyway).
    pub fn clear_writes(&mut self) {
        self.creates.clear();
        self.touches.clear();
        self.touch_set.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Arc<Session> {
        Session::for_tests()
    }

    #[test]
    fn a_session_created_and_closed_before_a_flush_is_never_written() {
        let mut q = Queue::new(10, 10);
        let id = SessionId::random();
        q.create(id, rec(), Write::New);
        q.touch(id);
        q.delete(id, Removal::Own);
        assert!(q.take().is_empty());
    }

    #[test]
    fn refreshes_are_deduplicated_and_skipped_for_pending_creations() {
        let mut q = Queue::new(10, 10);
        let (a, b) = (SessionId::random(), SessionId::random());
        q.create(a, rec(), Write::New);
        q.touch(a);
        q.touch(b);
        q.touch(b);
        let batch = q.take();
        assert_eq!(batch.creates.len(), 1);
        assert_eq!(batch.touches, vec![b]);
        assert!(q.is_empty());
    }

    #[test]
    fn bounds_drop_the_oldest_refreshes_and_deletions_but_keep_creations() {
        let mut q = Queue::new(2, 2);
        let ids: Vec<_> = (0..5).map(|_| SessionId::random()).collect();
        for id in &ids {
            q.touch(*id);
            q.create(SessionId::random(), rec(), Write::New);
        }
        for id in &ids {
            q.delete(*id, Removal::Own);
        }
        let batch = q.take();
        assert_eq!(batch.creates.len(), 5, "creations are kept");
        assert_eq!(batch.touches.len(), 0, "deleted sessions need no refresh");
        assert_eq!(
            batch.deletes,
            ids[3..]
                .iter()
                .map(|id| (*id, Removal::Own))
                .collect::<Vec<_>>(),
            "newest deletions kept"
        );
        assert!(q.dropped() >= 6);
    }

    #[test]
    fn failed_deletions_come_back_unless_recreated() {
        let mut q = Queue::new(10, 10);
        let (a, b) = (SessionId::random(), SessionId::random());
        q.requeue_deletes(vec![(a, Removal::Any), (b, Removal::Own)]);
        assert_eq!(q.len(), 2);
        q.clear_writes();
        assert_eq!(q.take().deletes.len(), 2, "clearing writes keeps deletions");
    }

    #[test]
    fn a_rewrite_of_an_adopted_or_older_record_still_reaches_redis_before_its_deletion() {
        let mut q = Queue::new(10, 10);
        let id = SessionId::random();
        q.create(id, rec(), Write::Own);
        q.delete(id, Removal::Own);
        let batch = q.take();
        assert!(batch.creates.is_empty());
        assert_eq!(
            batch.deletes,
            vec![(id, Removal::Own)],
            "the key is not ours to skip"
        );
    }

    #[test]
    fn the_strongest_removal_queued_for_a_session_wins() {
        let mut q = Queue::new(10, 10);
        let id = SessionId::random();
        q.delete(id, Removal::Release);
        q.delete(id, Removal::Any);
        q.delete(id, Removal::Own);
        assert_eq!(q.take().deletes, vec![(id, Removal::Any)]);
    }

    #[test]
    fn a_first_write_stays_a_plain_set_when_rewritten_before_the_flush() {
        let mut q = Queue::new(10, 10);
        let id = SessionId::random();
        q.create(id, rec(), Write::New);
        q.create(id, rec(), Write::Own);
        assert_eq!(q.take().creates[0].2, Write::New);
    }
}
