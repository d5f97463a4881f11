//! The config loader end to end: JSON5 parsing, `$include` resolution, `env.vars`, `${VAR}`
//! substitution and typed extraction, plus openclawd's own settings file. The input is split
//! at NUL bytes into up to three files: `openclaw.json`, `inc.json5` (reachable with
//! `$include: "inc.json5"`) and `openclawd/openclawd.json`. Loading must never panic, and a
//! failure must say where (`file:line:col` for syntax errors).
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use openclawd::config::{self, Overrides};

fn state_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("openclawd-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("openclawd")).unwrap();
        dir
    })
}

fn env() -> &'static BTreeMap<String, String> {
    static ENV: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = state_dir().display().to_string();
        [
            ("HOME", dir.as_str()),
            ("OPENCLAW_STATE_DIR", dir.as_str()),
            ("CLOUD_KEY", "sk-fuzz"),
            ("OLLAMA_API_KEY", "ollama-local"),
            ("OLLAMA_HOST", "127.0.0.1:11434"),
            ("EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = state_dir();
    let mut parts = data.splitn(3, |b| *b == 0);
    let main = parts.next().unwrap_or_default();
    let include = parts.next();
    let own = parts.next();
    let config = dir.join("openclaw.json");
    std::fs::write(&config, main).unwrap();
    let inc = dir.join("inc.json5");
    match include {
        Some(text) => std::fs::write(&inc, text).unwrap(),
        None => {
            let _ = std::fs::remove_file(&inc);
        }
    }
    let own_file = dir.join("openclawd/openclawd.json");
    match own {
        Some(text) => std::fs::write(&own_file, text).unwrap(),
        None => {
            let _ = std::fs::remove_file(&own_file);
        }
    }
    let overrides = Overrides {
        state_dir: Some(dir.clone()),
        config: Some(config),
        ..Default::default()
    };
    match config::load(&overrides, env()) {
        Ok(snapshot) => {
            // A loaded snapshot is usable: the catalogue and the supervisor settings build.
            let _ = openclawd::discovery::build_catalog(&snapshot, None, None, None);
            let _ = openclawd::ollama::SupervisorSettings::from_snapshot(&snapshot);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty());
            if let config::ConfigError::Syntax { .. } = e {
                assert!(
                    e.location().is_some(),
                    "a syntax error without a position: {text}"
                );
            }
        }
    }
});
