//! What a sink counts: every datagram of one flow, by sequence number.

use crate::datagram::{self, Malformed};
use serde::Serialize;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The account of one flow as a sink saw it.
///
/// Invariant: `unique` is the number of distinct sequence numbers marked in
/// `seen`, and every marked number is at most `highest`.
#[derive(Debug)]
pub struct Tally {
    flow: u32,
    seen: Vec<u64>,
    unique: u64,
    highest: Option<u64>,
    duplicates: u64,
    reordered: u64,
    corrupt: u64,
    foreign: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Wall-clock time of the first datagram, so that flows counted by
    /// separate sinks can be put on one time line.
    first_wall: Option<SystemTime>,
}

/// The sink's report, printed as JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    /// The flow id counted.
    pub flow: u32,
    /// Datagrams of the flow received whole, each sequence number once.
    pub received: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
    /// Sequence numbers below the highest received that never arrived.
    pub lost: u64,
    /// Datagrams whose sequence number had arrived before.
    pub duplicates: u64,
    /// Datagrams that arrived after one with a higher sequence number.
    pub reordered: u64,
    /// Datagrams whose header or payload arrived changed.
    pub corrupt: u64,
    /// Intact datagrams of another flow.
    pub foreign: u64,
    /// Seconds from the first datagram of the flow to the last.
    pub seconds: f64,
    /// When the first datagram came (seconds since the Unix epoch; 0 if
    /// none did): with `seconds`, the flow's place on a shared time line.
    pub first_unix_s: f64,
    /// Received payload rate over those seconds.
    pub mbit_s: f64,
    /// Received datagram rate over those seconds.
    pub packets_s: f64,
}

/// Sequence numbers beyond this are treated as corrupt: a flow of that
/// many datagrams would take days, and the bitmap must stay small.
const MAX_SEQ: u64 = 1 << 32;

impl Tally {
    /// An empty account of flow `flow`.
    pub fn new(flow: u32) -> Self {
        Tally {
            flow,
            seen: Vec::new(),
            unique: 0,
            highest: None,
            duplicates: 0,
            reordered: 0,
            corrupt: 0,
            foreign: 0,
            bytes: 0,
            first: None,
            last: None,
            first_wall: None,
        }
    }

    /// Counts one received datagram (its UDP payload), arrived at `now`.
    pub fn count(&mut self, payload: &[u8], now: Instant) {
        let seq = match datagram::check(payload) {
            Ok((flow, _)) if flow != self.flow => {
                self.foreign += 1;
                return;
            }
            Ok((_, seq)) if seq < MAX_SEQ => seq,
            Ok(_) | Err(Malformed::Short | Malformed::Magic | Malformed::Payload) => {
                self.corrupt += 1;
                return;
            }
        };
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        self.bytes += payload.len() as u64;
        if self.first.is_none() {
            self.first = Some(now);
            // `now` was taken just before; the wall clock is read once.
            self.first_wall = Some(SystemTime::now() - now.elapsed());
        }
        self.last = Some(now);
    }

    /// Whether any datagram of the flow arrived.
    pub fn started(&self) -> bool {
        self.first.is_some()
    }

    /// The account so far.
    pub fn report(&self) -> Report {
        let lost = self.highest.map_or(0, |h| h + 1 - self.unique);
        let seconds = match (self.first, self.last) {
            (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
            _ => 0.0,
        };
        // One datagram's time is not measured (the first marks the start):
        // rates count the datagrams after it.
        let (mbit_s, packets_s) = if seconds > 0.0 && self.unique > 1 {
            let per = self.bytes as f64 / self.unique as f64;
            let n = (self.unique - 1) as f64;
            (n * per * 8.0 / seconds / 1e6, n / seconds)
        } else {
            (0.0, 0.0)
        };
        Report {
            flow: self.flow,
            received: self.unique,
            bytes: self.bytes,
            lost,
            duplicates: self.duplicates,
            reordered: self.reordered,
            corrupt: self.corrupt,
            foreign: self.foreign,
            seconds,
            first_unix_s: self
                .first_wall
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            mbit_s,
            packets_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn datagram(flow: u32, seq: u64) -> Vec<u8> {
        let mut b = vec![0u8; 100];
        datagram::fill(&mut b, flow, seq);
        b
    }

    #[test]
    fn losses_duplicates_and_reordering_are_told_apart() {
        let t0 = Instant::now();
        let mut t = Tally::new(3);
        for (i, seq) in [0u64, 1, 3, 2, 3, 6, 7].into_iter().enumerate() {
            t.count(&datagram(3, seq), t0 + Duration::from_millis(i as u64 * 100));
        }
        let r = t.report();
        assert_eq!((r.received, r.lost, r.duplicates, r.reordered), (6, 2, 1, 1));
        assert_eq!(r.bytes, 600);
        assert!((r.seconds - 0.6).abs() < 1e-9);
        // On the wall clock, the first came about at t0 (within the test's run time).
        let wall_t0 = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64()
            - t0.elapsed().as_secs_f64();
        assert!((r.first_unix_s - wall_t0).abs() < 0.5, "{} vs {wall_t0}", r.first_unix_s);
        // 5 datagrams of 100 bytes after the first, in 0.6 s.
        assert!((r.packets_s - 5.0 / 0.6).abs() < 1e-6);
        assert!((r.mbit_s - 5.0 * 800.0 / 0.6 / 1e6).abs() < 1e-9);
    }

    #[test]
    fn strays_and_damage_are_not_counted_as_the_flow() {
        let now = Instant::now();
        let mut t = Tally::new(1);
        t.count(&datagram(2, 0), now);
        let mut bad = datagram(1, 0);
        bad[50] ^= 1;
        t.count(&bad, now);
        t.count(b"hello", now);
        let r = t.report();
        assert_eq!((r.received, r.foreign, r.corrupt, r.lost), (0, 1, 2, 0));
        assert!(!t.started());
        assert_eq!(r.mbit_s, 0.0);
        assert_eq!(r.first_unix_s, 0.0);
    }

    #[test]
    fn an_absurd_sequence_number_is_corrupt_not_a_huge_loss() {
        let mut t = Tally::new(0);
        t.count(&datagram(0, u64::MAX - 1), Instant::now());
        let r = t.report();
        assert_eq!((r.received, r.corrupt, r.lost), (0, 1, 0));
    }
}
