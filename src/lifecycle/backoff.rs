//! CrashLoopBackOff as the kubelet computes it (client-go's flowcontrol
//! Backoff, keyed per container): the first restart is immediate; after
//! that the container waits 10 s, doubling up to 300 s, counted from its
//! finish time; an entry untouched for 2 × 300 s is forgotten.

use super::Time;

pub const INITIAL_MS: i64 = 10_000;
pub const MAX_MS: i64 = 300_000;
/// How soon the kubelet's pod worker syncs a pod again after a sync that
/// failed (its backOffPeriod): when an image pull failed, that sync finds
/// the image backing off.
pub const PULL_RESYNC_MS: i64 = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// (current delay, when it was last updated).
    entry: Option<(i64, Time)>,
}

impl Backoff {
    fn expired(finished_at: Time, last_update: Time) -> bool {
        finished_at.millis_since(last_update) > 2 * MAX_MS
    }

    /// When a container that finished at `finished_at` may start again.
    pub fn restart_at(&self, finished_at: Time) -> Time {
        match self.entry {
            Some((delay, last_update)) if !Self::expired(finished_at, last_update) => {
                finished_at.plus_millis(delay)
            }
            _ => finished_at,
        }
    }

    /// Records a restart made at `now` of a container that finished at
    /// `finished_at` (the kubelet's `backOff.Next`).
    pub fn record_restart(&mut self, finished_at: Time, now: Time) {
        let delay = match self.entry {
            Some((delay, last_update)) if !Self::expired(finished_at, last_update) => {
                (delay * 2).min(MAX_MS)
            }
            _ => INITIAL_MS,
        };
        self.entry = Some((delay, now));
    }

    #[cfg(test)]
    pub fn current_delay_ms(&self) -> i64 {
        self.entry.map_or(0, |(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_at_once_then_doubling_to_the_cap() {
        let mut b = Backoff::default();
        let mut t = Time(0);
        let mut delays = Vec::new();
        for _ in 0..9 {
            // The container runs 1 s, then exits.
            let finished = t.plus_secs(1);
            let at = b.restart_at(finished);
            delays.push(at.millis_since(finished) / 1000);
            b.record_restart(finished, at);
            t = at;
        }
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn reset_after_ten_minutes_running() {
        let mut b = Backoff::default();
        b.record_restart(Time(0), Time(0));
        b.record_restart(Time(1000), Time(11_000));
        // Ran from 11 s to 11 s + 601 s: the entry has expired.
        let finished = Time(11_000 + 601_000);
        assert_eq!(b.restart_at(finished), finished);
        b.record_restart(finished, finished);
        assert_eq!(b.current_delay_ms(), INITIAL_MS);
    }
}
