// SPDX-License-Identifier: GPL-2.0

//! Socket buffer bounds, sharing and header access.

use kernel::prelude::*;

#[kunit_tests(polynic_skb)]
mod tests {
    use kernel::prelude::*;
    use kernel::error::code::{EFAULT, EINVAL, ENOSPC, EPERM};
    use kernel::net::ethernet::{EthHdr, EtherType, MacAddr, HLEN};
    use kernel::net::skb::SkBuff;

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
    fn clones_are_read_only_until_made_writable() -> Result {
        let mut skb = SkBuff::alloc(0, 4, GFP_KERNEL)?;
        skb.put(4)?.copy_from_slice(b"data");
        let clone = skb.try_clone(GFP_KERNEL)?;
        assert!(skb.is_shared() && clone.is_shared());
        assert_eq!(skb.data_mut().err(), Some(EPERM));
        assert_eq!(skb.put(0).err(), Some(EPERM));
        let mut own = clone.make_writable(GFP_KERNEL)?;
        own.data_mut()?[0] = b'D';
        assert_eq!(own.data(), b"Data");
        // The original still sees its own bytes.
        assert_eq!(skb.data(), b"data");
        own.consume();
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
}
