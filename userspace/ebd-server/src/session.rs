//! Per-session request state, shared by every serving thread: what each
//! client session has told the server about its finished requests, so that
//! a late duplicate of a finished request is never executed.
//!
//! # Why a stale duplicate cannot overwrite newer data
//!
//! A client sends a request that overlaps an earlier write only after that
//! write *finished* (was acknowledged, failed or was abandoned), and every
//! frame of the later request carries the client's [`Finished`] window,
//! which then contains the earlier write's `seq`. The server keeps two rules:
//!
//! 1. a frame's window is merged into its session's state *before* the frame
//!    is executed ([`Session::learn`], then [`Session::unless_finished`]);
//! 2. the check "is this `seq` finished?" and the execution of the frame
//!    happen under the session's read lock, and a merge that adds knowledge
//!    takes the write lock, so the two never overlap.
//!
//! Take a duplicate D of the earlier write and a frame L of the later
//! request. If D's check runs before L's window is merged, D's execution
//! completes before that merge can take the write lock, and L executes only
//! after the merge: D's bytes are overwritten by L's, as on the client. If
//! D's check runs after the merge, it sees its `seq` finished and D is
//! dropped. Either way the disk ends with what the client last wrote. The
//! frames of one session may be handled by different threads (one session
//! spans the client's queues, which the fanout program steers to different
//! threads, and it spreads large requests), which is why the state is shared
//! and locked rather than per thread.
//!
//! # Bound
//!
//! The table holds at most [`MAX_SESSIONS`] sessions (well under 1 MiB:
//! one entry is a key, a timestamp and a small locked window); when a new
//! session arrives at a full table, the least recently used one is evicted.
//! Eviction is safe except in one narrow case: an evicted session's
//! knowledge is relearnt from its next frame, which carries the client's
//! whole window, so the only frame that can slip through is a duplicate
//! that arrives after its session was evicted and before any newer frame of
//! that session, that is, one delayed past the traffic of
//! [`MAX_SESSIONS`] other sessions. A client that attaches a disk starts a
//! new random session, so the table only fills with many clients or many
//! attachments (or a flood of made-up ones, which only evicts them).

use polynic_abi::ebd::Finished;
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError, RwLock},
};

/// Most sessions the server remembers.
pub const MAX_SESSIONS: usize = 4096;

/// What identifies a session: the client's address, the export and the
/// session id the client chose when it attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The client's MAC address (the frame's source).
    pub client: [u8; 6],
    /// Export number.
    pub export: u16,
    /// The client's random session id.
    pub session: u32,
}

/// One session's merged knowledge of its finished requests.
#[derive(Debug)]
pub struct Session {
    finished: RwLock<Finished>,
}

impl Session {
    fn new(first: Finished) -> Self {
        Session { finished: RwLock::new(first) }
    }

    /// Merges what a frame says is finished. Takes the write lock only when
    /// the frame adds knowledge, which waits for every frame of the session
    /// being executed under [`Session::unless_finished`].
    pub fn learn(&self, known: &Finished) {
        // A panic while holding the lock cannot leave a torn window (it is
        // replaced whole), so a poisoned lock is still usable.
        let current = *self.finished.read().unwrap_or_else(PoisonError::into_inner);
        let mut merged = current;
        merged.merge(known);
        if merged == current {
            return;
        }
        self.finished.write().unwrap_or_else(PoisonError::into_inner).merge(known);
    }

    /// Runs `execute` unless request `seq` is known to be finished, holding
    /// the read lock throughout so that no merge finishing `seq` overlaps
    /// it. `None` if the request is finished (the frame is stale).
    pub fn unless_finished<R>(&self, seq: u32, execute: impl FnOnce() -> R) -> Option<R> {
        let finished = self.finished.read().unwrap_or_else(PoisonError::into_inner);
        if finished.contains(seq) {
            return None;
        }
        let r = execute();
        drop(finished);
        Some(r)
    }

    /// The merged window (for tests and diagnostics).
    #[cfg(test)]
    pub fn window(&self) -> Finished {
        *self.finished.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every session the server knows, least recently used evicted first.
pub struct Sessions {
    capacity: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Each session with the time it was last used.
    by_key: HashMap<SessionKey, (Arc<Session>, u64)>,
    /// The same sessions by the time they were last used: the first is the
    /// one to evict.
    by_use: BTreeMap<u64, SessionKey>,
    /// Counts uses; each use gets a new, larger value.
    clock: u64,
}

impl Sessions {
    /// A table of at most `capacity` sessions (at least one).
    pub fn new(capacity: usize) -> Self {
        Sessions { capacity: capacity.max(1), table: Mutex::new(Table::default()) }
    }

    /// The session `key`, made from `first` (the window of the frame that
    /// opens it) if the server does not know it; marks it used.
    pub fn get(&self, key: SessionKey, first: &Finished) -> Arc<Session> {
        // The table is consistent between statements (no panicking code runs
        // with it half-updated), so a poisoned lock is still usable.
        let mut t = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        t.clock += 1;
        let now = t.clock;
        if let Some((session, used)) = t.by_key.get_mut(&key) {
            let (session, before) = (session.clone(), std::mem::replace(used, now));
            t.by_use.remove(&before);
            t.by_use.insert(now, key);
            return session;
        }
        while t.by_key.len() >= self.capacity {
            let Some((_, oldest)) = t.by_use.pop_first() else { break };
            t.by_key.remove(&oldest);
        }
        let session = Arc::new(Session::new(*first));
        t.by_key.insert(key, (session.clone(), now));
        t.by_use.insert(now, key);
        session
    }

    /// How many sessions the table holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::mpsc,
        thread,
        time::{Duration, Instant},
    };

    fn key(session: u32) -> SessionKey {
        SessionKey { client: [2, 0, 0, 0, 0, 1], export: 0, session }
    }

    /// The bound the docs state: a full table stays under 1 MiB. Each
    /// session costs a hash entry (with the map's spare capacity, at most
    /// twice), an ordering entry (B-tree nodes are at least half full) and
    /// its shared allocation.
    #[test]
    fn a_full_table_stays_under_a_mebibyte() {
        use std::mem::size_of;
        let hash_entry = size_of::<SessionKey>() + size_of::<(Arc<Session>, u64)>() + 1;
        let order_entry = size_of::<u64>() + size_of::<SessionKey>() + size_of::<usize>();
        let shared = size_of::<Session>() + 2 * size_of::<usize>();
        let per_session = 2 * hash_entry + 2 * order_entry + shared;
        assert!(MAX_SESSIONS * per_session < 1 << 20, "{per_session} bytes per session");
        let s = Sessions::new(MAX_SESSIONS);
        for id in 0..2 * MAX_SESSIONS as u32 {
            s.get(key(id + 1), &Finished::default());
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }

    #[test]
    fn a_finished_request_is_not_executed() {
        let s = Sessions::new(8);
        let session = s.get(key(1), &Finished::starting_at(10));
        assert_eq!(session.unless_finished(10, || 1), Some(1));
        let mut later = Finished::starting_at(10);
        later.finish(10);
        session.learn(&later);
        assert_eq!(session.unless_finished(10, || 1), None);
        assert_eq!(session.unless_finished(11, || 2), Some(2));
        // What an older frame says adds nothing and takes nothing away.
        session.learn(&Finished::starting_at(10));
        assert!(session.window().contains(10));
    }

    #[test]
    fn sessions_are_told_apart_by_client_export_and_id() {
        let s = Sessions::new(8);
        let mut done = Finished::starting_at(5);
        done.finish(5);
        s.get(key(1), &done);
        assert!(s.get(key(1), &Finished::default()).window().contains(5));
        assert!(!s.get(key(2), &Finished::starting_at(5)).window().contains(5));
        assert!(!s.get(SessionKey { export: 1, ..key(1) }, &Finished::starting_at(5)).window().contains(5));
        assert!(!s.get(SessionKey { client: [2, 0, 0, 0, 0, 9], ..key(1) }, &Finished::starting_at(5)).window().contains(5));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn the_least_recently_used_session_is_evicted() {
        let s = Sessions::new(2);
        let mut done = Finished::starting_at(0);
        done.finish(0);
        s.get(key(1), &done);
        s.get(key(2), &done);
        s.get(key(1), &Finished::default()); // 1 is now the most recent
        s.get(key(3), &done); // evicts 2
        assert_eq!(s.len(), 2);
        assert!(s.get(key(1), &Finished::default()).window().contains(0), "1 kept");
        // 2 was forgotten: it comes back with what its next frame says.
        assert!(!s.get(key(2), &Finished::starting_at(0)).window().contains(0), "2 relearnt");
        assert_eq!(s.len(), 2);
    }

    /// The check-and-execute of a frame and a merge that finishes its
    /// request never overlap: the merge waits for the execution.
    #[test]
    fn a_merge_waits_for_an_execution_in_progress() {
        let s = Sessions::new(8);
        let session = s.get(key(1), &Finished::starting_at(7));
        let (started_tx, started_rx) = mpsc::channel();
        let executing = {
            let session = session.clone();
            thread::spawn(move || {
                session.unless_finished(7, || {
                    let _ = started_tx.send(());
                    thread::sleep(Duration::from_millis(200));
                    Instant::now()
                })
            })
        };
        started_rx.recv().unwrap();
        let mut finished = Finished::starting_at(7);
        finished.finish(7);
        session.learn(&finished);
        let merged_at = Instant::now();
        let executed_at = executing.join().unwrap().expect("not finished when it started");
        assert!(merged_at >= executed_at, "the merge overlapped the execution");
        assert_eq!(session.unless_finished(7, || ()), None);
    }
}
