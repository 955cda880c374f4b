// SPDX-License-Identifier: GPL-2.0

//! bqi: the demultiplexing personality. Each open file of `/dev/bqi` is an
//! endpoint: received frames selected by buffer queue index (a polynic link
//! header) or by IPv4 flow go straight into memory shared with one
//! application, before the stack; the application's frames leave only
//! after a check against the endpoint's header template. See `docs/bqi.md`
//! and the ABI in `kernel::net::bqi`.

mod counters;
mod demux;
mod devices;
mod endpoint;
mod file;
mod rings;

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    net::notifier,
    prelude::*,
};

module! {
    type: BqiModule,
    name: "bqi",
    authors: ["polynic developers"],
    description: "BQI demux device: per-endpoint rings shared with user space, template-checked sends",
    license: "GPL",
}

#[pin_data(PinnedDrop)]
struct BqiModule {
    /// Dropped first: no new endpoint once unloading starts (open files
    /// hold the module, so none is left by then).
    #[pin]
    misc: MiscDeviceRegistration<file::EndpointFile>,
    #[pin]
    watch: notifier::Registration<devices::Watch>,
}

#[pinned_drop]
impl PinnedDrop for BqiModule {
    fn drop(self: Pin<&mut Self>) {
        // A static is never dropped: give back the list's buffer.
        devices::exit();
    }
}

impl kernel::InPlaceModule for BqiModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        devices::init();
        try_pin_init!(BqiModule {
            watch <- notifier::Registration::new(devices::Watch),
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"bqi" }),
        })
    }
}
