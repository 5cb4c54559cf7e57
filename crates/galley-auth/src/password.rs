use crate::AuthError;
use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;

/// OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
const M_COST: u32 = 19456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// Stored hashes asking for more memory than this are refused rather than computed.
const MAX_M_COST: u32 = 1 << 20;

thread_local! {
    // Each hash needs m KiB of work memory. Reusing one buffer per thread (the hashing
    // threads are few and long-lived) keeps memory flat under a login storm; allocating it per
    // hash left the allocator holding hundreds of MiB.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's work memory (~19 MiB for the default parameters). The hashing
/// threads call it when no other hash is waiting, so an idle server does not hold it while
/// a login storm still reuses it from one hash to the next.
pub fn release_work_memory() {
    BLOCKS.with(|b| *b.borrow_mut() = Vec::new());
}

fn with_blocks<T>(params: &Params, f: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        let need = params.block_count();
        if b.len() < need {
            b.resize(need, Block::default());
        }
        f(&mut b[..need])
    })
}

fn compute(
    alg: Algorithm,
    version: Version,
    params: Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), AuthError> {
    let a = Argon2::new(alg, version, params.clone());
    with_blocks(&params, |blocks| {
        a.hash_password_into_with_memory(password.as_bytes(), salt, out, blocks)
    })
    .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    let params =
        Params::new(M_COST, T_COST, P_COST, None).map_err(|e| AuthError::Hash(e.to_string()))?;
    let mut out = [0u8; 32];
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params,
        password,
        salt_bytes,
        &mut out,
    )?;
    let out = Output::new(&out).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${out}",
        salt.as_str()
    ))
}

/// Verifies an argon2 PHC string, with the reused work memory.
/// `None` when `h` is no usable argon2 hash (nothing was computed).
fn verify_argon2(password: &str, h: &PasswordHash<'_>) -> Option<bool> {
    let alg = match h.algorithm.as_str() {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "argon2d" => Algorithm::Argon2d,
        _ => return None,
    };
    let version = match h.version {
        Some(0x10) => Version::V0x10,
        _ => Version::V0x13,
    };
    let get = |k: &str| h.params.get_decimal(k);
    let (Some(m), Some(t), Some(p)) = (get("m"), get("t"), get("p")) else {
        return None;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return None;
    };
    if m > MAX_M_COST {
        return None;
    }
    let Ok(params) = Params::new(m, t, p, Some(expected.len())) else {
        return None;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return None;
    };
    let mut out = vec![0u8; expected.len()];
    if compute(alg, version, params, password, salt, &mut out).is_err() {
        return Some(false);
    }
    use subtle::ConstantTimeEq;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
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
    match PasswordHash::new(stored)
        .ok()
        .and_then(|h| verify_argon2(password, &h))
    {
        Some(ok) => ok,
        None => {
            // Not a hash (the `!…` placeholder of an OAuth2- or OTP-only account, an empty
            // or damaged value): refused, at the cost of a real verification, so the
            // answer's timing does not tell such accounts apart.
            verify_dummy(password);
            false
        }
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
    // Not through `verify`, which comes here for what is not a hash.
    if let Ok(h) = PasswordHash::new(h) {
        let _ = verify_argon2(password, &h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_not_a_hash_costs_a_verification() {
        let real = hash("pass-word-1").expect("hash");
        let time = |stored: &str| {
            (0..3)
                .map(|_| {
                    let t = std::time::Instant::now();
                    assert!(!verify("other-pass", stored));
                    t.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let full = time(&real);
        for stored in ["!placeholder", "", "$argon2id$garbage", "plain text"] {
            let t = time(stored);
            assert!(t * 3 >= full, "{stored:?}: {t:?} against {full:?}");
        }
    }

    #[test]
    fn interoperates_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash("pass-word-1").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default()
            .verify_password(b"pass-word-1", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"other-pass", &salt)
            .expect("hash")
            .to_string();
        assert!(verify("other-pass", &theirs));
        assert!(!verify("other-pasS", &theirs));
    }

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
