//! MRTR `requestState`: what a multi round-trip request carries from one round to the next,
//! sealed so that the client can hold it but neither read nor change it, and any node of the
//! cluster can open it.
//!
//! A token is `v1.` followed by unpadded base64url of `kid ‖ nonce ‖ ciphertext ‖ tag`:
//! ChaCha20-Poly1305 (AEAD) under a key derived with HKDF-SHA256 from a secret, `kid` the first
//! four bytes of the key's SHA-256 (which key of the ring sealed it), the prefix and `kid`
//! authenticated as associated data. Inside: the answers the earlier rounds collected, and what
//! the state is bound to — the method, the tool name, prompt name or URI, a SHA-256 of the
//! request's arguments, and an expiry. A state presented with another method, target or
//! arguments, after its expiry, altered, or sealed by a key this node does not hold, does not
//! open ([`StateError`]); the client is told only that it is invalid or expired.
//!
//! Keys: the first of the ring seals, every one opens, so a new secret can be rolled out in front
//! of the old one without refusing states in flight.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The prefix of every token of this format.
const PREFIX: &str = "v1.";
/// HKDF `info`: keys derived for this use and no other.
const KEY_INFO: &[u8] = b"mcpd/request-state/v1/chacha20-poly1305";
const KID_LEN: usize = 4;
/// The longest `requestState` accepted (bytes): larger is refused before any work.
pub const MAX_STATE_LEN: usize = 256 * 1024;

/// What a state is bound to: the request it continues. The arguments are kept as sent and
/// hashed only when a state is sealed or opened: most requests do neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `tools/call`, `prompts/get` or `resources/read`.
    pub method: &'static str,
    /// The tool name, prompt name or resource URI (a catalog name is not copied).
    pub target: Cow<'static, str>,
    /// The request's `arguments`, as JSON text (empty: none were sent).
    arguments: Bytes,
    /// The bearer of the request (`auth` on): a state opens only for the same one.
    principal: Option<crate::auth::Principal>,
}

impl Binding {
    /// The binding of a request for `target` with `arguments` (JSON text; `None` is no arguments).
    pub fn new(
        method: &'static str,
        target: impl Into<Cow<'static, str>>,
        arguments: Option<&str>,
    ) -> Binding {
        Binding {
            method,
            target: target.into(),
            arguments: arguments.map_or_else(Bytes::new, |a| Bytes::copy_from_slice(a.as_bytes())),
            principal: None,
        }
    }

    /// Like [`new`](Self::new), with `arguments` kept as a slice of `body` (no copy) when they
    /// lie within it, as a request's do.
    pub fn in_body(
        method: &'static str,
        target: impl Into<Cow<'static, str>>,
        body: &Bytes,
        arguments: Option<&str>,
    ) -> Binding {
        let within = arguments.filter(|a| {
            let (outer, inner) = (body.as_ptr_range(), a.as_bytes().as_ptr_range());
            outer.start <= inner.start && inner.end <= outer.end
        });
        match within {
            Some(a) => Binding {
                method,
                target: target.into(),
                arguments: body.slice_ref(a.as_bytes()),
                principal: None,
            },
            None => Binding::new(method, target, arguments),
        }
    }

    /// The same, for the request of `principal` (the state it seals opens only for that bearer).
    pub fn of(mut self, principal: Option<&crate::auth::Principal>) -> Binding {
        self.principal = principal.cloned();
        self
    }

    /// The bearer as sealed: `iss`, `sub` and `client_id` joined by NUL (empty without one).
    fn bearer(&self) -> String {
        self.principal.as_ref().map_or_else(String::new, |p| {
            format!(
                "{}\0{}\0{}",
                p.issuer(),
                p.subject(),
                p.client_id().unwrap_or("")
            )
        })
    }

    /// SHA-256 (hex) of the arguments as canonical JSON: keys sorted (`serde_json::Map` keeps
    /// them so) and no spacing, so that a client re-encoding the same arguments matches.
    fn arguments_digest(&self) -> String {
        let canonical = serde_json::from_slice::<Value>(&self.arguments)
            .ok()
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| Value::Object(Map::new()));
        let encoded = serde_json::to_vec(&canonical).unwrap_or_default();
        hex(ring::digest::digest(&ring::digest::SHA256, &encoded).as_ref())
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(rename = "m")]
    method: String,
    #[serde(rename = "t")]
    target: String,
    /// [`Binding::arguments_digest`].
    #[serde(rename = "h")]
    arguments: String,
    /// Expiry, seconds since the Unix epoch.
    exp: u64,
    /// The answers collected so far, by input key.
    #[serde(rename = "a")]
    answers: Map<String, Value>,
    /// The bearer ([`Binding::bearer`]); absent in states sealed without one.
    #[serde(rename = "p", default, skip_serializing_if = "String::is_empty")]
    principal: String,
}

/// Why a state did not open. Logged, never told to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("not a state token of this server (format)")]
    Format,
    #[error("sealed by a key this node does not hold")]
    UnknownKey,
    #[error("failed integrity verification")]
    Tampered,
    #[error("expired")]
    Expired,
    #[error("bound to another request ({0})")]
    Binding(&'static str),
}

struct Key {
    kid: [u8; KID_LEN],
    key: LessSafeKey,
}

/// The keys states are sealed and opened with.
pub struct StateKeys {
    ring: Vec<Key>,
    ttl: Duration,
    rng: SystemRandom,
}

impl StateKeys {
    /// Keys derived from `secrets` (the first seals); states live `ttl`.
    pub fn from_secrets<S: AsRef<[u8]>>(secrets: &[S], ttl: Duration) -> StateKeys {
        StateKeys {
            ring: secrets.iter().map(|s| derive(s.as_ref())).collect(),
            ttl,
            rng: SystemRandom::new(),
        }
    }

    /// A random key of this process only (a single node without a configured secret or Redis).
    pub fn random(ttl: Duration) -> StateKeys {
        StateKeys::from_secrets(&[random_secret()], ttl)
    }

    /// Seals `answers` for the next round of the request `binding` describes.
    pub fn seal(&self, binding: &Binding, answers: Map<String, Value>) -> String {
        let exp = now_secs().saturating_add(self.ttl.as_secs().max(1));
        let sealed = Sealed {
            method: binding.method.to_owned(),
            target: binding.target.to_string(),
            arguments: binding.arguments_digest(),
            exp,
            answers,
            principal: binding.bearer(),
        };
        let mut data = serde_json::to_vec(&sealed).unwrap_or_default();
        let Some(key) = self.ring.first() else {
            return String::new();
        };
        let mut nonce = [0u8; NONCE_LEN];
        // The system RNG failing is the kernel failing; a zero nonce under a fresh key each run
        // would still not repeat within this process's life in practice, but we do not rely on it.
        if self.rng.fill(&mut nonce).is_err() {
            return String::new();
        }
        let aad = aad(&key.kid);
        if key
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut data,
            )
            .is_err()
        {
            return String::new();
        }
        let mut raw = Vec::with_capacity(KID_LEN + NONCE_LEN + data.len());
        raw.extend_from_slice(&key.kid);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&data);
        let mut token = String::with_capacity(PREFIX.len() + raw.len() * 4 / 3 + 4);
        token.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut token);
        token
    }

    /// Opens a state presented for the request `binding` describes: its answers.
    pub fn open(&self, token: &str, binding: &Binding) -> Result<Map<String, Value>, StateError> {
        let body = token.strip_prefix(PREFIX).ok_or(StateError::Format)?;
        if token.len() > MAX_STATE_LEN {
            return Err(StateError::Format);
        }
        let mut raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| StateError::Format)?;
        if raw.len() < KID_LEN + NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(StateError::Format);
        }
        let key = self
            .ring
            .iter()
            .find(|k| k.kid[..] == raw[..KID_LEN])
            .ok_or(StateError::UnknownKey)?;
        let nonce = Nonce::try_assume_unique_for_key(&raw[KID_LEN..KID_LEN + NONCE_LEN])
            .map_err(|_| StateError::Format)?;
        let aad = aad(&key.kid);
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(&aad), &mut raw[KID_LEN + NONCE_LEN..])
            .map_err(|_| StateError::Tampered)?;
        let sealed: Sealed = serde_json::from_slice(plain).map_err(|_| StateError::Tampered)?;
        if sealed.exp < now_secs() {
            return Err(StateError::Expired);
        }
        if sealed.method != binding.method {
            return Err(StateError::Binding("method"));
        }
        if sealed.target != *binding.target {
            return Err(StateError::Binding("name or uri"));
        }
        if sealed.arguments != binding.arguments_digest() {
            return Err(StateError::Binding("arguments"));
        }
        if sealed.principal != binding.bearer() {
            return Err(StateError::Binding("principal"));
        }
        Ok(sealed.answers)
    }
}

/// 32 random bytes, hex-encoded: a secret as the cluster stores it.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    // See `seal`: without the kernel's RNG nothing here is safe; fall back to uuid's source.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    hex(&bytes)
}

fn derive(secret: &[u8]) -> Key {
    struct Len;
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"mcpd");
    let prk = salt.extract(secret);
    let mut bytes = [0u8; 32];
    // `fill` fails only for an output longer than 255 hash lengths; 32 bytes never is.
    if let Ok(okm) = prk.expand(&[KEY_INFO], Len) {
        let _ = okm.fill(&mut bytes);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut kid = [0u8; KID_LEN];
    kid.copy_from_slice(&digest.as_ref()[..KID_LEN]);
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).unwrap_or_else(|_| unreachable_key());
    Key {
        kid,
        key: LessSafeKey::new(unbound),
    }
}

/// `UnboundKey::new` refuses only a key of the wrong length; ours is always 32 bytes.
fn unreachable_key() -> UnboundKey {
    match UnboundKey::new(&aead::CHACHA20_POLY1305, &[0u8; 32]) {
        Ok(k) => k,
        Err(_) => unreachable!("a 32-byte key is the algorithm's length"),
    }
}

fn aad(kid: &[u8; KID_LEN]) -> [u8; PREFIX.len() + KID_LEN] {
    let mut a = [0u8; PREFIX.len() + KID_LEN];
    a[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
    a[PREFIX.len()..].copy_from_slice(kid);
    a
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding() -> Binding {
        Binding::new("tools/call", "t", Some(r#"{"b": 2, "a": [1]}"#))
    }

    #[test]
    fn a_binding_in_the_body_equals_a_copied_one_and_copies_foreign_arguments() {
        let body = Bytes::from_static(br#"{"params":{"arguments":{"b": 2, "a": [1]}}}"#);
        let text = std::str::from_utf8(&body).unwrap();
        let args = &text[23..text.len() - 2];
        assert_eq!(args, r#"{"b": 2, "a": [1]}"#);
        let sliced = Binding::in_body("tools/call", "t", &body, Some(args));
        assert_eq!(sliced, binding());
        assert_eq!(sliced.arguments.as_ptr(), args.as_ptr(), "not copied");
        let foreign = String::from(args);
        let copied = Binding::in_body("tools/call", "t", &body, Some(&foreign));
        assert_eq!(copied, binding());
        assert_eq!(
            Binding::in_body("tools/call", "t", &body, None).arguments_digest(),
            Binding::new("tools/call", "t", Some("{}")).arguments_digest()
        );
    }

    fn answers() -> Map<String, Value> {
        json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn a_sealed_state_opens_for_its_request_with_any_key_of_the_ring() {
        let old = StateKeys::from_secrets(&["old"], Duration::from_secs(60));
        let token = old.seal(&binding(), answers());
        assert!(token.starts_with("v1."));
        assert!(!token.contains("Alice"), "sealed, not readable: {token}");
        assert_eq!(old.open(&token, &binding()), Ok(answers()));
        let rotated = StateKeys::from_secrets(&["new", "old"], Duration::from_secs(60));
        assert_eq!(rotated.open(&token, &binding()), Ok(answers()));
        let fresh = rotated.seal(&binding(), answers());
        assert_eq!(rotated.open(&fresh, &binding()), Ok(answers()));
        assert_eq!(old.open(&fresh, &binding()), Err(StateError::UnknownKey));
    }

    #[test]
    fn argument_order_and_spacing_do_not_change_the_binding() {
        let a = Binding::new(
            "tools/call",
            "t",
            Some(r#"{"x": 1, "y": {"q": 1, "p": 2}}"#),
        );
        let b = Binding::new("tools/call", "t", Some(r#"{"y":{"p":2,"q":1},"x":1}"#));
        assert_eq!(a.arguments_digest(), b.arguments_digest());
        let none = Binding::new("tools/call", "t", None);
        let empty = Binding::new("tools/call", "t", Some("{}"));
        assert_eq!(none.arguments_digest(), empty.arguments_digest());
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }

    #[test]
    fn tampered_foreign_expired_and_rebound_states_do_not_open() {
        let keys = StateKeys::from_secrets(&["k"], Duration::from_secs(60));
        let token = keys.seal(&binding(), answers());
        assert_eq!(
            keys.open(&format!("{token}-TAMPERED"), &binding()),
            Err(StateError::Format)
        );
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(keys.open(&flipped, &binding()), Err(StateError::Tampered));
        for junk in ["", "v1.", "v1.!!!", "v2.abcd", "garbage"] {
            assert!(keys.open(junk, &binding()).is_err(), "{junk:?}");
        }
        let other = StateKeys::from_secrets(&["other"], Duration::from_secs(60));
        assert_eq!(other.open(&token, &binding()), Err(StateError::UnknownKey));
        let other_tool = Binding {
            target: "u".into(),
            ..binding()
        };
        assert_eq!(
            keys.open(&token, &other_tool),
            Err(StateError::Binding("name or uri"))
        );
        let other_args = Binding::new("tools/call", "t", None);
        assert_eq!(
            keys.open(&token, &other_args),
            Err(StateError::Binding("arguments"))
        );
        let b = binding();
        let expired = Sealed {
            method: b.method.to_owned(),
            target: b.target.to_string(),
            arguments: b.arguments_digest(),
            exp: 1,
            answers: Map::new(),
            principal: String::new(),
        };
        // Seal an already expired state by hand, with the same key.
        let key = &keys.ring[0];
        let mut data = serde_json::to_vec(&expired).unwrap();
        let nonce = [7u8; NONCE_LEN];
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad(&key.kid)),
                &mut data,
            )
            .unwrap();
        let raw = [&key.kid[..], &nonce[..], &data[..]].concat();
        let token = format!("v1.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(keys.open(&token, &binding()), Err(StateError::Expired));
    }

    #[test]
    fn each_seal_differs_and_random_keys_differ_per_process() {
        let keys = StateKeys::random(Duration::from_secs(60));
        let a = keys.seal(&binding(), answers());
        let b = keys.seal(&binding(), answers());
        assert_ne!(a, b);
        let other = StateKeys::random(Duration::from_secs(60));
        assert!(other.open(&a, &binding()).is_err());
        assert_eq!(random_secret().len(), 64);
    }
}
