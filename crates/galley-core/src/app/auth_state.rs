//! Process-wide state of the auth flows (rate limiters, the OAuth2 client, the resend
//! throttle), held by the [`App`](super::App).

use crate::context::Caller;
use crate::error::CoreError;
use galley_auth::ratelimit::{AuthLimits, Limiter, RetryAfter};
use galley_types::Collection;

fn too_many(r: RetryAfter) -> CoreError {
    CoreError::TooManyRequests { retry_after: r.0 }
}

/// Process-wide state of the auth flows.
pub struct AuthState {
    pub limits: AuthLimits,
    limiter: Limiter,
    /// Mirrors `settings.rateLimits.enabled`.
    limiting: std::sync::atomic::AtomicBool,
    /// OAuth2/OIDC outgoing HTTP and the discovery cache.
    pub oauth: galley_auth::oauth2::Client,
    /// Names that Apple posts once to the OAuth2 redirect, by authorization code, until
    /// the code is exchanged (at most a minute).
    pub redirect_names:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, String)>>,
    /// When a verification or reset mail last went to a record (the resend throttle).
    resent: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Verification and password-reset mails to one record: at most one per this window, as
/// PocketBase (later requests answer 204 without sending).
pub const RESEND_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

impl AuthState {
    pub fn new(limits: AuthLimits, private_avatars: bool) -> Self {
        AuthState {
            limits,
            limiter: Default::default(),
            limiting: std::sync::atomic::AtomicBool::new(true),
            oauth: galley_auth::oauth2::Client::default().with_private_avatars(private_avatars),
            redirect_names: Default::default(),
            resent: Default::default(),
        }
    }

    /// True when mail `kind` may go to `record_id` now (and starts its window); false
    /// within [`RESEND_WINDOW`] of the last one.
    pub fn may_resend(&self, kind: &str, record_id: &str) -> bool {
        let Ok(mut m) = self.resent.lock() else {
            return true;
        };
        m.retain(|_, at| at.elapsed() < RESEND_WINDOW);
        let key = format!("{kind}:{record_id}");
        if m.contains_key(&key) {
            return false;
        }
        m.insert(key, std::time::Instant::now());
        true
    }

    /// Follows the `rateLimits.enabled` setting.
    pub fn set_limiting(&self, on: bool) {
        self.limiting
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn limiting(&self) -> bool {
        self.limiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts an auth request from client `ip` (superusers are not limited).
    pub fn limit_ip(&self, caller: &Caller, ip: &str) -> Result<(), CoreError> {
        if caller.is_superuser() || !self.limiting() {
            return Ok(());
        }
        self.limiter
            .hit(&format!("ip:{ip}"), self.limits.per_ip, self.limits.window)
            .map_err(too_many)
    }

    /// Counts an auth request about `identity` (an email, identity or OTP id) of `col`.
    pub fn limit_identity(
        &self,
        caller: &Caller,
        col: &Collection,
        identity: &str,
    ) -> Result<(), CoreError> {
        if caller.is_superuser() || identity.is_empty() || !self.limiting() {
            return Ok(());
        }
        let key = format!("id:{}:{}", col.id, identity.to_lowercase());
        self.limiter
            .hit(&key, self.limits.per_identity, self.limits.window)
            .map_err(too_many)
    }
}
