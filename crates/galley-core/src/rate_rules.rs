//! PocketBase's configurable rate limits (`settings.rateLimits`): rules labelled
//! `collection:tag`, `*:tag`, `METHOD /path` or a `/path/` prefix, with an audience
//! (`""`, `@guest`, `@auth`), counted per client IP in fixed windows. The first rule that
//! matches a request's labels (most specific first) applies; superusers and `excludedIPs`
//! are never limited. This sits beside the built-in per-IP/per-identity auth limits
//! (`auth::ratelimit`), which apply whatever the rules say.

use crate::context::Caller;
use crate::error::CoreError;
use crate::settings::Settings;
use galley_types::Schema;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Windows kept before the stale ones are dropped.
const MAX_WINDOWS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    label: String,
    audience: String,
    duration: u64,
    max: u64,
}

fn rules(settings: &Settings) -> Vec<Rule> {
    settings
        .rate_limits
        .rules
        .iter()
        .map(|r| Rule {
            label: r.label.clone(),
            audience: r.audience.clone(),
            // A negative count reads as 0, as it did when rules were read from raw JSON: a
            // rule without a duration never applies, one without requests allows nothing.
            duration: u64::try_from(r.duration).unwrap_or(0),
            max: u64::try_from(r.max_requests).unwrap_or(0),
        })
        .filter(|r| !r.label.is_empty() && r.duration > 0)
        .collect()
}

/// The action tags of a collection endpoint (PocketBase's names), and the collection.
fn collection_tags(method: &str, path: &str) -> Option<(String, &'static [&'static str])> {
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    match seg.as_slice() {
        ["api", "files", col, _, _] if method == "GET" || method == "HEAD" => {
            Some((col.to_string(), &["file"]))
        }
        ["api", "collections", col, "records"] => match method {
            "GET" => Some((col.to_string(), &["list"])),
            "POST" => Some((col.to_string(), &["create"])),
            _ => None,
        },
        ["api", "collections", col, "records", _] => match method {
            "GET" => Some((col.to_string(), &["view"])),
            "PATCH" => Some((col.to_string(), &["update"])),
            "DELETE" => Some((col.to_string(), &["delete"])),
            _ => None,
        },
        ["api", "collections", col, action] => {
            let tags: &'static [&'static str] = match *action {
                "auth-methods" => &["listAuthMethods"],
                "auth-refresh" => &["authRefresh"],
                "auth-with-password" => &["authWithPassword", "auth"],
                "auth-with-oauth2" => &["authWithOAuth2", "auth"],
                "auth-with-otp" => &["authWithOTP", "auth"],
                "request-otp" => &["requestOTP"],
                "request-password-reset" => &["requestPasswordReset"],
                "confirm-password-reset" => &["confirmPasswordReset"],
                "request-verification" => &["requestVerification"],
                "confirm-verification" => &["confirmVerification"],
                "request-email-change" => &["requestEmailChange"],
                "confirm-email-change" => &["confirmEmailChange"],
                _ => return None,
            };
            Some((col.to_string(), tags))
        }
        _ => None,
    }
}

/// PocketBase's `FindRateLimitRule`: exact labels in order, and prefix rules (labels ending
/// in `/`) tried against each label.
fn find<'a>(rules: &'a [Rule], labels: &[String], audiences: &[&str]) -> Option<&'a Rule> {
    let fits = |r: &Rule| audiences.contains(&r.audience.as_str());
    for label in labels {
        if let Some(r) = rules.iter().find(|r| &r.label == label && fits(r)) {
            return Some(r);
        }
        let slashed = format!("{label}/");
        if let Some(r) = rules
            .iter()
            .find(|r| r.label.ends_with('/') && slashed.starts_with(&r.label) && fits(r))
        {
            return Some(r);
        }
    }
    None
}

struct Window {
    available: u64,
    /// When the window started (its last successful hit).
    last: Instant,
    /// The last hit, refused or not (the oldest are evicted first).
    touched: Instant,
}

/// Rules and the settings snapshot they were parsed from.
type ParsedRules = (Arc<Settings>, Arc<Vec<Rule>>);

/// Fixed windows per (rule bucket, client IP).
#[derive(Default)]
pub struct RuleLimiter {
    windows: Mutex<HashMap<(String, String), Window>>,
    /// The rules of the settings snapshot they were read from: every `/api/` request asks,
    /// so they are parsed once per settings change, not per request.
    parsed: Mutex<Option<ParsedRules>>,
}

impl RuleLimiter {
    /// Forgets every window (the rules changed).
    pub fn reset(&self) {
        if let Ok(mut w) = self.windows.lock() {
            w.clear();
        }
    }

    fn consume(&self, bucket: String, ip: &str, rule: &Rule) -> Result<(), CoreError> {
        let Ok(mut w) = self.windows.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let interval = std::time::Duration::from_secs(rule.duration);
        let key = (bucket, ip.to_owned());
        if !w.contains_key(&key) {
            galley_auth::ratelimit::evict_oldest(
                &mut w,
                MAX_WINDOWS,
                |v| now.duration_since(v.touched) >= interval * 2,
                |v| v.touched,
            );
        }
        let e = w.entry(key).or_insert(Window {
            available: rule.max,
            last: now,
            touched: now,
        });
        e.touched = now;
        if now.duration_since(e.last) >= interval {
            e.available = rule.max;
        }
        if e.available > 0 {
            e.available -= 1;
            e.last = now;
            return Ok(());
        }
        let wait = interval.saturating_sub(now.duration_since(e.last));
        Err(CoreError::TooManyRequests {
            retry_after: wait.as_secs().max(1),
        })
    }

    fn rules_of(&self, settings: &Arc<Settings>) -> Arc<Vec<Rule>> {
        let Ok(mut parsed) = self.parsed.lock() else {
            return Arc::new(rules(settings));
        };
        match &*parsed {
            Some((from, r)) if Arc::ptr_eq(from, settings) => r.clone(),
            _ => {
                let r = Arc::new(rules(settings));
                *parsed = Some((settings.clone(), r.clone()));
                r
            }
        }
    }

    /// Counts the request against the rule that matches it, if any. `ip` is only worked
    /// out when some rule may apply. `path` is the raw request path: rules are matched on
    /// it percent-decoded, with a collection named as the schema spells it, as the router
    /// resolves it (`/api/collections/%75SERS/records` is `users`' list).
    pub fn check(
        &self,
        settings: &Arc<Settings>,
        schema: &Schema,
        caller: &Caller,
        ip: impl FnOnce() -> String,
        method: &str,
        path: &str,
    ) -> Result<(), CoreError> {
        if !settings.rate_limits.enabled || caller.is_superuser() {
            return Ok(());
        }
        let rules = self.rules_of(settings);
        if rules.is_empty() {
            return Ok(());
        }
        let ip = ip();
        if ip.is_empty() {
            return Ok(());
        }
        let ip = ip.as_str();
        if settings.rate_limits.excluded_ips.iter().any(|x| x == ip) {
            return Ok(());
        }
        let audiences: [&str; 2] = match caller {
            Caller::Guest => ["", "@guest"],
            Caller::Record { .. } => ["", "@auth"],
        };
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let collection = collection_tags(method, &decoded)
            .and_then(|(c, tags)| schema.find(&c).map(|col| (c, col.clone(), tags)));
        let path = match &collection {
            Some((given, col, _)) => canonical(&decoded, given, &col.name),
            None => decoded.into_owned(),
        };
        let defaults = [format!("{method} {path}"), path];
        match collection {
            Some((_, col, tags)) => {
                let mut labels: Vec<String> =
                    tags.iter().map(|t| format!("{}:{t}", col.name)).collect();
                labels.extend(tags.iter().map(|t| format!("*:{t}")));
                labels.extend(defaults);
                match find(&rules, &labels, &audiences) {
                    // One bucket per collection and endpoint, as PocketBase keys them.
                    Some(r) => self.consume(
                        format!("{}|{}|{}", col.id, tags.join(","), r.audience),
                        ip,
                        r,
                    ),
                    None => Ok(()),
                }
            }
            None => match find(&rules, &defaults, &audiences) {
                Some(r) => self.consume(format!("{}{}", r.label, r.audience), ip, r),
                None => Ok(()),
            },
        }
    }
}

/// `path` (of a collection endpoint) with its collection segment, `given`, spelled `name`.
fn canonical(path: &str, given: &str, name: &str) -> String {
    path.split('/')
        .enumerate()
        .map(|(i, seg)| if i == 3 && seg == given { name } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(label: &str, audience: &str) -> Rule {
        Rule {
            label: label.into(),
            audience: audience.into(),
            duration: 10,
            max: 1,
        }
    }

    #[test]
    fn most_specific_label_first() {
        let rules = vec![
            rule("/api/", ""),
            rule("*:create", ""),
            rule("posts:create", "@auth"),
        ];
        let labels: Vec<String> = ["posts:create", "*:create", "POST /api/x", "/api/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            find(&rules, &labels, &["", "@guest"]).map(|r| r.label.as_str()),
            Some("*:create")
        );
        assert_eq!(
            find(&rules, &labels, &["", "@auth"]).map(|r| r.label.as_str()),
            Some("posts:create")
        );
        let other = vec!["GET /api/health".to_string(), "/api/health".to_string()];
        assert_eq!(
            find(&rules, &other, &[""]).map(|r| r.label.as_str()),
            Some("/api/")
        );
        assert_eq!(find(&rules, &["/apix".to_string()], &[""]), None);
    }

    #[test]
    fn tags_of_endpoints() {
        assert_eq!(
            collection_tags("POST", "/api/collections/users/auth-with-password"),
            Some(("users".into(), &["authWithPassword", "auth"][..]))
        );
        assert_eq!(
            collection_tags("GET", "/api/collections/posts/records/abc"),
            Some(("posts".into(), &["view"][..]))
        );
        assert_eq!(
            collection_tags("GET", "/api/files/posts/abc/x.png"),
            Some(("posts".into(), &["file"][..]))
        );
        assert_eq!(collection_tags("GET", "/api/health"), None);
    }

    #[test]
    fn fixed_window() {
        let l = RuleLimiter::default();
        let r = Rule {
            label: "x".into(),
            audience: String::new(),
            duration: 60,
            max: 2,
        };
        assert!(l.consume("b".into(), "1.2.3.4", &r).is_ok());
        assert!(l.consume("b".into(), "1.2.3.4", &r).is_ok());
        assert!(matches!(
            l.consume("b".into(), "1.2.3.4", &r),
            Err(CoreError::TooManyRequests { .. })
        ));
        assert!(l.consume("b".into(), "5.6.7.8", &r).is_ok(), "per IP");
    }
}
