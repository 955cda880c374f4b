// SPDX-License-Identifier: GPL-2.0

//! The configfs interface, `/sys/kernel/config/fwd/`: `mkdir fwd/DEV`
//! attaches the router to net device `DEV` of the caller's namespace,
//! `rmdir` detaches it. Each directory has
//!
//! - `mode`: the forwarding path for frames received on `DEV`:
//!   `conventional`, or on a capable NIC `in-place` or `header-copy` (the
//!   default there);
//! - `attached`: 1 while the device exists, 0 once it went away;
//! - `counters`: `name value` lines (writing anything resets them).

use crate::{attach::Attachment, Mode};
use kernel::{
    configfs::{self, attribute_text, show_attribute, AttributeOperations},
    configfs_attrs,
    fmt::Write as _,
    page::PAGE_SIZE,
    prelude::*,
};

pub(crate) fn subsystem() -> impl PinInit<configfs::Subsystem<Root>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Root>,
        data: Root,
        child: Port,
        attributes: [],
    };
    configfs::Subsystem::new(c"fwd", item_type, try_pin_init!(Root {}))
}

/// The `fwd` directory.
#[pin_data]
pub(crate) struct Root {}

#[vtable]
impl configfs::GroupOperations for Root {
    type Child = Port;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<Port>, Error>> {
        let item_type = configfs_attrs! {
            container: configfs::Group<Port>,
            data: Port,
            attributes: [
                mode: 0,
                attached: 1,
                counters: 2,
            ],
        };
        let attachment = Attachment::attach(name)?;
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(Port { attachment }),
        ))
    }
}

/// One attached device.
#[pin_data]
pub(crate) struct Port {
    attachment: Attachment,
}

#[vtable]
impl AttributeOperations<0> for Port {
    type Data = Port;

    /// The path in use, or `none` once the device went away.
    fn show(this: &Port, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mode = this.attachment.mode().map_or("none", Mode::name);
        show_attribute(page, |w| w.write_fmt(fmt!("{}\n", mode)))
    }

    /// `EINVAL` for an unknown path, `EOPNOTSUPP` for a path through device
    /// memory on a NIC that is not capable.
    fn store(this: &Port, page: &[u8]) -> Result {
        this.attachment.set_mode(Mode::parse(attribute_text(page)?).ok_or(EINVAL)?)
    }
}

#[vtable]
impl AttributeOperations<1> for Port {
    type Data = Port;

    fn show(this: &Port, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_attribute(page, |w| w.write_fmt(fmt!("{}\n", u8::from(this.attachment.is_attached()))))
    }
}

#[vtable]
impl AttributeOperations<2> for Port {
    type Data = Port;

    fn show(this: &Port, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show_attribute(page, |w| this.attachment.counters.show(w))
    }

    fn store(this: &Port, _page: &[u8]) -> Result {
        this.attachment.counters.reset();
        Ok(())
    }
}
