//! Tokens this node has verified, so that the next request with the same token costs a lookup
//! instead of a signature check.
//!
//! Why: verifying an RS256 signature with the pure-Rust backend costs about a million
//! instructions (callgrind), some hundred microseconds, and a client sends the same token with
//! every request until it expires. What is kept is exactly what the full check gave, keyed by the
//! whole token text, until the token's `exp` (plus the leeway) but never longer than [`MAX_AGE`];
//! the cache is emptied when an issuer's key set changes (a key withdrawn takes its tokens with
//! it). Bounded by [`CAPACITY`]: when full, expired entries go first, and if none has expired
//! the cache starts over (a flood of distinct valid tokens costs signature checks, never memory).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::Principal;

/// Tokens kept at most.
pub const CAPACITY: usize = 4096;
/// A verified token is checked again at least this often.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// See the module.
#[derive(Default)]
pub struct Verified {
    tokens: RwLock<HashMap<Box<[u8]>, Entry, foldhash::fast::RandomState>>,
}

struct Entry {
    principal: Principal,
    until: Instant,
}

impl Verified {
    /// The principal of `token` if it was verified and is still valid.
    pub fn get(&self, token: &[u8]) -> Option<Principal> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        let entry = tokens.get(token)?;
        (Instant::now() < entry.until).then(|| entry.principal.clone())
    }

    /// Keeps `token`'s `principal` for `valid_for` (capped at [`MAX_AGE`]).
    pub fn put(&self, token: &str, principal: &Principal, valid_for: Duration) {
        let now = Instant::now();
        let until = now + valid_for.min(MAX_AGE);
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= CAPACITY {
            tokens.retain(|_, e| e.until > now);
            if tokens.len() >= CAPACITY {
                tokens.clear();
            }
        }
        tokens.insert(
            token.as_bytes().into(),
            Entry {
                principal: principal.clone(),
                until,
            },
        );
    }

    /// Forgets every token (an issuer's keys changed).
    pub fn clear(&self) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tokens.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(sub: &str) -> Principal {
        Principal::new("https://as".into(), sub.into(), None, Default::default())
    }

    #[test]
    fn a_verified_token_is_found_until_it_expires_and_the_cache_stays_bounded() {
        let cache = Verified::default();
        cache.put("t1", &principal("a"), Duration::from_secs(60));
        assert_eq!(
            cache.get(b"t1").map(|p| p.subject().to_owned()),
            Some("a".into())
        );
        assert!(cache.get(b"t2").is_none());
        cache.put("gone", &principal("b"), Duration::ZERO);
        assert!(cache.get(b"gone").is_none(), "expired");
        for i in 0..CAPACITY * 2 {
            cache.put(&format!("t-{i}"), &principal("c"), Duration::from_secs(60));
        }
        assert!(cache.len() <= CAPACITY);
        cache.clear();
        assert!(cache.get(b"t1").is_none());
    }
}
