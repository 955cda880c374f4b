// SPDX-License-Identifier: GPL-2.0

//! `/dev/bqi`: an open file is an endpoint once a holder of `CAP_NET_ADMIN`
//! has configured it (`IOC_CONFIGURE`, once: then it is sealed, and the
//! file may be handed to an unprivileged application). The application maps
//! the shared area, polls for events, rings the doorbell (`IOC_KICK`) when
//! the area says it is needed, and reads its counters (`IOC_STATS`).
//! Closing the file removes the endpoint from its device and frees it.

use crate::{
    demux::{Demux, FlowSpec},
    devices,
    endpoint::{Endpoint, Taker},
    rings::Shared,
};
use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::VmaNew,
    net::{
        bqi::{self, EndpointConfig, Layout, Template, CONFIG_LEN},
        device::NetDevice,
        namespace::Namespace,
    },
    new_mutex,
    prelude::*,
    sync::{
        poll::{mask, PollTable},
        Arc, Mutex,
    },
    uaccess::{UserPtr, UserSlice},
};

/// What an open file is.
enum State {
    /// Opened, not configured: only `IOC_CONFIGURE` is accepted.
    New,
    /// Configured and sealed.
    Ready { endpoint: Arc<Endpoint>, demux: Arc<Demux>, flow: Option<FlowSpec> },
}

#[pin_data]
pub(crate) struct EndpointFile {
    #[pin]
    state: Mutex<State>,
}

impl EndpointFile {
    fn endpoint(&self) -> Result<Arc<Endpoint>> {
        match &*self.state.lock() {
            State::Ready { endpoint, .. } => Ok(endpoint.clone()),
            State::New => Err(ENOTCONN),
        }
    }

    /// `IOC_CONFIGURE`: checks rights, the configuration and the device,
    /// builds the area and enters the endpoint in the device's tables.
    fn configure(&self, arg: usize) -> Result {
        let ns = Namespace::current()?;
        if !ns.caller_has_net_admin() {
            return Err(EPERM);
        }
        let mut raw = [0u8; CONFIG_LEN];
        UserSlice::new(UserPtr::from_addr(arg), CONFIG_LEN).reader().read_slice(&mut raw)?;
        let config = EndpointConfig::from_bytes(&raw).map_err(|_| EINVAL)?;
        let mut state = self.state.lock();
        if !matches!(*state, State::New) {
            // Sealed: not even the registry reconfigures an endpoint.
            return Err(EBUSY);
        }
        let ifindex = i32::try_from(config.ifindex).map_err(|_| ENODEV)?;
        let dev = NetDevice::get_by_index(&ns, ifindex)?;
        let src_mac = dev.mac_addr().ok_or(EADDRNOTAVAIL)?.0;
        let max_frame = dev.mtu().checked_add(bqi::ETH_HEADER_LEN as u32).ok_or(EINVAL)?;
        if config.buf_size < max_frame + 4 {
            // A frame the device may receive would not fit (4: a VLAN tag).
            return Err(EMSGSIZE);
        }
        let layout = Layout::new(config.buf_size, config.buf_count, config.req_entries, config.evt_entries).ok_or(EINVAL)?;
        let flow = config.proto().map(|proto| FlowSpec {
            proto,
            local_ip: config.local_ip,
            local_port: config.local_port,
            remote_ip: config.remote_ip,
            remote_port: config.remote_port,
        });
        let mut pieces = Some((dev.clone(), layout));
        let (_, endpoint, demux) = devices::attach(&ns, &dev, config.bqi, flow, |index| {
            let Some((dev, layout)) = pieces.take() else { return Err(EINVAL) };
            let info = layout.info(index, config.peer_bqi, config.ifindex, max_frame);
            let shared = Shared::new(layout, &info)?;
            let template = Template { src_mac, config, bqi: index };
            Endpoint::new(shared, template, max_frame, dev)
        })?;
        *state = State::Ready { endpoint, demux, flow };
        Ok(())
    }
}

#[vtable]
impl MiscDevice for EndpointFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(try_pin_init!(EndpointFile { state <- new_mutex!(State::New) }), GFP_KERNEL)
    }

    fn release(me: Pin<KBox<Self>>, _file: &File) {
        let state = core::mem::replace(&mut *me.state.lock(), State::New);
        if let State::Ready { endpoint, demux, flow } = state {
            devices::detach(&demux, &endpoint, flow.as_ref());
            endpoint.end();
        }
    }

    fn ioctl(me: Pin<&EndpointFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            bqi::IOC_CONFIGURE => me.configure(arg).map(|()| 0),
            bqi::IOC_INFO => {
                let e = me.endpoint()?;
                let info = e.shared.layout.info(e.bqi(), e.config.peer_bqi, e.config.ifindex, e.max_frame);
                UserSlice::new(UserPtr::from_addr(arg), bqi::INFO_LEN).writer().write_slice(&info.to_bytes())?;
                Ok(0)
            }
            bqi::IOC_KICK => {
                let e = me.endpoint()?;
                e.counters.bump(bqi::Stat::Kicks);
                e.take_requests(Taker::Doorbell).map(|n| n as isize)
            }
            bqi::IOC_STATS => {
                let e = me.endpoint()?;
                UserSlice::new(UserPtr::from_addr(arg), bqi::STATS_LEN).writer().write_slice(&e.counters.to_bytes())?;
                Ok(0)
            }
            bqi::IOC_DEVICE_STATS => {
                let bytes = match &*me.state.lock() {
                    State::Ready { demux, .. } => demux.counters.to_bytes(),
                    State::New => return Err(ENOTCONN),
                };
                UserSlice::new(UserPtr::from_addr(arg), bqi::DEVICE_STATS_LEN).writer().write_slice(&bytes)?;
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn mmap(me: Pin<&EndpointFile>, _file: &File, vma: &VmaNew) -> Result {
        me.endpoint()?.shared.area.map(vma)
    }

    fn poll(me: Pin<&EndpointFile>, file: &File, table: &PollTable<'_>) -> u32 {
        let Ok(e) = me.endpoint() else { return mask::ERR };
        table.register_wait(file, &e.readable);
        let (pending, ended) = e.readiness();
        let mut ready = mask::OUT | mask::WRNORM;
        if pending {
            ready |= mask::IN | mask::RDNORM;
        }
        if ended {
            ready |= mask::HUP;
        }
        ready
    }
}
