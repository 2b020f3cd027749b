//! The stylesheet, the page script and the vendored libraries, embedded in the
//! binary. Vendored files carry their version in their name and are cached for a
//! year; ours are revalidated by their ETag (a digest of their bytes).
//!
//! Vendored, from the npm registry, unmodified (see `assets/vendor/VENDOR.md`):
//! htmx 2.0.11 (0BSD) and uPlot 1.6.32 (MIT).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    kind: &'static str,
    body: &'static [u8],
    /// Its name holds its version: never changes.
    immutable: bool,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "logbook.css",
        kind: "text/css; charset=utf-8",
        body: include_bytes!("assets/logbook.css"),
        immutable: false,
    },
    Asset {
        name: "logbook.js",
        kind: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/logbook.js"),
        immutable: false,
    },
    Asset {
        name: "htmx-2.0.11.min.js",
        kind: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/vendor/htmx-2.0.11.min.js"),
        immutable: true,
    },
    Asset {
        name: "uPlot-1.6.32.min.js",
        kind: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/vendor/uPlot-1.6.32.min.js"),
        immutable: true,
    },
    Asset {
        name: "uPlot-1.6.32.min.css",
        kind: "text/css; charset=utf-8",
        body: include_bytes!("assets/vendor/uPlot-1.6.32.min.css"),
        immutable: true,
    },
];

static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            format!(
                "\"{}\"",
                &crate::audit::to_hex(&Sha256::digest(a.body))[..16]
            )
        })
        .collect()
});

/// One asset.
pub(super) async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    r
}
