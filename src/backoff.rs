//! The one backoff primitive: Ollama restarts (1 s doubling to 60 s, ±10 % jitter) and model
//! cooldowns (30 s, 60 s, 5 min) are both a [`Backoff`] with a different [`Schedule`].

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `initial`, doubled after each failure, never above `cap`.
    Doubling { initial: Duration, cap: Duration },
    /// Fixed steps; the last one repeats.
    Steps(Vec<Duration>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    schedule: Schedule,
    /// Relative jitter, e.g. 0.1 for ±10 %.
    jitter: f64,
    failures: u32,
}

impl Backoff {
    pub fn new(schedule: Schedule, jitter: f64) -> Backoff {
        Backoff {
            schedule,
            jitter: jitter.clamp(0.0, 1.0),
            failures: 0,
        }
    }

    /// SPEC §3: 1 s doubling to 60 s, ±10 % jitter.
    pub fn ollama_restart() -> Backoff {
        Backoff::new(
            Schedule::Doubling {
                initial: Duration::from_secs(1),
                cap: Duration::from_secs(60),
            },
            0.1,
        )
    }

    /// SPEC §5: 30 s, then 60 s, then 5 min.
    pub fn model_cooldown() -> Backoff {
        Backoff::new(
            Schedule::Steps(vec![
                Duration::from_secs(30),
                Duration::from_secs(60),
                Duration::from_secs(300),
            ]),
            0.0,
        )
    }

    /// The un-jittered delay for the next failure, without recording it.
    pub fn peek_base(&self) -> Duration {
        match &self.schedule {
            Schedule::Doubling { initial, cap } => {
                let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
                initial.saturating_mul(factor).min(*cap)
            }
            Schedule::Steps(steps) => {
                let i = (self.failures as usize).min(steps.len().saturating_sub(1));
                steps.get(i).copied().unwrap_or_default()
            }
        }
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.peek_base();
        self.failures = self.failures.saturating_add(1);
        if self.jitter == 0.0 {
            return base;
        }
        let j = rand::thread_rng().gen_range(-self.jitter..=self.jitter);
        base.mul_f64(1.0 + j)
    }

    /// Failures recorded since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the first step (after a healthy period, or a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_restart_doubles_to_a_sixty_second_cap_within_jitter() {
        let mut b = Backoff::ollama_restart();
        let expected = [1u64, 2, 4, 8, 16, 32, 60, 60, 60];
        for secs in expected {
            let d = b.next_delay().as_secs_f64();
            let want = secs as f64;
            assert!(
                d >= want * 0.9 - 1e-9 && d <= want * 1.1 + 1e-9,
                "{d} not within 10% of {want}"
            );
        }
        b.reset();
        assert_eq!(b.peek_base(), Duration::from_secs(1));
    }

    #[test]
    fn model_cooldown_steps_then_repeats_the_last() {
        let mut b = Backoff::model_cooldown();
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, vec![30, 60, 300, 300, 300]);
    }

    #[test]
    fn doubling_never_overflows() {
        let mut b = Backoff::new(
            Schedule::Doubling {
                initial: Duration::from_secs(1),
                cap: Duration::from_secs(60),
            },
            0.0,
        );
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }
}
