//! BQI endpoints: raw frames under the polynic link header, received into
//! and sent from memory shared with the kernel's demultiplexer.

use crate::link::Link;
use anyhow::Result;
use bqi::{Endpoint, Next};
use polynic_abi::bqi::EndpointKind;
use std::os::fd::AsFd;
use std::time::Duration;

/// A raw BQI endpoint talking to one peer index.
pub struct BqiLink {
    endpoint: Endpoint,
    max_frame: usize,
}

impl BqiLink {
    /// Configures a raw endpoint on `ifname` with index `bqi` for peer
    /// `peer`, `buffers` buffers of 16 KiB (needs CAP_NET_ADMIN).
    pub fn open(ifname: &str, bqi_index: u16, peer: u16, buffers: u32) -> Result<Self> {
        let ifindex = bqi::iface::index(ifname)?;
        let mut config = bqi::endpoint_config(EndpointKind::Raw, ifindex);
        config.bqi = bqi_index;
        config.peer_bqi = peer;
        config.buf_count = buffers;
        config.req_entries = (buffers * 2).next_power_of_two().min(polynic_abi::bqi::MAX_ENTRIES);
        config.evt_entries = config.req_entries;
        let fd = bqi::open(bqi::DEVICE)?;
        bqi::configure(fd.as_fd(), &config)?;
        let endpoint = Endpoint::map(fd)?;
        let max_frame = endpoint.info().max_frame as usize;
        Ok(BqiLink { endpoint, max_frame })
    }

    /// The endpoint's own index and its peer's.
    pub fn indices(&self) -> (u16, u16) {
        (self.endpoint.info().bqi, self.endpoint.info().peer_bqi)
    }

}

impl Link for BqiLink {
    fn send(&mut self, frame: &[u8]) -> Result<()> {
        Ok(self.endpoint.queue(frame)?)
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.endpoint.flush()?)
    }

    fn recv(&mut self, timeout: Duration, f: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let mut handed = 0;
        let mut next = self.endpoint.wait(timeout)?;
        while let Some(event) = next {
            match event {
                Next::Frame(r) => {
                    f(self.endpoint.frame(&r));
                    self.endpoint.release(r)?;
                    handed += 1;
                }
                Next::Ended => anyhow::bail!("the endpoint ended"),
                Next::Error(e) => anyhow::bail!("the device reported {e:?}"),
            }
            next = self.endpoint.poll_event();
        }
        Ok(handed)
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The endpoint's counters and its device's.
    fn counters(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> =
            self.endpoint.stats().unwrap_or_default().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        all.extend(self.endpoint.device_stats().unwrap_or_default().into_iter().map(|(k, v)| (format!("device.{k}"), v)));
        all
    }
}
