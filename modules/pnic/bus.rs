// SPDX-License-Identifier: GPL-2.0

//! The modelled I/O bus and the counters of bus traffic.
//!
//! A bus is one shared clock: the time at which it is next free. A
//! transaction of `n` bytes reserves `arbitration + n / bandwidth` of it,
//! starting when both the bus is free and the transaction is ready, so
//! transactions from every NIC on the bus are served one after another, in
//! the order they asked, and idle time is never banked. The engine that asked
//! makes its transfer visible only at the reserved end ([`wait_until`]): a
//! transfer never completes before the bus could have carried it, and a
//! saturated bus limits throughput as a shared bus does.
//!
//! A NIC on no bus is unlimited; its transfers are still counted.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::{
    prelude::*,
    processor::cpu_relax,
    sync::SetOnce,
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

/// What a transaction moved, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Host memory to device memory (a frame to send).
    HostToDevice = 0,
    /// Device memory to host memory (a received frame).
    DeviceToHost = 1,
    /// Device memory to another device's memory.
    Peer = 2,
    /// A programmed-I/O access by the CPU.
    Pio = 3,
}

/// Names of the kinds as the `stats` attributes print them.
pub(crate) const KIND_NAMES: [&str; 4] = ["h2d", "d2h", "peer", "pio"];

/// Counters of one kind of transaction.
#[derive(Default)]
pub(crate) struct KindCounters {
    pub(crate) transactions: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Bus time the transactions held.
    pub(crate) busy_ns: AtomicU64,
    /// Time they waited for the bus to be free.
    pub(crate) wait_ns: AtomicU64,
}

/// Counters of every kind.
#[derive(Default)]
pub(crate) struct Traffic(pub(crate) [KindCounters; 4]);

impl Traffic {
    pub(crate) fn count(&self, kind: Kind, bytes: u64, busy: u64, wait: u64) {
        let c = &self.0[kind as usize];
        c.transactions.fetch_add(1, Relaxed);
        c.bytes.fetch_add(bytes, Relaxed);
        c.busy_ns.fetch_add(busy, Relaxed);
        c.wait_ns.fetch_add(wait, Relaxed);
    }

    /// Sets every counter to zero.
    pub(crate) fn reset(&self) {
        for c in &self.0 {
            for a in [&c.transactions, &c.bytes, &c.busy_ns, &c.wait_ns] {
                a.store(0, Relaxed);
            }
        }
    }

    /// `KIND.transactions N` lines, and bytes, busy_ns, wait_ns.
    pub(crate) fn show(&self, prefix: &str, w: &mut impl kernel::fmt::Write) -> kernel::fmt::Result {
        for (c, name) in self.0.iter().zip(KIND_NAMES) {
            for (field, value) in [
                ("transactions", &c.transactions),
                ("bytes", &c.bytes),
                ("busy_ns", &c.busy_ns),
                ("wait_ns", &c.wait_ns),
            ] {
                w.write_fmt(fmt!("{}{}.{} {}\n", prefix, name, field, value.load(Relaxed)))?;
            }
        }
        Ok(())
    }
}

/// A bus's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BusParams {
    /// Bytes per second the bus carries (32-bit 33 MHz PCI: 133 333 333).
    pub(crate) bandwidth_bps: u64,
    /// Time each transaction spends on arbitration, address and turnaround.
    pub(crate) arbitration_ns: u64,
    /// Extra time a PIO read waits for the device's answer.
    pub(crate) pio_read_ns: u64,
}

impl Default for BusParams {
    fn default() -> Self {
        // 4 bytes per clock at 33.3 MHz; about 8 clocks of overhead per
        // transaction; an uncached read through a host bridge of the
        // paper's era takes about a microsecond.
        BusParams { bandwidth_bps: 133_333_333, arbitration_ns: 240, pio_read_ns: 1000 }
    }
}

impl BusParams {
    /// Bus time of a transaction of `bytes`, every duration multiplied by
    /// `scale` (the module's `time_scale`).
    pub(crate) fn duration_ns(&self, bytes: u64, scale: u64) -> u64 {
        let transfer = (bytes.saturating_mul(1_000_000_000)).div_ceil(self.bandwidth_bps.max(1));
        scale.saturating_mul(self.arbitration_ns.saturating_add(transfer))
    }
}

/// The current time on the clock every bus and NIC share, in nanoseconds
/// since the module first read it (`Instant` keeps its raw value to the
/// kernel crate; a distance from a fixed start is the same clock).
pub(crate) fn now_ns() -> u64 {
    static START: SetOnce<Instant<Monotonic>> = SetOnce::new();
    let now = Instant::<Monotonic>::now();
    // Only the first caller's start is kept; a racing one reads it back.
    START.populate(now);
    let start = START.copy().unwrap_or(now);
    u64::try_from((now - start).as_nanos()).unwrap_or(0)
}

/// Waits until the shared clock reads at least `deadline_ns` (process
/// context: the DMA engine), or until `abort` is set. Never returns early
/// otherwise; sleeps for half of what is left at a time (a sleep may last up
/// to twice what was asked), and spins for the last few microseconds, which
/// a sleep would overshoot.
pub(crate) fn wait_until(deadline_ns: u64, abort: &AtomicBool) {
    const SPIN_NS: u64 = 20_000;
    loop {
        let now = now_ns();
        if now >= deadline_ns || abort.load(Relaxed) {
            return;
        }
        let left = deadline_ns - now;
        if left <= SPIN_NS {
            cpu_relax();
        } else {
            // At most 10 ms at a time, so that `abort` is seen soon.
            fsleep(Delta::from_nanos(i64::try_from((left / 2).min(10_000_000)).unwrap_or(i64::MAX)));
        }
    }
}

/// The longest a CPU spins in one PIO access call, over all its words: a
/// bus that would make it spin longer fails the call (`ETIMEDOUT`) instead
/// of holding a softirq, and an RCU read section, for longer. Only the spin
/// counts, not wall time: a caller preempted between words, or a slow
/// emulator, is not refused for it.
pub(crate) const PIO_BUDGET_NS: u64 = 10_000_000;

/// Spins until the shared clock reads at least `deadline_ns`: a CPU held by
/// an uncached read until the bus answers. Any context; callers bound the
/// deadline (see [`PIO_BUDGET_NS`]).
pub(crate) fn spin_until(deadline_ns: u64) {
    while now_ns() < deadline_ns {
        cpu_relax();
    }
}

/// A modelled bus (`/sys/kernel/config/pnic_bus/NAME`). Its parameters may
/// change while NICs use it; each transaction reads them once.
pub(crate) struct Bus {
    bandwidth_bps: AtomicU64,
    arbitration_ns: AtomicU64,
    pio_read_ns: AtomicU64,
    /// The time the bus is next free.
    next_free: AtomicU64,
    pub(crate) traffic: Traffic,
}

impl Bus {
    pub(crate) fn new(p: BusParams) -> Self {
        Bus {
            bandwidth_bps: AtomicU64::new(p.bandwidth_bps),
            arbitration_ns: AtomicU64::new(p.arbitration_ns),
            pio_read_ns: AtomicU64::new(p.pio_read_ns),
            next_free: AtomicU64::new(0),
            traffic: Traffic::default(),
        }
    }

    pub(crate) fn params(&self) -> BusParams {
        BusParams {
            bandwidth_bps: self.bandwidth_bps.load(Relaxed),
            arbitration_ns: self.arbitration_ns.load(Relaxed),
            pio_read_ns: self.pio_read_ns.load(Relaxed),
        }
    }

    /// Sets the parameters: bandwidth from 1 MB/s to 1 TB/s, arbitration and
    /// PIO latency up to 1 ms (`EINVAL` otherwise: a slower bus would hold a
    /// frame's transfer for minutes). Reservations already made beyond now
    /// are given up, so a bus set too slow by mistake recovers at once.
    pub(crate) fn set_params(&self, p: BusParams) -> Result {
        if !(1_000_000..=1_000_000_000_000).contains(&p.bandwidth_bps)
            || p.arbitration_ns > 1_000_000
            || p.pio_read_ns > 1_000_000
        {
            return Err(EINVAL);
        }
        self.bandwidth_bps.store(p.bandwidth_bps, Relaxed);
        self.arbitration_ns.store(p.arbitration_ns, Relaxed);
        self.pio_read_ns.store(p.pio_read_ns, Relaxed);
        self.next_free.fetch_min(now_ns(), Relaxed);
        Ok(())
    }

    /// Reserves the bus for a transaction of `bytes` ready at `ready_ns`;
    /// returns when it starts and when it ends. Any context; never waits.
    pub(crate) fn reserve(&self, kind: Kind, bytes: u64, ready_ns: u64, scale: u64) -> (u64, u64) {
        self.reserve_for(kind, bytes, self.params().duration_ns(bytes, scale), ready_ns)
    }

    /// As [`Bus::reserve`], for a PIO read: the bus is held until the device
    /// answers, `pio_read_ns` more. `None`, with nothing reserved or
    /// counted, if the answer would come after `deadline_ns`.
    pub(crate) fn reserve_pio_read(&self, bytes: u64, ready_ns: u64, scale: u64, deadline_ns: u64) -> Option<(u64, u64)> {
        let p = self.params();
        let dur = p.duration_ns(bytes, scale).saturating_add(scale.saturating_mul(p.pio_read_ns));
        let mut cur = self.next_free.load(Relaxed);
        loop {
            let start = cur.max(ready_ns);
            let end = start.saturating_add(dur);
            if end > deadline_ns {
                return None;
            }
            match self.next_free.compare_exchange_weak(cur, end, Relaxed, Relaxed) {
                Ok(_) => {
                    self.traffic.count(Kind::Pio, bytes, dur, start - ready_ns);
                    return Some((start, end));
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Identifies the bus to a peer on another driver's terms (an address
    /// unique to it).
    pub(crate) fn interconnect(&self) -> usize {
        self as *const Bus as usize
    }

    fn reserve_for(&self, kind: Kind, bytes: u64, dur: u64, ready_ns: u64) -> (u64, u64) {
        let mut cur = self.next_free.load(Relaxed);
        loop {
            let start = cur.max(ready_ns);
            let end = start.saturating_add(dur);
            match self.next_free.compare_exchange_weak(cur, end, Relaxed, Relaxed) {
                Ok(_) => {
                    self.traffic.count(kind, bytes, dur, start - ready_ns);
                    return (start, end);
                }
                Err(now) => cur = now,
            }
        }
    }
}

#[kunit_tests(pnic_bus)]
mod tests {
    use super::*;

    fn bus() -> Result<Bus> {
        Ok(Bus::new(BusParams::default()))
    }

    #[test]
    fn a_transfer_of_n_bytes_is_one_transaction_of_n_bytes_and_its_bus_time() -> Result {
        let b = bus()?;
        let now = now_ns();
        let (_, end) = b.reserve(Kind::DeviceToHost, 1500, now, 1);
        let c = &b.traffic.0[Kind::DeviceToHost as usize];
        assert_eq!(c.transactions.load(Relaxed), 1);
        assert_eq!(c.bytes.load(Relaxed), 1500);
        // 240 ns + 1500 B at 133 333 333 B/s (11 250.003 ns, rounded up).
        assert_eq!(b.params().duration_ns(1500, 1), 11_491);
        assert!(end - now >= 11_491);
        assert_eq!(c.busy_ns.load(Relaxed), 11_491);
        // The other kinds saw nothing.
        assert_eq!(b.traffic.0[Kind::HostToDevice as usize].transactions.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn transactions_are_served_one_after_another() -> Result {
        let b = bus()?;
        let now = now_ns();
        let (_, first) = b.reserve(Kind::HostToDevice, 9000, now, 1);
        let (_, second) = b.reserve(Kind::DeviceToHost, 9000, now, 1);
        let dur = b.params().duration_ns(9000, 1);
        assert_eq!(second - first, dur);
        // The second waited for the whole first one.
        assert_eq!(b.traffic.0[Kind::DeviceToHost as usize].wait_ns.load(Relaxed), first - now);
        Ok(())
    }

    #[test]
    fn idle_time_is_not_banked() -> Result {
        let b = bus()?;
        let (_, end) = b.reserve(Kind::Pio, 4, 1_000, 1);
        // Ready long after the bus went idle: starts when ready, not earlier.
        let (start, later) = b.reserve(Kind::Pio, 4, end + 1_000_000, 1);
        assert_eq!(start, end + 1_000_000);
        assert_eq!(later, end + 1_000_000 + b.params().duration_ns(4, 1));
        Ok(())
    }

    #[test]
    fn parameters_out_of_range_are_refused_and_a_slow_setting_is_given_up() -> Result {
        let b = bus()?;
        let slow = BusParams { bandwidth_bps: 1_000_000, ..BusParams::default() };
        for bad in [
            BusParams { bandwidth_bps: 999_999, ..BusParams::default() },
            BusParams { arbitration_ns: 1_000_001, ..BusParams::default() },
            BusParams { pio_read_ns: u64::MAX, ..BusParams::default() },
        ] {
            assert_eq!(b.set_params(bad), Err(EINVAL));
        }
        b.set_params(slow)?;
        // 9 MB at 1 MB/s holds the bus for 9 s ...
        let (_, held) = b.reserve(Kind::HostToDevice, 9_000_000, now_ns(), 1);
        assert!(held > now_ns() + 8_000_000_000);
        // ... until the parameters change: the next transaction starts now.
        b.set_params(BusParams::default())?;
        let now = now_ns();
        let (start, _) = b.reserve(Kind::HostToDevice, 1500, now, 1);
        assert_eq!(start, now);
        Ok(())
    }

    #[test]
    fn the_scale_multiplies_every_duration() {
        let p = BusParams::default();
        assert_eq!(p.duration_ns(1500, 8), 8 * p.duration_ns(1500, 1));
        assert_eq!(p.duration_ns(0, 1), 240);
    }

    #[test]
    fn waiting_lasts_at_least_until_the_deadline() {
        let deadline = now_ns() + 200_000;
        wait_until(deadline, &AtomicBool::new(false));
        assert!(now_ns() >= deadline);
        // An abort ends the wait at once.
        let far = now_ns() + 60_000_000_000;
        wait_until(far, &AtomicBool::new(true));
        assert!(now_ns() < far);
    }
}
