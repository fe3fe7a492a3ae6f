//! GraphiQL at `/` (and at `GET /graphql` for a browser), served entirely from the binary so
//! it works without internet access: the production builds of graphiql and React vendored
//! in `assets/graphiql/` (fetched and checked by `scripts/vendor-graphiql`), and this
//! module's own page, stylesheet and script (`graphiql.html`, `.css`, `.js` beside it).
//!
//! Every asset has a versioned path (the package's version, or a digest of our own files),
//! so it is cached for a year as immutable; the page itself is revalidated on every load and
//! names each asset with its SRI `integrity` (sha384 of the bytes served).

use std::sync::LazyLock;

use axum::http::header::{self, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha384};

/// The vendored graphiql (its UMD build), pinned in `scripts/vendor-graphiql`.
pub const GRAPHIQL_VERSION: &str = "4.1.2";
/// The vendored react and react-dom, pinned in `scripts/vendor-graphiql`.
pub const REACT_VERSION: &str = "18.3.1";

/// Where the assets live: `/graphiql/<package>-<version>/<file>`.
const PREFIX: &str = "/graphiql/";

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Only what this server serves: scripts, styles and sockets of its own origin (GraphiQL's
/// fonts and icons are `data:` URLs inside its stylesheet). A token typed into the page
/// cannot be sent anywhere else, and nothing is fetched from a CDN.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file the page loads.
struct Asset {
    /// The name the page template uses (`{{name}}`, `{{name#integrity}}`).
    name: &'static str,
    /// The path's version segment; `None` for our own files (a digest of the bytes).
    version: Option<String>,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// An asset ready to serve.
struct Served {
    path: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The page and its assets, put together once.
struct Site {
    page: String,
    assets: Vec<Served>,
}

fn assets() -> [Asset; 6] {
    let graphiql = Some(format!("graphiql-{GRAPHIQL_VERSION}"));
    [
        Asset {
            name: "react.production.min.js",
            version: Some(format!("react-{REACT_VERSION}")),
            content_type: JAVASCRIPT,
            bytes: include_bytes!("../../assets/graphiql/react.production.min.js"),
        },
        Asset {
            name: "react-dom.production.min.js",
            version: Some(format!("react-dom-{REACT_VERSION}")),
            content_type: JAVASCRIPT,
            bytes: include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
        },
        Asset {
            name: "graphiql.min.js",
            version: graphiql.clone(),
            content_type: JAVASCRIPT,
            bytes: include_bytes!("../../assets/graphiql/graphiql.min.js"),
        },
        Asset {
            name: "graphiql.min.css",
            version: graphiql,
            content_type: CSS,
            bytes: include_bytes!("../../assets/graphiql/graphiql.min.css"),
        },
        Asset {
            name: "chatql-graphiql.js",
            version: None,
            content_type: JAVASCRIPT,
            bytes: include_bytes!("graphiql.js"),
        },
        Asset {
            name: "chatql-graphiql.css",
            version: None,
            content_type: CSS,
            bytes: include_bytes!("graphiql.css"),
        },
    ]
}

static SITE: LazyLock<Site> = LazyLock::new(|| {
    let mut page = include_str!("graphiql.html").to_owned();
    let mut served = Vec::new();
    for asset in assets() {
        let digest = Sha384::digest(asset.bytes);
        let version = asset.version.unwrap_or_else(|| {
            // A new build of our own file gets a new path, so "immutable" stays true.
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("chatql-{hex}")
        });
        let path = format!("{PREFIX}{version}/{}", asset.name);
        let integrity = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        page = page
            .replace(&format!("{{{{{}#integrity}}}}", asset.name), &integrity)
            .replace(&format!("{{{{{}}}}}", asset.name), &path);
        served.push(Served {
            path,
            content_type: asset.content_type,
            bytes: asset.bytes,
        });
    }
    Site {
        page,
        assets: served,
    }
});

/// The GraphiQL page.
pub fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page names the current assets: always revalidate it.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        SITE.page.clone(),
    )
        .into_response()
}

/// `GET /` — the page.
pub async fn index() -> Response {
    page()
}

/// `GET /graphiql/…` — one of the page's assets, cached as immutable (its path changes
/// with its content).
pub async fn asset(uri: Uri) -> Response {
    let Some(asset) = SITE.assets.iter().find(|a| a.path == uri.path()) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response();
    // Only our page loads these: other sites may not embed them (no-cors loads refused).
    response.headers_mut().insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_the_page_is_filled() {
        assert!(!SITE.page.contains("{{"), "{}", SITE.page);
        for asset in &SITE.assets {
            assert!(
                SITE.page.contains(&asset.path),
                "{} not on the page",
                asset.path
            );
        }
    }

    #[test]
    fn the_versions_are_those_the_vendor_script_pins() {
        let script = include_str!("../../scripts/vendor-graphiql");
        assert!(script.contains(&format!("GRAPHIQL={GRAPHIQL_VERSION}\n")));
        assert!(script.contains(&format!("REACT={REACT_VERSION}\n")));
    }
}
