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
    /// Read the cluster's session registry in Redis (`redis.url`).
    Sessions {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        what: Option<SessionsCommand>,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Every registered session with its node, age, TTL and whether its owner is alive (default).
    List {
        /// Only sessions of this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// Sessions per node, and whether each node's heartbeat is alive.
    Count,
    /// Where one session lives.
    Show { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::CheckConfig { config } => match Config::load(config.as_deref()) {
            // The authorization servers' client is configuration too (`auth.ca_file`'s PEM).
            Ok(cfg) => match mcpd::auth::Auth::new(&cfg.auth) {
                Ok(_) => {
                    print!("{}", cfg.to_toml());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mcpd: {e:#}");
                    ExitCode::from(EX_CONFIG)
                }
            },
            Err(e) => config_error(&e),
        },
        Command::Sessions { config, what } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(cfg) => cfg,
                Err(e) => return config_error(&e),
            };
            match sessions(&cfg, what.unwrap_or(SessionsCommand::List { node: None })) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("mcpd sessions: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve { config } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(cfg) => cfg,
                Err(e) => return config_error(&e),
            };
            if let Err(e) = mcpd::telemetry::init(&cfg.log) {
                eprintln!("mcpd: {e:#}");
                return ExitCode::from(EX_CONFIG);
            }
            // The authorization servers' client is configuration too (`auth.ca_file`).
            if let Err(e) = mcpd::auth::Auth::new(&cfg.auth) {
                tracing::error!("{e:#}");
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

/// `mcpd sessions …`: reads Redis and prints plain columns for operators.
fn sessions(cfg: &Config, what: SessionsCommand) -> anyhow::Result<ExitCode> {
    use mcpd::session::registry::inspect;
    if cfg.redis.url.is_empty() {
        eprintln!("mcpd sessions: redis.url is empty: this node keeps no registry");
        return Ok(ExitCode::from(EX_CONFIG));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let found = runtime.block_on(inspect(
        &cfg.redis.url,
        &cfg.redis.key_prefix,
        cfg.redis.command_timeout.get(),
    ))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let age = |created: u64| {
        mcpd::config::Duration::from(std::time::Duration::from_secs(
            now_ms.saturating_sub(created) / 1000,
        ))
        .to_string()
    };
    let ttl = |secs: i64| {
        u64::try_from(secs).map_or_else(
            |_| "none".to_owned(),
            |s| mcpd::config::Duration::from(std::time::Duration::from_secs(s)).to_string(),
        )
    };
    match what {
        SessionsCommand::List { node } => {
            println!(
                "{:<36}  {:<20}  {:>8}  {:>8}  {:<10}  OWNER",
                "SESSION", "NODE", "AGE", "TTL", "PROTOCOL"
            );
            let mut n = 0;
            for s in found
                .sessions
                .iter()
                .filter(|s| node.as_ref().is_none_or(|want| *want == s.node))
            {
                n += 1;
                let owner = if s.owner_alive { "alive" } else { "gone" };
                println!(
                    "{:<36}  {:<20}  {:>8}  {:>8}  {:<10}  {owner}",
                    s.id,
                    s.node,
                    age(s.created_ms),
                    ttl(s.ttl_secs),
                    s.protocol
                );
            }
            println!("{n} session(s)");
        }
        SessionsCommand::Count => {
            println!("{:<20}  {:>8}  HEARTBEAT", "NODE", "SESSIONS");
            for n in &found.nodes {
                println!(
                    "{:<20}  {:>8}  {}",
                    n.node,
                    n.sessions,
                    if n.alive { "alive" } else { "gone" }
                );
            }
            println!(
                "{} session(s) on {} node(s)",
                found.sessions.len(),
                found.nodes.len()
            );
        }
        SessionsCommand::Show { id } => match found.sessions.iter().find(|s| s.id == id) {
            Some(s) => {
                println!("session   {}", s.id);
                println!(
                    "node      {} ({})",
                    s.node,
                    if s.owner_alive {
                        "alive"
                    } else {
                        "gone: stale"
                    }
                );
                println!("boot      {}", s.boot);
                println!("age       {}", age(s.created_ms));
                println!("ttl       {}", ttl(s.ttl_secs));
                println!("protocol  {}", s.protocol);
            }
            None => {
                eprintln!("mcpd sessions: no session {id} in the registry");
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn config_error(e: &mcpd::config::ConfigError) -> ExitCode {
    eprintln!("mcpd: configuration error: {e:#}");
    ExitCode::from(EX_CONFIG)
}
