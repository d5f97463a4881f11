//! Holding for our own Ollama (SPEC §5 "Transitions"): a request whose next model is served by
//! the supervised Ollama while it is starting or restarting waits for it — up to the request's
//! hold budget — instead of failing over to the cloud for a blip openclawd caused and is fixing.
//! A crash loop, a stopped or an unreachable Ollama is not a transition: no hold.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::ollama::{OllamaState, OllamaStatus};

/// What a model on the supervised Ollama can expect now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OllamaReadiness {
    /// Not the supervised Ollama, or it is running.
    Ready,
    /// The supervised Ollama cannot answer: why, for the attempt list.
    Down(String),
    /// It is still starting or restarting and this request's hold budget is spent: why. A
    /// request that fails for this says when to retry.
    Restarting(String),
}

/// The hold budget one request has left: every wait of the request draws on it.
#[derive(Debug)]
pub struct HoldBudget {
    left: Duration,
}

impl HoldBudget {
    pub fn new(total: Duration) -> HoldBudget {
        HoldBudget { left: total }
    }
}

fn serves(status: &OllamaStatus, base_url: &str) -> bool {
    status.base_url.trim_end_matches('/') == base_url.trim_end_matches('/')
}

fn in_transition(state: OllamaState) -> bool {
    matches!(state, OllamaState::Starting | OllamaState::Restarting)
}

fn down(state: OllamaState) -> String {
    format!("Ollama is not running (state {})", state.as_str())
}

/// Waits, if `base_url` is the supervised Ollama and it is in a transition, until it runs or
/// the budget is spent.
pub async fn wait_for_ollama(
    ollama: &watch::Receiver<OllamaStatus>,
    base_url: &str,
    budget: &mut HoldBudget,
    metrics: &Metrics,
) -> OllamaReadiness {
    let state = {
        let status = ollama.borrow();
        if !serves(&status, base_url) {
            return OllamaReadiness::Ready;
        }
        status.state
    };
    match state {
        OllamaState::Running => return OllamaReadiness::Ready,
        s if !in_transition(s) => return OllamaReadiness::Down(down(s)),
        s if budget.left.is_zero() => return OllamaReadiness::Restarting(down(s)),
        _ => {}
    }
    metrics.ollama_holds.inc();
    let started = Instant::now();
    let mut rx = ollama.clone();
    let outcome = tokio::time::timeout(budget.left, async {
        loop {
            let state = rx.borrow_and_update().state;
            if state == OllamaState::Running {
                return OllamaReadiness::Ready;
            }
            if !in_transition(state) {
                return OllamaReadiness::Down(down(state));
            }
            if rx.changed().await.is_err() {
                return OllamaReadiness::Down("the Ollama supervisor stopped".into());
            }
        }
    })
    .await;
    let waited = started.elapsed();
    budget.left = budget.left.saturating_sub(waited);
    metrics.ollama_hold_seconds.observe(waited.as_secs_f64());
    match outcome {
        Ok(readiness) => readiness,
        Err(_) => {
            let state = ollama.borrow().state;
            OllamaReadiness::Restarting(format!(
                "{} after waiting {:.1} s for it (gateway.holdForOllama)",
                down(state),
                waited.as_secs_f64()
            ))
        }
    }
}

/// How long a refused request waits for the supervisor to notice that its Ollama is gone
/// (an owned server's exit is seen at once; a probe takes up to its 1 s timeout).
const NOTICE_WITHIN: Duration = Duration::from_millis(1500);

/// The supervised Ollama at `base_url` refused a connection while published as running: waits
/// (within the budget) for the supervisor to notice and restart it. `Ready` when it is running
/// again (a new healthy epoch), `Down` otherwise — the chain goes on.
pub async fn wait_after_refusal(
    ollama: &watch::Receiver<OllamaStatus>,
    base_url: &str,
    budget: &mut HoldBudget,
    metrics: &Metrics,
) -> OllamaReadiness {
    let (serving, state, epoch) = {
        let status = ollama.borrow();
        (
            serves(&status, base_url),
            status.state,
            status.healthy_epoch,
        )
    };
    if !serving {
        return OllamaReadiness::Down(down(state));
    }
    if state != OllamaState::Running {
        // The supervisor noticed first: hold for the restart it is doing.
        return wait_for_ollama(ollama, base_url, budget, metrics).await;
    }
    let limit = NOTICE_WITHIN.min(budget.left);
    let started = Instant::now();
    let mut rx = ollama.clone();
    let noticed = tokio::time::timeout(limit, async {
        loop {
            {
                let status = rx.borrow_and_update();
                if status.state != OllamaState::Running || status.healthy_epoch != epoch {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    budget.left = budget.left.saturating_sub(started.elapsed());
    if noticed.is_err() {
        return OllamaReadiness::Down(
            "Ollama refused the connection and is still reported running".into(),
        );
    }
    if ollama.borrow().healthy_epoch != epoch && ollama.borrow().state == OllamaState::Running {
        return OllamaReadiness::Ready;
    }
    wait_for_ollama(ollama, base_url, budget, metrics).await
}

#[cfg(test)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn a_refusal_after_the_supervisor_noticed_holds_for_the_restart() {
        let (tx, rx) = watch::channel(status(OllamaState::Restarting));
        let metrics = Metrics::default();
        let mut budget = HoldBudget::new(Duration::from_secs(30));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            tx.send_modify(|s| {
                s.state = OllamaState::Running;
                s.healthy_epoch += 1;
            });
            std::future::pending::<()>().await
        });
        let readiness =
            wait_after_refusal(&rx, "http://127.0.0.1:11434", &mut budget, &metrics).await;
        assert_eq!(readiness, OllamaReadiness::Ready);
    }

    use super::*;

    fn status(state: OllamaState) -> OllamaStatus {
        OllamaStatus {
            state,
            management: None,
            pid: None,
            base_url: "http://127.0.0.1:11434".into(),
            server_version: None,
            binary_version: None,
            restarts: 0,
            last_restart_reason: None,
            last_restart_at: None,
            restart_attempt: None,
            next_restart_at: None,
            healthy_epoch: 0,
            version_mismatch: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_is_waited_out_and_the_request_proceeds() {
        let (tx, rx) = watch::channel(status(OllamaState::Restarting));
        let metrics = Metrics::default();
        let mut budget = HoldBudget::new(Duration::from_secs(30));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            tx.send_modify(|s| s.state = OllamaState::Running);
            std::future::pending::<()>().await
        });
        let readiness =
            wait_for_ollama(&rx, "http://127.0.0.1:11434/", &mut budget, &metrics).await;
        assert_eq!(readiness, OllamaReadiness::Ready);
        assert_eq!(budget.left, Duration::from_millis(28800));
        assert_eq!(metrics.ollama_holds.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_budget_the_chain_goes_on() {
        let (_tx, rx) = watch::channel(status(OllamaState::Starting));
        let metrics = Metrics::default();
        let mut budget = HoldBudget::new(Duration::from_secs(3));
        let started = Instant::now();
        let readiness = wait_for_ollama(&rx, "http://127.0.0.1:11434", &mut budget, &metrics).await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(
            matches!(readiness, OllamaReadiness::Restarting(ref why) if why.contains("holdForOllama"))
        );
        // The budget is spent: the next local model is not waited for again.
        let again = wait_for_ollama(&rx, "http://127.0.0.1:11434", &mut budget, &metrics).await;
        assert!(matches!(again, OllamaReadiness::Restarting(_)));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_loop_is_not_held_for() {
        let (_tx, rx) = watch::channel(status(OllamaState::CrashLoop));
        let metrics = Metrics::default();
        let mut budget = HoldBudget::new(Duration::from_secs(30));
        let readiness = wait_for_ollama(&rx, "http://127.0.0.1:11434", &mut budget, &metrics).await;
        assert_eq!(
            readiness,
            OllamaReadiness::Down("Ollama is not running (state crash_loop)".into())
        );
        assert_eq!(metrics.ollama_holds.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn another_server_is_never_held_for() {
        let (_tx, rx) = watch::channel(status(OllamaState::Restarting));
        let metrics = Metrics::default();
        let mut budget = HoldBudget::new(Duration::from_secs(30));
        let readiness = wait_for_ollama(&rx, "http://10.0.0.5:11434", &mut budget, &metrics).await;
        assert_eq!(readiness, OllamaReadiness::Ready);
    }
}
