//! Interfaces as the tools name them: index and address from sysfs (in the
//! caller's network namespace), MAC addresses in text, and the reply to a
//! raw frame.

use polynic_abi::bqi::{LinkHeader, ETH_HEADER_LEN};

/// What went wrong finding an interface or reading an address.
#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    /// No such interface in this namespace.
    #[error("no interface {0} in this network namespace")]
    NoInterface(String),
    /// Not a MAC address (six hexadecimal bytes separated by colons).
    #[error("bad MAC address {0}")]
    BadMac(String),
}

fn sysfs(dev: &str, what: &str) -> Result<String, IfaceError> {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/{what}"))
        .map(|s| s.trim().to_string())
        .map_err(|_| IfaceError::NoInterface(dev.to_string()))
}

/// The interface index of `dev`.
pub fn index(dev: &str) -> Result<u32, IfaceError> {
    sysfs(dev, "ifindex")?.parse().map_err(|_| IfaceError::NoInterface(dev.to_string()))
}

/// The MAC address of `dev`.
pub fn mac(dev: &str) -> Result<[u8; 6], IfaceError> {
    parse_mac(&sysfs(dev, "address")?)
}

/// The first IPv4 address of `dev` and its prefix length, if it has one.
pub fn ipv4(dev: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` receives a list the C library allocated, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut at = list;
    while !at.is_null() && found.is_none() {
        // SAFETY: `at` is a node of the list, valid until it is freed.
        let ifa = unsafe { &*at };
        at = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: The C library sets `ifa_name` to a string for every node.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: Every address starts with its family.
        if name.to_bytes() != dev.as_bytes() || i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: An AF_INET address and netmask are sockaddr_in.
        let (addr, mask) = unsafe {
            (*ifa.ifa_addr.cast::<libc::sockaddr_in>(), *ifa.ifa_netmask.cast::<libc::sockaddr_in>())
        };
        let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
        found = Some((ip, u32::from_be(mask.sin_addr.s_addr).count_ones() as u8));
    }
    // SAFETY: The list getifaddrs gave, freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// The MTU of `dev`.
pub fn mtu(dev: &str) -> Result<usize, IfaceError> {
    sysfs(dev, "mtu")?.parse().map_err(|_| IfaceError::NoInterface(dev.to_string()))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], IfaceError> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| IfaceError::BadMac(s.to_string()))?;
    bytes.try_into().map_err(|_| IfaceError::BadMac(s.to_string()))
}

/// Turns a received frame into its reply, in place: Ethernet addresses
/// swapped and, with `link_header`, the buffer queue indices too. `None`
/// if the frame is too short or its link header malformed.
pub fn make_reply(frame: &mut [u8], link_header: bool) -> Option<()> {
    if frame.len() < ETH_HEADER_LEN {
        return None;
    }
    let (dst, src) = frame.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    if link_header {
        let rest = frame.get_mut(ETH_HEADER_LEN..)?;
        let l = LinkHeader::parse(rest).ok()?;
        LinkHeader { dst_bqi: l.src_bqi, src_bqi: l.dst_bqi, inner: l.inner }.encode(rest)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_swaps_addresses_and_indices() {
        let mut f = vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x88, 0xb5];
        f.extend_from_slice(&[0; 8]);
        LinkHeader { dst_bqi: 9, src_bqi: 7, inner: 0x1234 }.encode(&mut f[14..]).unwrap();
        make_reply(&mut f, true).unwrap();
        assert_eq!(&f[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        assert_eq!(LinkHeader::parse(&f[14..]).unwrap(), LinkHeader { dst_bqi: 7, src_bqi: 9, inner: 0x1234 });
        assert!(make_reply(&mut f[..13], false).is_none());
        let mut bad = f.clone();
        bad[14] = 9;
        assert!(make_reply(&mut bad, true).is_none());
    }

    #[test]
    fn mac_addresses_parse_strictly() {
        assert_eq!(parse_mac("02:00:0a:ff:00:01").unwrap(), [2, 0, 10, 255, 0, 1]);
        assert!(parse_mac("02:00:0a:ff:00").is_err());
        assert!(parse_mac("02:00:0a:ff:00:zz").is_err());
    }
}
