//! mcpd as an OAuth 2.1 resource server: who is calling, checked on every request to the MCP
//! endpoint of either era, on the node that serves it.
//!
//! A request carries `Authorization: Bearer <JWT access token>` (RFC 6750, RFC 9068). The token
//! must be signed by an accepted issuer with a key of its published set (see [`keys`]), with an
//! algorithm from the allow-list that the key itself allows, for one of our audiences, not
//! expired, not early, of the configured `typ`. What it says about its bearer becomes the
//! request's [`Principal`]. Anything else is a [`Refusal`]: 401 with the challenge that points
//! clients at our metadata ([`metadata`]), 403 for missing scopes, 503 while an issuer whose key
//! is needed is unreachable. A token is never logged, counted or echoed.
//!
//! The check is synchronous while the key is known ([`Auth::check`]); only a token signed with a
//! key this node has not seen waits, for one fetch of its issuer's keys ([`Auth::check_fetching`]).

mod cache;
mod fetch;
mod keys;
pub mod metadata;
mod principal;
mod token;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::config;
pub use fetch::TlsError;
use keys::KeyStore;
pub use metadata::Challenge;
pub use principal::Principal;
use token::{unverified_issuer, Verified};

/// How a check ended, for `mcpd_auth_total{outcome}` and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// No token.
    Missing,
    /// A token that is not valid here (bad signature, wrong issuer or audience, malformed…).
    Invalid,
    Expired,
    InsufficientScope,
    /// The key needed is not known and its issuer cannot be reached.
    IssuerUnavailable,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Missing => "missing",
            Outcome::Invalid => "invalid",
            Outcome::Expired => "expired",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::IssuerUnavailable => "issuer_unavailable",
        }
    }
}

/// A request refused by the check: the HTTP layer answers it.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub outcome: Outcome,
    /// 401, 403 or 503.
    pub status: u16,
    /// The `WWW-Authenticate` value (none on 503).
    pub challenge: Option<String>,
    /// Seconds, on 503.
    pub retry_after: Option<u32>,
    /// Why, in words safe to send and log (never the token).
    pub description: String,
}

/// What a synchronous check came to.
pub enum Check {
    Valid(Principal),
    Refused(Refusal),
    /// The token's key is not known yet: call [`Auth::check_fetching`].
    NeedsKeys,
}

/// The resource server of one node (see the module).
pub struct Auth {
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    token_type: String,
    required_scopes: Vec<String>,
    tool_scopes: std::collections::HashMap<String, Vec<String>>,
    challenge: Challenge,
    keys: KeyStore,
    metadata: metadata::Document,
    /// Tokens verified already (see [`cache`]).
    verified: cache::Verified,
}

impl Auth {
    /// The resource server `cfg` describes, or `None` when `auth.enabled` is false.
    pub fn new(cfg: &config::Auth) -> Result<Option<Arc<Auth>>, TlsError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let fetcher = fetch::Fetcher::new(&cfg.ca_file, cfg.http_timeout.get())?;
        let algorithms = cfg
            .algorithms
            .iter()
            .filter_map(|a| a.parse::<Algorithm>().ok())
            .collect();
        let metadata = metadata::Document::new(cfg);
        Ok(Some(Arc::new(Auth {
            audiences: cfg.effective_audiences(),
            algorithms,
            leeway: cfg.leeway.get(),
            token_type: cfg.token_type.clone(),
            required_scopes: cfg.required_scopes.clone(),
            tool_scopes: cfg
                .tool_scopes
                .iter()
                .map(|(tool, scopes)| (tool.clone(), scopes.clone()))
                .collect(),
            challenge: Challenge::new(metadata.url(), &cfg.required_scopes, &cfg.scopes_supported),
            keys: KeyStore::new(cfg.effective_issuers(), fetcher),
            metadata,
            verified: cache::Verified::default(),
        })))
    }

    /// The metadata document and where it is served.
    pub fn metadata(&self) -> &metadata::Document {
        &self.metadata
    }

    /// Checks the request's `Authorization` header without waiting.
    pub fn check(&self, authorization: Option<&[u8]>) -> Check {
        let token = match self.token(authorization) {
            Ok(token) => token,
            Err(refusal) => return Check::Refused(refusal),
        };
        if let Some(p) = self.verified.get(token) {
            return self.scoped(p);
        }
        let Some(token) = token68(token) else {
            return Check::Refused(self.malformed());
        };
        match self.verify(token) {
            Ok(Verified::Valid(p)) => self.scoped(p),
            Ok(Verified::NeedsKeys) => Check::NeedsKeys,
            Err(refusal) => Check::Refused(refusal),
        }
    }

    /// Checks the request's `Authorization` header, fetching its issuer's keys first if its
    /// key is not known (the slow path of [`check`](Self::check)).
    pub async fn check_fetching(&self, authorization: Option<&[u8]>) -> Check {
        let token = match self.token(authorization) {
            Ok(token) => token,
            Err(refusal) => return Check::Refused(refusal),
        };
        let Some(token) = token68(token) else {
            return Check::Refused(self.malformed());
        };
        if let Ok(unverified) = unverified_issuer(token) {
            if self.keys.refresh(&unverified).await {
                // A key withdrawn from the set takes the tokens it verified with it.
                self.verified.clear();
            }
        }
        match self.verify(token) {
            Ok(Verified::Valid(p)) => self.scoped(p),
            // Still unknown after the fetch (or the fetch was not allowed yet).
            Ok(Verified::NeedsKeys) => Check::Refused(
                self.invalid("the token's signing key is not published by its issuer"),
            ),
            Err(refusal) => Check::Refused(refusal),
        }
    }

    /// The bearer token, or the refusal of a request without one.
    fn token<'h>(&self, authorization: Option<&'h [u8]>) -> Result<&'h [u8], Refusal> {
        bearer(authorization).map_err(|why| match why {
            NoBearer::Missing => self.missing(),
            NoBearer::Malformed => self.malformed(),
        })
    }

    /// The 401 of an `Authorization` header that holds no usable bearer token (also what two
    /// such headers get: which one was meant is unknowable).
    pub fn malformed(&self) -> Refusal {
        self.invalid("the Authorization header is not `Bearer <token>`")
    }

    /// The principal, if it holds every scope required of all requests.
    fn scoped(&self, p: Principal) -> Check {
        match self.missing_scopes(&p, &[]) {
            None => Check::Valid(p),
            Some(refusal) => Check::Refused(refusal),
        }
    }

    /// The 403 of a `tools/call` of `tool` by `p`, when `[auth.tool_scopes]` requires a scope
    /// for it that `p` lacks (the challenge names every scope the call needs).
    pub fn tool_refusal(&self, p: &Principal, tool: &str) -> Option<Refusal> {
        let scopes = self.tool_scopes.get(tool)?;
        self.missing_scopes(p, scopes)
    }

    /// The 403 for `p` when it lacks one of the globally required scopes or `also`: the
    /// challenge names all of them (clients ask for all at once).
    pub fn missing_scopes(&self, p: &Principal, also: &[String]) -> Option<Refusal> {
        let needed: Vec<&str> = self
            .required_scopes
            .iter()
            .chain(also)
            .map(String::as_str)
            .collect();
        if needed.iter().all(|s| p.has_scope(s)) {
            return None;
        }
        Some(Refusal {
            outcome: Outcome::InsufficientScope,
            status: 403,
            challenge: Some(self.challenge.insufficient_scope(&needed)),
            retry_after: None,
            description: format!("the token lacks a required scope ({})", needed.join(" ")),
        })
    }

    /// A 401 `invalid_token` refusal.
    fn invalid(&self, description: impl Into<String>) -> Refusal {
        let description = description.into();
        Refusal {
            outcome: Outcome::Invalid,
            status: 401,
            challenge: Some(self.challenge.invalid_token(&description)),
            retry_after: None,
            description,
        }
    }

    /// The 401 of a request without a token (no error code: RFC 6750 §3.1).
    pub fn missing(&self) -> Refusal {
        Refusal {
            outcome: Outcome::Missing,
            status: 401,
            challenge: Some(self.challenge.missing()),
            retry_after: None,
            description: "a bearer token is required".into(),
        }
    }
}

/// The 503 of a token whose key cannot be fetched now.
fn unavailable(retry_after: Duration) -> Refusal {
    Refusal {
        outcome: Outcome::IssuerUnavailable,
        status: 503,
        challenge: None,
        retry_after: Some(u32::try_from(retry_after.as_secs().max(1)).unwrap_or(u32::MAX)),
        description: "the token's issuer cannot be reached to fetch its signing key; retry later"
            .into(),
    }
}

/// Why a request carries no usable bearer token.
enum NoBearer {
    /// No `Authorization` header, or another scheme (`Basic …`).
    Missing,
    /// `Bearer` without a well-formed token.
    Malformed,
}

/// The token of an `Authorization: Bearer <token>` header (the scheme without case), as sent:
/// not checked to be a token68 yet (a token found among the verified ones needs no check).
fn bearer(authorization: Option<&[u8]>) -> Result<&[u8], NoBearer> {
    let value = authorization.ok_or(NoBearer::Missing)?;
    let scheme_end = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return Err(NoBearer::Missing);
    }
    let token = value[scheme_end..].trim_ascii();
    if token.is_empty() {
        return Err(NoBearer::Malformed);
    }
    Ok(token)
}

/// `token` as text, when it is a token68 (RFC 7235: letters, digits, `-._~+/`, then `=`s).
fn token68(token: &[u8]) -> Option<&str> {
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let ok = body_end > 0
        && token[..body_end].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    // ASCII throughout, so the conversion cannot fail.
    ok.then(|| std::str::from_utf8(token).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_scheme_with_a_token68_is_a_token() {
        fn token(v: &[u8]) -> Option<&str> {
            bearer(Some(v)).ok().and_then(token68)
        }
        assert_eq!(token(b"Bearer abc.DEF-_~+/="), Some("abc.DEF-_~+/="));
        assert_eq!(token(b"bearer  x.y.z"), Some("x.y.z"));
        assert!(matches!(bearer(None), Err(NoBearer::Missing)));
        assert!(matches!(
            bearer(Some(b"Basic dXNlcjpwYXNz")),
            Err(NoBearer::Missing)
        ));
        assert!(matches!(bearer(Some(b"Bearer")), Err(NoBearer::Malformed)));
        assert!(matches!(bearer(Some(b"Bearer ")), Err(NoBearer::Malformed)));
        for bad in [
            &b"Bearer a b"[..],
            b"Bearer =",
            b"Bearer \xff",
            b"Bearer a,b",
        ] {
            assert_eq!(token(bad), None, "{bad:?}");
        }
    }
}
