// SPDX-License-Identifier: GPL-2.0

//! Ethernet Block Device (EBD): a block device whose I/O travels in raw
//! Ethernet frames to an `ebd-server`.
//!
//! EBD is a thin blk-mq driver on the kernel's storage personality
//! (`kernel::net::storage`), which does the framing, pacing, response
//! matching and retransmission. Disks are made in configfs
//! (`/sys/kernel/config/ebd/NAME`, see `configfs.rs`); each appears as
//! `/dev/ebdN` with the geometry its server reports.

mod blk;
mod configfs;
mod device;
mod index;

use kernel::{net::storage::wire, prelude::*};

module! {
    type: EbdModule,
    name: "ebd",
    authors: ["polynic developers"],
    description: "Ethernet Block Device over the polynic storage personality",
    license: "GPL",
}

/// Module state: the configfs subsystem, which owns every disk.
#[pin_data]
struct EbdModule {
    #[pin]
    configfs: kernel::configfs::Subsystem<configfs::Root>,
}

impl kernel::InPlaceModule for EbdModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("EBD wire protocol v{} loaded\n", wire::VERSION);
        try_pin_init!(Self { configfs <- configfs::subsystem() })
    }
}

#[kunit_tests(ebd_wire)]
mod tests {
    use super::wire::*;

    fn write_fragment() -> Header {
        Header {
            opcode: Opcode::Write,
            flags: FLAG_FUA,
            tag: 42,
            generation: 9,
            export: 0,
            status: Status::Ok,
            offset: 1 << 20,
            length: 8192,
            frag_offset: 4096,
            frag_len: 512,
        }
    }

    #[test]
    fn header_round_trips_in_kernel() {
        let mut frame = [0u8; HEADER_LEN + 512];
        let h = write_fragment();
        assert_eq!(h.encode(&mut frame), Ok(()));
        assert_eq!(
            Header::parse(&frame, Direction::Request).map(|(parsed, payload)| (parsed, payload.len())),
            Ok((h, 512))
        );
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut frame = [0u8; HEADER_LEN + 512];
        assert_eq!(write_fragment().encode(&mut frame), Ok(()));
        // Truncated payload.
        assert_eq!(
            Header::parse(&frame[..HEADER_LEN + 511], Direction::Request).err(),
            Some(WireError::BadLength)
        );
        // Fragment past the end of the request.
        let beyond = Header { frag_offset: 8000, ..write_fragment() };
        assert_eq!(beyond.encode(&mut frame), Ok(()));
        assert_eq!(
            Header::parse(&frame, Direction::Request).err(),
            Some(WireError::BadRange)
        );
        // Short and wrong version.
        assert_eq!(Header::parse(&frame[..10], Direction::Request).err(), Some(WireError::Short));
        frame[0] = 0xff;
        assert_eq!(
            Header::parse(&frame, Direction::Request).err(),
            Some(WireError::BadVersion)
        );
    }

    #[test]
    fn declustering_unit_fits_the_mtu() {
        assert_eq!(payload_per_frame(9000), Some(8704));
        assert_eq!(payload_per_frame(1500), Some(1024));
        assert_eq!(payload_per_frame(60), None);
    }
}
