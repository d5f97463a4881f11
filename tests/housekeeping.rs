//! Housekeeping against real files and real processes: OpenClaw-shaped `sessions.json` stores
//! in temp state dirs, and python3 listeners standing in for stale gateways, live daemons and
//! unrelated programs on free ports.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use openclawd::config::{OwnSessions, ReclaimPolicy, SessionsAction};
use openclawd::housekeeping::{
    run_sessions_guard, Holder, HousekeepingStatus, Mode, PortError, PortReclaimer, Reclaim,
    SessionStore, SessionsError, SessionsGuard, StoreAction, WriteStep, BACKUPS_KEPT,
};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Sessions

const TELEGRAM_KEY: &str = "agent:main:telegram:group:-1001234567890";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openclaw")
        .join(name)
}

fn fixture_sessions() -> String {
    fs::read_to_string(fixture("sessions.json")).unwrap()
}

/// The fixture with the telegram session at its context window (totalTokens = contextTokens).
fn sessions_with_overflow() -> String {
    let text = fixture_sessions();
    assert_eq!(text.matches("\"totalTokens\": 40211").count(), 1);
    text.replace("\"totalTokens\": 40211", "\"totalTokens\": 131072")
}

/// A state dir with `agents/<agent>/sessions/sessions.json` holding `content`.
fn store_in(state: &Path, agent: &str, content: &[u8]) -> SessionStore {
    let path = state
        .join("agents")
        .join(agent)
        .join("sessions")
        .join("sessions.json");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
    SessionStore {
        agent_id: agent.to_string(),
        path,
    }
}

fn guard(state: &Path, max_bytes: u64, action: SessionsAction) -> SessionsGuard {
    SessionsGuard::new(
        state.join("openclawd").join("backups"),
        OwnSessions {
            max_bytes,
            action,
            interval: Duration::from_secs(300),
        },
    )
}

fn default_guard(state: &Path) -> SessionsGuard {
    guard(state, 10 * 1024 * 1024, SessionsAction::Clear)
}

/// Top-level entries in file order, each parsed.
fn ordered_entries(bytes: &[u8]) -> Vec<(String, Value)> {
    struct Ordered(Vec<(String, Value)>);
    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                    let mut out = Vec::new();
                    while let Some(pair) = m.next_entry()? {
                        out.push(pair);
                    }
                    Ok(Ordered(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Ordered>(bytes).unwrap().0
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn overflowing_session_is_removed_and_the_others_kept_as_they_were() {
    let state = TempDir::new().unwrap();
    let original = sessions_with_overflow();
    let store = store_in(state.path(), "main", original.as_bytes());
    let guard = default_guard(state.path());

    let report = guard.check(&store, Mode::Apply).unwrap();

    assert_eq!(
        report.action,
        Some(StoreAction::RemovedOverflow {
            keys: vec![TELEGRAM_KEY.to_string()]
        })
    );
    assert_eq!(report.overflowing, vec![TELEGRAM_KEY.to_string()]);
    assert_eq!(report.entries, 5);
    let written = fs::read(&store.path).unwrap();
    let mut expected = ordered_entries(original.as_bytes());
    expected.retain(|(k, _)| k != TELEGRAM_KEY);
    assert_eq!(ordered_entries(&written), expected);
    // Written the way OpenClaw writes it, each kept entry's text untouched.
    let written = String::from_utf8(written).unwrap();
    assert!(written.starts_with("{\n  \"agent:main:main\": {\n    \"sessionId\""));
    let main_entry_start = original.find("\"skillsSnapshot\"").unwrap();
    let main_entry_text = &original[main_entry_start..original.find("\n  },").unwrap()];
    assert!(written.contains(main_entry_text));
    // The original bytes are in the backup, the lock is released.
    let backup = report.backup.clone().unwrap();
    assert_eq!(fs::read_to_string(&backup).unwrap(), original);
    assert_eq!(guard.backups_of("main"), vec![backup]);
    assert!(!store.path.with_file_name("sessions.json.lock").exists());

    let again = guard.check(&store, Mode::Apply).unwrap();
    assert_eq!(again.action, None);
    assert_eq!(again.entries, 4);
    assert_eq!(guard.backups_of("main").len(), 1);
}

#[test]
fn oversized_file_is_cleared_after_a_byte_identical_backup() {
    let state = TempDir::new().unwrap();
    let original = fs::read(fixture("sessions.json")).unwrap();
    let store = store_in(state.path(), "main", &original);
    let guard = guard(state.path(), 1024, SessionsAction::Clear);

    let report = guard.check(&store, Mode::Apply).unwrap();

    assert_eq!(report.action, Some(StoreAction::Cleared));
    assert_eq!(report.size_bytes, original.len() as u64);
    assert_eq!(report.sessions_removed(), 5);
    assert_eq!(fs::read_to_string(&store.path).unwrap(), "{}\n");
    assert_eq!(fs::read(report.backup.unwrap()).unwrap(), original);
}

#[test]
fn prune_drops_the_oldest_sessions_until_under_half_the_limit() {
    let state = TempDir::new().unwrap();
    let mut store_map = serde_json::Map::new();
    for i in 0..40u64 {
        // File order (by key) is not age order.
        let updated_at = 1_771_500_000_000 + (i * 17 % 40) * 1000;
        store_map.insert(
            format!("agent:main:openai:{i:02}"),
            serde_json::json!({
                "sessionId": format!("s{i}"),
                "updatedAt": updated_at,
                "contextTokens": 65536,
                "totalTokens": 1000,
                "skillsSnapshot": {"prompt": "x".repeat(400)},
            }),
        );
    }
    // The newest session, but overflowing: removed whatever its age.
    store_map.insert(
        "agent:main:main".into(),
        serde_json::json!({"sessionId": "m", "updatedAt": 1_771_600_000_000u64,
                           "contextTokens": 8192, "totalTokens": 9000}),
    );
    let original = serde_json::to_string_pretty(&store_map).unwrap();
    let limit = 10_000;
    assert!(original.len() > limit);
    let store = store_in(state.path(), "main", original.as_bytes());
    let guard = guard(state.path(), limit as u64, SessionsAction::Prune);

    let report = guard.check(&store, Mode::Apply).unwrap();

    let written = fs::read(&store.path).unwrap();
    assert!(written.len() < limit / 2, "{} bytes", written.len());
    let kept = ordered_entries(&written);
    let before = ordered_entries(original.as_bytes());
    assert_eq!(
        report.action,
        Some(StoreAction::Pruned {
            removed: before.len() - kept.len()
        })
    );
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|(k, _)| k != "agent:main:main"));
    let age = |v: &Value| v["updatedAt"].as_u64().unwrap();
    let oldest_kept = kept.iter().map(|(_, v)| age(v)).min().unwrap();
    let removed: Vec<&(String, Value)> = before
        .iter()
        .filter(|(k, _)| k != "agent:main:main" && !kept.iter().any(|(kk, _)| kk == k))
        .collect();
    assert!(removed.iter().all(|(_, v)| age(v) < oldest_kept));
    // Kept entries are unchanged and in their original relative order.
    let expected: Vec<(String, Value)> = before
        .into_iter()
        .filter(|(k, _)| kept.iter().any(|(kk, _)| kk == k))
        .collect();
    assert_eq!(kept, expected);
}

#[test]
fn backups_rotate_keeping_the_newest_ten_per_agent() {
    let state = TempDir::new().unwrap();
    let guard = guard(state.path(), 64, SessionsAction::Clear);
    // Another agent whose id starts the same way: its backups are not ours to rotate.
    let backups = state.path().join("openclawd").join("backups");
    fs::create_dir_all(&backups).unwrap();
    let other = backups.join("sessions-main-2-20200101T000000000Z.json");
    fs::write(&other, "{}").unwrap();

    let mut originals = Vec::new();
    let mut store = None;
    for round in 0..12 {
        let content = format!(
            "{{\n  \"agent:main:main\": {{\n    \"sessionId\": \"round-{round}\",\n    \"updatedAt\": {round}\n  }}\n}}"
        );
        let s = store_in(state.path(), "main", content.as_bytes());
        let report = guard.check(&s, Mode::Apply).unwrap();
        assert_eq!(report.action, Some(StoreAction::Cleared));
        originals.push(content);
        store = Some(s);
    }

    let kept = guard.backups_of("main");
    assert_eq!(kept.len(), BACKUPS_KEPT);
    let contents: Vec<String> = kept
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(contents, originals[2..].to_vec());
    assert!(other.exists());
    assert_eq!(fs::read_to_string(&store.unwrap().path).unwrap(), "{}");
}

#[test]
fn invalid_json_is_never_rewritten_and_backed_up_once() {
    let state = TempDir::new().unwrap();
    let truncated = &fixture_sessions()[..1500];
    let store = store_in(state.path(), "main", truncated.as_bytes());
    let guard = guard(state.path(), 100, SessionsAction::Clear);

    let first = guard.check(&store, Mode::Apply).unwrap();
    let second = guard.check(&store, Mode::Apply).unwrap();

    assert!(
        matches!(&first.action, Some(StoreAction::InvalidJson { error }) if error.contains("EOF")),
        "{first:?}"
    );
    assert_eq!(fs::read(&store.path).unwrap(), truncated.as_bytes());
    let backup = first.backup.clone().unwrap();
    assert_eq!(fs::read(&backup).unwrap(), truncated.as_bytes());
    assert_eq!(second.backup, Some(backup));
    assert_eq!(guard.backups_of("main").len(), 1);

    // Valid JSON that is not an object is not a store either.
    fs::write(&store.path, "[1, 2]").unwrap();
    let report = guard.check(&store, Mode::Apply).unwrap();
    assert!(matches!(
        report.action,
        Some(StoreAction::InvalidJson { .. })
    ));
    assert_eq!(fs::read_to_string(&store.path).unwrap(), "[1, 2]");
}

/// A process that stays alive until dropped.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("600").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_lock_held_by_a_live_process_skips_the_round() {
    let state = TempDir::new().unwrap();
    let original = fixture_sessions();
    let store = store_in(state.path(), "main", original.as_bytes());
    let lock = store.path.with_file_name("sessions.json.lock");
    let guard = guard(state.path(), 1024, SessionsAction::Clear);
    let holder = Sleeper::start();
    fs::write(
        &lock,
        format!(
            "{{\"pid\":{},\"createdAt\":\"2026-02-20T09:14:05.771Z\"}}",
            holder.pid()
        ),
    )
    .unwrap();

    let report = guard.check(&store, Mode::Apply).unwrap();

    assert_eq!(report.action, Some(StoreAction::SkippedLocked));
    assert_eq!(fs::read_to_string(&store.path).unwrap(), original);
    assert!(guard.backups_of("main").is_empty());

    // Its holder gone, the lock is stale: the round goes ahead and cleans it up.
    drop(holder);
    let report = guard.check(&store, Mode::Apply).unwrap();
    assert_eq!(report.action, Some(StoreAction::Cleared));
    assert!(!lock.exists());
}

#[test]
fn a_fresh_lock_without_a_pid_counts_as_held() {
    let state = TempDir::new().unwrap();
    let store = store_in(state.path(), "main", fixture_sessions().as_bytes());
    fs::write(store.path.with_file_name("sessions.json.lock"), "").unwrap();
    let guard = guard(state.path(), 1024, SessionsAction::Clear);

    let report = guard.check(&store, Mode::Apply).unwrap();

    assert_eq!(report.action, Some(StoreAction::SkippedLocked));
}

#[test]
fn a_crash_between_temp_write_and_rename_leaves_the_old_file_intact() {
    let state = TempDir::new().unwrap();
    let original = sessions_with_overflow();
    let store = store_in(state.path(), "main", original.as_bytes());
    let guard = default_guard(state.path());
    let sessions_dir = store.path.parent().unwrap().to_path_buf();

    let crashed = guard.check_with_fault(&store, Mode::Apply, Some(WriteStep::AfterTempWrite));

    assert!(matches!(
        crashed,
        Err(SessionsError::InjectedFault {
            step: WriteStep::AfterTempWrite
        })
    ));
    assert_eq!(fs::read_to_string(&store.path).unwrap(), original);
    let leftovers: Vec<String> = files_in(&sessions_dir)
        .into_iter()
        .filter(|n| n != "sessions.json")
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(
        leftovers[0].starts_with(".sessions.json.openclawd-") && leftovers[0].ends_with(".tmp")
    );

    // The next round finds the intact original, finishes the job and removes the leftover.
    let report = guard.check(&store, Mode::Apply).unwrap();
    assert!(matches!(
        report.action,
        Some(StoreAction::RemovedOverflow { .. })
    ));
    assert_eq!(files_in(&sessions_dir), vec!["sessions.json".to_string()]);
    assert_eq!(ordered_entries(&fs::read(&store.path).unwrap()).len(), 4);
}

#[test]
fn a_crash_after_the_backup_leaves_the_store_untouched() {
    let state = TempDir::new().unwrap();
    let original = sessions_with_overflow();
    let store = store_in(state.path(), "main", original.as_bytes());
    let guard = default_guard(state.path());

    let crashed = guard.check_with_fault(&store, Mode::Apply, Some(WriteStep::AfterBackup));

    assert!(crashed.is_err());
    assert_eq!(fs::read_to_string(&store.path).unwrap(), original);
    assert_eq!(guard.backups_of("main").len(), 1);
}

#[test]
fn the_sqlite_generation_is_reported_and_never_touched() {
    let state = TempDir::new().unwrap();
    let original = sessions_with_overflow();
    let store = store_in(state.path(), "main", original.as_bytes());
    let agent_dir = state.path().join("agents/main/agent");
    fs::create_dir_all(&agent_dir).unwrap();
    fs::write(
        agent_dir.join("openclaw-agent.sqlite"),
        b"SQLite format 3\0",
    )
    .unwrap();
    let guard = guard(state.path(), 1024, SessionsAction::Clear);

    let report = guard.check(&store, Mode::Apply).unwrap();

    assert_eq!(report.action, Some(StoreAction::Sqlite));
    assert_eq!(fs::read_to_string(&store.path).unwrap(), original);
    assert!(!state.path().join("openclawd").exists());
}

#[test]
fn dry_run_reports_the_plan_and_changes_nothing() {
    let state = TempDir::new().unwrap();
    let original = sessions_with_overflow();
    let store = store_in(state.path(), "main", original.as_bytes());
    let guard = default_guard(state.path());

    let report = guard.check(&store, Mode::DryRun).unwrap();

    assert!(matches!(
        report.action,
        Some(StoreAction::RemovedOverflow { .. })
    ));
    assert_eq!(report.backup, None);
    assert_eq!(fs::read_to_string(&store.path).unwrap(), original);
    assert!(!state.path().join("openclawd").exists());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["action"]["kind"], "removed_overflow");
    assert_eq!(json["action"]["keys"][0], TELEGRAM_KEY);
}

#[test]
fn a_symlinked_store_stays_a_symlink() {
    let state = TempDir::new().unwrap();
    let real = state.path().join("elsewhere").join("sessions.json");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(&real, sessions_with_overflow()).unwrap();
    let sessions_dir = state.path().join("agents/main/sessions");
    fs::create_dir_all(&sessions_dir).unwrap();
    let link = sessions_dir.join("sessions.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let store = SessionStore {
        agent_id: "main".into(),
        path: link.clone(),
    };

    let report = default_guard(state.path())
        .check(&store, Mode::Apply)
        .unwrap();

    assert!(matches!(
        report.action,
        Some(StoreAction::RemovedOverflow { .. })
    ));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(ordered_entries(&fs::read(&real).unwrap()).len(), 4);
}

#[test]
fn a_missing_store_is_reported_as_absent() {
    let state = TempDir::new().unwrap();
    let store = SessionStore {
        agent_id: "main".into(),
        path: state.path().join("agents/main/sessions/sessions.json"),
    };
    let report = default_guard(state.path())
        .check(&store, Mode::Apply)
        .unwrap();
    assert!(!report.exists);
    assert_eq!(report.action, None);
}

#[tokio::test]
async fn the_guard_runs_at_start_and_on_each_trigger() {
    let state = TempDir::new().unwrap();
    let store = store_in(state.path(), "main", sessions_with_overflow().as_bytes());
    let guard = default_guard(state.path());
    let (status_tx, mut status_rx) = tokio::sync::watch::channel(HousekeepingStatus::default());
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::channel(4);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stores = {
        let store = store.clone();
        move || vec![store.clone()]
    };
    let runner = tokio::spawn(run_sessions_guard(
        guard,
        stores,
        Duration::from_secs(3600),
        trigger_rx,
        status_tx,
        shutdown.clone(),
    ));

    let status = wait_status(&mut status_rx, |s| s.sessions_cleared_total == 1).await;
    assert!(status
        .last_action
        .as_deref()
        .unwrap()
        .contains(TELEGRAM_KEY));
    assert_eq!(status.stores.len(), 1);

    // OpenClaw writes another overflowing session; the file watcher triggers a round.
    let text = fs::read_to_string(&store.path).unwrap();
    fs::write(
        &store.path,
        text.replace("\"totalTokens\": 54014", "\"totalTokens\": 200000"),
    )
    .unwrap();
    trigger_tx.send(()).await.unwrap();
    let status = wait_status(&mut status_rx, |s| s.sessions_cleared_total == 2).await;
    assert_eq!(status.stores[0].entries, 4);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), runner)
        .await
        .unwrap()
        .unwrap();
}

async fn wait_status(
    rx: &mut tokio::sync::watch::Receiver<HousekeepingStatus>,
    done: impl Fn(&HousekeepingStatus) -> bool,
) -> HousekeepingStatus {
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| done(s)))
        .await
        .expect("status never reached the expected state")
        .unwrap()
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Port

/// Listens on a free loopback port, prints it, never answers.
const LISTENER_PY: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    time.sleep(3600)
"#;

/// Like LISTENER_PY, but ignores SIGTERM.
const STUBBORN_PY: &str = r#"
import signal, socket, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    time.sleep(3600)
"#;

/// A live openclawd handing over: answers /health; on SIGUSR2 closes its listener at once and
/// keeps running ("draining") for 8 s, then exits 0.
const DRAINING_PY: &str = r#"
import http.server, signal, threading, time, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
def handover(*_):
    server.shutdown()
    server.server_close()
    time.sleep(8)
    os._exit(0)
signal.signal(signal.SIGUSR2, handover)
while True:
    time.sleep(3600)
"#;

/// Answers /health and /healthz with 200 on a free loopback port, prints the port.
const HEALTH_PY: &str = r#"
import http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/health", "/healthz"):
            body = b'{"ok":true,"status":"live"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a prober that hangs up early is fine
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The real python executable (not a pyenv shim).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import os, sys; print(os.path.realpath(sys.executable))",
            ])
            .output()
            .expect("python3 is needed for the port tests");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A temp dir with the scripts, a lock dir and a state dir.
struct Scene {
    dir: TempDir,
}

impl Scene {
    fn new() -> Scene {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join("listener.py"), LISTENER_PY).unwrap();
        fs::write(dir.path().join("health_server.py"), HEALTH_PY).unwrap();
        fs::write(dir.path().join("stubborn.py"), STUBBORN_PY).unwrap();
        fs::write(dir.path().join("draining.py"), DRAINING_PY).unwrap();
        fs::create_dir_all(dir.path().join("locks")).unwrap();
        fs::create_dir_all(dir.path().join("state")).unwrap();
        Scene { dir }
    }
    fn script(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn reclaimer(&self, port: u16) -> PortReclaimer {
        let mut r = PortReclaimer::new(port, self.state(), ReclaimPolicy::Stale);
        r.lock_dirs = vec![self.dir.path().join("locks")];
        r
    }
    /// A copy of the python executable named `openclawd`.
    fn fake_openclawd(&self) -> PathBuf {
        let bin = self.dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("openclawd");
        fs::copy(python(), &exe).unwrap();
        exe
    }
}

/// A listening process, killed and reaped when dropped.
struct Holding {
    child: Option<Child>,
    port: u16,
}

impl Holding {
    fn spawn(exe: &Path, script: &Path, args: &[&str]) -> Holding {
        Self::spawn_with(Command::new(exe).arg(script).args(args))
    }

    fn spawn_with(command: &mut Command) -> Holding {
        command.stdout(Stdio::piped()).stdin(Stdio::null());
        // A just-copied executable may be briefly "busy" while another test thread forks.
        let mut child = None;
        for _ in 0..50 {
            match command.spawn() {
                Ok(c) => {
                    child = Some(c);
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("cannot start {command:?}: {e}"),
            }
        }
        let mut child = child.expect("executable stayed busy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("listener printed {line:?}"));
        Holding {
            child: Some(child),
            port,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn is_alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Reaps the stopped process and returns the signal that ended it.
    fn ended_by(&mut self) -> Option<i32> {
        self.child.take().unwrap().wait().unwrap().signal()
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a test's precondition (root, a tool) holds. CI provides them all, so under
/// `CI=true` a missing one fails the test instead of letting it pass unchecked; elsewhere the
/// test says what it skipped.
fn precondition(holds: bool, what: &str) -> bool {
    if !holds {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but this test's precondition is missing: {what}"
        );
        eprintln!("not run here: {what}");
    }
    holds
}

fn port_is_bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Field 22 of /proc/<pid>/stat, counted after the last ')'.
fn start_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_free_port_needs_nothing() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let scene = Scene::new();
    assert_eq!(
        scene.reclaimer(port).free_port().await.unwrap(),
        Reclaim::AlreadyFree
    );
}

#[tokio::test]
async fn a_stale_gateway_named_by_its_command_line_is_terminated() {
    let scene = Scene::new();
    let mut gateway = Holding::spawn(
        python(),
        &scene.script("listener.py"),
        &["openclaw", "gateway", "--port", "18789"],
    );

    let reclaim = scene.reclaimer(gateway.port).free_port().await.unwrap();

    let Reclaim::Reclaimed { pid, what, why } = reclaim else {
        panic!("not reclaimed: {reclaim:?}");
    };
    assert_eq!(pid, gateway.pid());
    assert_eq!(what, Holder::OpenclawGateway);
    assert!(why.contains("did not answer /health"), "{why}");
    assert_eq!(gateway.ended_by(), Some(libc::SIGTERM));
    assert!(port_is_bindable(gateway.port));
}

#[tokio::test]
async fn a_gateway_ignoring_sigterm_is_killed() {
    let scene = Scene::new();
    let mut gateway = Holding::spawn(
        python(),
        &scene.script("stubborn.py"),
        &["openclaw", "gateway"],
    );

    let reclaim = scene.reclaimer(gateway.port).free_port().await.unwrap();

    assert!(matches!(reclaim, Reclaim::Reclaimed { .. }), "{reclaim:?}");
    assert_eq!(gateway.ended_by(), Some(libc::SIGKILL));
    assert!(port_is_bindable(gateway.port));
}

#[tokio::test]
async fn a_stale_gateway_named_by_its_lock_file_is_terminated() {
    let scene = Scene::new();
    let mut gateway = Holding::spawn(python(), &scene.script("listener.py"), &[]);
    let lock = scene.dir.path().join("locks").join("gateway.d71013c3.lock");
    fs::write(
        &lock,
        format!(
            r#"{{"pid":{},"createdAt":"2026-02-20T09:14:05.771Z","configPath":"/home/me/.openclaw/openclaw.json","startTime":{}}}"#,
            gateway.pid(),
            start_ticks(gateway.pid())
        ),
    )
    .unwrap();

    let reclaim = scene.reclaimer(gateway.port).free_port().await.unwrap();

    assert!(
        matches!(&reclaim, Reclaim::Reclaimed { what: Holder::OpenclawGateway, why, .. }
            if why.contains("gateway.d71013c3.lock")),
        "{reclaim:?}"
    );
    assert_eq!(gateway.ended_by(), Some(libc::SIGTERM));
    assert!(port_is_bindable(gateway.port));
}

#[tokio::test]
async fn a_lock_file_with_another_start_time_does_not_identify_a_reused_pid() {
    let scene = Scene::new();
    let mut holder = Holding::spawn(python(), &scene.script("listener.py"), &[]);
    let lock = scene.dir.path().join("locks").join("gateway.d71013c3.lock");
    fs::write(
        &lock,
        format!(
            r#"{{"pid":{},"createdAt":"2026-02-20T09:14:05.771Z","configPath":"/x","startTime":{}}}"#,
            holder.pid(),
            start_ticks(holder.pid()) + 1
        ),
    )
    .unwrap();

    let err = scene.reclaimer(holder.port).free_port().await.unwrap_err();

    assert!(matches!(err, PortError::Foreign { .. }), "{err}");
    assert!(holder.is_alive());
}

#[tokio::test]
async fn a_healthy_gateway_is_stopped_only_with_force() {
    let scene = Scene::new();
    let mut gateway = Holding::spawn(
        python(),
        &scene.script("health_server.py"),
        &["openclaw", "gateway", "run"],
    );
    let mut reclaimer = scene.reclaimer(gateway.port);

    let err = reclaimer.free_port().await.unwrap_err();

    assert!(
        matches!(err, PortError::HealthyGateway { pid, .. } if pid == gateway.pid()),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("openclaw gateway stop"), "{message}");
    assert!(message.contains("--force"), "{message}");
    assert!(gateway.is_alive());

    reclaimer.force = true;
    let reclaim = reclaimer.free_port().await.unwrap();

    assert!(
        matches!(&reclaim, Reclaim::Reclaimed { what: Holder::OpenclawGateway, why, .. }
            if why.contains("force")),
        "{reclaim:?}"
    );
    assert_eq!(gateway.ended_by(), Some(libc::SIGTERM));
    assert!(port_is_bindable(gateway.port));
}

#[tokio::test]
async fn reclaim_never_refuses_even_a_stale_gateway() {
    let scene = Scene::new();
    let mut gateway = Holding::spawn(
        python(),
        &scene.script("listener.py"),
        &["openclaw", "gateway"],
    );
    let mut reclaimer = scene.reclaimer(gateway.port);
    reclaimer.policy = ReclaimPolicy::Never;

    let err = reclaimer.free_port().await.unwrap_err();

    assert!(matches!(err, PortError::ReclaimDisabled { .. }), "{err}");
    assert!(err.to_string().contains("\"never\""));
    assert!(gateway.is_alive());
}

#[tokio::test]
async fn an_openclawd_whose_executable_was_deleted_is_handed_over_with_sigusr2() {
    let scene = Scene::new();
    let exe = scene.fake_openclawd();
    // It still answers /health: a deleted executable alone makes it stale (an upgrade).
    let mut old = Holding::spawn(&exe, &scene.script("health_server.py"), &[]);
    fs::remove_file(&exe).unwrap();

    let reclaim = scene.reclaimer(old.port).free_port().await.unwrap();

    assert!(
        matches!(&reclaim, Reclaim::Reclaimed { what: Holder::Openclawd, why, pid }
            if why.contains("deleted") && *pid == old.pid()),
        "{reclaim:?}"
    );
    assert_eq!(old.ended_by(), Some(libc::SIGUSR2));
    assert!(port_is_bindable(old.port));
}

#[tokio::test]
async fn a_live_openclawd_is_already_running_unless_taking_over() {
    let scene = Scene::new();
    let exe = scene.fake_openclawd();
    let mut live = Holding::spawn(&exe, &scene.script("health_server.py"), &[]);
    let mut reclaimer = scene.reclaimer(live.port);

    let err = reclaimer.free_port().await.unwrap_err();

    assert_eq!(
        err.to_string(),
        format!("openclawd is already running (pid {})", live.pid())
    );
    assert!(live.is_alive());

    reclaimer.takeover = true;
    let reclaim = reclaimer.free_port().await.unwrap();
    assert!(
        matches!(
            &reclaim,
            Reclaim::Reclaimed {
                what: Holder::Openclawd,
                ..
            }
        ),
        "{reclaim:?}"
    );
    assert_eq!(live.ended_by(), Some(libc::SIGUSR2));
}

#[tokio::test]
async fn openclawd_is_also_recognised_by_its_pid_file() {
    let scene = Scene::new();
    let live = Holding::spawn(python(), &scene.script("health_server.py"), &[]);
    let own = scene.state().join("openclawd");
    fs::create_dir_all(&own).unwrap();
    let pid_file = own.join("openclawd.pid");

    // Without its start time (an older openclawd's file, or a crafted one) the pid file
    // identifies nothing: the holder is a foreign program.
    fs::write(&pid_file, format!("{}\n", live.pid())).unwrap();
    let err = scene.reclaimer(live.port).free_port().await.unwrap_err();
    assert!(matches!(err, PortError::Foreign { .. }), "{err}");
    // A wrong start time: a reused pid.
    fs::write(
        &pid_file,
        format!("{}\nstart={}\n", live.pid(), start_ticks(live.pid()) + 1),
    )
    .unwrap();
    let err = scene.reclaimer(live.port).free_port().await.unwrap_err();
    assert!(matches!(err, PortError::Foreign { .. }), "{err}");

    fs::write(
        &pid_file,
        format!("{}\nstart={}\n", live.pid(), start_ticks(live.pid())),
    )
    .unwrap();
    let err = scene.reclaimer(live.port).free_port().await.unwrap_err();
    assert!(
        matches!(err, PortError::AlreadyRunning { pid } if pid == live.pid()),
        "{err}"
    );
}

#[tokio::test]
async fn an_openclawd_that_lets_go_of_the_port_is_left_to_drain_not_killed() {
    let scene = Scene::new();
    let exe = scene.fake_openclawd();
    let mut old = Holding::spawn(&exe, &scene.script("draining.py"), &[]);
    let mut reclaimer = scene.reclaimer(old.port);
    reclaimer.takeover = true;
    reclaimer.exit_timeout = Duration::from_secs(3);

    let started = std::time::Instant::now();
    let reclaim = reclaimer.free_port().await.unwrap();

    assert!(
        matches!(
            &reclaim,
            Reclaim::Reclaimed {
                what: Holder::Openclawd,
                ..
            }
        ),
        "{reclaim:?}"
    );
    // The port is free long before the exit timeout; the old instance is still draining, and
    // is not killed.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(port_is_bindable(old.port));
    assert!(old.is_alive(), "the draining instance was killed");
    let status = old.child.take().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(0), "it finished draining: {status:?}");
}

#[tokio::test]
async fn a_lock_dir_others_may_write_is_not_trusted() {
    let scene = Scene::new();
    let mut holder = Holding::spawn(python(), &scene.script("listener.py"), &[]);
    let locks = scene.dir.path().join("locks");
    fs::write(
        locks.join("gateway.d71013c3.lock"),
        format!(
            r#"{{"pid":{},"createdAt":"2026-02-20T09:14:05.771Z","configPath":"/x","startTime":{}}}"#,
            holder.pid(),
            start_ticks(holder.pid())
        ),
    )
    .unwrap();
    fs::set_permissions(&locks, fs::Permissions::from_mode(0o777)).unwrap();

    let err = scene.reclaimer(holder.port).free_port().await.unwrap_err();

    // The lock would have named it a gateway; from a world-writable dir it names nothing.
    assert!(matches!(err, PortError::Foreign { .. }), "{err}");
    assert!(holder.is_alive());
}

// Multi-threaded, and the reclaim in its own task: a reclaimer blocked on the FIFO then
// fails the timeout below instead of hanging the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_place_of_a_lock_file_does_not_hang_the_reclaimer() {
    let scene = Scene::new();
    let mut gateway = Holding::spawn(
        python(),
        &scene.script("listener.py"),
        &["openclaw", "gateway"],
    );
    nix::unistd::mkfifo(
        &scene.dir.path().join("locks").join("gateway.fifo.lock"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();

    let reclaimer = scene.reclaimer(gateway.port);
    let task = tokio::spawn(async move { reclaimer.free_port().await });
    let reclaim = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("the reclaimer hung on the FIFO")
        .unwrap()
        .unwrap();

    assert!(matches!(reclaim, Reclaim::Reclaimed { .. }), "{reclaim:?}");
    assert_eq!(gateway.ended_by(), Some(libc::SIGTERM));
}

#[tokio::test]
async fn an_unrelated_program_is_refused_and_left_running() {
    let scene = Scene::new();
    let mut other = Holding::spawn(python(), &scene.script("listener.py"), &[]);

    let err = scene.reclaimer(other.port).free_port().await.unwrap_err();

    let PortError::Foreign {
        pid,
        port,
        command,
        owner,
    } = &err
    else {
        panic!("expected Foreign, got {err}");
    };
    assert_eq!(*pid, other.pid());
    assert_eq!(*port, other.port);
    assert!(command.contains("listener.py"), "{command}");
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    assert_eq!(owner, &me);
    let message = err.to_string();
    assert!(message.contains(&format!("pid {pid}")), "{message}");
    assert!(message.contains("gateway.port / --port"), "{message}");
    assert!(other.is_alive());
    assert!(!port_is_bindable(other.port));
}

#[tokio::test]
async fn another_users_gateway_is_never_signalled() {
    if !precondition(
        nix::unistd::geteuid().is_root(),
        "needs root to start a process as another user",
    ) {
        return;
    }
    let system_python = Path::new("/usr/bin/python3");
    if !precondition(
        system_python.exists(),
        "needs /usr/bin/python3 readable by nobody",
    ) {
        return;
    }
    let scene = Scene::new();
    fs::set_permissions(scene.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(system_python);
    command
        .arg(scene.script("listener.py"))
        .args(["openclaw", "gateway"])
        .uid(65534)
        .gid(65534);
    let mut theirs = Holding::spawn_with(&mut command);

    let mut reclaimer = scene.reclaimer(theirs.port);
    reclaimer.force = true;
    let err = reclaimer.free_port().await.unwrap_err();

    assert!(
        matches!(&err, PortError::OtherUser { pid, .. } if *pid == theirs.pid()),
        "{err}"
    );
    assert!(theirs.is_alive());
}
