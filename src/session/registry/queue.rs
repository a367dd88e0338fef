//! The registry's write queue: what still has to reach Redis, coalesced and bounded.
//!
//! Requests never wait on Redis: they drop an operation here and go on. The writer takes the whole
//! queue at once and sends it as one pipeline, so N operations that pile up during one round
//! trip cost one more round trip, not N.
//!
//! Coalescing: a session created and closed before the writer saw it is never written; a TTL
//! refresh for a session whose creation is still queued is dropped (the creation sets the TTL).
//! Bounds: refreshes are capped and the oldest go first (a lost refresh only shortens a 30-day
//! TTL until the next one); creations are bounded by the live-session cap; deletions are capped
//! too, oldest first — when Redis is back, the resync removes every registered session that is no
//! longer live, so a dropped deletion of one of ours is repaired; only deletions for other nodes'
//! sessions (a DELETE that reached the wrong node) can be lost, and those keys expire by TTL.

use std::collections::{HashMap, HashSet, VecDeque};

use super::keys::SessionRecord;
use crate::session::SessionId;

/// One batch taken by the writer.
#[derive(Debug, Default)]
pub struct Batch {
    pub creates: Vec<(SessionId, SessionRecord)>,
    pub deletes: Vec<SessionId>,
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
    creates: HashMap<SessionId, SessionRecord>,
    deletes: VecDeque<SessionId>,
    delete_set: HashSet<SessionId>,
    touches: VecDeque<SessionId>,
    touch_set: HashSet<SessionId>,
    max_deletes: usize,
    max_touches: usize,
    dropped: u64,
}

impl Queue {
    /// An empty queue keeping at most `max_deletes` deletions and `max_touches` refreshes.
    pub fn new(max_deletes: usize, max_touches: usize) -> Queue {
        Queue {
            creates: HashMap::new(),
            deletes: VecDeque::new(),
            delete_set: HashSet::new(),
            touches: VecDeque::new(),
            touch_set: HashSet::new(),
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

    /// A session was created.
    pub fn create(&mut self, id: SessionId, record: SessionRecord) {
        self.creates.insert(id, record);
    }

    /// A session ended (or a DELETE named an id this node does not hold).
    pub fn delete(&mut self, id: SessionId) {
        self.forget_touch(&id);
        if self.creates.remove(&id).is_some() {
            return; // never written
        }
        if self.delete_set.insert(id) {
            self.deletes.push_back(id);
            if self.deletes.len() > self.max_deletes {
                if let Some(old) = self.deletes.pop_front() {
                    self.delete_set.remove(&old);
                    self.dropped += 1;
                }
            }
        }
    }

    /// A session's TTL should be refreshed.
    pub fn touch(&mut self, id: SessionId) {
        if self.creates.contains_key(&id)
            || self.delete_set.contains(&id)
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
        self.delete_set.clear();
        self.touch_set.clear();
        Batch {
            creates: self.creates.drain().collect(),
            deletes: self.deletes.drain(..).collect(),
            touches: self.touches.drain(..).collect(),
        }
    }

    /// Puts back the deletions of a batch that did not reach Redis. Creations and refreshes are
    /// not needed: the resync that follows a failure rewrites every live session.
    pub fn requeue_deletes(&mut self, deletes: Vec<SessionId>) {
        for id in deletes {
            if !self.creates.contains_key(&id) {
                self.delete(id);
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

    fn rec() -> SessionRecord {
        SessionRecord {
            node: "n".into(),
            boot: "b".into(),
            created_ms: 0,
            protocol: "2025-11-25".into(),
            client_info: serde_json::Value::Null,
            capabilities: serde_json::Value::Null,
            log_level: "info".into(),
            subscriptions: Vec::new(),
        }
    }

    #[test]
    fn a_session_created_and_closed_before_a_flush_is_never_written() {
        let mut q = Queue::new(10, 10);
        let id = SessionId::random();
        q.create(id, rec());
        q.touch(id);
        q.delete(id);
        assert!(q.take().is_empty());
    }

    #[test]
    fn refreshes_are_deduplicated_and_skipped_for_pending_creations() {
        let mut q = Queue::new(10, 10);
        let (a, b) = (SessionId::random(), SessionId::random());
        q.create(a, rec());
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
            q.create(SessionId::random(), rec());
        }
        for id in &ids {
            q.delete(*id);
        }
        let batch = q.take();
        assert_eq!(batch.creates.len(), 5, "creations are kept");
        assert_eq!(batch.touches.len(), 0, "deleted sessions need no refresh");
        assert_eq!(batch.deletes, ids[3..].to_vec(), "newest deletions kept");
        assert!(q.dropped() >= 6);
    }

    #[test]
    fn failed_deletions_come_back_unless_recreated() {
        let mut q = Queue::new(10, 10);
        let (a, b) = (SessionId::random(), SessionId::random());
        q.requeue_deletes(vec![a, b]);
        assert_eq!(q.len(), 2);
        q.clear_writes();
        assert_eq!(q.take().deletes.len(), 2, "clearing writes keeps deletions");
    }
}
