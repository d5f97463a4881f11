//! The monitoring page (SPEC §10): one HTML page, its stylesheet and script compiled into the
//! binary, and `/events`, the live feed it reads. Nothing is loaded from elsewhere: the page
//! works offline and its Content-Security-Policy forbids any other origin.
//!
//! The page itself and its assets are public (they hold no data); `/events` is behind the
//! gateway token like every other route. With a token configured the page asks for it, keeps it
//! in `sessionStorage` and sends it as `Authorization: Bearer` on a streaming `fetch`.

mod events;

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::GatewayError;
use super::state::GatewayState;

pub use events::events;

/// Nothing from anywhere but this daemon; no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
/// Replaced in `index.html` by whether the gateway wants a token.
const AUTH_MARK: &str = "{{AUTH}}";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("assets/icon.svg"),
    },
];

/// Where `openclawd bench` keeps its last report for the page (written atomically by the CLI,
/// read by `/events` when it changes).
pub fn bench_file(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("openclawd").join("bench.json")
}

/// The routes of the page and its feed.
pub fn routes() -> Router<Arc<GatewayState>> {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/{asset}", get(asset))
        .route("/events", get(events))
}

/// Paths anyone may load without the token: the page and its static assets (no data in them).
pub fn is_public(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// A browser navigating to `/` asks for HTML; API clients probing `/` keep getting JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

struct Rendered {
    body: String,
    etag: HeaderValue,
}

/// The page in its two variants: without and with a token to ask for.
fn rendered(token_required: bool) -> &'static Rendered {
    static PAGES: OnceLock<[Rendered; 2]> = OnceLock::new();
    let pages = PAGES.get_or_init(|| {
        [false, true].map(|required| {
            let body = INDEX_HTML.replace(AUTH_MARK, if required { "token" } else { "none" });
            let etag = etag_of(body.as_bytes());
            Rendered { body, etag }
        })
    });
    &pages[usize::from(token_required)]
}

fn etag_of(bytes: &[u8]) -> HeaderValue {
    // FNV-1a: the assets are fixed at build time, so any stable hash names a version.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    HeaderValue::from_str(&format!("\"{h:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn asset_etag(index: usize) -> &'static HeaderValue {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    &ETAGS.get_or_init(|| ASSETS.iter().map(|a| etag_of(a.bytes)).collect())[index]
}

/// `GET /` and `GET /ui`: the page.
pub async fn page(State(state): State<Arc<GatewayState>>, headers: HeaderMap) -> Response {
    let token_required = state.config.load().gateway.token.is_some();
    let page = rendered(token_required);
    respond(
        &headers,
        &page.etag,
        "text/html; charset=utf-8",
        page.body.as_bytes(),
    )
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => respond(
            &headers,
            asset_etag(i),
            ASSETS[i].content_type,
            ASSETS[i].bytes,
        ),
        None => GatewayError::NotFound(format!(
            "Unknown page asset /ui/{name}: the monitoring page is at /."
        ))
        .into_response(),
    }
}

fn respond(
    request: &HeaderMap,
    etag: &HeaderValue,
    content_type: &'static str,
    body: &'static [u8],
) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag.clone());
    // Revalidate every time: after an upgrade the page must be the new binary's.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    resp
}

pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// Bytes of the page and everything it loads (what a first visit transfers, uncompressed).
pub fn page_weight() -> usize {
    rendered(false).body.len() + ASSETS.iter().map(|a| a.bytes.len()).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_assets_it_serves_and_nothing_from_elsewhere() {
        let html = rendered(true).body.as_str();
        assert!(html.contains("data-auth=\"token\""));
        assert!(!html.contains(AUTH_MARK));
        for a in ASSETS {
            assert!(html.contains(&format!("/ui/{}", a.name)), "{}", a.name);
        }
        let css = std::str::from_utf8(ASSETS[1].bytes).unwrap_or("");
        assert!(!html.contains("://") && !css.contains("://"));
        assert!(!html.contains("<script>") && !html.contains("style=\""));
        // The script's one URL-looking string is the SVG namespace name.
        let js = std::str::from_utf8(ASSETS[0].bytes).unwrap_or("");
        assert_eq!(js.matches("://").count(), 1);
        assert!(js.contains("'http://www.w3.org/2000/svg'"));
        assert!(
            !js.contains("innerHTML"),
            "data is set as text, never parsed as HTML"
        );
        assert!(page_weight() < 100 * 1024, "page weight {}", page_weight());
    }

    #[test]
    fn the_two_variants_have_different_etags() {
        assert_ne!(rendered(false).etag, rendered(true).etag);
    }
}
