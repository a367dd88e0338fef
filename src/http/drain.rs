//! The drain's side of HTTP: the deadline that answers the requests still waiting (so none is
//! cut at the exit), and the book of what the drain found on the connections it closed — how
//! many requests were in flight when the server stopped accepting, and how each ended.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::head_timeout::Readiness;

/// The drain's deadline for requests still without an answer: once it [`Deadline::fire`]s, each
/// is answered at once (with what [`Deadline::until`] was given for it) instead of being dropped
/// with its connection when the process exits.
#[derive(Default)]
pub(super) struct Deadline {
    fired: CancellationToken,
    /// Requests answered by the deadline.
    answered: AtomicUsize,
}

impl Deadline {
    /// `answer`'s output, or `instead()` if the deadline fires first. Only for waits that are
    /// slow already (a relay, a body still arriving): it registers with the deadline.
    pub(super) async fn until<T>(
        &self,
        answer: impl Future<Output = T>,
        instead: impl FnOnce() -> T,
    ) -> T {
        tokio::select! {
            biased;
            r = answer => r,
            () = self.fired.cancelled() => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                instead()
            }
        }
    }

    /// Answers every request still waiting.
    pub(super) fn fire(&self) {
        self.fired.cancel();
    }

    /// Requests answered by the deadline.
    pub(super) fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }
}

/// The connections open when the server stopped, each noted once as it saw the stop (so the
/// book costs nothing before a drain), with the requests it had in flight then.
#[derive(Default)]
pub(super) struct DrainBook {
    open: Mutex<Vec<(Arc<Readiness>, usize)>>,
}

/// What the drain's log line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DrainSummary {
    /// Connections open when the server stopped accepting.
    pub connections: usize,
    /// Requests on them then whose answer was not yet made (SSE streams included; an answer
    /// already handed to its connection is not counted, though it may still be being written).
    pub requests: usize,
    /// Of those connections, the ones not ended yet.
    pub open: usize,
}

impl DrainBook {
    /// A connection saw the stop with `readiness`'s requests in flight.
    pub(super) fn note(&self, readiness: Arc<Readiness>) {
        let running = readiness.in_flight();
        self.lock().push((readiness, running));
    }

    /// The book so far.
    pub(super) fn summary(&self) -> DrainSummary {
        let open = self.lock();
        DrainSummary {
            connections: open.len(),
            requests: open.iter().map(|(_, n)| n).sum(),
            open: open.iter().filter(|(r, _)| !r.has_ended()).count(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<Readiness>, usize)>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}
