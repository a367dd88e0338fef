//! What every request of a node shares, whichever era: the session table, the catalog, the
//! limits, the drain's tokens, the change bus and the modern era's own state. Built once by the
//! [`Endpoint`](super::Endpoint); every protocol module reads it, none owns it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::bus::Bus;
use super::greeting::Greetings;
use super::modern::Modern;
use super::sse::{self, Follow};
use super::transport::{OriginPolicy, Reply};
use crate::auth::Principal;
use crate::catalog::{CallInfo, Catalog};
use crate::session::{OwnerTag, ReaderGuard, Session, SessionTable};

/// Limits applied to sessions and streams.
#[derive(Debug, Clone)]
pub struct Limits {
    pub keep_alive: Duration,
    pub sse_retry: Duration,
    pub replay_events: usize,
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// Serve a misrouted request through its live owner (`cluster.forward_misroutes`).
    pub forward_misroutes: bool,
    /// Continue a session whose owner is gone (`cluster.adopt_orphans`).
    pub adopt_orphans: bool,
    /// Required on forwarded requests when set (`cluster.peer_secret`).
    pub peer_secret: Option<String>,
}

/// State shared by every request.
pub(crate) struct Shared {
    pub table: Arc<SessionTable>,
    pub catalog: Catalog,
    pub node: Arc<str>,
    /// This node's tag in the session ids it mints.
    pub owner: OwnerTag,
    pub started: Instant,
    pub limits: Limits,
    pub policy: OriginPolicy,
    /// Cancelled when the server starts draining: new sessions are refused (503).
    pub draining: CancellationToken,
    /// Cancelled when open streams must end: each gets a jittered `retry:` first.
    pub closing: CancellationToken,
    /// What `initialize` answers, encoded once.
    pub greetings: Greetings,
    /// Resource and list changes, to the listeners of both eras.
    pub bus: Bus,
    /// The 2026-07-28 protocol's own state.
    pub modern: Modern,
    /// Cancelled when the drain's `shutdown.request_grace` is over: modern calls still running
    /// are stopped and answered so (sessions' calls are stopped by the session table).
    pub stop_requests: CancellationToken,
    /// The resource server (`auth.enabled`): the scopes a `tools/call` needs.
    pub auth: Option<Arc<crate::auth::Auth>>,
}

impl Shared {
    /// The 403 of a `tools/call` of `tool` whose token lacks a scope `[auth.tool_scopes]`
    /// requires for it; `None` when the call may go ahead (or `auth` is off).
    pub fn tool_refused(
        &self,
        principal: Option<&crate::auth::Principal>,
        tool: &str,
    ) -> Option<Reply> {
        let auth = self.auth.as_ref()?;
        let refusal = auth.tool_refusal(principal?, tool)?;
        crate::telemetry::metrics().auth(refusal.outcome.label());
        Some(Reply::refused(&refusal))
    }

    /// What a tool learns about its caller.
    pub fn call_info(&self, session: &Session, principal: Option<&Principal>) -> CallInfo {
        CallInfo {
            node: Arc::clone(&self.node),
            session_id: Some(Arc::clone(session.id_text())),
            protocol_version: session.params().protocol.as_str(),
            client_name: Arc::clone(&session.params().client_name),
            started: self.started,
            principal: principal.cloned(),
        }
    }

    /// An SSE reply reading `reader`, sending `first` before anything else. A GET's stream
    /// (`carries_answers` false) ends when the node drains; a POST's ends when its answers are
    /// sent.
    pub fn sse_reply(
        &self,
        session: &Arc<Session>,
        reader: ReaderGuard,
        first: Option<Bytes>,
        linger: bool,
        carries_answers: bool,
    ) -> Reply {
        let stream = sse::follow(
            reader,
            first,
            Follow {
                keep_alive: self.limits.keep_alive,
                retry: self.limits.sse_retry,
                shutdown: (!carries_answers).then(|| self.closing.clone()),
                session_closed: session.cancel_token().clone(),
                busy: session.hold(),
                linger,
            },
        );
        Reply::sse(Box::pin(stream))
    }
}
