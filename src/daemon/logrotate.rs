//! Rotation of openclawd's own log file. `openclawd start` points the daemon's stderr at
//! `<state>/logs/openclawd.log` (opened `O_APPEND`); under systemd the journal keeps the log and
//! nothing is done here. At 10 MiB the file is copied to `openclawd.log.1` and truncated: the
//! next line lands at the start of the emptied file (the way Ollama's log is rotated).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ollama::logfile::MAX_LOG_BYTES;

const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Whether this process's stderr is the file at `path`.
fn stderr_is(path: &Path) -> bool {
    // `/dev/fd/2` is our stderr on Linux and macOS; stat follows it to the file it is.
    let Ok(ours) = std::fs::metadata("/dev/fd/2") else {
        return false;
    };
    std::fs::metadata(path).is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino())
}

fn rotate(path: &Path) -> std::io::Result<()> {
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    std::fs::copy(path, PathBuf::from(rotated))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(0)
}

/// Runs until `shutdown`; rotates `path` when it is our stderr and over the limit.
pub(super) async fn run(path: PathBuf, shutdown: CancellationToken) {
    if !stderr_is(&path) {
        shutdown.cancelled().await;
        return;
    }
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let over = std::fs::metadata(&path).is_ok_and(|m| m.len() >= MAX_LOG_BYTES);
        if !over {
            continue;
        }
        let target = path.clone();
        match tokio::task::spawn_blocking(move || rotate(&target)).await {
            Ok(Ok(())) => tracing::info!("rotated {} (kept as .1)", path.display()),
            Ok(Err(e)) => tracing::warn!("cannot rotate {}: {e}", path.display()),
            Err(e) => tracing::warn!("cannot rotate {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_old_lines_and_empties_the_file_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclawd.log");
        std::fs::write(&path, "old line\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        rotate(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("openclawd.log.1")).unwrap(),
            "old line\n"
        );
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(after.len(), 0);
        assert_eq!(after.ino(), inode, "the writer's file, not a new one");
    }
}
