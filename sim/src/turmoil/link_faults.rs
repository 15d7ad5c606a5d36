//! Faults applied to every datagram a simulated host sends: independent
//! loss, bursty loss and duplication.
//!
//! Bursty loss follows the Gilbert-Elliott model: the link is in a good or a
//! bad state, each datagram is lost with the loss probability of the
//! current state, and after each datagram the state changes with the
//! transition probability out of it. Real access links (Wi-Fi, cellular)
//! lose packets in runs like this rather than one at a time, and runs are
//! what strain a jitter buffer and packet loss concealment (PLC).
//!
//! Every draw comes from a ChaCha8 RNG seeded per socket from the run's
//! seed, so the same seed loses and duplicates the same datagrams.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The parameters of a two-state Gilbert-Elliott loss model. All four are
/// probabilities from 0 to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability, per datagram in the good state, of moving to the bad one.
    pub good_to_bad: f64,
    /// Probability, per datagram in the bad state, of moving to the good one.
    pub bad_to_good: f64,
    /// Loss probability in the good state.
    pub loss_in_good: f64,
    /// Loss probability in the bad state.
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// Returns the long-run fraction of datagrams lost.
    pub fn mean_loss(&self) -> f64 {
        let leaving = self.good_to_bad + self.bad_to_good;
        if leaving <= 0.0 {
            return self.loss_in_good;
        }
        let bad_share = self.good_to_bad / leaving;
        bad_share * self.loss_in_bad + (1.0 - bad_share) * self.loss_in_good
    }

    /// Returns the mean number of datagrams sent per stay in the bad state.
    pub fn mean_bad_run(&self) -> f64 {
        if self.bad_to_good <= 0.0 {
            f64::INFINITY
        } else {
            1.0 / self.bad_to_good
        }
    }
}

/// How datagrams are lost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossModel {
    /// Nothing is lost.
    None,
    /// Each datagram is lost with this probability, independently.
    Independent(f64),
    /// Datagrams are lost in bursts.
    Bursty(GilbertElliott),
}

impl LossModel {
    /// Returns the long-run fraction of datagrams lost.
    pub fn mean_loss(&self) -> f64 {
        match self {
            LossModel::None => 0.0,
            LossModel::Independent(probability) => *probability,
            LossModel::Bursty(model) => model.mean_loss(),
        }
    }
}

/// The faults applied to each datagram a host sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SendFaults {
    pub loss: LossModel,
    /// The probability, from 0 to 1, that a datagram that is not lost is
    /// sent twice. The copies draw their latencies independently, so the
    /// second may arrive first.
    pub duplicate: f64,
}

impl SendFaults {
    /// No loss and no duplication.
    pub const NONE: SendFaults = SendFaults {
        loss: LossModel::None,
        duplicate: 0.0,
    };

    /// Returns whether these faults ever change a datagram's fate.
    pub fn is_active(&self) -> bool {
        self.loss != LossModel::None || self.duplicate > 0.0
    }
}

/// The running state of [`SendFaults`] on one socket.
#[derive(Debug)]
pub(crate) struct FaultState {
    faults: SendFaults,
    rng: ChaCha8Rng,
    /// Whether the Gilbert-Elliott chain is in its bad state.
    bad: bool,
}

impl FaultState {
    pub fn new(faults: SendFaults, seed: u64) -> FaultState {
        FaultState {
            faults,
            rng: ChaCha8Rng::seed_from_u64(seed),
            bad: false,
        }
    }

    /// Decides the fate of the next datagram and returns how many copies of
    /// it to send: 0 (lost), 1, or 2 (duplicated).
    pub fn copies_of_next(&mut self) -> usize {
        let lost = match self.faults.loss {
            LossModel::None => false,
            LossModel::Independent(probability) => self.draw(probability),
            LossModel::Bursty(model) => {
                let loss = if self.bad {
                    model.loss_in_bad
                } else {
                    model.loss_in_good
                };
                let lost = self.draw(loss);
                let switch = if self.bad {
                    model.bad_to_good
                } else {
                    model.good_to_bad
                };
                if self.draw(switch) {
                    self.bad = !self.bad;
                }
                lost
            }
        };
        if lost {
            return 0;
        }
        if self.faults.duplicate > 0.0 && self.draw(self.faults.duplicate) {
            2
        } else {
            1
        }
    }

    fn draw(&mut self, probability: f64) -> bool {
        self.rng.random_bool(probability.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BURSTY: GilbertElliott = GilbertElliott {
        good_to_bad: 0.02,
        bad_to_good: 0.25,
        loss_in_good: 0.0,
        loss_in_bad: 1.0,
    };

    fn fates(faults: SendFaults, seed: u64, count: usize) -> Vec<usize> {
        let mut state = FaultState::new(faults, seed);
        (0..count).map(|_| state.copies_of_next()).collect()
    }

    #[test]
    fn bursty_loss_matches_its_mean_and_comes_in_runs() {
        let faults = SendFaults {
            loss: LossModel::Bursty(BURSTY),
            duplicate: 0.0,
        };
        let fates = fates(faults, 3, 200_000);
        let lost = fates.iter().filter(|copies| **copies == 0).count();
        let measured = lost as f64 / fates.len() as f64;
        assert!(
            (measured - BURSTY.mean_loss()).abs() < 0.01,
            "measured loss {measured}, model mean {}",
            BURSTY.mean_loss()
        );

        let runs = fates
            .split(|copies| *copies != 0)
            .filter(|run| !run.is_empty())
            .count();
        let mean_run = lost as f64 / runs as f64;
        assert!(
            (mean_run - BURSTY.mean_bad_run()).abs() < 0.3,
            "mean loss run {mean_run}, model {}",
            BURSTY.mean_bad_run()
        );
    }

    #[test]
    fn duplication_sends_a_fraction_twice() {
        let faults = SendFaults {
            loss: LossModel::None,
            duplicate: 0.2,
        };
        let fates = fates(faults, 9, 100_000);
        let doubled = fates.iter().filter(|copies| **copies == 2).count();
        assert!(fates.iter().all(|copies| *copies >= 1));
        assert!((doubled as f64 / 100_000.0 - 0.2).abs() < 0.01, "{doubled}");
    }

    #[test]
    fn same_seed_gives_same_fates() {
        let faults = SendFaults {
            loss: LossModel::Bursty(BURSTY),
            duplicate: 0.1,
        };
        assert_eq!(fates(faults, 5, 1000), fates(faults, 5, 1000));
        assert_ne!(fates(faults, 5, 1000), fates(faults, 6, 1000));
    }
}
