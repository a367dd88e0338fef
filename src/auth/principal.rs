//! Who a request is from, as its verified token says.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

pub use crate::session::Bearer;

/// The bearer of a verified access token: its issuer and subject (together, the identity a
/// session is bound to), the OAuth client it used, and the scopes it was granted. Cheap to clone
/// (one shared allocation).
#[derive(Clone, PartialEq, Eq)]
pub struct Principal(Arc<Inner>);

#[derive(PartialEq, Eq)]
struct Inner {
    issuer: String,
    subject: String,
    client_id: Option<String>,
    scopes: HashSet<String>,
}

impl Principal {
    /// As a token's `iss`, `sub`, `client_id` and scopes say.
    pub fn new(
        issuer: String,
        subject: String,
        client_id: Option<String>,
        scopes: HashSet<String>,
    ) -> Principal {
        Principal(Arc::new(Inner {
            issuer,
            subject,
            client_id,
            scopes,
        }))
    }

    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// `client_id`, when the token names one.
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.contains(scope)
    }

    /// The granted scopes, sorted.
    pub fn scopes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.0.scopes.iter().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The identity a session is bound to (scopes may differ from token to token).
    pub fn bearer(&self) -> Bearer {
        Bearer {
            iss: self.issuer().to_owned(),
            sub: self.subject().to_owned(),
            client_id: self.client_id().map(str::to_owned),
        }
    }

    /// Whether this is `bearer`: the same issuer, subject and client.
    pub fn is(&self, bearer: &Bearer) -> bool {
        self.issuer() == bearer.iss
            && self.subject() == bearer.sub
            && self.client_id() == bearer.client_id.as_deref()
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("iss", &self.issuer())
            .field("sub", &self.subject())
            .field("client_id", &self.client_id())
            .finish_non_exhaustive()
    }
}
