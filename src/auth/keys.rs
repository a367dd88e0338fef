//! The signing keys of the accepted issuers, by `kid`: discovered from each issuer's metadata
//! (RFC 8414, then OpenID discovery), fetched from its `jwks_uri`, kept in memory.
//!
//! A token's key is looked up without waiting ([`KeyStore::lookup`]); only a `kid` this node has
//! not seen sends the request to fetch ([`KeyStore::refresh`]), and then at most once per
//! [`REFRESH_INTERVAL`] per issuer, one fetch at a time, so a flood of invented `kid`s costs the
//! issuer one request a half-minute. The last good keys stay while an issuer is unreachable: a
//! token signed with a known key keeps working through an authorization-server outage.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

use super::fetch::{FetchError, Fetcher};

/// An issuer's keys are fetched at most this often.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// A key a token may be signed with.
pub struct Key {
    pub decoding: DecodingKey,
    /// The JWK's own `alg`, when it names one: then it is the only algorithm the key verifies.
    pub alg: Option<Algorithm>,
    pub family: AlgorithmFamily,
}

impl Key {
    /// Whether a token that says it is signed with `alg` may be verified with this key: the key
    /// names that algorithm, or names none and is of its family (never HMAC: keys here are
    /// public).
    pub fn verifies(&self, alg: Algorithm) -> bool {
        match self.alg {
            Some(own) => own == alg,
            None => alg.family() == self.family,
        }
    }
}

/// What a lookup found.
pub enum Lookup {
    Found(Arc<Key>),
    /// Not among the keys fetched within the last [`REFRESH_INTERVAL`].
    Unknown,
    /// Not known yet, and a fetch is allowed now.
    Fetch,
    /// The last fetch failed and the key is not known: the issuer is down (for `retry_after`).
    Unavailable {
        retry_after: Duration,
    },
}

/// The keys of every accepted issuer.
pub struct KeyStore {
    issuers: HashMap<String, Issuer>,
    fetcher: Fetcher,
}

/// One issuer's keys and fetch state.
struct Issuer {
    state: RwLock<State>,
    /// Held while fetching: concurrent requests for a new `kid` wait for the one fetch.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<Key>>,
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    last_failed: bool,
}

impl State {
    fn may_fetch(&self, now: Instant) -> bool {
        self.last_attempt
            .is_none_or(|t| now.saturating_duration_since(t) >= REFRESH_INTERVAL)
    }
}

/// The part of an authorization server's metadata used here.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<serde_json::Value>,
}

impl KeyStore {
    /// A store for `issuers` (nothing is fetched until a token needs it).
    pub fn new(issuers: &[String], fetcher: Fetcher) -> KeyStore {
        KeyStore {
            issuers: issuers
                .iter()
                .map(|i| {
                    (
                        i.clone(),
                        Issuer {
                            state: RwLock::new(State::default()),
                            fetching: tokio::sync::Mutex::new(()),
                        },
                    )
                })
                .collect(),
            fetcher,
        }
    }

    /// Whether tokens of `iss` are accepted at all.
    pub fn accepts(&self, iss: &str) -> bool {
        self.issuers.contains_key(iss)
    }

    /// The key `kid` of `iss`, without waiting.
    pub fn lookup(&self, iss: &str, kid: &str) -> Lookup {
        let Some(issuer) = self.issuers.get(iss) else {
            return Lookup::Unknown;
        };
        let state = issuer.state.read().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = state.keys.get(kid) {
            return Lookup::Found(Arc::clone(key));
        }
        let now = Instant::now();
        if state.may_fetch(now) {
            return Lookup::Fetch;
        }
        if state.last_failed {
            let since = state
                .last_attempt
                .map_or(REFRESH_INTERVAL, |t| now.saturating_duration_since(t));
            return Lookup::Unavailable {
                retry_after: REFRESH_INTERVAL.saturating_sub(since),
            };
        }
        Lookup::Unknown
    }

    /// Fetches `iss`'s keys if no fetch happened within [`REFRESH_INTERVAL`] (one at a time; a
    /// caller that waited for another's fetch uses its result). The keys before a failed fetch
    /// are kept. True when a fetched set replaced them.
    pub async fn refresh(&self, iss: &str) -> bool {
        let Some(issuer) = self.issuers.get(iss) else {
            return false;
        };
        let _one = issuer.fetching.lock().await;
        let jwks_uri = {
            let mut state = issuer.state.write().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if !state.may_fetch(now) {
                return false;
            }
            state.last_attempt = Some(now);
            state.jwks_uri.clone()
        };
        let fetched = self.fetch(iss, jwks_uri).await;
        let mut state = issuer.state.write().unwrap_or_else(|p| p.into_inner());
        match fetched {
            Ok((jwks_uri, keys)) => {
                tracing::info!(issuer = %iss, keys = keys.len(), "fetched the issuer's signing keys");
                state.jwks_uri = Some(jwks_uri);
                state.keys = keys;
                state.last_failed = false;
                true
            }
            Err(e) => {
                tracing::warn!(issuer = %iss, kept = state.keys.len(), "cannot fetch the issuer's signing keys: {e:#}");
                state.last_failed = true;
                false
            }
        }
    }

    /// The issuer's key set (discovering where it is first).
    async fn fetch(
        &self,
        iss: &str,
        jwks_uri: Option<String>,
    ) -> Result<(String, HashMap<String, Arc<Key>>), KeyError> {
        let jwks_uri = match jwks_uri {
            Some(uri) => uri,
            None => self.discover(iss).await?,
        };
        let set: KeySet = self
            .fetcher
            .json(&jwks_uri)
            .await
            .map_err(|e| KeyError::Fetch(jwks_uri.clone(), e))?;
        Ok((jwks_uri, keys(set)))
    }

    /// `jwks_uri` from the issuer's metadata: RFC 8414's well-known URL, then OpenID
    /// discovery's. The metadata must name this very issuer (RFC 8414 §3.3).
    async fn discover(&self, iss: &str) -> Result<String, KeyError> {
        let mut last = None;
        for url in metadata_urls(iss) {
            match self.fetcher.json::<Metadata>(&url).await {
                Ok(m) if m.issuer == iss => return Ok(m.jwks_uri),
                Ok(m) => {
                    return Err(KeyError::Mismatch {
                        url,
                        issuer: m.issuer,
                    })
                }
                Err(e) => last = Some(KeyError::Fetch(url, e)),
            }
        }
        Err(last.unwrap_or(KeyError::NoMetadata))
    }
}

/// Why an issuer's keys could not be had.
#[derive(Debug, thiserror::Error)]
enum KeyError {
    #[error("{0}: {1}")]
    Fetch(String, FetchError),
    #[error("the metadata at {url} is for issuer {issuer:?}, not this one")]
    Mismatch { url: String, issuer: String },
    #[error("no metadata URL")]
    NoMetadata,
}

/// Where an issuer's metadata may be: RFC 8414 inserts the well-known segment before the
/// issuer's path; OpenID discovery appends it.
fn metadata_urls(iss: &str) -> Vec<String> {
    let (origin, path) = match iss.find("://").map(|i| i + 3) {
        Some(start) => match iss[start..].find('/') {
            Some(slash) => iss.split_at(start + slash),
            None => (iss, ""),
        },
        None => (iss, ""),
    };
    vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ]
}

/// The signature keys of a key set, by `kid`: keys without a `kid`, encryption keys, secret
/// (`oct`) keys and keys this build cannot use are left out.
fn keys(set: KeySet) -> HashMap<String, Arc<Key>> {
    set.keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                return None;
            }
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 | EllipticCurve::P384 => AlgorithmFamily::Ec,
                    _ => return None,
                },
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                    AlgorithmFamily::Ed
                }
                _ => return None,
            };
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(a) => Some(Algorithm::try_from(a).ok()?),
            };
            if alg.is_some_and(|a| a.family() != family) {
                return None;
            }
            let decoding = DecodingKey::from_jwk(&jwk).ok()?;
            Some((
                kid,
                Arc::new(Key {
                    decoding,
                    alg,
                    family,
                }),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_rfc_8414_then_openid_put_it() {
        assert_eq!(
            metadata_urls("https://as.example.com"),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example.com/tenant/1"),
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example.com/tenant/1/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn only_usable_signature_keys_with_a_kid_are_kept() {
        let set: KeySet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "RSA", "use": "sig", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "ec-rs", "alg": "RS256", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird", "kid": "weird"}
        ]}))
        .unwrap();
        let keys = keys(set);
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["ec", "rsa"]);
        assert!(keys["rsa"].verifies(Algorithm::RS256));
        assert!(
            !keys["rsa"].verifies(Algorithm::PS256),
            "the key names RS256"
        );
        assert!(!keys["rsa"].verifies(Algorithm::HS256));
        assert!(keys["ec"].verifies(Algorithm::ES256));
        assert!(!keys["ec"].verifies(Algorithm::RS256));
    }
}
