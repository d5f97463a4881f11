//! The `gemini-double` and `responses-double` executables (tests/cloud-doubles), started on a
//! free loopback port with their own key, control file and request log; killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct CloudDouble {
    child: Child,
    pub port: u16,
    pub control: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl CloudDouble {
    /// `gemini-double`: base URL `http://127.0.0.1:<port>/v1beta`.
    pub fn gemini(key: &str) -> CloudDouble {
        CloudDouble::start("gemini-double", key)
    }

    /// `responses-double`: base URL `http://127.0.0.1:<port>/v1`.
    pub fn responses(key: &str) -> CloudDouble {
        CloudDouble::start("responses-double", key)
    }

    fn start(bin: &str, key: &str) -> CloudDouble {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_openclawd")).with_file_name(bin);
        assert!(
            exe.exists(),
            "{} is not built: run `cargo build -p cloud-doubles` (or `cargo build --workspace`) first",
            exe.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let control = dir.path().join("control.json");
        let log = dir.path().join("requests.ndjson");
        let mut child = Command::new(&exe)
            .env_clear()
            .env("CLOUD_DOUBLE_KEY", key)
            .env("CLOUD_DOUBLE_CONTROL", &control)
            .env("CLOUD_DOUBLE_LOG", &log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", exe.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the Listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{bin} printed {line:?}, not `Listening on ADDR`"));
        CloudDouble {
            child,
            port,
            control,
            log,
            _dir: dir,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the control file atomically (it is re-read on every request).
    pub fn control(&self, v: &Value) {
        let tmp = self.control.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(v).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.control).unwrap();
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for CloudDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
