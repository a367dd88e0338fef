//! `[auth]`: mcpd as an OAuth 2.1 resource server (MCP authorization, RFC 9728, RFC 9068).
//!
//! Off by default: the conformance suite and a fresh machine send no token. On, every request
//! to the MCP endpoint needs a bearer token that one of `issuers` signed for one of
//! `audiences`. The key names are part of the contract with operators; the checks here are the
//! ones that need nothing but the configuration (the issuers' keys are fetched at run time).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Duration};

/// Signature algorithms a token may use: asymmetric ones only. `none` and the HMAC family are
/// never accepted (an HMAC "signed" with a public key is the classic confusion attack).
pub const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The `[auth]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Require a bearer token on every MCP request.
    pub enabled: bool,
    /// The public canonical URL of the MCP endpoint (`https://mcp.example.com/mcp`), the same on
    /// every node: the metadata's `resource`, where that metadata is served, and the audience
    /// tokens must name. Never a node's own address.
    pub resource: String,
    /// The authorization servers clients get tokens from (their issuer URLs, exactly as each
    /// spells its own): in the metadata, and where signing keys are discovered.
    pub authorization_servers: Vec<String>,
    /// Accepted `iss` values; empty means `authorization_servers`. Never "any".
    pub issuers: Vec<String>,
    /// Accepted `aud` values; empty means `[resource]`.
    pub audiences: Vec<String>,
    /// Accepted signature algorithms (a subset of [`ALGORITHMS`]).
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The `typ` a token's header must carry (RFC 9068's `at+jwt`); empty accepts any.
    pub token_type: String,
    /// The metadata's `scopes_supported` (and the challenge's `scope` when nothing more
    /// specific is required).
    pub scopes_supported: Vec<String>,
    /// Scopes every request needs.
    pub required_scopes: Vec<String>,
    /// Scopes a `tools/call` of a tool needs besides `required_scopes`, by tool name.
    pub tool_scopes: BTreeMap<String, Vec<String>>,
    /// RFC 7662 introspection, for tokens that are not JWTs.
    pub introspection: Introspection,
    /// Upper bound on each request to an authorization server (metadata, keys, introspection).
    pub http_timeout: Duration,
    /// PEM file of the CAs trusted for `https://` authorization servers; empty: the system's.
    pub ca_file: String,
}

/// `[auth.introspection]`: off while `url` is empty; for now, setting it is a config error
/// (introspection is not implemented yet, and an ignored key would mislead).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    /// The introspection endpoint.
    pub url: String,
    /// mcpd's client id at the authorization server.
    pub client_id: String,
    /// A file holding the client secret (so the secret is in neither the config file nor the
    /// output of `check-config`; systemd's `LoadCredential=` puts one in place).
    pub client_secret_file: String,
}

impl Auth {
    /// The `iss` values accepted: `issuers`, or the authorization servers.
    pub fn effective_issuers(&self) -> &[String] {
        if self.issuers.is_empty() {
            &self.authorization_servers
        } else {
            &self.issuers
        }
    }

    /// The `aud` values accepted: `audiences`, or the resource.
    pub fn effective_audiences(&self) -> Vec<String> {
        if self.audiences.is_empty() {
            vec![self.resource.clone()]
        } else {
            self.audiences.clone()
        }
    }

    /// The checks that need nothing but the configuration; a disabled section is not checked
    /// beyond its types (an operator may keep a prepared one switched off).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if !self.enabled {
            return Ok(());
        }
        if self.resource.is_empty() {
            return invalid(
                "auth.resource",
                "must be set when auth.enabled is true: the public URL of the MCP endpoint, \
                 e.g. https://mcp.example.com/mcp"
                    .into(),
            );
        }
        if let Err(why) = canonical_url(&self.resource) {
            return invalid("auth.resource", format!("{:?} {why}", self.resource));
        }
        if self.authorization_servers.is_empty() {
            return invalid(
                "auth.authorization_servers",
                "must name at least one authorization server (its issuer URL)".into(),
            );
        }
        for url in &self.authorization_servers {
            if let Err(why) = canonical_url(url) {
                return invalid("auth.authorization_servers", format!("{url:?} {why}"));
            }
        }
        if self.issuers.iter().any(|i| i.trim().is_empty() || i == "*") {
            return invalid(
                "auth.issuers",
                "an issuer must be a URL; leave the list empty to accept the authorization \
                 servers (there is no \"any\")"
                    .into(),
            );
        }
        if self.audiences.iter().any(|a| a.trim().is_empty()) {
            return invalid("auth.audiences", "an audience must not be empty".into());
        }
        if self.algorithms.is_empty() {
            return invalid(
                "auth.algorithms",
                format!("must name at least one of {}", ALGORITHMS.join(", ")),
            );
        }
        for alg in &self.algorithms {
            if !ALGORITHMS.contains(&alg.as_str()) {
                return invalid(
                    "auth.algorithms",
                    format!(
                        "{alg:?} is not accepted; use {} (none and the HMAC family never are)",
                        ALGORITHMS.join(", ")
                    ),
                );
            }
        }
        if self.http_timeout.is_zero() {
            return invalid("auth.http_timeout", "must be longer than 0".into());
        }
        let scope_lists = [
            ("auth.scopes_supported", &self.scopes_supported),
            ("auth.required_scopes", &self.required_scopes),
        ];
        for (key, scopes) in scope_lists
            .into_iter()
            .chain(self.tool_scopes.values().map(|s| ("auth.tool_scopes", s)))
        {
            if let Some(bad) = scopes.iter().find(|s| !is_scope(s)) {
                return invalid(
                    key,
                    format!("{bad:?} is not a scope (printable ASCII, no spaces, quotes or backslashes)"),
                );
            }
        }
        if self.scopes_supported.iter().any(|s| s == "offline_access") {
            return invalid(
                "auth.scopes_supported",
                "must not list offline_access: refresh tokens are not a resource's requirement"
                    .into(),
            );
        }
        if !self.introspection.url.is_empty() {
            // Refused rather than ignored: an operator who sets it expects opaque tokens to be
            // checked, and a silently unused key would let them believe so.
            return invalid(
                "auth.introspection.url",
                "token introspection (RFC 7662) is not available in this version: only JWT \
                 access tokens (RFC 9068) are accepted; leave it empty"
                    .into(),
            );
        }
        if !self.ca_file.is_empty() {
            if let Err(e) = std::fs::read(&self.ca_file) {
                return invalid("auth.ca_file", format!("cannot read {}: {e}", self.ca_file));
            }
        }
        Ok(())
    }
}

/// Whether `url` is an absolute `https://` URL (or `http://` on a loopback host), without a
/// fragment, query or trailing slash: the form the spec asks resource and issuer identifiers
/// to take.
fn canonical_url(url: &str) -> Result<(), &'static str> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let loopback = host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && !rest.starts_with("[::1]") {
            return Err("must be https:// (http:// only on a loopback host)");
        }
        rest
    } else {
        return Err("must be an absolute https:// URL");
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host");
    }
    if url.contains('#') || url.contains('?') {
        return Err("must not have a query or a fragment");
    }
    if url.ends_with('/') {
        return Err("must not end with '/' (the canonical form has none)");
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        return Err("must not contain spaces, quotes or backslashes");
    }
    Ok(())
}

/// RFC 6749's scope-token: printable ASCII except space, `"` and `\`.
fn is_scope(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_must_be_canonical_https_urls_or_loopback_http() {
        for ok in [
            "https://mcp.example.com/mcp",
            "https://as.example.com",
            "http://127.0.0.1:4455",
            "http://localhost:8080/mcp",
            "http://[::1]:8080/mcp",
        ] {
            assert_eq!(canonical_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "mcp.example.com/mcp",
            "http://mcp.example.com/mcp",
            "https://",
            "https:///mcp",
            "https://mcp.example.com/mcp/",
            "https://mcp.example.com/mcp#x",
            "https://mcp.example.com/mcp?a=1",
            "https://mcp.example.com/m cp",
            "http://127.0.0.1.example.com/mcp",
        ] {
            assert!(canonical_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_are_rfc_6749_scope_tokens() {
        assert!(is_scope("mcp:tools"));
        assert!(is_scope("files.read/write!"));
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(!is_scope(bad), "{bad}");
        }
    }
}
