//! The configuration contract: embedded defaults, file and environment layers, and errors that
//! name the key and exit with EX_CONFIG (78).

mod common;

use std::process::{Command, Output};

fn mcpd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpd"));
    cmd.args(args).env_remove("JOURNAL_STREAM");
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mcpd")
}

fn file(text: &str) -> common::TempFile {
    common::TempFile::with("toml", text)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_config_prints_the_embedded_defaults() {
    let cfg = file("");
    let o = mcpd(&["check-config", "--config", &cfg], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for line in [
        "listen = \"127.0.0.1:8080\"",
        "idle_timeout = \"30m\"",
        "max_sessions = 10000",
        "keep_alive = \"15s\"",
        "session_ttl = \"30d\"",
        "conformance = false",
    ] {
        assert!(out.contains(line), "missing {line} in\n{out}");
    }
    let node = out.lines().find(|l| l.starts_with("node_id")).unwrap();
    assert_ne!(
        node, "node_id = \"\"",
        "an empty node_id becomes the host name"
    );
}

#[test]
fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
    let cfg = file("[server]\nlisten = \"127.0.0.1:9001\"\nnode_id = \"from-file\"\n");
    let o = mcpd(
        &["check-config", "--config", &cfg],
        &[
            ("MCPD_SERVER__NODE_ID", "from-env"),
            ("MCPD_SESSION__IDLE_TIMEOUT", "5m"),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("listen = \"127.0.0.1:9001\""), "{out}");
    assert!(out.contains("node_id = \"from-env\""), "{out}");
    assert!(out.contains("idle_timeout = \"5m\""), "{out}");
}

#[test]
fn errors_name_the_key_and_exit_78() {
    type Case = (
        common::TempFile,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let not_pem = common::TempFile::with("pem", "this is not a certificate\n");
    let cases: Vec<Case> = vec![
        (
            file("[server]\nlisten = \"not-an-address\"\n"),
            vec![],
            "server.listen",
        ),
        (file("[server]\nlistn = \"127.0.0.1:1\"\n"), vec![], "listn"),
        (file("[sesion]\nidle_timeout = \"1m\"\n"), vec![], "sesion"),
        (
            file("[session]\nidle_timeout = \"soon\"\n"),
            vec![],
            "session.idle_timeout",
        ),
        (
            file("[session]\nidle_timeout = \"0s\"\n"),
            vec![],
            "session.idle_timeout",
        ),
        (
            file("[session]\nmax_sessions = 0\n"),
            vec![],
            "session.max_sessions",
        ),
        (file("[log]\nformat = \"xml\"\n"), vec![], "log.format"),
        (file("[redis]\nurl = \"http://x\"\n"), vec![], "redis.url"),
        (
            file("[redis]\nurl = \"redis://127.0.0.1:notaport\"\n"),
            vec![],
            "redis.url",
        ),
        (
            file("[redis]\ntouch_interval = \"31d\"\n"),
            vec![],
            "redis.touch_interval",
        ),
        (
            file("[redis]\nkey_prefix = \"a b\"\n"),
            vec![],
            "redis.key_prefix",
        ),
        (
            file("[cluster]\nadvertise_url = \"10.0.0.1:8080\"\n"),
            vec![],
            "cluster.advertise_url",
        ),
        (
            file(
                "[server]\nlisten = \"0.0.0.0:8080\"\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n",
            ),
            vec![],
            "cluster.advertise_url",
        ),
        (
            file("[redis]\nlookup_timeout = \"0ms\"\n"),
            vec![],
            "redis.lookup_timeout",
        ),
        (
            file("[server]\nallowed_origins = [\"*\"]\n"),
            vec![],
            "server.allowed_origins",
        ),
        (
            file("[server]\nnode_id = \"bad id!\"\n"),
            vec![],
            "server.node_id",
        ),
        (
            file("[auth]\nenabled = true\nauthorization_servers = [\"https://as.example.com\"]\n"),
            vec![],
            "auth.resource",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp/\"\nauthorization_servers = [\"https://as.example.com\"]\n"),
            vec![],
            "auth.resource",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\n"),
            vec![],
            "auth.authorization_servers",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"http://as.example.com\"]\n"),
            vec![],
            "auth.authorization_servers",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"https://as.example.com\"]\nalgorithms = [\"HS256\"]\n"),
            vec![],
            "auth.algorithms",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"https://as.example.com\"]\nissuers = [\"*\"]\n"),
            vec![],
            "auth.issuers",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"https://as.example.com\"]\nscopes_supported = [\"offline_access\"]\n"),
            vec![],
            "auth.scopes_supported",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"https://as.example.com\"]\nca_file = \"/nonexistent/ca.pem\"\n"),
            vec![],
            "auth.ca_file",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"https://as.example.com\"]\n[auth.introspection]\nurl = \"https://as.example.com/introspect\"\n"),
            vec![],
            "auth.introspection.url",
        ),
        (
            file("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"https://as.example.com\"]\ntool_scopes = { echo = [\"a b\"] }\n"),
            vec![],
            "auth.tool_scopes",
        ),
        (
            file("[auth]\nenabeld = true\n"),
            vec![],
            "enabeld",
        ),
        (
            file(""),
            vec![("MCPD_AUTH__ENABLED", "true")],
            "auth.resource",
        ),
        (
            file(&format!("[auth]\nenabled = true\nresource = \"https://mcp.example.com/mcp\"\nauthorization_servers = [\"https://as.example.com\"]\nca_file = \"{}\"\n", &*not_pem)),
            vec![],
            "CA certificates",
        ),
        (file("this is not toml"), vec![], "TOML"),
        (
            file(""),
            vec![("MCPD_SERVER__LISTN", "127.0.0.1:1")],
            "listn",
        ),
        (
            file(""),
            vec![("MCPD_SESSION__MAX_SESSIONS", "many")],
            "max_sessions",
        ),
    ];
    for (path, env, key) in cases {
        for cmd in ["check-config", "serve"] {
            let o = mcpd(&[cmd, "--config", &path], &env);
            assert_eq!(o.status.code(), Some(78), "{cmd} {key}: {}", stderr(&o));
            assert!(
                stderr(&o).to_lowercase().contains(&key.to_lowercase()),
                "{cmd}: error must name {key}: {}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn redis_urls_with_tls_and_credentials_are_accepted() {
    for url in [
        "redis://127.0.0.1:6379",
        "redis://:secret@10.0.0.5:6379/2",
        "redis://mcpd:secret@redis.internal",
        "rediss://mcpd:secret@redis.internal:6380",
    ] {
        let cfg = file(&format!("[redis]\nurl = \"{url}\"\n"));
        let o = mcpd(&["check-config", "--config", &cfg], &[]);
        assert!(o.status.success(), "{url}: {}", stderr(&o));
    }
}

#[test]
fn sessions_without_a_registry_says_so_and_exits_78() {
    let cfg = file("");
    let o = mcpd(&["sessions", "--config", &cfg], &[]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("redis.url"), "{}", stderr(&o));
}

#[test]
fn a_named_config_file_must_exist() {
    let o = mcpd(&["check-config", "--config", "/nonexistent/mcpd.toml"], &[]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr(&o).contains("/nonexistent/mcpd.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let cfg = file(&format!("[server]\nlisten = \"{addr}\"\n"));
    let o = mcpd(&["serve", "--config", &cfg], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&addr), "{}", stderr(&o));
}
