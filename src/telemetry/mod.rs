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

/// Installs the global subscriber described by `log`. `auto` means journald when systemd gave us a
/// journal stream (`JOURNAL_STREAM`), text otherwise.
pub fn init(log: &Log) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&log.level)?;
    let format = match log.format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Journald => {
            let layer = tracing_journald::layer()
                .map_err(TelemetryError::Journald)?
                .with_field_prefix(None)
                .with_syslog_identifier("mcpd".to_owned());
            registry.with(layer).try_init()?;
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_current_span(false);
            registry.with(layer).try_init()?;
        }
        LogFormat::Text | LogFormat::Auto => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal());
            registry.with(layer).try_init()?;
        }
    }
    Ok(())
}
