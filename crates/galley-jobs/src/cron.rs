//! Cron expressions as PocketBase accepts them: five space-separated fields (minute, hour,
//! day of month, month, day of week) of `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n` and
//! `a/n`, and comma lists; or one of the macros `@yearly` `@annually` `@monthly` `@weekly`
//! `@daily` `@midnight` `@hourly`. No month or day names (PocketBase has none).
//!
//! As in PocketBase, a minute matches when every field matches (day of month and day of week
//! together, not either one as in Vixie cron). Times are UTC.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// Longest expression accepted; a real one is a few dozen characters.
pub const MAX_LEN: usize = 256;

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

/// Why an expression was refused, for the caller's 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression: {0}")]
pub struct CronError(pub String);

fn err(m: impl Into<String>) -> CronError {
    CronError(m.into())
}

/// Field bounds, in order.
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
];

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        if expr.len() > MAX_LEN {
            return Err(err(format!("longer than {MAX_LEN} characters")));
        }
        let expr = expr.trim();
        let expanded = match expr {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            m if m.starts_with('@') => return Err(err(format!("unknown macro {m:?}"))),
            e => e,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(err(format!(
                "expected 5 space-separated fields, got {}",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, part) in parts.iter().enumerate() {
            bits[i] = field(part, FIELDS[i])?;
        }
        Ok(Schedule {
            minutes: bits[0],
            hours: bits[1],
            days: bits[2],
            months: bits[3],
            weekdays: bits[4],
        })
    }

    /// Whether the minute that `t` falls in is one of the schedule's.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        let has = |set: u64, v: u32| set & (1u64 << v) != 0;
        has(self.minutes, t.minute())
            && has(self.hours, t.hour())
            && has(self.days, t.day())
            && has(self.months, t.month())
            && has(self.weekdays, t.weekday().num_days_from_sunday())
    }

    /// The first matching minute strictly after `t`, within the next 5 years (an
    /// expression such as `0 0 31 2 *` never matches: `None`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut m = t.with_second(0)?.with_nanosecond(0)? + chrono::Duration::minutes(1);
        let end = t + chrono::Duration::days(5 * 366);
        while m < end {
            let has = |set: u64, v: u32| set & (1u64 << v) != 0;
            if !has(self.months, m.month())
                || !has(self.days, m.day())
                || !has(self.weekdays, m.weekday().num_days_from_sunday())
            {
                // Skip to the next day's midnight.
                m = (m + chrono::Duration::days(1))
                    .with_hour(0)?
                    .with_minute(0)?;
                continue;
            }
            if !has(self.hours, m.hour()) {
                m = (m + chrono::Duration::hours(1)).with_minute(0)?;
                continue;
            }
            if has(self.minutes, m.minute()) {
                return Some(m);
            }
            m += chrono::Duration::minutes(1);
        }
        None
    }
}

fn number(s: &str, name: &str, lo: u32, hi: u32) -> Result<u32, CronError> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!("{name}: {s:?} is not a number")));
    }
    let v: u32 = s
        .parse()
        .map_err(|_| err(format!("{name}: {s:?} is not a number")))?;
    if v < lo || v > hi {
        return Err(err(format!("{name}: {v} is outside {lo}-{hi}")));
    }
    Ok(v)
}

fn field(text: &str, (name, lo, hi): (&str, u32, u32)) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(format!("{name}: step {s:?} is not a number")));
                }
                let st: u32 = s
                    .parse()
                    .map_err(|_| err(format!("{name}: step {s:?} is not a number")))?;
                if st == 0 || st > hi - lo + 1 {
                    return Err(err(format!(
                        "{name}: step {st} is outside 1-{}",
                        hi - lo + 1
                    )));
                }
                (r, Some(st))
            }
            None => (item, None),
        };
        let (from, to) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a, name, lo, hi)?, number(b, name, lo, hi)?);
            if a > b {
                return Err(err(format!("{name}: range {a}-{b} is backwards")));
            }
            (a, b)
        } else {
            let a = number(range, name, lo, hi)?;
            // `a/n` runs from a to the field's end, as in Vixie cron.
            (a, if step.is_some() { hi } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = from;
        while v <= to {
            bits |= 1u64 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn macros_expand() {
        assert_eq!(Schedule::parse("@daily"), Schedule::parse("0 0 * * *"));
        assert_eq!(Schedule::parse("@midnight"), Schedule::parse("@daily"));
        assert_eq!(Schedule::parse("@annually"), Schedule::parse("@yearly"));
        assert_eq!(Schedule::parse("@hourly"), Schedule::parse("0 * * * *"));
        assert_eq!(Schedule::parse("@weekly"), Schedule::parse("0 0 * * 0"));
        assert_eq!(Schedule::parse("@monthly"), Schedule::parse("0 0 1 * *"));
        assert!(Schedule::parse("@sometimes").is_err());
    }

    #[test]
    fn fields_match() {
        let s = Schedule::parse("*/15 9-17 * * 1-5").expect("parse");
        // 2026-12-02 is a Wednesday.
        assert!(s.matches(at(2026, 12, 2, 9, 0)));
        assert!(s.matches(at(2026, 12, 2, 17, 45)));
        assert!(!s.matches(at(2026, 12, 2, 17, 46)));
        assert!(!s.matches(at(2026, 12, 2, 8, 0)));
        // Sunday.
        assert!(!s.matches(at(2026, 12, 6, 10, 0)));
        let s = Schedule::parse("0 */6 * * *").expect("parse");
        assert!(s.matches(at(2026, 1, 1, 18, 0)));
        assert!(!s.matches(at(2026, 1, 1, 19, 0)));
        let s = Schedule::parse("5,10 0 1 1 *").expect("parse");
        assert!(s.matches(at(2027, 1, 1, 0, 10)));
        let s = Schedule::parse("30/10 * * * *").expect("parse");
        assert!(s.matches(at(2027, 1, 1, 0, 50)) && !s.matches(at(2027, 1, 1, 0, 20)));
    }

    #[test]
    fn day_fields_both_apply() {
        // The 13th only when it is a Friday (PocketBase semantics).
        let s = Schedule::parse("0 0 13 * 5").expect("parse");
        assert!(!s.matches(at(2026, 12, 13, 0, 0)));
        assert!(s.matches(at(2026, 11, 13, 0, 0)));
    }

    #[test]
    fn next_run() {
        let s = Schedule::parse("0 0 * * *").expect("parse");
        assert_eq!(
            s.next_after(at(2026, 12, 2, 8, 5)),
            Some(at(2026, 12, 3, 0, 0))
        );
        let s = Schedule::parse("*/5 * * * *").expect("parse");
        assert_eq!(
            s.next_after(at(2026, 12, 2, 8, 5)),
            Some(at(2026, 12, 2, 8, 10))
        );
        assert_eq!(
            Schedule::parse("0 0 31 2 *")
                .expect("parse")
                .next_after(at(2026, 1, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn bad_expressions() {
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "1,,2 * * * *",
            "-1 * * * *",
            "*/ * * * *",
            "1- * * * *",
            "+1 * * * *",
            "*/61 * * * *",
            "001 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Schedule::parse(&"1,".repeat(200)).is_err());
    }
}
