//! `/metrics` in the Prometheus/OpenMetrics text format.
//!
//! One process-wide set, built on first use: counters are bumped where things happen (a session
//! created or closed, a request answered, a miss classified, an SSE stream opened or closed) and
//! gauges that mirror state (live sessions, registry queue, drain) are set when scraped.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::mcp::Era;

/// Labels: why a session closed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Labels: how an authorization check ended (`auth::Outcome`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// The `mcpd_auth_total` outcomes, shown at 0 from the start.
const AUTH_OUTCOMES: [&str; 6] = [
    "ok",
    "missing",
    "invalid",
    "expired",
    "insufficient_scope",
    "issuer_unavailable",
];

/// Labels: an answered HTTP request on the MCP endpoint.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub status: u16,
}

/// Labels: a JSON-RPC request by method (a fixed set; anything else is `other`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `legacy` or `modern` (see [`crate::mcp::Era`]).
    pub era: &'static str,
    pub method: &'static str,
}

/// Labels: a forwarded request by owner node and outcome (`relayed`, `unreachable`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwardLabels {
    pub to: String,
    pub outcome: &'static str,
}

/// Labels: an answer that could not be finished, by cause: `connection` (its connection ended
/// before the answer was handed over whole: the client left, or the write failed) or `drain`
/// (still being written when this node's drain ended; also in the drain's log line).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub cause: &'static str,
}

/// Labels: a miss by class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: &'static str,
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    pub sessions_created: Counter,
    /// Sessions continued here after their owner went away (session adoption).
    pub sessions_adopted: Counter,
    pub sessions_closed: Family<ReasonLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    rpc_requests: Family<RpcLabels, Counter>,
    pub session_misses: Family<ClassLabels, Counter>,
    pub forwarded: Family<ForwardLabels, Counter>,
    /// Answers (not SSE streams) that could not be finished; see [`CauseLabels`].
    truncated: Family<CauseLabels, Counter>,
    pub sse_streams_open: Gauge,
    /// 2026-07-28 requests whose client closed the stream before the answer (cancellations).
    pub modern_cancelled: Counter,
    /// Authorization checks, by outcome (`auth` on).
    auth: Family<OutcomeLabels, Counter>,
    /// `auth` series resolved once, in `AUTH_OUTCOMES` order (a family lookup locks and hashes,
    /// and this one runs for every request of a protected node).
    auth_by_outcome: Vec<Counter>,
    sessions_live: Gauge,
    registry_queue: Gauge,
    registry_up: Gauge,
    registry_errors: Counter,
    registry_errors_seen: AtomicU64,
    /// `rpc_requests` series resolved once, in `RPC_METHODS` order, then `other`: a family lookup
    /// locks and hashes, and this one runs for every JSON-RPC request.
    rpc_by_method: Vec<Counter>,
    /// `requests` series of the answers nearly every request gets, resolved once.
    common_requests: Vec<(RequestLabels, Counter)>,
    draining: Gauge,
    draining_flag: AtomicI64,
}

/// The JSON-RPC methods counted by name.
const RPC_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
];

impl Metrics {
    /// Counts one authorization check that ended with `outcome` (an `auth::Outcome` label).
    pub fn auth(&self, outcome: &'static str) {
        match AUTH_OUTCOMES.iter().position(|&o| o == outcome) {
            Some(i) => self.auth_by_outcome[i].inc(),
            None => self.auth.get_or_create(&OutcomeLabels { outcome }).inc(),
        };
    }

    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mcpd");
        let m = Metrics {
            sessions_created: Counter::default(),
            sessions_adopted: Counter::default(),
            sessions_closed: Family::default(),
            requests: Family::default(),
            rpc_requests: Family::default(),
            session_misses: Family::default(),
            forwarded: Family::default(),
            truncated: Family::default(),
            sse_streams_open: Gauge::default(),
            modern_cancelled: Counter::default(),
            auth: Family::default(),
            auth_by_outcome: Vec::new(),
            sessions_live: Gauge::default(),
            registry_queue: Gauge::default(),
            registry_up: Gauge::default(),
            registry_errors: Counter::default(),
            registry_errors_seen: AtomicU64::new(0),
            rpc_by_method: Vec::new(),
            common_requests: Vec::new(),
            draining: Gauge::default(),
            draining_flag: AtomicI64::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "sessions",
            "Live sessions on this node",
            m.sessions_live.clone(),
        );
        registry.register(
            "sessions_created",
            "Sessions created",
            m.sessions_created.clone(),
        );
        registry.register(
            "sessions_adopted",
            "Sessions continued on this node after their owner went away",
            m.sessions_adopted.clone(),
        );
        registry.register(
            "sessions_closed",
            "Sessions closed, by reason (delete, idle, init-timeout, shutdown, superseded)",
            m.sessions_closed.clone(),
        );
        registry.register(
            "http_requests",
            "Requests on the MCP endpoint, by HTTP method and status",
            m.requests.clone(),
        );
        registry.register(
            "rpc_requests",
            "JSON-RPC requests, by method",
            m.rpc_requests.clone(),
        );
        registry.register(
            "session_misses",
            "Requests for sessions this node does not hold, by class",
            m.session_misses.clone(),
        );
        registry.register(
            "forwarded_requests",
            "Misrouted requests sent to the session's owner, by owner node and outcome",
            m.forwarded.clone(),
        );
        registry.register(
            "http_truncated_responses",
            "Answers (not SSE streams) that could not be finished, by cause (connection, drain)",
            m.truncated.clone(),
        );
        // Shown at 0 from the start: "none" is the figure operators watch for.
        for cause in ["connection", "drain"] {
            let _ = m.truncated.get_or_create(&CauseLabels { cause });
        }
        registry.register(
            "sse_streams_open",
            "Open SSE connections",
            m.sse_streams_open.clone(),
        );
        registry.register(
            "modern_cancelled",
            "2026-07-28 requests cancelled by their client closing the stream",
            m.modern_cancelled.clone(),
        );
        registry.register(
            "auth",
            "Authorization checks of requests, by outcome (ok, missing, invalid, expired, \
             insufficient_scope, issuer_unavailable)",
            m.auth.clone(),
        );
        let auth_by_outcome = AUTH_OUTCOMES
            .iter()
            .map(|&outcome| m.auth.get_or_create(&OutcomeLabels { outcome }).clone())
            .collect();
        registry.register(
            "registry_queue_depth",
            "Registry operations waiting for Redis",
            m.registry_queue.clone(),
        );
        registry.register(
            "registry_connected",
            "1 while the registry is connected to Redis",
            m.registry_up.clone(),
        );
        registry.register(
            "registry_errors",
            "Failed registry pipelines and lookups",
            m.registry_errors.clone(),
        );
        registry.register(
            "draining",
            "1 once the node started draining",
            m.draining.clone(),
        );
        let rpc_by_method = [Era::Legacy, Era::Modern]
            .iter()
            .flat_map(|era| {
                RPC_METHODS.iter().chain(&["other"]).map(|&method| {
                    let labels = RpcLabels {
                        era: era.as_str(),
                        method,
                    };
                    m.rpc_requests.get_or_create(&labels).clone()
                })
            })
            .collect();
        let common_requests = [("POST", 200), ("POST", 202), ("GET", 200), ("DELETE", 200)]
            .into_iter()
            .map(|(method, status)| {
                let labels = RequestLabels { method, status };
                let counter = m.requests.get_or_create(&labels).clone();
                (labels, counter)
            })
            .collect();
        Metrics {
            registry,
            rpc_by_method,
            common_requests,
            auth_by_outcome,
            ..m
        }
    }

    /// Counts an answered request on the MCP endpoint.
    pub fn request(&self, method: &'static str, status: u16) {
        match self
            .common_requests
            .iter()
            .find(|(l, _)| l.status == status && l.method == method)
        {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                self.requests
                    .get_or_create(&RequestLabels { method, status })
                    .inc();
            }
        }
    }

    /// Counts a JSON-RPC request of `era`.
    pub fn rpc(&self, era: Era, method: &str) {
        let offset = match era {
            Era::Legacy => 0,
            Era::Modern => RPC_METHODS.len() + 1,
        };
        let i = offset
            + RPC_METHODS
                .iter()
                .position(|m| *m == method)
                .unwrap_or(RPC_METHODS.len());
        if let Some(counter) = self.rpc_by_method.get(i) {
            counter.inc();
        }
    }

    /// Marks the drain.
    pub fn set_draining(&self) {
        self.draining_flag.store(1, Ordering::Relaxed);
    }

    /// Renders the text exposition with the scrape-time gauges set.
    /// Counts `n` answers that could not be finished, for `cause` (see [`CauseLabels`]).
    pub fn truncated(&self, cause: &'static str, n: u64) {
        self.truncated
            .get_or_create(&CauseLabels { cause })
            .inc_by(n);
    }

    pub fn render(&self, live_sessions: usize, registry: Option<(bool, usize, u64)>) -> String {
        self.sessions_live
            .set(i64::try_from(live_sessions).unwrap_or(i64::MAX));
        self.draining
            .set(self.draining_flag.load(Ordering::Relaxed));
        if let Some((connected, queue, errors)) = registry {
            self.registry_up.set(i64::from(connected));
            self.registry_queue
                .set(i64::try_from(queue).unwrap_or(i64::MAX));
            let seen = self.registry_errors_seen.swap(errors, Ordering::Relaxed);
            self.registry_errors.inc_by(errors.saturating_sub(seen));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_and_counts_unknown_methods_as_other() {
        let m = Metrics::new();
        m.sessions_created.inc();
        m.sessions_adopted.inc();
        m.sessions_closed
            .get_or_create(&ReasonLabels { reason: "idle" })
            .inc();
        m.request("POST", 200);
        m.request("GET", 405);
        m.rpc(Era::Legacy, "tools/call");
        m.rpc(Era::Legacy, "made/up");
        m.rpc(Era::Modern, "tools/call");
        m.session_misses
            .get_or_create(&ClassLabels { class: "misroute" })
            .inc();
        let text = m.render(3, Some((true, 2, 5)));
        for line in [
            "mcpd_sessions 3",
            "mcpd_sessions_created_total 1",
            "mcpd_sessions_adopted_total 1",
            "mcpd_sessions_closed_total{reason=\"idle\"} 1",
            "mcpd_http_requests_total{method=\"POST\",status=\"200\"} 1",
            "mcpd_http_requests_total{method=\"GET\",status=\"405\"} 1",
            "mcpd_http_requests_total{method=\"DELETE\",status=\"200\"} 0",
            "mcpd_rpc_requests_total{era=\"legacy\",method=\"ping\"} 0",
            "mcpd_rpc_requests_total{era=\"legacy\",method=\"tools/call\"} 1",
            "mcpd_rpc_requests_total{era=\"legacy\",method=\"other\"} 1",
            "mcpd_rpc_requests_total{era=\"modern\",method=\"tools/call\"} 1",
            "mcpd_rpc_requests_total{era=\"modern\",method=\"server/discover\"} 0",
            "mcpd_session_misses_total{class=\"misroute\"} 1",
            "mcpd_registry_queue_depth 2",
            "mcpd_registry_connected 1",
            "mcpd_registry_errors_total 5",
            "mcpd_draining 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        let again = m.render(3, Some((true, 0, 7)));
        assert!(again.contains("mcpd_registry_errors_total 7"), "{again}");
    }
}
