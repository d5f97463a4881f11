//! CI keeps the benchmark from rotting: a ~10 s run of every scenario (one short round, the
//! debug binaries `cargo test --workspace` builds) that must finish without a failed request
//! and write every table. It asserts nothing about speed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn built(name: &str) -> PathBuf {
    // The bench binary sits next to openclawd and the ollama and Gemini doubles in
    // target/<profile>/.
    let p = PathBuf::from(env!("CARGO_BIN_EXE_bench")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` (or `cargo test --workspace`) first",
        p.display()
    );
    p
}

#[test]
fn the_benchmark_runs_every_scenario_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("smoke")
        .arg("--openclawd")
        .arg(built("openclawd"))
        .arg("--ollama")
        .arg(built("ollama"))
        .arg("--gemini")
        .arg(built("gemini-double"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the smoke did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "bench smoke failed ({status}):\n{err}");

    let report = std::fs::read_to_string(&out).unwrap();
    for heading in [
        "## Goals",
        "## 1. Added latency",
        "## 2. Throughput",
        "## 3. Streaming",
        "## 4. Failover",
        "## 5. Memory",
        "## 6. Supervisor",
        "## 8. Other inbound APIs and clouds",
        "## Reproduce",
    ] {
        assert!(report.contains(heading), "no {heading:?} in:\n{report}");
    }
    // Scenario 7 needs nginx (scripts/bench-nginx-install.sh); where it is installed it must run.
    if std::path::Path::new("/usr/sbin/nginx").exists() {
        assert!(
            report.contains("## 7. CPU per request"),
            "nginx is installed but no scenario 7 in:\n{report}"
        );
    }
    assert!(
        report.contains("| **openclawd** → mock (`openai-completions`) |"),
        "{report}"
    );
    assert!(
        report.contains("| **openclawd** → mock (`ollama` native) |"),
        "{report}"
    );
    // Scenario 8: both new paths, non-streaming and streaming, beside the pass-through.
    for row in [
        "| **openclawd** `/v1/messages` → mock (`ollama` native) |",
        "| **openclawd** chat completions → Gemini double (`google-generative-ai`) |",
        "| **openclawd** chat completions → mock (`openai-completions`, pass-through) |",
    ] {
        assert_eq!(report.matches(row).count(), 2, "{row} twice in:\n{report}");
    }
}
