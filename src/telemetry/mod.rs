//! What the node tells operators: log output — text on stderr, JSON lines, or journald
//! (structured fields become journal fields: `journalctl -u mcpd SESSION_ID=…`) — and
//! [`metrics`] for `/metrics`.

pub mod metrics;

pub use metrics::metrics;

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

/// The subscriber could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log.level filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot connect to journald: {0}")]
    Journald(#[source] std::io::Error),
    #[error("a global subscriber is already installed: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

fn journald() -> Result<tracing_journald::Layer, TelemetryError> {
    Ok(tracing_journald::layer()
        .map_err(TelemetryError::Journald)?
        .with_field_prefix(None)
        .with_syslog_identifier("mcpd".to_owned()))
}

fn text<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
}

/// Installs the global subscriber described by `log`. `auto` means journald when systemd gave us a
/// journal stream (`JOURNAL_STREAM`), text otherwise.
pub fn init(log: &Log) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&log.level)?;
    let journal_stream = std::env::var_os("JOURNAL_STREAM").is_some();
    let registry = tracing_subscriber::registry().with(filter);
    match log.format {
        LogFormat::Journald => {
            registry.with(journald()?).try_init()?;
        }
        // Started by systemd with the journal on stdout/stderr: write native journal entries, so
        // fields stay queryable; if journald cannot be reached after all, text still works.
        LogFormat::Auto if journal_stream => match journald() {
            Ok(layer) => registry.with(layer).try_init()?,
            Err(e) => {
                registry.with(text()).try_init()?;
                tracing::warn!(error = %e, "journald unreachable; logging text to stderr");
            }
        },
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_current_span(false);
            registry.with(layer).try_init()?;
        }
        LogFormat::Text | LogFormat::Auto => registry.with(text()).try_init()?,
    }
    Ok(())
}
