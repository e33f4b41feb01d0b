//! Reconnect delays: exponential, capped, with jitter so a fleet does not reconnect in lock step.

use std::time::Duration;

/// Reconnect timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Delay before the first retry (before jitter). Default 250 ms: a
    /// controller restart is usually over in a second or two.
    pub initial: Duration,
    /// Upper bound of any delay. Default 15 s: with equal jitter an agent
    /// retries every 7.5–15 s during a long outage, so a fleet is back well
    /// within 30 s of the controller's return, while 1000 agents cost the
    /// down controller under 150 refused handshakes a second.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(15),
        }
    }
}

/// Exponential backoff with "equal jitter": each delay is half the
/// exponential step plus a random share of the other half, so agents spread
/// out but none retries sooner than half the step.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Self { config, attempt: 0 }
    }

    /// Forgets earlier failures (after a connection got through).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay; `random` is any uniformly random number.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let step = self
            .config
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.config.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        let half_ms = half.as_millis() as u64;
        let jitter = if half_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(random % (half_ms + 1))
        };
        half + jitter
    }
}

/// A random number for jitter from the system CSPRNG.
pub(crate) fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    // Jitter is not security-relevant; a failing RNG just means no jitter.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_jitter_bounds() {
        let config = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let mut b = Backoff::new(config);
        let mut steps = Vec::new();
        for i in 0..10 {
            let step = (config.initial * (1 << i)).min(config.max);
            let low = b.clone().next_delay(0);
            let high = b.clone().next_delay(u64::MAX - 1);
            let d = b.next_delay(random_u64());
            assert!(low >= step / 2 - Duration::from_millis(1), "{i}: {low:?}");
            assert!(high <= step, "{i}: {high:?} > {step:?}");
            assert!(d >= low && d <= step, "{i}: {d:?}");
            steps.push(step);
        }
        assert_eq!(*steps.last().unwrap(), config.max);
        b.reset();
        assert!(b.next_delay(u64::MAX) <= config.initial);
    }

    #[test]
    fn jitter_spreads_agents_apart() {
        let mut delays: Vec<_> = (0..50)
            .map(|_| {
                let mut b = Backoff::new(BackoffConfig::default());
                b.next_delay(random_u64());
                b.next_delay(random_u64())
            })
            .collect();
        delays.sort();
        delays.dedup();
        assert!(delays.len() > 10, "only {} distinct delays", delays.len());
    }
}
