//! Loading real files from temp dirs with an injected environment.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openclaw");

/// A temp home with `~/.openclaw` and an environment that points at it (and nothing else).
struct Home {
    _dir: tempfile::TempDir,
    root: PathBuf,
    env: BTreeMap<String, String>,
    overrides: Overrides,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let home = root.join("home");
        std::fs::create_dir_all(home.join(".openclaw")).unwrap();
        let mut env = BTreeMap::new();
        env.insert("HOME".to_string(), home.to_string_lossy().into_owned());
        env.insert(
            "PATH".to_string(),
            root.join("empty-bin").to_string_lossy().into_owned(),
        );
        Home {
            _dir: dir,
            root,
            env,
            overrides: Overrides::default(),
        }
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn state(&self) -> PathBuf {
        self.home().join(".openclaw")
    }

    fn set(&mut self, key: &str, value: impl AsRef<Path>) -> &mut Home {
        self.env
            .insert(key.into(), value.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Writes `text` at `path` (relative paths are under the state dir).
    fn write(&self, path: impl AsRef<Path>, text: &str) -> PathBuf {
        let path = self.state().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn config(&self, text: &str) -> PathBuf {
        self.write("openclaw.json", text)
    }

    fn load(&self) -> Result<Snapshot, ConfigError> {
        load(&self.overrides, &self.env)
    }

    fn ok(&self) -> Snapshot {
        match self.load() {
            Ok(s) => s,
            Err(e) => panic!("load failed: {e}"),
        }
    }

    fn err(&self) -> ConfigError {
        match self.load() {
            Ok(s) => panic!("load succeeded: {s:?}"),
            Err(e) => e,
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The fixture config

fn fixture_home() -> Home {
    let mut h = Home::new();
    h.config(&fixture("openclaw.json5"));
    h.write(
        "agents/main/agent/auth-profiles.json",
        &fixture("auth-profiles.json"),
    );
    h.set("ANTHROPIC_API_KEY", "sk-ant-from-env")
        .set("OPENROUTER_API_KEY", "sk-or-from-env")
        .set("OPENCLAW_GATEWAY_TOKEN", "gw-token-from-env");
    h
}

#[test]
fn the_fixture_config_loads_into_typed_values() {
    let h = fixture_home();
    let s = h.ok();
    let state = h.state();

    assert_eq!(s.generation, 0);
    assert_eq!(s.warnings, Vec::<String>::new());
    assert_eq!(s.paths.state_dir, state);
    assert_eq!(s.paths.config_file, state.join("openclaw.json"));
    assert_eq!(s.paths.own_file, state.join("openclawd/openclawd.json"));
    assert_eq!(
        s.paths.auth_files,
        vec![state.join("agents/main/agent/auth-profiles.json")]
    );
    assert!(s.paths.included_files.is_empty());
    assert_eq!(s.paths.ollama_bin, PathBuf::from("ollama"));

    assert_eq!(
        s.providers.keys().collect::<Vec<_>>(),
        ["anthropic", "ollama", "openrouter"]
    );
    let ollama = &s.providers["ollama"];
    assert_eq!(ollama.base_url, "http://127.0.0.1:11434");
    assert_eq!(ollama.api, Api::Ollama);
    assert_eq!(ollama.api_key.as_deref(), Some("ollama-local"));
    assert!(ollama.models_explicit);
    assert_eq!(
        ollama.models,
        vec![
            ModelConfig {
                id: "gpt-oss:20b".into(),
                name: "GPT-OSS 20B (local)".into(),
                reasoning: true,
                tools: None,
                input: vec!["text".into()],
                context_window: Some(131072),
                max_tokens: Some(8192),
                cost: Cost::default(),
            },
            ModelConfig {
                id: "qwen3-coder:30b".into(),
                name: "Qwen3 Coder 30B (local)".into(),
                reasoning: false,
                tools: None,
                input: vec!["text".into()],
                context_window: Some(65536),
                max_tokens: Some(8192),
                cost: Cost::default(),
            },
        ]
    );
    assert_eq!(ollama.timeout, None);

    let anthropic = &s.providers["anthropic"];
    assert_eq!(anthropic.base_url, "https://api.anthropic.com");
    assert_eq!(anthropic.api, Api::AnthropicMessages);
    assert_eq!(anthropic.api_key.as_deref(), Some("sk-ant-from-env"));
    assert_eq!(anthropic.models[0].input, vec!["text", "image"]);
    assert_eq!(
        anthropic.models[0].cost,
        Cost {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75
        }
    );
    assert_eq!(anthropic.models[0].context_window, Some(200000));

    let openrouter = &s.providers["openrouter"];
    assert_eq!(openrouter.base_url, "https://openrouter.ai/api/v1");
    assert_eq!(openrouter.api, Api::OpenAiCompletions);
    assert_eq!(openrouter.api_key.as_deref(), Some("sk-or-from-env"));
    assert_eq!(openrouter.models[0].id, "z-ai/glm-4.5-air");
    assert_eq!(openrouter.models[0].max_tokens, Some(16384));

    assert_eq!(
        s.model,
        ModelSelection {
            primary: Some("ollama/gpt-oss:20b".into()),
            fallbacks: vec![
                "ollama/qwen3-coder:30b".into(),
                "anthropic/claude-sonnet-4-5".into(),
                "openrouter/z-ai/glm-4.5-air".into()
            ],
        }
    );
    assert_eq!(s.model_entries.len(), 4);
    assert_eq!(
        s.model_entries["ollama/gpt-oss:20b"].alias.as_deref(),
        Some("local")
    );
    let coder = &s.model_entries["ollama/qwen3-coder:30b"];
    assert_eq!(coder.alias.as_deref(), Some("coder"));
    assert_eq!(coder.params["temperature"], serde_json::json!(0.2));
    assert_eq!(
        s.model_entries["openrouter/z-ai/glm-4.5-air"]
            .alias
            .as_deref(),
        Some("glm")
    );

    assert_eq!(
        s.agents,
        vec![AgentConfig {
            id: "main".into(),
            default: true,
            agent_dir: state.join("agents/main/agent"),
        }]
    );
    assert_eq!(s.gateway.port, 18789);
    assert_eq!(s.gateway.bind, BindMode::Loopback);
    assert_eq!(s.gateway.bind_addr, ip("127.0.0.1"));
    assert_eq!(s.gateway.token.as_deref(), Some("gw-token-from-env"));
    assert_eq!(
        s.session_store.as_deref(),
        Some("~/.openclaw/agents/{agentId}/sessions/sessions.json")
    );

    assert_eq!(s.auth_profiles.len(), 4);
    let secret = |id: &str| s.auth_profiles[id].credential.clone();
    assert!(
        matches!(secret("ollama:default"), Credential::ApiKey { key } if key == "ollama-local")
    );
    assert!(matches!(
        secret("anthropic:me@example.com"),
        Credential::OAuth { access } if access == "fake-access-token-fixture"
    ));
    assert!(
        matches!(secret("openrouter:default"), Credential::Token { token } if token.starts_with("sk-or-v1-FAKE"))
    );
    assert_eq!(s.auth_profiles["anthropic:default"].provider, "anthropic");

    // env.vars filled OLLAMA_API_KEY, which the environment lacked.
    assert_eq!(
        s.env.get("OLLAMA_API_KEY").map(String::as_str),
        Some("ollama-local")
    );
    assert!(s.discovery_opt_in);
    assert_eq!(
        s.ollama,
        OllamaAddress {
            base_url: "http://127.0.0.1:11434".into(),
            host: "127.0.0.1".into(),
            port: 11434,
            loopback: true,
        }
    );
    assert_eq!(s.own, OwnSettings::default());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let s = fixture_home().ok();
    let debug = format!("{s:?}");
    for secret in [
        "sk-ant-from-env",
        "sk-or-from-env",
        "gw-token-from-env",
        "ollama-local",
        "fake-access-token-fixture",
        "FAKE-FIXTURE",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
    assert!(debug.contains("api_key: Some(<redacted>)"));
    assert!(debug.contains("ANTHROPIC_API_KEY"), "env names are shown");
}

// ---------------------------------------------------------------------------------------------
// SPEC §2 resolution table

#[test]
fn state_dir_comes_from_the_flag_then_the_environment_then_home() {
    let mut h = Home::new();
    assert_eq!(h.ok().paths.state_dir, h.state());

    let from_env = h.root.join("env-state");
    h.set("OPENCLAW_STATE_DIR", &from_env);
    let s = h.ok();
    assert_eq!(s.paths.state_dir, from_env);
    assert_eq!(s.paths.config_file, from_env.join("openclaw.json"));
    assert_eq!(s.paths.own_file, from_env.join("openclawd/openclawd.json"));
    assert_eq!(s.agents[0].agent_dir, from_env.join("agents/main/agent"));

    let from_flag = h.root.join("flag-state");
    h.overrides.state_dir = Some(from_flag.clone());
    assert_eq!(h.ok().paths.state_dir, from_flag);
}

#[test]
fn state_dir_in_the_environment_may_start_with_a_tilde() {
    let mut h = Home::new();
    h.set("OPENCLAW_STATE_DIR", "~/other");
    assert_eq!(h.ok().paths.state_dir, h.home().join("other"));
}

#[test]
fn config_file_comes_from_the_flag_then_the_environment_then_the_state_dir() {
    let mut h = Home::new();
    h.config("{ gateway: { port: 1001 } }");
    assert_eq!(h.ok().gateway.port, 1001);

    let env_file = h.write("elsewhere/env.json5", "{ gateway: { port: 1002 } }");
    h.set("OPENCLAW_CONFIG_PATH", &env_file);
    let s = h.ok();
    assert_eq!(s.paths.config_file, env_file);
    assert_eq!(s.gateway.port, 1002);

    let flag_file = h.write("elsewhere/flag.json5", "{ gateway: { port: 1003 } }");
    h.overrides.config = Some(flag_file.clone());
    let s = h.ok();
    assert_eq!(s.paths.config_file, flag_file);
    assert_eq!(s.gateway.port, 1003);
}

#[test]
fn agent_dirs_come_from_agent_dir_then_openclaw_agent_dir_for_the_default_then_the_state_dir() {
    let mut h = Home::new();
    let custom = h.root.join("custom-agent");
    let env_dir = h.root.join("env-agent");
    h.config(&format!(
        r#"{{ agents: {{ list: [
            {{ id: "work" }},
            {{ id: "main", default: true }},
            {{ id: "side", agentDir: "{}" }},
        ] }} }}"#,
        custom.display()
    ));
    h.set("OPENCLAW_AGENT_DIR", &env_dir);
    let s = h.ok();
    let dirs: Vec<(&str, bool, &Path)> = s
        .agents
        .iter()
        .map(|a| (a.id.as_str(), a.default, a.agent_dir.as_path()))
        .collect();
    let work = h.state().join("agents/work/agent");
    assert_eq!(
        dirs,
        vec![
            ("work", false, work.as_path()),
            ("main", true, env_dir.as_path()),
            ("side", false, custom.as_path()),
        ]
    );
    // The default agent's auth file first.
    assert_eq!(
        s.paths.auth_files,
        vec![
            env_dir.join("auth-profiles.json"),
            work.join("auth-profiles.json"),
            custom.join("auth-profiles.json"),
        ]
    );
}

#[test]
fn agent_dir_beats_openclaw_agent_dir_and_the_first_agent_is_the_default_when_none_says_so() {
    let mut h = Home::new();
    h.config(r#"{ agents: { list: [{ id: "solo", agentDir: "~/solo-agent" }, { id: "b" }] } }"#);
    h.set("OPENCLAW_AGENT_DIR", h.root.join("ignored"));
    let s = h.ok();
    assert_eq!(s.agents[0].id, "solo");
    assert!(s.agents[0].default);
    assert!(!s.agents[1].default);
    assert_eq!(s.agents[0].agent_dir, h.home().join("solo-agent"));
}

#[test]
fn an_empty_agent_list_means_the_default_agent_main() {
    let h = Home::new();
    h.config("{ agents: { list: [] } }");
    let s = h.ok();
    assert_eq!(s.agents.len(), 1);
    assert_eq!(s.agents[0].id, "main");
    assert!(s.agents[0].default);
}

fn executable(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn ollama_bin_comes_from_flag_env_own_settings_path_then_the_bare_name() {
    let mut h = Home::new();
    assert_eq!(h.ok().paths.ollama_bin, PathBuf::from("ollama"));

    // A non-executable file on PATH does not count; an executable later on PATH does.
    let bin_a = h.root.join("bin-a");
    let bin_b = h.root.join("bin-b");
    std::fs::create_dir_all(&bin_a).unwrap();
    std::fs::write(bin_a.join("ollama"), "not executable").unwrap();
    executable(&bin_b.join("ollama"));
    h.set("PATH", format!("{}:{}", bin_a.display(), bin_b.display()));
    assert_eq!(h.ok().paths.ollama_bin, bin_b.join("ollama"));

    let own_bin = h.root.join("own/ollama");
    h.write(
        "openclawd/openclawd.json",
        &format!("{{ ollama: {{ bin: \"{}\" }} }}", own_bin.display()),
    );
    assert_eq!(h.ok().paths.ollama_bin, own_bin);

    h.set("OPENCLAWD_OLLAMA_BIN", "/opt/env/ollama");
    assert_eq!(h.ok().paths.ollama_bin, PathBuf::from("/opt/env/ollama"));

    h.overrides.ollama_bin = Some(PathBuf::from("/opt/flag/ollama"));
    assert_eq!(h.ok().paths.ollama_bin, PathBuf::from("/opt/flag/ollama"));
}

#[test]
fn a_bare_ollama_bin_name_is_looked_up_on_path() {
    let mut h = Home::new();
    let bin = h.root.join("bin");
    executable(&bin.join("ollama-0.32"));
    h.set("PATH", &bin);
    h.write(
        "openclawd/openclawd.json",
        "{ ollama: { bin: 'ollama-0.32' } }",
    );
    assert_eq!(h.ok().paths.ollama_bin, bin.join("ollama-0.32"));
}

#[test]
fn ollama_address_comes_from_the_provider_base_url_then_ollama_host_then_the_default() {
    let mut h = Home::new();
    assert_eq!(h.ok().ollama.base_url, "http://127.0.0.1:11434");

    h.set("OLLAMA_HOST", "0.0.0.0:11500");
    let s = h.ok();
    assert_eq!(s.ollama.base_url, "http://127.0.0.1:11500");
    assert!(s.ollama.loopback);

    h.config("{ models: { providers: { ollama: { baseUrl: 'http://10.1.2.3:11434/v1//', models: [] } } } }");
    let s = h.ok();
    assert_eq!(s.ollama.base_url, "http://10.1.2.3:11434");
    assert_eq!(s.ollama.host, "10.1.2.3");
    assert!(!s.ollama.loopback);
    // The provider keeps its baseUrl as configured, minus trailing slashes.
    assert_eq!(s.providers["ollama"].base_url, "http://10.1.2.3:11434/v1");
}

#[test]
fn an_ollama_provider_without_base_url_uses_the_resolved_address() {
    let mut h = Home::new();
    h.set("OLLAMA_HOST", ":12000");
    h.config("{ models: { providers: { ollama: { apiKey: 'ollama-local' }, vllm: { baseUrl: 'http://127.0.0.1:8000/v1' } } } }");
    let s = h.ok();
    let ollama = &s.providers["ollama"];
    assert_eq!(ollama.base_url, "http://127.0.0.1:12000");
    assert_eq!(ollama.api, Api::Ollama);
    assert!(!ollama.models_explicit);
    assert_eq!(s.providers["vllm"].api, Api::OpenAiCompletions);
}

#[test]
fn a_provider_other_than_ollama_needs_a_base_url() {
    let h = Home::new();
    h.config("{\n  models: {\n    providers: {\n      zai: { apiKey: 'k' },\n    },\n  },\n}\n");
    let e = h.err();
    assert_eq!(e.location().unwrap().1, 4);
    assert!(e.to_string().contains("models.providers.zai"), "{e}");
    assert!(e.to_string().contains("baseUrl"), "{e}");
}

#[test]
fn gateway_port_comes_from_the_flag_then_the_environment_then_the_config_then_18789() {
    let mut h = Home::new();
    assert_eq!(h.ok().gateway.port, 18789);
    h.config("{ gateway: { port: 19001 } }");
    assert_eq!(h.ok().gateway.port, 19001);
    h.set("OPENCLAW_GATEWAY_PORT", "19002");
    assert_eq!(h.ok().gateway.port, 19002);
    h.overrides.port = Some(19003);
    assert_eq!(h.ok().gateway.port, 19003);
}

#[test]
fn an_unparsable_gateway_port_variable_is_ignored_with_a_warning() {
    let mut h = Home::new();
    h.config("{ gateway: { port: 19001 } }");
    h.set("OPENCLAW_GATEWAY_PORT", "nope");
    let s = h.ok();
    assert_eq!(s.gateway.port, 19001);
    assert!(s
        .warnings
        .iter()
        .any(|w| w.contains("OPENCLAW_GATEWAY_PORT")));
}

#[test]
fn a_bad_gateway_port_names_the_path_and_line() {
    let h = Home::new();
    let file = h.config("{\n  gateway: {\n    port: \"abc\",\n  },\n}\n");
    let e = h.err();
    assert_eq!(e.location(), Some((file.clone(), 3, 5)));
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:5: gateway.port: expected an integer 1-65535, got \"abc\". Correct the value \
             and save the file again.",
            file.display()
        )
    );
}

#[test]
fn gateway_bind_follows_the_config_modes() {
    let h = Home::new();
    for (bind, mode, addr) in [
        ("loopback", BindMode::Loopback, "127.0.0.1"),
        ("auto", BindMode::Loopback, "127.0.0.1"),
        ("tailnet", BindMode::Loopback, "127.0.0.1"),
        ("lan", BindMode::Lan, "0.0.0.0"),
    ] {
        h.config(&format!("{{ gateway: {{ bind: '{bind}' }} }}"));
        let g = h.ok().gateway;
        assert_eq!((g.bind, g.bind_addr), (mode, ip(addr)), "{bind}");
    }
    h.config("{ gateway: { bind: 'custom', customBindHost: '192.168.1.20' } }");
    let g = h.ok().gateway;
    assert_eq!(
        (g.bind, g.bind_addr),
        (BindMode::Custom, ip("192.168.1.20"))
    );

    h.config("{ gateway: {\n bind: 'custom' } }");
    let e = h.err();
    assert!(e.to_string().contains("customBindHost"), "{e}");
    assert_eq!(e.location().unwrap().1, 2);

    h.config("{ gateway: { bind: 'everywhere' } }");
    assert!(h.err().to_string().contains("gateway.bind"));
}

#[test]
fn gateway_bind_flag_wins_and_accepts_loopback_lan_or_an_ip() {
    let mut h = Home::new();
    h.config("{ gateway: { bind: 'lan' } }");
    for (flag, mode, addr) in [
        ("loopback", BindMode::Loopback, "127.0.0.1"),
        ("lan", BindMode::Lan, "0.0.0.0"),
        ("10.0.0.5", BindMode::Custom, "10.0.0.5"),
        ("::1", BindMode::Custom, "::1"),
    ] {
        h.overrides.bind = Some(flag.into());
        let g = h.ok().gateway;
        assert_eq!((g.bind, g.bind_addr), (mode, ip(addr)), "{flag}");
    }
    h.overrides.bind = Some("nowhere".into());
    let e = h.err();
    assert!(
        e.to_string()
            .starts_with("--bind: expected loopback, lan or an IP address"),
        "{e}"
    );
    assert_eq!(e.location(), None);
}

#[test]
fn gateway_token_comes_from_the_config_then_the_environment() {
    let mut h = Home::new();
    assert_eq!(h.ok().gateway.token, None);
    h.set("OPENCLAW_GATEWAY_TOKEN", "from-env");
    assert_eq!(h.ok().gateway.token.as_deref(), Some("from-env"));
    h.config("{ gateway: { auth: { token: 'from-config' } } }");
    assert_eq!(h.ok().gateway.token.as_deref(), Some("from-config"));
}

// ---------------------------------------------------------------------------------------------
// OLLAMA_HOST

#[test]
fn every_ollama_host_form_parses_like_ollama() {
    let cases: &[(&str, &str, &str, u16, bool)] = &[
        // input, base_url, host, port, loopback
        ("", "http://127.0.0.1:11434", "127.0.0.1", 11434, true),
        (
            "127.0.0.1:11500",
            "http://127.0.0.1:11500",
            "127.0.0.1",
            11500,
            true,
        ),
        ("1.2.3.4", "http://1.2.3.4:11434", "1.2.3.4", 11434, false),
        (":1234", "http://127.0.0.1:1234", "127.0.0.1", 1234, true),
        (
            "0.0.0.0",
            "http://127.0.0.1:11434",
            "127.0.0.1",
            11434,
            true,
        ),
        (
            "0.0.0.0:9999",
            "http://127.0.0.1:9999",
            "127.0.0.1",
            9999,
            true,
        ),
        (
            "example.com",
            "http://example.com:11434",
            "example.com",
            11434,
            false,
        ),
        (
            "example.com:1234",
            "http://example.com:1234",
            "example.com",
            1234,
            false,
        ),
        (
            "localhost",
            "http://localhost:11434",
            "localhost",
            11434,
            true,
        ),
        ("[::1]", "http://[::1]:11434", "::1", 11434, true),
        ("::1", "http://[::1]:11434", "::1", 11434, true),
        ("[::1]:1234", "http://[::1]:1234", "::1", 1234, true),
        ("[::]", "http://[::1]:11434", "::1", 11434, true),
        ("http://1.2.3.4", "http://1.2.3.4:80", "1.2.3.4", 80, false),
        (
            "http://1.2.3.4:5678",
            "http://1.2.3.4:5678",
            "1.2.3.4",
            5678,
            false,
        ),
        (
            "https://1.2.3.4",
            "https://1.2.3.4:443",
            "1.2.3.4",
            443,
            false,
        ),
        (
            "https://example.com/ollama",
            "https://example.com:443/ollama",
            "example.com",
            443,
            false,
        ),
        (
            "ollama.com",
            "https://ollama.com:443",
            "ollama.com",
            443,
            false,
        ),
        (":66000", "http://127.0.0.1:11434", "127.0.0.1", 11434, true),
        (":-1", "http://127.0.0.1:11434", "127.0.0.1", 11434, true),
        (
            "  \"127.0.0.2:7\" ",
            "http://127.0.0.2:7",
            "127.0.0.2",
            7,
            true,
        ),
    ];
    for &(input, base_url, host, port, loopback) in cases {
        let a = parse_ollama_host(input);
        assert_eq!(
            (a.base_url.as_str(), a.host.as_str(), a.port, a.loopback),
            (base_url, host, port, loopback),
            "OLLAMA_HOST={input:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ${VAR} substitution and env.vars

#[test]
fn a_missing_variable_names_the_variable_the_config_path_and_the_occurrence() {
    let h = Home::new();
    let file = h.config(
        "{\n  models: {\n    providers: {\n      zai: {\n        baseUrl: 'https://api.z.ai/v1',\n        apiKey: 'Bearer ${ZAI_API_KEY}',\n      },\n    },\n  },\n}\n",
    );
    let e = h.err();
    assert!(matches!(&e, ConfigError::MissingEnvVar { var, .. } if var == "ZAI_API_KEY"));
    assert_eq!(e.location(), Some((file.clone(), 6, 25)));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:6:25: Missing env var \"ZAI_API_KEY\" referenced at config path: models.providers.zai.apiKey.",
            file.display()
        )),
        "{msg}"
    );
}

#[test]
fn an_empty_variable_is_as_missing() {
    let mut h = Home::new();
    h.config("{ gateway: { auth: { token: '${TOKEN}' } } }");
    h.set("TOKEN", "");
    let e = h.err();
    assert!(e
        .to_string()
        .contains("Missing env var \"TOKEN\" referenced at config path: gateway.auth.token"));
}

#[test]
fn lowercase_references_and_escapes_stay_literal() {
    let mut h = Home::new();
    h.set("X", "value");
    h.config(
        r#"{ agents: { defaults: { models: {
            "a/b": { alias: "${foo}" },
            "a/c": { alias: "$${MISSING}" },
            "a/d": { alias: "${X}-$${X}" },
            "a/e": { alias: "${Foo} $5 ${" },
        } } } }"#,
    );
    let s = h.ok();
    let alias = |r: &str| s.model_entries[r].alias.clone().unwrap();
    assert_eq!(alias("a/b"), "${foo}");
    assert_eq!(alias("a/c"), "${MISSING}");
    assert_eq!(alias("a/d"), "value-${X}");
    assert_eq!(alias("a/e"), "${Foo} $5 ${");
}

#[test]
fn arrays_get_indexed_config_paths() {
    let h = Home::new();
    h.config("{ agents: { defaults: { model: { fallbacks: ['a/b', '${NOPE}'] } } } }");
    let e = h.err();
    assert!(
        e.to_string()
            .contains("config path: agents.defaults.model.fallbacks[1]"),
        "{e}"
    );
    assert_eq!(e.location().unwrap().1, 1);
}

#[test]
fn env_vars_fill_only_variables_the_environment_lacks() {
    let mut h = Home::new();
    h.set("PRESENT", "from-process").set("BLANK", "  ");
    h.config(
        r#"{
          env: {
            vars: { PRESENT: "from-config", ABSENT: "filled", BLANK: "filled-too", EMPTY: "" },
            DIRECT: "direct-value",
            shellEnv: { enabled: true },
          },
          gateway: { auth: { token: "${PRESENT}/${ABSENT}/${DIRECT}" } },
        }"#,
    );
    let s = h.ok();
    assert_eq!(
        s.gateway.token.as_deref(),
        Some("from-process/filled/direct-value")
    );
    assert_eq!(s.env["PRESENT"], "from-process");
    assert_eq!(s.env["ABSENT"], "filled");
    assert_eq!(s.env["BLANK"], "filled-too");
    assert!(!s.env.contains_key("EMPTY"));
    assert!(!s.env.contains_key("shellEnv"));
}

#[test]
fn env_vars_feed_discovery_opt_in_and_ollama_host() {
    let h = Home::new();
    h.config("{ env: { vars: { OLLAMA_HOST: '127.0.0.1:12345' } } }");
    let s = h.ok();
    assert_eq!(s.ollama.port, 12345);
    assert!(!s.discovery_opt_in);

    h.config("{ env: { OLLAMA_API_KEY: 'ollama-local' } }");
    assert!(h.ok().discovery_opt_in);
}

#[test]
fn a_bare_env_var_name_as_api_key_resolves_when_set() {
    let mut h = Home::new();
    h.set("LITELLM_KEY", "sk-litellm");
    h.config(
        "{ models: { providers: {
            a: { baseUrl: 'http://h/v1', apiKey: 'LITELLM_KEY' },
            b: { baseUrl: 'http://h/v1', apiKey: 'UNSET_NAME' },
            c: { baseUrl: 'http://h/v1', apiKey: 'literal-key' },
        } } }",
    );
    let s = h.ok();
    assert_eq!(s.providers["a"].api_key.as_deref(), Some("sk-litellm"));
    assert_eq!(s.providers["b"].api_key.as_deref(), Some("UNSET_NAME"));
    assert_eq!(s.providers["c"].api_key.as_deref(), Some("literal-key"));
}

// ---------------------------------------------------------------------------------------------
// $include

#[test]
fn include_a_single_file_relative_to_the_including_file() {
    let h = Home::new();
    let models = h.write(
        "conf/models.json5",
        "{ providers: { vllm: { baseUrl: 'http://127.0.0.1:8000/v1' } } }",
    );
    h.config("{ models: { $include: './conf/models.json5' } }");
    let s = h.ok();
    assert_eq!(s.providers["vllm"].base_url, "http://127.0.0.1:8000/v1");
    assert_eq!(s.paths.included_files, vec![models]);
}

#[test]
fn include_a_list_later_files_win_arrays_concatenate_and_own_keys_win() {
    let h = Home::new();
    let a = h.write("a.json5", "{ gateway: { port: 1001, bind: 'lan' }, agents: { defaults: { model: { fallbacks: ['x/1'] } } } }");
    let b = h.write(
        "b.json5",
        "{ gateway: { port: 1002 }, agents: { defaults: { model: { fallbacks: ['x/2'] } } } }",
    );
    h.config("{ $include: ['a.json5', 'b.json5'], gateway: { auth: { token: 't' } }, session: { store: '/s/{agentId}.json' } }");
    let s = h.ok();
    assert_eq!(s.gateway.port, 1002);
    assert_eq!(s.gateway.bind, BindMode::Lan);
    assert_eq!(s.gateway.token.as_deref(), Some("t"));
    assert_eq!(s.model.fallbacks, vec!["x/1", "x/2"]);
    assert_eq!(s.paths.included_files, vec![a, b]);

    h.config("{ $include: 'a.json5', gateway: { port: 1003 } }");
    let s = h.ok();
    assert_eq!(s.gateway.port, 1003);
    assert_eq!(s.gateway.bind, BindMode::Lan);
}

#[test]
fn includes_nest_relative_to_each_including_file() {
    let h = Home::new();
    let outer = h.write(
        "conf/outer.json5",
        "{ gateway: { $include: 'inner/gw.json5' } }",
    );
    let inner = h.write("conf/inner/gw.json5", "{ port: 1234 }");
    h.config("{ $include: 'conf/outer.json5' }");
    let s = h.ok();
    assert_eq!(s.gateway.port, 1234);
    assert_eq!(s.paths.included_files, vec![outer, inner]);
}

#[test]
fn errors_in_included_files_point_into_them() {
    let h = Home::new();
    let inc = h.write(
        "inc.json5",
        "{\n  gateway: {\n    port: 'x',\n    auth: { token: '${NOPE}' },\n  },\n}\n",
    );
    h.config("{\n  $include: 'inc.json5',\n}\n");
    let e = h.err();
    assert_eq!(e.location(), Some((inc.clone(), 4, 21)), "{e}");

    // A value the including file overrides is not substituted from the included one.
    h.config("{\n  $include: 'inc.json5',\n  gateway: { port: 'y', auth: { token: 'ok' } },\n}\n");
    let e = h.err();
    let file = h.state().join("openclaw.json");
    assert_eq!(e.location(), Some((file, 3, 14)), "{e}");

    let bad = h.write("bad.json5", "{\n  port: ,\n}");
    h.config("{ gateway: { $include: 'bad.json5' } }");
    let e = h.err();
    assert!(matches!(e, ConfigError::Syntax { .. }));
    assert_eq!(e.location().map(|l| (l.0, l.1)), Some((bad, 2)));
}

#[test]
fn an_include_cycle_is_reported_with_its_chain() {
    let h = Home::new();
    let a = h.write("a.json5", "{ $include: 'b.json5' }");
    let b = h.write("b.json5", "{ $include: './a.json5' }");
    let root = h.config("{ $include: 'a.json5' }");
    let e = h.err();
    let ConfigError::IncludeCycle { chain, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(chain, &vec![root.clone(), a.clone(), b.clone(), a.clone()]);
    assert_eq!(e.location().map(|l| l.0), Some(b.clone()));
    assert!(e.to_string().contains(&format!(
        "Circular include detected: {} -> {} -> {} -> {}",
        root.display(),
        a.display(),
        b.display(),
        a.display()
    )));
}

#[test]
fn an_include_fan_out_stops_at_256_files_naming_the_include() {
    // Each level includes the next one twice: 2 + 4 + ... + 512 reads, a few small files.
    let h = Home::new();
    for level in 0..9 {
        let next = format!("level{}.json5", level + 1);
        h.write(
            format!("fan/level{level}.json5"),
            &format!("{{\n  $include: ['{next}', '{next}'],\n  l{level}: true,\n}}\n"),
        );
    }
    h.write("fan/level9.json5", "{ leaf: true }");
    h.config("{\n  $include: 'fan/level0.json5',\n}\n");
    let e = h.err();
    assert!(matches!(e, ConfigError::IncludeBudget { .. }), "{e}");
    let msg = e.to_string();
    let (file, line, _) = e.location().unwrap();
    assert!(file.starts_with(h.state().join("fan")), "{msg}");
    assert_eq!(line, 2);
    assert!(
        msg.starts_with("$include budget exceeded: 257 files (limit 256) while including level"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(" from {}:2:", file.display())),
        "{msg}"
    );
}

#[test]
fn includes_stop_at_16_mib_in_all_naming_the_include() {
    let h = Home::new();
    h.write("small.json5", "{ a: 1 }");
    // Read no further than the budget: the file is never parsed.
    h.write(
        "big.json5",
        &format!("{{ pad: '{}' }}", "x".repeat(17 * 1024 * 1024)),
    );
    let root = h.config("{\n  $include: [\n    'small.json5',\n    'big.json5',\n  ],\n}\n");
    let e = h.err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "$include budget exceeded: 17.0 MiB in all (limit 16 MiB) while including big.json5 from {}:4:5.",
            root.display()
        )),
        "{msg}"
    );
    assert_eq!(e.location(), Some((root, 4, 5)));
}

#[test]
fn a_missing_include_names_the_include() {
    let h = Home::new();
    let file = h.config("{\n  $include: 'nope.json5',\n}");
    let e = h.err();
    assert_eq!(e.location(), Some((file, 2, 13)));
    assert!(
        e.to_string()
            .contains("Failed to read include file: nope.json5"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Typos in the sections openclawd reads

#[test]
fn a_near_miss_of_a_schema_key_is_a_warning_with_its_place_and_the_key_meant() {
    let h = Home::new();
    let file = h.config(
        "{\n  agents: {\n    defaults: {\n      modle: 'ollama/gpt-oss:20b',\n    },\n  },\n}\n",
    );
    let s = h.ok();
    assert_eq!(
        s.warnings,
        vec![format!(
            "{}:4:7: unknown key \"agents.defaults.modle\" — did you mean \"model\"?",
            file.display()
        )]
    );
    // The typo means no routing: nothing was read from it.
    assert_eq!(s.model, ModelSelection::default());
}

#[test]
fn typos_are_found_in_every_section_openclawd_reads_in_file_order() {
    let h = Home::new();
    h.config(
        "{
  models: { providers: { ollama: { baseURL: 'http://127.0.0.1:1', models: [{ id: 'a', contextWindw: 9000 }] } } },
  agents: { defaults: { model: { primray: 'ollama/a', fallbacks: [] } }, list: [{ id: 'main', agentdir: '/x' }] },
  auth: { profiles: { 'x:default': { provider: 'x', mdoe: 'api_key' } } },
  gateway: { prot: 18789, auth: { tokne: 't' } },
  session: { stroe: '/s.json' },
  env: { vras: { A: 'b' }, MY_VAR: 'kept', shellEnv: { enabeld: true } },
}",
    );
    let warnings: Vec<String> = h
        .ok()
        .warnings
        .iter()
        .map(|w| {
            w.split_once(": ")
                .map(|(at, rest)| {
                    let line_col: Vec<&str> = at.rsplitn(3, ':').collect();
                    format!("{}:{} {rest}", line_col[1], line_col[0])
                })
                .unwrap()
        })
        .collect();
    assert_eq!(
        warnings,
        [
            "2:36 unknown key \"models.providers.ollama.baseURL\" — did you mean \"baseUrl\"?",
            "2:87 unknown key \"models.providers.ollama.models[0].contextWindw\" — did you mean \"contextWindow\"?",
            "3:34 unknown key \"agents.defaults.model.primray\" — did you mean \"primary\"?",
            "3:95 unknown key \"agents.list[0].agentdir\" — did you mean \"agentDir\"?",
            "4:53 unknown key \"auth.profiles.x:default.mdoe\" — did you mean \"mode\"?",
            "5:14 unknown key \"gateway.prot\" — did you mean \"port\"?",
            "5:35 unknown key \"gateway.auth.tokne\" — did you mean \"token\"?",
            "6:14 unknown key \"session.stroe\" — did you mean \"store\"?",
            "7:10 unknown key \"env.vras\" — did you mean \"vars\"?",
            "7:56 unknown key \"env.shellEnv.enabeld\" — did you mean \"enabled\"?",
        ]
    );
}

#[test]
fn keys_far_from_the_schema_and_other_sections_are_not_typos() {
    let h = Home::new();
    h.config(
        "{ channels: { telegram: { tokne: 'x' } }, tools: { modle: 1 }, futureKey: 1, agent: {},
           gateway: { controlUi: { enabled: true }, somethingNew: 1, http: { endpoints: { chatCompletions: { enabeld: true } } } },
           agents: { defaults: { heartbeat: { every: '1h' }, models: { 'ollama/a': { alias: 'a', params: { num_ctx: 1 } } }, model: { primary: 'ollama/a', fallback: 'x/y' } } },
           models: { providers: { custom: { baseUrl: 'http://x', timeout: 5000, headers: { 'X-Modle': 'v' }, models: [] } } },
           env: { OLLAMA_API_KEY: 'k', model: 'a string value is a variable' } }",
    );
    assert_eq!(h.ok().warnings, Vec::<String>::new());
}

#[test]
fn the_fixture_config_has_no_typos() {
    assert_eq!(fixture_home().ok().warnings, Vec::<String>::new());
}

#[test]
fn a_typo_in_an_included_file_points_into_that_file() {
    let h = Home::new();
    let inc = h.write(
        "conf/agents.json5",
        "// agents\n{\n  defaults: {\n    modle: 'ollama/x',\n  },\n}\n",
    );
    h.config("{\n  agents: { $include: './conf/agents.json5' },\n}\n");
    assert_eq!(
        h.ok().warnings,
        vec![format!(
            "{}:4:5: unknown key \"agents.defaults.modle\" — did you mean \"model\"?",
            inc.display()
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// auth-profiles.json

#[test]
fn auth_profiles_of_every_kind_and_dropped_entries() {
    let h = Home::new();
    h.config("{ agents: { list: [{ id: 'main' }, { id: 'ops' }] } }");
    h.write(
        "agents/main/agent/auth-profiles.json",
        r#"{ "version": 1, "profiles": {
            "a:key": { "type": "api_key", "provider": "a", "key": "k1" },
            "b:tok": { "type": "token", "provider": "b", "token": "t1" },
            "c:me": { "type": "oauth", "provider": "c", "access": "acc", "refresh": "r" },
            "d:x": { "type": "aws-sdk", "provider": "d" },
            "e:x": { "type": "api_key", "key": "no-provider" },
            "shared": { "type": "api_key", "provider": "a", "key": "main-wins" }
        } }"#,
    );
    h.write(
        "agents/ops/agent/auth-profiles.json",
        r#"{ "version": 1, "profiles": {
            "shared": { "type": "api_key", "provider": "a", "key": "ops-loses" },
            "ollama:default": { "type": "api_key", "provider": "ollama", "key": "ollama-local" }
        } }"#,
    );
    let s = h.ok();
    let ids: Vec<&str> = s.auth_profiles.keys().map(String::as_str).collect();
    assert_eq!(ids, ["a:key", "b:tok", "c:me", "ollama:default", "shared"]);
    assert_eq!(s.auth_profiles["a:key"].credential.secret(), "k1");
    assert!(
        matches!(&s.auth_profiles["b:tok"].credential, Credential::Token { token } if token == "t1")
    );
    assert!(
        matches!(&s.auth_profiles["c:me"].credential, Credential::OAuth { access } if access == "acc")
    );
    assert_eq!(s.auth_profiles["shared"].credential.secret(), "main-wins");
    assert!(s.discovery_opt_in, "an ollama profile opts in to discovery");
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s
        .warnings
        .iter()
        .any(|w| w.contains("\"d:x\"") && w.contains("aws-sdk")));
    assert!(s
        .warnings
        .iter()
        .any(|w| w.contains("\"e:x\"") && w.contains("provider")));
}

#[test]
fn invalid_auth_profiles_json_is_an_error_with_its_position() {
    let h = Home::new();
    let file = h.write(
        "agents/main/agent/auth-profiles.json",
        "{\n  \"version\": 1,\n  \"profiles\": {,\n}",
    );
    let e = h.err();
    let (f, line, _) = e.location().unwrap();
    assert_eq!((f, line), (file, 3));
}

// ---------------------------------------------------------------------------------------------
// openclawd.json

#[test]
fn own_settings_are_read_with_durations_and_enums() {
    let h = Home::new();
    h.write(
        "openclawd/openclawd.json",
        r#"{
          ollama: { manage: false, preload: false, keepAlive: -1, startTimeout: "90s" },
          discovery: { requireTools: false, interval: "2m", defaultContextWindow: 32768 },
          gateway: { reclaim: "force", maxBodyBytes: 1024 },
          sessions: { maxBytes: 2048, action: "prune", interval: "1h 30m" },
        }"#,
    );
    let own = h.ok().own;
    assert!(!own.ollama.manage);
    assert!(!own.ollama.preload);
    assert_eq!(own.ollama.keep_alive, "-1s");
    assert_eq!(own.ollama.start_timeout, Duration::from_secs(90));
    assert!(!own.discovery.require_tools);
    assert_eq!(own.discovery.interval, Duration::from_secs(120));
    assert_eq!(own.discovery.default_context_window, 32768);
    assert_eq!(own.gateway.reclaim, ReclaimPolicy::Force);
    assert_eq!(own.gateway.max_body_bytes, 1024);
    assert_eq!(own.sessions.max_bytes, 2048);
    assert_eq!(own.sessions.action, SessionsAction::Prune);
    assert_eq!(own.sessions.interval, Duration::from_secs(5400));
}

#[test]
fn an_unknown_own_setting_is_an_error_naming_the_key_and_line() {
    let h = Home::new();
    let file = h.write(
        "openclawd/openclawd.json",
        "{\n  ollama: {\n    manage: true,\n    keepalive: '5m',\n  },\n}\n",
    );
    let e = h.err();
    assert_eq!(e.location(), Some((file.clone(), 4, 5)));
    let msg = e.to_string();
    assert!(msg.contains("unknown key \"ollama.keepalive\""), "{msg}");
    assert!(msg.contains("keepAlive"), "lists the known keys: {msg}");

    h.write("openclawd/openclawd.json", "{ gateway: {}, tuning: {} }");
    assert!(h.err().to_string().contains("unknown key \"tuning\""));
}

#[test]
fn bad_own_values_name_the_key() {
    let h = Home::new();
    for (text, needle) in [
        (
            "{ gateway: { reclaim: 'sometimes' } }",
            "gateway.reclaim: expected \"stale\", \"force\" or \"never\"",
        ),
        (
            "{ sessions: { action: 'drop' } }",
            "sessions.action: expected \"clear\" or \"prune\"",
        ),
        (
            "{ sessions: { interval: 300 } }",
            "sessions.interval: expected a duration",
        ),
        (
            "{ discovery: { interval: '5 parsecs' } }",
            "discovery.interval: expected a duration",
        ),
        ("{ ollama: { keepAlive: '-1' } }", "ollama.keepAlive"),
        (
            "{ sessions: { maxBytes: -5 } }",
            "sessions.maxBytes: expected a positive integer",
        ),
    ] {
        h.write("openclawd/openclawd.json", text);
        let e = h.err();
        assert!(e.to_string().contains(needle), "{text}: {e}");
        assert!(e.location().is_some());
    }
}

#[test]
fn hold_for_ollama_defaults_to_30s_and_0_means_never_hold() {
    let h = Home::new();
    assert_eq!(h.ok().own.gateway.hold_for_ollama, Duration::from_secs(30));
    for (value, expected) in [
        ("'45s'", Duration::from_secs(45)),
        ("'2m'", Duration::from_secs(120)),
        ("0", Duration::ZERO),
        ("'0'", Duration::ZERO),
        ("'0s'", Duration::ZERO),
        ("10", Duration::from_secs(10)),
        ("1.5", Duration::from_millis(1500)),
    ] {
        h.write(
            "openclawd/openclawd.json",
            &format!("{{ gateway: {{ holdForOllama: {value} }} }}"),
        );
        assert_eq!(h.ok().own.gateway.hold_for_ollama, expected, "{value}");
    }
}

#[test]
fn a_hold_for_ollama_that_is_not_a_duration_is_an_error_naming_the_key_and_line() {
    let h = Home::new();
    for value in ["'abc'", "-1", "'-5s'", "true", "'2h'", "1e300"] {
        let file = h.write(
            "openclawd/openclawd.json",
            &format!("{{\n  gateway: {{\n    holdForOllama: {value},\n  }},\n}}\n"),
        );
        let e = h.err();
        assert_eq!(e.location(), Some((file.clone(), 3, 5)), "{value}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "{}:3:5: gateway.holdForOllama: expected a duration such as \"30s\"",
                file.display()
            )),
            "{value}: {msg}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Files that are missing or broken

#[test]
fn a_missing_config_file_means_defaults_and_a_warning() {
    let h = Home::new();
    let s = h.ok();
    let expected = format!(
        "no config at {}; using defaults",
        h.state().join("openclaw.json").display()
    );
    assert_eq!(s.warnings, vec![expected]);
    assert!(s.providers.is_empty());
    assert_eq!(s.model, ModelSelection::default());
    assert_eq!(s.agents.len(), 1);
    assert_eq!(s.gateway.port, 18789);
    assert_eq!(s.gateway.bind_addr, ip("127.0.0.1"));
    assert_eq!(s.ollama.base_url, "http://127.0.0.1:11434");
    assert!(!s.discovery_opt_in);
    assert!(s.auth_profiles.is_empty());
    assert_eq!(s.own, OwnSettings::default());
}

#[test]
fn a_syntax_error_has_line_and_column() {
    let h = Home::new();
    let file = h.config("{\n  gateway: {\n    port: 18789\n    bind: 'lan',\n  },\n}\n");
    let e = h.err();
    assert!(matches!(e, ConfigError::Syntax { .. }));
    // Right after the value the comma belongs to.
    assert_eq!(e.location(), Some((file.clone(), 3, 16)));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:3:16: missing \",\" after the value on line 3. ",
            file.display()
        )),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one paragraph: {msg}");
}

#[test]
fn a_number_json5_cannot_hold_names_the_file_and_the_problem_in_one_line() {
    let h = Home::new();
    let file = h.config("{ gateway: { port: 1e400 } }");
    let msg = h.err().to_string();
    assert!(
        msg.starts_with(&format!(
            "{}:1:20: cannot read this value: error parsing number: too large.",
            file.display()
        )),
        "{msg}"
    );
}

#[test]
fn syntax_errors_say_what_is_wrong_in_words_never_the_parsers_expectation() {
    let h = Home::new();
    let cases = [
        (
            "{\n  gateway: {\n    port: 18789\n    bind: 'lan',\n  },\n}\n",
            "3:16: missing \",\" after the value on line 3",
        ),
        (
            "{\n  gateway: { port: 1 }},\n  models: {},\n}\n",
            "2:23: unexpected \"}\"",
        ),
        (
            "{\n  a: 1,\n}\n}\n",
            "4:1: unexpected \"}\" after the end of the document",
        ),
        (
            "{\n  gateway: {\n    bind: \"lan,\n    port: 1,\n  },\n}\n",
            "3:11: unterminated string starting on line 3",
        ),
        (
            "{\n  gateway: { mode: local },\n}\n",
            "2:20: unquoted text \"local\" where a value belongs",
        ),
        (
            "{\n  gateway: {},\n}\nmore text\n",
            "4:1: unexpected text \"more\" after the end of the document",
        ),
    ];
    for (text, expected) in cases {
        let file = h.config(text);
        let msg = h.err().to_string();
        let expected = format!("{}:{expected}", file.display());
        assert!(
            msg.starts_with(&expected),
            "{text:?}:\n  got {msg}\n want {expected}"
        );
        let without_unexpected = msg.replace("unexpected", "");
        for internal in ["expected", "EOI", "char_literal", "-->"] {
            assert!(
                !without_unexpected.contains(internal),
                "parser words in {msg}"
            );
        }
    }
}

#[test]
fn unknown_openclaw_keys_are_ignored() {
    let h = Home::new();
    h.config("{ channels: { telegram: { token: 'x' } }, gateway: { mode: 'local', controlUi: {} }, futureKey: [1,2] }");
    assert_eq!(h.ok().warnings, Vec::<String>::new());
}

#[test]
fn model_selection_accepts_a_string_and_the_singular_fallback() {
    let h = Home::new();
    h.config("{ agents: { defaults: { model: 'ollama/llama3.2:3b' } } }");
    assert_eq!(h.ok().model.primary.as_deref(), Some("ollama/llama3.2:3b"));
    h.config("{ agents: { defaults: { model: { primary: 'a/x', fallback: 'b/y' } } } }");
    assert_eq!(h.ok().model.fallbacks, vec!["b/y"]);
    h.config("{ agents: { defaults: { model: { primary: 'a/x', fallback: ['b/y', 'c/z'] } } } }");
    assert_eq!(h.ok().model.fallbacks, vec!["b/y", "c/z"]);
}

#[test]
fn provider_details_default_as_openclaw_does() {
    let h = Home::new();
    h.config(
        "{ models: { providers: {
            local: {
              baseUrl: 'http://127.0.0.1:8080/v1/',
              headers: { 'x-org': 'o1' },
              timeoutSeconds: 90,
              models: [{ id: 'm1', tools: true }],
            },
            seed: { baseUrl: 'http://127.0.0.1:8081/v1', api: 'openai-responses', timeout: 1500 },
        } } }",
    );
    let s = h.ok();
    let local = &s.providers["local"];
    assert_eq!(local.base_url, "http://127.0.0.1:8080/v1");
    assert_eq!(local.api, Api::OpenAiCompletions);
    assert_eq!(local.headers["x-org"], "o1");
    assert_eq!(local.timeout, Some(Duration::from_secs(90)));
    let m = &local.models[0];
    assert_eq!(
        (m.name.as_str(), m.tools, m.input.clone()),
        ("m1", Some(true), vec!["text".to_string()])
    );
    let seed = &s.providers["seed"];
    assert_eq!(seed.api, Api::OpenAiResponses);
    assert_eq!(seed.timeout, Some(Duration::from_millis(1500)));
    assert!(!seed.models_explicit);
}

// ---------------------------------------------------------------------------------------------
// session_stores

#[test]
fn session_stores_expand_the_template_for_configured_and_present_agents() {
    let h = Home::new();
    h.config("{ agents: { list: [{ id: 'main' }, { id: 'work' }] }, session: { store: '~/.openclaw/agents/{agentId}/sessions/sessions.json' } }");
    std::fs::create_dir_all(h.state().join("agents/legacy/sessions")).unwrap();
    std::fs::create_dir_all(h.state().join("agents/work")).unwrap();
    let s = h.ok();
    let stores = session_stores(&s);
    let expected: Vec<SessionStore> = ["main", "work", "legacy"]
        .iter()
        .map(|id| SessionStore {
            agent_id: id.to_string(),
            path: h
                .state()
                .join(format!("agents/{id}/sessions/sessions.json")),
        })
        .collect();
    assert_eq!(stores, expected);
}

#[test]
fn session_stores_default_to_the_state_dir_layout() {
    let mut h = Home::new();
    let state = h.root.join("state");
    h.set("OPENCLAW_STATE_DIR", &state);
    std::fs::create_dir_all(state.join("agents/other")).unwrap();
    let s = h.ok();
    let stores = session_stores(&s);
    assert_eq!(
        stores,
        vec![
            SessionStore {
                agent_id: "main".into(),
                path: state.join("agents/main/sessions/sessions.json"),
            },
            SessionStore {
                agent_id: "other".into(),
                path: state.join("agents/other/sessions/sessions.json"),
            },
        ]
    );
}

#[test]
fn watched_files_cover_config_includes_own_and_auth_files() {
    let h = Home::new();
    let inc = h.write("inc.json5", "{}");
    let cfg = h.config("{ $include: 'inc.json5' }");
    let s = h.ok();
    assert_eq!(
        s.paths.watched_files(),
        vec![
            cfg,
            inc,
            h.state().join("openclawd/openclawd.json"),
            h.state().join("agents/main/agent/auth-profiles.json"),
        ]
    );
}
