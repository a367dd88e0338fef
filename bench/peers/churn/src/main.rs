//! The benchmark's session-churn load generator: whole MCP session lifecycles, every connection
//! on one thread, every response checked.
//!
//! A lifecycle is four dependent requests: `initialize`, `notifications/initialized`,
//! `tools/call echo` and `DELETE`, the last three carrying the session id the first answer gave.
//! wrk keeps a Lua script's state per thread, not per connection, so its churn script needs one
//! thread per connection, and those threads then take turns sleeping and waking on the one load
//! core for every response. Against the bare floor that costs a quarter of what one wrk thread
//! drives over the same connections, and the load core is what limits the cell. Here every
//! connection is a task on tokio's current-thread runtime that keeps its own session state, and
//! responses are parsed with httparse, so the generator is cheap next to any server it drives.
//!
//! Checks, as in the wrk scripts: every answer must be 2xx; `initialize` must carry a session id
//! of visible ASCII and a body naming `protocolVersion`; the call's body must hold `Echo: hello`
//! (JSON or SSE, content-length or chunked). A failed step abandons the session and starts a new
//! one. A lifecycle counts when its `DELETE` is answered 2xx.
//!
//! Usage: `churn [--conns N] [--duration SECS] [--timeout SECS] http://HOST:PORT/PATH`
//!
//! Prints one line `BENCHJSON {...}` with the fields bench/lib/benchjson.lua writes for wrk, so
//! the driver reads both the same way. Latencies are per request, in microseconds.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcpd-bench-churn","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}"#;

/// A response body larger than this is an error, not something to buffer.
const MAX_BODY: usize = 16 << 20;
/// How much of a bad answer's body `first_bad` quotes.
const QUOTE: usize = 160;

struct Opts {
    addr: String,
    host: String,
    path: String,
    conns: usize,
    duration: Duration,
    timeout: Duration,
}

fn parse_args() -> Result<Opts, String> {
    let mut conns = 4usize;
    let mut duration = 10.0f64;
    let mut timeout = 5.0f64;
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--conns" => {
                conns = value("--conns")?
                    .parse()
                    .map_err(|e| format!("--conns: {e}"))?
            }
            "--duration" => {
                duration = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?
            }
            "--timeout" => {
                timeout = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?
            }
            _ if url.is_none() && !a.starts_with("--") => url = Some(a),
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let url = url.ok_or("no URL given")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("the URL must start with http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !host.contains(':') {
        return Err("the URL must name a port".into());
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if conns == 0 || !positive(duration) || !positive(timeout) {
        return Err("--conns, --duration and --timeout must be positive".into());
    }
    Ok(Opts {
        addr: host.to_string(),
        host: host.to_string(),
        path: path.to_string(),
        conns,
        duration: Duration::from_secs_f64(duration),
        timeout: Duration::from_secs_f64(timeout),
    })
}

/// The requests of a lifecycle, formatted once per connection. The three after `initialize`
/// are kept as the text before and after the session id.
struct Requests {
    init: Vec<u8>,
    with_sid: [(Vec<u8>, Vec<u8>); 3],
}

impl Requests {
    fn new(o: &Opts) -> Requests {
        const MARK: &str = "\u{1}SID\u{1}";
        let split = |method: &str, body: Option<&str>| {
            let r = format_request(method, o, Some(MARK), body);
            let at = r.find(MARK).unwrap_or(r.len());
            let (a, b) = r.split_at(at);
            (a.as_bytes().to_vec(), b.as_bytes()[MARK.len()..].to_vec())
        };
        Requests {
            init: format_request("POST", o, None, Some(INIT)).into_bytes(),
            with_sid: [
                split("POST", Some(INITIALIZED)),
                split("POST", Some(CALL)),
                split("DELETE", None),
            ],
        }
    }

    /// Writes request `step` (0 = initialize) for session `sid` into `out`.
    fn write(&self, step: usize, sid: &str, out: &mut Vec<u8>) {
        out.clear();
        if step == 0 {
            out.extend_from_slice(&self.init);
        } else {
            let (a, b) = &self.with_sid[step - 1];
            out.extend_from_slice(a);
            out.extend_from_slice(sid.as_bytes());
            out.extend_from_slice(b);
        }
    }
}

fn format_request(method: &str, o: &Opts, sid: Option<&str>, body: Option<&str>) -> String {
    let mut r = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json, text/event-stream\r\n",
        o.path, o.host
    );
    if let Some(s) = sid {
        let _ = write!(
            r,
            "Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-06-18\r\n"
        );
    }
    match body {
        Some(b) => {
            let _ = write!(
                r,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        }
        None => r.push_str("\r\n"),
    }
    r
}

/// What went wrong with one exchange, in wrk's error classes.
enum Fail {
    Write(String),
    Read(String),
}

/// One answer, its body decoded (chunked framing removed) into the connection's body buffer.
struct Reply {
    status: u16,
    sid: Option<String>,
    close: bool,
    wire_bytes: usize,
}

/// How a response body is framed.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
    Empty,
}

/// One keep-alive connection: the socket, bytes read but not yet used, and the last body.
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    body: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::with_capacity(16 << 10),
            body: Vec::with_capacity(4 << 10),
        }
    }

    /// Reads what the socket has; end of stream is an error unless `eof_ok`.
    async fn fill(&mut self, eof_ok: bool) -> Result<bool, Fail> {
        self.rbuf.reserve(16 << 10);
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) if eof_ok => Ok(false),
            Ok(0) => Err(Fail::Read("connection closed mid-response".into())),
            Ok(_) => Ok(true),
            Err(e) => Err(Fail::Read(e.to_string())),
        }
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<Reply, Fail> {
        self.stream
            .write_all(req)
            .await
            .map_err(|e| Fail::Write(e.to_string()))?;
        loop {
            let reply = self.read_reply().await?;
            // An interim answer (100 Continue and the like) comes before the real one.
            if !(100..200).contains(&reply.status) {
                return Ok(reply);
            }
        }
    }

    async fn read_reply(&mut self) -> Result<Reply, Fail> {
        let (status, sid, framing, close, head_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut headers);
            match head.parse(&self.rbuf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = head.code.unwrap_or(0);
                    let mut sid = None;
                    let mut length = None;
                    let mut chunked = false;
                    let mut close = head.version == Some(0);
                    for h in head.headers.iter() {
                        let v = h.value;
                        if h.name.eq_ignore_ascii_case("mcp-session-id") {
                            sid = Some(String::from_utf8_lossy(v).into_owned());
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.trim().parse::<usize>().ok())
                                .filter(|n| *n <= MAX_BODY)
                                .ok_or_else(|| Fail::Read("bad content-length".into()))?;
                            length = Some(n);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = ascii_contains(v, b"chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close |= ascii_contains(v, b"close");
                        }
                    }
                    let framing = if (100..200).contains(&status) || status == 204 || status == 304
                    {
                        Framing::Empty
                    } else if chunked {
                        Framing::Chunked
                    } else if let Some(n) = length {
                        Framing::Length(n)
                    } else {
                        Framing::UntilClose
                    };
                    break (status, sid, framing, close, n);
                }
                Ok(httparse::Status::Partial) => {
                    self.fill(false).await?;
                }
                Err(e) => return Err(Fail::Read(format!("bad response head: {e}"))),
            }
        };
        self.body.clear();
        let (end, close) = match framing {
            Framing::Empty => (head_len, close),
            Framing::Length(n) => {
                while self.rbuf.len() < head_len + n {
                    self.fill(false).await?;
                }
                self.body
                    .extend_from_slice(&self.rbuf[head_len..head_len + n]);
                (head_len + n, close)
            }
            Framing::Chunked => (self.read_chunked(head_len).await?, close),
            Framing::UntilClose => {
                while self.fill(true).await? {
                    if self.rbuf.len() - head_len > MAX_BODY {
                        return Err(Fail::Read("body too large".into()));
                    }
                }
                self.body.extend_from_slice(&self.rbuf[head_len..]);
                (self.rbuf.len(), true)
            }
        };
        self.rbuf.drain(..end);
        Ok(Reply {
            status,
            sid,
            close,
            wire_bytes: end,
        })
    }

    /// Decodes a chunked body that starts at `pos` in the read buffer into `body`; returns where
    /// the response ends.
    async fn read_chunked(&mut self, mut pos: usize) -> Result<usize, Fail> {
        loop {
            let line_end = self.line_end(pos).await?;
            let line = &self.rbuf[pos..line_end];
            let digits = line.split(|b| *b == b';').next().unwrap_or(line);
            let size = std::str::from_utf8(digits)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .filter(|n| *n <= MAX_BODY)
                .ok_or_else(|| Fail::Read("bad chunk size".into()))?;
            pos = line_end + 2;
            if size == 0 {
                // Trailer lines, if any, then the empty line that ends the message.
                loop {
                    let end = self.line_end(pos).await?;
                    let empty = end == pos;
                    pos = end + 2;
                    if empty {
                        return Ok(pos);
                    }
                }
            }
            while self.rbuf.len() < pos + size + 2 {
                self.fill(false).await?;
            }
            if &self.rbuf[pos + size..pos + size + 2] != b"\r\n" {
                return Err(Fail::Read("chunk not followed by CRLF".into()));
            }
            if self.body.len() + size > MAX_BODY {
                return Err(Fail::Read("body too large".into()));
            }
            self.body.extend_from_slice(&self.rbuf[pos..pos + size]);
            pos += size + 2;
        }
    }

    /// The index of the CRLF ending the line that starts at `pos`, reading until it arrives.
    async fn line_end(&mut self, pos: usize) -> Result<usize, Fail> {
        loop {
            if let Some(i) = find(&self.rbuf[pos..], b"\r\n") {
                return Ok(pos + i);
            }
            if self.rbuf.len() - pos > 4096 {
                return Err(Fail::Read("chunk line too long".into()));
            }
            self.fill(false).await?;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn ascii_contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// What one connection counted; summed over connections at the end.
#[derive(Default)]
struct Tally {
    requests: u64,
    bytes: u64,
    sessions: u64,
    bad_status: u64,
    bad_body: u64,
    no_sid: u64,
    err_connect: u64,
    err_read: u64,
    err_write: u64,
    err_timeout: u64,
    first_bad: String,
    lat_us: Vec<u32>,
}

impl Tally {
    fn note(&mut self, what: impl FnOnce() -> String) {
        if self.first_bad.is_empty() {
            self.first_bad = what();
        }
    }

    fn merge(&mut self, o: Tally) {
        self.requests += o.requests;
        self.bytes += o.bytes;
        self.sessions += o.sessions;
        self.bad_status += o.bad_status;
        self.bad_body += o.bad_body;
        self.no_sid += o.no_sid;
        self.err_connect += o.err_connect;
        self.err_read += o.err_read;
        self.err_write += o.err_write;
        self.err_timeout += o.err_timeout;
        if self.first_bad.is_empty() {
            self.first_bad = o.first_bad;
        }
        self.lat_us.extend(o.lat_us);
    }
}

/// A session id the generator can send back: visible ASCII, as the spec requires.
fn usable_sid(sid: &str) -> bool {
    !sid.is_empty() && sid.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// One connection walking lifecycles until `deadline`.
async fn drive(o: std::sync::Arc<Opts>, deadline: Instant) -> Tally {
    let reqs = Requests::new(&o);
    let mut t = Tally::default();
    let mut conn: Option<Conn> = None;
    let mut sid = String::new();
    let mut step = 0usize;
    let mut req = Vec::with_capacity(1024);
    while Instant::now() < deadline {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match TcpStream::connect(&o.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn.insert(Conn::new(s))
                }
                Err(e) => {
                    t.err_connect += 1;
                    t.note(|| format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        reqs.write(step, &sid, &mut req);
        let t0 = Instant::now();
        let own_limit = t0 + o.timeout;
        let limit = own_limit.min(deadline);
        let res = tokio::time::timeout_at(limit.into(), c.exchange(&req)).await;
        let reply = match res {
            // Cut by the end of the run, not by its own timeout: not counted, as in wrk.
            Err(_) if own_limit > deadline => break,
            Err(_) => {
                t.err_timeout += 1;
                t.note(|| format!("step {step} timeout"));
                conn = None;
                step = 0;
                continue;
            }
            Ok(Err(Fail::Write(e))) => {
                t.err_write += 1;
                t.note(|| format!("step {step} write: {e}"));
                conn = None;
                step = 0;
                continue;
            }
            Ok(Err(Fail::Read(e))) => {
                t.err_read += 1;
                t.note(|| format!("step {step} read: {e}"));
                conn = None;
                step = 0;
                continue;
            }
            Ok(Ok(r)) => r,
        };
        let micros = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        t.requests += 1;
        t.bytes += reply.wire_bytes as u64;
        t.lat_us.push(micros);
        let body = &c.body;
        let quote = |kind: &str| {
            let end = body.len().min(QUOTE);
            format!(
                "step {step} {kind} {}: {}",
                reply.status,
                String::from_utf8_lossy(&body[..end])
            )
        };
        let failed = if !(200..300).contains(&reply.status) {
            t.bad_status += 1;
            Some(quote("status"))
        } else {
            match step {
                0 => match reply.sid.as_deref() {
                    Some(s) if usable_sid(s) => {
                        if find(body, b"protocolVersion").is_some() {
                            sid.clear();
                            sid.push_str(s);
                            None
                        } else {
                            t.bad_body += 1;
                            Some(quote("body"))
                        }
                    }
                    _ => {
                        t.no_sid += 1;
                        Some(quote("sid"))
                    }
                },
                2 if find(body, b"Echo: hello").is_none() => {
                    t.bad_body += 1;
                    Some(quote("body"))
                }
                3 => {
                    t.sessions += 1;
                    None
                }
                _ => None,
            }
        };
        match failed {
            Some(msg) => {
                t.note(|| msg);
                step = 0;
            }
            None => step = (step + 1) % 4,
        }
        if reply.close {
            conn = None;
        }
    }
    t
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q / 100.0) * sorted.len() as f64) as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let o = match parse_args() {
        Ok(o) => std::sync::Arc::new(o),
        Err(e) => {
            eprintln!("churn: {e}");
            eprintln!(
                "usage: churn [--conns N] [--duration SECS] [--timeout SECS] http://HOST:PORT/PATH"
            );
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("churn: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let (mut total, elapsed) = rt.block_on(async {
        let start = Instant::now();
        let deadline = start + o.duration;
        let tasks: Vec<_> = (0..o.conns)
            .map(|_| tokio::spawn(drive(o.clone(), deadline)))
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            match task.await {
                Ok(t) => total.merge(t),
                Err(e) => {
                    total.err_read += 1;
                    total.note(|| format!("connection task failed: {e}"));
                }
            }
        }
        (total, start.elapsed())
    });
    total.lat_us.sort_unstable();
    let lat = &total.lat_us;
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|v| *v as f64).sum::<f64>() / lat.len() as f64
    };
    println!(
        "BENCHJSON {{\"requests\":{},\"duration_us\":{},\"bytes\":{},\"sessions\":{},\
         \"bad_status\":{},\"bad_body\":{},\"no_sid\":{},\"err_connect\":{},\"err_read\":{},\
         \"err_write\":{},\"err_status\":{},\"err_timeout\":{},\"lat_p50_us\":{},\
         \"lat_p90_us\":{},\"lat_p99_us\":{},\"lat_p999_us\":{},\"lat_max_us\":{},\
         \"lat_mean_us\":{:.1},\"first_bad\":{}}}",
        total.requests,
        elapsed.as_micros(),
        total.bytes,
        total.sessions,
        total.bad_status,
        total.bad_body,
        total.no_sid,
        total.err_connect,
        total.err_read,
        total.err_write,
        total.bad_status,
        total.err_timeout,
        percentile(lat, 50.0),
        percentile(lat, 90.0),
        percentile(lat, 99.0),
        percentile(lat, 99.9),
        lat.last().copied().unwrap_or(0),
        mean,
        json_str(&total.first_bad),
    );
}
