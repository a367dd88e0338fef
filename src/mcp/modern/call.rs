//! A 2026-07-28 `tools/call` or `prompts/get`, up to the point where it runs: the name checked
//! against `Mcp-Name`, the arguments and their `Mcp-Param-*` headers, the answers the request
//! brings (its sealed `requestState`, its `inputResponses`) and the call handle. [`run`] runs it.
//!
//! All of it is synchronous: a request's future holds only the [`Run`] it awaits, not this
//! setup's locals.
//!
//! [`run`]: super::run

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::envelope::{self, Envelope, Params, Refusal};
use super::run::Run;
use super::state::{Binding, MAX_STATE_LEN};
use super::{arguments, refused};
use crate::catalog::{Asking, Call, CallInfo, Emits, Inputs};
use crate::mcp::era::Era;
use crate::mcp::jsonrpc::{self, ErrorCode, RequestId, RpcError};
use crate::mcp::shared::Shared;
use crate::mcp::transport::{Reply, RequestHeaders};
use crate::mcp::work::Work;

/// What a caller learns about itself in the modern era (no session).
pub(super) fn info(
    shared: &Shared,
    env: &Envelope,
    principal: Option<&crate::auth::Principal>,
) -> CallInfo {
    CallInfo {
        node: Arc::clone(&shared.node),
        session_id: None,
        protocol_version: env.version.as_str(),
        client_name: Arc::clone(&env.client_name),
        started: shared.started,
        principal: principal.cloned(),
    }
}

/// What a `tools/call` or `prompts/get` names and brings, checked: the name (against
/// `Mcp-Name`) and the arguments.
struct Target<'p> {
    method: &'static str,
    name: &'p str,
    args: Map<String, Value>,
}

impl<'p> Target<'p> {
    fn read(
        method: &'static str,
        h: &RequestHeaders<'_>,
        id: &RequestId,
        p: &'p Params<'_>,
    ) -> Result<Target<'p>, Reply> {
        let name = p
            .name
            .as_deref()
            .ok_or_else(|| refused(id, invalid_params("Invalid params: name is required")))?;
        envelope::check_name(h, name).map_err(|r| refused(id, r))?;
        let args = arguments(p.arguments).map_err(|r| refused(id, r))?;
        Ok(Target { method, name, args })
    }
}

/// A call set up to run, or the answer made without running anything (a refusal, or a prompt
/// that asks nothing).
pub(super) type Started = Result<Run, Reply>;

/// A `tools/call`.
pub(super) fn call(
    shared: &Arc<Shared>,
    h: &RequestHeaders<'_>,
    body: &Bytes,
    id: RequestId,
    env: Envelope,
    p: Params<'_>,
) -> Started {
    let t = Target::read("tools/call", h, &id, &p)?;
    let tool = match shared.catalog.tool(t.name) {
        Ok(tool) => tool,
        Err(e) => {
            return Err(rpc_error(
                200,
                &id,
                ErrorCode::INVALID_PARAMS,
                e.to_string(),
            ))
        }
    };
    if let Some(refused) = shared.tool_refused(h.principal, tool.name) {
        return Err(refused);
    }
    if let Some(annotated) = shared.modern.param_headers.get(tool.name) {
        if let Err(r) = envelope::check_params(h, annotated, &t.args) {
            return Err(refused(&id, r));
        }
    }
    let (handler, name) = (tool.handler, tool.name);
    start(
        shared,
        h,
        id,
        &env,
        &p,
        t,
        (name.into(), body),
        |call, args| Work::Tool(handler(call, args)),
    )
}

/// A `prompts/get`: answered at once, unless the prompt asks the client something.
pub(super) fn prompt(
    shared: &Arc<Shared>,
    h: &RequestHeaders<'_>,
    body: &Bytes,
    id: RequestId,
    env: Envelope,
    p: Params<'_>,
) -> Started {
    let t = Target::read("prompts/get", h, &id, &p)?;
    let Some(ask) = shared.catalog.interactive_prompt(t.name) else {
        return Err(match shared.catalog.get_prompt(t.name, &t.args) {
            Ok(result) => Reply::json(jsonrpc::response(
                &id,
                shared.modern.stamps.complete(result),
            )),
            Err(e) => rpc_error(200, &id, ErrorCode::INVALID_PARAMS, e.to_string()),
        });
    };
    let name = t.name.to_owned().into();
    start(shared, h, id, &env, &p, t, (name, body), |call, args| {
        Work::Prompt(ask(call, args))
    })
}

/// Sets up a call that may ask the client something: the answers the request brings, the call
/// handle, and the work `begin` makes of them, in the [`Run`] that answers it. `bound` is what
/// its state binds to: the catalog's name for the target, and the request's body (which holds
/// the arguments).
#[allow(clippy::too_many_arguments)]
fn start(
    shared: &Arc<Shared>,
    h: &RequestHeaders<'_>,
    id: RequestId,
    env: &Envelope,
    p: &Params<'_>,
    t: Target<'_>,
    bound: (Cow<'static, str>, &Bytes),
    begin: impl FnOnce(Call, Map<String, Value>) -> Work,
) -> Started {
    let binding =
        Binding::in_body(t.method, bound.0, bound.1, p.arguments.map(|a| a.get())).of(h.principal);
    let inputs = match inputs(shared, p, &binding) {
        Ok(i) => i,
        Err(r) => return Err(refused(&id, r)),
    };
    let (call, emits, token) = handle(shared, env, h.principal, &inputs);
    let work = begin(call, t.args);
    Ok(Run::new(
        shared, id, env, work, emits, inputs, binding, token,
    ))
}

fn invalid_params(message: &str) -> Refusal {
    (400, RpcError::new(ErrorCode::INVALID_PARAMS, message))
}

fn rpc_error(status: u16, id: &RequestId, code: ErrorCode, message: String) -> Reply {
    Reply::rpc_error_to(status, id, &RpcError::new(code, message))
}

/// The call handle of a modern request: capabilities from its envelope, questions answered from
/// `inputs`.
fn handle(
    shared: &Shared,
    env: &Envelope,
    principal: Option<&crate::auth::Principal>,
    inputs: &Arc<Inputs>,
) -> (Call, Arc<Emits>, CancellationToken) {
    let emits = Emits::new();
    let token = CancellationToken::new();
    let call = Call::new(
        info(shared, env, principal),
        Arc::clone(&emits),
        token.clone(),
        env.progress_token.clone(),
        |cap| env.has(cap),
    )
    .asking(Asking::Replayed(Arc::clone(inputs)));
    (call, emits, token)
}

/// The answers a request brings: those sealed in its `requestState` (which must open for this
/// very request), then its `inputResponses`.
fn inputs(shared: &Shared, p: &Params<'_>, binding: &Binding) -> Result<Arc<Inputs>, Refusal> {
    let mut answers = Map::new();
    if let Some(raw) = p.request_state {
        if raw.get().len() > MAX_STATE_LEN + 2 {
            return Err(invalid_params("Invalid params: requestState is too large"));
        }
        let Ok(token) = serde_json::from_str::<String>(raw.get()) else {
            return Err(invalid_params(
                "Invalid params: requestState must be a string",
            ));
        };
        match shared.modern.keys().open(&token, binding) {
            Ok(sealed) => answers = sealed,
            Err(why) => {
                tracing::info!(era = %Era::Modern, method = %binding.method, target = %binding.target, reason = %why, "requestState refused");
                return Err((
                    400,
                    RpcError::new(ErrorCode::INVALID_PARAMS, "Invalid or expired requestState")
                        .with_data(json!({"reason": "invalid_request_state"})),
                ));
            }
        }
    }
    if let Some(raw) = p.input_responses {
        let Ok(given) = serde_json::from_str::<Map<String, Value>>(raw.get()) else {
            return Err(invalid_params(
                "Invalid params: inputResponses must be an object",
            ));
        };
        answers.extend(given);
    }
    Ok(Inputs::new(answers))
}
