//! The last events a node delivered, numbered, so a WebSocket client that reconnects with
//! `lastEventId` gets what it missed (or learns that it must reload).

use std::collections::VecDeque;
use std::sync::Mutex;

/// Events kept for clients that reconnect.
pub const JOURNAL_LEN: usize = 10_000;

/// This node's recent events, numbered in delivery order; holds at most [`JOURNAL_LEN`].
pub struct Journal<E> {
    inner: Mutex<(u64, VecDeque<(u64, E)>)>,
}

impl<E> Default for Journal<E> {
    fn default() -> Self {
        Journal {
            inner: Mutex::new((0, VecDeque::new())),
        }
    }
}

impl<E: Clone> Journal<E> {
    /// Numbers and keeps `ev`; returns its number.
    pub fn push(&self, ev: &E) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let seq = g.0;
        g.1.push_back((seq, ev.clone()));
        while g.1.len() > JOURNAL_LEN {
            g.1.pop_front();
        }
        seq
    }

    /// The number of the last event (0 before any).
    pub fn last(&self) -> u64 {
        self.inner.lock().map(|g| g.0).unwrap_or(0)
    }

    /// The events after `seq`, or `None` when some of them are no longer kept.
    pub fn since(&self, seq: u64) -> Option<Vec<(u64, E)>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if seq > g.0 {
            return Some(vec![]);
        }
        let oldest = g.1.front().map(|(s, _)| *s).unwrap_or(g.0 + 1);
        if seq + 1 < oldest {
            return None;
        }
        Some(g.1.iter().filter(|(s, _)| *s > seq).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_keeps_the_last_events_and_says_when_it_cannot_resume() {
        let j = Journal::<usize>::default();
        assert_eq!(j.since(0).map(|v| v.len()), Some(0));
        for n in 0..JOURNAL_LEN + 5 {
            j.push(&n);
        }
        let last = j.last();
        assert_eq!(last, (JOURNAL_LEN + 5) as u64);
        assert!(
            j.since(1).is_none(),
            "event 2 is gone: the client must reload"
        );
        let tail = j.since(last - 2).expect("kept");
        assert_eq!(
            tail.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![last - 1, last]
        );
        assert_eq!(j.since(last).map(|v| v.len()), Some(0));
        assert_eq!(j.since(6).map(|v| v.len()), Some(JOURNAL_LEN - 1));
        assert!(j.since(4).is_none());
    }
}
