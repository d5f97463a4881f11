//! The in-flight gauge: requests the gateway has open to the supervised Ollama. A restart
//! openclawd decides itself (an upgrade, a config change) first waits, bounded, until it reads
//! zero, so no stream is cut by our own doing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Counts requests in flight to one Ollama. Cloning shares the count.
#[derive(Debug, Clone)]
pub struct InFlight {
    count: Arc<watch::Sender<usize>>,
}

/// One request in flight; dropping it (however the request ends) leaves the count.
#[must_use = "a request counts as in flight only while its guard lives"]
#[derive(Debug)]
pub struct InFlightGuard {
    count: Arc<watch::Sender<usize>>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight::new()
    }
}

impl InFlight {
    pub fn new() -> InFlight {
        InFlight {
            count: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Counts a request until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard {
        self.count.send_modify(|n| *n += 1);
        InFlightGuard {
            count: Arc::clone(&self.count),
        }
    }

    /// Requests in flight now.
    pub fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until no request is in flight, at most `limit`. True when it got there.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let mut rx = self.count.subscribe();
        let idle = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
        matches!(idle, Ok(Ok(_)))
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_at_once_when_nothing_is_in_flight() {
        let gauge = InFlight::new();
        let start = tokio::time::Instant::now();
        assert!(gauge.wait_idle(Duration::from_secs(30)).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_last_guard_to_drop() {
        let gauge = InFlight::new();
        let a = gauge.enter();
        let b = gauge.clone().enter();
        assert_eq!(gauge.count(), 2);
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(a);
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(b);
        });
        assert!(gauge.wait_idle(Duration::from_secs(30)).await);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(gauge.count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_bound() {
        let gauge = InFlight::new();
        let _stuck = gauge.enter();
        let start = tokio::time::Instant::now();
        assert!(!gauge.wait_idle(Duration::from_secs(30)).await);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        assert_eq!(gauge.count(), 1);
    }
}
