// SPDX-License-Identifier: GPL-2.0

//! `alloc::probe_table::ProbeTable`: entries are found after collisions and
//! wrap-around, deletion keeps every other entry reachable (backward shift,
//! no tombstones), and a full table refuses and gives the value back.

use kernel::prelude::*;

#[kunit_tests(polynic_probe_table)]
mod tests {
    use super::*;
    use kernel::alloc::probe_table::{ProbeKey, ProbeTable};

    /// A key whose hash is chosen by the test: `(id, hash)`.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct K(u32, u32);

    impl ProbeKey for K {
        fn hash(&self) -> u32 {
            self.1
        }
    }

    #[test]
    fn colliding_and_wrapping_keys_are_all_found() -> Result {
        // 4 entries, 8 slots; all hash to slot 6, so the run wraps to 0 and 1.
        let mut t = ProbeTable::new(4)?;
        for id in 0..4u32 {
            assert!(t.insert(K(id, 6), id * 10).is_ok());
        }
        for id in 0..4u32 {
            assert_eq!(t.get(&K(id, 6)), Some(&(id * 10)));
        }
        assert_eq!(t.get(&K(9, 6)), None);
        assert_eq!(t.insert(K(1, 6), 0), Err((EEXIST, 0)));
        assert_eq!(t.insert(K(7, 3), 70), Err((ENOSPC, 70)));
        assert_eq!(t.len(), 4);
        Ok(())
    }

    #[test]
    fn removal_keeps_the_rest_reachable_without_tombstones() -> Result {
        let mut t = ProbeTable::new(4)?;
        // A run across the wrap: home 7 (two keys), home 0, and home 7 again.
        for (id, h) in [(1, 7), (2, 7), (3, 0), (4, 7)] {
            assert!(t.insert(K(id, h), id).is_ok());
        }
        assert_eq!(t.remove(&K(1, 7)), Some(1));
        assert_eq!(t.remove(&K(1, 7)), None);
        for (id, h) in [(2, 7), (3, 0), (4, 7)] {
            assert_eq!(t.get(&K(id, h)), Some(&id));
        }
        // Churn: many inserts and removals never fill the table with
        // leftovers (with tombstones, lookups of absent keys would scan all).
        for round in 0..100u32 {
            assert!(t.insert(K(100 + round, round % 8), round).is_ok());
            assert_eq!(t.remove(&K(100 + round, round % 8)), Some(round));
        }
        assert_eq!(t.len(), 3);
        let mut drained = 0;
        t.drain(|_| drained += 1);
        assert_eq!((drained, t.len(), t.get(&K(2, 7))), (3, 0, None));
        assert!(ProbeTable::<K, u32>::new(0).is_err());
        Ok(())
    }
}
