//! Rate limits of the auth endpoints, by client IP and by identity (collection + email or
//! identity), on by default (DESIGN §16): a sliding window of request times per key.
//! When the table is full, the keys used longest ago are dropped ([`evict_oldest`]), never
//! the whole table. Who is exempt is the caller's business.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many auth requests a window allows. `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuthLimits {
    pub window: Duration,
    /// Auth requests per client IP and window.
    pub per_ip: usize,
    /// Auth requests per identity (an email, an identity, an OTP id) and window.
    pub per_identity: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            window: Duration::from_secs(60),
            per_ip: 60,
            per_identity: 10,
        }
    }
}

const MAX_KEYS: usize = 100_000;

/// Makes room in a full table of rate-limit keys: drops the expired entries, then the
/// tenth used longest ago. Never the whole table: a caller that floods it with new keys
/// (rotating IPv6 addresses) must not reset the counters of the keys in use, which are
/// the most recent. Amortised O(1) per insertion (one pass per tenth of `max` new keys).
pub fn evict_oldest<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    expired: impl Fn(&V) -> bool,
    last_use: impl Fn(&V) -> Instant,
) {
    if map.len() < max {
        return;
    }
    map.retain(|_, v| !expired(v));
    if map.len() < max {
        return;
    }
    let mut times: Vec<Instant> = map.values().map(&last_use).collect();
    let nth = times.len() / 10;
    let (_, cutoff, _) = times.select_nth_unstable(nth);
    let cutoff = *cutoff;
    map.retain(|_, v| last_use(v) > cutoff);
}

/// A refused hit: the client may retry after this many seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry after {0} s")]
pub struct RetryAfter(pub u64);

#[derive(Default)]
pub struct Limiter {
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    /// Records a hit for `key`; refuses with 429 (and a Retry-After) past `max` a `window`.
    pub fn hit(&self, key: &str, max: usize, window: Duration) -> Result<(), RetryAfter> {
        if max == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut map) = self.hits.lock() else {
            return Ok(());
        };
        if !map.contains_key(key) {
            evict_oldest(
                &mut map,
                MAX_KEYS,
                |q| q.back().is_none_or(|t| now.duration_since(*t) >= window),
                |q| q.back().copied().unwrap_or(now),
            );
        }
        let q = map.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= max {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Err(RetryAfter(wait.as_secs().max(1)));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_allows_max_then_refuses() {
        let l = Limiter::default();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.hit("k", 3, w).is_ok());
        }
        match l.hit("k", 3, w) {
            Err(RetryAfter(retry_after)) => {
                assert!((1..=60).contains(&retry_after))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(l.hit("other", 3, w).is_ok());
        assert!(l.hit("k", 0, w).is_ok(), "0 means unlimited");
    }

    #[test]
    fn a_full_table_drops_its_oldest_keys_not_all() {
        let l = Limiter::default();
        let w = Duration::from_secs(600);
        for i in 0..MAX_KEYS / 2 {
            let _ = l.hit(&format!("old{i}"), 3, w);
        }
        for _ in 0..3 {
            assert!(l.hit("victim", 3, w).is_ok());
        }
        assert!(l.hit("victim", 3, w).is_err());
        for i in 0..MAX_KEYS * 6 / 10 {
            let _ = l.hit(&format!("k{i}"), 3, w);
        }
        assert!(
            l.hit("victim", 3, w).is_err(),
            "{} keys later the counter still holds",
            MAX_KEYS
        );
        let n = l.hits.lock().map(|m| m.len()).unwrap_or(0);
        assert!((MAX_KEYS * 8 / 10..=MAX_KEYS).contains(&n), "{n}");
    }

    #[test]
    fn window_slides() {
        let l = Limiter::default();
        let w = Duration::from_millis(30);
        assert!(l.hit("k", 1, w).is_ok());
        assert!(l.hit("k", 1, w).is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(l.hit("k", 1, w).is_ok());
    }
}
