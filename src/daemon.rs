//! The process lifecycle: bind, serve, systemd notifications (READY, STATUS, WATCHDOG,
//! STOPPING), and the drain on SIGTERM/SIGINT.
//!
//! Drain order: `/healthz` turns 503 and new `initialize` requests get 503 (`draining`); after
//! `shutdown.grace` the node leaves the cluster (its heartbeat goes, so with `adopt_orphans` peers
//! continue its sessions), every open GET stream gets a jittered `retry:` and ends (`closing`),
//! the listener stops accepting, and sessions leave the table. The requests inside them get up to
//! `shutdown.request_grace` to be answered as usual, and those still running then are stopped
//! and answered with an error (`SessionTable::close_all`); sessions are closed and their tasks
//! awaited, one pipeline releases this node's registry keys for adoption (or removes them,
//! adoption off), and open connections finish sending (`http::serve`: what still has no answer
//! `request_grace` + 1 s after the stop is answered 503). No answer is cut unless a client reads
//! it too slowly to finish in that time; both steps log how the requests they found ended. A
//! second signal ends the process at once.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterConfig;
use crate::config::Config;
use crate::http::{self, Forwarder, Router, ServerOptions};
use crate::mcp::{Endpoint, StateKeys};
use crate::session::registry::Registry;
use crate::session::{CloseReason, SessionTable};

/// Beyond `shutdown.request_grace`, how long connections may take to finish once the server
/// stops accepting (sessions need up to twice `SETTLE` more to answer what was stopped).
const DRAIN_MARGIN: Duration = Duration::from_secs(1);
/// How often `STATUS=` is refreshed for `systemctl status`.
const STATUS_PERIOD: Duration = Duration::from_secs(5);

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Registry(#[from] crate::session::registry::RegistryError),
    #[error("invalid redis.url for the cluster link")]
    Cluster(#[from] fred::error::Error),
    /// The client for authorization servers could not be set up (`auth.ca_file`).
    #[error(transparent)]
    Auth(#[from] crate::auth::TlsError),
}

/// Runs the server until a termination signal; returns after the drain.
pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;

    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: cfg.server.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.server.listen);

    let draining = CancellationToken::new();
    let closing = CancellationToken::new();
    let stop = CancellationToken::new();
    let registry = cfg.registry(addr).map(Registry::new).transpose()?;
    let table = Arc::new(SessionTable::new(
        cfg.session.max_sessions,
        registry.clone(),
    ));
    let registry_stop = CancellationToken::new();
    let writer = registry
        .as_ref()
        .map(|r| r.start(Arc::clone(&table), registry_stop.clone()));
    // MRTR requestState: the configured secrets, else this process's own until the cluster
    // agrees on one (see `cluster`).
    let own_secret = crate::mcp::random_secret();
    let configured = cfg.cluster.state_secret.ring();
    let state_keys = match configured.is_empty() {
        true => StateKeys::from_secrets(&[own_secret.as_str()], cfg.cluster.state_ttl.get()),
        false => StateKeys::from_secrets(&configured, cfg.cluster.state_ttl.get()),
    };
    let auth = crate::auth::Auth::new(&cfg.auth)?;
    let endpoint = Endpoint::new(
        &cfg,
        Arc::clone(&table),
        draining.clone(),
        closing.clone(),
        state_keys,
        auth.clone(),
    );
    let stop_requests = endpoint.stop_requests().clone();
    let cluster_stop = CancellationToken::new();
    let cluster = match cfg.redis.url.is_empty() {
        true => None,
        false => Some(crate::cluster::start(
            ClusterConfig {
                url: cfg.redis.url.clone(),
                node: cfg.server.node_id.clone(),
                key_prefix: cfg.redis.key_prefix.clone(),
                command_timeout: cfg.redis.command_timeout.get(),
                agree_secret: configured.is_empty(),
                state_ttl: cfg.cluster.state_ttl.get(),
                own_secret,
            },
            endpoint.clone(),
            cluster_stop.clone(),
        )?),
    };
    let router = Arc::new(Router::new(
        endpoint,
        cfg.server.path.clone(),
        cfg.server.node_id.as_str().into(),
        cfg.server.max_body_bytes,
        cfg.server.body_read_timeout.get(),
        draining.clone(),
        Forwarder::new(
            &cfg.server.node_id,
            (!cfg.cluster.peer_secret.is_empty()).then_some(cfg.cluster.peer_secret.as_str()),
            cfg.session.request_timeout.get(),
            closing.clone(),
        ),
        auth,
    ));
    let trimmer = tokio::spawn(give_back_memory(Arc::clone(&table), stop.clone()));
    let reaper = tokio::spawn(Arc::clone(&table).run_reaper(
        cfg.session.idle_timeout.get(),
        cfg.session.init_timeout.get(),
        stop.clone(),
    ));
    let server = tokio::spawn(http::serve(
        listener,
        router,
        ServerOptions {
            header_read_timeout: cfg.server.header_read_timeout.get(),
            max_connections: cfg.server.max_connections,
        },
        stop.clone(),
        cfg.shutdown.request_grace.get() + DRAIN_MARGIN,
    ));
    tracing::info!(
        node = %cfg.server.node_id,
        %addr,
        registry = if registry.is_some() { "on" } else { "off" },
        "mcpd listening on http://{addr}{}",
        cfg.server.path
    );
    // Ready once the listener is bound: Redis is not a readiness dependency (it may be down and
    // the node still serves).
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&status_line(&table, "serving", addr)),
    ]);
    let finished = CancellationToken::new();
    let supervisor = tokio::spawn(supervise(
        Arc::clone(&table),
        addr,
        draining.clone(),
        finished.clone(),
    ));

    let which = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = which, sessions = table.len(), grace = %cfg.shutdown.grace, "draining");
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status(&status_line(&table, "draining", addr)),
    ]);
    crate::telemetry::metrics().set_draining();
    draining.cancel();
    let second = async {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    };
    let drain = async {
        tokio::time::sleep(cfg.shutdown.grace.get()).await;
        // Traefik has moved new requests away by now. With adoption on, peers continue this
        // node's sessions from here on: its heartbeat goes first, so a request that reaches a
        // peer finds the session orphaned instead of forwarded back to a node about to close it.
        if let Some(r) = table.registry().filter(|_| cfg.cluster.adopt_orphans) {
            r.leave().await;
        }
        closing.cancel();
        stop.cancel();
        // Sessionless (2026-07-28) calls get the same grace as the sessions' calls; the timer is
        // ended with the drain if everything finished sooner.
        let request_grace = cfg.shutdown.request_grace.get();
        let stop_sessionless = tokio::spawn({
            let stop_requests = stop_requests.clone();
            async move {
                tokio::time::sleep(request_grace).await;
                stop_requests.cancel();
            }
        });
        let calls = table.close_all(CloseReason::Shutdown, request_grace).await;
        tracing::info!(
            running = calls.running,
            finished = calls.running.saturating_sub(calls.stopped),
            stopped = calls.stopped,
            unanswered = calls.unanswered,
            "sessions closed; the requests running in them were answered"
        );
        // One last pipeline removes this node's keys (the closes just queued).
        registry_stop.cancel();
        cluster_stop.cancel();
        if let Some(mut tasks) = cluster {
            while tasks.join_next().await.is_some() {}
        }
        if let Some(w) = writer {
            let _ = w.await;
        }
        let _ = server.await;
        stop_sessionless.abort();
        let _ = reaper.await;
        let _ = trimmer.await;
    };
    tokio::select! {
        () = drain => tracing::info!("stopped"),
        () = second => {
            tracing::warn!("second signal: exiting without finishing the drain");
        }
    }
    finished.cancel();
    let _ = supervisor.await;
    Ok(())
}

/// Tells systemd something; a no-op without `NOTIFY_SOCKET` (not started by systemd).
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// What `systemctl status` shows: phase, address, live sessions, registry state.
fn status_line(table: &SessionTable, phase: &str, addr: std::net::SocketAddr) -> String {
    let registry = match table.registry() {
        None => "registry off".to_owned(),
        Some(r) => {
            let s = r.status();
            format!(
                "registry {}{}, queue {}",
                s.state,
                if s.synced { " (synced)" } else { "" },
                s.queue
            )
        }
    };
    format!("{phase} on {addr}: {} sessions, {registry}", table.len())
}

/// Pets the systemd watchdog at half its period and refreshes `STATUS=` until the process is done
/// (through the drain too, so a slow drain is not killed as a hang). The watchdog proves only
/// that the runtime runs tasks: a Redis outage is no reason for systemd to restart the node (it
/// is reported in `STATUS=` instead).
async fn supervise(
    table: Arc<SessionTable>,
    addr: std::net::SocketAddr,
    draining: CancellationToken,
    finished: CancellationToken,
) {
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(STATUS_PERIOD, |w| (w / 2).min(STATUS_PERIOD));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = finished.cancelled() => return,
        }
        if watchdog.is_some() {
            notify(&[NotifyState::Watchdog]);
        }
        if last_status.elapsed() >= STATUS_PERIOD {
            last_status = tokio::time::Instant::now();
            let phase = if draining.is_cancelled() {
                "draining"
            } else {
                "serving"
            };
            notify(&[NotifyState::Status(&status_line(&table, phase, addr))]);
        }
    }
}

/// How many sessions must have gone since the last trim before memory is handed back.
const TRIM_AFTER_CLOSES: usize = 1024;

/// Hands the memory of closed sessions back to the operating system. glibc's allocator keeps
/// freed heap pages that live allocations interleave with, so after a burst of sessions closes
/// (a client fleet disconnecting, a mass idle reap) RSS would stay at its peak; `malloc_trim`
/// returns the free pages. Checked every second, done only after at least
/// [`TRIM_AFTER_CLOSES`] sessions went, so the hot path never pays for it.
async fn give_back_memory(table: Arc<SessionTable>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut high = table.len();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = table.len();
        high = high.max(now);
        if high - now >= TRIM_AFTER_CLOSES {
            trim_heap();
            tracing::debug!(
                sessions = now,
                gone = high - now,
                "returned freed memory to the OS"
            );
            high = now;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only walks the allocator's own free lists (under its locks) and
    // releases free pages; it touches no memory the program owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}
