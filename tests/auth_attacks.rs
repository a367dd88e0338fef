//! The attack list of the authorization issue, each case its own test: tokens signed by a bare
//! issuer (tests/auth/issuer.mjs) that mints what a real authorization server will not. Every
//! refused case also shows that a correct token from the same issuer is accepted by the same
//! node, so a refusal is the mutation's, not a broken setup's.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{send, Resp, Server, POST_HEADERS};
use serde_json::{json, Value};

const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
const MODERN: &str = "2026-07-28";

/// tests/auth/issuer.mjs on a free loopback port, stopped when dropped.
struct Issuer {
    child: Child,
    addr: SocketAddr,
}

impl Issuer {
    fn start() -> Issuer {
        let port = common::free_port();
        let child =
            common::node_script("auth/issuer.mjs", &[("PORT", port.to_string())], "ISSUER ");
        Issuer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The header and claims of a correct token.
    fn good(&self) -> (Value, Value) {
        let now = now();
        (
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa-1"}),
            json!({"iss": self.url(), "aud": RESOURCE, "sub": "u1", "client_id": "c1",
                   "scope": "mcp:tools", "iat": now, "exp": now + 300}),
        )
    }

    async fn sign(&self, key: &str, header: &Value, claims: &Value) -> String {
        let r = send(
            self.addr,
            "POST",
            "/sign",
            &[("content-type", "application/json")],
            json!({"key": key, "header": header, "claims": claims}).to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "sign: {}", r.text());
        r.text()
    }

    async fn jwks_fetches(&self) -> u64 {
        let r = send(self.addr, "GET", "/stats", &[], "").await;
        r.json()["jwks"].as_u64().expect("jwks count")
    }

    async fn rotate(&self) {
        assert_eq!(
            send(self.addr, "POST", "/rotate", &[], "").await.status,
            200
        );
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn protected(issuer: &Issuer, extra: &str) -> Server {
    Server::start(&format!(
        "[auth]\nenabled = true\nresource = \"{RESOURCE}\"\nauthorization_servers = [\"{}\"]\n{extra}",
        issuer.url()
    ))
}

async fn modern_echo(server: &Server, token: &str) -> Resp {
    let bearer = format!("Bearer {token}");
    let mut h: Vec<(&str, &str)> = POST_HEADERS.to_vec();
    h.extend([
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
        ("authorization", bearer.as_str()),
    ]);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": "hi"},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "attack", "version": "1"}
        }
    }});
    send(server.addr, "POST", "/mcp", &h, body.to_string()).await
}

/// Asserts `r` is the 401 of a refused token.
fn assert_invalid_token(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("resource_metadata=\""), "{challenge}");
}

/// One attack: the correct token with `mutate` applied, signed with `key`, must be refused with
/// 401 `invalid_token`; the correct token itself is accepted by the same node.
macro_rules! refused {
    ($name:ident, $key:expr, |$header:ident, $claims:ident| $mutate:block) => {
        #[tokio::test]
        #[allow(unused_mut)]
        async fn $name() {
            let issuer = Issuer::start();
            let server = protected(&issuer, "");
            let (header, claims) = issuer.good();
            let good = issuer.sign("rsa", &header, &claims).await;
            assert_eq!(modern_echo(&server, &good).await.status, 200, "the correct token");
            let (mut $header, mut $claims) = issuer.good();
            $mutate
            let token = issuer.sign($key, &$header, &$claims).await;
            assert_invalid_token(&modern_echo(&server, &token).await);
            assert!(!server.logs().contains(&token), "a token appeared in the logs");
        }
    };
}

refused!(alg_none_is_refused, "none", |h, c| {
    h["alg"] = json!("none");
});
refused!(
    hs256_keyed_with_the_published_public_key_is_refused,
    "hs-public",
    |h, c| {
        h["alg"] = json!("HS256");
    }
);
refused!(an_rs256_header_over_the_ec_key_is_refused, "ec", |h, c| {
    h["kid"] = json!("ec-1");
});
refused!(
    an_es256_token_naming_the_rsa_key_is_refused,
    "ec",
    |h, c| {
        h["alg"] = json!("ES256");
    }
);
refused!(
    a_signature_by_an_unpublished_key_is_refused,
    "unpublished",
    |h, c| {}
);
refused!(
    another_issuer_with_the_same_key_is_refused,
    "rsa",
    |h, c| {
        c["iss"] = json!("http://127.0.0.1:1");
    }
);
refused!(a_token_for_another_resource_is_refused, "rsa", |h, c| {
    c["aud"] = json!("http://127.0.0.1:9090/other");
});
refused!(
    an_audience_list_without_this_resource_is_refused,
    "rsa",
    |h, c| {
        c["aud"] = json!(["http://a.example/mcp", "http://b.example/mcp"]);
    }
);
refused!(a_token_without_an_audience_is_refused, "rsa", |h, c| {
    c.as_object_mut().map(|m| m.remove("aud"));
});
refused!(an_expired_token_is_refused, "rsa", |h, c| {
    c["exp"] = json!(now() - 120);
});
refused!(a_token_not_valid_yet_is_refused, "rsa", |h, c| {
    c["nbf"] = json!(now() + 3_600);
});
refused!(a_string_exp_is_refused, "rsa", |h, c| {
    c["exp"] = json!("9999999999");
});
refused!(a_token_without_exp_is_refused, "rsa", |h, c| {
    c.as_object_mut().map(|m| m.remove("exp"));
});
refused!(a_token_without_sub_is_refused, "rsa", |h, c| {
    c.as_object_mut().map(|m| m.remove("sub"));
});
refused!(a_token_without_a_kid_is_refused, "rsa", |h, c| {
    h.as_object_mut().map(|m| m.remove("kid"));
});
refused!(an_unknown_kid_is_refused, "rsa", |h, c| {
    h["kid"] = json!("nobody");
});
refused!(an_id_token_look_alike_is_refused, "rsa", |h, c| {
    h["typ"] = json!("JWT");
});

#[tokio::test]
async fn an_algorithm_outside_the_allow_list_is_refused() {
    let issuer = Issuer::start();
    let server = protected(&issuer, "algorithms = [\"ES256\"]\n");
    let (mut header, claims) = issuer.good();
    let rs256 = issuer.sign("rsa", &header, &claims).await;
    assert_invalid_token(&modern_echo(&server, &rs256).await);
    header["alg"] = json!("ES256");
    header["kid"] = json!("ec-1");
    let es256 = issuer.sign("ec", &header, &claims).await;
    assert_eq!(
        modern_echo(&server, &es256).await.status,
        200,
        "the allowed one"
    );
}

#[tokio::test]
async fn a_flood_of_invented_kids_fetches_the_keys_once() {
    let issuer = Issuer::start();
    let server = protected(&issuer, "");
    let (mut header, claims) = issuer.good();
    for i in 0..40 {
        header["kid"] = json!(format!("invented-{i}"));
        let token = issuer.sign("rsa", &header, &claims).await;
        assert_invalid_token(&modern_echo(&server, &token).await);
    }
    assert_eq!(
        issuer.jwks_fetches().await,
        1,
        "one fetch for 40 unknown kids"
    );
    let (header, claims) = issuer.good();
    let good = issuer.sign("rsa", &header, &claims).await;
    assert_eq!(
        modern_echo(&server, &good).await.status,
        200,
        "the fetched keys serve"
    );
    assert_eq!(issuer.jwks_fetches().await, 1);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch_and_the_old_one_dropped() {
    let issuer = Issuer::start();
    let server = protected(&issuer, "");
    let (mut header, claims) = issuer.good();
    let old = issuer.sign("rsa", &header, &claims).await;
    assert_eq!(modern_echo(&server, &old).await.status, 200);
    issuer.rotate().await;
    header["kid"] = json!("rsa-2");
    let new = issuer.sign("rsa", &header, &claims).await;
    assert_invalid_token(&modern_echo(&server, &new).await);
    assert_eq!(
        issuer.jwks_fetches().await,
        1,
        "no refetch within the interval"
    );
    // The refetch interval is 30 s (auth::keys::REFRESH_INTERVAL).
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        modern_echo(&server, &new).await.status,
        200,
        "after one refetch"
    );
    assert_eq!(issuer.jwks_fetches().await, 2);
    assert_invalid_token(&modern_echo(&server, &old).await);
}

#[tokio::test]
async fn a_second_issuers_valid_token_is_refused_without_fetching_its_keys() {
    let ours = Issuer::start();
    let theirs = Issuer::start();
    let server = protected(&ours, "");
    let (header, mut claims) = theirs.good();
    claims["aud"] = json!(RESOURCE);
    let token = theirs.sign("rsa", &header, &claims).await;
    assert_invalid_token(&modern_echo(&server, &token).await);
    assert_eq!(
        theirs.jwks_fetches().await,
        0,
        "an issuer not configured is never asked"
    );
    let (header, claims) = ours.good();
    let good = ours.sign("rsa", &header, &claims).await;
    assert_eq!(modern_echo(&server, &good).await.status, 200);
}
