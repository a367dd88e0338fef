//! Misroute rescue: a request for a session another live node holds is sent to that node and its
//! answer — a JSON reply or a long-lived SSE stream — is relayed unchanged. The session's state
//! never moves (ADR-0066); only bytes take one extra hop.
//!
//! The forwarded request keeps the client's headers (Host and Origin included, so the owner
//! applies its own checks), gains `mcpd-forwarded-by` (a marked request is never forwarded again)
//! and the cluster's peer secret when one is configured. An owner that does not accept a
//! connection within a short timeout is reported to the caller, which may adopt the session
//! (see `session::adopt`); other failures answer as the ADR decides — 404 — never a long stall.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use super::Body;
use crate::mcp::jsonrpc::ErrorCode;
use crate::mcp::transport::{header as mcp_header, Forward, Reply};

/// How long a peer may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest answer (other than an SSE stream) relayed from a peer. Relayed answers are read
/// whole before they are sent on; a larger one is answered as broken (502).
const MAX_RELAYED_ANSWER: usize = 64 << 20;

/// Hop-by-hop headers (RFC 9110 §7.6.1) are this connection's, not the request's.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Sends misrouted requests to their owners over pooled keep-alive connections.
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    /// The same without a pool: the one retry after a pooled connection broke must not take
    /// another pooled connection, which a draining owner is closing just the same.
    fresh: Client<HttpConnector, Full<Bytes>>,
    node: HeaderValue,
    secret: Option<HeaderValue>,
    response_timeout: Duration,
    /// Cancelled when this node closes its streams (drain): relayed streams end with them, so a
    /// draining node is not held open by other nodes' sessions.
    closing: CancellationToken,
}

impl Forwarder {
    /// A forwarder for the node `node`; `response_timeout` bounds the wait for the owner's
    /// response headers (a JSON-mode tool call answers only when it is done).
    pub fn new(
        node: &str,
        secret: Option<&str>,
        response_timeout: Duration,
        closing: CancellationToken,
    ) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Forwarder {
            client: Client::builder(TokioExecutor::new()).build(connector.clone()),
            fresh: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector),
            node: HeaderValue::from_str(node).unwrap_or(HeaderValue::from_static("unknown")),
            secret: secret.and_then(|s| HeaderValue::from_str(s).ok()),
            response_timeout,
            closing,
        }
    }

    /// Relays one request to `to` and its answer back: the response and whether it is the
    /// owner's (`true`) or a 404 because relaying failed after connecting, as the ADR decides
    /// for a session that cannot be served. `Err` when `to` did not accept a connection (the
    /// caller may take the request itself: the owner is likely gone).
    pub async fn forward(
        &self,
        to: &Forward,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(Response<Body>, bool), Unreachable> {
        let started = std::time::Instant::now();
        let outcome = self.send(to, method, uri, headers, body).await;
        let label = match &outcome {
            Ok(_) => "relayed",
            Err(ForwardError::Connect(_)) => "refused",
            Err(ForwardError::Closed(_)) => "closed",
            Err(ForwardError::Broken(_)) => "broken",
            Err(_) => "unreachable",
        };
        crate::telemetry::metrics()
            .forwarded
            .get_or_create(&crate::telemetry::metrics::ForwardLabels {
                to: to.node.clone(),
                outcome: label,
            })
            .inc();
        match outcome {
            Ok(response) => Ok((response, true)),
            Err(e) => {
                let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                if let ForwardError::Connect(_) | ForwardError::Closed(_) = e {
                    tracing::info!(owner_node = %to.node, url = %to.url, error = %e, elapsed_ms, "the session's owner does not accept connections");
                    return Err(Unreachable);
                }
                if let ForwardError::Broken(_) = e {
                    // The owner may have run the request: say so, whole, and let the client
                    // decide. Its session is not in question.
                    tracing::warn!(owner_node = %to.node, url = %to.url, error = %e, elapsed_ms, "the owner's answer broke off; answering 502");
                    return Ok((
                        super::translate::into_response(Reply::error(
                            502,
                            ErrorCode::INTERNAL_ERROR,
                            format!(
                                "Bad Gateway: the answer of node {} (which holds this session) broke off; the request may have run there",
                                to.node
                            ),
                        ), HeaderMap::new()),
                        false,
                    ));
                }
                tracing::warn!(
                    owner_node = %to.node,
                    url = %to.url,
                    error = %e,
                    elapsed_ms,
                    "cannot forward to the session's owner; answering 404"
                );
                Ok((
                    super::translate::into_response(Reply::session_not_found(), HeaderMap::new()),
                    false,
                ))
            }
        }
    }

    async fn send(
        &self,
        to: &Forward,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Body>, ForwardError> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let target: Uri = format!("{}{path}", to.url)
            .parse()
            .map_err(|_| ForwardError::BadUrl(to.url.clone()))?;
        let mut out = HeaderMap::with_capacity(headers.len() + 2);
        for (name, value) in headers {
            if !is_hop_by_hop(name)
                && *name != header::CONTENT_LENGTH
                && name.as_str() != mcp_header::PEER_SECRET
            {
                out.append(name.clone(), value.clone());
            }
        }
        // The request's path so far, then this node: the next node never sends it back here.
        let path = match headers
            .get(mcp_header::FORWARDED_BY)
            .and_then(|v| v.to_str().ok())
        {
            Some(before) if !before.is_empty() => {
                HeaderValue::from_str(&format!("{before},{}", self.node.to_str().unwrap_or("")))
                    .unwrap_or_else(|_| self.node.clone())
            }
            _ => self.node.clone(),
        };
        out.insert(mcp_header::FORWARDED_BY, path);
        if let Some(secret) = &self.secret {
            out.insert(mcp_header::PEER_SECRET, secret.clone());
        }
        let build = || {
            let mut req = Request::builder()
                .method(method.clone())
                .uri(target.clone())
                .body(Full::new(body.clone()))
                .map_err(|_| ForwardError::BadUrl(to.url.clone()))?;
            *req.headers_mut() = out.clone();
            Ok::<_, ForwardError>(req)
        };
        let mut res = self.attempt(&self.client, build()?).await;
        if let Err(ForwardError::Peer(e) | ForwardError::Closed(e)) = &res {
            // A pooled keep-alive connection the owner closed as we sent on it (it is draining or
            // just exited): the owner never read the request, since a server finishes what it
            // reads before it closes. Once more on a new connection — never another pooled one,
            // which the owner is closing too — to tell a node that is gone (refused) from one
            // that is not.
            tracing::debug!(owner_node = %to.node, error = %e, "forwarding failed on a pooled connection; retrying once on a new one");
            res = self.attempt(&self.fresh, build()?).await;
        }
        let res = res?;
        let (parts, incoming) = res.into_parts();
        // An SSE stream is relayed event by event, and ends here, cleanly, when it breaks there
        // or when this node drains: its client resumes with Last-Event-ID through any node,
        // which SDKs do on a stream's end but not all on a broken connection.
        //
        // Any other answer (JSON, an error) is read whole from the owner before anything is sent
        // here, then sent with its length. So it is never cut on the way: an answer that breaks
        // off at the owner, is too large or too slow becomes a whole error reply of this node
        // (the caller's [`ForwardError::Broken`]), never a half body that the client cannot tell
        // from a lost call, and a client never has to read a chunked JSON body.
        let is_stream = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = if is_stream {
            let owner = to.node.clone();
            let stream = incoming
                .into_data_stream()
                .take_while(move |chunk| {
                    if let Err(e) = chunk {
                        tracing::info!(owner_node = %owner, error = %e, "the owner's stream broke off; ending it here");
                    }
                    std::future::ready(chunk.is_ok())
                })
                .filter_map(|chunk| std::future::ready(chunk.ok()))
                .take_until(self.closing.clone().cancelled_owned());
            Body::Stream(stream.boxed())
        } else {
            let whole = Limited::new(incoming, MAX_RELAYED_ANSWER).collect();
            match tokio::time::timeout(self.response_timeout, whole).await {
                Ok(Ok(collected)) => match collected.to_bytes() {
                    bytes if bytes.is_empty() => Body::Empty,
                    bytes => Body::full(bytes),
                },
                Ok(Err(e)) => return Err(ForwardError::Broken(format!("{e:#}"))),
                Err(_) => {
                    return Err(ForwardError::Broken(format!(
                        "no whole answer within {:?}",
                        self.response_timeout
                    )))
                }
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = parts.status;
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) && *name != header::CONTENT_LENGTH {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        Ok(response)
    }
}

impl Forwarder {
    /// One try: the owner's response headers, or why there are none.
    async fn attempt(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<hyper::body::Incoming>, ForwardError> {
        tokio::time::timeout(self.response_timeout, client.request(req))
            .await
            .map_err(|_| ForwardError::Timeout)?
            .map_err(|e| {
                if e.is_connect() {
                    ForwardError::Connect(format!("{e:#}"))
                } else if closed_unanswered(&e) {
                    ForwardError::Closed(format!("{e:#}"))
                } else {
                    ForwardError::Peer(format!("{e:#}"))
                }
            })
    }
}

/// Whether the connection closed (or was reset) before any answer came. On a connection opened
/// for this request that is a listener going away: the kernel completed the handshake, and the
/// owner closed its listener (its drain, or its exit) before taking the connection, which resets
/// it. A server that reads a request answers it before it closes, so the owner did not run it.
fn closed_unanswered(e: &hyper_util::client::legacy::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || name == header::UPGRADE
}

/// The peer did not accept a connection (refused, or no answer within the connect timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable;

/// Why a request could not be relayed.
#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("connecting failed: {0}")]
    Connect(String),
    /// The connection closed or was reset before any answer (see [`closed_unanswered`]).
    #[error("closed before answering: {0}")]
    Closed(String),
    #[error("the peer's advertised URL {0:?} is not usable")]
    BadUrl(String),
    #[error("no response from the peer in time")]
    Timeout,
    /// The peer's answer began but did not arrive whole (closed, reset, too slow or too large).
    #[error("the answer broke off: {0}")]
    Broken(String),
    #[error("{0}")]
    Peer(String),
}
