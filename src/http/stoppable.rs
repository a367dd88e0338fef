//! A connection that begins its graceful shutdown when the server stops.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Serves `conn` until it ends; once `stop` fires, asks it to shut down gracefully (an HTTP/1
/// connection finishes the request in flight and closes, an idle one closes at once; HTTP/2
/// sends GOAWAY) and goes on polling it until it has.
///
/// Why not hyper-util's `GracefulShutdown`: its watcher re-polls one `watch` channel, shared by
/// every connection of the server, on every poll of every connection, and each of those polls
/// locks the channel's waiter list — a lock all worker threads take for every request. Here the
/// wake-up is registered with `stop` once per connection (again only if the task's waker ever
/// changes), and an ordinary poll only reads whether `stop` has fired.
pub(super) struct Stoppable<C, N> {
    conn: C,
    shutdown: fn(Pin<&mut C>),
    /// Called once when `stop` fires (the drain's book of open connections).
    on_stop: Option<N>,
    stop: CancellationToken,
    /// Wakes this connection's task when `stop` fires; polled only to register a waker.
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker `stopped` was last polled with.
    registered: Option<Waker>,
    stopping: bool,
}

impl<C: Future + Unpin, N: FnOnce() + Unpin> Stoppable<C, N> {
    /// `shutdown` starts `conn`'s graceful shutdown (hyper's `graceful_shutdown`); `on_stop` is
    /// called just before it.
    pub(super) fn new(
        conn: C,
        stop: CancellationToken,
        shutdown: fn(Pin<&mut C>),
        on_stop: N,
    ) -> Self {
        Stoppable {
            conn,
            shutdown,
            on_stop: Some(on_stop),
            stopped: Box::pin(stop.clone().cancelled_owned()),
            stop,
            registered: None,
            stopping: false,
        }
    }
}

impl<C: Future + Unpin, N: FnOnce() + Unpin> Future for Stoppable<C, N> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.get_mut();
        if !this.stopping {
            let known = this
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            let fired =
                this.stop.is_cancelled() || (!known && this.stopped.as_mut().poll(cx).is_ready());
            if fired {
                this.stopping = true;
                if let Some(on_stop) = this.on_stop.take() {
                    on_stop();
                }
                (this.shutdown)(Pin::new(&mut this.conn));
            } else if !known {
                this.registered = Some(cx.waker().clone());
            }
        }
        Pin::new(&mut this.conn).poll(cx)
    }
}
