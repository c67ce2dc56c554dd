//! The web console's files (`dashboard/` at the repository root), built into the binary and
//! served at `/dashboard/`; `/` and `/dashboard` redirect there. The console is plain HTML, CSS
//! and JavaScript modules that talk only to the REST API (`/v1/...`).
//!
//! Every file is answered with its content type, `Cache-Control: no-cache` and an `ETag` (a
//! hash of its bytes), so a browser revalidates and gets `304 Not Modified` until the broker is
//! upgraded; plus `X-Content-Type-Options: nosniff`, a `Content-Security-Policy` that allows only
//! this origin, and `Referrer-Policy: no-referrer`.

use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use crate::Body;

/// The path the console is served under.
pub const PREFIX: &str = "/dashboard/";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `(name under /dashboard/, content type, bytes)`.
const FILES: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../dashboard/index.html")),
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../dashboard/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/api.js")),
    ("ui.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/ui.js")),
    ("chart.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/chart.js")),
    ("pages/cluster.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/pages/cluster.js")),
    ("pages/topics.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/pages/topics.js")),
    ("pages/groups.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/pages/groups.js")),
    ("pages/messages.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/pages/messages.js")),
    ("pages/plugins.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/pages/plugins.js")),
    ("pages/amqp.js", "text/javascript; charset=utf-8", include_bytes!("../../dashboard/pages/amqp.js")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../dashboard/favicon.svg")),
];

/// FNV-1a, 64 bits: an entity tag for a file.
fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// A redirect to the console.
pub fn redirect() -> Response<Body> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", PREFIX)
        .header("cache-control", "no-cache")
        .body(Body::empty())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The file at `/dashboard/<name>` (`index.html` for the bare prefix), or `None`.
pub fn file(name: &str, headers: &HeaderMap) -> Option<Response<Body>> {
    let name = if name.is_empty() { "index.html" } else { name };
    let (_, content_type, bytes) = FILES.iter().find(|(n, _, _)| *n == name)?;
    let tag = etag(bytes);
    let builder = Response::builder()
        .header("cache-control", "no-cache")
        .header("etag", &tag)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("content-security-policy", CSP)
        .header("x-frame-options", "DENY");
    let matches = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let response = if matches {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        builder.header("content-type", *content_type).body(Body::full(bytes::Bytes::from_static(bytes)))
    };
    Some(response.unwrap_or_else(|_| Response::new(Body::empty())))
}

#[cfg(test)]
mod tests {
    //! Content types, validators and the redirect.

    use super::*;

    #[test]
    fn files_have_types_and_revalidate() {
        let r = file("", &HeaderMap::new()).unwrap();
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let tag = r.headers()["etag"].clone();
        let mut h = HeaderMap::new();
        h.insert("if-none-match", tag);
        assert_eq!(file("index.html", &h).unwrap().status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            file("app.js", &HeaderMap::new()).unwrap().headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(file("../Cargo.toml", &HeaderMap::new()).is_none());
        assert_eq!(redirect().headers()["location"], PREFIX);
    }
}
