//! Dashboard sessions and CSRF tokens.
//!
//! A session id is a random 256-bit value kept only in server memory, so signing out or an
//! expiry ends it for good (a signed cookie could not be revoked). Each session carries its
//! own CSRF token, checked on every state-changing request. Before sign-in (the sign-in and
//! install forms) there is no session yet: those forms use a double-submit token, a random
//! value in a SameSite=Strict cookie that the form must repeat.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "galley_session";
pub const PRE_CSRF_COOKIE: &str = "galley_csrf";
/// A session unused for this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// A session ends this long after sign-in, however busy.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 3600);
/// Live sessions kept at most; beyond it the least recently used one goes, so memory stays
/// bounded whatever the number of sign-ins.
pub const MAX_SESSIONS: usize = 1000;

/// 43 characters of [A-Za-z0-9]: ~256 bits from a CSPRNG.
pub fn random_token() -> String {
    galley_types::ids::secret(43)
}

#[derive(Debug, Clone)]
pub struct Session {
    pub superuser_id: String,
    /// The superuser's tokenKey at sign-in: a password change rotates it and ends the session.
    pub token_key: String,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session; returns its id.
    pub fn create(&self, superuser_id: &str, token_key: &str, now: Instant) -> String {
        let id = random_token();
        let mut m = self.inner.lock();
        m.retain(|_, s| alive(s, now));
        while m.len() >= MAX_SESSIONS {
            let Some(oldest) = m
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            m.remove(&oldest);
        }
        m.insert(
            id.clone(),
            Session {
                superuser_id: superuser_id.to_owned(),
                token_key: token_key.to_owned(),
                csrf: random_token(),
                created: now,
                last_seen: now,
            },
        );
        id
    }

    /// The live session with this id (and marks it used); an expired one is removed.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        if id.is_empty() || id.len() > 128 {
            return None;
        }
        let mut m = self.inner.lock();
        let s = m.get_mut(id)?;
        if !alive(s, now) {
            m.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn remove(&self, id: &str) {
        self.inner.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.last_seen) < IDLE_TIMEOUT
        && now.saturating_duration_since(s.created) < MAX_AGE
}

/// Whether a submitted CSRF token matches the expected one (constant time; empty never).
pub fn csrf_ok(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// A cookie's value from a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// `Set-Cookie` for a dashboard cookie: HttpOnly, SameSite=Strict, scoped to `/_/`;
/// `Secure` when the dashboard is reached over HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/_/; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={}", a.as_secs()));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// `Set-Cookie` that deletes a dashboard cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/_/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_lives_until_idle_or_max_age() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.create("su1", "key", t0);
        assert_eq!(s.get(&id, t0).map(|x| x.superuser_id), Some("su1".into()));
        // Used every hour: alive until the absolute limit.
        let mut t = t0;
        for _ in 0..11 {
            t += Duration::from_secs(3600);
            assert!(s.get(&id, t).is_some());
        }
        assert!(s.get(&id, t0 + MAX_AGE).is_none());
        assert!(s.is_empty(), "an expired session is dropped");

        let id = s.create("su1", "key", t0);
        assert!(s
            .get(&id, t0 + IDLE_TIMEOUT - Duration::from_secs(1))
            .is_some());
        assert!(s
            .get(&id, t0 + 2 * IDLE_TIMEOUT - Duration::from_secs(2))
            .is_some());
        assert!(s.get(&id, t0 + 3 * IDLE_TIMEOUT).is_none());
    }

    #[test]
    fn sign_out_and_unknown_ids() {
        let s = Sessions::default();
        let now = Instant::now();
        let id = s.create("su1", "key", now);
        assert!(s.get("", now).is_none());
        assert!(s.get("nope", now).is_none());
        assert!(s.get(&"x".repeat(10_000), now).is_none());
        s.remove(&id);
        assert!(s.get(&id, now).is_none());
    }

    #[test]
    fn ids_and_csrf_tokens_are_random_and_distinct() {
        let s = Sessions::default();
        let now = Instant::now();
        let a = s.create("su1", "k", now);
        let b = s.create("su1", "k", now);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let (ca, cb) = (s.get(&a, now).unwrap().csrf, s.get(&b, now).unwrap().csrf);
        assert_ne!(ca, cb);
        assert_ne!(ca, a);
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let now = Instant::now();
        let first = s.create("su", "k", now);
        for i in 0..MAX_SESSIONS + 10 {
            s.create("su", "k", now + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&first, now + Duration::from_secs(1)).is_none());
    }

    #[test]
    fn csrf_check() {
        assert!(csrf_ok("abc", "abc"));
        assert!(!csrf_ok("abc", "abd"));
        assert!(!csrf_ok("abc", "ab"));
        assert!(!csrf_ok("abc", ""));
        assert!(!csrf_ok("", ""), "no expected token never passes");
    }

    #[test]
    fn cookies() {
        let h = "a=1; galley_session=xyz; galley_csrf=q";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(h, PRE_CSRF_COOKIE), Some("q"));
        assert_eq!(cookie(h, "b"), None);
        assert_eq!(cookie("galley_session", SESSION_COOKIE), None);
        let c = set_cookie(SESSION_COOKIE, "v", Some(MAX_AGE), false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/_/"));
        assert!(!c.contains("Secure"));
        assert!(set_cookie(SESSION_COOKIE, "v", None, true).ends_with("; Secure"));
        assert!(clear_cookie(SESSION_COOKIE).contains("Max-Age=0"));
    }
}
