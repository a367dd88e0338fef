//! Dispatch of a session's POSTed messages by method.
//!
//! Notifications and responses are handled on the spot (202). Requests other than `tools/call`
//! are answered synchronously from the catalog; `tools/call` runs in the session's tasks through
//! the [`driver`](super::driver), which picks a JSON or SSE reply.

use std::borrow::Cow;
use std::future::{ready, Future};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::Either;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::driver::{self, PreparedCall};
use super::era::Era;
use super::jsonrpc::{self, ErrorCode, Message, RequestId, RpcError};
use super::shared::Shared;
use super::transport::Reply;
use super::work::Work;
use crate::auth::Principal;
use crate::catalog::{
    Call, ClientCapability, CompletionRef, Emits, LogLevel, LookupError, RequestError,
};
use crate::session::Session;

/// Who a request comes from: its session, and its bearer when `auth` is on.
type Caller<'a> = (&'a Arc<Session>, Option<&'a Principal>);

/// Handles the messages of one POST.
///
/// The messages are read and the calls set up before the returned future exists; it is the
/// [`driver`]'s, or a ready reply. (An `async fn` would keep this loop's vectors in the request's
/// future beside the driver's own.)
pub(crate) fn post<'a>(
    shared: &'a Arc<Shared>,
    session: &'a Arc<Session>,
    principal: Option<&Principal>,
    messages: Vec<Message<'_>>,
    batch: bool,
) -> impl Future<Output = Reply> + Send + 'a {
    let mut replies: Vec<Bytes> = Vec::new();
    let mut calls: Vec<PreparedCall> = Vec::new();
    let mut emits: Option<Arc<Emits>> = None;
    let mut has_requests = false;
    for message in messages {
        match message {
            Message::Notification { method, params } => notification(session, &method, params),
            Message::Response { id, result } => response(session, &id, result),
            Message::Request { id, method, params } => {
                has_requests = true;
                crate::telemetry::metrics().rpc(Era::Legacy, &method);
                let interactive = method == "prompts/get" && asks(shared, params);
                if method == "tools/call" || interactive {
                    let emits = emits.get_or_insert_with(Emits::new);
                    let prepared = match interactive {
                        true => prepare_prompt(
                            shared,
                            (session, principal),
                            &id,
                            params,
                            Arc::clone(emits),
                        ),
                        false => prepare_call(
                            shared,
                            (session, principal),
                            &id,
                            params,
                            Arc::clone(emits),
                        ),
                    };
                    match prepared {
                        Ok(call) => calls.push(call),
                        Err(e) => replies.push(jsonrpc::error_response(Some(&id), &e)),
                    }
                } else {
                    replies.push(
                        match request(shared, (session, principal), &method, params) {
                            Ok(result) => jsonrpc::response(&id, result),
                            Err(e) => jsonrpc::error_response(Some(&id), &e),
                        },
                    );
                }
            }
        }
    }
    if !has_requests {
        return Either::Right(ready(Reply::accepted()));
    }
    match emits {
        Some(emits) if !calls.is_empty() => {
            Either::Left(driver::run(shared, session, calls, replies, batch, emits))
        }
        _ => Either::Right(ready(Reply::json(jsonrpc::reply_body(replies, batch)))),
    }
}

fn notification(session: &Session, method: &str, params: Option<&RawValue>) {
    match method {
        "notifications/initialized" => session.mark_initialized(),
        "notifications/cancelled" => {
            #[derive(Deserialize)]
            struct Cancelled {
                #[serde(rename = "requestId")]
                request_id: RequestId,
            }
            match jsonrpc::params::<Cancelled>(params) {
                Ok(c) => {
                    let found = session.cancel_request(&c.request_id);
                    tracing::debug!(session_id = %session.id(), request_id = %c.request_id, found, "cancel requested");
                }
                Err(e) => {
                    tracing::debug!(session_id = %session.id(), error = %e.message, "bad notifications/cancelled")
                }
            }
        }
        other => {
            tracing::debug!(session_id = %session.id(), method = other, "notification ignored")
        }
    }
}

fn response(session: &Session, id: &RequestId, result: Result<&RawValue, &RawValue>) {
    let RequestId::Num(n) = id else {
        tracing::debug!(session_id = %session.id(), %id, "response to an id we never used");
        return;
    };
    let reply = match result {
        Ok(raw) => serde_json::from_str::<Value>(raw.get()).map_err(|e| RequestError::Rejected {
            code: ErrorCode::PARSE_ERROR.0,
            message: e.to_string(),
        }),
        Err(raw) => {
            let e: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
            Err(RequestError::Rejected {
                code: e
                    .get("code")
                    .and_then(Value::as_i64)
                    .unwrap_or(ErrorCode::INTERNAL_ERROR.0),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            })
        }
    };
    if !session.answer_pending(*n, reply) {
        tracing::debug!(session_id = %session.id(), %id, "response nobody waits for");
    }
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
    #[serde(rename = "_meta", default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "progressToken", default)]
    progress_token: Option<Value>,
}

fn prepare_call(
    shared: &Shared,
    caller: Caller<'_>,
    id: &RequestId,
    params: Option<&RawValue>,
    emits: Arc<Emits>,
) -> Result<PreparedCall, RpcError> {
    let p: CallParams = jsonrpc::params(params)?;
    let tool = shared
        .catalog
        .tool(&p.name)
        .map_err(|e| RpcError::new(ErrorCode::INVALID_PARAMS, e.to_string()))?;
    let progress_token = p
        .meta
        .and_then(|m| m.progress_token)
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64());
    let (call, token) = session_call(shared, caller, id, emits, progress_token)?;
    let fut = (tool.handler)(call, p.arguments.unwrap_or_default());
    Ok(PreparedCall {
        id: id.clone(),
        token,
        fut: Work::Tool(fut),
    })
}

/// Starts request `id` in the session (refused past `max_in_flight`) and builds its call handle:
/// the session's capabilities, questions asked live on the call's stream.
fn session_call(
    shared: &Shared,
    (session, principal): Caller<'_>,
    id: &RequestId,
    emits: Arc<Emits>,
    progress_token: Option<Value>,
) -> Result<(Call, tokio_util::sync::CancellationToken), RpcError> {
    let token = session
        .start_request(id.clone(), shared.limits.max_in_flight)
        .map_err(|e| RpcError::new(ErrorCode::INVALID_REQUEST, e.to_string()))?;
    let session_for_caps = Arc::clone(session);
    let call = Call::new(
        shared.call_info(session, principal),
        emits,
        token.clone(),
        progress_token,
        move |cap: ClientCapability| session_for_caps.params().client_has(cap.key()),
    );
    Ok((call, token))
}

/// True when the `prompts/get` in `params` names a prompt that asks the client something: it
/// then runs like a tool call, its question a server→client request on its stream.
fn asks(shared: &Shared, params: Option<&RawValue>) -> bool {
    #[derive(Deserialize)]
    struct Name<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
    }
    jsonrpc::params::<Name<'_>>(params)
        .is_ok_and(|p| shared.catalog.interactive_prompt(&p.name).is_some())
}

fn prepare_prompt(
    shared: &Shared,
    caller: Caller<'_>,
    id: &RequestId,
    params: Option<&RawValue>,
    emits: Arc<Emits>,
) -> Result<PreparedCall, RpcError> {
    #[derive(Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
        #[serde(default)]
        arguments: Option<Map<String, Value>>,
    }
    let p: P<'_> = jsonrpc::params(params)?;
    let render = shared.catalog.interactive_prompt(&p.name).ok_or_else(|| {
        RpcError::new(
            ErrorCode::INVALID_PARAMS,
            format!("Unknown prompt: {}", p.name),
        )
    })?;
    let (call, token) = session_call(shared, caller, id, emits, None)?;
    Ok(PreparedCall {
        id: id.clone(),
        token,
        fut: Work::Prompt(render(call, p.arguments.unwrap_or_default())),
    })
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct UriParams {
    uri: String,
}

fn list(params: Option<&RawValue>, raw: &RawValue) -> Result<Value, RpcError> {
    let p: ListParams = jsonrpc::params(params)?;
    if let Some(cursor) = p.cursor {
        // Every list fits one page, so no cursor of ours exists.
        return Err(RpcError::new(
            ErrorCode::INVALID_PARAMS,
            format!("Invalid cursor {cursor:?}"),
        ));
    }
    serde_json::from_str(raw.get())
        .map_err(|e| RpcError::new(ErrorCode::INTERNAL_ERROR, e.to_string()))
}

fn lookup(e: LookupError) -> RpcError {
    lookup_error(e, ErrorCode::RESOURCE_NOT_FOUND)
}

/// The error of a failed catalog lookup; a missing resource gets `not_found` (`-32002` in the
/// legacy era, `-32602` since 2026-07-28, SEP-2164) with its URI.
pub(crate) fn lookup_error(e: LookupError, not_found: ErrorCode) -> RpcError {
    match e {
        LookupError::UnknownResource(uri) => {
            RpcError::new(not_found, format!("Resource not found: {uri}"))
                .with_data(json!({"uri": uri}))
        }
        other => RpcError::new(ErrorCode::INVALID_PARAMS, other.to_string()),
    }
}

/// Answers a request other than `initialize` and `tools/call`.
fn request(
    shared: &Shared,
    (session, principal): Caller<'_>,
    method: &str,
    params: Option<&RawValue>,
) -> Result<Value, RpcError> {
    let catalog = &shared.catalog;
    match method {
        "ping" => Ok(json!({})),
        "tools/list" => list(params, catalog.tools_list()),
        "resources/list" => list(params, catalog.resources_list()),
        "resources/templates/list" => list(params, catalog.templates_list()),
        "prompts/list" => list(params, catalog.prompts_list()),
        "resources/read" => {
            let p: UriParams = jsonrpc::params(params)?;
            let contents = catalog
                .read_resource(&p.uri, &shared.call_info(session, principal))
                .map_err(lookup)?;
            Ok(json!({ "contents": contents }))
        }
        "resources/subscribe" => {
            let p: UriParams = jsonrpc::params(params)?;
            if !catalog.has_resource(&p.uri) {
                return Err(lookup(LookupError::UnknownResource(p.uri)));
            }
            session.subscribe(&p.uri);
            shared.table.updated(session);
            Ok(json!({}))
        }
        "resources/unsubscribe" => {
            let p: UriParams = jsonrpc::params(params)?;
            session.unsubscribe(&p.uri);
            shared.table.updated(session);
            Ok(json!({}))
        }
        "prompts/get" => {
            #[derive(Deserialize)]
            struct P {
                name: String,
                #[serde(default)]
                arguments: Option<Map<String, Value>>,
            }
            let p: P = jsonrpc::params(params)?;
            catalog
                .get_prompt(&p.name, &p.arguments.unwrap_or_default())
                .map_err(lookup)
        }
        "completion/complete" => complete(shared, params),
        "logging/setLevel" => {
            #[derive(Deserialize)]
            struct P {
                level: String,
            }
            let p: P = jsonrpc::params(params)?;
            let level: LogLevel =
                p.level
                    .parse()
                    .map_err(|e: crate::catalog::UnknownLogLevel| {
                        RpcError::new(ErrorCode::INVALID_PARAMS, e.to_string())
                    })?;
            session.set_log_level(level);
            shared.table.updated(session);
            Ok(json!({}))
        }
        "initialize" => Err(RpcError::new(
            ErrorCode::INVALID_REQUEST,
            "Invalid Request: the session is already initialized",
        )),
        other => Err(RpcError::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    }
}

/// Answers `completion/complete` (both eras).
pub(crate) fn complete(shared: &Shared, params: Option<&RawValue>) -> Result<Value, RpcError> {
    #[derive(Deserialize)]
    struct Ref {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        uri: Option<String>,
    }
    #[derive(Deserialize)]
    struct Arg {
        name: String,
        #[serde(default)]
        value: String,
    }
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "ref")]
        reference: Ref,
        argument: Arg,
    }
    let p: P = jsonrpc::params(params)?;
    let bad = |m: &str| RpcError::new(ErrorCode::INVALID_PARAMS, m.to_owned());
    let reference = match (
        p.reference.kind.as_str(),
        &p.reference.name,
        &p.reference.uri,
    ) {
        ("ref/prompt", Some(name), _) => CompletionRef::Prompt(name),
        ("ref/resource", _, Some(uri)) => CompletionRef::Resource(uri),
        _ => return Err(bad(
            "Invalid params: ref must be {type:\"ref/prompt\",name} or {type:\"ref/resource\",uri}",
        )),
    };
    let mut values = shared
        .catalog
        .complete(&reference, &p.argument.name, &p.argument.value)
        .map_err(lookup)?;
    let total = values.len();
    values.truncate(100); // the spec's maximum per reply
    Ok(json!({"completion": {"values": values, "total": total, "hasMore": total > 100}}))
}
