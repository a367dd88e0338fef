//! Shared harness for the integration tests: the real `mcpd` binary on a real loopback socket,
//! driven by a small HTTP/1.1 client (hyper) that can also send what well-behaved clients never
//! send.
#![allow(dead_code)] // each test binary uses a different part

pub mod redis;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{HeaderMap, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// The headers a conforming client sends on POST.
pub const POST_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

/// [`POST_HEADERS`] plus the session id: what a conforming client sends inside a session.
pub fn post_headers(sid: &str) -> Vec<(&'static str, &str)> {
    let mut h: Vec<(&'static str, &str)> = POST_HEADERS.to_vec();
    h.push(("mcp-session-id", sid));
    h
}

/// A running `mcpd serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    config: PathBuf,
}

impl Server {
    /// Starts the binary with `extra` TOML appended to a config that listens on a free port.
    pub fn start(extra: &str) -> Server {
        Self::start_with_env(extra, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        let config = temp_path("toml");
        let has_log = extra.contains("[log]");
        let mut text = String::new();
        if !extra.contains("[server]") {
            text.push_str("[server]\nlisten = \"127.0.0.1:0\"\n");
        }
        text.push_str(extra);
        if !extra.contains("[shutdown]") {
            // Tests that do not test the drain should not wait for its grace when they stop.
            text.push_str("\n[shutdown]\ngrace = \"0ms\"\n");
        }
        if !has_log {
            text.push_str("\n[log]\nlevel = \"info\"\nformat = \"text\"\n");
        }
        std::fs::write(&config, text).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpd"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mcpd");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "mcpd did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child: Some(child),
            addr,
            logs,
            config,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The log lines containing every one of `parts`.
    pub fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .cloned()
            .collect()
    }

    /// Waits until a log line contains every one of `parts`.
    pub fn wait_log(&self, parts: &[&str], within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.log_lines(parts).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGKILL: the process dies without any cleanup.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(5));
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A fresh MCP session (initialize + initialized) at the latest protocol version.
    pub async fn session(&self) -> String {
        self.session_at("2025-11-25").await
    }

    /// A fresh MCP session negotiated at `version`.
    pub async fn session_at(&self, version: &str) -> String {
        let r = self.post(None, &initialize(version)).await;
        assert_eq!(r.status, 200, "initialize: {}", r.text());
        let sid = r.header("mcp-session-id").expect("session id").to_owned();
        let r = self
            .post(
                Some(&sid),
                &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            )
            .await;
        assert_eq!(r.status, 202);
        sid
    }

    /// POSTs a JSON-RPC message with the standard headers.
    pub async fn post(&self, sid: Option<&str>, body: &Value) -> Resp {
        let mut h: Vec<(&str, &str)> = POST_HEADERS.to_vec();
        if let Some(s) = sid {
            h.push(("mcp-session-id", s));
        }
        send(self.addr, "POST", "/mcp", &h, body.to_string()).await
    }

    /// Calls a tool and returns the whole reply (JSON or SSE).
    pub async fn call(&self, sid: &str, id: i64, tool: &str, args: Value) -> Resp {
        self.post(
            Some(sid),
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}}),
        )
        .await
    }

    /// Asserts the session still answers `echo` (the "lost nothing" check after bad input).
    pub async fn assert_alive(&self, sid: &str) {
        let r = self
            .call(sid, 9_999, "echo", json!({"message": "still here"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["result"]["content"][0]["text"], "Echo: still here");
    }

    /// Waits until the node's registry is connected, synced and has nothing queued.
    pub async fn wait_registry_synced(&self) {
        for _ in 0..200 {
            let (_, h) = self.health().await;
            if h["registry"]["synced"] == true && h["registry"]["queue"] == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("registry never synced: {}", self.health().await.1);
    }

    /// `/healthz` as JSON.
    pub async fn health(&self) -> (u16, Value) {
        let r = send(self.addr, "GET", "/healthz", &[], "").await;
        (r.status, r.json())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A file under the temporary directory that is removed when dropped, so a test run leaves
/// nothing behind. Derefs to its path as UTF-8 for command lines.
pub struct TempFile(String);

impl TempFile {
    /// A new file holding `text`.
    pub fn with(ext: &str, text: &str) -> Self {
        let path = temp_path(ext);
        std::fs::write(&path, text).expect("write a temporary file");
        Self(path.to_string_lossy().into_owned())
    }
}

impl std::ops::Deref for TempFile {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A unique temporary file path.
pub fn temp_path(ext: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("mcpd-test-{}-{n}.{ext}", std::process::id()))
}

/// An `initialize` request.
pub fn initialize(version: &str) -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": version,
        "capabilities": {"sampling": {}, "elicitation": {}},
        "clientInfo": {"name": "mcpd-tests", "version": "1.0.0"}
    }})
}

/// A complete response.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The SSE events of a complete SSE body.
    pub fn events(&self) -> Vec<Event> {
        parse_events(&self.text())
    }

    /// The JSON-RPC messages in this reply, whether JSON or SSE.
    pub fn messages(&self) -> Vec<Value> {
        if self.header("content-type") == Some("text/event-stream") {
            self.events()
                .into_iter()
                .filter(|e| !e.data.is_empty())
                .map(|e| serde_json::from_str(&e.data).expect("event data is JSON"))
                .collect()
        } else {
            vec![self.json()]
        }
    }

    /// Asserts an HTTP error with a JSON-RPC error body carrying `code`.
    /// Asserts the answer came with its length (`Content-Length`), not chunked: a client can
    /// tell it whole.
    pub fn assert_sent_with_length(&self) {
        assert_eq!(
            self.header("content-length"),
            Some(self.body.len().to_string().as_str()),
            "{:?}",
            self.headers
        );
        assert!(
            self.header("transfer-encoding").is_none(),
            "{:?}",
            self.headers
        );
    }

    pub fn assert_error(&self, status: u16, code: i64) {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
}

/// One SSE event.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub id: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// Parses SSE text into events (comments dropped; an event needs a blank line to end).
pub fn parse_events(text: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut ev = Event::default();
        let mut any = false;
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                ev.id = Some(v.to_owned());
                any = true;
            } else if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                ev.data.push_str(v);
                any = true;
            } else if let Some(v) = line.strip_prefix("retry: ") {
                ev.retry = v.parse().ok();
                any = true;
            }
        }
        if any {
            out.push(ev);
        }
    }
    out
}

async fn connect(addr: SocketAddr) -> http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", addr.to_string());
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).expect("request")
}

/// Sends a request and reads the whole response (10 s limit).
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let mut sender = connect(addr).await;
    let req = request(addr, method, path, headers, body);
    let fut = async {
        let res = sender.send_request(req).await.expect("response");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("response within 10s")
}

/// A streaming response (SSE) read incrementally.
pub struct Stream {
    pub status: u16,
    pub headers: HeaderMap,
    body: Incoming,
    buf: String,
    pub ended: bool,
    /// The body ended with an error (the connection closed before the body's proper end).
    pub broken: bool,
}

/// Sends a request and returns as soon as the headers arrive.
pub async fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Stream {
    let mut sender = connect(addr).await;
    let req = request(addr, method, path, headers, body);
    let res = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("headers within 10s")
        .expect("response");
    let (parts, body) = res.into_parts();
    Stream {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        buf: String::new(),
        ended: false,
        broken: false,
    }
}

/// Opens the standalone GET stream of a session.
pub async fn get_stream(addr: SocketAddr, sid: &str, last_event_id: Option<&str>) -> Stream {
    let mut h = vec![("accept", "text/event-stream"), ("mcp-session-id", sid)];
    if let Some(id) = last_event_id {
        h.push(("last-event-id", id));
    }
    open(addr, "GET", "/mcp", &h, "").await
}

impl Stream {
    /// Reads raw text until `within` passes or the stream ends; returns what arrived.
    pub async fn read_for(&mut self, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        let start = self.buf.len();
        while !self.ended {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => break,
                Ok(None) => self.ended = true,
                Ok(Some(Err(_))) => (self.ended, self.broken) = (true, true),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
        self.buf[start..].to_owned()
    }

    /// Waits (up to `within`) for the next complete event that carries data or a retry field.
    pub async fn next_event(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                if let Some(ev) = parse_events(&block).into_iter().next() {
                    return Some(ev);
                }
                continue; // a comment
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => self.ended = true,
                Ok(Some(Err(_))) => (self.ended, self.broken) = (true, true),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
    }

    /// The next event whose data is a JSON-RPC message.
    pub async fn next_message(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        while let Some(ev) = self
            .next_event(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            if !ev.data.is_empty() {
                return Some(serde_json::from_str(&ev.data).expect("JSON event"));
            }
        }
        None
    }

    /// Reads until the server ends the stream; true if it did within `within`.
    pub async fn wait_end(&mut self, within: Duration) -> bool {
        self.read_for(within).await;
        self.ended
    }

    /// Everything received and not yet consumed by `next_*`.
    pub fn pending_text(&self) -> &str {
        &self.buf
    }
}

/// Starts `script` (under `tests/`) with the Node 22 that tests/prereqs.sh installs and `env`, and
/// waits until it prints a line starting with `ready` (30 s). The caller stops it by its PID.
#[allow(dead_code)]
pub fn node_script(script: &str, env: &[(&str, String)], ready: &'static str) -> Child {
    let node = std::env::var("MCPT_NODE22").expect(
        "MCPT_NODE22 is not set: run the tests through tests/run.sh (or source the env.sh that \
         tests/prereqs.sh writes)",
    );
    let mut cmd = Command::new(node);
    cmd.arg(format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR")))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start a node script");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(ready) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("tests/{script} did not start");
    }
    child
}

/// A free port on 127.0.0.1 (for a helper that must be told its port).
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
