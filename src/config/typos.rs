//! Typo warnings for `openclaw.json` (SPEC §2): a key in a section openclawd reads that is not in
//! OpenClaw's schema there but is within edit distance 2 of a key that is
//! (`agents.defaults.modle`). OpenClaw's own strict schema would refuse the file, and openclawd
//! would silently lose what the key was meant to say (routing, a token), so it is a warning
//! naming file:line:col and the likely key. Keys far from every schema key are left alone:
//! OpenClaw has many sections and keys openclawd does not read.
//!
//! The schema below is OpenClaw 2026.2.x's zod schema for these sections (notes/openclaw.md §2),
//! plus newer keys (2026.9) and the spellings openclawd itself accepts (`fallback`, `timeout`).

use serde_json::Value;

use super::include::Locator;
use super::parse::{path_string, Seg};

/// What OpenClaw's schema allows at one place.
enum Node {
    /// An object with these keys (each with what is allowed below it).
    Object(&'static [(&'static str, Node)]),
    /// An object whose keys are names the user chooses (provider ids, profile ids, model refs).
    Map(&'static Node),
    /// A list whose items are this.
    List(&'static Node),
    /// A string or this object (`agents.defaults.model`).
    StringOr(&'static Node),
    /// Not checked below (free-form maps, sections openclawd does not read, scalars).
    Any,
    /// `env`: upper-case keys are variables; the rest must be these keys.
    Env(&'static [(&'static str, Node)]),
}

use Node::{Any, Env, List, Map, Object, StringOr};

const MODEL_SELECTION: Node = StringOr(&Object(&[
    ("primary", Any),
    ("fallbacks", Any),
    // The seeds' singular spelling, which openclawd accepts.
    ("fallback", Any),
]));

const COST: Node = Object(&[
    ("input", Any),
    ("output", Any),
    ("cacheRead", Any),
    ("cacheWrite", Any),
]);

const COMPAT: Node = Object(&[
    ("supportsStore", Any),
    ("supportsDeveloperRole", Any),
    ("supportsReasoningEffort", Any),
    ("supportsUsageInStreaming", Any),
    ("supportsStrictMode", Any),
    ("supportsTools", Any),
    ("maxTokensField", Any),
    ("thinkingFormat", Any),
    ("requiresToolResultName", Any),
    ("requiresAssistantAfterToolResult", Any),
    ("requiresThinkingAsText", Any),
    ("requiresMistralToolIds", Any),
]);

const MODEL: Node = Object(&[
    ("id", Any),
    ("name", Any),
    ("api", Any),
    ("reasoning", Any),
    ("input", Any),
    ("cost", COST),
    ("contextWindow", Any),
    ("contextTokens", Any),
    ("maxTokens", Any),
    ("headers", Any),
    ("compat", COMPAT),
    ("params", Any),
    // openclawd reads a stated tools capability.
    ("tools", Any),
]);

const PROVIDER: Node = Object(&[
    ("baseUrl", Any),
    ("apiKey", Any),
    ("auth", Any),
    ("api", Any),
    ("headers", Any),
    ("authHeader", Any),
    ("models", List(&MODEL)),
    ("timeoutSeconds", Any),
    ("maxTokens", Any),
    ("injectNumCtxForOpenAICompat", Any),
    ("request", Any),
    ("localService", Any),
    // The seeds' milliseconds timeout, which openclawd accepts.
    ("timeout", Any),
]);

const MODELS: Node = Object(&[
    ("mode", Any),
    ("providers", Map(&PROVIDER)),
    ("bedrockDiscovery", Any),
]);

const MODEL_ENTRY: Node = Object(&[("alias", Any), ("params", Any), ("streaming", Any)]);

const AGENT_DEFAULTS: Node = Object(&[
    ("model", MODEL_SELECTION),
    ("imageModel", MODEL_SELECTION),
    ("models", Map(&MODEL_ENTRY)),
    ("workspace", Any),
    ("repoRoot", Any),
    ("skipBootstrap", Any),
    ("bootstrapMaxChars", Any),
    ("userTimezone", Any),
    ("timeFormat", Any),
    ("envelopeTimezone", Any),
    ("envelopeTimestamp", Any),
    ("envelopeElapsed", Any),
    ("contextTokens", Any),
    ("cliBackends", Any),
    ("memorySearch", Any),
    ("contextPruning", Any),
    ("compaction", Any),
    ("thinkingDefault", Any),
    ("verboseDefault", Any),
    ("elevatedDefault", Any),
    ("blockStreamingDefault", Any),
    ("blockStreamingBreak", Any),
    ("blockStreamingChunk", Any),
    ("blockStreamingCoalesce", Any),
    ("humanDelay", Any),
    ("timeoutSeconds", Any),
    ("mediaMaxMb", Any),
    ("typingIntervalSeconds", Any),
    ("typingMode", Any),
    ("heartbeat", Any),
    ("maxConcurrent", Any),
    ("subagents", Any),
    ("sandbox", Any),
]);

const AGENT: Node = Object(&[
    ("id", Any),
    ("default", Any),
    ("name", Any),
    ("workspace", Any),
    ("agentDir", Any),
    ("model", MODEL_SELECTION),
    ("identity", Any),
    ("groupChat", Any),
    ("subagents", Any),
    ("sandbox", Any),
    ("tools", Any),
    ("heartbeat", Any),
    ("skills", Any),
    ("memorySearch", Any),
    ("humanDelay", Any),
]);

const AGENTS: Node = Object(&[("defaults", AGENT_DEFAULTS), ("list", List(&AGENT))]);

const AUTH: Node = Object(&[
    (
        "profiles",
        Map(&Object(&[("provider", Any), ("mode", Any), ("email", Any)])),
    ),
    ("order", Any),
    (
        "cooldowns",
        Object(&[
            ("billingBackoffHours", Any),
            ("billingBackoffHoursByProvider", Any),
            ("billingMaxHours", Any),
            ("failureWindowHours", Any),
        ]),
    ),
]);

const GATEWAY: Node = Object(&[
    ("mode", Any),
    ("port", Any),
    ("bind", Any),
    ("customBindHost", Any),
    (
        "auth",
        Object(&[
            ("mode", Any),
            ("token", Any),
            ("password", Any),
            ("allowTailscale", Any),
            ("rateLimit", Any),
            ("trustedProxy", Any),
        ]),
    ),
    ("http", Any),
    ("controlUi", Any),
    ("tailscale", Any),
    ("remote", Any),
    ("reload", Any),
    ("tls", Any),
    ("trustedProxies", Any),
    ("nodes", Any),
]);

const SESSION: Node = Object(&[
    ("scope", Any),
    ("dmScope", Any),
    ("mainKey", Any),
    ("store", Any),
    ("reset", Any),
    ("resetByType", Any),
    ("resetByChannel", Any),
    ("resetTriggers", Any),
    ("idleMinutes", Any),
    ("typingIntervalSeconds", Any),
    ("typingMode", Any),
    ("identityLinks", Any),
    ("sendPolicy", Any),
    ("agentToAgent", Any),
    ("maintenance", Any),
]);

const ENV: Node = Env(&[
    ("vars", Any),
    ("shellEnv", Object(&[("enabled", Any), ("timeoutMs", Any)])),
]);

/// The top level: the sections openclawd reads are checked below; the others are listed so a
/// near-miss of one of them (`agent`, a legacy key) is not taken for a typo of ours.
const ROOT: Node = Object(&[
    ("models", MODELS),
    ("agents", AGENTS),
    ("auth", AUTH),
    ("gateway", GATEWAY),
    ("session", SESSION),
    ("env", ENV),
    ("meta", Any),
    ("agent", Any),
    ("wizard", Any),
    ("diagnostics", Any),
    ("logging", Any),
    ("update", Any),
    ("browser", Any),
    ("ui", Any),
    ("skills", Any),
    ("plugins", Any),
    ("messages", Any),
    ("commands", Any),
    ("approvals", Any),
    ("channels", Any),
    ("tools", Any),
    ("bindings", Any),
    ("broadcast", Any),
    ("audio", Any),
    ("media", Any),
    ("hooks", Any),
    ("cron", Any),
    ("web", Any),
    ("discovery", Any),
    ("canvasHost", Any),
    ("talk", Any),
    ("memory", Any),
    ("nodeHost", Any),
    ("secrets", Any),
    ("proxy", Any),
]);

/// Appends a warning for every likely typo in `config` (the merged config, `$include`s
/// resolved), in file order.
pub(crate) fn check(config: &Value, locator: &Locator, warnings: &mut Vec<String>) {
    let mut found = Vec::new();
    walk(config, &ROOT, &mut Vec::new(), &mut found);
    let mut placed: Vec<_> = found
        .into_iter()
        .map(|(path, suggestion)| {
            let at = locator.key_pos(&path);
            (at, path, suggestion)
        })
        .collect();
    placed.sort_by(|a, b| {
        (&a.0.file, a.0.line_col, path_string(&a.1)).cmp(&(
            &b.0.file,
            b.0.line_col,
            path_string(&b.1),
        ))
    });
    for (at, path, suggestion) in placed {
        warnings.push(format!(
            "{at}: unknown key \"{}\" — did you mean \"{suggestion}\"?",
            path_string(&path)
        ));
    }
}

fn walk(
    value: &Value,
    node: &Node,
    path: &mut Vec<Seg>,
    found: &mut Vec<(Vec<Seg>, &'static str)>,
) {
    match (node, value) {
        (Object(keys), Value::Object(map)) | (Env(keys), Value::Object(map)) => {
            let is_env = matches!(node, Env(_));
            for (key, child) in map {
                path.push(Seg::Key(key.clone()));
                match keys.iter().find(|(k, _)| k == key) {
                    Some((_, below)) => walk(child, below, path, found),
                    // In `env`, a key holding a string is a variable (`env: {KEY: "..."}`).
                    None if is_env && !child.is_object() => {}
                    None => {
                        if let Some(suggestion) = nearest(key, keys.iter().map(|(k, _)| *k)) {
                            found.push((path.clone(), suggestion));
                        }
                    }
                }
                path.pop();
            }
        }
        (Map(below), Value::Object(map)) => {
            for (key, child) in map {
                path.push(Seg::Key(key.clone()));
                walk(child, below, path, found);
                path.pop();
            }
        }
        (List(below), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(item, below, path, found);
                path.pop();
            }
        }
        (StringOr(below), v) => walk(v, below, path, found),
        // A value of the wrong type is for the typed extraction to report.
        _ => {}
    }
}

/// The schema key `key` most likely misspells: within edit distance 2 (a swap of neighbours
/// counts 1, case is ignored), and at most a third of the schema key's length so that short
/// keys (`id`, `api`) do not match every short word.
fn nearest(key: &str, known: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    let lower = key.to_lowercase();
    known
        .filter_map(|k| {
            let d = edit_distance(&lower, &k.to_lowercase());
            let limit = (k.chars().count() / 3).min(2);
            (d <= limit).then_some((d, k))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each count 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_a_swap_as_one() {
        assert_eq!(edit_distance("modle", "model"), 1);
        assert_eq!(edit_distance("primry", "primary"), 1);
        assert_eq!(edit_distance("fallbakcs", "fallbacks"), 1);
        assert_eq!(edit_distance("baseurl", "baseurl"), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    fn suggest(key: &str, known: &[&'static str]) -> Option<&'static str> {
        nearest(key, known.iter().copied())
    }

    #[test]
    fn near_keys_are_suggested_and_far_ones_are_not() {
        let known = &["model", "models", "imageModel", "workspace", "id", "api"];
        assert_eq!(suggest("modle", known), Some("model"));
        assert_eq!(suggest("mdoels", known), Some("models"));
        assert_eq!(suggest("imagemodel", known), Some("imageModel"));
        assert_eq!(suggest("workspaces", known), Some("workspace"));
        assert_eq!(suggest("ID", known), Some("id"));
        // Short keys: only case or nothing; unrelated words stay unknown, not typos.
        assert_eq!(suggest("ab", known), None);
        assert_eq!(suggest("apu", known), Some("api"));
        assert_eq!(suggest("channels", known), None);
        assert_eq!(suggest("heartbeat", known), None);
    }
}
