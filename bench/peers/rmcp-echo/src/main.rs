//! Benchmark peer: the official Rust SDK (rmcp) serving one `echo` tool over Streamable HTTP,
//! set up the way rmcp's own streamable-HTTP example does it (StreamableHttpService +
//! LocalSessionManager, stateful sessions, mounted at /mcp with axum::serve).
//!
//! Env:
//!   PORT      (required) port on 127.0.0.1
//!   NODELAY=1 set TCP_NODELAY on accepted sockets. Off by default, as in rmcp's example:
//!             rmcp's SSE reply goes out in two writes, so without it Nagle + the client's delayed
//!             ACK stall every reply ~40 ms. Benchmark both.
//!   JSON=1    config.json_response = true. rmcp 3.9 only honours it when
//!             legacy_session_mode is false (stateless); in this stateful setup it changes
//!             nothing, replies stay SSE. Kept so that stays checkable on a future rmcp.
//!   RT=mt (default, #[tokio::main]'s runtime; WORKERS=n to fix the worker count) | ct

use axum::serve::ListenerExt;
use rmcp::{
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ServerHandler,
};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    message: String,
}

#[derive(Clone)]
struct Echo {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Echo {
    #[tool(description = "Echo a message back")]
    fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> String {
        format!("Echo: {message}")
    }
}

// `router = self.tool_router` uses the router built once per session. The bare `#[tool_handler]`
// rebuilds it on every tools/call (~6-8% CPU per call in the research runs); rmcp's own tests
// use this form, so it is the fair, best-case rmcp.
#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

fn env_on(name: &str) -> bool {
    matches!(std::env::var(name).as_deref(), Ok("1") | Ok("true"))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let config = StreamableHttpServerConfig::default().with_json_response(env_on("JSON"));
    let service: StreamableHttpService<Echo, LocalSessionManager> = StreamableHttpService::new(
        || {
            Ok(Echo {
                tool_router: Echo::tool_router(),
            })
        },
        Default::default(),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let nodelay = env_on("NODELAY");
    eprintln!(
        "rmcp-echo (rmcp 3.9.0) listening on http://127.0.0.1:{port}/mcp nodelay={nodelay} json={}",
        env_on("JSON")
    );
    if nodelay {
        // axum's documented hook for per-connection socket options.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router).await
    } else {
        axum::serve(listener, router).await
    }
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT must be set to a port number");
    let rt = match std::env::var("RT").as_deref() {
        Ok("ct") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        _ => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(w) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
                b.worker_threads(w);
            }
            b.enable_all().build()?
        }
    };
    rt.block_on(serve(port))
}
