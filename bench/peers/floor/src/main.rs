//! The benchmark's floor: the cheapest HTTP/1.1 server hyper allows, answering with replies the
//! same size as mcpd's. Whatever mcpd costs above this is MCP work (parsing, sessions, routing),
//! not sockets or HTTP framing.
//!
//! It speaks just enough of the protocol for the shared load generator: `initialize` gets a
//! session id (always `floor`), notifications get 202, every other POST gets mcpd's 84-byte echo
//! reply, DELETE 200, anything else 405. It never parses JSON: it only scans the body for two
//! markers, so the cost it adds over raw HTTP stays close to zero.
//!
//! Env: PORT (required), RT=ct (default, current_thread) | mt (multi_thread, WORKERS=1 unless
//! set).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// Byte for byte what mcpd answers to `tools/call echo {"message":"hello"}` with id 1.
const ECHO_REPLY: &[u8] =
    br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"text":"Echo: hello","type":"text"}]}}"#;
const INIT_REPLY: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"floor","version":"0.0.0"}}}"#;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn reply(status: StatusCode, body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body)));
    *res.status_mut() = status;
    if !body.is_empty() {
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    res
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    match *req.method() {
        Method::POST => {
            // Read the whole body, as any real server must before it can answer.
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, b"")),
            };
            if !contains(&body, br#""id""#) {
                // A notification (e.g. notifications/initialized): accepted, no body.
                return Ok(reply(StatusCode::ACCEPTED, b""));
            }
            if contains(&body, br#""initialize""#) {
                let mut res = reply(StatusCode::OK, INIT_REPLY);
                res.headers_mut()
                    .insert("mcp-session-id", HeaderValue::from_static("floor"));
                return Ok(res);
            }
            Ok(reply(StatusCode::OK, ECHO_REPLY))
        }
        Method::DELETE => Ok(reply(StatusCode::OK, b"")),
        _ => {
            let mut res = reply(StatusCode::METHOD_NOT_ALLOWED, b"");
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, DELETE"));
            Ok(res)
        }
    }
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("floor listening on http://127.0.0.1:{port}/mcp");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // EMFILE and friends under load: keep serving the connections we have.
            Err(e) => {
                eprintln!("floor: accept: {e}");
                continue;
            }
        };
        // Each reply is one small write; without NODELAY, Nagle + the client's delayed ACK
        // would add ~40 ms to pipelined/keep-alive exchanges.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT must be set to a port number");
    let rt = match std::env::var("RT").as_deref() {
        Ok("mt") => {
            let workers = std::env::var("WORKERS")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or(1);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()?
        }
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    rt.block_on(serve(port))
}
