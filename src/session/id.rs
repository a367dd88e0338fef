//! Identifiers: the session id clients carry in `Mcp-Session-Id`, and the JSON-RPC request ids a
//! session tracks for cancellation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which node minted a session: a 32-bit tag derived from the node id. It travels inside the
/// session id so that any node can tell, without asking Redis, where a session lives. It is a
/// routing hint, never an authority: the registry has the last word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerTag(u32);

impl OwnerTag {
    /// The tag of `node` (FNV-1a: stable across builds and versions, unlike `std`'s hasher).
    pub fn of(node: &str) -> OwnerTag {
        let mut h: u32 = 0x811c_9dc5;
        for b in node.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        OwnerTag(h)
    }
}

impl fmt::Display for OwnerTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl FromStr for OwnerTag {
    type Err = BadSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 8 {
            return Err(BadSessionId);
        }
        u32::from_str_radix(s, 16)
            .map(OwnerTag)
            .map_err(|_| BadSessionId)
    }
}

/// Random bytes for session ids, read from the OS CSPRNG (`getrandom`) a block at a time: one
/// syscall serves [`entropy::IDS`] ids instead of one per session. The bytes are the kernel's,
/// unchanged; each id's are zeroed in the block when drawn, so the block holds only future ids.
mod entropy {
    use std::cell::RefCell;

    /// Ids served by one `getrandom` call (1 KiB per worker thread).
    pub(super) const IDS: usize = 64;

    struct Block {
        ids: [[u8; 16]; IDS],
        next: usize,
    }

    thread_local! {
        static BLOCK: RefCell<Block> = const {
            RefCell::new(Block { ids: [[0; 16]; IDS], next: IDS })
        };
    }

    /// Sixteen fresh random bytes.
    pub(super) fn draw() -> Result<[u8; 16], getrandom::Error> {
        BLOCK.with_borrow_mut(|b| {
            if b.next == IDS {
                getrandom::fill(b.ids.as_flattened_mut())?;
                b.next = 0;
            }
            let bytes = std::mem::take(&mut b.ids[b.next]);
            b.next += 1;
            Ok(bytes)
        })
    }
}

/// A session id: a random UUIDv4 from the OS CSPRNG (122 random bits) followed by the minting
/// node's [`OwnerTag`], written `<uuid>-<tag>` in lower case (45 visible ASCII characters). Only
/// ids of exactly that form are ever looked up, so a header value is either one of ours or
/// unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    uuid: Uuid,
    owner: OwnerTag,
}

impl SessionId {
    /// A fresh id minted by the node tagged `owner`. Its random bits come from the OS CSPRNG
    /// (see [`entropy`]).
    pub fn minted_by(owner: OwnerTag) -> SessionId {
        let uuid = match entropy::draw() {
            Ok(bytes) => uuid::Builder::from_random_bytes(bytes).into_uuid(),
            // getrandom does not fail on Linux once the pool is seeded; if it ever does, uuid's
            // own v4 path asks the OS again and behaves as before.
            Err(_) => Uuid::new_v4(),
        };
        SessionId { uuid, owner }
    }

    /// A fresh id for tests.
    #[cfg(test)]
    pub fn random() -> SessionId {
        Self::minted_by(OwnerTag::of("test"))
    }

    /// The node that minted it.
    pub fn owner(&self) -> OwnerTag {
        self.owner
    }
}

impl SessionId {
    /// Length of the text form.
    pub const TEXT_LEN: usize = 45;

    /// The text form, encoded on the stack: one `write_str` for `Display`, so `to_string()`
    /// allocates once instead of growing a `String` piece by piece (ids are written for every
    /// new session: its text, the response header, registry keys).
    pub fn text(&self) -> IdText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; Self::TEXT_LEN];
        self.uuid.hyphenated().encode_lower(&mut buf[..36]);
        buf[36] = b'-';
        for (i, b) in buf[37..].iter_mut().enumerate() {
            *b = HEX[((self.owner.0 >> (28 - 4 * i)) & 0xf) as usize];
        }
        IdText(buf)
    }
}

/// A [`SessionId`]'s text, on the stack.
#[derive(Debug, Clone, Copy)]
pub struct IdText([u8; SessionId::TEXT_LEN]);

impl IdText {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and hyphens are ever written into it.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

/// A header value that is not a session id this server could have minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session id")]
pub struct BadSessionId;

impl FromStr for SessionId {
    type Err = BadSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the exact form we hand out: `Uuid::parse_str` alone would also take braces, URNs
        // and the simple form.
        if s.len() != 45 || s.as_bytes()[36] != b'-' {
            return Err(BadSessionId);
        }
        let uuid = Uuid::parse_str(&s[..36]).map_err(|_| BadSessionId)?;
        if uuid.get_version_num() != 4 {
            return Err(BadSessionId);
        }
        Ok(SessionId {
            uuid,
            owner: s[37..].parse()?,
        })
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
    fn a_minted_id_parses_back_with_its_owner_and_other_forms_do_not() {
        let owner = OwnerTag::of("node-a");
        let id = SessionId::minted_by(owner);
        let text = id.to_string();
        assert_eq!(text.len(), 45);
        assert_eq!(
            text,
            format!("{}-{owner}", id.uuid.hyphenated()),
            "uuid, then the owner tag"
        );
        assert!(text.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(text.parse::<SessionId>(), Ok(id));
        assert_eq!(text.parse::<SessionId>().map(|i| i.owner()), Ok(owner));
        assert!(text.to_uppercase().parse::<SessionId>().is_ok());
        let uuid_only = &text[..36];
        for bad in [
            "",
            "abc",
            uuid_only,
            "00000000-0000-0000-0000-000000000000-00000000",
            &text.replace('-', ""),
            &format!("{{{text}}}"),
            &format!("{uuid_only}-zzzzzzzz"),
            &format!("{uuid_only}_{owner}"),
            "../../etc/passwd",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_drawn_across_entropy_blocks_are_distinct_random_v4_uuids() {
        let owner = OwnerTag::of("node-a");
        let n = entropy::IDS * 3 + 5; // three refills and a partial block
        let ids: std::collections::HashSet<SessionId> =
            (0..n).map(|_| SessionId::minted_by(owner)).collect();
        assert_eq!(ids.len(), n, "no id repeats");
        for id in &ids {
            assert_eq!(id.uuid.get_version_num(), 4);
            assert_eq!(id.uuid.get_variant(), uuid::Variant::RFC4122);
        }
        // 122 random bits each: no two ids share their first 8 bytes by chance.
        let prefixes: std::collections::HashSet<[u8; 8]> = ids
            .iter()
            .map(|id| id.uuid.as_bytes()[..8].try_into().unwrap_or_default())
            .collect();
        assert_eq!(prefixes.len(), n);
    }

    #[test]
    fn owner_tags_are_stable_and_differ_between_nodes() {
        assert_eq!(OwnerTag::of("a").to_string(), "e40c292c");
        assert_ne!(OwnerTag::of("node-1"), OwnerTag::of("node-2"));
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
