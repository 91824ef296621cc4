//! What a receiver verifies: the envelope's exact bytes, and the two signatures over them.
//!
//! - `webhook-signature: v1,<base64>` (Standard Webhooks): HMAC-SHA256 of
//!   `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the secret's bytes — for a
//!   `whsec_<base64>` secret the base64-decoded part after the prefix, otherwise the secret's UTF-8
//!   bytes.
//! - `X-Webhook-Signature: sha256=<hex>` (the template's): lowercase hex HMAC-SHA256 of the body,
//!   keyed with the whole secret string as UTF-8 (prefix included).
//!
//! Generated secrets are `whsec_` + base64 of 32 random bytes.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, ser::Formatter};
use sha2::Sha256;
use time::OffsetDateTime;

pub const SECRET_PREFIX: &str = "whsec_";

pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The Standard Webhooks key of `secret`.
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|rest| STANDARD.decode(rest).ok())
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let prefix = format!("{id}.{timestamp}.");
    format!("v1,{}", STANDARD.encode(hmac(&standard_key(secret), &[prefix.as_bytes(), body])))
}

/// `sha256=<hex HMAC-SHA256 of the body>`.
pub fn template_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(secret.as_bytes(), &[body])))
}

#[derive(Serialize)]
struct Envelope<'a> {
    event: &'a str,
    timestamp: String,
    data: &'a Value,
}

/// The body of a delivery: `{"event": …, "timestamp": …, "data": …}` serialised as Python's
/// `json.dumps` does (`", "` and `": "` separators, non-ASCII as `\uXXXX`), per the contract.
pub fn envelope(event: &str, at: OffsetDateTime, data: &Value) -> String {
    let envelope = Envelope { event, timestamp: crate::time::sortable(at), data };
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    envelope.serialize(&mut ser).expect("a JSON value always serialises");
    String::from_utf8(out).expect("escaped JSON is ASCII")
}

/// `json.dumps` defaults: `", "` between items, `": "` after keys, everything outside printable
/// ASCII escaped as `\uXXXX` (UTF-16, lowercase hex).
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() && c != '\x7f' {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_is_serialised_like_python() {
        let at = time::macros::datetime!(2026-01-02 12:00:00.123456 UTC);
        let body =
            envelope("item.created", at, &json!({"id": "x", "tags": ["a", "b"], "title": "Café ☕ 𝄞", "n": 1.5}));
        assert_eq!(
            body,
            r#"{"event": "item.created", "timestamp": "2026-01-02T12:00:00.123456Z", "data": {"id": "x", "n": 1.5, "tags": ["a", "b"], "title": "Caf\u00e9 \u2615 \ud834\udd1e"}}"#
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["data"]["title"], "Café ☕ 𝄞");
        assert!(envelope("e", at, &json!({"q": "a\"b\n"})).contains(r#""a\"b\n""#));
    }

    #[test]
    fn signatures_match_the_documented_algorithms() {
        // The Standard Webhooks reference example (svix's test vector).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // A secret without the prefix is used as its UTF-8 bytes.
        assert_eq!(standard_key("plain-secret"), b"plain-secret");
        assert_eq!(
            template_signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let generated = generate_secret();
        assert!(generated.starts_with("whsec_") && standard_key(&generated).len() == 32, "{generated}");
        assert_ne!(generated, generate_secret());
    }
}
