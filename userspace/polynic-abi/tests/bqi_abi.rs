//! Host tests of the BQI ABI: configuration, layout, descriptors, events,
//! classification and templates, each refusal by its reason, and properties
//! over arbitrary bytes (nothing panics; nothing decoded points outside the
//! area).

use polynic_abi::bqi::*;
use proptest::prelude::*;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn udp_config(remote: Option<([u8; 4], u16)>) -> EndpointConfig {
    let (remote_ip, remote_port) = remote.unwrap_or(([0; 4], 0));
    EndpointConfig {
        ifindex: 3,
        kind: EndpointKind::Udp,
        bqi: 0,
        peer_bqi: 0,
        local_ip: [10, 0, 0, 1],
        remote_ip,
        local_port: 4000,
        remote_port,
        buf_size: 2048,
        buf_count: 64,
        req_entries: 128,
        evt_entries: 128,
    }
}

fn raw_config() -> EndpointConfig {
    EndpointConfig {
        kind: EndpointKind::Raw,
        bqi: 7,
        peer_bqi: 9,
        local_ip: [0; 4],
        local_port: 0,
        ..udp_config(None)
    }
}

/// An Ethernet frame carrying IPv4 `proto` from 10.0.0.1:4000 to
/// `dst`:`dport`, optionally under a link header.
fn ip_frame(link: Option<LinkHeader>, proto: u8, dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
    let l4 = if proto == IPPROTO_TCP { 20 } else { 8 };
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&MAC);
    if let Some(l) = link {
        f[12..14].copy_from_slice(&ETH_P_BQI.to_be_bytes());
        let mut h = [0u8; LINK_HEADER_LEN];
        l.encode(&mut h).unwrap();
        f.extend_from_slice(&h);
    } else {
        f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
    }
    let total = (20 + l4 + payload) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&dst);
    f.extend_from_slice(&ip);
    let mut t = vec![0u8; l4];
    t[0..2].copy_from_slice(&4000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&t);
    f.extend(std::iter::repeat_n(0xab, payload));
    f
}

fn template(config: EndpointConfig, bqi: u16) -> Template {
    Template { src_mac: MAC, config, bqi }
}

#[test]
fn configuration_round_trips_and_refuses_by_reason() {
    let c = udp_config(Some(([10, 0, 0, 2], 5000)));
    assert_eq!(EndpointConfig::from_bytes(&c.to_bytes()), Ok(c));
    assert_eq!(EndpointConfig::from_bytes(&raw_config().to_bytes()), Ok(raw_config()));

    let mut b = c.to_bytes();
    b[0] = 2;
    assert_eq!(EndpointConfig::from_bytes(&b), Err(ConfigError::Version));
    let mut b = c.to_bytes();
    b[8] = 4;
    assert_eq!(EndpointConfig::from_bytes(&b), Err(ConfigError::Version));
    let mut b = c.to_bytes();
    b[47] = 1;
    assert_eq!(EndpointConfig::from_bytes(&b), Err(ConfigError::Version));

    let bad = |f: fn(&mut EndpointConfig)| {
        let mut c = udp_config(Some(([10, 0, 0, 2], 5000)));
        f(&mut c);
        EndpointConfig::from_bytes(&c.to_bytes())
    };
    assert_eq!(bad(|c| c.bqi = MAX_BQI), Err(ConfigError::Bqi));
    assert_eq!(bad(|c| c.local_port = 0), Err(ConfigError::Address));
    assert_eq!(bad(|c| c.remote_port = 0), Err(ConfigError::Address));
    assert_eq!(bad(|c| c.remote_ip = [0; 4]), Err(ConfigError::Address));
    assert_eq!(bad(|c| c.local_ip = [0; 4]), Err(ConfigError::Address));
    assert_eq!(bad(|c| c.buf_size = 3000), Err(ConfigError::Sizes));
    assert_eq!(bad(|c| c.buf_size = 128), Err(ConfigError::Sizes));
    assert_eq!(bad(|c| c.buf_count = 0), Err(ConfigError::Sizes));
    assert_eq!(bad(|c| c.req_entries = 100), Err(ConfigError::Sizes));
    assert_eq!(bad(|c| c.evt_entries = 4), Err(ConfigError::Sizes));
    assert_eq!(bad(|c| c.kind = EndpointKind::Raw), Err(ConfigError::Bqi));
    // A raw endpoint names its peer and no addresses.
    let mut r = raw_config();
    r.local_port = 1;
    assert_eq!(EndpointConfig::from_bytes(&r.to_bytes()), Err(ConfigError::Address));
    // 4096 buffers of 16 KiB would be 64 MiB plus the queues: too big.
    assert_eq!(bad(|c| { c.buf_size = MAX_BUF_SIZE; c.buf_count = MAX_BUFFERS; }), Err(ConfigError::Sizes));
}

#[test]
fn layout_places_each_part_on_its_own_pages() {
    let l = Layout::new(2048, 64, 128, 256).unwrap();
    assert_eq!(l.request(0), PAGE_SIZE);
    assert_eq!(l.request(129), PAGE_SIZE + DESC_LEN);
    assert_eq!(l.event(0), 2 * PAGE_SIZE);
    assert_eq!(l.event(256 + 3), 2 * PAGE_SIZE + 3 * DESC_LEN);
    assert_eq!(l.buffer(0), Some(3 * PAGE_SIZE));
    assert_eq!(l.buffer(63), Some(3 * PAGE_SIZE + 63 * 2048));
    assert_eq!(l.buffer(64), None);
    assert_eq!(l.area_len(), 3 * PAGE_SIZE + 32 * PAGE_SIZE);
    let info = l.info(5, 6, 3, 1514);
    assert_eq!(Info::from_bytes(&info.to_bytes()), Some(info));
    let mut b = info.to_bytes();
    b[12] ^= 1; // buf_offset no longer what the sizes give
    assert_eq!(Info::from_bytes(&b), None);
    // Control words each sit on their own cache line of the control page.
    let words = [REQ_HEAD, REQ_TAIL, EVT_TAIL, EVT_HEAD, SENDS_DONE, FLAGS];
    for (i, w) in words.iter().enumerate() {
        assert!(*w as usize >= INFO_LEN && w % 64 == 0 && *w < PAGE_SIZE);
        assert!(words[i + 1..].iter().all(|o| o / 64 != w / 64));
    }
}

#[test]
fn ring_positions_wrap_and_garbage_is_detected() {
    assert_eq!(pending(5, 5, 8), Some(0));
    assert_eq!(pending(13, 5, 8), Some(8));
    assert_eq!(pending(14, 5, 8), None);
    assert_eq!(pending(2, u32::MAX - 1, 8), Some(4));
    assert_eq!(pending(4, 5, 8), None);
    assert_eq!(event_seq(u32::MAX), 0);
    assert_ne!(event_seq(0), 0);
}

#[test]
fn requests_round_trip_and_refuse_by_reason() {
    let l = Layout::new(2048, 64, 128, 128).unwrap();
    for r in [Request::Send { buffer: 63, len: 1514, cookie: 99 }, Request::Refill { buffer: 0 }] {
        assert_eq!(Request::parse(&r.to_bytes(), &l), Ok(r));
    }
    let send = |buffer, len| Request::parse(&Request::Send { buffer, len, cookie: 0 }.to_bytes(), &l);
    assert_eq!(send(64, 100), Err(DescError::Buffer));
    assert_eq!(send(u32::MAX, 100), Err(DescError::Buffer));
    assert_eq!(send(1, 13), Err(DescError::Length));
    assert_eq!(send(1, 2049), Err(DescError::Length));
    let mut b = Request::Refill { buffer: 1 }.to_bytes();
    b[8] = 1; // a refill with a length
    assert_eq!(Request::parse(&b, &l), Err(DescError::Kind));
    let mut b = Request::Refill { buffer: 1 }.to_bytes();
    b[2] = 1; // flags
    assert_eq!(Request::parse(&b, &l), Err(DescError::Kind));
    let mut b = Request::Refill { buffer: 1 }.to_bytes();
    b[0] = 3;
    assert_eq!(Request::parse(&b, &l), Err(DescError::Kind));
}

#[test]
fn events_round_trip() {
    for e in [
        Event { kind: EventKind::Received, code: 0, buffer: 3, value: 60 },
        Event { kind: EventKind::SendRefused, code: Reject::SourcePort as u16, buffer: 0, value: 7 },
        Event { kind: EventKind::Ended, code: 0, buffer: 0, value: 0 },
    ] {
        assert_eq!(Event::parse_body(&e.body()), Some(e));
    }
    assert_eq!(Event::parse_body(&[0; 12]), None);
}

#[test]
fn classification_selects_by_index_or_flow() {
    let flow = FlowKey { proto: IPPROTO_UDP, src_ip: [10, 0, 0, 1], dst_ip: [10, 0, 0, 2], src_port: 4000, dst_port: 5000 };
    // A raw frame under the link header: its index, no flow.
    let link = LinkHeader { dst_bqi: 9, src_bqi: 7, inner: 0 };
    let f = ip_frame(Some(link), IPPROTO_UDP, [10, 0, 0, 2], 5000, 10);
    assert_eq!(classify(ETH_P_BQI, &f[14..]), Ok(Class::Bqi { link, flow: None }));
    // IPv4 under the link header: its index and the flow that confirms it.
    let link = LinkHeader { inner: ETH_P_IPV4, ..link };
    let f = ip_frame(Some(link), IPPROTO_UDP, [10, 0, 0, 2], 5000, 10);
    assert_eq!(classify(ETH_P_BQI, &f[14..]), Ok(Class::Bqi { link, flow: Some(flow) }));
    let icmp = ip_frame(Some(link), 1, [10, 0, 0, 2], 0, 10);
    assert_eq!(classify(ETH_P_BQI, &icmp[14..]), Ok(Class::Bqi { link, flow: None }));
    let f = ip_frame(None, IPPROTO_UDP, [10, 0, 0, 2], 5000, 10);
    assert_eq!(classify(ETH_P_IPV4, &f[14..]), Ok(Class::Flow(flow)));
    // Fragments, other protocols, truncated and odd IPv4, other ethertypes: the stack's.
    let mut frag = f.clone();
    frag[14 + 6] = 0x20; // more fragments
    assert_eq!(classify(ETH_P_IPV4, &frag[14..]), Ok(Class::Stack));
    let mut later = f.clone();
    later[14 + 7] = 1; // fragment offset
    assert_eq!(classify(ETH_P_IPV4, &later[14..]), Ok(Class::Stack));
    let icmp = ip_frame(None, 1, [10, 0, 0, 2], 0, 10);
    assert_eq!(classify(ETH_P_IPV4, &icmp[14..]), Ok(Class::Stack));
    assert_eq!(classify(ETH_P_IPV4, &f[14..14 + 22]), Ok(Class::Stack));
    let mut ihl = f.clone();
    ihl[14] = 0x44;
    assert_eq!(classify(ETH_P_IPV4, &ihl[14..]), Ok(Class::Stack));
    assert_eq!(classify(0x0806, &f[14..]), Ok(Class::Stack));
    // A bad link header is malformed, not the stack's.
    let mut b = [0u8; 8];
    LinkHeader { dst_bqi: MAX_BQI - 1, src_bqi: 0, inner: 0 }.encode(&mut b).unwrap();
    b[2] = 0xff;
    assert_eq!(classify(ETH_P_BQI, &b), Err(Malformed::BqiRange));
    b[0] = 2;
    assert_eq!(classify(ETH_P_BQI, &b), Err(Malformed::LinkVersion));
    assert_eq!(classify(ETH_P_BQI, &b[..7]), Err(Malformed::Short));
}

#[test]
fn connected_udp_template_refuses_every_forged_field() {
    let t = template(udp_config(Some(([10, 0, 0, 2], 5000))), 1);
    let good = ip_frame(None, IPPROTO_UDP, [10, 0, 0, 2], 5000, 32);
    assert_eq!(t.check(&good, 1514), Ok(()));
    let forged = |at: usize, v: u8| {
        let mut f = good.clone();
        f[at] = v;
        t.check(&f, 1514)
    };
    assert_eq!(forged(6, 0x04), Err(Reject::SourceMac));
    assert_eq!(forged(13, 0x06), Err(Reject::EtherType));
    assert_eq!(forged(14, 0x65), Err(Reject::IpHeader));
    assert_eq!(forged(14 + 6, 0x20), Err(Reject::IpHeader));
    assert_eq!(forged(14 + 9, IPPROTO_TCP), Err(Reject::Protocol));
    assert_eq!(forged(14 + 15, 9), Err(Reject::SourceIp));
    assert_eq!(forged(14 + 19, 9), Err(Reject::DestinationIp));
    assert_eq!(forged(14 + 21, 1), Err(Reject::SourcePort));
    assert_eq!(forged(14 + 23, 1), Err(Reject::DestinationPort));
    assert_eq!(forged(14 + 3, 0xff), Err(Reject::IpHeader)); // total length past the frame
    assert_eq!(t.check(&good[..30], 1514), Err(Reject::Length));
    assert_eq!(t.check(&good, good.len() - 1), Err(Reject::Length));
    // Under a link header when the connected endpoint has no peer index:
    // refused.
    let linked = ip_frame(Some(LinkHeader { dst_bqi: 2, src_bqi: 1, inner: ETH_P_IPV4 }), IPPROTO_UDP, [10, 0, 0, 2], 5000, 32);
    assert_eq!(t.check(&linked, 1514), Err(Reject::EtherType));
}

#[test]
fn an_open_endpoint_may_frame_to_any_peer_index_but_only_as_itself() {
    let mut c = udp_config(None);
    c.kind = EndpointKind::Tcp;
    let t = template(c, 4);
    let link = LinkHeader { dst_bqi: 33, src_bqi: 4, inner: ETH_P_IPV4 };
    let framed = |l: LinkHeader| t.check(&ip_frame(Some(l), IPPROTO_TCP, [10, 0, 0, 2], 5000, 40), 1514);
    assert_eq!(framed(link), Ok(()));
    assert_eq!(framed(LinkHeader { dst_bqi: 4000, ..link }), Ok(()));
    assert_eq!(t.check(&ip_frame(None, IPPROTO_TCP, [10, 0, 0, 2], 5000, 40), 1514), Ok(()));
    assert_eq!(framed(LinkHeader { src_bqi: 5, ..link }), Err(Reject::SourceBqi));
    assert_eq!(framed(LinkHeader { dst_bqi: 0, ..link }), Err(Reject::DestinationBqi));
    assert_eq!(framed(LinkHeader { inner: 0x0806, ..link }), Err(Reject::Inner));
    // The flow is checked under the header as without it.
    let mut f = ip_frame(Some(link), IPPROTO_TCP, [10, 0, 0, 2], 5000, 40);
    f[14 + LINK_HEADER_LEN + 20] = 0x99; // source port
    assert_eq!(t.check(&f, 1514), Err(Reject::SourcePort));
    // A framed packet needs room for its header within the device's frame.
    let f = ip_frame(Some(link), IPPROTO_TCP, [10, 0, 0, 2], 5000, 40);
    assert_eq!(t.check(&f, f.len() - 1), Err(Reject::Length));
}

#[test]
fn an_endpoint_admits_only_its_own_flow() {
    let from = |ip: [u8; 4], port: u16| FlowKey { proto: IPPROTO_UDP, src_ip: ip, dst_ip: [10, 0, 0, 1], src_port: port, dst_port: 4000 };
    let open = udp_config(None);
    assert!(open.admits(&from([10, 0, 0, 9], 1234)));
    assert!(!open.admits(&FlowKey { dst_port: 4001, ..from([10, 0, 0, 9], 1234) }));
    assert!(!open.admits(&FlowKey { dst_ip: [10, 0, 0, 3], ..from([10, 0, 0, 9], 1234) }));
    assert!(!open.admits(&FlowKey { proto: IPPROTO_TCP, ..from([10, 0, 0, 9], 1234) }));
    let connected = udp_config(Some(([10, 0, 0, 2], 5000)));
    assert!(connected.admits(&from([10, 0, 0, 2], 5000)));
    assert!(!connected.admits(&from([10, 0, 0, 2], 5001)));
    assert!(!connected.admits(&from([10, 0, 0, 3], 5000)));
    assert!(!raw_config().admits(&from([10, 0, 0, 2], 5000)));
}

#[test]
fn index_messages_round_trip_and_refuse_what_is_not_one() {
    let q = IndexMessage::query(IPPROTO_TCP, 0xdead_beef, ([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 6000));
    let b = q.to_bytes();
    assert_eq!(&b[..4], b"BQIX");
    assert_eq!(IndexMessage::parse(&b), Ok(q));
    let a = q.answer(17);
    assert_eq!(IndexMessage::parse(&a.to_bytes()), Ok(a));
    assert!(q.is_answered_by(&a));
    assert!(!q.is_answered_by(&q));
    assert!(!q.is_answered_by(&IndexMessage { nonce: 1, ..a }));
    assert!(!q.is_answered_by(&IndexMessage { server: ([10, 0, 0, 2], 6001), ..a }));
    assert!(!q.is_answered_by(&IndexMessage { proto: IPPROTO_UDP, ..a }));
    let at = |i: usize, v: u8| {
        let mut m = a.to_bytes();
        m[i] = v;
        IndexMessage::parse(&m)
    };
    assert_eq!(IndexMessage::parse(&b[..27]), Err(ExchangeError::Length));
    assert_eq!(at(0, b'X'), Err(ExchangeError::Version));
    assert_eq!(at(4, 2), Err(ExchangeError::Version));
    assert_eq!(at(5, 3), Err(ExchangeError::Kind));
    assert_eq!(at(6, 1), Err(ExchangeError::Kind));
    assert_eq!(at(7, 1), Err(ExchangeError::Field));
    assert_eq!(at(24, 0x10), Err(ExchangeError::Field)); // index 4113
    assert_eq!(at(27, 1), Err(ExchangeError::Field));
    let mut m = b;
    m[25] = 5; // a query carrying an index
    assert_eq!(IndexMessage::parse(&m), Err(ExchangeError::Field));
    let mut m = b;
    m[20] = 0;
    m[21] = 0; // client port 0
    assert_eq!(IndexMessage::parse(&m), Err(ExchangeError::Field));
}

#[test]
fn unconnected_udp_may_send_anywhere_from_its_own_port() {
    let t = template(udp_config(None), 1);
    assert_eq!(t.check(&ip_frame(None, IPPROTO_UDP, [192, 168, 1, 1], 53, 0), 1514), Ok(()));
    let mut f = ip_frame(None, IPPROTO_UDP, [192, 168, 1, 1], 53, 0);
    f[14 + 20] = 0x10; // source port
    assert_eq!(t.check(&f, 1514), Err(Reject::SourcePort));
}

#[test]
fn tcp_over_bqi_checks_the_link_header_and_the_flow() {
    let mut c = udp_config(Some(([10, 0, 0, 2], 5000)));
    c.kind = EndpointKind::Tcp;
    c.peer_bqi = 12;
    let t = template(c, 4);
    let link = LinkHeader { dst_bqi: 12, src_bqi: 4, inner: ETH_P_IPV4 };
    assert_eq!(t.check(&ip_frame(Some(link), IPPROTO_TCP, [10, 0, 0, 2], 5000, 100), 1514), Ok(()));
    let check = |l: LinkHeader| t.check(&ip_frame(Some(l), IPPROTO_TCP, [10, 0, 0, 2], 5000, 100), 1514);
    assert_eq!(check(LinkHeader { src_bqi: 5, ..link }), Err(Reject::SourceBqi));
    assert_eq!(check(LinkHeader { dst_bqi: 0, ..link }), Err(Reject::DestinationBqi));
    assert_eq!(check(LinkHeader { inner: 0x86dd, ..link }), Err(Reject::Inner));
    assert_eq!(t.check(&ip_frame(None, IPPROTO_TCP, [10, 0, 0, 2], 5000, 100), 1514), Err(Reject::EtherType));
    // A TCP header cut short is refused even though the ports are there.
    let f = ip_frame(Some(link), IPPROTO_TCP, [10, 0, 0, 2], 5000, 0);
    assert_eq!(t.check(&f[..f.len() - 4], 1514), Err(Reject::IpHeader));
}

#[test]
fn raw_template_fixes_both_indices() {
    let t = template(raw_config(), 7);
    let frame = |l: LinkHeader| {
        let mut f = vec![0u8; 14 + LINK_HEADER_LEN + 46];
        f[6..12].copy_from_slice(&MAC);
        f[12..14].copy_from_slice(&ETH_P_BQI.to_be_bytes());
        l.encode(&mut f[14..]).unwrap();
        f
    };
    assert_eq!(t.check(&frame(LinkHeader { dst_bqi: 9, src_bqi: 7, inner: 0x1234 }), 1514), Ok(()));
    assert_eq!(t.check(&frame(LinkHeader { dst_bqi: 0, src_bqi: 7, inner: 0 }), 1514), Err(Reject::DestinationBqi));
    assert_eq!(t.check(&frame(LinkHeader { dst_bqi: 9, src_bqi: 8, inner: 0 }), 1514), Err(Reject::SourceBqi));
    let mut f = frame(LinkHeader { dst_bqi: 9, src_bqi: 7, inner: 0 });
    f[14] = 2;
    assert_eq!(t.check(&f, 1514), Err(Reject::SourceBqi));
    assert_eq!(t.check(&f[..18], 1514), Err(Reject::Length));
}

#[test]
fn ioctl_numbers_follow_the_linux_encoding() {
    // _IOW('B', 1, 48), _IOR('B', 2, 56), _IO('B', 3), _IOR('B', 4, 80)
    assert_eq!(IOC_CONFIGURE, 0x4030_4201);
    assert_eq!(IOC_INFO, 0x8038_4202);
    assert_eq!(IOC_KICK, 0x0000_4203);
    assert_eq!(IOC_STATS, 0x8050_4204);
    assert_eq!(IOC_DEVICE_STATS, 0x8040_4205);
    assert_eq!(STAT_NAMES.len(), STAT_COUNT);
    assert_eq!(DEVICE_STAT_NAMES.len(), DEVICE_STAT_COUNT);
    assert_eq!(DeviceStat::Unconfirmed as usize, DEVICE_STAT_COUNT - 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_descriptors_never_point_outside_the_area(b in any::<[u8; 16]>(), sizes in (8u32..15, 0u32..4096, 3u32..15)) {
        let l = Layout::new(1 << sizes.0, sizes.1.max(1), 1 << sizes.2, 1 << sizes.2);
        prop_assume!(l.is_some());
        let l = l.unwrap();
        if let Ok(r) = Request::parse(&b, &l) {
            let (buffer, len) = match r { Request::Send { buffer, len, .. } => (buffer, len), Request::Refill { buffer } => (buffer, 0) };
            let at = l.buffer(buffer).unwrap();
            prop_assert!(at + len <= l.area_len());
            prop_assert!(at + l.buf_size() <= l.area_len());
        }
    }

    #[test]
    fn every_valid_layout_fits_its_area(b in 8u32..15, n in 1u32..=MAX_BUFFERS, r in 3u32..15, e in 3u32..15, pos in any::<u32>()) {
        if let Some(l) = Layout::new(1 << b, n, 1 << r, 1 << e) {
            prop_assert!(l.request(pos) + DESC_LEN <= l.event(0));
            prop_assert!(l.event(pos) + DESC_LEN <= l.buffer(0).unwrap());
            prop_assert!(l.buffer(n - 1).unwrap() + l.buf_size() <= l.area_len());
            prop_assert!(u64::from(l.area_len()) <= MAX_AREA_LEN);
            prop_assert_eq!(l.area_len() % PAGE_SIZE, 0);
        }
    }

    #[test]
    fn index_messages_from_the_network_decode_only_within_range(mut b in any::<[u8; EXCHANGE_LEN]>(), op in 0u8..4, proto in prop_oneof![Just(IPPROTO_TCP), Just(IPPROTO_UDP), any::<u8>()], clear in any::<bool>()) {
        // Mostly well-formed headers, so the field checks are reached.
        b[..4].copy_from_slice(&EXCHANGE_MAGIC);
        b[4] = EXCHANGE_VERSION;
        b[5] = op;
        b[6] = proto;
        if clear {
            b[7] = 0;
            b[26] = 0;
            b[27] = 0;
            b[24] &= 0x0f;
        }
        if let Ok(m) = IndexMessage::parse(&b) {
            prop_assert_eq!(m.to_bytes(), b);
            prop_assert!(m.index < MAX_BQI);
            prop_assert!(m.op == ExchangeOp::Answer || m.index == 0);
            prop_assert!(m.client.1 != 0 && m.server.1 != 0);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(ethertype in prop_oneof![Just(ETH_P_BQI), Just(ETH_P_IPV4), any::<u16>()],
                                   head in proptest::collection::vec(any::<u8>(), 0..CLASSIFY_LEN + 8),
                                   config in any::<[u8; CONFIG_LEN]>(), info in any::<[u8; INFO_LEN]>()) {
        if let Ok(Class::Bqi { link: l, flow }) = classify(ethertype, &head) {
            prop_assert!(l.dst_bqi < MAX_BQI && l.src_bqi < MAX_BQI);
            prop_assert!(flow.is_none() || l.inner == ETH_P_IPV4);
        }
        if let Ok(m) = IndexMessage::parse(&head) {
            prop_assert_eq!(IndexMessage::parse(&m.to_bytes()), Ok(m));
            prop_assert!(m.index < MAX_BQI);
        }
        if let Ok(c) = EndpointConfig::from_bytes(&config) {
            prop_assert_eq!(EndpointConfig::from_bytes(&c.to_bytes()), Ok(c));
        }
        let _ = Info::from_bytes(&info);
        let mut frame = vec![0u8; 14];
        frame[6..12].copy_from_slice(&MAC);
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(&head);
        for t in [template(udp_config(None), 1), template(raw_config(), 7)] {
            let _ = t.check(&frame, 1514);
        }
    }

    #[test]
    fn mutated_good_frames_pass_only_if_the_template_fields_hold(at in 0usize..58, v in any::<u8>()) {
        let t = template(udp_config(Some(([10, 0, 0, 2], 5000))), 1);
        let mut f = ip_frame(None, IPPROTO_UDP, [10, 0, 0, 2], 5000, 16);
        f[at] = v;
        if t.check(&f, 1514).is_ok() {
            prop_assert_eq!(&f[6..14], &[0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00][..]);
            prop_assert_eq!(f[14 + 9], IPPROTO_UDP);
            prop_assert_eq!(&f[14 + 12..14 + 24], &[10, 0, 0, 1, 10, 0, 0, 2, 0x0f, 0xa0, 0x13, 0x88][..]);
        }
    }
}
