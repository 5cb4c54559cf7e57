//! The last events a node delivered, numbered, so a WebSocket client that reconnects with
//! `lastEventId` gets what it missed (or learns that it must reload).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Events kept for clients that reconnect, at most.
pub const JOURNAL_LEN: usize = 10_000;
/// Bytes of events kept, at most (as the caller sizes them): a few large records must not
/// hold hundreds of megabytes, with or without subscribers.
pub const JOURNAL_BYTES: usize = 16 << 20;

struct Inner<E> {
    /// The number of the last event.
    last: u64,
    /// Events after this number are all kept (those up to it may not be).
    floor: u64,
    events: VecDeque<(u64, Arc<E>, usize)>,
    bytes: usize,
}

/// This node's recent events, numbered in delivery order; holds at most [`JOURNAL_LEN`]
/// events and [`JOURNAL_BYTES`] bytes.
pub struct Journal<E> {
    inner: Mutex<Inner<E>>,
}

impl<E> Default for Journal<E> {
    fn default() -> Self {
        Journal {
            inner: Mutex::new(Inner {
                last: 0,
                floor: 0,
                events: VecDeque::new(),
                bytes: 0,
            }),
        }
    }
}

impl<E> Journal<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<E>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers and keeps `ev`, which weighs `size` bytes; returns its number. An event larger
    /// than the whole budget is numbered but not kept.
    pub fn push(&self, ev: Arc<E>, size: usize) -> u64 {
        let mut g = self.lock();
        g.last += 1;
        let seq = g.last;
        if size > JOURNAL_BYTES {
            g.events.clear();
            g.bytes = 0;
            g.floor = seq;
            return seq;
        }
        g.events.push_back((seq, ev, size));
        g.bytes += size;
        while g.events.len() > JOURNAL_LEN || g.bytes > JOURNAL_BYTES {
            let Some((s, _, n)) = g.events.pop_front() else {
                break;
            };
            g.bytes -= n;
            g.floor = s;
        }
        seq
    }

    /// Forgets every event so far: events were lost before they were numbered, so no
    /// client can resume from before now.
    pub fn reset(&self) {
        let mut g = self.lock();
        g.events.clear();
        g.bytes = 0;
        g.floor = g.last;
    }

    /// The number of the last event (0 before any).
    pub fn last(&self) -> u64 {
        self.lock().last
    }

    /// Bytes of events kept now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The events after `seq`, or `None` when some of them are no longer kept.
    pub fn since(&self, seq: u64) -> Option<Vec<(u64, Arc<E>)>> {
        let g = self.lock();
        if seq >= g.last {
            return Some(vec![]);
        }
        if seq < g.floor {
            return None;
        }
        Some(
            g.events
                .iter()
                .filter(|(s, _, _)| *s > seq)
                .map(|(s, e, _)| (*s, e.clone()))
                .collect(),
        )
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
            j.push(Arc::new(n), 1);
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
        assert_eq!(j.since(5).map(|v| v.len()), Some(JOURNAL_LEN));
        assert!(j.since(4).is_none());
    }

    #[test]
    fn journal_is_bounded_by_bytes() {
        let j = Journal::<usize>::default();
        let mb = 1 << 20;
        for n in 0..40 {
            j.push(Arc::new(n), mb);
        }
        assert!(j.bytes() <= JOURNAL_BYTES);
        assert_eq!(j.bytes(), JOURNAL_BYTES);
        assert!(j.since(0).is_none());
        let kept = j.since(40 - 16).expect("the last 16 MB");
        assert_eq!(kept.len(), 16);
        j.push(Arc::new(99), JOURNAL_BYTES + 1);
        assert_eq!(j.bytes(), 0);
        assert!(j.since(40).is_none(), "the oversized event was not kept");
        assert_eq!(j.since(41).map(|v| v.len()), Some(0));
        j.push(Arc::new(100), 10);
        j.reset();
        assert!(j.since(41).is_none());
        assert_eq!(j.since(42).map(|v| v.len()), Some(0));
    }
}
