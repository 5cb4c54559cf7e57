//! When a failed job runs again: exponential in the attempt, with jitter so that jobs that
//! failed together (a partner was down) do not all come back at the same instant.

use rand::Rng;
use std::time::Duration;

/// The delay before the run after failed attempt `attempt` (1 = the first run):
/// `base · 2^(attempt-1)`, capped at `max`, times a random factor in [0.5, 1.5), capped at
/// `max` again.
pub fn delay(attempt: i64, base: Duration, max: Duration) -> Duration {
    let exp = attempt.clamp(1, 40) - 1;
    let raw = base
        .checked_mul(1u32 << exp.min(31))
        .unwrap_or(max)
        .min(max);
    let factor: f64 = rand::thread_rng().gen_range(0.5..1.5);
    raw.mul_f64(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_stays_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 1..=6 {
            let nominal = base * (1 << (attempt - 1));
            let seen: Vec<Duration> = (0..200).map(|_| delay(attempt, base, max)).collect();
            assert!(seen
                .iter()
                .all(|d| *d >= nominal / 2 && *d < nominal * 3 / 2));
            // Jitter: not all equal.
            assert!(seen.iter().any(|d| *d != seen[0]));
        }
        for attempt in [20, 40, 1000, i64::MAX] {
            assert!(delay(attempt, base, max) <= max);
        }
        assert!(delay(0, base, max) < base * 3 / 2);
    }
}
