//! Verifying a JWT access token (RFC 9068): its signature with a key of its issuer's published
//! set, and its claims. What [`Auth::check`](super::Auth::check) runs on a token it has not
//! verified before.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::Validation;
use serde::Deserialize;

use super::keys::Lookup;
use super::{unavailable, Auth, Outcome, Principal, Refusal};

/// The claims read from a verified token (the registered ones are checked by `jsonwebtoken`
/// too, against the same settings).
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    /// Checked by `jsonwebtoken` (a number, not past); read here for how long to cache.
    exp: f64,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    /// Some issuers list scopes in `scp` (a string or an array) instead.
    #[serde(default)]
    scp: Option<Scp>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scp {
    One(String),
    Many(Vec<String>),
}

/// What verifying came to, short of a refusal.
pub(super) enum Verified {
    Valid(Principal),
    NeedsKeys,
}

impl Auth {
    /// The signature and claims of `token`.
    pub(super) fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| self.invalid("the token is not a JWT access token this server accepts"))?;
        if !self.token_type.is_empty() && !type_matches(header.typ.as_deref(), &self.token_type) {
            return Err(self.invalid(format!(
                "the token's type is not {} (an ID token or another kind of JWT)",
                self.token_type
            )));
        }
        if !self.algorithms.contains(&header.alg) {
            return Err(self.invalid("the token's signature algorithm is not accepted"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| self.invalid("the token's header names no key (kid)"))?;
        let iss =
            unverified_issuer(token).map_err(|()| self.invalid("the token names no issuer"))?;
        if !self.keys.accepts(&iss) {
            return Err(self.invalid("the token's issuer is not accepted here"));
        }
        let key = match self.keys.lookup(&iss, kid) {
            Lookup::Found(key) => key,
            Lookup::Fetch => return Ok(Verified::NeedsKeys),
            Lookup::Unknown => {
                return Err(self.invalid("the token's signing key is not published by its issuer"))
            }
            Lookup::Unavailable { retry_after } => return Err(unavailable(retry_after)),
        };
        if !key.verifies(header.alg) {
            return Err(self.invalid("the token's algorithm does not match its key"));
        }
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = self.leeway.as_secs();
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.set_issuer(&[iss.as_str()]);
        v.set_audience(&self.audiences);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => Refusal {
                    outcome: Outcome::Expired,
                    ..self.invalid("the token has expired")
                },
                K::ImmatureSignature => self.invalid("the token is not valid yet (nbf)"),
                K::InvalidAudience => self.invalid("the token is not for this resource (aud)"),
                K::InvalidIssuer => self.invalid("the token's issuer is not accepted here"),
                K::InvalidSignature => self.invalid("the token's signature does not verify"),
                K::MissingRequiredClaim(c) => self.invalid(format!("the token has no {c} claim")),
                K::InvalidClaimFormat(c) => {
                    self.invalid(format!("the token's {c} claim is malformed"))
                }
                _ => self.invalid("the token is malformed"),
            }
        })?;
        let c = data.claims;
        let mut scopes: HashSet<String> = c
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        match c.scp {
            Some(Scp::One(s)) => {
                scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
            }
            Some(Scp::Many(v)) => scopes.extend(v),
            None => {}
        }
        let principal = Principal::new(c.iss, c.sub, c.client_id, scopes);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let left = c.exp + self.leeway.as_secs_f64() - now;
        if left > 0.0 {
            self.verified
                .put(token, &principal, Duration::from_secs_f64(left));
        }
        Ok(Verified::Valid(principal))
    }
}

/// The `iss` claim of a token whose signature is not checked yet: only to choose which
/// issuer's keys to check it with.
pub(super) fn unverified_issuer(token: &str) -> Result<String, ()> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    let payload = token.split('.').nth(1).ok_or(())?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ())?;
    serde_json::from_slice::<Iss>(&bytes)
        .map(|i| i.iss)
        .map_err(|_| ())
}

/// RFC 9068 §4: `typ` is `at+jwt` or `application/at+jwt`, compared without case.
fn type_matches(typ: Option<&str>, required: &str) -> bool {
    typ.is_some_and(|t| {
        let t = t.strip_prefix("application/").unwrap_or(t);
        let r = required.strip_prefix("application/").unwrap_or(required);
        t.eq_ignore_ascii_case(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_token_type_is_compared_without_case_or_the_media_type_prefix() {
        assert!(type_matches(Some("at+jwt"), "at+jwt"));
        assert!(type_matches(Some("AT+JWT"), "at+jwt"));
        assert!(type_matches(Some("application/at+jwt"), "at+jwt"));
        assert!(!type_matches(Some("JWT"), "at+jwt"));
        assert!(!type_matches(None, "at+jwt"));
    }

    #[test]
    fn the_unverified_issuer_is_read_from_the_payload_only() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"iss":"https://as"}"#)
        );
        assert_eq!(unverified_issuer(&token), Ok("https://as".to_owned()));
        assert!(unverified_issuer("nodots").is_err());
        assert!(unverified_issuer(&format!("a.{}.c", b64(r#"{"iss":7}"#))).is_err());
    }
}
