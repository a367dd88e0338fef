//! What clients are told: the Protected Resource Metadata document (RFC 9728) and the
//! `WWW-Authenticate` challenges (RFC 6750 §3) that point at it.

use bytes::Bytes;
use serde_json::json;

use crate::config;

/// The metadata document, encoded once, and the paths it is served at.
pub struct Document {
    json: Bytes,
    url: String,
    /// `/.well-known/oauth-protected-resource` followed by the resource's path.
    path: String,
}

/// The well-known prefix of RFC 9728.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

impl Document {
    /// The document of the resource `cfg` describes.
    pub fn new(cfg: &config::Auth) -> Document {
        let (origin, resource_path) = split_origin(&cfg.resource);
        let path = format!("{WELL_KNOWN}{resource_path}");
        let url = format!("{origin}{path}");
        let mut doc = json!({
            "resource": cfg.resource,
            "authorization_servers": cfg.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !cfg.scopes_supported.is_empty() {
            doc["scopes_supported"] = json!(cfg.scopes_supported);
        }
        Document {
            json: Bytes::from(doc.to_string()),
            url,
            path,
        }
    }

    /// The JSON document.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// Where clients fetch it (`resource_metadata` in challenges).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether `path` is one it is served at: the resource's own well-known path, or the root
    /// form (RFC 9728 §3.1; clients try both).
    pub fn serves(&self, path: &str) -> bool {
        path == self.path || path == WELL_KNOWN
    }
}

/// `https://host[:port]` and the path (possibly empty) of an absolute URL.
fn split_origin(url: &str) -> (&str, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].find('/') {
        Some(slash) => url.split_at(start + slash),
        None => (url, ""),
    }
}

/// The parts every challenge shares.
pub struct Challenge {
    resource_metadata: String,
    /// The scopes a token should carry: the required ones, else the supported ones.
    scope: String,
}

impl Challenge {
    /// Challenges pointing at `metadata_url`.
    pub fn new(metadata_url: &str, required: &[String], supported: &[String]) -> Challenge {
        let scopes = if required.is_empty() {
            supported
        } else {
            required
        };
        Challenge {
            resource_metadata: metadata_url.to_owned(),
            scope: scopes.join(" "),
        }
    }

    fn with(&self, error: Option<(&str, &str)>, scope: &str) -> String {
        let mut v = format!("Bearer resource_metadata=\"{}\"", self.resource_metadata);
        if !scope.is_empty() {
            v.push_str(&format!(", scope=\"{scope}\""));
        }
        if let Some((code, description)) = error {
            v.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                quoted(description)
            ));
        }
        v
    }

    /// A request without a token: no error code (RFC 6750 §3.1).
    pub fn missing(&self) -> String {
        self.with(None, &self.scope)
    }

    /// A token that was refused.
    pub fn invalid_token(&self, description: &str) -> String {
        self.with(Some(("invalid_token", description)), &self.scope)
    }

    /// A token without every scope in `needed` (all of them in one challenge).
    pub fn insufficient_scope(&self, needed: &[&str]) -> String {
        self.with(
            Some(("insufficient_scope", "the token lacks a required scope")),
            &needed.join(" "),
        )
    }
}

/// `s` fit for a quoted-string: printable ASCII, no `"` or `\`.
fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_path_inserts_the_well_known_prefix_before_the_resource_path() {
        assert_eq!(
            split_origin("https://mcp.example.com/public/mcp"),
            ("https://mcp.example.com", "/public/mcp")
        );
        assert_eq!(
            split_origin("https://mcp.example.com"),
            ("https://mcp.example.com", "")
        );
    }

    #[test]
    fn challenges_carry_the_metadata_url_and_scopes_and_an_error_only_for_a_token() {
        let c = Challenge::new(
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            &[],
            &["mcp:tools".into()],
        );
        assert_eq!(
            c.missing(),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:tools\""
        );
        assert!(c
            .invalid_token("the \"token\" expired")
            .ends_with(", error=\"invalid_token\", error_description=\"the 'token' expired\""));
        assert!(c
            .insufficient_scope(&["a", "b"])
            .contains("scope=\"a b\", error=\"insufficient_scope\""));
    }
}
