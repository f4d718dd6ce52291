//! The engine's timers, as the supervisor keeps them: a deadline heap that
//! the loop sleeps on.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::lifecycle::{Time, Timer};

#[derive(Debug, Default)]
pub struct Timers {
    /// Deadlines in order, each with the sequence number of its timer.
    heap: BinaryHeap<Reverse<(Time, u64)>>,
    timers: BTreeMap<u64, Timer>,
    seq: u64,
}

impl Timers {
    pub fn arm(&mut self, at: Time, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.timers.insert(self.seq, timer);
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The timers due by `now`, earliest first.
    pub fn due(&mut self, now: Time) -> Vec<Timer> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            out.extend(self.timers.remove(&seq));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::TimerKind;

    fn timer(generation: u64) -> Timer {
        Timer {
            kind: TimerKind::PodGrace,
            generation,
        }
    }

    #[test]
    fn due_in_deadline_order_then_arming_order() {
        let mut t = Timers::default();
        t.arm(Time(30), timer(1));
        t.arm(Time(10), timer(2));
        t.arm(Time(10), timer(3));
        assert_eq!(t.next(), Some(Time(10)));
        assert_eq!(t.due(Time(9)), []);
        assert_eq!(t.due(Time(20)), [timer(2), timer(3)]);
        assert_eq!(t.next(), Some(Time(30)));
        assert_eq!(t.due(Time(30)), [timer(1)]);
        assert_eq!(t.next(), None);
    }
}
