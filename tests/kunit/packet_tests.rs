// SPDX-License-Identifier: GPL-2.0

//! Frames sent with `SkBuff::transmit` on one end of the veth pair reach a
//! protocol handler and a receive handler on the other.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use kernel::net::{
    device::NetDevice,
    ethernet::{EthHdr, EtherType, MacAddr, HLEN},
    packet::PacketHandler,
    rx_handler::{RxHandler, RxVerdict},
    skb::SkBuff,
};
use kernel::prelude::*;
use kernel::time::{delay::fsleep, Delta};

/// Payload every test frame starts with.
pub(crate) const MAGIC: &[u8] = b"polynic-overlay-test";
/// Local experimental ethertypes (IEEE 802 "local experimental" range).
pub(crate) const TYPE_HANDLED: EtherType = EtherType(0x88b5);
pub(crate) const TYPE_STOLEN: EtherType = EtherType(0x88b6);

/// Counts frames that carry [`MAGIC`] from the expected source.
pub(crate) struct Catcher {
    pub(crate) src: MacAddr,
    pub(crate) good: AtomicU32,
    pub(crate) other: AtomicU32,
}

impl Catcher {
    fn judge(&self, skb: &SkBuff) {
        let from_src = skb.eth_hdr().is_some_and(|h| h.src == self.src);
        if from_src && skb.data().starts_with(MAGIC) {
            self.good.fetch_add(1, Relaxed);
        } else {
            self.other.fetch_add(1, Relaxed);
        }
    }
}

impl PacketHandler for Catcher {
    fn receive(&self, skb: SkBuff, _dev: &NetDevice) {
        self.judge(&skb);
        skb.consume();
    }
}

/// Steals frames of [`TYPE_STOLEN`], passes the rest.
pub(crate) struct Thief {
    pub(crate) stolen: Catcher,
    pub(crate) passed: AtomicU32,
}

impl RxHandler for Thief {
    fn receive(&self, skb: SkBuff, _dev: &NetDevice) -> RxVerdict {
        if skb.protocol() == TYPE_STOLEN {
            self.stolen.judge(&skb);
            skb.consume();
            RxVerdict::Consumed
        } else {
            self.passed.fetch_add(1, Relaxed);
            RxVerdict::Pass(skb)
        }
    }
}

/// Sends one test frame of `ethertype` from `from` to `to`.
pub(crate) fn send(from: &NetDevice, to: &NetDevice, ethertype: EtherType) -> Result {
    let src = from.mac_addr().ok_or(EINVAL)?;
    let dst = to.mac_addr().ok_or(EINVAL)?;
    let mut skb = SkBuff::alloc_for(from, (HLEN + MAGIC.len()) as u32, GFP_KERNEL)?;
    skb.put(MAGIC.len() as u32)?.copy_from_slice(MAGIC);
    EthHdr { dst, src, ethertype }.write(skb.push(HLEN as u32)?)?;
    skb.set_protocol(ethertype);
    skb.transmit(from)?;
    Ok(())
}

/// Waits up to two seconds for `counter` to reach `want`.
pub(crate) fn wait_for(counter: &AtomicU32, want: u32) -> u32 {
    for _ in 0..200 {
        if counter.load(Relaxed) >= want {
            break;
        }
        fsleep(Delta::from_millis(10));
    }
    counter.load(Relaxed)
}

/// Keeps the first frame it sees (on any device it is registered on) and
/// tries to pass it on in place of the next one, which may arrive on
/// another device.
#[pin_data]
pub(crate) struct Swapper {
    #[pin]
    pub(crate) kept: kernel::sync::SpinLockBh<Option<SkBuff>>,
    pub(crate) swapped: AtomicU32,
}

impl RxHandler for Swapper {
    fn receive(&self, skb: SkBuff, _dev: &NetDevice) -> RxVerdict {
        if skb.protocol() != TYPE_HANDLED {
            return RxVerdict::Pass(skb);
        }
        let earlier = self.kept.lock().take();
        match earlier {
            None => {
                *self.kept.lock() = Some(skb);
                RxVerdict::Consumed
            }
            Some(earlier) => {
                self.swapped.fetch_add(1, Relaxed);
                skb.consume();
                RxVerdict::Pass(earlier)
            }
        }
    }
}

#[kunit_tests(polynic_packet)]
mod tests {
    use super::*;
    use crate::{VETH_A, VETH_B};
    use kernel::net::{namespace::Namespace, packet, rtnl, rx_handler};
    use kernel::sync::Arc;

    #[test]
    fn protocol_handler_receives_frames_sent_on_the_peer() -> Result {
        let a = NetDevice::get_by_name(Namespace::init(), VETH_A)?;
        let b = NetDevice::get_by_name(Namespace::init(), VETH_B)?;
        let catcher = Catcher { src: a.mac_addr().ok_or(EINVAL)?, good: AtomicU32::new(0), other: AtomicU32::new(0) };
        let reg = KBox::pin_init(packet::Registration::new(TYPE_HANDLED, Some(b.clone()), catcher), GFP_KERNEL)?;
        for _ in 0..3 {
            send(&a, &b, TYPE_HANDLED)?;
        }
        assert_eq!(wait_for(&reg.handler().good, 3), 3);
        assert_eq!(reg.handler().other.load(Relaxed), 0);
        drop(reg);
        // Removed: further frames are not seen (and nothing crashes).
        send(&a, &b, TYPE_HANDLED)?;
        Ok(())
    }

    #[test]
    fn rx_handler_cannot_pass_on_a_buffer_of_another_device() -> Result {
        let a = NetDevice::get_by_name(Namespace::init(), VETH_A)?;
        let b = NetDevice::get_by_name(Namespace::init(), VETH_B)?;
        let swapper = Arc::pin_init(
            pin_init!(Swapper { kept <- kernel::new_spinlock_bh!(None), swapped: AtomicU32::new(0) }),
            GFP_KERNEL,
        )?;
        // Counts frames from `a` on every device: a buffer received on `b`
        // and passed on while `a` is receiving would show up here.
        let behind = KBox::pin_init(
            packet::Registration::new(
                TYPE_HANDLED,
                None,
                Catcher { src: a.mac_addr().ok_or(EINVAL)?, good: AtomicU32::new(0), other: AtomicU32::new(0) },
            ),
            GFP_KERNEL,
        )?;
        let (on_a, on_b) = {
            let rtnl = rtnl::lock();
            let on_b = rx_handler::Registration::register(&rtnl, b.clone(), swapper.clone())?;
            let on_a = rx_handler::Registration::register(&rtnl, a.clone(), swapper.clone())?;
            (on_a, on_b)
        };
        // Received on `b` (from `a`) and kept; then a frame received on `a`
        // (from `b`) makes the handler return the kept one, whose device is
        // `b`: it must be dropped, not passed on.
        send(&a, &b, TYPE_HANDLED)?;
        fsleep(Delta::from_millis(50));
        send(&b, &a, TYPE_HANDLED)?;
        assert_eq!(wait_for(&swapper.swapped, 1), 1);
        fsleep(Delta::from_millis(50));
        assert_eq!(behind.handler().good.load(Relaxed), 0);
        {
            let rtnl = rtnl::lock();
            on_a.unregister(&rtnl);
            on_b.unregister(&rtnl);
        }
        Ok(())
    }

    #[test]
    fn rx_handler_steals_one_type_and_passes_the_rest() -> Result {
        let a = NetDevice::get_by_name(Namespace::init(), VETH_A)?;
        let b = NetDevice::get_by_name(Namespace::init(), VETH_B)?;
        let src = a.mac_addr().ok_or(EINVAL)?;
        let thief = Arc::new(
            Thief { stolen: Catcher { src, good: AtomicU32::new(0), other: AtomicU32::new(0) }, passed: AtomicU32::new(0) },
            GFP_KERNEL,
        )?;
        let behind = KBox::pin_init(
            packet::Registration::new(
                TYPE_HANDLED,
                Some(b.clone()),
                Catcher { src, good: AtomicU32::new(0), other: AtomicU32::new(0) },
            ),
            GFP_KERNEL,
        )?;
        let reg = {
            let rtnl = rtnl::lock();
            rx_handler::Registration::register(&rtnl, b.clone(), thief.clone())?
        };
        // Only one receive handler per device.
        {
            let rtnl = rtnl::lock();
            assert_eq!(rx_handler::Registration::register(&rtnl, b.clone(), thief.clone()).err(), Some(EBUSY));
        }
        send(&a, &b, TYPE_STOLEN)?;
        send(&a, &b, TYPE_HANDLED)?;
        assert_eq!(wait_for(&thief.stolen.good, 1), 1);
        // The passed frame reached the protocol handler behind the thief.
        assert_eq!(wait_for(&behind.handler().good, 1), 1);
        assert!(thief.passed.load(Relaxed) >= 1);
        {
            let rtnl = rtnl::lock();
            reg.unregister(&rtnl);
        }
        send(&a, &b, TYPE_STOLEN)?;
        fsleep(Delta::from_millis(50));
        assert_eq!(thief.stolen.good.load(Relaxed), 1);
        Ok(())
    }
}
