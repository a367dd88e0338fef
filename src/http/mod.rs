//! HTTP: the listener, connections, graceful shutdown and routing.
//!
//! One hyper connection per accepted socket (HTTP/1.1, or h2c when the client opens with the
//! HTTP/2 preface), `TCP_NODELAY` on every socket (small SSE and JSON writes must not wait for
//! Nagle), a header-read timeout, and a cap on concurrent connections. Routes: the MCP endpoint
//! (`/mcp` by default), `/healthz`, `/metrics`. Everything MCP-specific is decided by
//! [`crate::mcp`].

mod body;
mod drain;
mod forward;
mod head_timeout;
mod routes;
mod stoppable;
mod translate;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use body::Body;
pub use forward::Forwarder;
use head_timeout::{HeadTimeout, Readiness, Tracked};
pub use routes::Router;
use stoppable::Stoppable;

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// How long connections get to send the answers made at the drain's deadline and close.
const FLUSH: Duration = Duration::from_secs(1);

/// Accepts connections until `stop` is cancelled, then lets open connections finish their
/// requests within `finish_within` (SSE bodies end on their own when the server's shutdown token
/// fires). A request still waiting then — for a relayed answer, or for its body — is answered
/// 503 ([`drain::Deadline`]; the requests inside sessions are answered by the sessions' drain),
/// so none is left cut: a connection still sending after [`FLUSH`] more is counted as cut
/// (`mcpd_http_truncated_responses_total{cause="drain"}`), and the log line says how many
/// connections and requests were open at the stop and how many were answered 503 or cut.
pub async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    opts: ServerOptions,
    stop: CancellationToken,
    finish_within: Duration,
) {
    let connections = TaskTracker::new();
    let book = Arc::new(drain::DrainBook::default());
    let permits = Arc::new(Semaphore::new(opts.max_connections));
    let mut h1 = http1::Builder::new();
    // No timer: the header read timeout is kept per connection by `HeadTimeout`, not by hyper's
    // timer per request.
    h1.header_read_timeout(None::<Duration>).keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new());
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
            () = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !is_transient(&e) {
                        tracing::error!(error = %e, "accept failed; pausing 1s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY failed");
        }
        let router = Arc::clone(&router);
        let readiness = Readiness::new();
        let marks = Arc::clone(&readiness);
        let ends_with = Arc::clone(&readiness).ends_with();
        let noted = (Arc::clone(&readiness), Arc::clone(&book));
        let on_stop = move || noted.1.note(noted.0);
        let service = service_fn(move |req| {
            // The connection counts as waiting for a request head again once the response body
            // is written and dropped.
            let in_flight = marks.begin();
            let head = req.method() == hyper::Method::HEAD;
            let router = Arc::clone(&router);
            // Boxed: hyper keeps room for one request future per connection for as long as the
            // connection lives. An open SSE stream would hold that room for hours; boxed, it is
            // freed with the request.
            async move {
                let response = Box::pin(router.handle(req)).await;
                // Replies go out after the other connections that are ready have been read: under
                // load they leave in bursts and a client that waits for several wakes once for
                // them, not once per reply (the way Redis writes replies before its loop sleeps).
                // Measured with the bench on 2 vCPUs: waking the load generator per reply cost
                // more CPU per call (cross-CPU wake-ups) than this one extra poll.
                tokio::task::yield_now().await;
                Ok::<_, std::convert::Infallible>({
                    let status = response.status().as_u16();
                    response.map(|b| Tracked::new(b, head, status, in_flight))
                })
            }
        });
        let (h1, h2) = (h1.clone(), h2.clone());
        let (wait, stop) = (opts.header_read_timeout, stop.clone());
        connections.spawn(
            async move {
                let (_permit, _ends_with) = (permit, ends_with);
                let opens = tokio::select! {
                    opens = opens_h2(&stream, wait) => opens,
                    // Shutting down before the first byte: nothing to finish.
                    () = stop.cancelled() => return,
                };
                let result = match opens {
                    Ok(false) => {
                        let io = HeadTimeout::new(TokioIo::new(stream), readiness, wait);
                        let conn = h1.serve_connection(io, service);
                        Stoppable::new(conn, stop, |c| c.graceful_shutdown(), on_stop).await
                    }
                    Ok(true) => {
                        let conn = h2.serve_connection(TokioIo::new(stream), service);
                        Stoppable::new(conn, stop, |c| c.graceful_shutdown(), on_stop).await
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "no request arrived");
                        return;
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
    drop(listener);
    connections.close();
    // Every connection saw `stop` and is finishing its request in flight (an idle one closes).
    let finished = tokio::select! {
        () = connections.wait() => true,
        () = tokio::time::sleep(finish_within) => false,
    };
    if !finished {
        // Whatever has no answer yet gets a whole 503 now, rather than being cut at the exit.
        router.deadline().fire();
        tokio::select! {
            () = connections.wait() => {}
            () = tokio::time::sleep(FLUSH) => {}
        }
    }
    let book = book.summary();
    let answered_503 = router.deadline().answered();
    // Open still: each is sending an answer (an idle connection closed at the stop, a busy one
    // as soon as its answer was sent), which the exit cuts.
    let cut = book.open;
    tracing::info!(
        connections = book.connections,
        requests = book.requests,
        answered_503,
        cut,
        "connections drained"
    );
    if cut > 0 {
        crate::telemetry::metrics().truncated("drain", cut as u64);
        tracing::warn!(
            cut,
            "requests were still in flight when the drain ended: their answers are cut off"
        );
    }
}

/// The first bytes of an HTTP/2 connection with prior knowledge (h2c).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the client opens with the HTTP/2 preface, read with `peek` so that hyper gets the
/// socket untouched. (hyper-util's auto builder reads the preface itself and hands hyper a
/// rewinding wrapper; hyper's first read then returns just those bytes and its read buffer grows
/// to 16 KiB, which every idle keep-alive connection and open SSE stream kept.) A request line
/// differs from the preface within its first bytes; only a client that sends a partial preface
/// and stalls makes this wait, at most `wait` (the header read timeout).
async fn opens_h2(stream: &tokio::net::TcpStream, wait: Duration) -> std::io::Result<bool> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false); // hyper reports a closed or malformed connection its own way
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // A partial preface: peek would return the same bytes at once, so wait for more.
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        tokio::time::sleep_until(deadline.min(now + Duration::from_millis(5))).await;
    }
}

/// Accept errors that concern one connection, not the listener.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}
