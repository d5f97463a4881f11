//! `<state>/openclawd/service.env`: the environment the service needs, because services do not
//! inherit the shell (OpenClaw's services lose `OLLAMA_API_KEY` and provider keys after a
//! reboot: notes/openclaw.md §5). Mode 0600, referenced by the unit (`EnvironmentFile=`) and
//! sourced by the launchd wrapper, so no secret sits in a world-readable file.
//!
//! The format is the common subset of systemd's `EnvironmentFile=` and POSIX `sh`: one
//! `NAME='value'` per line, a `'` inside a value written `'\''`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

/// What `NO_PROXY` must hold so loopback traffic never goes through a proxy.
pub const LOOPBACK_NO_PROXY: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// Proxy variables that capture plain-HTTP loopback traffic (Go, curl and undici read both
/// cases; `HTTPS_PROXY` does not apply to `http://127.0.0.1`).
pub const HTTP_PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

const HTTPS_PROXY_VARS: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Prefixes of variables the daemon (or the Ollama it starts) reads.
const PASSED_PREFIXES: [&str; 3] = ["OLLAMA_", "OPENCLAW_", "OPENCLAWD_"];

/// Names that look like credentials: shown masked by `install --dry-run`.
const SECRET_MARKERS: [&str; 6] = ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"];

/// The service environment, ready to render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEnv {
    pub vars: BTreeMap<String, String>,
    /// Names whose values are (or may be) secrets: masked when shown.
    pub secret: BTreeSet<String>,
    /// `${VAR}`s the config references that are set nowhere: the service would not load it.
    pub missing: Vec<String>,
}

/// Inputs of [`collect`].
pub struct EnvInputs<'a> {
    /// The environment `install` runs in (the user's shell).
    pub process_env: &'a BTreeMap<String, String>,
    /// The text of `openclaw.json` and its `$include`s.
    pub config_texts: &'a [String],
    /// Variables `env.vars` in the config provides itself (not needed in the file).
    pub config_env_vars: &'a BTreeSet<String>,
    /// The resolved state directory (always written, so a unit with another HOME finds it).
    pub state_dir: &'a Path,
    /// Command-line overrides turned into their environment variables.
    pub overrides: &'a [(&'static str, String)],
    /// Directories to put first on the service's `PATH` (where `ollama` and openclawd live).
    pub path_dirs: &'a [PathBuf],
}

/// `${NAME}` references in a config text (`$${NAME}` is an escape, not a reference).
pub fn referenced_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("${") {
        let start = i + pos;
        let escaped = start > 0 && bytes[start - 1] == b'$';
        let after = &text[start + 2..];
        if let Some(end) = after.find('}') {
            let name = &after[..end];
            if !escaped && is_env_var_name(name) {
                out.insert(name.to_string());
            }
        }
        i = start + 2;
    }
    out
}

/// OpenClaw's rule: `[A-Z_][A-Z0-9_]*`.
fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
}

/// Whether a `NO_PROXY` value exempts 127.0.0.1 and localhost.
pub fn no_proxy_covers_loopback(no_proxy: &str) -> bool {
    let items: Vec<&str> = no_proxy
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.contains(&"*") {
        return true;
    }
    let ip = items
        .iter()
        .any(|i| matches!(*i, "127.0.0.1" | "127.0.0.0/8" | "127.0.0.1/32"));
    let name = items
        .iter()
        .any(|i| matches!(*i, "localhost" | ".localhost"));
    ip && name
}

/// `NO_PROXY` with the loopback names appended (existing entries kept, in order).
pub fn with_loopback(no_proxy: Option<&str>) -> String {
    let mut items: Vec<String> = no_proxy
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for l in LOOPBACK_NO_PROXY {
        if !items.iter().any(|i| i == l) {
            items.push(l.to_string());
        }
    }
    items.join(",")
}

/// Builds the service environment from the user's current one.
pub fn collect(inputs: &EnvInputs<'_>) -> ServiceEnv {
    let env = inputs.process_env;
    let mut out = ServiceEnv::default();
    let set = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();

    let referenced: BTreeSet<String> = inputs
        .config_texts
        .iter()
        .flat_map(|t| referenced_vars(t))
        .collect();
    for name in &referenced {
        match set(name) {
            Some(v) => {
                out.vars.insert(name.clone(), v);
                out.secret.insert(name.clone());
            }
            None if inputs.config_env_vars.contains(name) => {}
            None => out.missing.push(name.clone()),
        }
    }
    for (name, value) in env {
        if value.is_empty() || !PASSED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        out.vars.insert(name.clone(), value.clone());
        if looks_secret(name) {
            out.secret.insert(name.clone());
        }
    }
    // Cloud providers may need the proxy; loopback must never go through it.
    let mut any_proxy = false;
    for name in HTTP_PROXY_VARS.iter().chain(HTTPS_PROXY_VARS.iter()) {
        if let Some(v) = set(name) {
            any_proxy = true;
            if v.contains('@') {
                out.secret.insert((*name).to_string());
            }
            out.vars.insert((*name).to_string(), v);
        }
    }
    for name in NO_PROXY_VARS {
        let current = set(name);
        if any_proxy {
            out.vars
                .insert(name.to_string(), with_loopback(current.as_deref()));
        } else if let Some(v) = current {
            out.vars.insert(name.to_string(), v);
        }
    }
    if let Some(v) = set("RUST_LOG") {
        out.vars.insert("RUST_LOG".into(), v);
    }
    for (name, value) in inputs.overrides {
        out.vars.insert((*name).to_string(), value.clone());
    }
    out.vars.insert(
        "OPENCLAW_STATE_DIR".into(),
        inputs.state_dir.display().to_string(),
    );
    out.vars
        .insert("PATH".into(), service_path(inputs.path_dirs));
    out
}

/// A short, stable `PATH`: the given directories, then the system ones.
fn service_path(first: &[PathBuf]) -> String {
    let mut dirs: Vec<String> = first
        .iter()
        .filter(|d| d.is_absolute())
        .map(|d| d.display().to_string())
        .collect();
    let system: &[&str] = if cfg!(target_os = "macos") {
        &[
            "/opt/homebrew/bin",
            "/usr/local/bin",
            "/usr/bin",
            "/bin",
            "/usr/sbin",
            "/sbin",
        ]
    } else {
        &["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    };
    for d in system {
        dirs.push((*d).to_string());
    }
    let mut seen = BTreeSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs.join(":")
}

/// `'value'` with `'` written `'\''`: read the same by systemd and by `sh`.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

const HEADER: &str = "\
# Environment of the openclawd service, written by `openclawd install`.
# Mode 0600: it may hold API keys. systemd reads it (EnvironmentFile=); the launchd job sources it.
# Re-run `openclawd install` after changing these variables in your shell.
";

/// The file's text.
pub fn render(env: &ServiceEnv) -> String {
    let mut out = String::from(HEADER);
    for (k, v) in &env.vars {
        out.push_str(&format!("{k}={}\n", quote(v)));
    }
    out
}

/// The file's text with secret values replaced by a note (what `--dry-run` prints).
pub fn render_masked(env: &ServiceEnv) -> String {
    let mut out = String::from(HEADER);
    for (k, v) in &env.vars {
        if env.secret.contains(k) {
            out.push_str(&format!(
                "{k}=<secret from your environment, {} characters>\n",
                v.chars().count()
            ));
        } else {
            out.push_str(&format!("{k}={}\n", quote(v)));
        }
    }
    out
}

/// Reads a file written by [`render`] (the quoting it uses, plus plain `NAME=value`).
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((name, raw)) = line.split_once('=') else {
            continue;
        };
        let mut value = String::new();
        let mut quoted = false;
        let mut chars = raw.trim_end().chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' => quoted = !quoted,
                '\\' if !quoted => {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                }
                c => value.push(c),
            }
        }
        out.insert(name.trim().to_string(), value);
    }
    out
}

/// Writes `contents` to `path` with mode 0600 from the first byte (temp file, fsync, rename).
pub fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    crate::fsutil::write_atomic_mode(path, contents.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn references_follow_openclaws_rule_and_skip_escapes() {
        let text = r#"{ a: "${ANTHROPIC_API_KEY}", b: "$${LITERAL}", c: "${lower}", d: "x${OPENROUTER_API_KEY}y${_X1}" }"#;
        let got: Vec<String> = referenced_vars(text).into_iter().collect();
        assert_eq!(got, vec!["ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "_X1"]);
    }

    #[test]
    fn the_file_holds_referenced_ollama_openclaw_and_proxy_variables_and_nothing_else() {
        let process = env(&[
            ("ANTHROPIC_API_KEY", "sk-ant-1"),
            ("OLLAMA_API_KEY", "ollama-local"),
            ("OLLAMA_HOST", "127.0.0.1:11500"),
            ("OPENCLAW_GATEWAY_TOKEN", "tok"),
            ("HTTP_PROXY", "http://user:pw@proxy:3128"),
            ("NO_PROXY", "corp.example"),
            ("UNRELATED_SECRET", "nope"),
            ("HOME", "/home/u"),
        ]);
        let texts = vec![
            r#"{ apiKey: "${ANTHROPIC_API_KEY}", other: "${MISSING_ONE}", v: "${FROM_CONFIG}" }"#
                .to_string(),
        ];
        let from_config: BTreeSet<String> = ["FROM_CONFIG".to_string()].into();
        let e = collect(&EnvInputs {
            process_env: &process,
            config_texts: &texts,
            config_env_vars: &from_config,
            state_dir: Path::new("/home/u/.openclaw"),
            overrides: &[("OPENCLAW_GATEWAY_PORT", "18790".into())],
            path_dirs: &[PathBuf::from("/opt/ollama/bin")],
        });
        assert_eq!(e.vars["ANTHROPIC_API_KEY"], "sk-ant-1");
        assert_eq!(e.vars["OLLAMA_API_KEY"], "ollama-local");
        assert_eq!(e.vars["OLLAMA_HOST"], "127.0.0.1:11500");
        assert_eq!(e.vars["OPENCLAW_GATEWAY_TOKEN"], "tok");
        assert_eq!(e.vars["OPENCLAW_GATEWAY_PORT"], "18790");
        assert_eq!(e.vars["OPENCLAW_STATE_DIR"], "/home/u/.openclaw");
        assert_eq!(e.vars["NO_PROXY"], "corp.example,127.0.0.1,localhost,::1");
        assert_eq!(e.vars["no_proxy"], "127.0.0.1,localhost,::1");
        assert!(e.vars["PATH"].starts_with("/opt/ollama/bin:"));
        assert!(!e.vars.contains_key("UNRELATED_SECRET"));
        assert!(!e.vars.contains_key("HOME"));
        assert_eq!(e.missing, vec!["MISSING_ONE"]);
        for s in [
            "ANTHROPIC_API_KEY",
            "OLLAMA_API_KEY",
            "OPENCLAW_GATEWAY_TOKEN",
            "HTTP_PROXY",
        ] {
            assert!(e.secret.contains(s), "{s} not treated as secret");
        }
        let masked = render_masked(&e);
        for secret in ["sk-ant-1", "ollama-local", "tok'", "pw@proxy"] {
            assert!(!masked.contains(secret), "{secret} shown in {masked}");
        }
    }

    #[test]
    fn values_round_trip_through_the_quoting() {
        let mut e = ServiceEnv::default();
        for v in ["plain", "with space", "it's", "a\"b\\c$d`e", "x=y=z", ""] {
            e.vars.insert(format!("V{}", e.vars.len()), v.to_string());
        }
        let parsed = parse(&render(&e));
        assert_eq!(parsed, e.vars);
    }

    #[test]
    fn sh_reads_the_quoting_the_same_way() {
        let mut e = ServiceEnv::default();
        e.vars
            .insert("A".into(), "it's a \"test\" $HOME `x`".into());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("service.env");
        std::fs::write(&file, render(&e)).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"set -a; . "$0"; printf %s "$A""#)
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "it's a \"test\" $HOME `x`"
        );
    }

    #[test]
    fn no_proxy_must_name_both_the_loopback_address_and_localhost() {
        assert!(no_proxy_covers_loopback("localhost,127.0.0.1"));
        assert!(no_proxy_covers_loopback(" * "));
        assert!(no_proxy_covers_loopback("127.0.0.0/8,.localhost"));
        assert!(!no_proxy_covers_loopback("localhost"));
        assert!(!no_proxy_covers_loopback("corp.example"));
        assert_eq!(with_loopback(Some("localhost")), "localhost,127.0.0.1,::1");
    }

    #[test]
    fn the_private_file_is_0600_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/service.env");
        write_private(&file, "A='1'\n").unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_private(&file, "A='2'\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "A='2'\n");
    }
}
