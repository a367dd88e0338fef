//! Identifiers: the session id clients carry in `Mcp-Session-Id`, and the JSON-RPC request ids a
//! session tracks for cancellation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A session id: a random UUIDv4 from the OS CSPRNG (122 random bits), written hyphenated in
/// lower case. Only ids of exactly that form are ever looked up, so a header value is either one
/// of ours or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A fresh id. `uuid`'s v4 draws from `getrandom`, the OS CSPRNG.
    pub fn random() -> SessionId {
        SessionId(Uuid::new_v4())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A header value that is not a session id this server could have minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session id")]
pub struct BadSessionId;

impl FromStr for SessionId {
    type Err = BadSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Accept only the canonical 36-character hyphenated form we hand out; `Uuid::parse_str`
        // alone would also take braces, URNs and the simple form.
        if s.len() != 36 {
            return Err(BadSessionId);
        }
        let uuid = Uuid::parse_str(s).map_err(|_| BadSessionId)?;
        if uuid.get_version_num() != 4 {
            return Err(BadSessionId);
        }
        Ok(SessionId(uuid))
    }
}

/// A JSON-RPC request id: a string or an integer (MCP forbids `null`). Kept exactly as the client
/// sent it so that the response echoes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Num(i64),
    Str(Box<str>),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Num(n) => write!(f, "{n}"),
            RequestId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_id_parses_back_and_other_forms_do_not() {
        let id = SessionId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<SessionId>(), Ok(id));
        assert!(text.to_uppercase().parse::<SessionId>().is_ok());
        for bad in [
            "",
            "abc",
            "00000000-0000-0000-0000-000000000000",
            &text.replace('-', ""),
            &format!("{{{text}}}"),
            "../../etc/passwd",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn request_ids_round_trip_as_sent() {
        for raw in ["1", "-7", "\"abc\"", "\"\""] {
            let id: RequestId = serde_json::from_str(raw).unwrap();
            assert_eq!(serde_json::to_string(&id).unwrap(), raw);
        }
        assert!(serde_json::from_str::<RequestId>("null").is_err());
        assert!(serde_json::from_str::<RequestId>("1.5").is_err());
    }
}
