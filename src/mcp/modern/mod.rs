//! The 2026-07-28 protocol ("modern"): every request stands alone.
//!
//! No session is looked up, created or forwarded, and no Redis command is sent: a modern request
//! is served by whichever node it reaches. What used to live in a session travels with the
//! request — its version, capabilities and client info in `_meta` ([`envelope`]), earlier
//! rounds' answers in a sealed `requestState` ([`state`]) — and list and resource changes reach
//! `subscriptions/listen` streams through the node's change bus ([`listen`]).
//!
//! - [`envelope`]: `_meta` and the routing headers, checked in order;
//! - [`results`]: `resultType`, `serverInfo` and caching hints on every result;
//! - [`call`]: what a `tools/call` or `prompts/get` names and brings, checked;
//! - [`run`]: running it, with progress, logs and MRTR rounds;
//! - [`listen`]: the `subscriptions/listen` streams;
//! - [`state`]: sealing `requestState`.
//!
//! HTTP statuses: envelope, header, version, capability and `requestState` errors are 400, an
//! unknown (or removed) method 404 — the statuses the spec pins. Other JSON-RPC errors of a
//! request that was dispatched (an unknown tool, a resource not found) are 200, as in the
//! legacy era.

mod call;
mod envelope;
mod listen;
mod names;
pub(crate) mod results;
mod run;
mod scan;
pub(crate) mod state;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::era::Era;
use super::jsonrpc::{self, ErrorCode, Message, RequestId, RpcError};
use super::shared::Shared;
use super::transport::{Reply, RequestHeaders};
use crate::catalog::Catalog;
use envelope::{Envelope, ParamHeader, Params, Refusal};
use results::Stamps;
pub(crate) use run::Run;
pub(crate) use state::StateKeys;

/// What the modern era needs besides the catalog, built once per node.
pub(crate) struct Modern {
    pub stamps: Stamps,
    /// The `server/discover` result.
    discover: Box<RawValue>,
    /// The `x-mcp-header` arguments of each tool that has any.
    param_headers: HashMap<&'static str, Vec<ParamHeader>>,
    /// The key ring `requestState` is sealed with: replaced once when the cluster agrees on one.
    keys: RwLock<Arc<StateKeys>>,
    /// Whether list-changed notifications can happen (and are advertised).
    pub lists_change: bool,
    /// The client names requests give, shared.
    names: names::ClientNames,
}

impl Modern {
    /// The modern era of a node named `node` serving `catalog`, sealing with `keys`.
    pub fn new(node: &str, catalog: &Catalog, keys: StateKeys) -> Modern {
        let stamps = Stamps::new(catalog);
        let lists_change = catalog.lists_change();
        let discover = serde_json::value::to_raw_value(&stamps.discover(node, lists_change))
            .unwrap_or_default();
        let param_headers = catalog
            .tools()
            .filter_map(|t| {
                let annotated = envelope::param_headers(&t.definition["inputSchema"]);
                (!annotated.is_empty()).then_some((t.name, annotated))
            })
            .collect();
        Modern {
            stamps,
            discover,
            param_headers,
            keys: RwLock::new(Arc::new(keys)),
            lists_change,
            names: names::ClientNames::default(),
        }
    }

    /// The keys states are sealed and opened with now.
    pub fn keys(&self) -> Arc<StateKeys> {
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Seals and opens with `keys` from now on (the cluster's shared key).
    pub fn set_keys(&self, keys: StateKeys) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }
}

/// An error answering request `id`.
fn refused(id: &RequestId, (status, error): Refusal) -> Reply {
    Reply::rpc_error_to(status, id, &error)
}

/// A 200 JSON reply carrying `result`.
fn answer<R: serde::Serialize>(id: &RequestId, result: R) -> Reply {
    Reply::json(jsonrpc::response(id, result))
}

/// Serves one modern POST (the entry decided its era).
pub(crate) async fn post(
    shared: &Arc<Shared>,
    h: &RequestHeaders<'_>,
    body: &Bytes,
    message: Message<'_>,
) -> Reply {
    match message {
        Message::Response { .. } => Reply::error(
            400,
            ErrorCode::INVALID_REQUEST,
            "Invalid Request: in protocol 2026-07-28 clients send no JSON-RPC responses",
        ),
        // This revision defines no client notifications over HTTP (cancelling is closing the
        // stream); the ones clients still send, like `notifications/cancelled` for a listen
        // stream they close, are accepted and have nothing left to do.
        Message::Notification { method, .. } => {
            tracing::debug!(era = %Era::Modern, %method, "notification accepted");
            Reply::accepted()
        }
        Message::Request { id, method, params } => {
            let p: Params<'_> = match jsonrpc::params(params) {
                Ok(p) => p,
                Err(e) => return refused(&id, (400, e)),
            };
            let env = match Envelope::check(h, &method, p.meta.as_ref(), &shared.modern.names) {
                Ok(env) => env,
                Err(r) => return refused(&id, r),
            };
            crate::telemetry::metrics().rpc(Era::Modern, &method);
            dispatch(shared, h, body, id, &method, env, p, params).await
        }
    }
}

/// The common case read in one pass: a plain `tools/call` (what nearly all modern traffic is),
/// read by [`scan`] instead of captured whole and parsed again, and set up without an await
/// (the caller awaits the [`Run`], so the request's future holds only that). `None` for
/// anything else, or anything unusual, which then takes the general path (the same answers,
/// with the general path's exact errors).
pub(crate) fn prepare_call(
    shared: &Arc<Shared>,
    h: &RequestHeaders<'_>,
    body: &Bytes,
) -> Option<Result<Run, Reply>> {
    let (id, params) = scan::tools_call(std::str::from_utf8(body).ok()?)?;
    let env = match Envelope::check(h, "tools/call", params.meta.as_ref(), &shared.modern.names) {
        Ok(env) => env,
        Err(r) => return Some(Err(refused(&id, r))),
    };
    crate::telemetry::metrics().rpc(Era::Modern, "tools/call");
    Some(call::call(shared, h, body, id, env, params))
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    shared: &Arc<Shared>,
    h: &RequestHeaders<'_>,
    body: &Bytes,
    id: RequestId,
    method: &str,
    env: Envelope,
    p: Params<'_>,
    raw: Option<&RawValue>,
) -> Reply {
    let m = &shared.modern;
    match method {
        "tools/call" => match call::call(shared, h, body, id, env, p) {
            Ok(run) => run.reply().await,
            Err(answered) => answered,
        },
        "prompts/get" => match call::prompt(shared, h, body, id, env, p) {
            Ok(run) => run.reply().await,
            Err(answered) => answered,
        },
        "server/discover" => answer(&id, &m.discover),
        "tools/list" => list(&id, &p, &m.stamps.tools_list),
        "prompts/list" => list(&id, &p, &m.stamps.prompts_list),
        "resources/list" => list(&id, &p, &m.stamps.resources_list),
        "resources/templates/list" => list(&id, &p, &m.stamps.templates_list),
        "resources/read" => read(shared, h, &id, &env, &p),
        "completion/complete" => match super::dispatch::complete(shared, raw) {
            Ok(result) => answer(&id, m.stamps.complete(result)),
            Err(e) => Reply::json(jsonrpc::error_response(Some(&id), &e)),
        },
        "subscriptions/listen" => listen::open(shared, h, id, p),
        other => refused(
            &id,
            (
                404,
                RpcError::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("Method not found: {other} (protocol 2026-07-28)"),
                ),
            ),
        ),
    }
}

/// A list result: every list fits one page, so any cursor is one we never issued.
fn list(id: &RequestId, p: &Params<'_>, result: &RawValue) -> Reply {
    match p.cursor.filter(|c| c.get() != "null") {
        Some(cursor) => Reply::json(jsonrpc::error_response(
            Some(id),
            &RpcError::new(
                ErrorCode::INVALID_PARAMS,
                format!("Invalid cursor {}", cursor.get()),
            ),
        )),
        None => answer(id, result),
    }
}

fn read(
    shared: &Shared,
    h: &RequestHeaders<'_>,
    id: &RequestId,
    env: &Envelope,
    p: &Params<'_>,
) -> Reply {
    let Some(uri) = p.uri.as_deref() else {
        return refused(
            id,
            (
                400,
                RpcError::new(ErrorCode::INVALID_PARAMS, "Invalid params: uri is required"),
            ),
        );
    };
    if let Err(r) = envelope::check_name(h, uri) {
        return refused(id, r);
    }
    match shared
        .catalog
        .read_resource(uri, &call::info(shared, env, h.principal))
    {
        Ok(contents) => answer(
            id,
            shared
                .modern
                .stamps
                .cacheable(json!({ "contents": contents }), 0, "private"),
        ),
        Err(e) => Reply::json(jsonrpc::error_response(
            Some(id),
            &super::dispatch::lookup_error(e, ErrorCode::INVALID_PARAMS),
        )),
    }
}

/// Reads `arguments` as an object (absent is empty).
fn arguments(raw: Option<envelope::Raw<'_>>) -> Result<Map<String, Value>, Refusal> {
    match raw {
        None => Ok(Map::new()),
        Some(raw) => serde_json::from_str::<Map<String, Value>>(raw.get()).map_err(|_| {
            (
                400,
                RpcError::new(
                    ErrorCode::INVALID_PARAMS,
                    "Invalid params: arguments must be an object",
                ),
            )
        }),
    }
}
