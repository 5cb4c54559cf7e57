//! Credentials and who vouches for them: argon2id password hashes, HS256 JWTs with
//! PocketBase's claims, the OAuth2/OIDC provider client, and the sliding-window limiter of
//! the auth endpoints. No HTTP server, no database: callers pass secrets and settings in and
//! get verdicts out.

pub mod jwt;
pub mod oauth2;
pub mod password;
pub mod ratelimit;

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
