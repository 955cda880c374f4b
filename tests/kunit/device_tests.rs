// SPDX-License-Identifier: GPL-2.0

//! Net device lookup, identity and state.

use kernel::prelude::*;

#[kunit_tests(polynic_net_device)]
mod tests {
    use kernel::prelude::*;
    use crate::{VETH_A, VETH_B};
    use kernel::error::code::ENODEV;
    use kernel::net::{device::NetDevice, namespace::Namespace};

    #[test]
    fn lookup_by_name_and_index_agree() -> Result {
        let a = NetDevice::get_by_name(Namespace::init(), VETH_A)?;
        assert_eq!(a.name().as_bytes(), b"pnk0");
        let same = NetDevice::get_by_index(Namespace::init(), a.ifindex())?;
        assert!(core::ptr::eq(&*a, &*same));
        let b = NetDevice::get_by_name(Namespace::init(), VETH_B)?;
        assert!(a.ifindex() != b.ifindex());
        Ok(())
    }

    #[test]
    fn missing_devices_are_enodev() {
        assert_eq!(NetDevice::get_by_name(Namespace::init(), c"pnk-missing").err(), Some(ENODEV));
        assert_eq!(NetDevice::get_by_index(Namespace::init(), i32::MAX).err(), Some(ENODEV));
    }

    #[test]
    fn veth_state_is_visible() -> Result {
        let a = NetDevice::get_by_name(Namespace::init(), VETH_A)?;
        assert!(a.is_up());
        assert!(a.is_running());
        assert!(a.has_carrier());
        assert_eq!(a.mtu(), 1500);
        let mac = a.mac_addr();
        assert!(mac.is_some_and(|m| m.is_valid_unicast()));
        assert_eq!(a.tx_queue_stopped(0), Some(false));
        assert_eq!(a.tx_queue_stopped(a.num_tx_queues()), None);
        assert!(a.namespace().is_some_and(|ns| ns.is(Namespace::init())));
        assert!(Namespace::current()?.is(Namespace::init()));
        Ok(())
    }

    #[test]
    fn loopback_has_no_ethernet_address_checks() -> Result {
        let lo = NetDevice::get_by_name(Namespace::init(), c"lo")?;
        // Loopback's address is six zero bytes: present, but not a valid
        // unicast address.
        assert!(lo.mac_addr().is_some_and(|m| m.is_zero()));
        Ok(())
    }
}
