//! State safety: a sessions rewrite killed at any moment never leaves a truncated
//! `sessions.json` (it is the old bytes or the new ones), every backup is byte-identical to
//! what it backs up, and secrets never reach the logs, `/status`, `/metrics` or the CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openclawd::config::{OwnSessions, SessionsAction};
use openclawd::housekeeping::{Mode, SessionStore, SessionsGuard, WriteStep};
use serde_json::{json, Map, Value};

use crate::common::{fixture, TestEnv};
use crate::support::*;

/// An OpenClaw-shaped store of `entries` sessions (~2.5 KB each), the fixture's entries as
/// the template, with distinct keys and `updatedAt`.
fn big_store(entries: usize) -> Vec<u8> {
    let fixture: Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("openclaw/sessions.json")).unwrap())
            .unwrap();
    let templates: Vec<&Value> = fixture.values().collect();
    let mut out = Map::new();
    for i in 0..entries {
        let mut e = templates[i % templates.len()].clone();
        e["updatedAt"] = json!(1_771_000_000_000u64 + i as u64 * 1000);
        e["sessionId"] = json!(format!("00000000-0000-4000-8000-{i:012}"));
        e["systemPromptReport"] = json!({"text": "x".repeat(2048)});
        out.insert(format!("agent:main:session-{i}"), e);
    }
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(out)).unwrap();
    bytes.push(b'\n');
    bytes
}

fn store_at(state: &Path, bytes: &[u8]) -> SessionStore {
    let path = state.join("agents/main/sessions/sessions.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    SessionStore {
        agent_id: "main".into(),
        path,
    }
}

/// The files named as backups (`sessions-<agent>-<stamp>.json`); a temp copy a killed writer
/// left (`.sessions-<agent>.<pid>.tmp`) is not one.
fn backups(state: &Path) -> Vec<PathBuf> {
    let dir = state.join("openclawd/backups");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("sessions-") && n.ends_with(".json"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Temp backups in the backups directory.
fn temp_backups(state: &Path) -> usize {
    std::fs::read_dir(state.join("openclawd/backups"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        })
        .unwrap_or(0)
}

/// Files beside the store other than it and its lock. A lock a killed writer left behind is
/// fine as long as it names a dead process (stale, taken over by the next writer, as
/// OpenClaw's own locks are).
fn temp_leftovers(store: &Path) -> Vec<String> {
    let lock = store.with_file_name("sessions.json.lock");
    if let Ok(text) = std::fs::read_to_string(&lock) {
        if let Some(pid) = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["pid"].as_u64())
        {
            assert!(
                !crate::common::pid_alive(pid as i32),
                "a live process holds {}",
                lock.display()
            );
        }
    }
    std::fs::read_dir(store.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "sessions.json" && n != "sessions.json.lock")
        .collect()
}

#[test]
fn a_rewrite_interrupted_at_each_injected_step_leaves_the_store_whole() {
    let original = big_store(400);
    for action in [SessionsAction::Clear, SessionsAction::Prune] {
        for step in [WriteStep::AfterBackup, WriteStep::AfterTempWrite] {
            let dir = tempfile::tempdir().unwrap();
            let store = store_at(dir.path(), &original);
            let guard = SessionsGuard::new(
                dir.path().join("openclawd/backups"),
                OwnSessions {
                    max_bytes: 256 * 1024,
                    action,
                    interval: Duration::from_secs(300),
                },
            );
            // Crash at the step twice in a row, then let a round finish.
            for _ in 0..2 {
                assert!(guard
                    .check_with_fault(&store, Mode::Apply, Some(step))
                    .is_err());
                assert!(
                    std::fs::read(&store.path).unwrap() == original,
                    "{action:?} {step:?}: the store changed"
                );
            }
            let report = guard.check(&store, Mode::Apply).unwrap();
            assert!(report.action.is_some(), "{report:?}");
            let after = std::fs::read(&store.path).unwrap();
            let parsed: Value = serde_json::from_slice(&after).expect("valid JSON after");
            assert!(
                after.len() as u64 <= 256 * 1024,
                "{action:?}: {} bytes",
                after.len()
            );
            assert!(parsed.is_object());
            assert!(
                temp_leftovers(&store.path).is_empty(),
                "{:?}",
                temp_leftovers(&store.path)
            );
            let bs = backups(dir.path());
            assert_eq!(bs.len(), 3, "one backup per attempt: {bs:?}");
            for b in bs {
                assert!(
                    std::fs::read(&b).unwrap() == original,
                    "{} differs",
                    b.display()
                );
            }
        }
    }
}

/// A small deterministic generator (no seed files, reproducible runs).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Runs `cmd` to completion, watching the files: returns (a little before the first backup
/// byte appeared, when the process exited).
fn writing_window(env: &TestEnv, store: &Path, mut cmd: Command) -> (Duration, Duration) {
    let backups_dir = env.state.join("openclawd/backups");
    let _ = std::fs::remove_dir_all(&backups_dir);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut first_backup = None;
    let mut replaced = None;
    let original_len = std::fs::metadata(store).unwrap().len();
    loop {
        if first_backup.is_none()
            && std::fs::read_dir(&backups_dir).is_ok_and(|mut d| d.next().is_some())
        {
            first_backup = Some(start.elapsed());
        }
        if replaced.is_none() && std::fs::metadata(store).is_ok_and(|m| m.len() != original_len) {
            replaced = Some(start.elapsed());
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let end = replaced
        .map(|t| t + Duration::from_millis(2))
        .unwrap_or_else(|| start.elapsed());
    let begin = first_backup
        .map(|t| t.saturating_sub(Duration::from_millis(5)))
        .unwrap_or_default();
    (begin, end)
}

/// What one SIGKILL left behind.
#[derive(Default)]
struct KillOutcome {
    new_bytes: bool,
    /// A temp file beside the store: killed between creating it and the rename.
    mid_write: bool,
    /// A half-written temp backup: killed while backing up.
    mid_backup: bool,
    backups: usize,
}

/// Runs `cmd` (a sessions rewrite of the `original` store) and SIGKILLs it when `fire` says
/// so, then checks what it left: the old or the `expected` bytes, byte-identical backups, and
/// a next round that finishes the job and cleans up after the dead one.
fn kill_and_check(
    env: &TestEnv,
    store: &Path,
    original: &[u8],
    expected: &[u8],
    mut cmd: Command,
    what: &str,
    mut fire: impl FnMut() -> bool,
) -> KillOutcome {
    let _ = std::fs::remove_dir_all(env.state.join("openclawd/backups"));
    std::fs::write(store, original).unwrap();
    let mut child = cmd.spawn().unwrap();
    while !fire() && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_micros(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut outcome = KillOutcome::default();
    let now = std::fs::read(store).unwrap();
    if now == expected {
        outcome.new_bytes = true;
    } else if now != original {
        panic!(
            "{what}: sessions.json is neither the old nor the new content ({} bytes)",
            now.len()
        );
    }
    outcome.mid_write = !temp_leftovers(store).is_empty();
    outcome.mid_backup = temp_backups(&env.state) > 0;
    for b in backups(&env.state) {
        outcome.backups += 1;
        let got = std::fs::read(&b).unwrap();
        assert!(
            got == original,
            "{what}: backup {} is not byte-identical ({} of {} bytes)",
            b.display(),
            got.len(),
            original.len()
        );
    }
    outcome
}

/// What the kills left, counted.
#[derive(Default)]
struct Tally {
    /// [old bytes, new bytes]
    outcomes: [usize; 2],
    mid_write: usize,
    mid_backup: usize,
    with_backup: usize,
}

impl Tally {
    fn add(&mut self, o: &KillOutcome) {
        self.outcomes[usize::from(o.new_bytes)] += 1;
        self.mid_write += usize::from(o.mid_write);
        self.mid_backup += usize::from(o.mid_backup);
        self.with_backup += o.backups;
    }
}

/// The names beside the store other than it and its lock (a live writer's temp file too).
fn beside_store(store: &Path) -> usize {
    std::fs::read_dir(store.parent().unwrap())
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name();
                    n != "sessions.json" && n != "sessions.json.lock"
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn sessions_rewrites_sigkilled_at_random_moments_never_leave_a_truncated_file() {
    const KILLS: usize = 40;
    /// Kills aimed at a window the random ones missed, at most this many per window.
    const AIMED: usize = 10;
    let env = TestEnv::new();
    let original = big_store(3000); // ~8 MB: the write and its fsync take a while
    let run = |env: &TestEnv| {
        let mut c = Command::new(crate::common::openclawd_bin());
        c.args(["sessions", "--prune-now", "--json"]).env_clear();
        for (k, v) in env.envs() {
            c.env(k, v);
        }
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    let mut rng = Lcg(0x5eed_0009);
    let mut t = Tally::default();
    let (mut aimed_backup, mut aimed_write) = (0, 0);
    for action in ["prune", "clear"] {
        env.write_own_settings(&format!(
            "{{ sessions: {{ maxBytes: 1048576, action: '{action}' }} }}"
        ));
        // The complete run's result, and when its writing starts and ends: kills are aimed
        // at that window (before it, a kill trivially leaves the old bytes). Three runs, the
        // widest window: timings vary with the machine's load.
        let mut store = store_at(&env.state, &original);
        let (mut window_start, mut window_end) = (Duration::MAX, Duration::ZERO);
        for _ in 0..3 {
            store = store_at(&env.state, &original);
            let (start, end) = writing_window(&env, &store.path, run(&env));
            window_start = window_start.min(start);
            window_end = window_end.max(end);
        }
        let expected = std::fs::read(&store.path).unwrap();
        assert!(expected != original);
        let finish_and_clean = |env: &TestEnv, store: &Path, what: &str| {
            // The next round finishes the job and cleans up after the dead one.
            assert!(run(env).status().unwrap().success());
            let now = std::fs::read(store).unwrap();
            assert!(
                now == expected,
                "{what}: the next round left {} bytes, not the {} expected ({} originally)",
                now.len(),
                expected.len(),
                original.len()
            );
            assert!(
                temp_leftovers(store).is_empty(),
                "{:?}",
                temp_leftovers(store)
            );
            assert_eq!(
                temp_backups(&env.state),
                0,
                "a dead writer's temp backup was not removed"
            );
        };
        for _ in 0..KILLS / 2 {
            let span = (window_end - window_start).as_micros() as u64;
            let delay = window_start + Duration::from_micros(rng.below(span + 1));
            let started = Instant::now();
            let o = kill_and_check(
                &env,
                &store.path,
                &original,
                &expected,
                run(&env),
                &format!("{action}, killed at {delay:?}"),
                || started.elapsed() >= delay,
            );
            t.add(&o);
            finish_and_clean(&env, &store.path, &format!("{action}, killed at {delay:?}"));
        }
        // The windows the random kills must have hit; aim at one they missed: kill the moment
        // its temp file appears.
        let state = env.state.clone();
        let store_path = store.path.clone();
        for (window, hit) in [("backup", t.mid_backup), ("write", t.mid_write)] {
            if hit > 0 {
                continue;
            }
            for _ in 0..AIMED {
                let o = kill_and_check(
                    &env,
                    &store.path,
                    &original,
                    &expected,
                    run(&env),
                    &format!("{action}, killed in the {window} window"),
                    || match window {
                        "backup" => temp_backups(&state) > 0,
                        _ => beside_store(&store_path) > 0,
                    },
                );
                let landed = if window == "backup" {
                    o.mid_backup
                } else {
                    o.mid_write
                };
                t.add(&o);
                finish_and_clean(&env, &store.path, &format!("{action}, aimed at {window}"));
                if window == "backup" {
                    aimed_backup += 1;
                } else {
                    aimed_write += 1;
                }
                if landed {
                    break;
                }
            }
        }
    }
    figure(
        "state.sessions_kills",
        format!(
            "{KILLS} random SIGKILLs of `openclawd sessions --prune-now` on an 8 MB store (+{aimed_backup} aimed at the backup, +{aimed_write} at the write): {} left the old bytes, {} the new, 0 anything else; {} died mid-backup, {} with the new temp file written; {} backups, all byte-identical",
            t.outcomes[0], t.outcomes[1], t.mid_backup, t.mid_write, t.with_backup
        ),
    );
    // Kills that never landed inside the backup or the write prove nothing about them.
    assert!(
        t.mid_backup > 0,
        "no kill landed while a backup was written"
    );
    assert!(
        t.mid_write > 0,
        "no kill landed between the temp write and the rename"
    );
    assert!(t.outcomes[0] > 0 && t.outcomes[1] > 0, "{:?}", t.outcomes);
}

#[test]
fn secrets_never_reach_the_logs_status_metrics_or_the_cli() {
    use crate::common::cloud::FakeCloud;
    const ENV_KEY: &str = "sk-ant-reliability-env-41c9d0";
    const LITERAL_KEY: &str = "sk-literal-in-config-9d2e77";
    const PROFILE_KEY: &str = "sk-or-reliability-profile-3c7a55";
    const TOKEN: &str = "gw-reliability-token-5b1e99";
    const WRONG_TOKEN: &str = "gw-wrong-presented-token-8f8f";
    let secrets = [
        CLOUD_KEY,
        ENV_KEY,
        LITERAL_KEY,
        PROFILE_KEY,
        TOKEN,
        WRONG_TOKEN,
    ];

    let mut env = TestEnv::new();
    let openai = FakeCloud::openai(CLOUD_KEY);
    let claude = FakeCloud::anthropic(ENV_KEY);
    // Its key comes from the auth profile (no apiKey in the config).
    let openrouter = FakeCloud::openai(PROFILE_KEY);
    // Configured with a key the upstream refuses: the 401 path is logged too.
    let refusing = FakeCloud::openai("sk-the-upstream-wants-another");
    let providers = [
        ollama_provider(&env, None),
        openai_provider("cloud", &openai.base()),
        format!(
            "anthropic: {{ baseUrl: '{}', api: 'anthropic-messages', models: [ {{ id: 'm1', name: 'C', contextWindow: 200000, maxTokens: 1000 }} ] }}",
            claude.base()
        ),
        format!(
            "openrouter: {{ baseUrl: '{}/v1', api: 'openai-completions', models: [ {{ id: 'm1', name: 'O', contextWindow: 128000, maxTokens: 1000 }} ] }}",
            openrouter.base()
        ),
        format!(
            "refusing: {{ baseUrl: '{}/v1', apiKey: '{LITERAL_KEY}', api: 'openai-completions', models: [ {{ id: 'm1', name: 'R', contextWindow: 128000, maxTokens: 1000 }} ] }}",
            refusing.base()
        ),
    ];
    write_config(
        &mut env,
        &providers,
        "ollama/llama3.2:3b",
        &["cloud/m1"],
        "",
    );
    let agent = env.state.join("agents/main/agent");
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::write(
        agent.join("auth-profiles.json"),
        json!({"version": 1, "profiles": {"openrouter:default": {"type": "token", "provider": "openrouter", "token": PROFILE_KEY}}}).to_string(),
    )
    .unwrap();
    env.extra_env.extend([
        ("ANTHROPIC_API_KEY".to_string(), ENV_KEY.to_string()),
        ("OPENCLAW_GATEWAY_TOKEN".to_string(), TOKEN.to_string()),
        // Everything a person debugging might turn on.
        ("RUST_LOG".to_string(), "trace".to_string()),
    ]);
    let d = env.start();
    d.wait_until("Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running"
    });

    // Every request, sent with the gateway token, is answered in full: by the model asked for,
    // or (the refusing upstream) by the fallback after the 401.
    for (model, answered_by) in [
        ("ollama/llama3.2:3b", "ollama/llama3.2:3b"),
        ("cloud/m1", "cloud/m1"),
        ("anthropic/m1", "anthropic/m1"),
        ("openrouter/m1", "openrouter/m1"),
        ("refusing/m1", "cloud/m1"),
    ] {
        for stream in [false, true] {
            let resp = d.chat(&chat(model, stream), &[]);
            let status = resp.status().as_u16();
            let by = resp
                .headers()
                .get("x-openclawd-model")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = resp.text().unwrap_or_default();
            assert_eq!(status, 200, "{model} stream={stream}: {body}");
            assert_eq!(by, answered_by, "{model} stream={stream}: answered by {by}");
            if stream {
                assert_eq!(
                    stream_end(&body),
                    StreamEnd::Done,
                    "{model} stream={stream}: {body}"
                );
            } else {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert!(
                    v["choices"][0]["message"]["content"]
                        .as_str()
                        .is_some_and(|c| !c.is_empty()),
                    "{model}: {body}"
                );
            }
        }
    }
    // A client presenting a wrong token, or none.
    let (code, _) = crate::common::http_post(
        &format!("{}/v1/chat/completions", d.base),
        &[("authorization", &format!("Bearer {WRONG_TOKEN}"))],
        &chat("default", false).to_string(),
    )
    .unwrap();
    assert_eq!(code, 401);
    let (code, _) = crate::common::http_post(
        &format!("{}/v1/chat/completions", d.base),
        &[],
        &chat("default", false).to_string(),
    )
    .unwrap();
    assert_eq!(code, 401, "the gateway token is really required");
    // A broken edit on the line that holds a key, then the fix.
    let good = std::fs::read_to_string(env.config_path()).unwrap();
    env.write_config(&good.replace(
        &format!("apiKey: '{LITERAL_KEY}',"),
        &format!("apiKey: '{LITERAL_KEY}' oops"),
    ));
    d.wait_until("the broken edit reported", Duration::from_secs(20), |s| {
        s["config"]["error"].is_string()
    });
    env.write_config(&good);
    d.wait_until("the fix applied", Duration::from_secs(20), |s| {
        s["config"]["error"].is_null()
    });
    // Each upstream key really went upstream, on every request to its provider (the test is
    // not vacuous): two requests each; `cloud` also answers the refusing provider's two.
    let sent = |cloud: &FakeCloud, header: &str, value: &str| -> usize {
        let received = cloud.received();
        assert!(
            received.iter().all(|r| r.headers[header] == value),
            "a request without the key {value}"
        );
        received.len()
    };
    assert_eq!(
        sent(&openai, "authorization", &format!("Bearer {CLOUD_KEY}")),
        4
    );
    assert_eq!(sent(&claude, "x-api-key", ENV_KEY), 2);
    assert_eq!(
        sent(
            &openrouter,
            "authorization",
            &format!("Bearer {PROFILE_KEY}")
        ),
        2
    );
    // The refusing upstream once: its 401 cools the model down, so the second request goes
    // straight to the fallback.
    assert_eq!(
        sent(&refusing, "authorization", &format!("Bearer {LITERAL_KEY}")),
        1
    );

    let mut places: Vec<(String, String)> = Vec::new();
    for path in ["/status", "/metrics", "/v1/models", "/ready"] {
        places.push((
            path.to_string(),
            d.get(path).map(|(_, b)| b).unwrap_or_default(),
        ));
    }
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["models", "--json"],
        &["sessions", "--json"],
    ] {
        let (_, out, err) = env.cli(args);
        places.push((format!("openclawd {}", args.join(" ")), out + &err));
    }
    places.push((
        "ollama.log".into(),
        std::fs::read_to_string(env.state.join("logs/ollama.log")).unwrap_or_default(),
    ));
    places.push(("daemon log".into(), d.log_text()));
    let log_lines = d.log_text().lines().count();
    let trace_lines = d.log_text().matches("TRACE").count();
    assert!(trace_lines > 0, "RUST_LOG=trace took no effect");
    for (place, text) in &places {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {place}:\n{}",
                text.lines()
                    .filter(|l| l.contains(secret))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    figure(
        "state.secrets",
        format!(
            "{} secrets, {} places ({log_lines} daemon log lines, {trace_lines} of them TRACE): none found",
            secrets.len(),
            places.len()
        ),
    );
}
