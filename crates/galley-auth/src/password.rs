use crate::AuthError;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

fn hasher() -> Argon2<'static> {
    // OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
    let params = Params::new(19456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Verifies a password against a stored hash in constant time: argon2id, or bcrypt (hashes
/// imported from PocketBase). Unknown hash formats verify as false.
pub fn verify(password: &str, stored: &str) -> bool {
    if is_bcrypt(stored) {
        // bcrypt reads at most 72 bytes; PocketBase refuses longer passwords anyway.
        return password.len() <= 72 && bcrypt::verify(password, stored).unwrap_or(false);
    }
    match PasswordHash::new(stored) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Whether a stored hash should be replaced by a fresh argon2id hash after a successful
/// verification (bcrypt, or argon2 with other parameters).
pub fn needs_rehash(stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => {
            h.algorithm.as_str() != "argon2id"
                || h.params.get_decimal("m") != Some(19456)
                || h.params.get_decimal("t") != Some(2)
                || h.params.get_decimal("p") != Some(1)
        }
        Err(_) => is_bcrypt(stored),
    }
}

/// Does the work of a verification against a fixed hash, so that an unknown identity takes
/// as long to refuse as a wrong password (no account enumeration by timing).
pub fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let h = DUMMY.get_or_init(|| hash("galley-dummy-password").unwrap_or_default());
    let _ = verify(password, h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("s3cret-pass").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("s3cret-pass", &h));
        assert!(!verify("wrong", &h));
        assert!(!verify("s3cret-pass", "not-a-hash"));
        assert!(!needs_rehash(&h));
    }

    #[test]
    fn bcrypt_from_pocketbase_verifies_and_needs_rehash() {
        // Cost 4 to keep the test fast; PocketBase writes cost 10 ($2a$10$...).
        let h = bcrypt::hash_with_salt("12345678", 4, [7u8; 16])
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoA);
        assert!(h.starts_with("$2a$04$"));
        assert!(verify("12345678", &h));
        assert!(!verify("1234567", &h));
        assert!(needs_rehash(&h));
        assert!(!verify("12345678", "$2a$10$broken"));
    }
}
