//! The control file (`OLLAMA_DOUBLE_CONTROL`) and the model catalogue it describes.
//!
//! The file is re-read on every request. A missing file means defaults. An empty or invalid
//! file (for example caught half-written) keeps the last valid control and logs a warning, so
//! tests that rewrite it non-atomically never see a spurious reset.

use crate::fixtures;
use crate::log;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Everything a test can script. All keys are optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Control {
    /// The catalogue; absent = the three models of `tags.json` with their fixture bodies.
    pub models: Option<Vec<ModelSpec>>,
    /// `"current"` (≥0.30) or `"legacy"` (≤0.29) `/api/tags`; absent = by version.
    pub tags_shape: Option<TagsShape>,
    pub token_delay_ms: u64,
    pub first_token_delay_ms: u64,
    pub load_duration_ms: u64,
    /// Content streamed as the reply, one chunk per string.
    pub reply_tokens: Option<Vec<String>>,
    /// Reasoning streamed by thinking models before the reply.
    pub thinking_tokens: Option<Vec<String>>,
    pub fail_status: Option<FailStatus>,
    pub hang: bool,
    pub crash_after_requests: Option<u64>,
    pub midstream_error_after: Option<u64>,
    pub tool_call: ToolCallSetting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagsShape {
    Current,
    Legacy,
}

/// `tool_call: true` answers with the fixture call (`get_weather {"city":"Tokyo"}`);
/// `{"name":..,"arguments":{..}}` answers with that call instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolCallSetting {
    Enabled(bool),
    Custom {
        name: String,
        #[serde(default)]
        arguments: Value,
    },
}

impl Default for ToolCallSetting {
    fn default() -> Self {
        Self::Enabled(false)
    }
}

impl ToolCallSetting {
    /// The call to emit, if tool calling is switched on.
    pub fn call(&self) -> Option<(String, Value)> {
        match self {
            Self::Enabled(false) => None,
            Self::Enabled(true) => Some(fixtures::fixture_tool_call()),
            Self::Custom { name, arguments } => {
                let args = if arguments.is_null() {
                    Value::Object(Default::default())
                } else {
                    arguments.clone()
                };
                Some((name.clone(), args))
            }
        }
    }
}

/// A scripted error answer for some (or all) paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailStatus {
    pub status: u16,
    /// Response body: a string is sent verbatim; any other JSON value is sent compact.
    /// Absent = the real error body for that status in the path's dialect.
    #[serde(default)]
    pub body: Option<Value>,
    /// Exact paths, or prefixes ending in `*`; absent = every path.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

impl FailStatus {
    pub fn applies_to(&self, path: &str) -> bool {
        match &self.paths {
            None => true,
            Some(paths) => paths.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => p == path,
            }),
        }
    }
}

/// One catalogue entry as written in the control file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Absent = inherit/default; `null` = unknown (no `*.context_length` anywhere).
    #[serde(default, deserialize_with = "present")]
    pub context_length: Option<Option<u64>>,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub parameter_size: Option<String>,
    #[serde(default)]
    pub quantization_level: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// `PARAMETER num_ctx N` in the Modelfile (`/api/show` `parameters`).
    #[serde(default, deserialize_with = "present")]
    pub num_ctx_param: Option<Option<u64>>,
    /// Key carrying the context length in `model_info` (default `<family>.context_length`).
    #[serde(default)]
    pub model_info_key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub embedding_length: Option<Option<u64>>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub modified_at: Option<String>,
}

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl ModelSpec {
    /// True when only the name is given (a fixture model then keeps its fixture body).
    fn is_bare(&self) -> bool {
        self.capabilities.is_none()
            && self.context_length.is_none()
            && self.family.is_none()
            && self.parameter_size.is_none()
            && self.quantization_level.is_none()
            && self.size.is_none()
            && self.num_ctx_param.is_none()
            && self.model_info_key.is_none()
            && self.embedding_length.is_none()
            && self.digest.is_none()
            && self.modified_at.is_none()
    }
}

/// Reads the control file on demand.
pub struct ControlSource {
    path: Option<PathBuf>,
    last_good: Mutex<Control>,
    /// The last problem reported, so a broken file is not reported on every request.
    last_warning: Mutex<String>,
}

impl ControlSource {
    pub fn from_env() -> Self {
        let path = std::env::var_os("OLLAMA_DOUBLE_CONTROL")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        Self {
            path,
            last_good: Mutex::new(Control::default()),
            last_warning: Mutex::new(String::new()),
        }
    }

    pub fn current(&self) -> Control {
        let Some(path) = &self.path else {
            return Control::default();
        };
        let mut last_good = self
            .last_good
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let problem = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *last_good = Control::default();
                None
            }
            Err(e) => Some(format!("cannot read it: {e}")),
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => None,
            Ok(bytes) => match serde_json::from_slice::<Control>(&bytes) {
                Ok(control) => {
                    *last_good = control;
                    None
                }
                Err(e) => Some(e.to_string()),
            },
        };
        self.warn_once(path, problem);
        last_good.clone()
    }

    fn warn_once(&self, path: &std::path::Path, problem: Option<String>) {
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let problem = problem.unwrap_or_default();
        if !problem.is_empty() && *last != problem {
            log::warn(
                "ollama-double: ignoring the control file, keeping the previous one",
                &[("path", &path.display().to_string()), ("error", &problem)],
            );
        }
        *last = problem;
    }
}

/// A model as the server knows it.
#[derive(Debug, Clone)]
pub struct Model {
    /// Display name, always with a tag (`llama3.2:3b`, `qwen3-coder:latest`).
    pub name: String,
    pub modified_at: String,
    pub size: u64,
    pub digest: String,
    pub format: String,
    pub family: String,
    pub families: Vec<String>,
    pub parameter_size: String,
    pub quantization_level: String,
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
    pub capabilities: Vec<String>,
    pub num_ctx_param: Option<u64>,
    pub model_info_key: Option<String>,
    /// The fixture `/api/show` body, for the untouched default models.
    pub fixture_show: Option<&'static [u8]>,
}

impl Model {
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// `registry.ollama.ai/library/llama3.2:3b`, as capability errors print it.
    pub fn full_name(&self) -> String {
        parse_name(&self.name)
            .map(|n| n.full())
            .unwrap_or_else(|| self.name.clone())
    }
}

fn builtin_models() -> &'static [Model] {
    static BUILTIN: OnceLock<Vec<Model>> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        let tags: Value = serde_json::from_slice(fixtures::TAGS).unwrap_or(Value::Null);
        let empty = Vec::new();
        let list = tags
            .get("models")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        list.iter()
            .map(|m| {
                let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
                let d = m.get("details");
                let name = s(m.get("name"));
                Model {
                    fixture_show: fixtures::show_body(&name),
                    name,
                    modified_at: s(m.get("modified_at")),
                    size: m.get("size").and_then(Value::as_u64).unwrap_or(0),
                    digest: s(m.get("digest")),
                    format: s(d.and_then(|d| d.get("format"))),
                    family: s(d.and_then(|d| d.get("family"))),
                    families: d
                        .and_then(|d| d.get("families"))
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    parameter_size: s(d.and_then(|d| d.get("parameter_size"))),
                    quantization_level: s(d.and_then(|d| d.get("quantization_level"))),
                    context_length: d
                        .and_then(|d| d.get("context_length"))
                        .and_then(Value::as_u64),
                    embedding_length: d
                        .and_then(|d| d.get("embedding_length"))
                        .and_then(Value::as_u64),
                    capabilities: m
                        .get("capabilities")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    num_ctx_param: None,
                    model_info_key: None,
                }
            })
            .collect()
    })
}

/// A stable pseudo-digest (64 hex chars) for a synthesized model.
fn pseudo_digest(seed: &str) -> String {
    let mut out = String::with_capacity(64);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0u64..4 {
        for b in seed.bytes().chain(round.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn synthesized_default(name: &str) -> Model {
    Model {
        name: name.to_string(),
        modified_at: "2026-08-20T10:00:00.123456789Z".to_string(),
        size: 4_920_753_328,
        digest: pseudo_digest(name),
        format: "gguf".to_string(),
        family: "llama".to_string(),
        families: vec!["llama".to_string()],
        parameter_size: "8.0B".to_string(),
        quantization_level: "Q4_K_M".to_string(),
        context_length: Some(131_072),
        embedding_length: Some(4096),
        capabilities: vec!["completion".to_string(), "tools".to_string()],
        num_ctx_param: None,
        model_info_key: None,
        fixture_show: None,
    }
}

/// The catalogue in effect for this request, in the order the control file lists it.
pub fn catalogue(control: &Control) -> Vec<Model> {
    let Some(specs) = &control.models else {
        return builtin_models().to_vec();
    };
    specs
        .iter()
        .map(|spec| {
            let name = parse_name(&spec.name)
                .map(|n| n.display())
                .unwrap_or_else(|| spec.name.clone());
            let builtin = builtin_models().iter().find(|m| m.name == name);
            if let (Some(b), true) = (builtin, spec.is_bare()) {
                return b.clone();
            }
            let mut m = builtin
                .cloned()
                .unwrap_or_else(|| synthesized_default(&name));
            m.fixture_show = None;
            if let Some(caps) = &spec.capabilities {
                m.capabilities = caps.clone();
            }
            if let Some(cl) = spec.context_length {
                m.context_length = cl;
            }
            if let Some(f) = &spec.family {
                m.family = f.clone();
                m.families = vec![f.clone()];
            }
            if let Some(p) = &spec.parameter_size {
                m.parameter_size = p.clone();
            }
            if let Some(q) = &spec.quantization_level {
                m.quantization_level = q.clone();
            }
            if let Some(s) = spec.size {
                m.size = s;
            }
            if let Some(n) = spec.num_ctx_param {
                m.num_ctx_param = n;
            }
            if let Some(k) = &spec.model_info_key {
                m.model_info_key = Some(k.clone());
            }
            if let Some(e) = spec.embedding_length {
                m.embedding_length = e;
            }
            if let Some(d) = &spec.digest {
                m.digest = d.clone();
            }
            if let Some(t) = &spec.modified_at {
                m.modified_at = t.clone();
            }
            m
        })
        .collect()
}

/// Finds a model by any spelling Ollama accepts (`llama3.2` → `llama3.2:latest`,
/// `registry.ollama.ai/library/x:t`, case-insensitive).
pub fn find<'a>(catalogue: &'a [Model], requested: &str) -> Option<&'a Model> {
    let wanted = parse_name(requested)?.full().to_ascii_lowercase();
    catalogue.iter().find(|m| {
        parse_name(&m.name)
            .map(|n| n.full().to_ascii_lowercase() == wanted)
            .unwrap_or(false)
    })
}

/// A parsed model name `host/namespace/model:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName {
    pub host: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

const DEFAULT_HOST: &str = "registry.ollama.ai";
const DEFAULT_NAMESPACE: &str = "library";

impl ModelName {
    pub fn full(&self) -> String {
        format!(
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )
    }

    /// The shortest display form, always with the tag.
    pub fn display(&self) -> String {
        if self.host == DEFAULT_HOST && self.namespace == DEFAULT_NAMESPACE {
            format!("{}:{}", self.model, self.tag)
        } else if self.host == DEFAULT_HOST {
            format!("{}/{}:{}", self.namespace, self.model, self.tag)
        } else {
            self.full()
        }
    }
}

fn valid_part(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 350
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c) || extra.contains(&c))
}

/// Parses a model name; `None` if Ollama would call it invalid.
pub fn parse_name(s: &str) -> Option<ModelName> {
    let (rest, tag) = match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], &s[i + 1..]),
        _ => (s, "latest"),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (host, namespace, model) = match parts.as_slice() {
        [m] => (DEFAULT_HOST, DEFAULT_NAMESPACE, *m),
        [n, m] => (DEFAULT_HOST, *n, *m),
        [h, n, m] => (*h, *n, *m),
        _ => return None,
    };
    let ok = valid_part(host, &[':'])
        && valid_part(namespace, &[])
        && valid_part(model, &[])
        && valid_part(tag, &[]);
    ok.then(|| ModelName {
        host: host.to_string(),
        namespace: namespace.to_string(),
        model: model.to_string(),
        tag: tag.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_like_ollama() {
        assert_eq!(parse_name("llama3.2").unwrap().display(), "llama3.2:latest");
        assert_eq!(
            parse_name("registry.ollama.ai/library/gemma:2b")
                .unwrap()
                .display(),
            "gemma:2b"
        );
        assert_eq!(
            parse_name("gemma:2b").unwrap().full(),
            "registry.ollama.ai/library/gemma:2b"
        );
        assert_eq!(parse_name("me/tiny:1b").unwrap().display(), "me/tiny:1b");
        assert!(parse_name("bad name").is_none());
    }

    #[test]
    fn default_catalogue_is_the_fixture() {
        let cat = catalogue(&Control::default());
        let names: Vec<_> = cat.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["qwen3-coder:latest", "gpt-oss:20b", "llama3.2:3b"]);
        assert!(cat.iter().all(|m| m.fixture_show.is_some()));
        assert!(find(&cat, "QWEN3-coder").is_some());
    }

    #[test]
    fn bare_fixture_names_keep_fixture_bodies() {
        let control: Control = serde_json::from_str(
            r#"{"models":[{"name":"llama3.2:3b"},{"name":"gpt-oss:20b","num_ctx_param":8192},
                {"name":"tiny","context_length":null}]}"#,
        )
        .unwrap();
        let cat = catalogue(&control);
        assert!(cat[0].fixture_show.is_some());
        assert!(cat[1].fixture_show.is_none());
        assert_eq!(cat[1].num_ctx_param, Some(8192));
        assert_eq!(cat[1].context_length, Some(131_072));
        assert_eq!(cat[2].name, "tiny:latest");
        assert_eq!(cat[2].context_length, None);
    }
}
