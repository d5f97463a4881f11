//! The double's own version (`OLLAMA_DOUBLE_VERSION`) and version-gated behaviour.

pub const DEFAULT_VERSION: &str = "0.32.15";

pub fn own() -> String {
    match std::env::var("OLLAMA_DOUBLE_VERSION") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => DEFAULT_VERSION.to_string(),
    }
}

fn triple(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// True if `version` is at least `min`. Dev builds (`0.0.0`) and unparsable versions are
/// built from the newest source, so they count as new.
pub fn at_least(version: &str, min: (u64, u64, u64)) -> bool {
    match triple(version) {
        Some((0, 0, 0)) | None => true,
        Some(v) => v >= min,
    }
}

/// `/api/tags` gained `capabilities` and `details.context_length` in 0.30.0.
pub fn has_rich_tags(version: &str) -> bool {
    at_least(version, (0, 30, 0))
}

/// The OpenAI streaming wire format changed in 0.32.6.
pub fn has_current_sse(version: &str) -> bool {
    at_least(version, (0, 32, 6))
}

/// `/api/show` normalizes the name in its 404 message since 0.30.
pub fn show_normalizes_names(version: &str) -> bool {
    at_least(version, (0, 30, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates() {
        assert!(has_current_sse("0.32.15"));
        assert!(!has_current_sse("0.32.5"));
        assert!(!has_rich_tags("0.16.1"));
        assert!(has_rich_tags("0.0.0"));
        assert!(has_rich_tags("0.30.0-rc1"));
    }
}
