//! Cron expressions (galley-jobs): parsing never panics, and a parsed schedule answers
//! `matches` and `next_after` for any time without panicking or looping forever.
#![no_main]

use chrono::{DateTime, Utc};
use galley_jobs::cron::Schedule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(s) = Schedule::parse(text) {
        let t = DateTime::<Utc>::from_timestamp(1_790_000_000 + i64::from(data.len() as u32) * 7_919, 0)
            .unwrap_or_default();
        let _ = s.matches(t);
        if let Some(n) = s.next_after(t) {
            assert!(n > t && s.matches(n));
        }
    }
});
