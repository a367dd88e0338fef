//! One SSE stream of a session, as a bounded log that connections read from.
//!
//! A stream outlives the HTTP connections that carry it: the server may close a connection
//! (SEP-1699 polling), a client may drop one, and a GET with `Last-Event-ID` picks the stream up
//! again where it stopped. So a stream is a ring of the last `capacity` events (already framed by
//! the protocol layer) plus a cursor per reading connection. Readers pull; writers never block and
//! never allocate per reader, which keeps an idle stream at a few hundred bytes.
//!
//! At most one connection receives a stream's events at a time (the spec forbids sending a message
//! on two streams): the *primary*. Another GET on the same stream while the primary lives becomes
//! a *shadow* that only receives keep-alives and takes over when the primary goes — answering a
//! second GET with 409 sends real clients into reconnect loops.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// A stream's number within its session: the standalone (GET) stream is 0 and POST streams count
/// up from 1 — or from a random base for an adopted session, so that event ids of its previous
/// incarnation name none of its streams. Event ids are `<stream>-<seq>`, so an id names its
/// stream.
pub type StreamId = u32;

/// What a reader finds when it looks at the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Events after the reader's cursor, concatenated; the cursor has moved past them.
    Events(Bytes),
    /// Nothing new yet.
    Idle,
    /// The server asked for this connection to close (the stream goes on; the client resumes).
    Kicked,
    /// The stream is finished and this reader has everything.
    Finished,
}

/// A stream's events and readers.
#[derive(Debug)]
pub struct EventLog {
    id: StreamId,
    inner: Mutex<Inner>,
    notify: Notify,
    next_reader: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    events: VecDeque<(u64, Bytes)>,
    capacity: usize,
    next_seq: u64,
    /// Highest sequence number handed to any primary (where a new GET without `Last-Event-ID`
    /// starts).
    delivered: u64,
    finished: bool,
    primary: Option<u64>,
    /// Bumped to make the current connection close.
    kicks: u64,
}

/// A connection reading a stream. Dropping it (the client went away) frees the primary slot.
#[derive(Debug)]
pub struct ReaderGuard {
    log: Arc<EventLog>,
    reader: u64,
    cursor: u64,
    kicks_seen: u64,
}

impl EventLog {
    /// An empty stream keeping up to `capacity` events for replay.
    pub fn new(id: StreamId, capacity: usize) -> Arc<EventLog> {
        Arc::new(EventLog {
            id,
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                capacity: capacity.max(1),
                next_seq: 1,
                delivered: 0,
                finished: false,
                primary: None,
                kicks: 0,
            }),
            notify: Notify::new(),
            next_reader: AtomicU64::new(1),
        })
    }

    /// The stream's number.
    pub fn id(&self) -> StreamId {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event; `frame` turns its sequence number into the event's bytes (its `id:`
    /// field is `<stream>-<seq>`). Returns the sequence number. Events pushed after `finish` are
    /// dropped (returns `None`).
    pub fn push(&self, frame: impl FnOnce(u64) -> Bytes) -> Option<u64> {
        let seq = {
            let mut inner = self.lock();
            if inner.finished {
                return None;
            }
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let bytes = frame(seq);
            if inner.events.len() == inner.capacity {
                inner.events.pop_front();
            }
            inner.events.push_back((seq, bytes));
            seq
        };
        self.notify.notify_waiters();
        Some(seq)
    }

    /// Marks the stream complete: readers end once they have everything.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.notify.notify_waiters();
    }

    /// True once `finish` was called.
    pub fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Resolves when something may have changed (new events, finish, kick, a freed slot).
    /// Create it and `enable()` it *before* reading, so no wake-up is missed between the two.
    pub fn notify_future(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Asks the current connection to close after what it has (the stream itself goes on).
    pub fn kick(&self) {
        self.lock().kicks += 1;
        self.notify.notify_waiters();
    }

    /// Attaches a connection. With `after = Some(seq)` (a `Last-Event-ID`) the reader takes the
    /// primary slot and replays what followed `seq`; without, it becomes primary if the slot is
    /// free (starting after what was already delivered) or a shadow otherwise.
    pub fn attach(self: &Arc<Self>, after: Option<u64>) -> ReaderGuard {
        let reader = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        // A resume point past anything this stream issued comes from somewhere else (another
        // incarnation of the session): start fresh rather than skip events that never reached
        // the client.
        let after = after.filter(|seq| *seq < inner.next_seq);
        let cursor = match after {
            Some(seq) => {
                inner.primary = Some(reader);
                seq
            }
            None => {
                if inner.primary.is_none() {
                    inner.primary = Some(reader);
                }
                inner.delivered
            }
        };
        let kicks_seen = inner.kicks;
        drop(inner);
        // A displaced primary must notice it lost the slot.
        self.notify.notify_waiters();
        ReaderGuard {
            log: Arc::clone(self),
            reader,
            cursor,
            kicks_seen,
        }
    }
}

impl ReaderGuard {
    /// The stream read.
    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    /// The sequence number this reader has seen up to (its resume point).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// True while this connection holds the primary slot.
    pub fn is_primary(&self) -> bool {
        self.log.lock().primary == Some(self.reader)
    }

    /// Takes what is there for this reader. A shadow takes the primary slot when it is free.
    pub fn read(&mut self) -> Read {
        let mut inner = self.log.lock();
        if inner.kicks != self.kicks_seen {
            self.kicks_seen = inner.kicks;
            if inner.primary == Some(self.reader) {
                // Deliver what is already there first; the kick then ends the connection.
                if inner
                    .events
                    .back()
                    .is_some_and(|(seq, _)| *seq > self.cursor)
                {
                    self.kicks_seen -= 1;
                } else {
                    inner.primary = None;
                    return Read::Kicked;
                }
            }
        }
        match inner.primary {
            None => {
                // A shadow taking over continues after what its predecessor delivered.
                inner.primary = Some(self.reader);
                self.cursor = self.cursor.max(inner.delivered);
            }
            Some(p) if p != self.reader => return Read::Idle,
            Some(_) => {}
        }
        let mut out = BytesMut::new();
        let mut last = self.cursor;
        for (seq, bytes) in inner.events.iter().filter(|(seq, _)| *seq > self.cursor) {
            out.extend_from_slice(bytes);
            last = *seq;
        }
        if last > self.cursor {
            self.cursor = last;
            inner.delivered = inner.delivered.max(last);
            return Read::Events(out.freeze());
        }
        if inner.finished {
            Read::Finished
        } else {
            Read::Idle
        }
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut inner = self.log.lock();
        if inner.primary == Some(self.reader) {
            inner.primary = None;
            drop(inner);
            self.log.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> Bytes {
        Bytes::from(format!("e{seq};"))
    }

    #[test]
    fn a_reader_gets_events_once_then_idle_then_finished() {
        let log = EventLog::new(1, 8);
        let mut r = log.attach(None);
        log.push(ev);
        log.push(ev);
        assert_eq!(r.read(), Read::Events(Bytes::from("e1;e2;")));
        assert_eq!(r.read(), Read::Idle);
        log.finish();
        assert_eq!(r.read(), Read::Finished);
        assert_eq!(log.push(ev), None, "no events after finish");
    }

    #[test]
    fn last_event_id_replays_what_followed_and_the_ring_is_bounded() {
        let log = EventLog::new(3, 2);
        for _ in 0..4 {
            log.push(ev);
        }
        let mut r = log.attach(Some(2));
        assert_eq!(r.read(), Read::Events(Bytes::from("e3;e4;")));
        // Asking for events already evicted gives what is left, never an error.
        let mut old = log.attach(Some(0));
        assert_eq!(old.read(), Read::Events(Bytes::from("e3;e4;")));
    }

    #[test]
    fn a_second_get_is_a_shadow_until_the_primary_goes() {
        let log = EventLog::new(0, 8);
        let mut first = log.attach(None);
        let mut second = log.attach(None);
        log.push(ev);
        assert_eq!(second.read(), Read::Idle, "shadow gets nothing");
        assert_eq!(first.read(), Read::Events(Bytes::from("e1;")));
        drop(first);
        log.push(ev);
        assert_eq!(
            second.read(),
            Read::Events(Bytes::from("e2;")),
            "takes over, no repeats"
        );
        assert!(second.is_primary());
    }

    #[test]
    fn a_new_primary_starts_after_what_was_delivered() {
        let log = EventLog::new(0, 8);
        log.push(ev);
        let mut first = log.attach(None);
        assert_eq!(first.read(), Read::Events(Bytes::from("e1;")));
        drop(first);
        log.push(ev); // sent while nobody listened: kept for the next connection
        let mut next = log.attach(None);
        assert_eq!(next.read(), Read::Events(Bytes::from("e2;")));
    }

    #[test]
    fn a_kick_ends_the_connection_after_pending_events_and_the_stream_resumes() {
        let log = EventLog::new(2, 8);
        let mut r = log.attach(None);
        log.push(ev);
        log.kick();
        assert_eq!(r.read(), Read::Events(Bytes::from("e1;")));
        assert_eq!(r.read(), Read::Kicked);
        log.push(ev);
        log.finish();
        let mut resumed = log.attach(Some(1));
        assert_eq!(resumed.read(), Read::Events(Bytes::from("e2;")));
        assert_eq!(resumed.read(), Read::Finished);
    }
}
