//! A running catalog call, whichever era runs it: a tool's future, or an interactive prompt's
//! (one that asks the client something before it can render).
//!
//! Both drivers (a session's, `driver`; a 2026-07-28 request's, `modern::run`) poll these and
//! encode what they end with, so a prompt that asks serves both eras like a tool does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde_json::Value;

use super::jsonrpc::{self, ErrorCode, RequestId, RpcError};
use crate::catalog::{BoxFuture, ToolResult};

/// What a call ended with.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A tool's result (its failures are results too: `isError`).
    Tool(ToolResult),
    /// A prompt's `GetPromptResult`, or why its arguments or answers do not render.
    Prompt(Result<Value, String>),
    /// A prompt that did not finish (cancelled, timed out, panicked, stopped): an internal error.
    Failed(String),
}

impl Answer {
    /// The response to request `id`.
    pub fn encode(&self, id: &RequestId) -> Bytes {
        match self {
            Answer::Tool(r) => jsonrpc::response(id, r),
            Answer::Prompt(Ok(v)) => jsonrpc::response(id, v),
            Answer::Prompt(Err(message)) => jsonrpc::error_response(
                Some(id),
                &RpcError::new(ErrorCode::INVALID_PARAMS, message.clone()),
            ),
            Answer::Failed(message) => jsonrpc::error_response(
                Some(id),
                &RpcError::new(ErrorCode::INTERNAL_ERROR, message.clone()),
            ),
        }
    }
}

/// The future a call runs (the handler's own box: wrapping it would allocate again).
pub(crate) enum Work {
    Tool(BoxFuture<ToolResult>),
    Prompt(BoxFuture<Result<Value, String>>),
}

impl Work {
    /// True for a prompt's call.
    pub fn is_prompt(&self) -> bool {
        matches!(self, Work::Prompt(_))
    }
}

impl Future for Work {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match self.get_mut() {
            Work::Tool(f) => f.as_mut().poll(cx).map(Answer::Tool),
            Work::Prompt(f) => f.as_mut().poll(cx).map(Answer::Prompt),
        }
    }
}
