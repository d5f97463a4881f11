//! `ollama.json` proves nothing by itself (SPEC §3 "Identity before any signal"). A record
//! naming a live process of this user with no start time, or with a wrong one, is reported and
//! ignored: the process it names — here a `sleep` leading its own session and process group,
//! with a second `sleep` in that session, so that a group or session kill would reach both —
//! survives openclawd's start, its shutdown, and `openclawd stop` with no daemon running.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use openclawd::ollama::process::{is_alive, session_members, start_time};
use serde_json::{json, Value};

/// `sh -c 'sleep 300 & exec sleep 300'` in a session (and group) of its own.
struct Sleepers {
    leader: Child,
}

impl Sleepers {
    fn start() -> Sleepers {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 300 & exec sleep 300"]);
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let s = Sleepers {
            leader: cmd.spawn().unwrap(),
        };
        wait_for(Duration::from_secs(5), "both sleeps running", || {
            s.all().len() == 2
        });
        s
    }

    fn pid(&self) -> u32 {
        self.leader.id()
    }

    /// The live processes of the session.
    fn all(&self) -> Vec<u32> {
        session_members(self.pid(), None)
    }

    fn assert_alive(&self, when: &str) {
        let all = self.all();
        assert_eq!(all.len(), 2, "{when}: the sleeps left are {all:?}");
        assert!(
            is_alive(self.pid()),
            "{when}: the recorded sleep was killed"
        );
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid() as i32), Signal::SIGKILL);
        let _ = self.leader.wait();
    }
}

fn write_record(env: &TestEnv, pid: u32, start_time: Value) {
    let dir = env.state.join("openclawd");
    std::fs::create_dir_all(&dir).unwrap();
    let rec = json!({
        "pid": pid,
        "start_time": start_time,
        "binary": env.ollama_path(),
        "version": "0.32.15",
        "address": env.ollama_base(),
    });
    std::fs::write(dir.join("ollama.json"), rec.to_string()).unwrap();
}

fn configure(env: &TestEnv) {
    env.write_config(&format!(
        "{{ models: {{ providers: {{ ollama: {{ baseUrl: '{}', api: 'ollama', models: [
            {{ id: 'llama3.2:3b', name: 'Llama', contextWindow: 131072, maxTokens: 8192 }} ] }} }} }},
           agents: {{ defaults: {{ model: {{ primary: 'ollama/llama3.2:3b' }} }} }} }}",
        env.ollama_base()
    ));
}

fn a_record_naming_a_foreign_process_never_gets_it_signalled(
    start_time: impl Fn(u32) -> Value,
    logged: &str,
) {
    let env = TestEnv::new();
    configure(&env);
    let sleepers = Sleepers::start();
    write_record(&env, sleepers.pid(), start_time(sleepers.pid()));

    let mut d = env.start();
    let st = d.wait_until("our own Ollama running", Duration::from_secs(30), |s| {
        s["ollama"]["state"] == "running" && s["ollama"]["management"] == "owned"
    });
    assert_ne!(st["ollama"]["pid"], json!(sleepers.pid()));
    assert!(d.log_text().contains(logged), "{}", d.log_text());
    sleepers.assert_alive("after start");

    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    sleepers.assert_alive("after shutdown");

    // `openclawd stop` with no daemon running reads the record too.
    write_record(&env, sleepers.pid(), start_time(sleepers.pid()));
    let (_, out, err) = env.cli(&["stop"]);
    sleepers.assert_alive(&format!("after `openclawd stop` ({out}{err})"));
}

#[test]
fn a_record_without_a_start_time_never_gets_its_process_signalled() {
    a_record_naming_a_foreign_process_never_gets_it_signalled(
        |_| Value::Null,
        "no start time is recorded for pid",
    );
}

#[test]
fn a_record_with_a_wrong_start_time_never_gets_its_process_signalled() {
    a_record_naming_a_foreign_process_never_gets_it_signalled(
        |pid| json!(start_time(pid).unwrap() + 1),
        "is another process now",
    );
}
