//! Server-Sent Events: how messages are framed, and the byte stream one connection reads.
//!
//! Event ids are `<stream>-<seq>`: unique within the session and naming their stream, so a GET
//! with `Last-Event-ID` resumes exactly the stream that was cut (spec 2025-11-25). JSON from
//! `serde_json` never contains a raw newline, so every message is a single `data:` line.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use tokio_util::sync::CancellationToken;

use crate::session::{BusyGuard, Read, ReaderGuard, StreamId};

/// The comment sent when nothing else was sent for `keep_alive`: proxies and clients with read
/// timeouts see bytes, parsers ignore it.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// An event carrying one JSON-RPC message.
pub fn event(stream: StreamId, seq: u64, json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 32);
    out.extend_from_slice(format!("id: {stream}-{seq}\ndata: ").as_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// An event carrying one JSON-RPC message without an id: 2026-07-28 streams are not resumable.
pub fn data(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Appends one JSON-RPC message to a session's stream as an event (numbered by the stream).
pub fn push(log: &crate::session::EventLog, message: &[u8]) {
    let id = log.id();
    log.push(|seq| event(id, seq, message));
}

/// The priming event (SEP-1699): an id and an empty `data`, with the reconnect delay, so the
/// client can resume this stream even if the connection drops before the first message.
pub fn priming(stream: StreamId, seq: u64, retry: Duration) -> Bytes {
    Bytes::from(format!(
        "id: {stream}-{seq}\nretry: {}\ndata: \n\n",
        retry.as_millis()
    ))
}

/// A bare `retry:` field, sent before the server closes a connection it wants resumed.
pub fn retry(delay: Duration) -> Bytes {
    Bytes::from(format!("retry: {}\n\n", delay.as_millis()))
}

/// Parses a `Last-Event-ID` we issued into (stream, seq).
pub fn parse_event_id(s: &str) -> Option<(StreamId, u64)> {
    let (stream, seq) = s.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// What one SSE connection needs besides its stream.
pub struct Follow {
    /// Interval of keep-alive comments.
    pub keep_alive: Duration,
    /// The reconnect delay announced when the server closes the connection.
    pub retry: Duration,
    /// Cancelled when the server drains: the connection gets a jittered `retry:` and ends.
    /// `None` for a POST's stream, which carries answers: it ends when they are all sent (a
    /// drain answers every request, see `SessionTable::close_all`), never cut short by the drain.
    pub shutdown: Option<CancellationToken>,
    /// Cancelled when the session closes: the connection ends.
    pub session_closed: CancellationToken,
    /// Keeps the session from being reaped while the connection is open.
    pub busy: BusyGuard,
    /// Stay open (keep-alives only) once the stream is finished, instead of ending. Used for a
    /// GET resuming a POST stream: the SDK clients treat a resumed stream that ends without a
    /// result as a reason to resume again, at once and forever.
    pub linger: bool,
}

/// The keep-alive timer of one SSE connection: first tick one `period` from now (not at once),
/// and a late tick delays the next rather than bursting.
pub fn keep_alive_timer(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Counts an open SSE connection for `/metrics` while it lives.
#[derive(Debug)]
pub struct OpenStream;

impl Default for OpenStream {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenStream {
    /// Counts one more open stream until dropped.
    pub fn new() -> OpenStream {
        crate::telemetry::metrics().sse_streams_open.inc();
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        crate::telemetry::metrics().sse_streams_open.dec();
    }
}

struct State {
    reader: ReaderGuard,
    opts: Arc<FollowOpts>,
    keep_alive: tokio::time::Interval,
    first: Option<Bytes>,
    done: bool,
    linger: bool,
    _busy: BusyGuard,
    _open: OpenStream,
}

struct FollowOpts {
    retry: Duration,
    shutdown: Option<CancellationToken>,
    session_closed: CancellationToken,
}

/// The bytes of one SSE connection reading `reader`'s stream: `first` (if any), then events as
/// they come, keep-alives in between, until the stream finishes, the server asks the connection
/// to close, the session closes or the server drains.
pub fn follow(
    reader: ReaderGuard,
    first: Option<Bytes>,
    f: Follow,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let keep_alive = keep_alive_timer(f.keep_alive);
    let state = State {
        reader,
        opts: Arc::new(FollowOpts {
            retry: f.retry,
            shutdown: f.shutdown,
            session_closed: f.session_closed,
        }),
        keep_alive,
        first,
        done: false,
        linger: f.linger,
        _busy: f.busy,
        _open: OpenStream::new(),
    };
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if let Some(first) = st.first.take() {
            return Some((first, st));
        }
        let opts = Arc::clone(&st.opts);
        loop {
            // A drain is checked first: closing the sessions also finishes their streams, and a
            // client must get its retry hint whichever it sees first.
            if opts.shutdown.as_ref().is_some_and(|t| t.is_cancelled()) {
                st.done = true;
                return Some((retry(jittered(opts.retry)), st));
            }
            let log = Arc::clone(st.reader.log());
            let changed = log.notify_future();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match st.reader.read() {
                Read::Events(bytes) => {
                    st.keep_alive.reset();
                    return Some((bytes, st));
                }
                Read::Finished if !st.linger => return None,
                Read::Finished => {}
                Read::Kicked => {
                    st.done = true;
                    return Some((retry(opts.retry), st));
                }
                Read::Idle => {}
            }
            tokio::select! {
                biased;
                () = drained(opts.shutdown.as_ref()) => {}
                () = opts.session_closed.cancelled() => return None,
                () = &mut changed => {}
                _ = st.keep_alive.tick() => return Some((Bytes::from_static(KEEP_ALIVE), st)),
            }
        }
    })
}

/// Fires when `shutdown` is cancelled; never without one.
async fn drained(shutdown: Option<&CancellationToken>) {
    match shutdown {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

/// `base` plus up to 100 % random extra, so that clients told to come back do not all come back
/// in the same instant.
pub fn jittered(base: Duration) -> Duration {
    let ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(ms + fastrand::u64(0..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_framed_with_stream_scoped_ids() {
        assert_eq!(
            &event(3, 7, br#"{"a":1}"#)[..],
            b"id: 3-7\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &priming(1, 1, Duration::from_secs(3))[..],
            b"id: 1-1\nretry: 3000\ndata: \n\n"
        );
        assert_eq!(parse_event_id("3-7"), Some((3, 7)));
        for bad in ["", "3", "x-1", "1-x", "-1", "1--1"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn jitter_stays_within_one_to_two_times_the_base() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(1000) && d <= Duration::from_millis(2000));
        }
    }
}
