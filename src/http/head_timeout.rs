//! The header read timeout, kept per connection instead of per request.
//!
//! The rule is hyper's: from the moment an HTTP/1 connection is ready for a request (accepted, or
//! its last response written) the client has the timeout to send a whole request head, and an
//! idle keep-alive connection is closed when it passes. A connection with a request in flight (a
//! running tool, an open SSE stream, a body being read) is never cut by it.
//!
//! Why not hyper's own `header_read_timeout`: it boxes a new timer for every request, registers
//! it in tokio's timer wheel while the connection waits and removes it when the head arrives.
//! Replacing it took callgrind's count per session lifecycle from 96.0k to 92.2k instructions,
//! and per tool call from 30.4k to 29.0k.
//!
//! Here a connection owns one timer, armed when it is accepted; finishing a response only records
//! the time. When the timer fires it compares its deadline with the connection's current one and
//! re-arms if the connection has been ready for less than the timeout: one timer operation per
//! timeout period of a connection's life instead of two per request.
//!
//! hyper's own timeout is switched off, which also spares a poll per request: with it on, hyper
//! reads again right after each response only to start that timer. Here the alarm is left set by
//! whatever read last waited, so an idle connection is woken by it and looked at then.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::time::{Instant, Sleep};

use super::Body;

/// What one connection's requests tell its reader: whether a request is in flight and when the
/// connection last became ready for a new one. Shared by the connection's service (which marks
/// requests) and its [`HeadTimeout`] reader (which enforces the deadline); both live in the
/// connection's task.
#[derive(Debug)]
pub(super) struct Readiness {
    accepted: Instant,
    in_flight: AtomicUsize,
    /// Nanoseconds from `accepted` to when the last request in flight ended.
    ready_at_ns: AtomicU64,
    /// The connection is closed (set by its task when hyper is done with it).
    ended: AtomicBool,
}

impl Readiness {
    /// A connection accepted now, ready for its first request.
    pub(super) fn new() -> Arc<Readiness> {
        Arc::new(Readiness {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            ready_at_ns: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        })
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Marks the connection closed (everything it was sending sent, or given up) when the
    /// returned guard drops: the connection's task holds it, whichever way the task ends.
    pub(super) fn ends_with(self: Arc<Self>) -> EndsWith {
        EndsWith(self)
    }

    /// Whether the guard of [`Readiness::ends_with`] was dropped.
    pub(super) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Requests in flight on this connection now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// When the client must have sent its next request head, or `None` while a request is in
    /// flight.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ready = Duration::from_nanos(self.ready_at_ns.load(Ordering::Relaxed));
        Some(self.accepted + ready + timeout)
    }
}

/// Held by a connection's task; see [`Readiness::ends_with`].
pub(super) struct EndsWith(Arc<Readiness>);

impl Drop for EndsWith {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Release);
    }
}

/// A request in flight on its connection. Carried in the response body ([`Tracked`]), so the
/// connection counts as ready again when hyper has written the response and dropped the body
/// (or dropped the request unanswered).
#[derive(Debug)]
pub(super) struct InFlight(Arc<Readiness>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let r = &self.0;
        let ns = u64::try_from(r.accepted.elapsed().as_nanos()).unwrap_or(u64::MAX);
        r.ready_at_ns.fetch_max(ns, Ordering::Relaxed);
        r.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A response body holding its request's [`InFlight`] until hyper drops it. An answer that hyper
/// drops before taking it whole (its connection ended first: the client left, or a write failed)
/// is counted in `mcpd_http_truncated_responses_total{cause="connection"}`.
pub(super) struct Tracked {
    body: Body,
    /// The answer to a HEAD request, whose body hyper never sends.
    head: bool,
    status: u16,
    _in_flight: InFlight,
}

impl Tracked {
    pub(super) fn new(body: Body, head: bool, status: u16, in_flight: InFlight) -> Self {
        Tracked {
            body,
            head,
            status,
            _in_flight: in_flight,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // A buffer still here was never handed to the connection. Streams are left out: a
        // client ends those by leaving, and resumes them.
        if matches!(&self.body, Body::Full(Some(b)) if !b.is_empty()) && !self.head {
            tracing::debug!(
                status = self.status,
                "an answer could not be handed over whole: its connection ended first"
            );
            crate::telemetry::metrics().truncated("connection", 1);
        }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket as hyper reads it: a read that would wait while no request is in flight
/// fails with `TimedOut` once the connection has been ready for `timeout` without a whole request
/// head, which makes hyper close the connection without a reply.
pub(super) struct HeadTimeout<T> {
    io: T,
    readiness: Arc<Readiness>,
    timeout: Duration,
    /// Set for a deadline the connection has had; the current one is never earlier (readiness
    /// only moves forward), so going off early only means setting it again.
    alarm: Pin<Box<Sleep>>,
    /// The waker `alarm` was last polled with, while it has not gone off.
    armed: Option<Waker>,
}

impl<T> HeadTimeout<T> {
    /// `timeout` is the config's `server.header_read_timeout` (never zero).
    pub(super) fn new(io: T, readiness: Arc<Readiness>, timeout: Duration) -> Self {
        let timeout = timeout.max(Duration::from_millis(1));
        let alarm = Box::pin(tokio::time::sleep_until(readiness.accepted + timeout));
        HeadTimeout {
            io,
            readiness,
            timeout,
            alarm,
            armed: None,
        }
    }

    /// Called when a read would wait. Every such read leaves the alarm set to wake this task, so
    /// a connection that goes idle after its response (hyper does not read again until woken) is
    /// still looked at by its deadline. Costs a check, not a timer operation, while the alarm is
    /// set.
    fn poll_alarm(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker())) && !self.alarm.is_elapsed()
        {
            return Poll::Pending;
        }
        loop {
            if self.alarm.as_mut().poll(cx).is_pending() {
                self.armed = Some(cx.waker().clone());
                return Poll::Pending;
            }
            self.armed = None;
            match self.readiness.deadline(self.timeout) {
                Some(deadline) if self.alarm.deadline() >= deadline => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request head within the header read timeout",
                    )));
                }
                // It went off for an earlier deadline the connection has since moved past.
                Some(deadline) => self.alarm.as_mut().reset(deadline),
                // A request in flight is never cut: look again one timeout from now.
                None => self.alarm.as_mut().reset(Instant::now() + self.timeout),
            }
        }
    }
}

impl<T: Read + Unpin> Read for HeadTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => this.poll_alarm(cx),
            read => read,
        }
    }
}

impl<T: Write + Unpin> Write for HeadTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
