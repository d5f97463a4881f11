//! Watches a set of files (and optionally whole directory trees) and reports each burst of
//! changes once, on a Tokio channel.
//!
//! Editors save by writing a temporary file and renaming it over the original, which replaces
//! the inode; so the watcher watches the PARENT directory of each file and filters events by
//! name. A directory that does not exist yet is covered by watching its nearest existing
//! ancestor: when the missing directory appears, the watches are recomputed.
//!
//! Bursts (an editor's save is several events within milliseconds) are debounced: a burst ends
//! once no event arrived for the debounce interval (200 ms by default), and yields one `()`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The default quiet period that ends a burst.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(200);

/// A burst that never goes quiet (a model download writing for minutes) is still reported
/// every this many debounce intervals.
const MAX_BURST_INTERVALS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "the file watcher must be created inside a Tokio runtime (it spawns its debounce task)"
    )]
    NoRuntime,
    #[error(
        "cannot start the file watcher: {0}. On Linux, the inotify limits \
         (fs.inotify.max_user_instances, fs.inotify.max_user_watches) may be exhausted; raise them \
         with sysctl"
    )]
    Notify(#[from] notify::Error),
}

/// Watches files by their parent directories; see the module docs.
pub struct FileWatcher {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Read by the notify thread for every event. A separate lock from `state`: `state` is
    /// held while calling into notify, which waits for the notify thread.
    filter: Arc<RwLock<Filter>>,
}

struct State {
    watcher: RecommendedWatcher,
    files: BTreeSet<PathBuf>,
    trees: BTreeSet<PathBuf>,
    /// Directories currently watched, and how.
    watched: BTreeMap<PathBuf, RecursiveMode>,
}

#[derive(Default)]
struct Filter {
    files: BTreeSet<PathBuf>,
    trees: Vec<PathBuf>,
    /// Directories we want to watch (file parents, tree roots). An event on one of them or on
    /// an ancestor (created, removed, renamed) means the watches must be recomputed.
    anchors: Vec<PathBuf>,
}

enum Signal {
    /// A watched file or tree changed.
    Changed,
    /// A directory on the way to a watched one changed: recompute the watches.
    Rescan(PathBuf),
}

impl FileWatcher {
    /// A watcher with nothing to watch yet, and the channel its bursts arrive on. Must be
    /// called inside a Tokio runtime. Dropping the watcher closes the channel.
    pub fn new(debounce: Duration) -> Result<(FileWatcher, mpsc::Receiver<()>), WatchError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
        let filter = Arc::new(RwLock::new(Filter::default()));
        let (signal_tx, signal_rx) = mpsc::unbounded_channel();

        let handler_filter = Arc::clone(&filter);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            for signal in classify(&handler_filter, res) {
                // The receiver is gone only when the watcher is being dropped.
                let _ = signal_tx.send(signal);
            }
        })?;

        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                watcher,
                files: BTreeSet::new(),
                trees: BTreeSet::new(),
                watched: BTreeMap::new(),
            }),
            filter,
        });
        // Capacity 1: a notification already waiting covers any later change.
        let (out_tx, out_rx) = mpsc::channel(1);
        runtime.spawn(debounce_loop(
            Arc::downgrade(&shared),
            signal_rx,
            out_tx,
            debounce,
        ));
        Ok((FileWatcher { shared }, out_rx))
    }

    /// Replaces the set of watched files (e.g. after a reload found new `$include`s).
    pub fn set_files(&self, files: Vec<PathBuf>) {
        let mut state = self.shared.lock_state();
        state.files = files.into_iter().map(|f| normalize(&f)).collect();
        self.shared.apply(&mut state);
    }

    /// Also watches everything under `dir`, recursively (e.g. Ollama's models directory).
    pub fn watch_tree(&self, dir: PathBuf) {
        let mut state = self.shared.lock_state();
        state.trees.insert(normalize(&dir));
        self.shared.apply(&mut state);
    }

    /// Stops watching the tree under `dir`.
    pub fn unwatch_tree(&self, dir: &Path) {
        let mut state = self.shared.lock_state();
        state.trees.remove(&normalize(dir));
        self.shared.apply(&mut state);
    }

    /// The directories currently watched (for status output and tests).
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        self.shared.lock_state().watched.keys().cloned().collect()
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Brings the watches in line with the wanted files and trees. Returns whether a watch was
    /// added (files may have appeared in a directory we could not watch before).
    fn apply(&self, state: &mut State) -> bool {
        // Files reached through a symlink change when the target changes: watch both.
        let mut files = state.files.clone();
        for f in &state.files {
            if let Ok(target) = std::fs::canonicalize(f) {
                files.insert(target);
            }
        }
        let mut wanted: BTreeMap<PathBuf, RecursiveMode> = BTreeMap::new();
        let mut anchors = Vec::new();
        let file_dirs = files.iter().filter_map(|f| f.parent()).map(|d| (d, false));
        let tree_dirs = state.trees.iter().map(|t| (t.as_path(), true));
        for (dir, recursive) in file_dirs.chain(tree_dirs) {
            anchors.push(dir.to_path_buf());
            let (path, mode) = if dir.is_dir() {
                let mode = if recursive {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                (dir.to_path_buf(), mode)
            } else {
                match nearest_existing_ancestor(dir) {
                    Some(a) => (a, RecursiveMode::NonRecursive),
                    None => {
                        tracing::debug!(dir = %dir.display(), "no existing ancestor to watch");
                        continue;
                    }
                }
            };
            let entry = wanted.entry(path).or_insert(mode);
            if mode == RecursiveMode::Recursive {
                *entry = RecursiveMode::Recursive;
            }
        }
        {
            let mut filter = self.filter.write().unwrap_or_else(|p| p.into_inner());
            filter.files = files;
            filter.trees = state.trees.iter().cloned().collect();
            filter.anchors = anchors;
        }

        let stale: Vec<PathBuf> = state
            .watched
            .iter()
            .filter(|(path, mode)| wanted.get(*path) != Some(*mode))
            .map(|(path, _)| path.clone())
            .collect();
        for path in stale {
            state.watched.remove(&path);
            // The directory may be gone already, taking its watch with it.
            let _ = state.watcher.unwatch(&path);
        }
        let mut added = false;
        for (path, mode) in wanted {
            if state.watched.contains_key(&path) {
                continue;
            }
            match state.watcher.watch(&path, mode) {
                Ok(()) => {
                    state.watched.insert(path, mode);
                    added = true;
                }
                Err(err) => {
                    // Removed between the check and the watch; the next rescan retries.
                    tracing::warn!(dir = %path.display(), error = %err, "cannot watch directory");
                }
            }
        }
        added
    }

    /// Something happened to `changed`, a directory on the way to (or equal to) a watched
    /// one. Watches on or below it may be dead (the inode is gone): renew them.
    fn rescan(&self, changed: &Path) -> bool {
        let mut state = self.lock_state();
        let renew: Vec<PathBuf> = state
            .watched
            .keys()
            .filter(|w| w.starts_with(changed))
            .cloned()
            .collect();
        for path in renew {
            state.watched.remove(&path);
            let _ = state.watcher.unwatch(&path);
        }
        self.apply(&mut state)
    }
}

/// Turns one notify event into signals, using only the filter (runs on notify's thread).
fn classify(filter: &RwLock<Filter>, res: notify::Result<notify::Event>) -> Vec<Signal> {
    let event = match res {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(error = %err, "file watcher error");
            return vec![Signal::Changed];
        }
    };
    let filter = filter.read().unwrap_or_else(|p| p.into_inner());
    if event.need_rescan() {
        // The kernel queue overflowed: events were lost.
        let mut out = vec![Signal::Changed];
        out.extend(filter.anchors.iter().cloned().map(Signal::Rescan));
        return out;
    }
    match event.kind {
        // Reads (including our own reload) and metadata-only changes are not edits.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => return Vec::new(),
        _ => {}
    }
    let mut out = Vec::new();
    for path in &event.paths {
        if filter.files.contains(path) || filter.trees.iter().any(|t| path.starts_with(t)) {
            out.push(Signal::Changed);
        }
        if filter.anchors.iter().any(|a| a.starts_with(path)) {
            out.push(Signal::Rescan(path.clone()));
        }
    }
    out
}

async fn debounce_loop(
    shared: Weak<Shared>,
    mut signals: mpsc::UnboundedReceiver<Signal>,
    out: mpsc::Sender<()>,
    debounce: Duration,
) {
    let handle = |signal: Signal| -> Option<bool> {
        match signal {
            Signal::Changed => Some(true),
            Signal::Rescan(path) => Some(shared.upgrade()?.rescan(&path)),
        }
    };
    loop {
        let Some(signal) = signals.recv().await else {
            return;
        };
        match handle(signal) {
            None => return,
            Some(false) => continue,
            Some(true) => {}
        }
        let burst_end = Instant::now() + debounce * MAX_BURST_INTERVALS;
        loop {
            let quiet_until = (Instant::now() + debounce).min(burst_end);
            match tokio::time::timeout_at(quiet_until, signals.recv()).await {
                Ok(Some(signal)) => {
                    if handle(signal).is_none() {
                        return;
                    }
                }
                // The watcher is gone; report the burst anyway.
                Ok(None) => break,
                Err(_elapsed) => break,
            }
        }
        match out.try_send(()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
            Err(mpsc::error::TrySendError::Closed(())) => return,
        }
        if shared.strong_count() == 0 {
            return;
        }
    }
}

fn nearest_existing_ancestor(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .map(Path::to_path_buf)
}

use crate::fsutil::normalize;

#[cfg(test)]
mod tests {
    use super::*;

    /// Generous: CI machines are slow; only reached when something is wrong.
    const DEADLINE: Duration = Duration::from_secs(10);
    const DEBOUNCE: Duration = Duration::from_millis(100);

    async fn burst_arrives(rx: &mut mpsc::Receiver<()>) -> bool {
        matches!(
            tokio::time::timeout(DEADLINE, rx.recv()).await,
            Ok(Some(()))
        )
    }

    /// No further burst within a few debounce intervals (bursts end after one quiet interval,
    /// so a duplicate would show up well within this window).
    async fn no_further_burst(rx: &mut mpsc::Receiver<()>) -> bool {
        tokio::time::timeout(DEBOUNCE * (MAX_BURST_INTERVALS + 5), rx.recv())
            .await
            .is_err()
    }

    fn save_by_rename(file: &Path, text: &str) {
        let tmp = file.with_file_name(format!(
            ".{}.swp",
            file.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, file).unwrap();
    }

    #[tokio::test]
    async fn a_save_by_rename_is_one_burst() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openclaw.json");
        std::fs::write(&file, "{}").unwrap();
        let (watcher, mut rx) = FileWatcher::new(DEBOUNCE).unwrap();
        watcher.set_files(vec![file.clone()]);
        assert_eq!(watcher.watched_dirs(), vec![dir.path().to_path_buf()]);

        save_by_rename(&file, "{ gateway: { port: 1 } }");
        assert!(burst_arrives(&mut rx).await);
        assert!(no_further_burst(&mut rx).await);

        // The watch survives the inode change: the next save is seen too.
        save_by_rename(&file, "{ gateway: { port: 2 } }");
        assert!(burst_arrives(&mut rx).await);
        assert!(no_further_burst(&mut rx).await);
    }

    #[tokio::test]
    async fn an_in_place_write_is_one_burst() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openclaw.json");
        std::fs::write(&file, "{}").unwrap();
        let (watcher, mut rx) = FileWatcher::new(DEBOUNCE).unwrap();
        watcher.set_files(vec![file.clone()]);

        std::fs::write(&file, "{ a: 1 }").unwrap();
        assert!(burst_arrives(&mut rx).await);
        assert!(no_further_burst(&mut rx).await);
    }

    #[tokio::test]
    async fn other_files_in_the_directory_and_reads_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openclaw.json");
        std::fs::write(&file, "{}").unwrap();
        let (watcher, mut rx) = FileWatcher::new(DEBOUNCE).unwrap();
        watcher.set_files(vec![file.clone()]);

        std::fs::write(dir.path().join("openclaw.json.bak"), "x").unwrap();
        std::fs::read_to_string(&file).unwrap();
        assert!(no_further_burst(&mut rx).await);
    }

    #[tokio::test]
    async fn a_file_in_a_directory_that_appears_later_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let agent_dir = dir.path().join("agents/main/agent");
        let file = agent_dir.join("auth-profiles.json");
        let (watcher, mut rx) = FileWatcher::new(DEBOUNCE).unwrap();
        watcher.set_files(vec![file.clone()]);
        assert_eq!(watcher.watched_dirs(), vec![dir.path().to_path_buf()]);

        std::fs::create_dir_all(&agent_dir).unwrap();
        std::fs::write(&file, "{}").unwrap();
        assert!(burst_arrives(&mut rx).await);
        // Poll until the watch moved down to the new directory.
        let deadline = Instant::now() + DEADLINE;
        while !watcher.watched_dirs().contains(&agent_dir) {
            assert!(Instant::now() < deadline, "{:?}", watcher.watched_dirs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE * 3, rx.recv()).await {}

        save_by_rename(&file, "{\"version\":1}");
        assert!(burst_arrives(&mut rx).await);
        assert!(no_further_burst(&mut rx).await);
    }

    #[tokio::test]
    async fn set_files_replaces_the_watched_set() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a/old.json");
        let new = dir.path().join("b/new.json");
        for f in [&old, &new] {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, "{}").unwrap();
        }
        let (watcher, mut rx) = FileWatcher::new(DEBOUNCE).unwrap();
        watcher.set_files(vec![old.clone()]);
        watcher.set_files(vec![new.clone()]);
        assert_eq!(watcher.watched_dirs(), vec![dir.path().join("b")]);

        std::fs::write(&old, "{ x: 1 }").unwrap();
        assert!(no_further_burst(&mut rx).await);
        std::fs::write(&new, "{ x: 1 }").unwrap();
        assert!(burst_arrives(&mut rx).await);
    }

    #[tokio::test]
    async fn a_tree_reports_changes_anywhere_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir_all(models.join("manifests/registry.ollama.ai")).unwrap();
        let (watcher, mut rx) = FileWatcher::new(DEBOUNCE).unwrap();
        watcher.watch_tree(models.clone());

        let manifest = models.join("manifests/registry.ollama.ai/library/llama3.2/3b");
        std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
        std::fs::write(&manifest, "{}").unwrap();
        assert!(burst_arrives(&mut rx).await);
        assert!(no_further_burst(&mut rx).await);

        std::fs::remove_file(&manifest).unwrap();
        assert!(burst_arrives(&mut rx).await);
    }

    #[tokio::test]
    async fn dropping_the_watcher_closes_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let (watcher, mut rx) = FileWatcher::new(DEBOUNCE).unwrap();
        watcher.set_files(vec![dir.path().join("f.json")]);
        drop(watcher);
        assert!(matches!(
            tokio::time::timeout(DEADLINE, rx.recv()).await,
            Ok(None)
        ));
    }

    #[test]
    fn creating_a_watcher_outside_a_runtime_is_an_error() {
        assert!(matches!(
            FileWatcher::new(DEBOUNCE),
            Err(WatchError::NoRuntime)
        ));
    }
}
