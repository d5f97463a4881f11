//! When to restart a crashed server: the first crash in a row at once, then SPEC §3's backoff
//! (1 s doubling to 60 s, ±10 %), which starts over after 60 s healthy; 5 crashes in 5 minutes
//! is a crash loop. And the history `status` shows, which outlives openclawd in `ollama.json`.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::ollama::record::RestartHistory;

/// Healthy this long → the next crash is a first one again.
pub(super) const HEALTHY_RESETS_BACKOFF: Duration = Duration::from_secs(60);

pub(super) struct Restarts {
    backoff: Backoff,
    /// Crashes in a row since the server was last healthy for a minute.
    streak: u32,
    crashes: CrashWindow,
    /// A server of ours ran (or one was adopted) before: the next spawn counts as a restart.
    pub(super) started_once: bool,
    pub(super) history: RestartHistory,
}

/// The restart after a crash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CrashRestart {
    pub(super) delay: Duration,
    /// 1 for the first crash in a row.
    pub(super) attempt: u32,
    pub(super) looping: bool,
}

impl Restarts {
    pub(super) fn new(backoff: Backoff) -> Restarts {
        Restarts {
            backoff,
            streak: 0,
            crashes: CrashWindow::new(),
            started_once: false,
            history: RestartHistory::default(),
        }
    }

    pub(super) fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// Counts a crash at `now`: the first in a row restarts at once, later ones back off.
    pub(super) fn on_crash(&mut self, now: Instant, reason: String) -> CrashRestart {
        self.crashes.record(now);
        let delay = if self.streak == 0 {
            Duration::ZERO
        } else {
            self.backoff.next_delay()
        };
        self.streak += 1;
        self.history.last_reason = Some(reason);
        CrashRestart {
            delay,
            attempt: self.streak,
            looping: self.crashes.is_loop(now),
        }
    }

    /// The delay before retrying a start that failed for a reason other than a crash (the
    /// binary, the log file, the port): the backoff from its start.
    pub(super) fn retry_delay(&mut self) -> Duration {
        self.backoff.next_delay()
    }

    /// A new binary deserves an immediate try.
    pub(super) fn reset_backoff(&mut self) {
        self.backoff.reset();
    }

    /// The attempt a spawn now makes: `None` for the first start, `Some((attempt, looping))`
    /// for a restart (attempt 0 when openclawd decided it, not a crash). Counts the restart.
    pub(super) fn on_spawn(&mut self, now: Instant) -> Option<(u32, bool)> {
        if !std::mem::replace(&mut self.started_once, true) {
            return None;
        }
        self.count_restart(None);
        Some((self.streak, self.crashes.is_loop(now)))
    }

    /// Records a restart (ours, or one a manager did for us).
    pub(super) fn count_restart(&mut self, reason: Option<String>) {
        self.history.restarts += 1;
        if reason.is_some() {
            self.history.last_reason = reason;
        }
        self.history.last_at = Some(crate::ollama::rfc3339(SystemTime::now()));
    }

    /// Healthy for `healthy_for`: after a minute, the next crash is a first one again.
    pub(super) fn on_healthy(&mut self, healthy_for: Duration) {
        if healthy_for >= HEALTHY_RESETS_BACKOFF {
            self.streak = 0;
            self.backoff.reset();
        }
    }
}

/// Crashes within a sliding window; `threshold` or more means a crash loop.
#[derive(Debug)]
pub(crate) struct CrashWindow {
    times: VecDeque<Instant>,
    window: Duration,
    threshold: usize,
}

impl CrashWindow {
    /// SPEC §3: 5 crashes in 5 minutes.
    pub(crate) fn new() -> CrashWindow {
        CrashWindow {
            times: VecDeque::new(),
            window: Duration::from_secs(300),
            threshold: 5,
        }
    }

    pub(crate) fn record(&mut self, now: Instant) {
        self.times.push_back(now);
        self.prune(now);
    }

    pub(crate) fn is_loop(&mut self, now: Instant) -> bool {
        self.prune(now);
        self.times.len() >= self.threshold
    }

    fn prune(&mut self, now: Instant) {
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Schedule;

    fn no_jitter() -> Backoff {
        Backoff::new(
            Schedule::Doubling {
                initial: Duration::from_secs(1),
                cap: Duration::from_secs(60),
            },
            0.0,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_crash_restarts_at_once_and_the_next_ones_back_off() {
        let mut r = Restarts::new(no_jitter());
        let delays: Vec<u64> = (0..9)
            .map(|_| r.on_crash(Instant::now(), "x".into()).delay.as_secs())
            .collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_minute_healthy_makes_the_next_crash_a_first_one() {
        let mut r = Restarts::new(no_jitter());
        assert_eq!(r.on_crash(Instant::now(), "a".into()).attempt, 1);
        let second = r.on_crash(Instant::now(), "b".into());
        assert_eq!((second.attempt, second.delay.as_secs()), (2, 1));
        r.on_healthy(Duration::from_secs(59));
        let third = r.on_crash(Instant::now(), "c".into());
        assert_eq!((third.attempt, third.delay.as_secs()), (3, 2));
        r.on_healthy(Duration::from_secs(60));
        let fresh = r.on_crash(Instant::now(), "d".into());
        assert_eq!((fresh.attempt, fresh.delay), (1, Duration::ZERO));
        assert_eq!(r.history.last_reason.as_deref(), Some("d"));
    }

    #[tokio::test(start_paused = true)]
    async fn spawns_after_the_first_count_as_restarts() {
        let mut r = Restarts::new(no_jitter());
        assert_eq!(r.on_spawn(Instant::now()), None);
        assert_eq!(r.history.restarts, 0);
        r.on_crash(Instant::now(), "killed".into());
        assert_eq!(r.on_spawn(Instant::now()), Some((1, false)));
        assert_eq!(r.history.restarts, 1);
        assert!(r.history.last_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn five_crashes_within_five_minutes_is_a_crash_loop() {
        let mut w = CrashWindow::new();
        for _ in 0..4 {
            w.record(Instant::now());
            tokio::time::advance(Duration::from_secs(30)).await;
        }
        assert!(!w.is_loop(Instant::now()), "4 crashes are not a loop");
        w.record(Instant::now());
        assert!(w.is_loop(Instant::now()), "the 5th within 5 min is");
    }

    #[tokio::test(start_paused = true)]
    async fn crashes_older_than_the_window_fall_out() {
        let mut w = CrashWindow::new();
        for _ in 0..5 {
            w.record(Instant::now());
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        assert!(w.is_loop(Instant::now()));
        // The first crash was 50 s ago; 4 min 10 s + later it is 5 min old.
        tokio::time::advance(Duration::from_secs(250)).await;
        assert!(
            !w.is_loop(Instant::now()),
            "the oldest crash left the window"
        );
        w.record(Instant::now());
        assert!(w.is_loop(Instant::now()), "a new crash makes 5 again");
    }

    #[tokio::test(start_paused = true)]
    async fn crashes_spread_wider_than_the_window_never_loop() {
        let mut w = CrashWindow::new();
        for _ in 0..20 {
            w.record(Instant::now());
            assert!(!w.is_loop(Instant::now()));
            // 76 s apart: at most 4 fit in any 5-minute window.
            tokio::time::advance(Duration::from_secs(76)).await;
        }
    }
}
