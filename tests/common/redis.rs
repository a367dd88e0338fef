//! A private `redis-server` per test, on a free loopback port, and a tiny RESP client to look at
//! what mcpd wrote.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    Str(String),
    Err(String),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn str(&self) -> Option<&str> {
        match self {
            Reply::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn strings(&self) -> Vec<String> {
        match self {
            Reply::Array(items) => items
                .iter()
                .filter_map(|i| i.str().map(str::to_owned))
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }
}

/// A running redis-server, killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// A fresh server on a free port, persisting to an append-only file (so a restart keeps its
    /// data, like a production Redis).
    pub fn start() -> Redis {
        let port = free_port();
        let dir = super::temp_path("redis");
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_on(port, dir)
    }

    /// A server on `port` with its data in `dir`.
    pub fn start_on(port: u16, dir: PathBuf) -> Redis {
        let child = Command::new(redis_binary())
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt install redis-server; tests/prereqs.sh does)");
        let r = Redis {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if r.try_cmd(&["PING"]).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {port} did not come up");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs a command; panics if Redis cannot be reached.
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    fn try_cmd(&self, args: &[&str]) -> std::io::Result<Reply> {
        let mut sock = TcpStream::connect(("127.0.0.1", self.port))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        sock.write_all(req.as_bytes())?;
        read_reply(&mut BufReader::new(sock))
    }

    /// Sends a signal (`STOP` hangs the server, `CONT` resumes it).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status()
                .expect("kill");
            assert!(ok.success());
        }
    }

    /// Kills the server with SIGKILL (the data already on disk stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        let again = Redis::start_on(self.port, self.dir.clone());
        self.child = again.child_take();
    }

    fn child_take(mut self) -> Option<Child> {
        self.child.take()
    }

    /// The value of `field` in `INFO section` (the text after `field:` on its line), if present.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info = self.cmd(&["INFO", section]);
        let prefix = format!("{field}:");
        info.str()?
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.trim().to_owned())
    }

    /// Every key matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut k = self.cmd(&["KEYS", pattern]).strings();
        k.sort();
        k
    }

    /// Waits until `pred` holds (polling every 50 ms); false after `within`.
    /// The keys matching `pattern` a node owns: all but the cluster's shared state secret
    /// (`<prefix>state-secret`), which every node reads and none removes.
    pub fn node_keys(&self, pattern: &str) -> Vec<String> {
        let mut k = self.keys(pattern);
        k.retain(|k| !k.ends_with("state-secret"));
        k
    }

    pub fn wait_until(&self, within: Duration, pred: impl Fn(&Redis) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if pred(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pred(self)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.signal("CONT");
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_binary() -> String {
    std::env::var("MCPT_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1.min(line.len()));
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad RESP line {line:?}"),
        )
    };
    Ok(match kind {
        "+" => Reply::Str(rest.to_owned()),
        "-" => Reply::Err(rest.to_owned()),
        ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                Reply::Nil
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Reply::Str(String::from_utf8_lossy(&buf).into_owned())
            }
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            if n < 0 {
                Reply::Nil
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(read_reply(r)?);
                }
                Reply::Array(items)
            }
        }
        _ => return Err(bad()),
    })
}
