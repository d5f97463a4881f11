//! The supervised task tree: every long-running task of the daemon has a name and a policy.
//! A task that ends or panics while the daemon is not stopping is logged by name and either
//! restarted (after a short backoff) or — when its loss leaves the daemon unable to do its job —
//! reported to [`TaskTree::supervise`]'s caller, which stops the daemon with a non-zero exit so
//! the service manager restarts it. Nothing ends silently.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, Schedule};

/// What happens when a task ends while the daemon is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnEnd {
    /// Start it again (100 ms doubling to 30 s between restarts in a row).
    Restart,
    /// Stop the daemon with a non-zero exit.
    StopDaemon,
}

type Make = Box<dyn FnMut() -> BoxFuture<'static, ()> + Send>;

struct Task {
    name: &'static str,
    on_end: OnEnd,
    make: Make,
    backoff: Backoff,
    /// When the current run started: a task that ran a while starts its backoff afresh.
    started: tokio::time::Instant,
}

/// A fatal task ended: which one and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLost {
    pub name: &'static str,
    pub how: String,
}

pub struct TaskTree {
    set: JoinSet<()>,
    running: HashMap<Id, Task>,
    shutdown: CancellationToken,
}

impl TaskTree {
    pub fn new(shutdown: CancellationToken) -> TaskTree {
        TaskTree {
            set: JoinSet::new(),
            running: HashMap::new(),
            shutdown,
        }
    }

    /// Starts a task made by `make`; `make` is called again for each restart.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, on_end: OnEnd, mut make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let task = Task {
            name,
            on_end,
            make: Box::new(move || make().boxed()),
            backoff: Backoff::new(
                Schedule::Doubling {
                    initial: Duration::from_millis(100),
                    cap: Duration::from_secs(30),
                },
                0.1,
            ),
            started: tokio::time::Instant::now(),
        };
        self.start(task, Duration::ZERO);
    }

    fn start(&mut self, mut task: Task, delay: Duration) {
        let run = inject_fault(task.name, (task.make)());
        task.started = tokio::time::Instant::now() + delay;
        let handle = self.set.spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            run.await
        });
        self.running.insert(handle.id(), task);
    }

    /// Watches the tasks until the daemon stops (`Ok`) or a task whose loss is fatal ends
    /// (`Err`, after logging it). Restartable tasks are restarted here.
    pub async fn supervise(&mut self) -> Result<(), TaskLost> {
        loop {
            let joined = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                joined = self.set.join_next_with_id() => joined,
            };
            let Some(joined) = joined else {
                // No task left: nothing to supervise, wait for the stop.
                self.shutdown.cancelled().await;
                return Ok(());
            };
            let (id, how) = match joined {
                Ok((id, ())) => (id, "ended".to_string()),
                Err(e) if e.is_panic() => (e.id(), format!("panicked: {}", panic_message(e))),
                Err(e) => (e.id(), "was cancelled".to_string()),
            };
            let Some(mut task) = self.running.remove(&id) else {
                continue;
            };
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            match task.on_end {
                OnEnd::Restart => {
                    if task.started.elapsed() > Duration::from_secs(60) {
                        task.backoff.reset();
                    }
                    let delay = task.backoff.next_delay();
                    tracing::error!(
                        task = task.name,
                        "task {} {how}; restarting it in {} ms",
                        task.name,
                        delay.as_millis()
                    );
                    self.start(task, delay);
                }
                OnEnd::StopDaemon => {
                    tracing::error!(
                        task = task.name,
                        "task {} {how}; openclawd cannot work without it and stops (exit 1) so \
                         its service manager starts it again",
                        task.name
                    );
                    return Err(TaskLost {
                        name: task.name,
                        how,
                    });
                }
            }
        }
    }

    /// After shutdown: waits up to `grace` for every task to return, then aborts the rest and
    /// names them.
    pub async fn stop(mut self, grace: Duration) {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.set.is_empty() {
            match tokio::time::timeout_at(deadline, self.set.join_next_with_id()).await {
                Ok(Some(Ok((id, ())))) => {
                    self.running.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    if let Some(task) = self.running.remove(&e.id()) {
                        if e.is_panic() {
                            tracing::error!(
                                task = task.name,
                                "task {} panicked while stopping: {}",
                                task.name,
                                panic_message(e)
                            );
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    let names: Vec<&str> = self.running.values().map(|t| t.name).collect();
                    tracing::warn!(
                        "tasks still running {} ms after the stop, ending them: {}",
                        grace.as_millis(),
                        names.join(", ")
                    );
                    self.set.abort_all();
                    while self.set.join_next().await.is_some() {}
                    break;
                }
            }
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into()),
        Err(e) => e.to_string(),
    }
}

/// Test hook (debug builds only): `OPENCLAWD_TEST_FAULT=<task>=panic` makes that task's first
/// run panic, `<task>=end` makes it return, 300 ms after it starts. Lets the integration tests
/// prove that a lost task is never silent. Release builds ignore the variable.
fn inject_fault(name: &'static str, run: BoxFuture<'static, ()>) -> BoxFuture<'static, ()> {
    #[cfg(debug_assertions)]
    {
        use std::sync::Mutex;
        static FIRED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
        let fault = std::env::var("OPENCLAWD_TEST_FAULT").ok().and_then(|spec| {
            spec.split(',').find_map(|one| {
                let (task, what) = one.split_once('=')?;
                (task == name).then(|| what.to_string())
            })
        });
        if let Some(what) = fault {
            let mut fired = FIRED.lock().unwrap_or_else(|p| p.into_inner());
            if !fired.contains(&name) {
                fired.push(name);
                return async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if what == "panic" {
                        panic!("injected fault (OPENCLAWD_TEST_FAULT)");
                    }
                }
                .boxed();
            }
        }
    }
    let _ = name;
    run
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_restartable_task_that_panics_is_started_again() {
        let shutdown = CancellationToken::new();
        let mut tree = TaskTree::new(shutdown.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        tree.spawn("flaky", OnEnd::Restart, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("run {n} fails");
                }
                std::future::pending::<()>().await
            }
        });
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            stopper.cancel();
        });
        assert_eq!(tree.supervise().await, Ok(()));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tree.stop(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_task_that_ends_is_reported_by_name() {
        let shutdown = CancellationToken::new();
        let mut tree = TaskTree::new(shutdown.clone());
        tree.spawn("forever", OnEnd::Restart, std::future::pending::<()>);
        tree.spawn("gateway", OnEnd::StopDaemon, || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
        });
        let lost = tree.supervise().await.unwrap_err();
        assert_eq!(lost.name, "gateway");
        assert_eq!(lost.how, "ended");
        tree.stop(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_tasks_that_ignore_the_shutdown() {
        let shutdown = CancellationToken::new();
        let mut tree = TaskTree::new(shutdown.clone());
        tree.spawn("stubborn", OnEnd::Restart, std::future::pending::<()>);
        let started = tokio::time::Instant::now();
        tree.stop(Duration::from_secs(2)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
