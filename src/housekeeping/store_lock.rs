//! OpenClaw's `sessions.json.lock`: read to respect a live writer, taken (created exclusively,
//! like OpenClaw does) while openclawd rewrites a store.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::sessions::{io_err, SessionsError};

/// A lock whose pid cannot be read counts as held while younger than this.
const UNKNOWN_LOCK_FRESH: Duration = Duration::from_secs(30);
/// A lock older than this is stale even if its pid is alive (the pid was reused; OpenClaw's
/// own stale-lock rule).
const LOCK_MAX_AGE: Duration = Duration::from_secs(30 * 60);

pub(super) fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    store.with_file_name(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockState {
    Free,
    Stale,
    Held,
}

/// OpenClaw's lock holds `{"pid":N,"createdAt":"…"}`; a plain number is accepted too.
pub(super) fn lock_state(path: &Path) -> Result<LockState, SessionsError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockState::Free),
        Err(e) => return Err(io_err("stat the lock", path)(e)),
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    // Never follow a symlink or block on a FIFO planted as the lock; read a regular file only.
    let text = crate::fsutil::read_regular_file(path, 64 * 1024)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let held = match lock_pid(&text) {
        Some(pid) => process_alive(pid) && age < LOCK_MAX_AGE,
        None => age < UNKNOWN_LOCK_FRESH,
    };
    Ok(if held {
        LockState::Held
    } else {
        LockState::Stale
    })
}

pub(super) fn lock_pid(text: &str) -> Option<u32> {
    let text = text.trim();
    let pid = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map.get("pid")?.as_i64()?,
        Ok(serde_json::Value::Number(n)) => n.as_i64()?,
        _ => return None,
    };
    crate::procinfo::validate_pid(pid).ok()
}

/// The lock's holder still runs. A process whose identity cannot be read (another user's,
/// hidden) counts as running: the lock is then left to age out.
pub(super) fn process_alive(pid: u32) -> bool {
    match crate::procinfo::ProcessRef::inspect(pid) {
        Ok(_) => true,
        Err(e) => !e.is_stale() && !matches!(e, crate::procinfo::IdentityError::InvalidPid(_)),
    }
}

/// Our hold on `sessions.json.lock` (created exclusively, like OpenClaw does); removed on drop
/// if it still holds our payload.
pub(super) struct HeldLock {
    path: PathBuf,
    payload: String,
}

impl HeldLock {
    pub(super) fn acquire(path: &Path) -> Result<Option<HeldLock>, SessionsError> {
        let payload = serde_json::json!({
            "pid": std::process::id(),
            "createdAt": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        })
        .to_string();
        for _ in 0..2 {
            match create_with(path, payload.as_bytes()) {
                Ok(()) => {
                    return Ok(Some(HeldLock {
                        path: path.to_path_buf(),
                        payload,
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match lock_state(path)? {
                        LockState::Held => return Ok(None),
                        // A dead holder's lock: remove it, as OpenClaw itself does.
                        LockState::Stale => match fs::remove_file(path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_err("remove the stale lock", path)(e)),
                        },
                        LockState::Free => {}
                    }
                }
                Err(e) => return Err(io_err("create the lock", path)(e)),
            }
        }
        Ok(None)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if fs::read_to_string(&self.path).is_ok_and(|t| t == self.payload) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates `path` holding `payload`, atomically: written whole under a temp name, then linked
/// into place (which fails if `path` exists). A kill at any point leaves no empty lock behind —
/// an empty lock would stall every writer for [`UNKNOWN_LOCK_FRESH`].
fn create_with(path: &Path, payload: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let temp = path.with_file_name(lock_temp_name(path, std::process::id()));
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(payload)?;
        fs::hard_link(&temp, path)
    })();
    let _ = fs::remove_file(&temp);
    result
}

/// `.sessions.json.openclawd-lock-<pid>.tmp` for the lock `sessions.json.lock`: the store's
/// temp prefix, so a temp left by a killed writer is cleaned with the store's other leftovers
/// (once its writer is gone).
pub(super) fn lock_temp_name(lock: &Path, pid: u32) -> String {
    let name = lock.file_name().unwrap_or_default().to_string_lossy();
    let store = name.strip_suffix(".lock").unwrap_or(&name);
    format!(".{store}.openclawd-lock-{pid}.tmp")
}

/// The writer pid in a lock temp's name, if `name` is one.
pub(super) fn lock_temp_pid(name: &str) -> Option<u32> {
    name.rsplit_once(".openclawd-lock-")?
        .1
        .strip_suffix(".tmp")?
        .parse()
        .ok()
}
