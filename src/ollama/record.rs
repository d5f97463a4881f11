//! `<state>/openclawd/ollama.json`: which Ollama process openclawd owns. It outlives openclawd on
//! purpose (SPEC §3), so the next openclawd can take a warm server back without restarting it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipRecord {
    pub pid: u32,
    /// `/proc/<pid>/stat` field 22 (clock ticks since boot); `None` where `/proc` is missing.
    pub start_time: Option<u64>,
    /// The executable spawned.
    pub binary: PathBuf,
    /// The server's version when last seen (the binary's until the server answered).
    pub version: Option<String>,
    /// The base URL it serves, `http://host:port`.
    pub address: String,
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
            start_time: Some(987654),
            binary: "/usr/local/bin/ollama".into(),
            version: Some("0.32.15".into()),
            address: "http://127.0.0.1:11434".into(),
        };
        write(dir.path(), &rec).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(rec.clone()));
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(record_path(dir.path())).unwrap()).unwrap();
        assert_eq!(json["pid"], 4242);
        assert_eq!(json["start_time"], 987654);
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
    fn a_corrupt_record_is_a_parse_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("openclawd")).unwrap();
        fs::write(record_path(dir.path()), "{not json").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ollama.json"), "{err}");
    }
}
