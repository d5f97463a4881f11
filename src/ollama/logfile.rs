//! `<state>/logs/ollama.log`: an owned Ollama's stdout and stderr go to this file, never to a
//! pipe (a pipe would kill Ollama with SIGPIPE at its next line once openclawd is gone). A
//! follower task tails it into tracing (target `ollama`) and rotates it by size.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;

/// Rotate when the log reaches this size: it becomes `ollama.log.1` (one generation kept).
pub const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// At most this much is read per tick, so a log storm cannot stall the follower.
const READ_CHUNK: u64 = 1024 * 1024;

/// `<state>/logs/ollama.log`.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("logs").join("ollama.log")
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Opens the log for a new child (append, created with its directory), rotating it first if it
/// is over the limit. Returns the file and its length before the child writes anything.
pub fn open_for_child(path: &Path, max_bytes: u64) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    if fs::metadata(path)
        .map(|m| m.len() >= max_bytes)
        .unwrap_or(false)
    {
        // No writer holds it now (the previous server is gone), so a rename is safe.
        fs::rename(path, rotated_path(path))?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// The log text written since `offset` (the whole file if it was rotated meanwhile), at most
/// the last 64 KiB of it. Used to read why a child that just exited failed.
pub fn read_since(path: &Path, offset: u64) -> String {
    const TAIL: u64 = 64 * 1024;
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = if len < offset { 0 } else { offset };
    let from = from.max(len.saturating_sub(TAIL));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.take(TAIL).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Follows `path` from its current end into tracing (target `ollama`) until aborted, rotating it
/// (copy to `.1`, then truncate: the writer has it open with `O_APPEND`, so its next line lands
/// at the new start) when it reaches `max_bytes`.
pub fn follow(path: PathBuf, max_bytes: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut offset = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut partial = Vec::new();
        loop {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            offset = follow_once(&path, offset, max_bytes, &mut partial);
        }
    })
}

/// One tick of the follower: emit complete new lines, rotate if needed; returns the new offset.
fn follow_once(path: &Path, mut offset: u64, max_bytes: u64, partial: &mut Vec<u8>) -> u64 {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < offset {
        // Truncated or replaced under us: start over.
        offset = 0;
        partial.clear();
    }
    if len > offset && f.seek(SeekFrom::Start(offset)).is_ok() {
        let mut buf = Vec::new();
        if let Ok(n) = (&mut f).take(READ_CHUNK).read_to_end(&mut buf) {
            offset += n as u64;
            partial.extend_from_slice(&buf);
            emit_complete_lines(partial);
        }
    }
    if offset >= max_bytes && offset == len {
        if let Err(e) = fs::copy(path, rotated_path(path))
            .and_then(|_| OpenOptions::new().write(true).open(path)?.set_len(0))
        {
            tracing::warn!(log = %path.display(), "cannot rotate the Ollama log: {e}");
        } else {
            return 0;
        }
    }
    offset
}

fn emit_complete_lines(partial: &mut Vec<u8>) {
    while let Some(nl) = partial.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = partial.drain(..=nl).collect();
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if !text.is_empty() {
            emit(text);
        }
    }
}

/// Forwards one Ollama log line at the level Ollama gave it (`level=WARN` ...). gin's access
/// lines (`[GIN] ...`, one per request, our own health probes among them) go to debug.
fn emit(line: &str) {
    let level = if line.starts_with("[GIN]") {
        "DEBUG"
    } else {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("level="))
            .unwrap_or("INFO")
    };
    match level {
        "ERROR" => tracing::error!(target: "ollama", "{line}"),
        "WARN" => tracing::warn!(target: "ollama", "{line}"),
        "DEBUG" | "TRACE" => tracing::debug!(target: "ollama", "{line}"),
        _ => tracing::info!(target: "ollama", "{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn an_oversized_log_is_rotated_when_a_child_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path());
        let (mut f, len) = open_for_child(&path, 16).unwrap();
        assert_eq!(len, 0);
        f.write_all(b"0123456789abcdefXYZ\n").unwrap();
        let (_f, len) = open_for_child(&path, 16).unwrap();
        assert_eq!(len, 0);
        assert_eq!(
            fs::read_to_string(rotated_path(&path)).unwrap(),
            "0123456789abcdefXYZ\n"
        );
    }

    #[test]
    fn follower_rotates_by_copy_and_truncate_and_appends_continue_at_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path());
        let (mut writer, _) = open_for_child(&path, 32).unwrap();
        writer
            .write_all(b"first line that is long enough\nsecond\n")
            .unwrap();
        let mut partial = Vec::new();
        let offset = follow_once(&path, 0, 32, &mut partial);
        assert_eq!(offset, 0, "rotated");
        assert!(fs::read_to_string(rotated_path(&path))
            .unwrap()
            .contains("second"));
        writer.write_all(b"third\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "third\n");
        let offset = follow_once(&path, 0, 32, &mut partial);
        assert_eq!(offset, 6);
        assert!(partial.is_empty());
    }

    #[test]
    fn read_since_returns_only_what_the_child_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path());
        let (mut f, _) = open_for_child(&path, MAX_LOG_BYTES).unwrap();
        f.write_all(b"old run\n").unwrap();
        let (mut f, offset) = open_for_child(&path, MAX_LOG_BYTES).unwrap();
        f.write_all(b"Error: listen tcp 127.0.0.1:9: bind: address already in use\n")
            .unwrap();
        let text = read_since(&path, offset);
        assert!(text.starts_with("Error: listen tcp"));
        assert!(!text.contains("old run"));
    }
}
