//! Routing: which handler answers a request, and the MCP endpoint's flow through it (head,
//! body, endpoint, relay). The head and the reply are translated in [`translate`](super::translate).

use std::future::{ready, Future, Ready};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::translate::{into_response, read_headers, respond};
use super::Body;
use crate::auth::{Auth, Check};
use crate::mcp::jsonrpc::ErrorCode;
use crate::mcp::transport::{Reply, RequestHeaders};
use crate::mcp::{Endpoint, HttpMethod};

/// How many nodes a request is relayed to at most while each refuses the connection: the owner,
/// then the nodes the registry names after each refusal. Each refusal costs one connect attempt:
/// refused at once, or the forwarder's connect timeout at worst.
const RELAY_ATTEMPTS: usize = 3;

/// How a relayed request ended: the other node's response, or a reply made here after all.
enum Relayed {
    Response(Response<Body>),
    Reply(Reply),
}

/// Routes requests to the MCP endpoint and the operational endpoints.
pub struct Router {
    endpoint: Endpoint,
    path: String,
    node: Arc<str>,
    max_body: usize,
    body_timeout: Duration,
    draining: CancellationToken,
    forwarder: super::Forwarder,
    /// At the drain's deadline, requests still without an answer get a 503.
    deadline: super::drain::Deadline,
    /// The resource server, when `auth.enabled`.
    auth: Option<Arc<Auth>>,
}

impl Router {
    /// `draining` turns `/healthz` to 503 (so load balancers move new clients away);
    /// `forwarder` relays misrouted requests to their owners; `auth` checks every MCP request's
    /// bearer token.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        endpoint: Endpoint,
        path: String,
        node: Arc<str>,
        max_body: usize,
        body_timeout: Duration,
        draining: CancellationToken,
        forwarder: super::Forwarder,
        auth: Option<Arc<Auth>>,
    ) -> Router {
        Router {
            endpoint,
            path,
            node,
            max_body,
            body_timeout,
            draining,
            forwarder,
            deadline: super::drain::Deadline::default(),
            auth,
        }
    }

    /// The 503 of a request still waiting at the drain's deadline (for a relayed answer, or for
    /// its body): whole, and saying the request may or may not have run.
    fn shut_down_unanswered(&self) -> Reply {
        Reply::unavailable(
            format!(
                "Service Unavailable: node {} shut down before this request was answered \
                 (shutdown.request_grace); it may or may not have run",
                self.node
            ),
            1,
        )
    }

    /// The drain's deadline for the requests still waiting for an answer.
    pub(super) fn deadline(&self) -> &super::drain::Deadline {
        &self.deadline
    }

    /// Answers one request. Routed before any future exists: the future the connection boxes per
    /// request is then only the MCP endpoint's, and holds the request once, already split.
    pub fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Either<Ready<Response<Body>>, impl Future<Output = Response<Body>> + Send + '_> {
        let path = req.uri().path();
        if path == self.path {
            let (parts, incoming) = req.into_parts();
            Either::Right(self.mcp(parts, incoming))
        } else if path == "/healthz" {
            Either::Left(ready(self.healthz(req.method())))
        } else if path == "/metrics" {
            Either::Left(ready(self.metrics(req.method())))
        } else if let Some(auth) = self.auth.as_ref().filter(|a| a.metadata().serves(path)) {
            Either::Left(ready(resource_metadata(auth, req.method())))
        } else {
            Either::Left(ready(json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "not found", "endpoints": [&self.path, "/healthz", "/metrics"]}),
            )))
        }
    }

    fn metrics(&self, method: &Method) -> Response<Body> {
        if let Some(refused) = get_only(method) {
            return refused;
        }
        let sessions = self.endpoint.sessions();
        let registry = sessions.registry().map(|r| {
            let s = r.status();
            (s.state == "connected", s.queue, s.errors)
        });
        let text = crate::telemetry::metrics().render(sessions.len(), registry);
        let mut r = Response::new(Body::full(text));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        r
    }

    fn healthz(&self, method: &Method) -> Response<Body> {
        if let Some(refused) = get_only(method) {
            return refused;
        }
        let registry = self.endpoint.sessions().registry();
        let (status, state) = if self.draining.is_cancelled() {
            (StatusCode::SERVICE_UNAVAILABLE, "draining")
        } else if registry.is_some_and(|r| r.starting()) {
            (StatusCode::SERVICE_UNAVAILABLE, "starting")
        } else {
            (StatusCode::OK, "serving")
        };
        let registry = match registry {
            Some(r) => json!(r.status()),
            None => json!({"state": "off"}),
        };
        json_response(
            status,
            json!({
                "status": state,
                "node": &*self.node,
                "sessions": self.endpoint.sessions().len(),
                "registry": registry,
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
    }

    /// The MCP endpoint. The body is read and the endpoint called right here, not through
    /// helper futures: every nested future would be stored inside this one, which the
    /// connection allocates per request.
    ///
    /// Not an `async fn`: that would store its arguments twice, as arguments and again as
    /// locals; the `async move` block uses them in place.
    #[allow(clippy::manual_async_fn)]
    fn mcp(
        &self,
        mut parts: http::request::Parts,
        incoming: Incoming,
    ) -> impl Future<Output = Response<Body>> + Send + '_ {
        async move {
            let principal = match &self.auth {
                None => None,
                Some(auth) => match self.authorize(auth, &parts.headers).await {
                    Ok(p) => Some(p),
                    Err(refused) => return refused,
                },
            };
            let method = match parts.method {
                Method::POST => HttpMethod::Post,
                Method::GET => HttpMethod::Get,
                Method::DELETE => HttpMethod::Delete,
                _ => HttpMethod::Other,
            };
            let mut params = Vec::new();
            let mut headers = match read_headers(
                &parts.headers,
                parts.uri.authority().map(|a| a.as_str()),
                &mut params,
            ) {
                Ok(h) => h,
                Err(reply) => return respond(reply, &mut parts.headers),
            };
            headers.params = &params;
            headers.principal = principal.as_ref();
            if let Err(reply) = self.endpoint.precheck(method, &headers) {
                return respond(reply, &mut parts.headers);
            }
            let body = match method {
                HttpMethod::Post => match self.read_body(&parts.headers, incoming).await {
                    Ok(body) => body,
                    Err(reply) => {
                        self.finish(method, &parts.method, &headers, &reply);
                        return respond(reply, &mut parts.headers);
                    }
                },
                _ => Bytes::new(),
            };
            // The reply ends with this block, before the relay's await: it takes no room in this
            // future.
            let to = {
                let mut reply = match method {
                    HttpMethod::Post => self.endpoint.post(&headers, &body).await,
                    HttpMethod::Get => self.endpoint.get(&headers).await,
                    HttpMethod::Delete => self.endpoint.delete(&headers).await,
                    HttpMethod::Other => Reply::method_not_allowed(),
                };
                match reply.forward.take() {
                    Some(to) => to,
                    None => {
                        self.finish(method, &parts.method, &headers, &reply);
                        return respond(reply, &mut parts.headers);
                    }
                }
            };
            // Boxed, as is the miss path below the endpoint: a hyper client future is KiBs, and
            // an inline one would make every request's future that large.
            // The relay is the one wait here that the sessions' drain does not end: bounded by
            // the drain's deadline.
            let relayed = self.relay(to, method, &parts, headers, body);
            let relayed = self
                .deadline
                .until(relayed, || Relayed::Reply(self.shut_down_unanswered()));
            match Box::pin(relayed).await {
                Relayed::Response(response) => response,
                Relayed::Reply(reply) => {
                    self.finish(method, &parts.method, &headers, &reply);
                    into_response(reply, HeaderMap::new())
                }
            }
        }
    }

    /// The bearer of the request's token, or the refusal to send (401, 403 or 503). Waits only
    /// when the token's key is new to this node (boxed: that path fetches over the network).
    async fn authorize(
        &self,
        auth: &Auth,
        headers: &HeaderMap,
    ) -> Result<crate::auth::Principal, Response<Body>> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let authorization = values.next().map(HeaderValue::as_bytes);
        let checked = if values.next().is_some() {
            Check::Refused(auth.malformed())
        } else {
            match auth.check(authorization) {
                Check::NeedsKeys => Box::pin(auth.check_fetching(authorization)).await,
                checked => checked,
            }
        };
        let refusal = match checked {
            Check::Valid(p) => {
                crate::telemetry::metrics().auth(crate::auth::Outcome::Ok.label());
                return Ok(p);
            }
            Check::Refused(r) => r,
            Check::NeedsKeys => auth.missing(),
        };
        crate::telemetry::metrics().auth(refusal.outcome.label());
        tracing::info!(node = %self.node, outcome = refusal.outcome.label(), status = refusal.status, reason = %refusal.description, "request refused by authorization");
        Err(into_response(Reply::refused(&refusal), HeaderMap::new()))
    }

    /// Counts and logs a reply the endpoint made here.
    fn finish(
        &self,
        method: HttpMethod,
        http_method: &Method,
        headers: &RequestHeaders<'_>,
        reply: &Reply,
    ) {
        let method_label = match method {
            HttpMethod::Post => "POST",
            HttpMethod::Get => "GET",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Other => "other",
        };
        crate::telemetry::metrics().request(method_label, reply.status);
        let principal = headers.principal;
        tracing::debug!(
            node = %self.node,
            method = %http_method,
            session_id = headers.session_id.unwrap_or(""),
            status = reply.status,
            sub = principal.map_or("", |p| p.subject()),
            client_id = principal.and_then(|p| p.client_id()).unwrap_or(""),
            "mcp request"
        );
    }

    /// Relays a request the endpoint says belongs to another node. A node that refuses the
    /// connection is likely gone, so the request runs here once more knowing that: it is adopted
    /// here, or relayed to the node the registry names now. That node may be gone too (it adopted
    /// the session, then went down itself in the same rolling restart), so this repeats, up to
    /// [`RELAY_ATTEMPTS`] nodes; past that the answer is a logged 404.
    async fn relay(
        &self,
        mut to: Box<crate::mcp::transport::Forward>,
        method: HttpMethod,
        parts: &http::request::Parts,
        headers: RequestHeaders<'_>,
        body: Bytes,
    ) -> Relayed {
        for attempt in 1..=RELAY_ATTEMPTS {
            tracing::debug!(node = %self.node, owner_node = %to.node, method = %parts.method, attempt, "forwarding to the session's owner");
            let forwarded = self
                .forwarder
                .forward(&to, &parts.method, &parts.uri, &parts.headers, body.clone())
                .await;
            match forwarded {
                Ok((response, relayed)) => {
                    if relayed {
                        self.endpoint.forwarded(&to);
                    }
                    return Relayed::Response(response);
                }
                Err(super::forward::Unreachable) => {
                    self.endpoint.owner_unreachable(&to.node);
                    if attempt == RELAY_ATTEMPTS {
                        break;
                    }
                    let retry = RequestHeaders {
                        unreachable_owner: Some(&to.node),
                        ..headers
                    };
                    let mut reply = self.run(method, &retry, &body).await;
                    match reply.forward.take() {
                        Some(next) => to = next,
                        None => return Relayed::Reply(reply),
                    }
                }
            }
        }
        tracing::warn!(
            node = %self.node,
            owner_node = %to.node,
            session_id = %to.session_id,
            attempts = RELAY_ATTEMPTS,
            "none of the nodes named as the session's holder accepts connections; answering 404"
        );
        Relayed::Reply(Reply::session_not_found())
    }

    /// The endpoint's answer to a request whose body was read.
    async fn run(&self, method: HttpMethod, headers: &RequestHeaders<'_>, body: &Bytes) -> Reply {
        match method {
            HttpMethod::Post => self.endpoint.post(headers, body).await,
            HttpMethod::Get => self.endpoint.get(headers).await,
            HttpMethod::Delete => self.endpoint.delete(headers).await,
            HttpMethod::Other => Reply::method_not_allowed(),
        }
    }

    /// Reads a POST body: 413 past the limit (before reading when Content-Length says so), 408
    /// when the client is too slow to send it.
    async fn read_body(&self, headers: &HeaderMap, incoming: Incoming) -> Result<Bytes, Reply> {
        let too_large = || {
            Reply::error(
                413,
                ErrorCode::INVALID_REQUEST,
                format!(
                    "Payload Too Large: the body limit is {} bytes",
                    self.max_body
                ),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let mut collect = std::pin::pin!(Limited::new(incoming, self.max_body).collect());
        // A small body has usually arrived with the head and is whole at the first poll: the
        // timer (a clock read and a timer entry) is made only for a body still on its way.
        let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
        let collected = match first {
            Poll::Ready(done) => Ok(done),
            // Boxed: inline, the wait's state would make every request's future larger (measured:
            // ~470 more instructions a call), for a branch few requests take.
            Poll::Pending => {
                let rest = async { Some(tokio::time::timeout(self.body_timeout, collect).await) };
                match Box::pin(self.deadline.until(rest, || None)).await {
                    Some(collected) => collected,
                    None => return Err(self.shut_down_unanswered()),
                }
            }
        };
        match collected {
            Err(_) => Err(Reply::error(
                408,
                ErrorCode::INVALID_REQUEST,
                "Request Timeout: the body took too long to arrive",
            )),
            Ok(Err(e))
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(too_large())
            }
            Ok(Err(e)) => Err(Reply::error(
                400,
                ErrorCode::INVALID_REQUEST,
                format!("Bad Request: cannot read the body: {e}"),
            )),
            Ok(Ok(c)) => Ok(c.to_bytes()),
        }
    }
}

/// 405 with `Allow: GET, HEAD` for anything but GET and HEAD (the operational endpoints).
fn get_only(method: &Method) -> Option<Response<Body>> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let mut r = json_response(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use GET"}));
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(r)
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `/.well-known/oauth-protected-resource[/path]` (RFC 9728): public, readable from browsers.
fn resource_metadata(auth: &Auth, method: &Method) -> Response<Body> {
    let mut response = match *method {
        Method::GET | Method::HEAD => {
            let mut r = Response::new(Body::full(auth.metadata().json()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Method::OPTIONS => {
            let mut r = Response::new(Body::Empty);
            *r.status_mut() = StatusCode::NO_CONTENT;
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("*"),
            );
            r
        }
        _ => {
            let mut r = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method not allowed"}),
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            r
        }
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
