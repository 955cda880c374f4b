// SPDX-License-Identifier: GPL-2.0

//! `mm::shared_area::SharedArea` and the socket buffer copies to and from
//! it; the BQI ABI's classification and templates as the kernel compiled
//! them.

use kernel::prelude::*;

#[kunit_tests(polynic_bqi)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering::Relaxed;
    use kernel::{
        mm::shared_area::SharedArea,
        net::{
            bqi::{self, Class, EndpointConfig, EndpointKind, LinkHeader, Reject, Template},
            skb::SkBuff,
        },
        page::PAGE_SIZE,
    };

    #[test]
    fn a_shared_area_is_whole_zeroed_pages_with_checked_words() -> Result {
        let a = SharedArea::new(PAGE_SIZE + 1)?;
        assert_eq!(a.len(), 2 * PAGE_SIZE);
        assert!(SharedArea::new(0).is_err());
        let last = 2 * PAGE_SIZE - 4;
        assert_eq!(a.word(0).map(|w| w.load(Relaxed)), Some(0));
        assert_eq!(a.word(last).map(|w| w.load(Relaxed)), Some(0));
        assert!(a.word(last + 4).is_none());
        assert!(a.word(2).is_none());
        assert!(a.word(usize::MAX - 1).is_none());
        assert!(a.raw_range(last, 4).is_ok());
        assert!(a.raw_range(last, 5).is_err());
        assert!(a.raw_range(usize::MAX, 2).is_err());
        Ok(())
    }

    /// The copies, for this test's area, whose words are read only between
    /// copies on this thread.
    fn copy_in(skb: &SkBuff<kernel::net::skb::Writable>, area: &SharedArea, at: usize, max: usize) -> Result<usize> {
        // SAFETY: Nothing accesses the area's words during the copy.
        unsafe { skb.copy_frame_to_area(area, at, max) }
    }

    fn copy_out(skb: &mut SkBuff<kernel::net::skb::Writable>, area: &SharedArea, at: usize, len: u32) -> Result {
        // SAFETY: As in `copy_in`.
        unsafe { skb.put_from_area(area, at, len) }
    }

    #[test]
    fn frames_copy_into_the_area_from_their_link_header_and_back() -> Result {
        let area = SharedArea::new(PAGE_SIZE)?;
        let mut skb = SkBuff::alloc(64, 100, GFP_KERNEL)?;
        for (i, b) in skb.put(100)?.iter_mut().enumerate() {
            *b = i as u8;
        }
        skb.reset_mac_header();
        // The header starts at the data here: the whole 100 bytes.
        assert_eq!(copy_in(&skb, &area, 8, 4096), Ok(100));
        assert_eq!(area.word(8).map(|w| w.load(Relaxed)), Some(u32::from_ne_bytes([0, 1, 2, 3])));
        assert_eq!(area.word(104).map(|w| w.load(Relaxed)), Some(u32::from_ne_bytes([96, 97, 98, 99])));
        // Longer than allowed, or past the area: refused.
        assert_eq!(copy_in(&skb, &area, 8, 99), Err(EMSGSIZE));
        assert_eq!(copy_in(&skb, &area, PAGE_SIZE - 50, 4096), Err(EINVAL));
        // After a pull, the pulled bytes are the link header, copied too.
        skb.pull(14)?;
        assert_eq!(copy_in(&skb, &area, 200, 4096), Ok(100));
        let mut back = SkBuff::alloc(0, 128, GFP_KERNEL)?;
        copy_out(&mut back, &area, 200, 100)?;
        assert!(back.data().iter().enumerate().all(|(i, b)| *b == i as u8));
        assert_eq!(copy_out(&mut back, &area, PAGE_SIZE - 10, 20), Err(EINVAL));
        let room = back.tailroom();
        assert_eq!(copy_out(&mut back, &area, 0, room + 1), Err(ENOSPC));
        // A received frame's VLAN tag is not in its data: none here.
        assert!(!skb.has_vlan_tag());
        Ok(())
    }

    #[test]
    fn the_kernel_classifies_and_checks_as_the_abi_says() -> Result {
        let mac = [2, 0, 0, 0, 0, 1];
        let config = EndpointConfig {
            ifindex: 1,
            kind: EndpointKind::Raw,
            bqi: 7,
            peer_bqi: 9,
            local_ip: [0; 4],
            remote_ip: [0; 4],
            local_port: 0,
            remote_port: 0,
            buf_size: 2048,
            buf_count: 8,
            req_entries: 8,
            evt_entries: 8,
        };
        let t = Template { src_mac: mac, config, bqi: 7 };
        let mut f = [0u8; 60];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&bqi::ETH_P_BQI.to_be_bytes());
        let link = LinkHeader { dst_bqi: 9, src_bqi: 7, inner: 0 };
        assert!(link.encode(&mut f[14..]).is_some());
        assert_eq!(t.check(&f, 1514), Ok(()));
        assert_eq!(bqi::classify(bqi::ETH_P_BQI, &f[14..]), Ok(Class::Bqi { link, flow: None }));
        f[19] = 8;
        assert_eq!(t.check(&f, 1514), Err(Reject::SourceBqi));
        f[19] = 7;
        f[6] = 4;
        assert_eq!(t.check(&f, 1514), Err(Reject::SourceMac));
        Ok(())
    }
}
