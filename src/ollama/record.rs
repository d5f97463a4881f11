//! `<state>/openclawd/ollama.json`: which Ollama process openclawd owns. It outlives openclawd on
//! purpose (SPEC §3), so the next openclawd can take a warm server back without restarting it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::signals;
use crate::procinfo::{validate_pid, IdentityError, ProcessRef, StartTime};

/// SIGTERM → SIGKILL grace for a recorded server.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipRecord {
    pub pid: u32,
    /// When the process started ([`StartTime`]: Linux clock ticks since boot, written as a
    /// string; older records hold a number). Required: a record without it proves nothing and
    /// is ignored (see [`OwnershipRecord::validate`]).
    pub start_time: Option<StartTime>,
    /// The executable spawned.
    pub binary: PathBuf,
    /// The server's version when last seen (the binary's until the server answered).
    pub version: Option<String>,
    /// The base URL it serves, `http://host:port`.
    pub address: String,
    /// Restarts so far, carried across a handover and a crash of openclawd. Absent in records
    /// written before it existed.
    #[serde(default)]
    pub history: RestartHistory,
}

/// What `status` says about past restarts of the supervised Ollama.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartHistory {
    pub restarts: u64,
    pub last_reason: Option<String>,
    /// RFC 3339, UTC.
    pub last_at: Option<String>,
}

/// A record's process identity, checked: a pid a signal can name, and a known start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedProcess {
    pub pid: u32,
    pub start_time: StartTime,
}

impl RecordedProcess {
    /// The recorded process, pinned, when it is still the one recorded.
    pub fn find(&self) -> Result<ProcessRef, IdentityError> {
        ProcessRef::recorded(i64::from(self.pid), Some(&self.start_time))
    }
}

impl OwnershipRecord {
    /// The recorded process when the record can identify one: pid in `2..=i32::MAX` (a larger
    /// value would turn negative in `kill`, 0 and 1 name a group or init) and a start time.
    pub fn validate(&self) -> Result<RecordedProcess, IdentityError> {
        let pid = validate_pid(i64::from(self.pid))?;
        match &self.start_time {
            Some(start_time) => Ok(RecordedProcess {
                pid,
                start_time: start_time.clone(),
            }),
            None => Err(IdentityError::NoStartTime { pid }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write {path}: {source}; check that the state directory is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid ownership record ({source}); it will be ignored")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is ignored and no process is signalled: {why}")]
    Invalid { path: PathBuf, why: IdentityError },
}

/// `<state>/openclawd/ollama.json`.
pub fn record_path(state_dir: &Path) -> PathBuf {
    state_dir.join("openclawd").join("ollama.json")
}

/// Reads the record; `Ok(None)` when there is none.
pub fn read(state_dir: &Path) -> Result<Option<OwnershipRecord>, RecordError> {
    let path = record_path(state_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordError::Read { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| RecordError::Parse { path, source })
}

/// Reads the record and checks it names a provable process: `Ok(None)` when there is none,
/// [`RecordError::Invalid`] when it cannot identify one (never signal what it names).
pub fn read_valid(
    state_dir: &Path,
) -> Result<Option<(OwnershipRecord, RecordedProcess)>, RecordError> {
    let Some(rec) = read(state_dir)? else {
        return Ok(None);
    };
    match rec.validate() {
        Ok(proc) => Ok(Some((rec, proc))),
        Err(why) => Err(RecordError::Invalid {
            path: record_path(state_dir),
            why,
        }),
    }
}

/// Writes the record atomically: a temp file in the same directory, fsync, rename, fsync the
/// directory. A crash at any point leaves either the old record or the new one.
pub fn write(state_dir: &Path, record: &OwnershipRecord) -> Result<(), RecordError> {
    let path = record_path(state_dir);
    let err = |source| RecordError::Write {
        path: path.clone(),
        source,
    };
    let mut body = serde_json::to_vec_pretty(record).map_err(|e| err(std::io::Error::other(e)))?;
    body.push(b'\n');
    crate::fsutil::write_atomic(&path, &body).map_err(err)
}

/// Stops the Ollama `ollama.json` names when no openclawd runs (`openclawd stop`): SIGTERM to
/// its group, 10 s grace, SIGKILL, then removes the record. Returns the pid it stopped, or
/// `None` when the record was absent or named a process that is gone (the record is removed).
/// A record that cannot prove its process is removed and returned as
/// [`RecordError::Invalid`]: what it names is never signalled.
pub async fn stop_recorded(state_dir: &Path) -> Result<Option<u32>, RecordError> {
    let Some(rec) = read(state_dir)? else {
        return Ok(None);
    };
    let recorded = match rec.validate() {
        Ok(p) => p,
        Err(why) => {
            remove(state_dir)?;
            return Err(RecordError::Invalid {
                path: record_path(state_dir),
                why,
            });
        }
    };
    let stopped = match recorded.find() {
        Ok(server) => {
            signals::stop_server(&server, STOP_GRACE).await;
            Some(server.pid())
        }
        Err(IdentityError::Gone { pid }) => {
            // Its runners may have outlived it.
            signals::kill_session_leftovers(pid, Some(&recorded.start_time), Some(&rec.binary));
            None
        }
        Err(e) => {
            tracing::warn!("{}: {e}", record_path(state_dir).display());
            None
        }
    };
    remove(state_dir)?;
    Ok(stopped)
}

/// Removes the record (absent is fine).
pub fn remove(state_dir: &Path) -> Result<(), RecordError> {
    let path = record_path(state_dir);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RecordError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_record_reads_back_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let rec = OwnershipRecord {
            pid: 4242,
            start_time: Some(StartTime::from_ticks(987654)),
            binary: "/usr/local/bin/ollama".into(),
            version: Some("0.32.15".into()),
            address: "http://127.0.0.1:11434".into(),
            history: RestartHistory {
                restarts: 3,
                last_reason: Some("ollama serve (pid 4241) was killed by signal 9".into()),
                last_at: Some("2026-11-30T04:00:00.000Z".into()),
            },
        };
        write(dir.path(), &rec).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(rec.clone()));
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(record_path(dir.path())).unwrap()).unwrap();
        assert_eq!(json["pid"], 4242);
        assert_eq!(json["start_time"], "987654");
        // No temp file is left beside it.
        let names: Vec<_> = fs::read_dir(dir.path().join("openclawd"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ollama.json")]);
        remove(dir.path()).unwrap();
        remove(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_record_without_history_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("openclawd")).unwrap();
        fs::write(
            record_path(dir.path()),
            r#"{"pid": 4242, "start_time": 9, "binary": "/usr/bin/ollama", "version": null,
                "address": "http://127.0.0.1:11434"}"#,
        )
        .unwrap();
        let rec = read(dir.path()).unwrap().unwrap();
        assert_eq!(rec.history, RestartHistory::default());
        assert_eq!(
            rec.validate().unwrap(),
            RecordedProcess {
                pid: 4242,
                start_time: StartTime::from_ticks(9)
            }
        );
    }

    #[test]
    fn records_that_cannot_prove_a_process_are_invalid() {
        let rec = |pid: u32, start_time: Option<u64>| OwnershipRecord {
            pid,
            start_time: start_time.map(StartTime::from_ticks),
            binary: "/usr/bin/ollama".into(),
            version: None,
            address: "http://127.0.0.1:11434".into(),
            history: RestartHistory::default(),
        };
        for bad in [
            rec(0, Some(1)),
            rec(1, Some(1)),
            rec(i32::MAX as u32 + 1, Some(1)),
            rec(u32::MAX, Some(1)),
            rec(4242, None),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(rec(2, Some(1)).validate().is_ok());
        assert!(rec(i32::MAX as u32, Some(1)).validate().is_ok());

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &rec(4242, None)).unwrap();
        let err = read_valid(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("no start time is recorded"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_record_is_a_parse_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("openclawd")).unwrap();
        fs::write(record_path(dir.path()), "{not json").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ollama.json"), "{err}");
    }
}
