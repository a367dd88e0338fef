//! mcpd as an OAuth 2.1 resource server, against a real authorization server (oidc-provider,
//! tests/auth/as.mjs, run with the Node 22 tests/prereqs.sh installs): the metadata and the
//! challenge, tokens accepted in both eras, and tokens refused — for another resource, expired,
//! malformed — and an issuer that cannot be reached.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use base64::Engine;
use common::{initialize, send, Resp, Server, POST_HEADERS};
use serde_json::{json, Value};

/// The resource mcpd protects in these tests (what tokens are asked for).
const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
/// A resource the authorization server also issues tokens for: not ours.
const OTHER: &str = "http://127.0.0.1:9090/other";
const MODERN: &str = "2026-07-28";

/// oidc-provider on a free loopback port, stopped when dropped.
struct AuthServer {
    child: Child,
    addr: SocketAddr,
}

impl AuthServer {
    fn start(token_ttl: u32) -> AuthServer {
        Self::start_on(common::free_port(), token_ttl)
    }

    fn start_on(port: u16, token_ttl: u32) -> AuthServer {
        Self::start_for(port, token_ttl, &format!("{RESOURCE} {OTHER}"))
    }

    /// Issuing tokens for the space-separated `resources`.
    fn start_for(port: u16, token_ttl: u32, resources: &str) -> AuthServer {
        let child = common::node_script(
            "auth/as.mjs",
            &[
                ("AS_PORT", port.to_string()),
                ("RESOURCES", resources.to_owned()),
                ("TOKEN_TTL", token_ttl.to_string()),
            ],
            "AS ",
        );
        AuthServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An access token for `resource` (client_credentials, client `mcpd-test`).
    async fn token(&self, resource: &str, scope: &str) -> String {
        self.token_of("mcpd-test:mcpd-test-secret", resource, scope)
            .await
    }

    /// The same for the client whose `id:secret` is `client` (another bearer).
    async fn token_of(&self, client: &str, resource: &str, scope: &str) -> String {
        let basic = base64::engine::general_purpose::STANDARD.encode(client);
        let authorization = format!("Basic {basic}");
        let body = format!(
            "grant_type=client_credentials&scope={}&resource={}",
            scope.replace(' ', "%20").replace(':', "%3A"),
            resource.replace(':', "%3A").replace('/', "%2F")
        );
        let r = send(
            self.addr,
            "POST",
            "/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &authorization),
            ],
            body,
        )
        .await;
        assert_eq!(r.status, 200, "token endpoint: {}", r.text());
        r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// mcpd protecting [`RESOURCE`] with tokens of `issuer`.
fn protected(issuer: &str, extra: &str) -> Server {
    Server::start(&format!(
        "[auth]\nenabled = true\nresource = \"{RESOURCE}\"\nauthorization_servers = [\"{issuer}\"]\n\
         scopes_supported = [\"mcp:tools\"]\n{extra}"
    ))
}

async fn post_with(server: &Server, token: Option<&str>, sid: Option<&str>, body: &Value) -> Resp {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut h: Vec<(&str, &str)> = POST_HEADERS.to_vec();
    if let Some(b) = &bearer {
        h.push(("authorization", b));
    }
    if let Some(s) = sid {
        h.push(("mcp-session-id", s));
    }
    send(server.addr, "POST", "/mcp", &h, body.to_string()).await
}

/// A 2026-07-28 `tools/call` of `tool` with `params` (besides the name and the envelope), by a
/// client that declares roots.
async fn modern_call(server: &Server, token: &str, tool: &str, params: Value) -> Resp {
    let bearer = format!("Bearer {token}");
    let mut h: Vec<(&str, &str)> = POST_HEADERS.to_vec();
    h.extend([
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
        ("authorization", bearer.as_str()),
    ]);
    let mut p = params;
    p["name"] = json!(tool);
    p["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"roots": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "auth-test", "version": "1"}
    });
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": p});
    send(server.addr, "POST", "/mcp", &h, body.to_string()).await
}

/// A 2026-07-28 `echo` call, with the envelope and routing headers.
async fn modern_echo(server: &Server, token: Option<&str>) -> Resp {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut h: Vec<(&str, &str)> = POST_HEADERS.to_vec();
    h.extend([
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ]);
    if let Some(b) = &bearer {
        h.push(("authorization", b));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": "hi"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "auth-test", "version": "1"}
        }
    }});
    send(server.addr, "POST", "/mcp", &h, body.to_string()).await
}

/// `token` with one character of its signature changed (in the middle: the last one may carry
/// only padding bits).
fn tampered(token: &str) -> String {
    let at = token.rfind('.').expect("a JWT") + 20;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

/// A session opened with `token` (initialize, then initialized): its id.
async fn open_session(server: &Server, token: &str) -> String {
    let init = post_with(server, Some(token), None, &initialize("2025-11-25")).await;
    assert_eq!(init.status, 200, "{}", init.text());
    let sid = init
        .header("mcp-session-id")
        .expect("session id")
        .to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post_with(server, Some(token), Some(&sid), &note)
            .await
            .status,
        202
    );
    sid
}

fn challenge(r: &Resp) -> String {
    r.header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate on {}: {}", r.status, r.text()))
        .to_owned()
}

const METADATA_URL: &str = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp";

#[tokio::test]
async fn without_a_token_every_method_of_both_eras_gets_401_pointing_at_the_metadata() {
    let auth = AuthServer::start(300);
    let server = protected(&auth.issuer(), "");
    let legacy = post_with(&server, None, None, &initialize("2025-11-25")).await;
    let modern = modern_echo(&server, None).await;
    let get = send(
        server.addr,
        "GET",
        "/mcp",
        &[("accept", "text/event-stream")],
        "",
    )
    .await;
    let delete = send(
        server.addr,
        "DELETE",
        "/mcp",
        &[("mcp-session-id", "x")],
        "",
    )
    .await;
    for (what, r) in [
        ("legacy POST", legacy),
        ("modern POST", modern),
        ("GET", get),
        ("DELETE", delete),
    ] {
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(
            challenge(&r),
            format!("Bearer resource_metadata=\"{METADATA_URL}\", scope=\"mcp:tools\""),
            "{what}: no error code without a token (RFC 6750 3.1)"
        );
        assert_eq!(r.json()["error"], "invalid_token", "{what}");
    }
    let basic = send(
        server.addr,
        "POST",
        "/mcp",
        &[
            ("authorization", "Basic bWNwZDp4"),
            ("content-type", "application/json"),
        ],
        initialize("2025-11-25").to_string(),
    )
    .await;
    assert_eq!(basic.status, 401, "another scheme is no bearer token");
    assert!(!challenge(&basic).contains("error="));
}

#[tokio::test]
async fn the_resource_metadata_is_public_at_both_well_known_paths() {
    let auth = AuthServer::start(300);
    let server = protected(&auth.issuer(), "");
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = send(server.addr, "GET", path, &[], "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            r.json(),
            json!({
                "resource": RESOURCE,
                "authorization_servers": [auth.issuer()],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"]
            }),
            "{path}"
        );
    }
    let r = send(
        server.addr,
        "POST",
        "/.well-known/oauth-protected-resource/mcp",
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[tokio::test]
async fn a_token_for_this_resource_opens_a_session_and_calls_tools_in_both_eras() {
    let auth = AuthServer::start(300);
    let server = protected(&auth.issuer(), "");
    let token = auth.token(RESOURCE, "mcp:tools").await;
    let sid = open_session(&server, &token).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "with a token"}}});
    let r = post_with(&server, Some(&token), Some(&sid), &call).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Echo: with a token"), "{}", r.text());
    let r = post_with(&server, None, Some(&sid), &call).await;
    assert_eq!(
        r.status, 401,
        "every request needs the token, a session's too"
    );

    let info = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "node_info", "arguments": {}}});
    let r = post_with(&server, Some(&token), Some(&sid), &info).await;
    assert_eq!(
        r.json()["result"]["structuredContent"]["principal"],
        json!({"iss": auth.issuer(), "sub": "mcpd-test", "client_id": "mcpd-test", "scopes": ["mcp:tools"]}),
        "a tool sees who calls it: {}",
        r.text()
    );

    let r = modern_echo(&server, Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Echo: hi"), "{}", r.text());
    let r = modern_call(&server, &token, "node_info", json!({"arguments": {}})).await;
    assert_eq!(
        r.json()["result"]["structuredContent"]["principal"]["sub"],
        "mcpd-test",
        "in the modern era too: {}",
        r.text()
    );
    assert!(
        server.wait_log(
            &["fetched the issuer's signing keys"],
            Duration::from_secs(5)
        ),
        "the keys were fetched"
    );
    let logs = server.logs();
    assert!(!logs.contains(&token), "a token appeared in the logs");
}

#[tokio::test]
async fn tokens_for_another_resource_expired_or_malformed_get_401_invalid_token() {
    let auth = AuthServer::start(2);
    let server = protected(&auth.issuer(), "leeway = \"0s\"\n");
    let other = auth.token(OTHER, "mcp:tools").await;
    let expiring = auth.token(RESOURCE, "mcp:tools").await;
    let good = auth.token(RESOURCE, "mcp:tools").await;
    assert_eq!(modern_echo(&server, Some(&good)).await.status, 200);
    let cases: [(&str, String, &str); 5] = [
        (
            "another resource's token",
            other.clone(),
            "not for this resource",
        ),
        ("garbage", "not-a-jwt".to_owned(), "not a JWT"),
        ("an empty bearer", String::new(), "not `Bearer <token>`"),
        (
            "a token with a space",
            "a b".to_owned(),
            "not `Bearer <token>`",
        ),
        ("a tampered signature", tampered(&good), "signature"),
    ];
    for (what, token, reason) in &cases {
        let r = modern_echo(&server, Some(token)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let c = challenge(&r);
        assert!(c.contains("error=\"invalid_token\""), "{what}: {c}");
        assert!(
            r.json()["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(reason)),
            "{what}: {}",
            r.text()
        );
    }
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let r = modern_echo(&server, Some(&expiring)).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("expired"), "{}", r.text());
    let metrics = send(server.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        metrics.contains("mcpd_auth_total{outcome=\"expired\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcpd_auth_total{outcome=\"invalid\"} 5"),
        "{metrics}"
    );
    let logs = server.logs();
    for (_, token, _) in &cases {
        if token.len() > 10 {
            assert!(
                !logs.contains(token.as_str()),
                "a token appeared in the logs"
            );
        }
    }
}

#[tokio::test]
async fn an_issuer_that_cannot_be_reached_gets_503_for_new_keys_while_known_keys_keep_working() {
    let port = common::free_port();
    let mut auth = AuthServer::start_on(port, 300);
    let token = auth.token(RESOURCE, "mcp:tools").await;
    let known = protected(&auth.issuer(), "");
    assert_eq!(
        modern_echo(&known, Some(&token)).await.status,
        200,
        "keys fetched"
    );
    let never_fetched = protected(&auth.issuer(), "http_timeout = \"1s\"\n");
    auth.stop();

    let r = modern_echo(&known, Some(&token)).await;
    assert_eq!(r.status, 200, "a cached key keeps working: {}", r.text());

    let r = modern_echo(&never_fetched, Some(&token)).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let retry: u32 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert!(never_fetched.wait_log(
        &["cannot fetch the issuer's signing keys"],
        Duration::from_secs(5)
    ));

    // Back up with a new key (a restart rotates it): tokens signed with it are accepted once
    // the refetch interval allows a fetch; until then the node says it is unavailable.
    let auth = AuthServer::start_on(port, 300);
    let rotated = auth.token(RESOURCE, "mcp:tools").await;
    let r = modern_echo(&never_fetched, Some(&rotated)).await;
    assert_eq!(
        r.status,
        503,
        "no fetch storm: within the interval no new fetch: {}",
        r.text()
    );
}

#[tokio::test]
async fn a_token_without_a_scope_the_call_needs_gets_403_naming_every_scope_needed() {
    let auth = AuthServer::start(300);
    let server = protected(
        &auth.issuer(),
        "required_scopes = [\"mcp:tools\"]\n[auth.tool_scopes]\necho = [\"mcp:admin\"]\n",
    );
    let tools_only = auth.token(RESOURCE, "mcp:tools").await;
    let admin_only = auth.token(RESOURCE, "mcp:admin").await;
    let both = auth.token(RESOURCE, "mcp:tools mcp:admin").await;

    for r in [modern_echo(&server, Some(&tools_only)).await, {
        let init = post_with(&server, Some(&tools_only), None, &initialize("2025-11-25")).await;
        assert_eq!(init.status, 200, "{}", init.text());
        let sid = init.header("mcp-session-id").expect("sid").to_owned();
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "x"}}});
        let r = post_with(&server, Some(&tools_only), Some(&sid), &call).await;
        let other = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "node_info", "arguments": {}}});
        let ok = post_with(&server, Some(&tools_only), Some(&sid), &other).await;
        assert_eq!(
            ok.status,
            200,
            "a tool without its own scopes: {}",
            ok.text()
        );
        r
    }] {
        assert_eq!(r.status, 403, "{}", r.text());
        let c = challenge(&r);
        assert!(c.contains("scope=\"mcp:tools mcp:admin\""), "{c}");
        assert!(c.contains("error=\"insufficient_scope\""), "{c}");
        assert!(
            c.contains(&format!("resource_metadata=\"{METADATA_URL}\"")),
            "{c}"
        );
        assert_eq!(r.json()["error"], "insufficient_scope");
    }
    let r = modern_echo(&server, Some(&admin_only)).await;
    assert_eq!(r.status, 403, "the global scope is missing: {}", r.text());
    assert!(challenge(&r).contains("scope=\"mcp:tools\""));
    let r = modern_echo(&server, Some(&both)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = send(server.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        metrics.contains("mcpd_auth_total{outcome=\"insufficient_scope\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_session_used_with_another_bearers_token_is_unknown_to_it_and_cannot_be_deleted() {
    let auth = AuthServer::start(300);
    let server = protected(&auth.issuer(), "");
    let alice = auth.token(RESOURCE, "mcp:tools").await;
    let mallory = auth
        .token_of("other-client:other-secret", RESOURCE, "mcp:tools")
        .await;
    let sid = open_session(&server, &alice).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "mine"}}});

    let unknown = post_with(&server, Some(&mallory), Some("not-a-session"), &call).await;
    let hijack = post_with(&server, Some(&mallory), Some(&sid), &call).await;
    assert_eq!(hijack.status, 404, "{}", hijack.text());
    assert_eq!(
        (hijack.status, hijack.json()),
        (unknown.status, unknown.json()),
        "the same answer as an unknown session"
    );
    let bearer = format!("Bearer {mallory}");
    let delete = send(
        server.addr,
        "DELETE",
        "/mcp",
        &[("mcp-session-id", &sid), ("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(delete.status, 404, "{}", delete.text());
    let get = send(
        server.addr,
        "GET",
        "/mcp",
        &[
            ("mcp-session-id", &sid),
            ("authorization", &bearer),
            ("accept", "text/event-stream"),
        ],
        "",
    )
    .await;
    assert_eq!(get.status, 404, "{}", get.text());
    assert_eq!(
        post_with(&server, None, Some(&sid), &call).await.status,
        401,
        "the challenge first"
    );

    let r = post_with(&server, Some(&alice), Some(&sid), &call).await;
    assert_eq!(r.status, 200, "the owner's session is intact: {}", r.text());
    assert!(r.text().contains("Echo: mine"));
    assert!(server.wait_log(
        &["used with another bearer's token"],
        Duration::from_secs(5)
    ));
}

#[tokio::test]
async fn a_request_state_opens_only_for_the_bearer_it_was_sealed_for() {
    let auth = AuthServer::start(300);
    let server = protected(&auth.issuer(), "");
    let alice = auth.token(RESOURCE, "mcp:tools").await;
    let mallory = auth
        .token_of("other-client:other-secret", RESOURCE, "mcp:tools")
        .await;
    let r = modern_call(&server, &alice, "client_roots", json!({})).await;
    let res = r.json()["result"].clone();
    assert_eq!(res["resultType"], "input_required", "{}", r.text());
    let state = res["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned();
    let answer = json!({
        "inputResponses": {"roots": {"roots": [{"uri": "file:///w", "name": "w"}]}},
        "requestState": state
    });
    let r = modern_call(&server, &mallory, "client_roots", answer.clone()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("Invalid or expired requestState"),
        "{}",
        r.text()
    );
    let r = modern_call(&server, &alice, "client_roots", answer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["resultType"], "complete", "{}", r.text());
}

/// Runs an official SDK client script (`program script args…`) to its end: its stdout, and
/// whether it exited 0 (each client's steps time out on their own).
async fn run_client(program: String, script: &'static str, args: Vec<String>) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .arg(format!(
                "{}/tests/clients/{script}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .args(args)
            .output()
    })
    .await
    .expect("the client's thread")
    .expect("run the client");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_official_clients_follow_the_challenge_to_a_token_and_call_tools_in_both_eras() {
    // The metadata's `resource` must be the URL the clients connect to: a port chosen first.
    let port = common::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let auth = AuthServer::start_for(common::free_port(), 300, &resource);
    let server = Server::start(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[auth]\nenabled = true\nresource = \"{resource}\"\n\
         authorization_servers = [\"{}\"]\nscopes_supported = [\"mcp:tools\"]\n",
        auth.issuer()
    ));
    let env = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the tests through tests/run.sh (or source the env.sh that tests/prereqs.sh writes)")
        })
    };
    let args = vec![
        resource,
        auth.issuer(),
        "mcpd-test".into(),
        "mcpd-test-secret".into(),
    ];
    let (ok, out) = run_client(env("MCPT_VENV_PY"), "py_oauth.py", args.clone()).await;
    assert!(ok && out.contains("py-oauth: 2 passed, 0 failed"), "{out}");
    let (ok, out) = run_client(env("MCPT_NODE22"), "ts-oauth.mjs", args).await;
    assert!(ok && out.contains("ts-oauth: 2 passed, 0 failed"), "{out}");
    let logs = server.logs();
    assert!(
        logs.contains("request refused by authorization"),
        "the first requests were refused"
    );
}
