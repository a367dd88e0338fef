//! The typed configuration and where it comes from.
//!
//! Layers, later wins: the default TOML compiled into the binary (`src/config/default.toml`) <
//! `/etc/mcpd/mcpd.toml` (or the file named by `--config`, which must exist) < `MCPD_*`
//! environment variables, where `__` separates section and key (`MCPD_SERVER__LISTEN`).
//!
//! Every struct denies unknown fields: a typo in an operator's file or environment is an error that
//! names the key, never a silently ignored setting. All validation happens here, once, so the rest
//! of the program works with values that are already known to be good.

pub mod auth;
mod duration;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use auth::Auth;
pub use duration::Duration;

/// The embedded defaults: what `mcpd` runs with on a fresh machine.
pub const DEFAULT_TOML: &str = include_str!("config/default.toml");

/// Where the operator's file lives when `--config` is not given.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/mcpd/mcpd.toml";

/// A configuration that could not be loaded; the message always names the offending key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layers could not be parsed or did not fit the schema.
    #[error("{}", describe(.0))]
    Load(Box<figment::Error>),
    /// A value parsed but is not acceptable.
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    /// `--config` named a file that cannot be read.
    #[error("cannot read config file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> Self {
        ConfigError::Load(Box::new(e))
    }
}

/// The whole configuration; the section names are the contract with operators and packaging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub session: Session,
    pub redis: Redis,
    pub cluster: Cluster,
    pub catalog: Catalog,
    pub log: Log,
    pub shutdown: Shutdown,
    pub auth: Auth,
}

/// The listener and the HTTP-level guards in front of `/mcp`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Where `/mcp`, `/healthz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// This node's name in logs, `/healthz` and the registry; empty means the hostname.
    pub node_id: String,
    /// Browser origins allowed besides loopback ones (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// `Host` header values allowed besides loopback names. Empty: loopback names only when
    /// listening on loopback (DNS-rebinding guard), any host otherwise.
    pub allowed_hosts: Vec<String>,
    /// Largest accepted request body; larger bodies get 413 before they are read.
    pub max_body_bytes: usize,
    /// How long a client may take to send request headers (slowloris guard).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body.
    pub body_read_timeout: Duration,
    /// Connections served at once; further connections wait in the kernel backlog.
    pub max_connections: usize,
    /// The MCP endpoint path.
    pub path: String,
}

/// Session lifecycle limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// A session with no requests and no open stream for this long is closed.
    pub idle_timeout: Duration,
    /// A session that has not sent `notifications/initialized` within this is closed.
    pub init_timeout: Duration,
    /// Sessions held at once; `initialize` past this answers 503.
    pub max_sessions: usize,
    /// Interval of `: keep-alive` comments on open SSE streams.
    pub keep_alive: Duration,
    /// The reconnect delay announced with `retry:` on SSE streams.
    pub sse_retry: Duration,
    /// Events kept per SSE stream for `Last-Event-ID` replay.
    pub replay_events: usize,
    /// Requests one session may have running at once; more get a JSON-RPC error.
    pub max_in_flight: usize,
    /// Upper bound on one handler's run time (and on waiting for a client's reply).
    pub request_timeout: Duration,
}

/// The cluster's session registry; an empty `url` turns it off (a single node).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS).
    pub url: String,
    /// TTL of a session's key; refreshed while the session is used.
    pub session_ttl: Duration,
    /// Prefix of every key (`<prefix>session:<id>`, `<prefix>node:<node>`).
    pub key_prefix: String,
    /// A used session's TTL is refreshed at most this often.
    pub touch_interval: Duration,
    /// How often the node's heartbeat is written (it lives three intervals).
    pub heartbeat_interval: Duration,
    /// How long a miss may wait for Redis before it is logged as unclassified.
    pub lookup_timeout: Duration,
    /// Upper bound on every registry command and pipeline.
    pub command_timeout: Duration,
    /// Deletions kept while Redis is away (oldest dropped first; the resync repairs ours).
    pub queue_limit: usize,
}

/// How nodes cooperate on misrouted and orphaned sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub advertise_url: String,
    pub forward_misroutes: bool,
    pub adopt_orphans: bool,
    pub peer_secret: String,
    /// Seals MRTR `requestState` (2026-07-28): one secret, or a list whose first seals and all
    /// open (to roll a new secret in). Empty: the nodes agree on a generated one through Redis,
    /// or a single node without Redis makes one per process.
    pub state_secret: StateSecret,
    /// How long a sealed `requestState` stays valid.
    pub state_ttl: Duration,
}

/// `cluster.state_secret`: a string or a list of strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum StateSecret {
    One(String),
    Ring(Vec<String>),
}

impl StateSecret {
    /// The secrets, the sealing one first; empty when none is configured.
    pub fn ring(&self) -> Vec<&str> {
        match self {
            StateSecret::One(s) if s.is_empty() => Vec::new(),
            StateSecret::One(s) => vec![s.as_str()],
            StateSecret::Ring(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Shortest accepted `cluster.state_secret` entry (the key is derived from it; see
/// `mcp::modern::state`).
pub const MIN_STATE_SECRET: usize = 32;

/// Which tools, resources and prompts are served.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Serve the official conformance suite's fixtures (`test_*` tools, `test://` resources).
    pub conformance: bool,
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter directive (`info`, `mcpd=debug,hyper=warn`, …).
    pub level: String,
}

/// Where and how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when started by systemd with a journal stream, text otherwise.
    Auto,
    Text,
    Json,
    Journald,
}

/// The drain on SIGTERM.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// Time between `/healthz` turning 503 and closing streams.
    pub grace: Duration,
    /// After `grace`, how long the requests still running (calls inside this node's sessions,
    /// answers relayed through it) may take to finish; past it they are answered with an error,
    /// never cut off.
    pub request_grace: Duration,
}

impl Config {
    /// Loads the layers. `path` is `--config`: it must exist. Without it the system file is
    /// optional.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::from_figment(Self::figment(path)?)
    }

    /// The layered sources, before extraction (exposed for tests and `check-config`).
    pub fn figment(path: Option<&Path>) -> Result<Figment, ConfigError> {
        Self::layers(path, Path::new(SYSTEM_CONFIG_PATH))
    }

    /// The layers with the system file at `system`: the explicit `path` must exist; the system
    /// file is used only when it does (a fresh machine has none and runs on the defaults).
    fn layers(path: Option<&Path>, system: &Path) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        match path {
            Some(p) => {
                // figment would report a missing file in its own words; an operator who names a
                // file should hear that this file is missing.
                std::fs::metadata(p).map_err(|source| ConfigError::File {
                    path: p.to_path_buf(),
                    source,
                })?;
                figment = figment.merge(Toml::file_exact(p));
            }
            None if system.exists() => figment = figment.merge(Toml::file_exact(system)),
            None => {}
        }
        Ok(figment.merge(Env::prefixed("MCPD_").split("__")))
    }

    /// The registry settings for a listener bound at `bound`, or `None` when `redis.url` is
    /// empty.
    pub fn registry(
        &self,
        bound: std::net::SocketAddr,
    ) -> Option<crate::session::registry::RegistryConfig> {
        (!self.redis.url.is_empty()).then(|| crate::session::registry::RegistryConfig {
            url: self.redis.url.clone(),
            node: self.server.node_id.clone(),
            advertise_url: self.advertise_url(bound),
            key_prefix: self.redis.key_prefix.clone(),
            session_ttl: self.redis.session_ttl.get(),
            touch_interval: self.redis.touch_interval.get(),
            heartbeat_interval: self.redis.heartbeat_interval.get(),
            lookup_timeout: self.redis.lookup_timeout.get(),
            command_timeout: self.redis.command_timeout.get(),
            max_queued_deletes: self.redis.queue_limit,
            adopt: self.cluster.adopt_orphans,
            orphan_ttl: self.session.idle_timeout.get(),
        })
    }

    /// How peers reach this node: `cluster.advertise_url`, or `http://<bound>` (the address the
    /// listener actually got, which matters when `server.listen` asks for port 0).
    pub fn advertise_url(&self, bound: std::net::SocketAddr) -> String {
        if self.cluster.advertise_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.cluster.advertise_url.trim_end_matches('/').to_owned()
        }
    }

    /// Extracts and validates.
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let mut cfg: Config = figment.extract()?;
        cfg.validate()?;
        if cfg.server.node_id.is_empty() {
            cfg.server.node_id = hostname();
        }
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if !self.server.node_id.is_empty() && !is_token(&self.server.node_id) {
            return invalid(
                "server.node_id",
                "use letters, digits, '-', '_' and '.' only".into(),
            );
        }
        for origin in &self.server.allowed_origins {
            if parse_origin(origin).is_none() {
                return invalid(
                    "server.allowed_origins",
                    format!("{origin:?} is not an origin like https://app.example.com[:port]"),
                );
            }
        }
        for host in &self.server.allowed_hosts {
            if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
                return invalid(
                    "server.allowed_hosts",
                    format!("{host:?} is not a host name (with optional :port)"),
                );
            }
        }
        if !self.server.path.starts_with('/') || self.server.path.len() < 2 {
            return invalid("server.path", "must start with '/' and name a path".into());
        }
        let positive: [(&'static str, usize); 6] = [
            ("redis.queue_limit", self.redis.queue_limit),
            ("server.max_body_bytes", self.server.max_body_bytes),
            ("server.max_connections", self.server.max_connections),
            ("session.max_sessions", self.session.max_sessions),
            ("session.replay_events", self.session.replay_events),
            ("session.max_in_flight", self.session.max_in_flight),
        ];
        for (key, value) in positive {
            if value == 0 {
                return invalid(key, "must be greater than 0".into());
            }
        }
        let durations: [(&'static str, Duration); 14] = [
            ("redis.touch_interval", self.redis.touch_interval),
            ("redis.heartbeat_interval", self.redis.heartbeat_interval),
            ("redis.lookup_timeout", self.redis.lookup_timeout),
            ("redis.command_timeout", self.redis.command_timeout),
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.body_read_timeout", self.server.body_read_timeout),
            ("session.idle_timeout", self.session.idle_timeout),
            ("session.init_timeout", self.session.init_timeout),
            ("session.keep_alive", self.session.keep_alive),
            ("session.sse_retry", self.session.sse_retry),
            ("session.request_timeout", self.session.request_timeout),
            ("redis.session_ttl", self.redis.session_ttl),
            ("shutdown.request_grace", self.shutdown.request_grace),
            ("cluster.state_ttl", self.cluster.state_ttl),
        ];
        for (key, value) in durations {
            if value.is_zero() {
                return invalid(key, "must be longer than 0".into());
            }
        }
        for secret in self.cluster.state_secret.ring() {
            if secret.len() < MIN_STATE_SECRET {
                return invalid(
                    "cluster.state_secret",
                    format!(
                        "each secret must be at least {MIN_STATE_SECRET} characters \
                         (e.g. the output of `openssl rand -hex 32`)"
                    ),
                );
            }
        }
        let url = &self.redis.url;
        if !(url.is_empty() || url.starts_with("redis://") || url.starts_with("rediss://")) {
            return invalid(
                "redis.url",
                "must start with redis:// or rediss:// (or be empty)".into(),
            );
        }
        if !url.is_empty() {
            if let Err(e) = fred::types::config::Config::from_url(url) {
                return invalid("redis.url", e.details().to_string());
            }
        }
        if self.redis.touch_interval >= self.redis.session_ttl {
            return invalid(
                "redis.touch_interval",
                "must be shorter than redis.session_ttl".into(),
            );
        }
        let advertise = &self.cluster.advertise_url;
        let well_formed = advertise.starts_with("http://") && advertise.len() > "http://".len();
        if !(advertise.is_empty() || well_formed) {
            return invalid(
                "cluster.advertise_url",
                "must be http://host:port (the node's internal address)".into(),
            );
        }
        if advertise.is_empty() && !url.is_empty() && self.server.listen.ip().is_unspecified() {
            return invalid(
                "cluster.advertise_url",
                format!(
                    "must be set when server.listen is the wildcard {}: peers need an address they can reach",
                    self.server.listen
                ),
            );
        }
        if self
            .redis
            .key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c == '*')
        {
            return invalid("redis.key_prefix", "must not contain spaces or '*'".into());
        }
        if self.log.level.trim().is_empty()
            || tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err()
        {
            return invalid(
                "log.level",
                format!("{:?} is not a filter such as \"info\"", self.log.level),
            );
        }
        self.auth.validate()
    }

    /// The effective configuration as TOML (what `mcpd check-config` prints).
    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings, numbers and lists cannot fail.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// figment's errors, one per line, in the operator's terms: the key as written in the file
/// (`server.listen`) or the variable (`MCPD_SERVER__LISTEN`), and the file's real path.
fn describe(e: &figment::Error) -> String {
    let lines: Vec<String> = e
        .clone()
        .into_iter()
        .map(|one| {
            let from_env = one
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.contains("environment"));
            let source = one.metadata.as_ref().map(|m| match &m.source {
                Some(figment::Source::File(p)) => p.display().to_string(),
                _ => m.name.to_string(),
            });
            let key = if one.path.is_empty() {
                String::new()
            } else if from_env {
                format!("`MCPD_{}` ", one.path.join("__").to_uppercase())
            } else {
                format!("`{}` ", one.path.join("."))
            };
            match source {
                Some(s) => format!("{key}in {s}: {}", one.kind),
                None => format!("{key}: {}", one.kind),
            }
        })
        .collect();
    lines.join("\n")
}

/// Parses `scheme://host[:port]` into its lower-case form; `None` when it is not an origin (the
/// form of `server.allowed_origins`, and of the `Origin` header it is compared with).
pub fn parse_origin(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https")
        || rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
    {
        return None;
    }
    Some(format!("{scheme}://{}", rest.to_ascii_lowercase()))
}

fn is_token(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The kernel's host name, the default node id.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty() && is_token(s))
        .unwrap_or_else(|| "mcpd".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_system_file_the_embedded_defaults_apply() {
        let missing = std::env::temp_dir().join("mcpd-no-such-dir/mcpd.toml");
        let cfg = Config::from_figment(Config::layers(None, &missing).unwrap()).unwrap();
        assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.session.max_sessions, 10_000);
    }

    #[test]
    fn an_existing_system_file_is_layered_over_the_defaults() {
        let dir = std::env::temp_dir().join(format!("mcpd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let system = dir.join("mcpd.toml");
        std::fs::write(&system, "[server]\nnode_id = \"from-system\"\n").unwrap();
        let cfg = Config::from_figment(Config::layers(None, &system).unwrap()).unwrap();
        assert_eq!(cfg.server.node_id, "from-system");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
