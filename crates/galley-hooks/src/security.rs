//! `$security`: random strings, JWTs, digests and constant-time comparison.

use galley_core::CoreError;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};

const ALPHANUMERIC: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

pub(crate) fn random_string(n: usize, alphabet: &str) -> String {
    let chars: Vec<char> = if alphabet.is_empty() {
        ALPHANUMERIC.chars().collect()
    } else {
        alphabet.chars().collect()
    };
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| chars[rng.gen_range(0..chars.len())])
        .collect()
}

pub(crate) fn jwt_create(payload: &Value, secret: &str, duration: i64) -> Result<Value, CoreError> {
    let mut claims = payload.as_object().cloned().unwrap_or_default();
    if duration > 0 {
        claims.insert(
            "exp".into(),
            json!(chrono::Utc::now().timestamp() + duration),
        );
    }
    Ok(json!(galley_auth::jwt::sign(&claims, secret)))
}

pub(crate) fn jwt_parse(token: &str, secret: Option<&str>) -> Result<Value, CoreError> {
    let claims = match secret {
        Some(s) => galley_auth::jwt::verify(token, s, chrono::Utc::now().timestamp()),
        None => galley_auth::jwt::unverified_claims(token),
    }
    .map_err(|e| CoreError::bad_request(format!("Invalid token: {e}")))?;
    Ok(Value::Object(claims))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn digest(kind: &str, text: &str) -> String {
    match kind {
        "sha512" => hex(&Sha512::digest(text.as_bytes())),
        _ => hex(&Sha256::digest(text.as_bytes())),
    }
}

pub(crate) fn hmac(kind: &str, text: &str, key: &str) -> String {
    match kind {
        "sha512" => {
            let mut m = Hmac::<Sha512>::new_from_slice(key.as_bytes()).expect("any key length");
            m.update(text.as_bytes());
            hex(&m.finalize().into_bytes())
        }
        _ => {
            let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
            m.update(text.as_bytes());
            hex(&m.finalize().into_bytes())
        }
    }
}
