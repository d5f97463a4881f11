//! The current [`Snapshot`], published: readers on the request path load it without a lock
//! (ArcSwap), subsystems that derive their own settings subscribe to its changes (watch).
//! Only the daemon's reload loop publishes; nobody else knows who listens.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use super::Snapshot;

pub struct Published {
    current: ArcSwap<Snapshot>,
    changes: watch::Sender<Arc<Snapshot>>,
}

impl Published {
    pub fn new(first: Snapshot) -> Published {
        let first = Arc::new(first);
        Published {
            current: ArcSwap::new(first.clone()),
            changes: watch::Sender::new(first),
        }
    }

    /// The snapshot in force, cheap enough for every request.
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Makes `next` the snapshot in force, then tells every subscriber.
    pub fn publish(&self, next: Arc<Snapshot>) {
        self.current.store(next.clone());
        self.changes.send_replace(next);
    }

    /// A receiver that sees the snapshot in force now and every one published after it.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.changes.subscribe()
    }
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("generation", &self.current.load().generation)
            .finish()
    }
}
