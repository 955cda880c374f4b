//! Rate-limited log lines. A server facing a flood of hostile or stray frames
//! (or a link that keeps failing) must say so, but not once per frame: each
//! kind of notice is printed at most once per key (a client address, a link
//! condition) per interval.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// How often one kind of notice about one key may be printed.
pub const NOTICE_INTERVAL: Duration = Duration::from_secs(60);

/// Most keys a limiter remembers. A flood of frames from made-up source
/// addresses would otherwise grow the table without bound; once it is full
/// of keys noticed within the interval, notices about new keys are
/// suppressed (the flood itself is counted by the server's counters).
pub const NOTICE_KEYS: usize = 256;

/// Decides whether a notice about `key` may be printed now.
#[derive(Debug)]
pub struct RateLimiter<K> {
    interval: Duration,
    capacity: usize,
    last: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// At most one notice per key per `interval`, remembering at most
    /// `capacity` keys.
    pub fn new(interval: Duration, capacity: usize) -> Self {
        RateLimiter { interval, capacity, last: HashMap::new() }
    }

    /// Whether a notice about `key` may be printed at `now`; if so, the
    /// next one about it may be printed one interval later.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        if let Some(&at) = self.last.get(&key) {
            if now.saturating_duration_since(at) < self.interval {
                return false;
            }
        } else if self.last.len() >= self.capacity {
            let interval = self.interval;
            self.last.retain(|_, at| now.saturating_duration_since(*at) < interval);
            if self.last.len() >= self.capacity {
                return false;
            }
        }
        self.last.insert(key, now);
        true
    }
}

/// Where notices go: standard error in the daemon, a buffer in tests.
pub type NoticeSink = Box<dyn Fn(&str) + Send + Sync>;

/// Rate-limited notices shared by every serving thread, keyed by what the
/// notice is about and the client (or link) it concerns.
pub struct Notices {
    limiter: Mutex<RateLimiter<(&'static str, [u8; 6])>>,
    sink: NoticeSink,
}

impl Notices {
    /// Notices printed to standard error, prefixed with the program name.
    pub fn stderr() -> Self {
        Self::to(Box::new(|line| eprintln!("ebd-server: {line}")))
    }

    /// Notices handed to `sink`.
    pub fn to(sink: NoticeSink) -> Self {
        Notices { limiter: Mutex::new(RateLimiter::new(NOTICE_INTERVAL, NOTICE_KEYS)), sink }
    }

    /// Prints the notice `what` about `key` unless one was printed within
    /// [`NOTICE_INTERVAL`]; the text is only built when it is printed.
    pub fn note(&self, what: &'static str, key: [u8; 6], text: impl FnOnce() -> String) {
        // A panic elsewhere while holding the lock leaves a table of
        // timestamps, which is still usable.
        let allowed = self.limiter.lock().unwrap_or_else(PoisonError::into_inner).allow((what, key), Instant::now());
        if allowed {
            (self.sink)(&text());
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_notice_per_key_per_interval() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(Duration::from_secs(60), 8);
        assert!(r.allow(1, t0));
        assert!(!r.allow(1, t0 + Duration::from_secs(59)));
        assert!(r.allow(2, t0 + Duration::from_secs(1)), "another key is independent");
        assert!(r.allow(1, t0 + Duration::from_secs(60)));
        assert!(!r.allow(1, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn a_flood_of_keys_cannot_grow_the_table() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(Duration::from_secs(60), 4);
        for k in 0..4 {
            assert!(r.allow(k, t0));
        }
        assert!(!r.allow(99, t0 + Duration::from_secs(1)), "full of recent keys: suppressed");
        assert_eq!(r.last.len(), 4);
        // Once the old keys are stale they make room.
        assert!(r.allow(99, t0 + Duration::from_secs(60)));
        assert_eq!(r.last.len(), 1);
    }

    #[test]
    fn notices_reach_the_sink_once() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let n = Notices::to(Box::new(move |s| l.lock().unwrap().push(s.to_string())));
        for _ in 0..3 {
            n.note("v1", [2, 0, 0, 0, 0, 1], || "hello".into());
        }
        n.note("v1", [2, 0, 0, 0, 0, 2], || "other".into());
        assert_eq!(*lines.lock().unwrap(), ["hello", "other"]);
        assert_eq!(mac_string(&[2, 0xab, 0, 0, 0, 0xff]), "02:ab:00:00:00:ff");
    }
}
