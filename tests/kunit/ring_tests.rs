// SPDX-License-Identifier: GPL-2.0

//! `alloc::ring::Ring`: first in, first out across wrap-around; a full ring
//! refuses at either end and gives the entry back; an entry put back at the
//! head leaves first.

use kernel::prelude::*;

#[kunit_tests(polynic_ring)]
mod tests {
    use super::*;
    use kernel::alloc::ring::Ring;

    #[test]
    fn a_ring_is_fifo_refuses_when_full_and_wraps() -> Result {
        let mut r = Ring::new(3)?;
        for round in 0..4u32 {
            for i in 0..3 {
                assert!(r.push(round * 10 + i).is_ok());
            }
            assert_eq!(r.push(99), Err(99));
            assert_eq!(r.push_front(98), Err(98));
            assert!(r.is_full() && r.room() == 0 && r.len() == 3);
            assert_eq!(r.pop(), Some(round * 10));
            assert!(r.push_front(round * 10).is_ok());
            for i in 0..3 {
                assert_eq!(r.pop(), Some(round * 10 + i));
            }
            assert!(r.is_empty() && r.pop().is_none());
        }
        assert!(Ring::<u32>::new(0).is_err());
        Ok(())
    }

    #[test]
    fn an_entry_put_back_leaves_before_those_pushed_after_it() -> Result {
        let mut r = Ring::new(4)?;
        for i in 1..=3u32 {
            assert!(r.push(i).is_ok());
        }
        assert_eq!(r.pop(), Some(1));
        assert!(r.push(4).is_ok());
        assert!(r.push_front(1).is_ok());
        for want in 1..=4u32 {
            assert_eq!(r.pop(), Some(want));
        }
        Ok(())
    }
}
