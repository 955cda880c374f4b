// SPDX-License-Identifier: GPL-2.0

//! How long the server takes to answer, and so when a request whose answer
//! has not come is presumed lost: the smoothed round-trip time and its
//! variation, as TCP keeps them (RFC 6298), in milliseconds.
//!
//! The personality resends a request once it has waited this long (see
//! [`super::ledger::Ledger::resend_overdue`]), well before the driver's
//! response timer: a frame lost on the link then costs a fraction of a
//! second instead of the whole timeout, which matters most while the block
//! layer waits for every request to finish (a queue freeze).

/// The shortest retransmission timeout: TCP's minimum, so that a lost frame
/// costs EBD no more than it costs a TCP-based block device, and so that
/// the scheduling noise of a slow machine is not taken for loss.
pub const MIN_RTO_MS: u64 = 200;

/// The timeout before any answer has been timed.
pub const INITIAL_RTO_MS: u64 = 1000;

/// Each resend doubles the timeout, up to this many times, until an answer
/// to a request sent once gives a sample again (RFC 6298 §5.5): a server
/// slower than the estimate would otherwise have every request resent, and
/// the resent ones never give a sample (Karn's rule).
pub const MAX_BACKOFF: u32 = 4;

/// The smoothed round-trip time of a server's answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    /// `None` until the first sample; then the smoothed time and its mean
    /// deviation.
    state: Option<(u64, u64)>,
    /// Doublings of the timeout since the last sample.
    backoff: u32,
}

impl RttEstimator {
    /// No sample yet.
    pub const fn new() -> Self {
        RttEstimator { state: None, backoff: 0 }
    }

    /// Adds the time a request sent once (never resent: Karn's rule) took
    /// to get its first answer.
    pub fn sample(&mut self, rtt_ms: u64) {
        self.backoff = 0;
        self.state = Some(match self.state {
            None => (rtt_ms, rtt_ms / 2),
            Some((srtt, rttvar)) => {
                let rttvar = (3 * rttvar + srtt.abs_diff(rtt_ms)) / 4;
                let srtt = (7 * srtt + rtt_ms) / 8;
                (srtt, rttvar)
            }
        });
    }

    /// The smoothed round-trip time, once sampled.
    pub fn srtt_ms(&self) -> Option<u64> {
        self.state.map(|(srtt, _)| srtt)
    }

    /// Requests were resent: the timeout doubles (up to [`MAX_BACKOFF`]
    /// times) until the next sample.
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    /// How long to wait for an answer before resending: the smoothed time
    /// plus four deviations, doubled for each back-off, at least
    /// [`MIN_RTO_MS`] and at most `max_ms` (itself raised to [`MIN_RTO_MS`]
    /// if below it).
    pub fn rto_ms(&self, max_ms: u64) -> u64 {
        let rto = match self.state {
            None => INITIAL_RTO_MS,
            Some((srtt, rttvar)) => srtt.saturating_add(rttvar.saturating_mul(4)),
        };
        rto.saturating_mul(1 << self.backoff).clamp(MIN_RTO_MS, max_ms.max(MIN_RTO_MS))
    }
}
