//! The MCP endpoint: POST, GET and DELETE on `/mcp`, from headers and body to a [`Reply`].
//!
//! Order of checks, cheapest first, each with its own status: Origin/Host (403), method (405),
//! Accept/Content-Type (406/415) — these run before the body is read — then JSON-RPC parsing
//! (400), `initialize` (creates a session) or session lookup (400 missing, 404 unknown), the
//! `MCP-Protocol-Version` header (400), and finally dispatch.

use std::future::{ready, Future};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::Either;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::bus::Bus;
use super::era::{self, Era};
use super::greeting::Greetings;
use super::jsonrpc::{self, ErrorCode, Message, RpcError};
use super::modern::{self, Modern, StateKeys};
use super::shared::{Limits, Shared};
use super::sse;
use super::transport::{self, OriginPolicy, Reply, RequestHeaders};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::session::registry::MissPolicy;
use crate::session::{
    Entered, OwnerTag, ProtocolVersion, Resolved, Session, SessionId, SessionParams, SessionTable,
};

/// HTTP methods, as far as the endpoint cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Get,
    Delete,
    Other,
}

/// The MCP endpoint of one node.
#[derive(Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

#[derive(Deserialize)]
struct InitializeParams {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(default)]
    capabilities: Value,
    #[serde(rename = "clientInfo", default)]
    client_info: Value,
}

impl Endpoint {
    /// Builds the endpoint over `table`. `draining` refuses new sessions; `closing` ends streams;
    /// `keys` seal MRTR `requestState` until [`set_state_keys`](Self::set_state_keys); `auth`
    /// (when on) holds the scopes each tool needs.
    pub fn new(
        cfg: &Config,
        table: Arc<SessionTable>,
        draining: CancellationToken,
        closing: CancellationToken,
        keys: StateKeys,
        auth: Option<Arc<crate::auth::Auth>>,
    ) -> Endpoint {
        let catalog = Catalog::new(cfg.catalog.conformance);
        let modern = Modern::new(&cfg.server.node_id, &catalog, keys);
        Endpoint {
            shared: Arc::new(Shared {
                bus: Bus::new(Arc::clone(&table)),
                modern,
                stop_requests: CancellationToken::new(),
                table,
                catalog,
                node: cfg.server.node_id.as_str().into(),
                owner: OwnerTag::of(&cfg.server.node_id),
                started: Instant::now(),
                limits: Limits {
                    keep_alive: cfg.session.keep_alive.get(),
                    sse_retry: cfg.session.sse_retry.get(),
                    replay_events: cfg.session.replay_events,
                    max_in_flight: cfg.session.max_in_flight,
                    request_timeout: cfg.session.request_timeout.get(),
                    forward_misroutes: cfg.cluster.forward_misroutes,
                    adopt_orphans: cfg.cluster.adopt_orphans,
                    peer_secret: (!cfg.cluster.peer_secret.is_empty())
                        .then(|| cfg.cluster.peer_secret.clone()),
                },
                policy: OriginPolicy::new(
                    &cfg.server.allowed_origins,
                    &cfg.server.allowed_hosts,
                    cfg.server.listen.ip().is_loopback(),
                ),
                draining,
                closing,
                greetings: Greetings::new(&cfg.server.node_id),
                auth,
            }),
        }
    }

    /// This node's sessions.
    pub fn sessions(&self) -> &Arc<SessionTable> {
        &self.shared.table
    }

    /// The node's change bus (the cluster relay attaches to it).
    pub fn bus(&self) -> &Bus {
        &self.shared.bus
    }

    /// Seals and opens MRTR `requestState` with `keys` from now on (the cluster's shared key).
    pub fn set_state_keys(&self, keys: StateKeys) {
        self.shared.modern.set_keys(keys);
    }

    /// Cancelled by the drain when `shutdown.request_grace` is over: the 2026-07-28 calls still
    /// running stop and are answered so.
    pub fn stop_requests(&self) -> &CancellationToken {
        &self.shared.stop_requests
    }

    /// A misrouted request was relayed to its holder: the miss is logged (once per id).
    pub fn forwarded(&self, to: &transport::Forward) {
        if let Some(r) = self.shared.table.registry() {
            r.log_forwarded(&to.session_id, &to.miss);
        }
    }

    /// Forwarding to `node` just failed to connect: routing skips it until it shows a sign of
    /// life (a new boot) or its heartbeat would have expired.
    pub fn owner_unreachable(&self, node: &str) {
        if let Some(r) = self.shared.table.registry() {
            r.peer_unreachable(node);
        }
    }

    /// The checks that need no body: Origin/Host, method, Accept and Content-Type. The HTTP
    /// layer calls this before reading the body.
    pub fn precheck(&self, method: HttpMethod, h: &RequestHeaders<'_>) -> Result<(), Reply> {
        self.shared.policy.check(h.origin, h.host)?;
        if let (Some(_), Some(secret)) = (h.forwarded_by, &self.shared.limits.peer_secret) {
            if h.peer_secret != Some(secret.as_str()) {
                return Err(Reply::error(
                    403,
                    ErrorCode::INVALID_REQUEST,
                    "Forbidden: forwarded requests must come from a cluster node",
                ));
            }
        }
        match method {
            HttpMethod::Post => transport::check_post_headers(h),
            HttpMethod::Get => transport::check_get_headers(h),
            HttpMethod::Delete => Ok(()),
            HttpMethod::Other => Err(Reply::method_not_allowed()),
        }
    }

    /// A POST whose body was read and passed [`precheck`](Self::precheck).
    ///
    /// A 2026-07-28 `tools/call` is read in one pass and set up without an await; its future is
    /// then only the call's [`Run`](modern::Run). Anything else (or anything odd about it) goes
    /// the general way. Not an `async fn`: the two ways are two futures, and the request's future
    /// holds the larger of them, not both.
    pub fn post<'a>(
        &'a self,
        h: &'a RequestHeaders<'a>,
        body: &'a Bytes,
    ) -> impl Future<Output = Reply> + Send + 'a {
        if era::modern_header(h) {
            match modern::prepare_call(&self.shared, h, body) {
                Some(Ok(run)) => return Either::Left(run.reply()),
                Some(Err(answered)) => return Either::Right(Either::Left(ready(answered))),
                None => {}
            }
        }
        Either::Right(Either::Right(self.post_general(h, body)))
    }

    /// Any POST but the modern `tools/call` that [`post`](Self::post) answers itself.
    async fn post_general(&self, h: &RequestHeaders<'_>, body: &Bytes) -> Reply {
        let mut parsed = match jsonrpc::parse(body) {
            Ok(p) => p,
            Err(e) => return Reply::rpc_error(400, &e.to_rpc()),
        };
        match era::classify(h, &parsed) {
            Ok(Era::Legacy) => {}
            Ok(Era::Modern) => match parsed.messages.pop() {
                // Boxed: only this path's requests pay for the room its state takes.
                Some(message) => {
                    return Box::pin(modern::post(&self.shared, h, body, message)).await
                }
                None => return Reply::error(400, ErrorCode::INVALID_REQUEST, "Invalid Request"),
            },
            Err(reply) => return reply,
        }
        let init = parsed
            .messages
            .iter()
            .position(|m| matches!(m, Message::Request { method, .. } if method == "initialize"));
        if let Some(i) = init {
            if parsed.batch {
                return Reply::error(
                    400,
                    ErrorCode::INVALID_REQUEST,
                    "Invalid Request: initialize must not be part of a batch",
                );
            }
            if h.session_id.is_some() {
                return Reply::error(400, ErrorCode::INVALID_REQUEST, "Invalid Request: initialize must not carry Mcp-Session-Id; the session is already initialized");
            }
            return match &parsed.messages[i] {
                Message::Request { id, params, .. } => self.initialize(h, id, *params),
                _ => Reply::error(400, ErrorCode::INVALID_REQUEST, "Invalid Request"),
            };
        }
        let session = match self.session_for(h).await {
            Ok(s) => s,
            Err(reply) => return reply,
        };
        if parsed.batch && !session.params().protocol.allows_batches() {
            return Reply::error(
                400,
                ErrorCode::INVALID_REQUEST,
                format!(
                    "Invalid Request: JSON-RPC batches are not part of protocol version {}",
                    session.params().protocol
                ),
            );
        }
        if let Some(refused) = self.tool_scopes_refused(h, &parsed.messages) {
            return refused;
        }
        self.shared.table.touch(&session);
        super::dispatch::post(
            &self.shared,
            &session,
            h.principal,
            parsed.messages,
            parsed.batch,
        )
        .await
    }

    /// The 403 of a POST with a `tools/call` whose token lacks a scope the tool needs
    /// (`[auth.tool_scopes]`); the whole POST is refused, a batch too, before anything runs.
    fn tool_scopes_refused(
        &self,
        h: &RequestHeaders<'_>,
        messages: &[Message<'_>],
    ) -> Option<Reply> {
        #[derive(Deserialize)]
        struct Named<'a> {
            #[serde(borrow)]
            name: std::borrow::Cow<'a, str>,
        }
        self.shared.auth.as_ref()?;
        messages.iter().find_map(|m| match m {
            Message::Request { method, params, .. } if method == "tools/call" => {
                let named: Named<'_> = jsonrpc::params(*params).ok()?;
                self.shared.tool_refused(h.principal, &named.name)
            }
            _ => None,
        })
    }

    /// A GET: the standalone stream, or the resumption of any stream with `Last-Event-ID`.
    /// Without a session id it is a 2026-07-28 client's (that protocol has no GET): 405.
    pub async fn get(&self, h: &RequestHeaders<'_>) -> Reply {
        if h.session_id.is_none() {
            return Reply::sessionless_not_allowed("GET");
        }
        let session = match self.session_for(h).await {
            Ok(s) => s,
            Err(reply) => return reply,
        };
        self.shared.table.touch(&session);
        let resumed = h
            .last_event_id
            .and_then(sse::parse_event_id)
            .and_then(|(stream, seq)| session.stream(stream).map(|log| (log, seq)));
        let linger = resumed.as_ref().is_some_and(|(log, _)| log.id() != 0);
        let resumed_from = resumed.as_ref().map(|(_, seq)| *seq);
        let reader = match resumed {
            Some((log, seq)) => log.attach(Some(seq)),
            // An id we cannot resume (unknown, evicted, another process's) gets a fresh
            // standalone stream: an error here would make EventSource clients retry forever.
            None => session.standalone().attach(None),
        };
        // The priming event names the reader's resume point; it is sent on this connection only
        // and never stored, so reconnecting clients cannot push real events out of the ring.
        let first =
            (resumed_from.is_none() && session.params().protocol.primes_streams()).then(|| {
                sse::priming(
                    session.standalone().id(),
                    reader.cursor(),
                    self.shared.limits.sse_retry,
                )
            });
        self.shared
            .sse_reply(&session, reader, first, linger, false)
    }

    /// A DELETE: ends the session. For an id this node does not hold the answer is 404, but its
    /// registry key is removed all the same (ADR-0066).
    pub async fn delete(&self, h: &RequestHeaders<'_>) -> Reply {
        if h.session_id.is_none() {
            return Reply::sessionless_not_allowed("DELETE");
        }
        let session = match self.session_for(h).await {
            Ok(s) => s,
            Err(reply) => {
                if reply.status == 404 {
                    if let Some(raw) = h.session_id {
                        self.shared.table.forget(raw);
                    }
                }
                return reply;
            }
        };
        self.shared
            .table
            .close(&session.id(), crate::session::CloseReason::Delete);
        Reply::empty(200)
    }

    fn initialize(
        &self,
        h: &RequestHeaders<'_>,
        id: &jsonrpc::RequestId,
        params: Option<&serde_json::value::RawValue>,
    ) -> Reply {
        crate::telemetry::metrics().rpc(Era::Legacy, "initialize");
        if self.shared.draining.is_cancelled() {
            return Reply::unavailable("Service Unavailable: this node is shutting down", 1);
        }
        let p: InitializeParams = match jsonrpc::params(params) {
            Ok(p) => p,
            Err(e) => return Reply::json(jsonrpc::error_response(Some(id), &e)),
        };
        let protocol = p
            .protocol_version
            .parse::<ProtocolVersion>()
            .unwrap_or(ProtocolVersion::LATEST);
        let client_name: Arc<str> = p
            .client_info
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .into();
        let session = Arc::new(Session::new(
            SessionId::minted_by(self.shared.owner),
            SessionParams {
                protocol,
                client_info: p.client_info,
                client_name: Arc::clone(&client_name),
                capabilities: p.capabilities,
                bearer: h.principal.map(crate::auth::Principal::bearer),
            },
            self.shared.limits.replay_events,
        ));
        if let Err(full) = self.shared.table.insert(Arc::clone(&session)) {
            tracing::warn!(node = %self.shared.node, limit = full.0, "session refused: table full");
            return Reply::unavailable(format!("Service Unavailable: {full}"), 5);
        }
        session.touch();
        crate::telemetry::metrics().sessions_created.inc();
        tracing::info!(
            session_id = %session.id(),
            client = %client_name,
            requested = %p.protocol_version,
            protocol = %protocol,
            "session created"
        );
        let result = self.shared.greetings.result(protocol);
        let mut reply = Reply::json(jsonrpc::response(id, result));
        reply.session_id = Some(session.id());
        reply
    }

    /// The session a non-initialize request names, with the request counted in it until the
    /// reply ([`Entered`]): 400 without the header, 404 when this node does not hold it (the miss
    /// is classified through the registry and logged), 400 for an unsupported
    /// `MCP-Protocol-Version`.
    async fn session_for(&self, h: &RequestHeaders<'_>) -> Result<Entered, Reply> {
        let Some(raw) = h.session_id else {
            return Err(Reply::error(
                400,
                ErrorCode::INVALID_REQUEST,
                "Bad Request: Mcp-Session-Id header is required (send initialize first)",
            ));
        };
        let session = raw
            .parse::<SessionId>()
            .ok()
            .and_then(|id| self.shared.table.enter(&id));
        let session = match session {
            Some(s) => s,
            // Boxed: the miss path holds Redis futures several KiB large; inline, every request's
            // future would carry (and move) that room even though hits never use it.
            None => Box::pin(self.resolve_miss(raw, h)).await?,
        };
        // A session belongs to the bearer that initialized it: another bearer's token (or none,
        // where the session is bound) gets exactly the answer of an unknown session.
        let bound = session.params().bearer.as_ref();
        let same = match (bound, h.principal) {
            (None, None) => true,
            (Some(b), Some(p)) => p.is(b),
            _ => false,
        };
        if !same {
            tracing::info!(node = %self.shared.node, session_id = %session.id(), sub = h.principal.map_or("", |p| p.subject()), "a session was used with another bearer's token; answered as unknown");
            return Err(Reply::session_not_found());
        }
        if let Some(v) = h.protocol_version {
            if v.parse::<ProtocolVersion>().is_err() {
                let supported: Vec<&str> =
                    ProtocolVersion::ALL.iter().map(|v| v.as_str()).collect();
                return Err(Reply::rpc_error(
                    400,
                    &RpcError::new(
                        ErrorCode::INVALID_REQUEST,
                        format!("Bad Request: unsupported MCP-Protocol-Version {v:?}"),
                    )
                    .with_data(json!({"supported": supported, "requested": v})),
                ));
            }
        }
        Ok(session)
    }

    /// A request for a session this node does not hold: forwarded to the live node that holds it,
    /// adopted here when its owner is gone, or 404 — per the config, the drain state and the
    /// request's forwarding path.
    async fn resolve_miss(&self, raw: &str, h: &RequestHeaders<'_>) -> Result<Entered, Reply> {
        let limits = &self.shared.limits;
        let mut path = transport::forwarding_path(h.forwarded_by);
        let draining = self.shared.draining.is_cancelled();
        let policy = MissPolicy {
            forward: limits.forward_misroutes && path.len() < transport::MAX_HOPS,
            shortcut: path.is_empty() && h.unreachable_owner.is_none(),
            adopt: limits.adopt_orphans && !draining,
            handoff: draining && limits.adopt_orphans,
            unreachable: h.unreachable_owner.map(str::to_owned),
            avoid: {
                path.push(self.shared.node.to_string());
                path
            },
        };
        match self
            .shared
            .table
            .resolve_miss(raw, &policy, limits.replay_events)
            .await
        {
            Resolved::Here(session) => Ok(session.enter()),
            Resolved::Forward(peer, miss) => Err(Reply::forward(transport::Forward {
                node: peer.node,
                url: peer.url,
                session_id: raw.to_owned(),
                miss,
            })),
            Resolved::NotFound => {
                tracing::debug!(node = %self.shared.node, session_id = raw, "session not held here");
                Err(Reply::session_not_found())
            }
            Resolved::Full(full) => Err(Reply::unavailable(
                format!("Service Unavailable: {full}"),
                5,
            )),
        }
    }
}
