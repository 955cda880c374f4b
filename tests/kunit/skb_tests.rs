// SPDX-License-Identifier: GPL-2.0

//! Socket buffer bounds, sharing and header access.

use kernel::prelude::*;

#[kunit_tests(polynic_skb)]
mod tests {
    use kernel::prelude::*;
    use kernel::bindings;
    use kernel::error::code::{EFAULT, EINVAL, ENOSPC};
    use kernel::net::ethernet::{EthHdr, EtherType, MacAddr, HLEN};
    use kernel::net::skb::{Shared, SkBuff};

    /// A second reference to `skb`'s header, as a tap or a sender such as
    /// pktgen holds while the stack passes the buffer on.
    fn second_reference(skb: &SkBuff<Shared>) -> SkBuff<Shared> {
        // SAFETY: `skb` is live; `skb_get` takes one more reference, which
        // the returned value owns. Only the returned value and code that
        // treats its own buffer as possibly shared use it afterwards.
        unsafe { SkBuff::from_raw(bindings::skb_get(skb.as_raw())) }
    }

    #[test]
    fn growth_is_bounded_by_the_allocation() -> Result {
        let mut skb = SkBuff::alloc(16, 100, GFP_KERNEL)?;
        let room = skb.tailroom();
        assert!(room >= 100);
        assert_eq!(skb.put(room + 1).err(), Some(ENOSPC));
        assert_eq!(skb.push(skb.headroom() + 1).err(), Some(ENOSPC));
        skb.put(room)?;
        assert_eq!(skb.tailroom(), 0);
        assert_eq!(skb.put(1).err(), Some(ENOSPC));
        assert_eq!(skb.pull(room + 1).err(), Some(EINVAL));
        assert_eq!(skb.len(), room);
        Ok(())
    }

    #[test]
    fn copy_bits_checks_the_range() -> Result {
        let mut skb = SkBuff::alloc(0, 8, GFP_KERNEL)?;
        skb.put(8)?.copy_from_slice(b"abcdefgh");
        let mut out = [0u8; 4];
        skb.copy_bits(4, &mut out)?;
        assert_eq!(&out, b"efgh");
        assert_eq!(skb.copy_bits(5, &mut out).err(), Some(EFAULT));
        Ok(())
    }

    #[test]
    fn clones_share_data_until_made_writable() -> Result {
        let mut skb = SkBuff::alloc(0, 4, GFP_KERNEL)?;
        skb.put(4)?.copy_from_slice(b"data");
        let skb = skb.into_private();
        let clone = skb.try_clone(GFP_KERNEL)?;
        assert!(skb.is_cloned() && clone.is_cloned());
        assert!(!skb.has_other_users() && !clone.has_other_users());
        let mut own = clone.make_writable(GFP_KERNEL)?;
        assert!(!own.is_cloned());
        own.data_mut()[0] = b'D';
        assert_eq!(own.data(), b"Data");
        // The original still sees its own bytes.
        assert_eq!(skb.data(), b"data");
        // Making the original writable copies its data area (the clone is
        // gone, but the original was marked cloned when the clone was made).
        let mut skb = skb.into_writable(GFP_KERNEL)?;
        assert!(!skb.is_cloned());
        skb.data_mut()[3] = b'A';
        assert_eq!(skb.data(), b"datA");
        assert_eq!(own.data(), b"Data");
        own.consume();
        // A buffer that was never cloned is made writable in place.
        let mut alone = SkBuff::alloc(0, 4, GFP_KERNEL)?;
        alone.put(4)?;
        let before = alone.data().as_ptr();
        let alone = alone.into_private().into_writable(GFP_KERNEL)?;
        assert!(core::ptr::eq(alone.data().as_ptr(), before));
        Ok(())
    }

    #[test]
    fn a_shared_buffer_is_unshared_before_its_header_changes() -> Result {
        let mut skb = SkBuff::alloc(0, 8, GFP_KERNEL)?;
        skb.put(8)?.copy_from_slice(b"headbody");
        let ours = skb.into_shared();
        let theirs = second_reference(&ours);
        assert!(ours.has_other_users());
        // Not private while someone else holds it...
        let ours = match ours.try_private() {
            Ok(_) => panic!("a shared buffer was taken as private"),
            Err(still_shared) => still_shared,
        };
        // ...so changing the header goes through a clone with its own header.
        let mut ours = ours.unshare(GFP_KERNEL)?;
        assert!(!core::ptr::eq(ours.as_raw(), theirs.as_raw()));
        ours.pull(4)?;
        ours.set_protocol(EtherType(0x88b5));
        assert_eq!(ours.data(), b"body");
        // The other holder's view is untouched.
        assert_eq!(theirs.data(), b"headbody");
        assert_eq!(theirs.len(), 8);
        assert_ne!(theirs.protocol(), EtherType(0x88b5));
        drop(ours);
        // Once alone, the remaining reference is private without a copy.
        let raw = theirs.as_raw();
        let mine = theirs.try_private().map_err(|_| EINVAL)?;
        assert!(core::ptr::eq(mine.as_raw(), raw));
        Ok(())
    }

    #[test]
    fn linearizing_a_shared_paged_buffer_copies_instead_of_crashing() -> Result {
        // A paged buffer: the data lives in a page fragment, none linear.
        let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let skb = SkBuff::alloc(0, 0, GFP_KERNEL)?;
        // SAFETY: The buffer is new and ours alone; `skb_add_rx_frag` takes
        // over the page reference (leaked from `page` below) and the frame
        // covers 64 bytes of it.
        unsafe {
            bindings::skb_add_rx_frag(skb.as_raw(), 0, page.as_ptr(), 0, 64, 4096);
        }
        core::mem::forget(page);
        assert_eq!((skb.len(), skb.headlen()), (64, 0));
        let skb = skb.into_shared();
        let theirs = second_reference(&skb);
        // `skb_linearize` on a shared buffer reaches a BUG_ON; `linearize`
        // exists only on private buffers, so it goes through a clone first.
        let mut ours = skb.unshare(GFP_KERNEL)?;
        ours.linearize()?;
        assert_eq!(ours.headlen(), 64);
        assert_eq!((theirs.len(), theirs.headlen()), (64, 0));
        Ok(())
    }

    #[test]
    fn ethernet_header_round_trips_through_the_buffer() -> Result {
        let h = EthHdr { dst: MacAddr::BROADCAST, src: MacAddr::new([2, 0, 0, 0, 0, 9]), ethertype: EtherType(0x88b5) };
        let mut skb = SkBuff::alloc(HLEN as u32, 4, GFP_KERNEL)?;
        skb.put(4)?;
        assert_eq!(skb.eth_hdr(), None);
        h.write(skb.push(HLEN as u32)?)?;
        skb.reset_mac_header();
        assert_eq!(skb.eth_hdr(), Some(h));
        // After pulling the header off, it is still found behind the data.
        skb.pull(HLEN as u32)?;
        assert_eq!(skb.eth_hdr(), Some(h));
        skb.set_protocol(EtherType(0x88b5));
        assert_eq!(skb.protocol(), EtherType(0x88b5));
        Ok(())
    }

    #[test]
    fn a_checksum_is_rfc_1071s_and_a_summed_copy_is_a_copy() -> Result {
        use kernel::net::checksum::PartialSum;
        // RFC 1071's example: sum 0xddf2, checksum field 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(PartialSum::of(&data).fold(), [0x22, 0x0d]);
        // A range with its own checksum appended sums to zero.
        let mut with_field = [0u8; 10];
        with_field[..8].copy_from_slice(&data);
        with_field[8..].copy_from_slice(&PartialSum::of(&data).fold());
        assert_eq!(PartialSum::of(&with_field).fold(), [0, 0]);
        // Summed in two pieces (the first of even length) as in one.
        assert_eq!(PartialSum::of(&data[..4]).add(&data[4..]), PartialSum::of(&data));
        let mut dst = [0u8; 8];
        assert_eq!(PartialSum::copy(&data, &mut dst)?, PartialSum::of(&data));
        assert_eq!(dst, data);
        assert_eq!(PartialSum::copy(&data, &mut [0u8; 7]).err(), Some(EINVAL));
        // From a buffer: the same sum, and the range is checked.
        let mut skb = SkBuff::alloc(0, 8, GFP_KERNEL)?;
        skb.put(8)?.copy_from_slice(&data);
        let skb = skb.into_shared();
        let mut out = [0u8; 6];
        assert_eq!(skb.copy_and_sum(2, &mut out)?, PartialSum::of(&data[2..]));
        assert_eq!(out, data[2..]);
        assert_eq!(skb.copy_and_sum(4, &mut out).err(), Some(EINVAL));
        // A buffer the stack did not leave a checksum in asks for none.
        assert!(skb.checksum_request().is_none());
        Ok(())
    }

    #[test]
    fn removing_a_tag_leaves_the_frame_as_if_sent_without_it() -> Result {
        const TAG: usize = 8;
        let inner = b"the packet after the tag";
        let total = HLEN + TAG + inner.len();
                let mut skb = SkBuff::alloc(32, total as u32, GFP_KERNEL)?;
        {
            let f = skb.put(total as u32)?;
            f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            f[14..14 + TAG].copy_from_slice(&[1, 0, 0, 5, 0, 7, 0x08, 0x00]);
            f[14 + TAG..].copy_from_slice(inner);
        }
        // As a receive handler sees it: the data at what follows Ethernet.
        skb.reset_mac_header();
        skb.pull(HLEN as u32)?;
        let mut skb = skb.into_private();
        // A clone keeps the tagged bytes: the data area is copied first.
        let clone = skb.try_clone(GFP_KERNEL)?;
        skb.remove_tag(TAG as u32, EtherType::IPV4)?;
        assert_eq!(skb.data(), &inner[..]);
        assert_eq!(skb.protocol(), EtherType::IPV4);
        let want = EthHdr { dst: MacAddr([2, 0, 0, 0, 0, 2]), src: MacAddr([2, 0, 0, 0, 0, 1]), ethertype: EtherType::IPV4 };
        assert_eq!(skb.eth_hdr(), Some(want));
        assert_eq!(&clone.data()[..TAG], &[1, 0, 0, 5, 0, 7, 0x08, 0x00]);
        // A tag longer than the data, or a frame whose data is not right
        // after its Ethernet header, is refused and left as it was.
        let mut short = skb.try_clone(GFP_KERNEL)?;
        assert_eq!(short.remove_tag(total as u32, EtherType::IPV4).err(), Some(EINVAL));
        let mut moved = SkBuff::alloc(32, total as u32, GFP_KERNEL)?;
        moved.put(total as u32)?;
        moved.reset_mac_header();
        moved.pull(HLEN as u32 + 2)?;
        let mut moved = moved.into_private();
        assert_eq!(moved.remove_tag(TAG as u32, EtherType::IPV4).err(), Some(EINVAL));
        assert_eq!(moved.len() as usize, total - HLEN - 2);
        Ok(())
    }

    #[test]
    fn a_received_gso_buffer_becomes_its_frames() -> Result {
        use kernel::net::checksum::PartialSum;
        const MSS: usize = 100;
        // Ethernet, IPv4 and TCP headers and three segments' payload, as a
        // TSO send from this host reaches a receive handler over veth.
        let payload = 3 * MSS;
        let total = 14 + 20 + 20 + payload;
        let mut skb = SkBuff::alloc(64, total as u32, GFP_KERNEL)?;
        {
            let f = skb.put(total as u32)?;
            f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + 20 + payload) as u16).to_be_bytes());
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
            ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
            let sum = PartialSum::of(ip).fold();
            ip[10..12].copy_from_slice(&sum);
            let tcp = &mut f[34..54];
            tcp[0..2].copy_from_slice(&4000u16.to_be_bytes());
            tcp[2..4].copy_from_slice(&5000u16.to_be_bytes());
            tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = 0x18; // PSH | ACK
            for (i, b) in f[54..].iter_mut().enumerate() {
                *b = i as u8;
            }
        }
        skb.reset_mac_header();
        skb.pull(14)?;
        // SAFETY: The buffer is ours alone and holds the headers the helper
        // reads; it only sets header offsets and GSO fields.
        unsafe { bindings::polynic_skb_test_mark_tcp_gso(skb.as_raw(), MSS as u16) };
        assert!(skb.is_gso());
        let mut seq = 1000u32;
        let mut n = 0usize;
        for seg in skb.into_private().segment_received()? {
            // Each segment starts at its link-layer header (its payload
            // may lie in page fragments: read through a copy).
            assert_eq!(seg.len() as usize, 14 + 20 + 20 + MSS);
            let mut f = [0u8; 14 + 20 + 20 + MSS];
            seg.copy_bits(0, &mut f)?;
            assert_eq!(&f[12..14], &[0x08, 0x00]);
            assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, 20 + 20 + MSS);
            assert_eq!(PartialSum::of(&f[14..34]).fold(), [0, 0]);
            assert_eq!(u32::from_be_bytes([f[38], f[39], f[40], f[41]]), seq);
            // PSH only on the last segment.
            assert_eq!(f[47], if n == 2 { 0x18 } else { 0x10 });
            assert_eq!(f[54], (n * MSS) as u8);
            // The checksum is still left to compute, which a consumer is told.
            assert!(seg.checksum_trusted());
            seq += MSS as u32;
            n += 1;
        }
        assert_eq!(n, 3);
        // A buffer without a link-layer header cannot be segmented.
        let bare = SkBuff::alloc(0, 64, GFP_KERNEL)?;
        assert_eq!(bare.into_private().segment_received().err(), Some(EINVAL));
        Ok(())
    }
}
