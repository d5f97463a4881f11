//! SessionsGuard (SPEC §6): keeps OpenClaw's `sessions.json` index from wedging agents.
//! Removes entries in the "Context overflow" state and clears (or prunes) a file over
//! `sessions.maxBytes`. Surviving entries are copied byte for byte (each entry is kept as its
//! raw JSON text), so key order, number spelling and every field OpenClaw wrote survive. Never
//! rewrites invalid JSON, respects OpenClaw's `sessions.json.lock`, backs up before any change
//! and replaces the file atomically.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::store_lock::{lock_path, lock_state, lock_temp_pid, process_alive, HeldLock, LockState};
use crate::config::{OwnSessions, SessionsAction};

/// Backups kept per agent.
pub const BACKUPS_KEPT: usize = 10;

pub use crate::config::{session_stores, SessionStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Back up and rewrite when needed.
    Apply,
    /// Only report what `Apply` would do (`action` is the planned one, `backup` is `None`).
    DryRun,
}

/// Points in a rewrite where a test can simulate a crash (the process dying there).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// The backup exists; the store is untouched.
    AfterBackup,
    /// The new content is in the temp file (fsynced); not yet renamed over the store.
    AfterTempWrite,
}

/// What one round found and did for one store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreReport {
    pub agent_id: String,
    pub path: PathBuf,
    pub exists: bool,
    pub size_bytes: u64,
    /// `sessions.maxBytes` in force: the size the guard keeps the file under (0: unknown).
    #[serde(default)]
    pub max_bytes: u64,
    /// Entries in the file as found (before any change).
    pub entries: usize,
    /// Keys whose `totalTokens` ≥ `contextTokens`.
    pub overflowing: Vec<String>,
    pub action: Option<StoreAction>,
    /// Where the original bytes were copied (for `InvalidJson`: the copy holding them).
    pub backup: Option<PathBuf>,
    /// Why the round failed for this store (set by the runner; `check` returns `Err` instead).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreAction {
    /// Only the overflowing entries were removed.
    RemovedOverflow { keys: Vec<String> },
    /// The file was over `maxBytes` and became `{}`.
    Cleared,
    /// The file was over `maxBytes`; `removed` entries (overflowing first, then the oldest by
    /// `updatedAt`) were dropped until it was under half the limit.
    Pruned { removed: usize },
    /// Something needed doing but OpenClaw holds `sessions.json.lock`; next round.
    SkippedLocked,
    /// Not a JSON object: backed up once, never rewritten.
    InvalidJson { error: String },
    /// `agent/openclaw-agent.sqlite` exists (OpenClaw ≥ 2026.8): not ours to touch.
    Sqlite,
}

impl StoreReport {
    pub(super) fn new(store: &SessionStore) -> StoreReport {
        StoreReport {
            agent_id: store.agent_id.clone(),
            path: store.path.clone(),
            exists: false,
            size_bytes: 0,
            max_bytes: 0,
            entries: 0,
            overflowing: Vec::new(),
            action: None,
            backup: None,
            error: None,
        }
    }

    /// Sessions this report removed from the store.
    pub fn sessions_removed(&self) -> usize {
        match &self.action {
            Some(StoreAction::RemovedOverflow { keys }) => keys.len(),
            Some(StoreAction::Cleared) => self.entries,
            Some(StoreAction::Pruned { removed }) => *removed,
            _ => 0,
        }
    }

    /// A sentence for `/status` and the log, for the actions worth telling a person about.
    pub fn describe(&self) -> Option<String> {
        let path = self.path.display();
        let backup = match &self.backup {
            Some(b) => format!("; backup {}", b.display()),
            None => String::new(),
        };
        let text = match self.action.as_ref()? {
            StoreAction::RemovedOverflow { keys } => format!(
                "removed {} session{} in \"Context overflow\" ({}) from {path}{backup}",
                keys.len(),
                plural(keys.len()),
                keys.join(", ")
            ),
            StoreAction::Cleared => format!(
                "cleared {path} ({} bytes, {} session{}){backup}",
                self.size_bytes,
                self.entries,
                plural(self.entries)
            ),
            StoreAction::Pruned { removed } => format!(
                "pruned {removed} oldest session{} from {path} ({} bytes){backup}",
                plural(*removed),
                self.size_bytes
            ),
            StoreAction::InvalidJson { error } => {
                format!("{path} is not valid JSON ({error}); left as is{backup}")
            }
            StoreAction::SkippedLocked | StoreAction::Sqlite => return None,
        };
        Some(text)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} changed while openclawd was rewriting it; left as is, next round retries", path.display())]
    Changed { path: PathBuf },
    #[doc(hidden)]
    #[error("injected crash {step:?} (test only)")]
    InjectedFault { step: WriteStep },
}

pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SessionsError + 'a {
    move |source| SessionsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks and repairs sessions stores, one round per call.
#[derive(Debug, Clone)]
pub struct SessionsGuard {
    backups_dir: PathBuf,
    settings: OwnSessions,
}

impl SessionsGuard {
    /// `backups_dir` is `<state>/openclawd/backups`.
    pub fn new(backups_dir: PathBuf, settings: OwnSessions) -> SessionsGuard {
        SessionsGuard {
            backups_dir,
            settings,
        }
    }

    pub fn backups_dir(&self) -> &Path {
        &self.backups_dir
    }

    pub fn settings(&self) -> &OwnSessions {
        &self.settings
    }

    /// One round for one store.
    pub fn check(&self, store: &SessionStore, mode: Mode) -> Result<StoreReport, SessionsError> {
        self.check_with_fault(store, mode, None)
            .map(|report| StoreReport {
                max_bytes: self.settings.max_bytes,
                ..report
            })
    }

    /// [`Self::check`] that "crashes" (returns `InjectedFault`, leaving files as a dying
    /// process would) at `fault`.
    #[doc(hidden)]
    pub fn check_with_fault(
        &self,
        store: &SessionStore,
        mode: Mode,
        fault: Option<WriteStep>,
    ) -> Result<StoreReport, SessionsError> {
        let mut report = StoreReport::new(store);
        if sqlite_path(&store.path).is_some_and(|p| p.exists()) {
            if let Ok(meta) = fs::metadata(&store.path) {
                report.exists = true;
                report.size_bytes = meta.len();
            }
            report.action = Some(StoreAction::Sqlite);
            return Ok(report);
        }
        let Some(bytes) = read_store(&store.path)? else {
            return Ok(report);
        };
        let lock_path = lock_path(&store.path);
        let assessment = self.assess(&bytes);
        report.fill(&bytes, &assessment);
        let needs_change = match &assessment {
            Assessment::Invalid(_) => false,
            Assessment::Valid { plan, .. } => plan.is_some(),
        };
        let invalid = matches!(assessment, Assessment::Invalid(_));
        if !needs_change && !invalid {
            return Ok(report);
        }
        // A writer holding the lock may be mid-write: judge nothing while it is held.
        if lock_state(&lock_path)? == LockState::Held {
            report.action = Some(StoreAction::SkippedLocked);
            return Ok(report);
        }
        if mode == Mode::DryRun {
            report.action = assessment.action();
            return Ok(report);
        }
        if let Assessment::Invalid(error) = assessment {
            report.backup = Some(self.backup_once(&store.agent_id, &bytes)?);
            report.action = Some(StoreAction::InvalidJson { error });
            return Ok(report);
        }

        let Some(_lock) = HeldLock::acquire(&lock_path)? else {
            report.action = Some(StoreAction::SkippedLocked);
            return Ok(report);
        };
        // A symlinked store stays a symlink: the file it points to is replaced.
        let target = match fs::canonicalize(&store.path) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StoreReport::new(store)),
            Err(e) => return Err(io_err("resolve", &store.path)(e)),
        };
        remove_leftover_temp_files(&target);
        // Re-read under the lock: OpenClaw may have written since the first look.
        let Some(bytes) = read_store(&target)? else {
            return Ok(StoreReport::new(store));
        };
        let read_stamp = file_stamp(&target)?;
        let assessment = self.assess(&bytes);
        report = StoreReport::new(store);
        report.fill(&bytes, &assessment);
        match assessment {
            Assessment::Invalid(error) => {
                report.backup = Some(self.backup_once(&store.agent_id, &bytes)?);
                report.action = Some(StoreAction::InvalidJson { error });
            }
            Assessment::Valid { plan: None, .. } => {}
            Assessment::Valid {
                plan: Some(plan), ..
            } => {
                report.backup = Some(self.backup(&store.agent_id, &bytes)?);
                if fault == Some(WriteStep::AfterBackup) {
                    return Err(SessionsError::InjectedFault {
                        step: WriteStep::AfterBackup,
                    });
                }
                write_atomic(&target, &plan.output, read_stamp, fault)?;
                report.action = Some(plan.action);
            }
        }
        Ok(report)
    }

    fn assess(&self, bytes: &[u8]) -> Assessment {
        let entries = match parse_store(bytes) {
            Ok(entries) => entries,
            Err(error) => return Assessment::Invalid(error),
        };
        let probes: Vec<EntryProbe> = entries.iter().map(|(_, raw)| probe(raw)).collect();
        let overflowing: Vec<usize> = (0..entries.len())
            .filter(|&i| probes[i].overflowing())
            .collect();
        let trailing_newline = bytes.ends_with(b"\n");
        let size = bytes.len() as u64;
        let mut keep = vec![true; entries.len()];
        for &i in &overflowing {
            keep[i] = false;
        }
        let plan = if size > self.settings.max_bytes {
            match self.settings.action {
                SessionsAction::Clear => Some(Plan {
                    action: StoreAction::Cleared,
                    output: render(&entries, &vec![false; entries.len()], trailing_newline),
                }),
                SessionsAction::Prune => {
                    let removed = prune(
                        &entries,
                        &probes,
                        &mut keep,
                        self.settings.max_bytes / 2,
                        trailing_newline,
                    );
                    Some(Plan {
                        action: StoreAction::Pruned {
                            removed: removed + overflowing.len(),
                        },
                        output: render(&entries, &keep, trailing_newline),
                    })
                }
            }
        } else if overflowing.is_empty() {
            None
        } else {
            Some(Plan {
                action: StoreAction::RemovedOverflow {
                    keys: overflowing.iter().map(|&i| entries[i].0.clone()).collect(),
                },
                output: render(&entries, &keep, trailing_newline),
            })
        };
        Assessment::Valid {
            keys: entries.into_iter().map(|(k, _)| k).collect(),
            overflowing,
            plan,
        }
    }

    /// Copies `bytes` to `<backups>/sessions-<agent>-<UTC stamp>.json`, keeps the newest
    /// [`BACKUPS_KEPT`] of that agent. The copy is written whole under a temp name and then
    /// linked to its final name, so a crash mid-copy never leaves a truncated file that looks
    /// like a backup.
    fn backup(&self, agent_id: &str, bytes: &[u8]) -> Result<PathBuf, SessionsError> {
        let dir = &self.backups_dir;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create the backups directory", dir))?;
        let agent = file_safe(agent_id);
        remove_dead_temp_backups(dir);
        let tmp = dir.join(format!(
            "{TEMP_BACKUP_PREFIX}{agent}.{}.tmp",
            std::process::id()
        ));
        let written = (|| -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write the backup", &tmp)(e));
        }
        let now = SystemTime::now();
        let mut created = None;
        // Two backups in the same millisecond get the next free stamp (a hard link never
        // replaces an existing name).
        for bump_ms in 0..1000u64 {
            let stamp = utc_stamp(now + Duration::from_millis(bump_ms));
            let path = dir.join(format!("sessions-{agent}-{stamp}.json"));
            match fs::hard_link(&tmp, &path) {
                Ok(()) => {
                    created = Some(path);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(io_err("create the backup", &path)(e));
                }
            }
        }
        let _ = fs::remove_file(&tmp);
        let path = created.ok_or_else(|| SessionsError::Io {
            action: "name a new backup in",
            path: dir.clone(),
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        })?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync the backups directory", dir))?;
        let backups = self.backups_of(agent_id);
        let excess = backups.len().saturating_sub(BACKUPS_KEPT);
        for old in &backups[..excess] {
            if let Err(e) = fs::remove_file(old) {
                tracing::warn!("cannot remove old sessions backup {}: {e}", old.display());
            }
        }
        Ok(path)
    }

    /// Like [`Self::backup`], unless the newest backup already holds exactly these bytes.
    fn backup_once(&self, agent_id: &str, bytes: &[u8]) -> Result<PathBuf, SessionsError> {
        if let Some(newest) = self.backups_of(agent_id).pop() {
            if fs::read(&newest).is_ok_and(|old| old == bytes) {
                return Ok(newest);
            }
        }
        self.backup(agent_id, bytes)
    }

    /// This agent's backups, oldest first.
    pub fn backups_of(&self, agent_id: &str) -> Vec<PathBuf> {
        let prefix = format!("sessions-{}-", file_safe(agent_id));
        let Ok(entries) = fs::read_dir(&self.backups_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| {
                name.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".json"))
                    .is_some_and(is_stamp)
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| self.backups_dir.join(n))
            .collect()
    }
}

enum Assessment {
    Invalid(String),
    Valid {
        keys: Vec<String>,
        overflowing: Vec<usize>,
        plan: Option<Plan>,
    },
}

impl Assessment {
    fn action(&self) -> Option<StoreAction> {
        match self {
            Assessment::Invalid(error) => Some(StoreAction::InvalidJson {
                error: error.clone(),
            }),
            Assessment::Valid { plan, .. } => plan.as_ref().map(|p| p.action.clone()),
        }
    }
}

struct Plan {
    action: StoreAction,
    output: Vec<u8>,
}

impl StoreReport {
    fn fill(&mut self, bytes: &[u8], assessment: &Assessment) {
        self.exists = true;
        self.size_bytes = bytes.len() as u64;
        if let Assessment::Valid {
            keys, overflowing, ..
        } = assessment
        {
            self.entries = keys.len();
            self.overflowing = overflowing.iter().map(|&i| keys[i].clone()).collect();
        }
    }
}

/// The fields of an entry that decide its fate. Any other shape counts as "no numbers".
#[derive(Debug, Default, Deserialize)]
struct EntryProbe {
    #[serde(rename = "totalTokens", default)]
    total_tokens: Option<serde_json::Value>,
    #[serde(rename = "contextTokens", default)]
    context_tokens: Option<serde_json::Value>,
    #[serde(rename = "updatedAt", default)]
    updated_at: Option<serde_json::Value>,
}

impl EntryProbe {
    fn overflowing(&self) -> bool {
        let total = self.total_tokens.as_ref().and_then(|v| v.as_f64());
        let context = self.context_tokens.as_ref().and_then(|v| v.as_f64());
        // A zero window means "unknown", not "everything overflows".
        matches!((total, context), (Some(t), Some(c)) if c > 0.0 && t >= c)
    }

    fn updated_at(&self) -> f64 {
        self.updated_at
            .as_ref()
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NEG_INFINITY)
    }
}

fn probe(raw: &RawValue) -> EntryProbe {
    serde_json::from_str(raw.get()).unwrap_or_default()
}

/// The store as `(key, raw entry text)` pairs in file order.
type Entries = Vec<(String, Box<RawValue>)>;

struct OrderedEntries(Entries);

impl<'de> Deserialize<'de> for OrderedEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = OrderedEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of session entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Entries = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    // Like JSON.parse: a repeated key keeps its first position, last value.
                    match index.get(&key) {
                        Some(&i) => entries[i].1 = value,
                        None => {
                            index.insert(key.clone(), entries.len());
                            entries.push((key, value));
                        }
                    }
                }
                Ok(OrderedEntries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

fn parse_store(bytes: &[u8]) -> Result<Entries, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str::<OrderedEntries>(text)
        .map(|o| o.0)
        .map_err(|e| e.to_string())
}

/// OpenClaw's layout (`JSON.stringify(store, null, 2)`) with each kept entry's original text.
fn render(entries: &Entries, keep: &[bool], trailing_newline: bool) -> Vec<u8> {
    let kept: Vec<String> = entries
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|((key, raw), _)| format!("  {}: {}", json_string(key), raw.get()))
        .collect();
    let mut out = if kept.is_empty() {
        "{}".to_string()
    } else {
        format!("{{\n{}\n}}", kept.join(",\n"))
    };
    if trailing_newline {
        out.push('\n');
    }
    out.into_bytes()
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Size of `render` output without building it.
fn rendered_len(entries: &Entries, keep: &[bool], trailing_newline: bool) -> u64 {
    let (count, body) = entries
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .fold((0u64, 0u64), |(n, len), ((key, raw), _)| {
            (n + 1, len + entry_len(key, raw))
        });
    let frame = if count == 0 { 2 } else { 4 + 2 * (count - 1) };
    body + frame + u64::from(trailing_newline)
}

/// `  "key": raw`
fn entry_len(key: &str, raw: &RawValue) -> u64 {
    (json_string(key).len() + raw.get().len() + 4) as u64
}

/// Drops the oldest kept entries (by `updatedAt`; missing counts as oldest; ties in file
/// order) until the rendered file is under `target` bytes. Returns how many it dropped.
fn prune(
    entries: &Entries,
    probes: &[EntryProbe],
    keep: &mut [bool],
    target: u64,
    trailing_newline: bool,
) -> usize {
    let mut size = rendered_len(entries, keep, trailing_newline);
    let mut oldest_first: Vec<usize> = (0..entries.len()).filter(|&i| keep[i]).collect();
    oldest_first.sort_by(|&a, &b| probes[a].updated_at().total_cmp(&probes[b].updated_at()));
    let mut removed = 0;
    for i in oldest_first {
        if size < target {
            break;
        }
        keep[i] = false;
        // An entry takes its text plus 2 bytes of frame: a ",\n" separator, or for the last
        // one the difference between "{\n" + "\n}" and "{}".
        size -= entry_len(&entries[i].0, &entries[i].1) + 2;
        removed += 1;
    }
    debug_assert_eq!(size, rendered_len(entries, keep, trailing_newline));
    removed
}

/// `<agents>/<id>/agent/openclaw-agent.sqlite` for `<agents>/<id>/sessions/sessions.json`.
fn sqlite_path(store: &Path) -> Option<PathBuf> {
    Some(
        store
            .parent()?
            .parent()?
            .join("agent")
            .join("openclaw-agent.sqlite"),
    )
}

fn read_store(path: &Path) -> Result<Option<Vec<u8>>, SessionsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Length and mtime: enough to notice a writer that ignored the lock.
fn file_stamp(path: &Path) -> Result<(u64, Option<SystemTime>), SessionsError> {
    let meta = fs::metadata(path).map_err(io_err("stat", path))?;
    Ok((meta.len(), meta.modified().ok()))
}

fn temp_prefix(store: &Path) -> String {
    format!(
        ".{}.openclawd-",
        store.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// Name prefix of a backup being written (`.sessions-<agent>.<pid>.tmp`).
const TEMP_BACKUP_PREFIX: &str = ".sessions-";

/// Temp backups left by a process that died while writing one (a live one may be mid-copy).
fn remove_dead_temp_backups(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name
            .strip_prefix(TEMP_BACKUP_PREFIX)
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let pid = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !process_alive(p)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Temp files of an interrupted rewrite (we hold the lock, so none is in use).
fn remove_leftover_temp_files(store: &Path) {
    let (Some(dir), prefix) = (store.parent(), temp_prefix(store)) else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with(&prefix) || !name.ends_with(".tmp") {
            continue;
        }
        // A lock being taken right now by another live writer is not a leftover.
        if lock_temp_pid(&name).is_some_and(process_alive) {
            continue;
        }
        let _ = fs::remove_file(entry.path());
    }
}

/// Temp file in the same directory, write, fsync, rename over, fsync the directory.
fn write_atomic(
    path: &Path,
    bytes: &[u8],
    read_stamp: (u64, Option<SystemTime>),
    fault: Option<WriteStep>,
) -> Result<(), SessionsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        "{}{}-{nanos}.tmp",
        temp_prefix(path),
        std::process::id()
    ));
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        // Same permissions as the file it replaces (umask may have narrowed `mode`).
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("write the temp file", &tmp)(e));
    }
    if fault == Some(WriteStep::AfterTempWrite) {
        return Err(SessionsError::InjectedFault {
            step: WriteStep::AfterTempWrite,
        });
    }
    if file_stamp(path)? != read_stamp {
        let _ = fs::remove_file(&tmp);
        return Err(SessionsError::Changed {
            path: path.to_path_buf(),
        });
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("replace", path)(e));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync the directory", dir))
}

/// `YYYYmmddTHHMMSSfffZ` in UTC.
fn utc_stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t)
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == 'Z')
        .collect()
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..18].iter().all(u8::is_ascii_digit)
        && b[18] == b'Z'
}

fn file_safe(agent_id: &str) -> String {
    agent_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::housekeeping::store_lock::lock_pid;

    fn entries(text: &str) -> Entries {
        parse_store(text.as_bytes()).unwrap()
    }

    #[test]
    fn rendered_len_matches_render() {
        let e = entries(r#"{"a": {"x": 1}, "b\"q": [1, 2], "c": 3}"#);
        for keep in [
            vec![true, true, true],
            vec![false, true, false],
            vec![false; 3],
        ] {
            for nl in [false, true] {
                assert_eq!(
                    rendered_len(&e, &keep, nl),
                    render(&e, &keep, nl).len() as u64
                );
            }
        }
    }

    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        let e = entries(r#"{"a": 1, "b": 2, "a": 3}"#);
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        assert_eq!(pairs, vec![("a", "3"), ("b", "2")]);
    }

    #[test]
    fn non_objects_are_invalid() {
        assert!(parse_store(b"[]").is_err());
        assert!(parse_store(b"").is_err());
        assert!(parse_store(b"{\"a\":1} x").is_err());
    }

    #[test]
    fn stamps_sort_and_validate() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_771_581_240_512);
        let s = utc_stamp(t);
        assert_eq!(s, "20260220T095400512Z");
        assert!(is_stamp(&s));
        assert!(!is_stamp("2-20260220T095400512Z"));
    }

    #[test]
    fn lock_pids_are_read_from_json_or_a_number() {
        assert_eq!(lock_pid(r#"{"pid":42,"createdAt":"x"}"#), Some(42));
        assert_eq!(lock_pid("42\n"), Some(42));
        assert_eq!(lock_pid("garbage"), None);
        assert_eq!(lock_pid(r#"{"pid":0}"#), None);
    }
}
