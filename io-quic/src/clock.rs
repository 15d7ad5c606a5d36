//! The mapping between tokio's clock and the core's [`Instant`].
//!
//! The core counts microseconds from an epoch its caller chooses. Each
//! server or client uses the tokio instant it starts at as that epoch and
//! converts every input time and every deadline through it. A deadline the
//! core computes as "previous tick + 20 ms" therefore stays exact, and the
//! mixer clock does not drift.

use std::time::Duration;

use voicemcu_core::time::Instant;

const FAR_FUTURE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: tokio::time::Instant,
}

impl Clock {
    /// Creates a clock whose epoch is now.
    pub(crate) fn start() -> Clock {
        Clock {
            epoch: tokio::time::Instant::now(),
        }
    }

    /// Returns the current time on the core's scale.
    pub(crate) fn now(&self) -> Instant {
        self.core_instant(tokio::time::Instant::now())
    }

    pub(crate) fn core_instant(&self, at: tokio::time::Instant) -> Instant {
        let micros = at.saturating_duration_since(self.epoch).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Converts a core deadline. One beyond what tokio can represent
    /// becomes a day from the epoch, which is as good as never.
    pub(crate) fn tokio_instant(&self, at: Instant) -> tokio::time::Instant {
        self.epoch
            .checked_add(at.since_epoch())
            .unwrap_or_else(|| self.epoch + FAR_FUTURE)
    }
}

/// Sleeps until `deadline`, or forever when there is none.
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_roundtrip() {
        let clock = Clock::start();
        let core = Instant::from_millis(1234);
        assert_eq!(clock.core_instant(clock.tokio_instant(core)), core);
        assert_eq!(
            clock.core_instant(clock.epoch - Duration::from_secs(1)),
            Instant::ZERO
        );
    }
}
