//! The handle a tool runs with: who is calling, and the way back to the client.
//!
//! Everything a tool sends travels as an [`Emit`] over a bounded channel to the protocol layer,
//! which turns it into JSON-RPC on the right SSE stream. Sends wait when the channel is full, so a
//! tool that reports progress faster than the client reads is slowed down, not buffered without
//! bound. A tool never sees HTTP.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Facts about the caller a tool may report (`node_info`) or use.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// This node's id.
    pub node: Arc<str>,
    /// The session the call belongs to; `None` for a sessionless (2026-07-28) request.
    pub session_id: Option<Arc<str>>,
    /// The protocol version of the request (its session's, or the one it carries).
    pub protocol_version: &'static str,
    /// The client's self-reported name and version.
    pub client_name: Arc<str>,
    /// When this process started.
    pub started: Instant,
    /// Who the request is from, as its verified token says (`auth` on): a tool may act for it.
    pub principal: Option<crate::auth::Principal>,
}

/// A capability the client may have declared (at `initialize`, or in a request's `_meta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCapability {
    Sampling,
    Elicitation,
    Roots,
}

impl ClientCapability {
    /// The key in `ClientCapabilities`.
    pub fn key(self) -> &'static str {
        match self {
            ClientCapability::Sampling => "sampling",
            ClientCapability::Elicitation => "elicitation",
            ClientCapability::Roots => "roots",
        }
    }
}

/// Syslog severities used by `logging/setLevel` and `notifications/message`, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log level name that is not one of the eight the spec defines.
#[derive(Debug, thiserror::Error)]
#[error("unknown log level {0:?}")]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            other => return Err(UnknownLogLevel(other.to_owned())),
        })
    }
}

/// Why a server→client request got no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The client did not declare the capability.
    #[error("the client did not declare the {} capability", .0.key())]
    Unsupported(ClientCapability),
    /// The client answered with a JSON-RPC error.
    #[error("the client answered with error {code}: {message}")]
    Rejected { code: i64, message: String },
    /// The call was cancelled while waiting.
    #[error("the request was cancelled")]
    Cancelled,
    /// The client did not answer within the request timeout.
    #[error("the client did not answer in time")]
    Timeout,
    /// The session ended while waiting.
    #[error("the session was closed")]
    Closed,
}

/// A list whose changes clients can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl ListKind {
    /// The notification's method.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources => "notifications/resources/list_changed",
        }
    }
}

/// Something a running call sends towards the client.
#[derive(Debug)]
pub enum Emit {
    /// `notifications/progress` for the call's progress token, on the call's own stream.
    Progress {
        token: Value,
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    },
    /// `notifications/message` related to the call, on the call's own stream.
    Log {
        level: LogLevel,
        logger: Option<String>,
        data: Value,
    },
    /// A server→client request (`sampling/createMessage`, `elicitation/create`, `roots/list`),
    /// sent on the call's own stream; the client's POSTed response is delivered to `reply`.
    Request {
        method: &'static str,
        params: Value,
        reply: oneshot::Sender<Result<Value, RequestError>>,
    },
    /// `notifications/message` unrelated to the call: it goes on the session's standalone (GET)
    /// stream.
    SessionLog { level: LogLevel, data: Value },
    /// `notifications/resources/updated` for every subscriber of `uri` (sessions and listeners).
    ResourceUpdated { uri: String },
    /// `notifications/{tools,prompts,resources}/list_changed` for every listener that asked.
    ListChanged(ListKind),
    /// Close the call's SSE connection now, without ending its stream: the client reconnects
    /// with `Last-Event-ID` after `retry` and receives the rest (SEP-1699 polling).
    CloseConnection,
}

/// The sending half of a call's emits. Boxed: emits are rare and a channel allocates room for
/// 32 of them up front, so a small slot keeps that per-call allocation small.
pub type EmitSender = mpsc::Sender<Box<Emit>>;

/// The receiving half of a call's emits (held by the protocol layer).
pub type EmitReceiver = mpsc::Receiver<Box<Emit>>;

/// Capacity of a POST's emit channel: a tool that gets this far ahead of the client waits.
const EMIT_CAPACITY: usize = 32;

/// The emit channel of one POST's tool calls (the calls of a batch share it), opened by the
/// first emit or when the protocol layer takes the receiver. Most calls send nothing before their
/// result, and a tokio channel costs an over-aligned allocation (`posix_memalign`) and its first
/// block: about 1.2k instructions per `tools/call`, a twentieth of the whole request.
///
/// Invariant: the receiver is taken at most once, by the one reader (the protocol layer).
#[derive(Default)]
pub struct Emits {
    chan: OnceLock<(EmitSender, Mutex<Option<EmitReceiver>>)>,
}

impl Emits {
    /// A channel that is not open yet.
    pub fn new() -> Arc<Emits> {
        Arc::new(Emits::default())
    }

    fn chan(&self) -> &(EmitSender, Mutex<Option<EmitReceiver>>) {
        self.chan.get_or_init(|| {
            let (tx, rx) = mpsc::channel(EMIT_CAPACITY);
            (tx, Mutex::new(Some(rx)))
        })
    }

    /// Whether the channel is open: a call sent something (or the receiver was taken).
    pub fn opened(&self) -> bool {
        self.chan.get().is_some()
    }

    /// The receiving half, opening the channel if no call has; `None` once taken. It sees the
    /// channel closed once every clone of this `Emits` is gone (every call has ended), so the
    /// reader should drop its own clone after taking it.
    pub fn receiver(&self) -> Option<EmitReceiver> {
        self.chan()
            .1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// How a call's questions to the client get their answers.
#[derive(Clone)]
pub enum Asking {
    /// As server→client requests on the call's own stream, each answer awaited (a legacy
    /// session: the client POSTs its response while the call waits).
    Live,
    /// From what the client sent with this very request (2026-07-28 multi round-trip requests):
    /// a question without an answer there ends this round; the protocol layer returns it to the
    /// client, which asks again with the answer, and the tool runs again from the start.
    Replayed(Arc<Inputs>),
}

/// A question a replayed call could not answer from its request: it goes back to the client as
/// one entry of `inputRequests`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequest {
    /// The entry's key, chosen by the tool; the client answers under the same key.
    pub key: String,
    /// `elicitation/create`, `sampling/createMessage` or `roots/list`.
    pub method: &'static str,
    pub params: Value,
}

/// The answers a request carries for its call's questions (earlier rounds' answers and this
/// round's `inputResponses`), and what the call did with them.
///
/// Invariant: the tool decides what it asks only from its arguments and earlier answers, so a
/// run that finds every answer it needs asks the same questions, under the same keys, as the
/// runs before it.
#[derive(Debug, Default)]
pub struct Inputs {
    answers: serde_json::Map<String, Value>,
    round: Mutex<Round>,
}

/// What one run of a replayed call asked and used.
#[derive(Debug, Default)]
struct Round {
    asked: Vec<InputRequest>,
    used: Vec<(String, Value)>,
    invalid: Option<String>,
}

/// What a replayed call's run came to, besides its result.
#[derive(Debug, Default)]
pub struct RoundOutcome {
    /// Questions still without an answer (`inputRequests`), in the order they were asked.
    pub asked: Vec<InputRequest>,
    /// The answers the run used: what the next round's state must carry.
    pub used: Vec<(String, Value)>,
    /// An answer that is not a valid response to its question: the request is in error.
    pub invalid: Option<String>,
}

impl Inputs {
    /// The answers known for this request, by key.
    pub fn new(answers: serde_json::Map<String, Value>) -> Arc<Inputs> {
        Arc::new(Inputs {
            answers,
            round: Mutex::new(Round::default()),
        })
    }

    fn round(&self) -> std::sync::MutexGuard<'_, Round> {
        self.round.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the run asked something it has no answer for, or got an invalid answer: the
    /// call cannot finish in this round.
    pub fn blocked(&self) -> bool {
        let r = self.round();
        !r.asked.is_empty() || r.invalid.is_some()
    }

    /// Takes what the run asked and used.
    pub fn outcome(&self) -> RoundOutcome {
        let mut r = self.round();
        RoundOutcome {
            asked: std::mem::take(&mut r.asked),
            used: std::mem::take(&mut r.used),
            invalid: r.invalid.take(),
        }
    }
}

/// Whether `answer` has the shape of a result of `method` (`ElicitResult`, `CreateMessageResult`,
/// `ListRootsResult`): the client's answers are input like any other.
fn check_answer(method: &str, answer: &Value) -> Result<(), String> {
    let ok = match method {
        "elicitation/create" => {
            matches!(
                answer.get("action").and_then(Value::as_str),
                Some("accept" | "decline" | "cancel")
            ) && answer.get("content").is_none_or(Value::is_object)
        }
        "sampling/createMessage" => {
            answer.get("role").is_some_and(Value::is_string)
                && answer
                    .get("content")
                    .is_some_and(|c| c.is_object() || c.is_array())
        }
        "roots/list" => answer.get("roots").is_some_and(Value::is_array),
        _ => answer.is_object(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the answer to {method} is not a valid {method} result"
        ))
    }
}

/// The handle passed to a tool.
pub struct Call {
    info: CallInfo,
    out: Arc<Emits>,
    cancel: CancellationToken,
    progress_token: Option<Value>,
    capabilities: [bool; 3],
    asking: Asking,
}

impl Call {
    /// Built by the protocol layer for each `tools/call`.
    pub fn new(
        info: CallInfo,
        out: Arc<Emits>,
        cancel: CancellationToken,
        progress_token: Option<Value>,
        capabilities: impl Fn(ClientCapability) -> bool,
    ) -> Call {
        let capabilities = [
            capabilities(ClientCapability::Sampling),
            capabilities(ClientCapability::Elicitation),
            capabilities(ClientCapability::Roots),
        ];
        Call {
            info,
            out,
            cancel,
            progress_token,
            capabilities,
            asking: Asking::Live,
        }
    }

    /// The same call, asking its questions the way `asking` says.
    pub fn asking(self, asking: Asking) -> Call {
        Call { asking, ..self }
    }

    /// Who is calling.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// True when the client declared `cap`.
    pub fn supports(&self, cap: ClientCapability) -> bool {
        match cap {
            ClientCapability::Sampling => self.capabilities[0],
            ClientCapability::Elicitation => self.capabilities[1],
            ClientCapability::Roots => self.capabilities[2],
        }
    }

    /// True when the client asked for progress (sent a `progressToken`).
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Resolves when the client cancels the call (`notifications/cancelled`, or closing a
    /// 2026-07-28 request's stream), the session closes or the server shuts down. Long-running
    /// tools select on it.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports progress; a no-op when the client sent no progress token.
    pub async fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) {
        if let Some(token) = &self.progress_token {
            self.emit(Emit::Progress {
                token: token.clone(),
                progress,
                total,
                message,
            })
            .await;
        }
    }

    /// Sends a log message related to this call (filtered by the client's log level).
    pub async fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        self.emit(Emit::Log {
            level,
            logger: logger.map(str::to_owned),
            data,
        })
        .await;
    }

    /// Sends a log message on the session's standalone stream, unrelated to this call.
    pub async fn log_to_session(&self, level: LogLevel, data: Value) {
        self.emit(Emit::SessionLog { level, data }).await;
    }

    /// Tells every subscriber of `uri` that it changed.
    pub async fn resource_updated(&self, uri: &str) {
        self.emit(Emit::ResourceUpdated {
            uri: uri.to_owned(),
        })
        .await;
    }

    /// Tells every listener that a list changed.
    pub async fn list_changed(&self, list: ListKind) {
        self.emit(Emit::ListChanged(list)).await;
    }

    /// Closes the SSE connection carrying this call (the client resumes with `Last-Event-ID`).
    pub async fn close_connection(&self) {
        self.emit(Emit::CloseConnection).await;
    }

    /// Asks the client something (`sampling/createMessage`, `elicitation/create`, `roots/list`)
    /// and waits for its answer, the call's cancellation, or the session's end. `key` names the
    /// question: a 2026-07-28 client answers it under that key in its next round (see
    /// [`Asking::Replayed`]), so a tool gives each of its questions its own key.
    pub async fn ask(
        &self,
        key: &str,
        method: &'static str,
        params: Value,
    ) -> Result<Value, RequestError> {
        let needs = match method {
            "sampling/createMessage" => Some(ClientCapability::Sampling),
            "elicitation/create" => Some(ClientCapability::Elicitation),
            "roots/list" => Some(ClientCapability::Roots),
            _ => None,
        };
        if let Some(cap) = needs {
            if !self.supports(cap) {
                return Err(RequestError::Unsupported(cap));
            }
        }
        match &self.asking {
            Asking::Live => self.ask_live(method, params).await,
            Asking::Replayed(inputs) => {
                {
                    let mut round = inputs.round();
                    match inputs.answers.get(key) {
                        Some(answer) => match check_answer(method, answer) {
                            Ok(()) => {
                                round.used.push((key.to_owned(), answer.clone()));
                                return Ok(answer.clone());
                            }
                            Err(why) => {
                                round
                                    .invalid
                                    .get_or_insert(format!("inputResponses.{key}: {why}"));
                            }
                        },
                        None => round.asked.push(InputRequest {
                            key: key.to_owned(),
                            method,
                            params,
                        }),
                    }
                }
                // This round ends here: the protocol layer sees the call blocked and drops it.
                self.cancel.cancelled().await;
                Err(RequestError::Cancelled)
            }
        }
    }

    /// Asks several questions at once: a 2026-07-28 client gets them all in one round.
    pub async fn ask_all(
        &self,
        questions: Vec<(&str, &'static str, Value)>,
    ) -> Vec<Result<Value, RequestError>> {
        futures_util::future::join_all(
            questions
                .into_iter()
                .map(|(key, method, params)| self.ask(key, method, params)),
        )
        .await
    }

    async fn ask_live(&self, method: &'static str, params: Value) -> Result<Value, RequestError> {
        let (reply, answer) = oneshot::channel();
        self.emit(Emit::Request {
            method,
            params,
            reply,
        })
        .await;
        tokio::select! {
            r = answer => r.unwrap_or(Err(RequestError::Closed)),
            () = self.cancel.cancelled() => Err(RequestError::Cancelled),
        }
    }

    async fn emit(&self, e: Emit) {
        // The receiver lives as long as the call's driver; when it is gone the call is being torn
        // down and there is nobody left to tell.
        tokio::select! {
            _ = self.out.chan().0.send(Box::new(e)) => {}
            () = self.cancel.cancelled() => {}
        }
    }
}
