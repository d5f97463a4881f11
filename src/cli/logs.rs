//! `openclawd logs [-f] [--ollama] [-n N]`: the daemon's log (or Ollama's) from `<state>/logs/`,
//! or the journal when systemd runs openclawd (SPEC §7).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::status::{daemon_endpoint, fetch_status, runtime};
use super::GlobalArgs;
use crate::gateway::status::LogPaths;

/// How often `-f` looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// Read backwards in steps of this much to find the last lines.
const TAIL_CHUNK: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct LogsOptions {
    pub follow: bool,
    pub ollama: bool,
    pub lines: usize,
}

pub fn logs(global: &GlobalArgs, opts: LogsOptions) -> anyhow::Result<ExitCode> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let snapshot = crate::config::degraded_snapshot(&global.overrides(), &env)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let paths = LogPaths::under(&snapshot.paths.state_dir);
    if !opts.ollama {
        // Under systemd the daemon's log is the journal; the running daemon knows its unit.
        let (base, token, _) = daemon_endpoint(global);
        let journal = runtime()?
            .block_on(fetch_status(&base, token.as_deref()))
            .report()
            .and_then(|st| st.logs.journal);
        if let Some(journal) = journal {
            return run_journalctl(&journal, &opts);
        }
    }
    let path = if opts.ollama {
        paths.ollama
    } else {
        paths.openclawd
    };
    let mut out = std::io::stdout().lock();
    let mut pos = match File::open(&path) {
        Ok(mut f) => {
            // Where the tail ends is where following starts: a line written meanwhile is
            // printed once, by the follower.
            let meta = f.metadata()?;
            let text = last_lines(&mut f, meta.len(), Some(&rotated(&path)), opts.lines)
                .with_context(|| format!("reading {}", path.display()))?;
            out.write_all(&text)?;
            out.flush()?;
            Some((meta.ino(), meta.len()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = if opts.ollama {
                "openclawd writes it when it starts Ollama itself"
            } else {
                "openclawd writes it when `openclawd start` or launchd runs it; under systemd see `journalctl --user -u openclawd`; `openclawd run` logs to its stderr"
            };
            if !opts.follow {
                eprintln!("openclawd: no log yet at {} ({hint}).", path.display());
                return Ok(ExitCode::FAILURE);
            }
            eprintln!(
                "openclawd: no log yet at {} ({hint}); waiting for it.",
                path.display()
            );
            None
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    if !opts.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        pos = follow_once(&path, pos, &mut out)?;
    }
}

/// `ollama.log.1`: the generation before the last rotation.
fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Prints what was appended since `pos` (inode, offset); starts over when the file was rotated
/// or truncated. Returns the new position.
fn follow_once(
    path: &Path,
    pos: Option<(u64, u64)>,
    out: &mut impl Write,
) -> anyhow::Result<Option<(u64, u64)>> {
    let Ok(mut f) = File::open(path) else {
        return Ok(pos);
    };
    let meta = f.metadata()?;
    let start = match pos {
        Some((ino, offset)) if ino == meta.ino() && offset <= meta.len() => offset,
        // A new file (rotated) or a shorter one (truncated): all of it is new.
        _ => 0,
    };
    if start == meta.len() {
        return Ok(Some((meta.ino(), start)));
    }
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(Some((meta.ino(), start + buf.len() as u64)))
}

/// The last `n` lines of `f` up to `end` (and, when it has fewer, the end of the `rotated`
/// generation).
fn last_lines(
    f: &mut File,
    end: u64,
    rotated: Option<&Path>,
    n: usize,
) -> std::io::Result<Vec<u8>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut start = end;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // A trailing newline ends the last line; it does not start another.
        let body = if buf.ends_with(b"\n") {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        let newlines = body.iter().filter(|b| **b == b'\n').count();
        if newlines >= n {
            let mut seen = 0;
            let cut = body
                .iter()
                .rposition(|b| {
                    if *b == b'\n' {
                        seen += 1;
                    }
                    seen == n
                })
                .map_or(0, |i| i + 1);
            return Ok(buf[cut..].to_vec());
        }
        if start == 0 {
            break;
        }
        let step = TAIL_CHUNK.min(start);
        start -= step;
        f.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    // The whole file has fewer than n lines: the rest from the previous generation.
    let have = buf.iter().filter(|b| **b == b'\n').count()
        + usize::from(!buf.is_empty() && !buf.ends_with(b"\n"));
    if let Some(mut old) = rotated.and_then(|r| File::open(r).ok()) {
        let old_len = old.metadata()?.len();
        let mut earlier = last_lines(&mut old, old_len, None, n - have.min(n))?;
        if !earlier.is_empty() && !earlier.ends_with(b"\n") {
            earlier.push(b'\n');
        }
        earlier.extend_from_slice(&buf);
        return Ok(earlier);
    }
    Ok(buf)
}

/// `journalctl --user -u openclawd.service -n N [-f]`, its exit status ours.
fn run_journalctl(command: &str, opts: &LogsOptions) -> anyhow::Result<ExitCode> {
    let mut words = command.split_whitespace();
    let program = words.next().context("empty journal command")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(words).args(["-n", &opts.lines.to_string()]);
    if opts.follow {
        cmd.arg("-f");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {command} (is journalctl installed?)"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(text: &str, rotated_text: Option<&str>, n: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, text).unwrap();
        let old = rotated(&path);
        if let Some(t) = rotated_text {
            std::fs::write(&old, t).unwrap();
        }
        let mut f = File::open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        String::from_utf8(last_lines(&mut f, len, Some(&old), n).unwrap()).unwrap()
    }

    #[test]
    fn the_last_lines_with_or_without_a_final_newline() {
        assert_eq!(tail_of("a\nb\nc\n", None, 2), "b\nc\n");
        assert_eq!(tail_of("a\nb\nc", None, 2), "b\nc");
        assert_eq!(tail_of("a\nb\nc\n", None, 5), "a\nb\nc\n");
        assert_eq!(tail_of("", None, 3), "");
        assert_eq!(tail_of("a\n", None, 0), "");
    }

    #[test]
    fn a_short_log_is_completed_from_the_rotated_one() {
        assert_eq!(tail_of("d\ne\n", Some("a\nb\nc\n"), 3), "c\nd\ne\n");
        assert_eq!(tail_of("d\ne\n", Some("a\nb\nc"), 4), "b\nc\nd\ne\n");
        assert_eq!(tail_of("d\ne", Some("a\nb\nc\n"), 3), "c\nd\ne");
    }

    #[test]
    fn lines_longer_than_a_chunk_are_read_whole() {
        let long = "x".repeat(TAIL_CHUNK as usize * 2 + 17);
        let text = format!("first\n{long}\nlast\n");
        assert_eq!(tail_of(&text, None, 2), format!("{long}\nlast\n"));
    }
}
