//! Running a 2026-07-28 `tools/call` (or a `prompts/get` whose prompt asks the client
//! something, see `call` for what comes before) and answering it.
//!
//! The call runs inside the request: its future belongs to the reply, so a client that closes
//! the connection drops it, and that is the cancellation the spec asks for (nothing more is sent
//! for it). Most calls finish at their first poll and are answered with plain JSON. A call that
//! reports progress or (opted-in) logs before finishing turns the reply into an SSE stream that
//! carries them, then the result. A call that asks the client something it has no answer for
//! ends its round: the reply is an `InputRequiredResult` whose sealed `requestState` carries the
//! answers used so far to whichever node serves the next round.

use std::future::{poll_fn, Future as _};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::envelope::Envelope;
use super::state::Binding;
use crate::catalog::{Emit, EmitReceiver, Emits, Inputs, LogLevel, ToolResult};
use crate::mcp::bus::Change;
use crate::mcp::era::Era;
use crate::mcp::jsonrpc::{self, ErrorCode, RequestId, RpcError};
use crate::mcp::shared::Shared;
use crate::mcp::transport::Reply;
use crate::mcp::work::{Answer, Work};
use crate::mcp::{driver, sse};

/// Polls the call once: its answer, `Blocked` once it waits for answers this round lacks, `None`
/// while it runs. A panic is the call's outcome, not the connection's.
fn poll_work(work: &mut Work, inputs: &Inputs, cx: &mut std::task::Context<'_>) -> Option<Polled> {
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::pin::Pin::new(&mut *work).poll(cx)
    }));
    match polled {
        Ok(Poll::Ready(a)) => Some(Polled::Done(a)),
        Ok(Poll::Pending) if inputs.blocked() => Some(Polled::Blocked),
        Ok(Poll::Pending) => None,
        Err(_) => Some(Polled::Panicked),
    }
}

/// How a poll of the call left it.
enum Polled {
    Done(Answer),
    /// It asked the client something this round cannot answer (or got an invalid answer).
    Blocked,
    Panicked,
}

/// The next thing to send.
enum Step {
    /// An SSE event (a notification, or a keep-alive comment), before the answer.
    Frame(Bytes),
    /// The answer, with the HTTP status it gets as a JSON reply.
    Last(u16, Bytes),
}

/// One modern call from its setup to its answer (see the module).
pub(crate) struct Run {
    shared: Arc<Shared>,
    id: RequestId,
    fut: Option<Work>,
    /// The call is a prompt's (its failures are errors, not `isError` results).
    prompt: bool,
    emits: Option<Arc<Emits>>,
    rx: Option<EmitReceiver>,
    inputs: Arc<Inputs>,
    binding: Binding,
    log_level: Option<LogLevel>,
    /// Cancelled when the run ends, however it ends: tools waiting on `cancelled()` stop.
    token: CancellationToken,
    /// `session.request_timeout` from the first wait (a call that finishes at once never reads
    /// the clock).
    deadline: Option<tokio::time::Instant>,
    last: Option<(u16, Bytes)>,
    keep_alive: Option<tokio::time::Interval>,
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.fut.is_some() {
            // The reply was dropped before the call finished: the client closed its stream.
            tracing::debug!(era = %Era::Modern, target = %self.binding.target, request_id = %self.id, "request cancelled: the client closed its stream");
            crate::telemetry::metrics().modern_cancelled.inc();
        }
        // Whatever the call left waiting on its cancellation (a question of this round, a task
        // it started) stops; a call that ended at once left nothing.
        if self.fut.is_some() || self.deadline.is_some() {
            self.token.cancel();
        }
    }
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        shared: &Arc<Shared>,
        id: RequestId,
        env: &Envelope,
        fut: Work,
        emits: Arc<Emits>,
        inputs: Arc<Inputs>,
        binding: Binding,
        token: CancellationToken,
    ) -> Run {
        Run {
            shared: Arc::clone(shared),
            id,
            prompt: fut.is_prompt(),
            fut: Some(fut),
            emits: Some(emits),
            rx: None,
            inputs,
            binding,
            log_level: env.log_level,
            token,
            deadline: None,
            last: None,
            keep_alive: None,
        }
    }

    /// Answers the request: JSON when nothing comes before the answer, else an SSE stream.
    ///
    /// Most calls finish at their first poll with nothing sent before their answer: they are
    /// answered here, in the request's own future, without a timer, a select or a stream. Only a
    /// call that is still running waits, in a future of its own (boxed: its timers and channel
    /// would otherwise make every request's future larger).
    ///
    /// Not an `async fn`, which would hold the run twice (as its argument and as a local).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn reply(self) -> impl std::future::Future<Output = Reply> + Send {
        let mut run = self;
        async move {
            if let Some(work) = run.fut.as_mut() {
                let inputs = &run.inputs;
                let first = poll_fn(|cx| Poll::Ready(poll_work(work, inputs, cx))).await;
                if let Some(polled) = first {
                    run.fut = None;
                    run.last = Some(run.finish(Ok(polled)));
                }
            }
            match run.ready() {
                Some(step) => run.answer(step),
                None => Box::pin(run.wait()).await,
            }
        }
    }

    /// Waits for the first thing to send, and answers with it.
    async fn wait(mut self) -> Reply {
        let step = self.next().await;
        self.answer(step)
    }

    /// The reply that starts with `step`: the JSON answer, or a stream of `step` and what follows.
    fn answer(mut self, step: Step) -> Reply {
        match step {
            Step::Last(status, body) => {
                let mut reply = Reply::json(body);
                reply.status = status;
                reply
            }
            Step::Frame(first) => {
                self.keep_alive = Some(sse::keep_alive_timer(self.shared.limits.keep_alive));
                let open = sse::OpenStream::new();
                let frames = stream::unfold(
                    (Some(self), Some(first), open),
                    |(run, first, open)| async move {
                        if let Some(f) = first {
                            return Some((f, (run, None, open)));
                        }
                        let mut run = run?;
                        match run.next().await {
                            Step::Frame(f) => Some((f, (Some(run), None, open))),
                            Step::Last(_, body) => Some((sse::data(&body), (None, None, open))),
                        }
                    },
                );
                Reply::sse(Box::pin(frames))
            }
        }
    }

    /// What can be sent now without waiting: a notification already emitted, else the answer.
    fn ready(&mut self) -> Option<Step> {
        if let Some(frame) = self.waiting_frame() {
            return Some(Step::Frame(frame));
        }
        let (status, body) = self.last.take()?;
        Some(Step::Last(status, body))
    }

    /// Waits for the next notification or the answer.
    async fn next(&mut self) -> Step {
        loop {
            if let Some(step) = self.ready() {
                return step;
            }
            let Some(work) = self.fut.as_mut() else {
                // Not reached: `last` is set whenever `fut` is taken.
                return Step::Last(500, Bytes::new());
            };
            let inputs = &self.inputs;
            let polled = poll_fn(|cx| match poll_work(work, inputs, cx) {
                Some(p) => Poll::Ready(p),
                None => Poll::Pending,
            });
            let timeout = self.shared.limits.request_timeout;
            let deadline = *self
                .deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + timeout);
            let rx = &mut self.rx;
            let emits = &self.emits;
            let stop = &self.shared.stop_requests;
            let outcome = tokio::select! {
                biased;
                p = polled => Some(Ok(p)),
                e = recv(rx, emits) => match e {
                    Some(e) => {
                        if let Some(f) = self.frame(*e) {
                            return Step::Frame(sse::data(&f));
                        }
                        None
                    }
                    None => None,
                },
                () = stop.cancelled() => Some(Err(Stopped::Drain)),
                () = tokio::time::sleep_until(deadline) => Some(Err(Stopped::Timeout)),
                _ = tick(&mut self.keep_alive) => return Step::Frame(Bytes::from_static(sse::KEEP_ALIVE)),
            };
            if let Some(outcome) = outcome {
                self.fut = None;
                self.last = Some(self.finish(outcome));
            }
        }
    }

    /// A notification already waiting in the channel, as an SSE event; changes are published
    /// on the way.
    fn waiting_frame(&mut self) -> Option<Bytes> {
        if self.rx.is_none() {
            // The channel is opened by the first emit; a call that sent nothing has none.
            let emits = self.emits.as_ref().filter(|e| e.opened())?;
            self.rx = emits.receiver();
        }
        while let Some(e) = self.rx.as_mut().and_then(|rx| rx.try_recv().ok()) {
            if let Some(frame) = self.frame(*e) {
                return Some(sse::data(&frame));
            }
        }
        None
    }

    /// The JSON-RPC message an emit becomes on this request's stream, if any.
    fn frame(&mut self, e: Emit) -> Option<Bytes> {
        match e {
            Emit::Progress {
                token,
                progress,
                total,
                message,
            } => Some(jsonrpc::notification(
                "notifications/progress",
                driver::progress_params(token, progress, total, message),
            )),
            Emit::Log {
                level,
                logger,
                data,
            } => self.log_level.filter(|min| level >= *min).map(|_| {
                jsonrpc::notification(
                    "notifications/message",
                    driver::log_params(level, logger, data),
                )
            }),
            Emit::ResourceUpdated { uri } => {
                self.shared.bus.publish(Change::ResourceUpdated(uri.into()));
                None
            }
            Emit::ListChanged(kind) => {
                self.shared.bus.publish(Change::ListChanged(kind));
                None
            }
            // No session, no session stream, no resumption; server→client requests are never
            // emitted by a replayed call.
            Emit::SessionLog { .. } | Emit::CloseConnection | Emit::Request { .. } => None,
        }
    }

    /// The answer of a call that could not finish: an `isError` result for a tool, an internal
    /// error for a prompt.
    fn failed(&self, text: String) -> (u16, Bytes) {
        if self.prompt {
            return (200, Answer::Failed(text).encode(&self.id));
        }
        let fields = self.shared.modern.stamps.fields();
        (
            200,
            jsonrpc::response(&self.id, ToolResult::error(text).with_fields(&fields)),
        )
    }

    /// The answer of a run that ended.
    fn finish(&self, outcome: Result<Polled, Stopped>) -> (u16, Bytes) {
        let stamps = &self.shared.modern.stamps;
        let round = self.inputs.outcome();
        if let Some(why) = round.invalid {
            return error(
                400,
                &self.id,
                ErrorCode::INVALID_PARAMS,
                format!("Invalid params: {why}"),
            );
        }
        let polled = match outcome {
            Ok(p) => p,
            Err(stopped) => return self.failed(stopped.text(&self.shared)),
        };
        match polled {
            Polled::Blocked => {
                let requests: Map<String, Value> = round
                    .asked
                    .into_iter()
                    .map(|r| (r.key, json!({"method": r.method, "params": r.params})))
                    .collect();
                let state = self
                    .shared
                    .modern
                    .keys()
                    .seal(&self.binding, round.used.into_iter().collect());
                let mut result = json!({
                    "inputRequests": requests,
                    "requestState": state,
                });
                if let Value::Object(m) = &mut result {
                    m.insert(
                        "_meta".into(),
                        json!({ super::results::SERVER_INFO_KEY: stamps.server_info() }),
                    );
                    m.insert("resultType".into(), json!("input_required"));
                }
                (200, jsonrpc::response(&self.id, result))
            }
            Polled::Done(Answer::Tool(result)) => match result.missing_capability() {
                Some(cap) => {
                    let e = RpcError::new(
                        ErrorCode::MISSING_CAPABILITY,
                        format!("Missing required client capability: {}", cap.key()),
                    )
                    .with_data(json!({"requiredCapabilities": { cap.key(): {} }}));
                    (400, jsonrpc::error_response(Some(&self.id), &e))
                }
                None => (
                    200,
                    jsonrpc::response(&self.id, result.with_fields(&stamps.fields())),
                ),
            },
            Polled::Done(Answer::Prompt(Ok(result))) => {
                (200, jsonrpc::response(&self.id, stamps.complete(result)))
            }
            Polled::Done(Answer::Prompt(Err(message))) => {
                error(200, &self.id, ErrorCode::INVALID_PARAMS, message)
            }
            Polled::Done(failed @ Answer::Failed(_)) => (200, failed.encode(&self.id)),
            Polled::Panicked => {
                tracing::error!(era = %Era::Modern, target = %self.binding.target, "tool panicked");
                self.failed("the tool failed unexpectedly (see the server log)".to_owned())
            }
        }
    }
}

fn error(status: u16, id: &RequestId, code: ErrorCode, message: String) -> (u16, Bytes) {
    (
        status,
        jsonrpc::error_response(Some(id), &RpcError::new(code, message)),
    )
}

/// Why a run was ended before its call finished.
enum Stopped {
    /// This node's drain ran out of `shutdown.request_grace`.
    Drain,
    /// `session.request_timeout` passed.
    Timeout,
}

impl Stopped {
    fn text(&self, shared: &Shared) -> String {
        match self {
            Stopped::Drain => format!(
                "the call was stopped: node {} shut down before it finished \
                 (shutdown.request_grace); call again",
                shared.node
            ),
            Stopped::Timeout => format!(
                "the tool did not finish within session.request_timeout ({}s)",
                shared.limits.request_timeout.as_secs()
            ),
        }
    }
}

/// The next emit; the channel is opened (and its receiver taken) on the first wait, since a call
/// that never waits never needs it.
async fn recv(rx: &mut Option<EmitReceiver>, emits: &Option<Arc<Emits>>) -> Option<Box<Emit>> {
    if rx.is_none() {
        *rx = emits.as_ref().and_then(|e| e.receiver());
    }
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn tick(keep_alive: &mut Option<tokio::time::Interval>) {
    match keep_alive {
        Some(k) => {
            k.tick().await;
        }
        None => std::future::pending().await,
    }
}
