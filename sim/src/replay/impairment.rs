//! The impairment model: seeded packet loss in bursts and random delay on
//! one participant's audio datagrams.
//!
//! Loss follows a two-state Gilbert-Elliott chain. In the good state every
//! packet arrives and in the bad state every packet is lost. The chain
//! leaves the bad state with probability `1 / burst_len` per packet, so
//! bursts last `burst_len` packets on average, and enters it with the
//! probability that makes the long-run loss rate `loss_percent`. Each packet
//! that survives is delayed by a uniform random time from 0 to `jitter_ms`,
//! so packets can arrive out of order.
//!
//! Every random draw comes from a ChaCha8 generator seeded from the session
//! file, and each packet makes the same number of draws whatever happens to
//! it, so a seed always gives the same losses and delays.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// Largest `jitter_ms` accepted: a packet delayed longer is useless to a
/// jitter buffer a few frames deep.
pub const MAX_JITTER_MS: f64 = 2_000.0;

/// Largest `burst_len` accepted, in packets.
pub const MAX_BURST_LEN: f64 = 10_000.0;

/// `[participant.impairment]` as the session file writes it.
#[derive(Clone, Debug, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairmentSpec {
    /// Long-run share of packets lost, in percent.
    #[serde(default)]
    pub loss_percent: f64,
    /// Mean length of a loss burst, in 20 ms packets; 1 makes losses nearly
    /// independent.
    #[serde(default = "default_burst_len")]
    pub burst_len: f64,
    /// Largest extra delay of a packet, in milliseconds.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Seed of the random draws.
    #[serde(default)]
    pub seed: u64,
    /// Whether the mix the server sends to this participant is impaired
    /// too, with the same settings and an independent random stream.
    #[serde(default)]
    pub downlink: bool,
}

fn default_burst_len() -> f64 {
    1.0
}

impl Default for ImpairmentSpec {
    /// A perfect link: no loss, no jitter.
    fn default() -> Self {
        ImpairmentSpec {
            loss_percent: 0.0,
            burst_len: default_burst_len(),
            jitter_ms: 0.0,
            seed: 0,
            downlink: false,
        }
    }
}

/// An impairment setting that cannot be modelled.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ImpairmentError {
    #[error("loss_percent {0} is outside 0 to 100")]
    Loss(f64),
    #[error("burst_len {0} is outside 1 to {MAX_BURST_LEN} packets")]
    BurstLen(f64),
    #[error("jitter_ms {0} is outside 0 to {MAX_JITTER_MS} ms")]
    Jitter(f64),
    #[error(
        "loss_percent {loss_percent} needs bursts of at least {min_burst_len:.2} packets on \
         average, but burst_len is {burst_len}; raise burst_len or lower loss_percent"
    )]
    BurstTooShort {
        loss_percent: f64,
        burst_len: f64,
        min_burst_len: f64,
    },
}

impl ImpairmentSpec {
    /// Checks every value against its range and the loss model's limits.
    pub fn check(&self) -> Result<(), ImpairmentError> {
        if !(0.0..=100.0).contains(&self.loss_percent) {
            return Err(ImpairmentError::Loss(self.loss_percent));
        }
        if !(1.0..=MAX_BURST_LEN).contains(&self.burst_len) {
            return Err(ImpairmentError::BurstLen(self.burst_len));
        }
        if !(0.0..=MAX_JITTER_MS).contains(&self.jitter_ms) {
            return Err(ImpairmentError::Jitter(self.jitter_ms));
        }
        // Entering the bad state takes a probability of loss / (1 - loss) /
        // burst_len per packet, which must not exceed 1. Total loss needs no
        // entry probability: the chain starts and stays in the bad state.
        let loss = self.loss_percent / 100.0;
        if loss < 1.0 {
            let min_burst_len = loss / (1.0 - loss);
            if self.burst_len < min_burst_len {
                return Err(ImpairmentError::BurstTooShort {
                    loss_percent: self.loss_percent,
                    burst_len: self.burst_len,
                    min_burst_len,
                });
            }
        }
        Ok(())
    }
}

/// Counters of one impaired direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Packets handed to the link.
    pub packets: u64,
    /// Packets the link dropped.
    pub lost: u64,
}

/// One direction of one participant's network.
#[derive(Debug)]
pub struct Link {
    rng: ChaCha8Rng,
    /// Probability of entering the bad state per packet.
    enter_bad: f64,
    /// Probability of leaving the bad state per packet.
    leave_bad: f64,
    in_bad: bool,
    max_jitter_micros: u64,
    stats: LinkStats,
}

impl Link {
    /// A link following `spec`, drawing from random stream `stream` of the
    /// spec's seed, so that links sharing a seed stay independent. `spec`
    /// must have passed [`ImpairmentSpec::check`].
    pub fn new(spec: &ImpairmentSpec, stream: u64) -> Link {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(stream);
        let loss = spec.loss_percent / 100.0;
        // Total loss starts in the bad state and never leaves it.
        let (enter_bad, leave_bad, in_bad) = if loss >= 1.0 {
            (1.0, 0.0, true)
        } else {
            let leave_bad = 1.0 / spec.burst_len;
            ((loss / (1.0 - loss) * leave_bad).min(1.0), leave_bad, false)
        };
        Link {
            rng,
            enter_bad,
            leave_bad,
            in_bad,
            max_jitter_micros: (spec.jitter_ms * 1000.0).round() as u64,
            stats: LinkStats::default(),
        }
    }

    /// Decides the fate of the next packet: `None` when it is lost, or the
    /// delay it arrives after.
    pub fn transmit(&mut self) -> Option<Duration> {
        let state_draw: f64 = self.rng.random();
        let delay_micros = self.rng.random_range(0..=self.max_jitter_micros);

        self.in_bad = if self.in_bad {
            state_draw >= self.leave_bad
        } else {
            state_draw < self.enter_bad
        };
        self.stats.packets += 1;
        if self.in_bad {
            self.stats.lost += 1;
            None
        } else {
            Some(Duration::from_micros(delay_micros))
        }
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(loss_percent: f64, burst_len: f64, jitter_ms: f64) -> ImpairmentSpec {
        ImpairmentSpec {
            loss_percent,
            burst_len,
            jitter_ms,
            seed: 42,
            downlink: false,
        }
    }

    /// Sends `packets` packets and returns which were lost.
    fn losses(link: &mut Link, packets: usize) -> Vec<bool> {
        (0..packets).map(|_| link.transmit().is_none()).collect()
    }

    #[test]
    fn loss_rate_and_burst_length_match_spec() {
        let mut link = Link::new(&spec(10.0, 4.0, 0.0), 0);
        let lost = losses(&mut link, 200_000);
        let rate = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
        assert!((rate - 0.10).abs() < 0.01, "loss rate {rate}");

        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count();
        let mean_burst = lost.iter().filter(|&&l| l).count() as f64 / bursts as f64;
        assert!((mean_burst - 4.0).abs() < 0.3, "mean burst {mean_burst}");
    }

    #[test]
    fn same_seed_gives_same_losses() {
        let a = losses(&mut Link::new(&spec(20.0, 2.0, 30.0), 3), 1_000);
        let b = losses(&mut Link::new(&spec(20.0, 2.0, 30.0), 3), 1_000);
        let other_stream = losses(&mut Link::new(&spec(20.0, 2.0, 30.0), 4), 1_000);
        assert_eq!(a, b);
        assert_ne!(a, other_stream);
    }

    #[test]
    fn jitter_stays_within_bound() {
        let mut link = Link::new(&spec(0.0, 1.0, 25.0), 0);
        for _ in 0..1_000 {
            let delay = link.transmit().expect("no loss configured");
            assert!(delay <= Duration::from_millis(25), "{delay:?}");
        }
    }

    #[test]
    fn total_loss_drops_everything() {
        let mut link = Link::new(&spec(100.0, 1.0, 0.0), 0);
        assert!(losses(&mut link, 100).iter().all(|&l| l));
        assert_eq!(
            link.stats(),
            LinkStats {
                packets: 100,
                lost: 100
            }
        );
    }

    #[test]
    fn impossible_settings_rejected() {
        assert_eq!(
            spec(-1.0, 1.0, 0.0).check(),
            Err(ImpairmentError::Loss(-1.0))
        );
        assert_eq!(
            spec(5.0, 0.5, 0.0).check(),
            Err(ImpairmentError::BurstLen(0.5))
        );
        assert_eq!(
            spec(5.0, 1.0, -3.0).check(),
            Err(ImpairmentError::Jitter(-3.0))
        );
        assert!(matches!(
            spec(60.0, 1.0, 0.0).check(),
            Err(ImpairmentError::BurstTooShort { .. })
        ));
        assert_eq!(spec(50.0, 1.0, 0.0).check(), Ok(()));
        assert!(matches!(
            spec(f64::NAN, 1.0, 0.0).check(),
            Err(ImpairmentError::Loss(_))
        ));
    }
}
