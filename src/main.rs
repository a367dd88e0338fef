//! The `mcpd` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mcpd::config::Config;

/// EX_CONFIG from sysexits.h: systemd's `RestartPreventExitStatus=78` stops a restart loop on a
/// bad configuration.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "mcpd",
    version,
    about = "A single-binary MCP (Streamable HTTP) server for bare-metal clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP on the configured address (the default command).
    Serve {
        /// Config file (default /etc/mcpd/mcpd.toml when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration, or say which key is wrong.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::CheckConfig { config } => match Config::load(config.as_deref()) {
            Ok(cfg) => {
                print!("{}", cfg.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Serve { config } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(cfg) => cfg,
                Err(e) => return config_error(&e),
            };
            if let Err(e) = mcpd::telemetry::init(&cfg.log) {
                eprintln!("mcpd: {e:#}");
                return ExitCode::from(EX_CONFIG);
            }
            match serve(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("mcpd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(cfg: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(mcpd::daemon::run(cfg))?;
    Ok(())
}

fn config_error(e: &mcpd::config::ConfigError) -> ExitCode {
    eprintln!("mcpd: configuration error: {e:#}");
    ExitCode::from(EX_CONFIG)
}
