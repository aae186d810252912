//! Per-operation scopes through the public `AuthLayer`, in front of a
//! router whose every path records the body it is handed: whatever the
//! path, the MCP headers and the body bytes, a body that reaches the
//! service and that rmcp would read never holds a call the token lacks the
//! scope for (read with either copy of a repeated member winning), and the
//! layer never panics. The same property as
//! `tests/properties.rs::no_forbidden_call_reaches_the_service`, sharing
//! its app and its judge (`tests/support/reach.rs`).
//!
//! Input: one byte choosing the `Content-Type` and the
//! `MCP-Protocol-Version`, one choosing the app's mount (`reach::MOUNTS`:
//! the builder's resource and the layer's placement) and the path (one of
//! the mount's own spellings or any of `reach::PATHS`), then `Mcp-Method`,
//! `Mcp-Name` and the body, separated by 0xFF (an empty header is not sent).
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

#[path = "../../tests/support/reach.rs"]
mod reach;

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "Application/JSON; charset=utf-8",
    "text/plain",
    "application/vnd.api+json",
];
const VERSIONS: [Option<&str>; 4] = [None, Some("2026-07-28"), Some("2025-11-25"), Some("2025-03-26")];

struct Fixture {
    rt: tokio::runtime::Runtime,
    apps: Vec<(axum::Router, Arc<Mutex<Option<Bytes>>>)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let apps = reach::MOUNTS.iter().map(reach::app_at).collect();
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
            apps,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let [choice, place, rest @ ..] = data else {
        return;
    };
    let (choice, place) = (*choice, usize::from(*place));
    let mount = place % f.apps.len();
    let (app, reached) = &f.apps[mount];
    let own = reach::MOUNTS[mount].own;
    // Every mount meets every path: the mount is the byte modulo their
    // number, the path the quotient (odd: one of its own spellings).
    let k = place / f.apps.len();
    let path = if k % 2 == 1 {
        own[(k / 2) % own.len()]
    } else {
        reach::PATHS[(k / 2) % reach::PATHS.len()]
    };
    let content_type = CONTENT_TYPES[usize::from(choice / 8) % CONTENT_TYPES.len()];
    let version = VERSIONS[usize::from(choice / 32) % VERSIONS.len()];
    let mut parts = rest.splitn(3, |&b| b == 0xff);
    let method = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let mut headers: Vec<(&str, &[u8])> = vec![("content-type", content_type.as_bytes())];
    if let Some(v) = version {
        headers.push(("mcp-protocol-version", v.as_bytes()));
    }
    if !method.is_empty() {
        headers.push(("mcp-method", method));
    }
    if !name.is_empty() {
        headers.push(("mcp-name", name));
    }
    let Some(req) = reach::request(path, &headers, body.clone()) else {
        return; // not sendable over HTTP
    };
    let readable = reach::rmcp_reads(req.headers());
    *reached.lock().unwrap() = None;
    let response = f.rt.block_on(app.clone().oneshot(req)).unwrap();
    let handed = reached.lock().unwrap().take();
    if let Some(handed) = handed {
        assert_eq!(response.status(), 200);
        assert_eq!(&handed[..], &body[..], "the body reached the service changed");
        if readable {
            let found = reach::forbidden_call(&handed);
            assert!(
                found.is_none(),
                "{found:?} reached the service on {path} under {:?}",
                reach::MOUNTS[mount]
            );
        }
    }
});
