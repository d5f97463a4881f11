//! Identity before any signal (SPEC §3), against the real binary: a pid file that names a
//! process openclawd cannot prove is its own daemon — no start time, a wrong one, a pid file
//! older than the process, a bad pid — never gets that process signalled by `stop`, `restart`
//! or `install`; and a handover (`openclawd restart`) lets the old instance finish its streams.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sse::{chat_chunks, content_of};
use common::*;
use nix::sys::signal::Signal;
use serde_json::json;

/// A live process of ours that is not openclawd. `as_openclawd`: its argv[0] says
/// `openclawd` (what the old name-only check trusted).
struct Bystander {
    child: Child,
}

impl Bystander {
    fn start(as_openclawd: bool) -> Bystander {
        let mut cmd = Command::new("sleep");
        cmd.arg("300").stdin(Stdio::null());
        if as_openclawd {
            cmd.arg0("openclawd");
        }
        Bystander {
            child: cmd.spawn().expect("sleep"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `/proc/<pid>/stat` field 22.
    fn start_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let rest = stat.rsplit_once(')').unwrap().1;
        rest.split_whitespace().nth(19).unwrap().parse().unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none() && pid_alive(self.pid() as i32)
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pid_file(env: &TestEnv) -> PathBuf {
    env.state.join("openclawd/openclawd.pid")
}

fn plant_pid_file(env: &TestEnv, text: &str) {
    std::fs::create_dir_all(env.state.join("openclawd")).unwrap();
    std::fs::write(pid_file(env), text).unwrap();
}

/// The pid on the first line of the pid file.
fn pid_file_pid(env: &TestEnv) -> Option<i32> {
    std::fs::read_to_string(pid_file(env))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A daemon `openclawd start`/`restart` left in the background: killed with its Ollama when
/// the test ends.
struct Background {
    pid: i32,
    state: PathBuf,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGKILL);
        kill_recorded_ollama(&self.state);
    }
}

/// The records a crafted or corrupt pid file may hold, each naming `b`.
fn bad_records(b: &Bystander) -> Vec<(&'static str, String)> {
    let pid = b.pid();
    vec![
        ("no start time", format!("{pid}\n")),
        (
            "a wrong start time",
            format!("{pid}\nstart={}\n", b.start_ticks() + 1),
        ),
        ("an empty start time", format!("{pid}\nstart=\n")),
    ]
}

#[test]
fn stop_never_signals_a_process_the_pid_file_cannot_prove_is_openclawd() {
    for as_openclawd in [false, true] {
        let mut b = Bystander::start(as_openclawd);
        for (what, record) in bad_records(&b) {
            let env = TestEnv::new();
            plant_pid_file(&env, &record);
            let (code, out, err) = env.cli(&["stop"]);
            assert!(code.success(), "{what}: {out}{err}");
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                b.alive(),
                "{what} (argv0 openclawd: {as_openclawd}): the bystander was signalled\n{out}{err}"
            );
            assert!(out.contains("not running"), "{what}: {out}{err}");
            if what != "a wrong start time" {
                // Invalid records are reported, not silently dropped.
                assert!(err.contains("openclawd.pid"), "{what}: {err}");
            }
        }
    }
}

#[test]
fn a_pid_file_older_than_the_process_it_names_is_not_trusted() {
    // Right pid, right start time, argv0 `openclawd` — but the file predates the process:
    // the pid was reused after the daemon that wrote it died.
    let mut b = Bystander::start(true);
    let env = TestEnv::new();
    plant_pid_file(&env, &format!("{}\nstart={}\n", b.pid(), b.start_ticks()));
    let old = std::fs::File::options()
        .write(true)
        .open(pid_file(&env))
        .unwrap();
    old.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(old);
    let (code, out, err) = env.cli(&["stop"]);
    assert!(code.success(), "{out}{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(b.alive(), "signalled through a stale pid file\n{out}{err}");
    assert!(err.contains("not an openclawd of yours"), "{err}");
}

#[test]
fn invalid_pids_in_the_pid_file_are_reported_and_ignored() {
    for pid in ["0", "1", "-1", "2147483648", "4294967297", "abc"] {
        let env = TestEnv::new();
        plant_pid_file(&env, &format!("{pid}\nstart=1\n"));
        let (code, out, err) = env.cli(&["stop"]);
        assert!(code.success(), "{pid}: {out}{err}");
        assert!(out.contains("not running"), "{pid}: {out}");
        assert!(
            err.contains("not a valid openclawd pid file"),
            "{pid}: {err}"
        );
    }
}

#[test]
fn restart_and_install_leave_a_process_named_by_a_bad_pid_file_alone() {
    let mut b = Bystander::start(true);
    for (what, record) in bad_records(&b) {
        // restart: the bystander is not "the old daemon"; a fresh one starts beside it.
        let env = TestEnv::new();
        plant_pid_file(&env, &record);
        let (code, out, err) = env.cli(&["restart"]);
        let new = pid_file_pid(&env);
        let _guard = new.map(|pid| Background {
            pid,
            state: env.state.clone(),
        });
        assert!(code.success(), "{what}: {out}{err}");
        assert!(out.contains("was not running"), "{what}: {out}");
        assert!(b.alive(), "{what}: restart signalled the bystander");
        assert_ne!(new, Some(b.pid() as i32));
        let (code, _, _) = env.cli(&["stop"]);
        assert!(code.success());

        // install, with a service manager that answers: the SIGUSR2 handover path.
        let env = TestEnv::new();
        plant_pid_file(&env, &record);
        let script = "#!/bin/sh\ncase \"$*\" in\n  --version) echo 'systemd 255 (255.4-1)' ;;\n  *is-active*) echo active ;;\n  *show*) echo 0 ;;\nesac\nexit 0\n";
        let systemctl = env.bin_dir.join("systemctl");
        std::fs::write(&systemctl, script).unwrap();
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (code, out, err) = env.cli(&["install", "--dry-run"]);
        assert!(code.success(), "{what}: {out}{err}");
        let (code, out, err) = env.cli(&["install"]);
        assert!(code.success(), "{what}: {out}{err}");
        assert!(
            !out.contains("Handing the running openclawd"),
            "{what}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(b.alive(), "{what}: install signalled the bystander");
    }
}

#[test]
fn an_eight_second_stream_survives_openclawd_restart() {
    let env = TestEnv::new();
    // 16 tokens 500 ms apart: 8 s, longer than the 5 s the new instance used to give the old.
    let tokens: Vec<String> = (0..16).map(|i| format!("t{i} ")).collect();
    env.write_control(&json!({"token_delay_ms": 500, "reply_tokens": tokens}));
    env.write_config(&format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: 'http://127.0.0.1:{}', api: 'ollama', \
         models: [ {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072 }} ] }} }} }}, \
         agents: {{ defaults: {{ model: {{ primary: 'ollama/llama3.2:3b' }} }} }} }}",
        env.ollama_port
    ));
    let mut old = env.start();
    old.wait_until("model available", Duration::from_secs(30), |s| {
        s["models"].as_array().is_some_and(|ms| {
            ms.iter()
                .any(|m| m["ref"] == "ollama/llama3.2:3b" && m["available"] == true)
        })
    });
    let resp = old.chat(
        &json!({"model": "default", "stream": true,
                "messages": [{"role": "user", "content": "Why is the sky blue?"}]}),
        &[],
    );
    assert_eq!(resp.status(), 200);
    let reader = std::thread::spawn(move || {
        let started = Instant::now();
        let mut events = Vec::new();
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                events.push(data.to_string());
            }
        }
        (events, started.elapsed())
    });
    // The stream is under way when the restart begins.
    std::thread::sleep(Duration::from_millis(1200));
    let (code, out, err) = env.cli(&["restart"]);
    let new = pid_file_pid(&env);
    let _guard = new.map(|pid| Background {
        pid,
        state: env.state.clone(),
    });
    assert!(code.success(), "{out}{err}\nold log:\n{}", old.log_text());
    assert_ne!(new, Some(old.pid()));

    let (events, took) = reader.join().unwrap();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "the stream was cut ({took:?}): {events:?}\nold log:\n{}",
        old.log_text()
    );
    let text = content_of(&chat_chunks(&events));
    assert_eq!(text, tokens.concat(), "every token arrived");
    println!("FIGURE restart_stream_seconds: {:.2}", took.as_secs_f64());
    assert!(
        took >= Duration::from_secs(6),
        "the stream was paced: {took:?}"
    );
    let exit = old.wait_exit(Duration::from_secs(15));
    assert!(
        exit.success(),
        "the old instance drained and exited 0: {exit:?}"
    );
    // Leaving, the old instance did not remove the new one's pid file.
    assert_eq!(
        pid_file_pid(&env),
        new,
        "the pid file still names the new daemon"
    );
    // The new instance (its output is the background log) let the old one drain.
    let new_log = std::fs::read_to_string(env.state.join("logs/openclawd.log")).unwrap();
    assert!(new_log.contains("let go of port"), "{new_log}");
    assert!(!new_log.contains("SIGKILL"), "{new_log}");
    let (code, out, err) = env.cli(&["stop"]);
    assert!(code.success(), "{out}{err}");
}

/// "Only `procinfo` signals processes": no `kill(`/`killpg(` call and no `libc::kill`
/// anywhere in `src/` outside `src/procinfo`. A method named `kill()` on a `Child` we spawned
/// and have not reaped (`child.kill()`, `start_kill()`) is not a pid signal and is allowed.
#[test]
fn only_procinfo_signals_processes() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != src.join("procinfo") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                if signals_a_pid(line) {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "signals outside src/procinfo (use procinfo::ProcessRef):\n{}",
        offenders.join("\n")
    );
}

/// `kill(` or `killpg(` called as a function (not as a method `.kill(`, not `start_kill(`),
/// or any mention of `libc::kill`.
fn signals_a_pid(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    if code.contains("libc::kill") {
        return true;
    }
    ["kill(", "killpg("].iter().any(|needle| {
        code.match_indices(needle).any(|(i, _)| {
            let before = code[..i].chars().next_back();
            !matches!(before, Some(c) if c == '.' || c == '_' || c.is_alphanumeric())
        })
    })
}

#[test]
fn the_signal_grep_catches_calls_and_spares_child_methods() {
    assert!(signals_a_pid(
        "    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);"
    ));
    assert!(signals_a_pid("nix::sys::signal::kill(pid, None)"));
    assert!(signals_a_pid("let _ = killpg(pgid, sig);"));
    assert!(signals_a_pid("unsafe { libc::kill(pid, 9) }"));
    assert!(!signals_a_pid("let _ = child.kill();"));
    assert!(!signals_a_pid("child.start_kill()?;"));
    assert!(!signals_a_pid("// we never kill( here"));
    assert!(!signals_a_pid("fn kill_group_and_session(pgid: u32) {"));
}
