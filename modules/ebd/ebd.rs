// SPDX-License-Identifier: GPL-2.0

//! Ethernet Block Device (EBD): a block device whose I/O travels in raw
//! Ethernet frames to an `ebd-server`.
//!
//! This is the module's skeleton: it carries the wire protocol (shared
//! verbatim with user space) and proves it in the kernel with KUnit. The
//! block driver on top of the storage personality comes next.

use kernel::prelude::*;

/// The EBD wire protocol, compiled from the same file as user space uses.
// Its items are `pub` for the user-space crate; here they are crate-private,
// and the module does not use all of them.
#[allow(dead_code, unreachable_pub)]
#[path = "../../userspace/polynic-abi/src/ebd.rs"]
mod wire;

module! {
    type: EbdModule,
    name: "ebd",
    authors: ["polynic developers"],
    description: "Ethernet Block Device over the polynic storage personality",
    license: "GPL",
}

/// Module state; devices will hang off it.
struct EbdModule;

impl kernel::Module for EbdModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("EBD wire protocol v{} loaded\n", wire::VERSION);
        Ok(EbdModule)
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
