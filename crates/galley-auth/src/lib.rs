//! Credentials: argon2id password hashes and HS256 JWTs with PocketBase's claims.
//! No HTTP, no database: callers pass secrets in and get verdicts out.

pub mod jwt;
pub mod password;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("malformed token")]
    Malformed,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("password hashing failed: {0}")]
    Hash(String),
}
