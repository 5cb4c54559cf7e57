//! HS256 JWTs. PocketBase signs with `record.tokenKey + collection token secret`, so a
//! password change (new tokenKey) kills every token issued before it.

use crate::AuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs `claims` (an object) with `secret`.
pub fn sign(claims: &Map<String, Value>, secret: &str) -> String {
    let payload = Value::Object(claims.clone()).to_string();
    let mut out = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(out.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    out.push('.');
    out.push_str(&sig);
    out
}

/// Reads the claims without checking the signature, to find which record and secret to
/// verify against. Never trust the result before [`verify`].
pub fn unverified_claims(token: &str) -> Result<Map<String, Value>, AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header: Value = serde_json::from_slice(&B64.decode(h).map_err(|_| AuthError::Malformed)?)
        .map_err(|_| AuthError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(AuthError::Malformed);
    }
    match serde_json::from_slice(&B64.decode(p).map_err(|_| AuthError::Malformed)?) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(AuthError::Malformed),
    }
}

/// Verifies the signature (constant time) and `exp`, returning the claims.
pub fn verify(token: &str, secret: &str, now_unix: i64) -> Result<Map<String, Value>, AuthError> {
    let claims = unverified_claims(token)?;
    let (signed, sig) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| AuthError::Malformed)?;
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| AuthError::Malformed)?;
    mac.update(signed.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| AuthError::BadSignature)?;
    match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if (exp as i64) > now_unix => Ok(claims),
        _ => Err(AuthError::Expired),
    }
}

/// Constant-time equality of two secrets.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp: i64) -> Map<String, Value> {
        json!({"id": "abc", "type": "auth", "collectionId": "c1", "refreshable": true, "exp": exp})
            .as_object()
            .cloned()
            .expect("object")
    }

    #[test]
    fn round_trip() {
        let t = sign(&claims(2000), "k");
        assert_eq!(verify(&t, "k", 1000).expect("valid")["id"], "abc");
        assert_eq!(verify(&t, "other", 1000), Err(AuthError::BadSignature));
        assert_eq!(verify(&t, "k", 3000), Err(AuthError::Expired));
        assert_eq!(verify("a.b", "k", 0), Err(AuthError::Malformed));
        let mut forged = t.clone();
        forged.push('x');
        assert!(verify(&forged, "k", 1000).is_err());
    }

    #[test]
    fn alg_none_is_rejected() {
        let header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = B64.encode(r#"{"id":"x","exp":99999999999}"#);
        assert_eq!(
            verify(&format!("{header}.{body}."), "k", 0),
            Err(AuthError::Malformed)
        );
    }
}
