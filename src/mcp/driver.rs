//! Runs the `tools/call` requests of one POST and decides how they are answered.
//!
//! The calls run in a task owned by the session (so a client that drops the connection does not
//! cancel them: in the legacy protocol only `notifications/cancelled` does). While no call has
//! sent anything before its result, the reply stays plain `application/json` — the cheap path
//! most calls take. The first progress notification, log message or server→client request turns
//! the reply into an SSE stream (a new stream of the session, primed for 2025-11-25 clients);
//! everything else of the POST, results included, then travels on it.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::bus::Change;
use super::jsonrpc::{self, ErrorCode, RequestId};
use super::shared::Shared;
use super::sse::{self, push};
use super::transport::Reply;
use super::work::{Answer, Work};
use crate::catalog::{Emit, EmitReceiver, Emits, LogLevel, ToolResult};
use crate::session::{EventLog, ReaderGuard, Session};

/// A `tools/call` (or an interactive `prompts/get`) ready to run.
pub(crate) struct PreparedCall {
    pub id: RequestId,
    pub token: CancellationToken,
    pub fut: Work,
}

/// A call that is over: which request, whether a prompt's, and how it ended.
struct Ended {
    id: RequestId,
    prompt: bool,
    outcome: Outcome,
}

/// How the HTTP side answers, decided by the driver.
enum Mode {
    Json(Bytes),
    Sse(ReaderGuard),
}

/// Runs `calls` (with `done`, the POST's already answered requests) and answers the POST.
///
/// Most tools answer without waiting for anything, so each call is first polled once right here.
/// When every call is then finished and none sent anything, the reply is plain JSON and no task,
/// channel or timer was spent on it. Otherwise the calls move to a driver task owned by the
/// session, which starts by sending what the finished ones emitted and their results.
///
/// Not an `async fn`, which would hold its arguments twice in every legacy call's future.
#[allow(clippy::manual_async_fn)]
pub(crate) fn run<'a>(
    shared: &'a Arc<Shared>,
    session: &'a Arc<Session>,
    calls: Vec<PreparedCall>,
    done: Vec<Bytes>,
    batch: bool,
    emits: Arc<Emits>,
) -> impl Future<Output = Reply> + Send + 'a {
    let mut done = done;
    async move {
        let mut finished = Vec::with_capacity(calls.len());
        let mut running = Vec::new();
        for mut call in calls {
            match poll_fn(|cx| Poll::Ready(poll_once(&mut call, cx))).await {
                Some(outcome) => finished.push(Ended {
                    prompt: call.fut.is_prompt(),
                    id: call.id,
                    outcome,
                }),
                None => running.push(call),
            }
        }
        if running.is_empty() && !emits.opened() {
            done.extend(
                finished
                    .into_iter()
                    .filter_map(|ended| answer(shared, session, ended)),
            );
            if session.is_closed() {
                return closed_under(session);
            }
            return Reply::json(jsonrpc::reply_body(done, batch));
        }
        // The calls still running may send from here on: the driver reads the channel, and only the
        // calls hold it open (so it closes when the last one ends).
        let emits = {
            let rx = emits.receiver();
            drop(emits);
            rx
        };
        let (mode_tx, mode_rx) = oneshot::channel();
        let span = tracing::debug_span!("tools/call", session_id = %session.id(), calls = running.len() + finished.len());
        let driver = Driver {
            shared: Arc::clone(shared),
            session: Arc::clone(session),
            stream: None,
            mode: Some(mode_tx),
            done,
        };
        let busy = session.hold();
        session.tasks().spawn(
            async move {
                let _busy = busy;
                driver.drive(running, finished, batch, emits).await;
            }
            .instrument(span),
        );
        match mode_rx.await {
            Ok(Mode::Json(body)) => Reply::json(body),
            Ok(Mode::Sse(reader)) => shared.sse_reply(session, reader, None, false, true),
            // The driver ended without answering: the session was closed under it.
            Err(_) if session.is_closed() => closed_under(session),
            Err(_) => Reply::error(
                500,
                ErrorCode::INTERNAL_ERROR,
                "Internal error: the request was lost",
            ),
        }
    }
}

/// The next emit, waiting for it; never, without a receiver (it was taken already, which the
/// one reader never does).
async fn recv(emits: &mut Option<EmitReceiver>) -> Option<Box<Emit>> {
    match emits {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// An emit that is already waiting.
fn try_recv(emits: &mut Option<EmitReceiver>) -> Option<Box<Emit>> {
    emits.as_mut().and_then(|rx| rx.try_recv().ok())
}

/// Polls a call's future once: its outcome if that settles it, `None` while it is still running.
fn poll_once(call: &mut PreparedCall, cx: &mut Context<'_>) -> Option<Outcome> {
    if call.token.is_cancelled() {
        return Some(Outcome::Cancelled);
    }
    let fut = &mut call.fut;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::pin::Pin::new(&mut *fut).poll(cx)
    })) {
        Ok(Poll::Ready(result)) => Some(Outcome::Done(result)),
        Ok(Poll::Pending) => None,
        Err(_) => Some(Outcome::Panicked),
    }
}

/// The answer to a request whose session closed while it ran (a DELETE, the idle reaper, or a
/// drain that could not wait for it): 404, as for any session that is gone, logged so that the
/// journal accounts for every 404 a node decides.
fn closed_under(session: &Session) -> Reply {
    tracing::info!(session_id = %session.id(), "the session closed while its request ran; answering 404");
    Reply::session_not_found()
}

/// Ends a finished call's request and encodes its response, unless the session is gone (then
/// nobody is left to answer).
fn answer(shared: &Shared, session: &Session, ended: Ended) -> Option<Bytes> {
    session.end_request(&ended.id);
    if session.is_closed() {
        return None;
    }
    let answer = ended.outcome.into_answer(
        ended.prompt,
        &shared.node,
        session,
        &ended.id,
        shared.limits.request_timeout,
    );
    Some(answer.encode(&ended.id))
}

struct Driver {
    shared: Arc<Shared>,
    session: Arc<Session>,
    stream: Option<Arc<EventLog>>,
    mode: Option<oneshot::Sender<Mode>>,
    done: Vec<Bytes>,
}

impl Driver {
    async fn drive(
        mut self,
        calls: Vec<PreparedCall>,
        finished: Vec<Ended>,
        batch: bool,
        mut emits: Option<EmitReceiver>,
    ) {
        // What the calls that already finished sent goes out before their results.
        while let Some(e) = try_recv(&mut emits) {
            self.emit(*e);
        }
        for ended in finished {
            self.finish(ended);
        }
        let timeout = self.shared.limits.request_timeout;
        let mut running: FuturesUnordered<_> =
            calls.into_iter().map(|c| run_call(c, timeout)).collect();
        loop {
            let ended = tokio::select! {
                next = running.next() => match next {
                    Some(finished) => finished,
                    None => break,
                },
                Some(e) = recv(&mut emits) => {
                    self.emit(*e);
                    continue;
                }
            };
            // What the call sent before returning goes out before its result.
            while let Some(e) = try_recv(&mut emits) {
                self.emit(*e);
            }
            self.finish(ended);
        }
        match (self.stream.take(), self.mode.take()) {
            (Some(stream), _) => stream.finish(),
            (None, Some(mode)) if !self.session.is_closed() => {
                let body = jsonrpc::reply_body(std::mem::take(&mut self.done), batch);
                let _ = mode.send(Mode::Json(body));
            }
            // Session closed: dropping `mode` makes the HTTP side answer 404.
            (None, _) => {}
        }
    }

    /// A call is over: its result is queued, unless the session is gone.
    fn finish(&mut self, ended: Ended) {
        if let Some(message) = answer(&self.shared, &self.session, ended) {
            self.deliver(message);
        }
    }

    /// Queues a finished response: on the stream if there is one, else for the JSON reply.
    fn deliver(&mut self, message: Bytes) {
        match &self.stream {
            Some(stream) => push(stream, &message),
            None => self.done.push(message),
        }
    }

    /// The stream of this POST, opened (and the HTTP reply switched to SSE) on first use.
    fn stream(&mut self) -> Arc<EventLog> {
        if let Some(s) = &self.stream {
            return Arc::clone(s);
        }
        let log = self.session.open_stream(self.shared.limits.replay_events);
        if self.session.params().protocol.primes_streams() {
            let (id, retry) = (log.id(), self.shared.limits.sse_retry);
            log.push(|seq| sse::priming(id, seq, retry));
        }
        for message in self.done.drain(..) {
            push(&log, &message);
        }
        let reader = log.attach(None);
        if let Some(mode) = self.mode.take() {
            // If the client is gone the reader is dropped with the message; the stream stays
            // resumable with Last-Event-ID.
            let _ = mode.send(Mode::Sse(reader));
        }
        self.stream = Some(Arc::clone(&log));
        log
    }

    fn emit(&mut self, e: Emit) {
        let session = Arc::clone(&self.session);
        match e {
            Emit::Progress {
                token,
                progress,
                total,
                message,
            } => {
                let params = progress_params(token, progress, total, message);
                push(
                    &self.stream(),
                    &jsonrpc::notification("notifications/progress", params),
                );
            }
            Emit::Log {
                level,
                logger,
                data,
            } => {
                if level >= session.log_level() {
                    let params = log_params(level, logger, data);
                    push(
                        &self.stream(),
                        &jsonrpc::notification("notifications/message", params),
                    );
                }
            }
            Emit::Request {
                method,
                params,
                reply,
            } => {
                let id = session.register_pending(reply);
                push(&self.stream(), &jsonrpc::request(id, method, params));
            }
            Emit::CloseConnection => self.stream().kick(),
            Emit::SessionLog { level, data } => {
                if level >= session.log_level() {
                    let params = json!({"level": level.as_str(), "data": data});
                    push(
                        session.standalone(),
                        &jsonrpc::notification("notifications/message", params),
                    );
                }
            }
            Emit::ResourceUpdated { uri } => {
                self.shared.bus.publish(Change::ResourceUpdated(uri.into()))
            }
            Emit::ListChanged(kind) => self.shared.bus.publish(Change::ListChanged(kind)),
        }
    }
}

/// Runs one call to its outcome. A panicking tool must not take the other calls of the POST, or
/// the reply, with it: the panic becomes that call's outcome.
async fn run_call(c: PreparedCall, timeout: Duration) -> Ended {
    let prompt = c.fut.is_prompt();
    let run = std::panic::AssertUnwindSafe(c.fut).catch_unwind();
    let outcome = tokio::select! {
        biased;
        () = c.token.cancelled() => Outcome::Cancelled,
        r = tokio::time::timeout(timeout, run) => match r {
            Err(_) => Outcome::TimedOut,
            Ok(Err(_)) => Outcome::Panicked,
            Ok(Ok(answer)) => Outcome::Done(answer),
        },
    };
    Ended {
        id: c.id,
        prompt,
        outcome,
    }
}

#[derive(Debug)]
enum Outcome {
    Done(Answer),
    Cancelled,
    TimedOut,
    Panicked,
}

impl Outcome {
    /// What the client is told: a call that did not finish is an `isError` result for a tool,
    /// an internal error for a prompt.
    fn into_answer(
        self,
        prompt: bool,
        node: &str,
        session: &Session,
        id: &RequestId,
        timeout: Duration,
    ) -> Answer {
        let text = match self {
            Outcome::Done(a) => return a,
            // Stopped by this node's drain (`shutdown.request_grace` ran out): a whole answer
            // that says so, on the request's own reply. The session itself goes on elsewhere.
            Outcome::Cancelled if session.is_stopping() => format!(
                "the call was stopped: node {node} shut down before it finished \
                 (shutdown.request_grace); the session continues on another node, call again"
            ),
            // Answered with a result rather than silence: the SDK clients resume a primed
            // stream that ends without a result, forever; they drop this late result.
            Outcome::Cancelled => "request cancelled by the client".to_owned(),
            Outcome::Panicked => {
                tracing::error!(session_id = %session.id(), request_id = %id, "tool panicked");
                "the tool failed unexpectedly (see the server log)".to_owned()
            }
            Outcome::TimedOut => format!(
                "the tool did not finish within session.request_timeout ({}s)",
                timeout.as_secs()
            ),
        };
        if prompt {
            Answer::Failed(text)
        } else {
            Answer::Tool(ToolResult::error(text))
        }
    }
}

/// The params of `notifications/progress`.
pub(crate) fn progress_params(
    token: Value,
    progress: f64,
    total: Option<f64>,
    message: Option<String>,
) -> Value {
    let mut params = json!({"progressToken": token, "progress": number(progress)});
    if let Some(total) = total {
        params["total"] = number(total);
    }
    if let Some(message) = message {
        params["message"] = Value::String(message);
    }
    params
}

/// The params of `notifications/message`.
pub(crate) fn log_params(level: LogLevel, logger: Option<String>, data: Value) -> Value {
    let mut params = json!({"level": level.as_str(), "data": data});
    if let Some(logger) = logger {
        params["logger"] = Value::String(logger);
    }
    params
}

/// Whole numbers as JSON integers (`3`, not `3.0`), as clients print them.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(fut: crate::catalog::BoxFuture<ToolResult>) -> (PreparedCall, CancellationToken) {
        let token = CancellationToken::new();
        let c = PreparedCall {
            id: RequestId::Num(1),
            token: token.clone(),
            fut: Work::Tool(fut),
        };
        (c, token)
    }

    #[test]
    fn one_poll_settles_instant_tools_and_leaves_waiting_ones_running() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let (mut c, _) = call(Box::pin(async { ToolResult::text("ok") }));
        assert!(matches!(poll_once(&mut c, &mut cx), Some(Outcome::Done(_))));
        let (mut c, _) = call(Box::pin(async { panic!("tool bug") }));
        assert!(matches!(
            poll_once(&mut c, &mut cx),
            Some(Outcome::Panicked)
        ));
        let (mut c, token) = call(Box::pin(std::future::pending()));
        assert!(poll_once(&mut c, &mut cx).is_none());
        token.cancel();
        assert!(matches!(
            poll_once(&mut c, &mut cx),
            Some(Outcome::Cancelled)
        ));
    }

    #[tokio::test]
    async fn a_panicking_tool_becomes_its_own_outcome() {
        let (c, _) = call(Box::pin(async { panic!("tool bug") }));
        let outcome = run_call(c, Duration::from_secs(1)).await.outcome;
        assert!(matches!(outcome, Outcome::Panicked), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_slow_tool_times_out_and_a_cancelled_one_stops() {
        let (c, _) = call(Box::pin(std::future::pending()));
        let outcome = run_call(c, Duration::from_millis(20)).await.outcome;
        assert!(matches!(outcome, Outcome::TimedOut), "{outcome:?}");
        let (c, token) = call(Box::pin(std::future::pending()));
        token.cancel();
        let outcome = run_call(c, Duration::from_secs(60)).await.outcome;
        assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
        let (c, _) = call(Box::pin(async { ToolResult::text("ok") }));
        let outcome = run_call(c, Duration::from_secs(1)).await.outcome;
        assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    }
}
