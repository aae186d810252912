//! Correlation and response hygiene (issue 17, items 2 and 6), over real
//! HTTP on 127.0.0.1:0: the request id taken from `X-Request-Id` (or the
//! W3C `traceparent` trace id), replaced when malformed, generated
//! otherwise; echoed on every response (metadata, challenges, refusals,
//! rmcp's answers, 404s), in the JSON error body and to handlers; every
//! error body with `Cache-Control: no-store` and `X-Content-Type-Options:
//! nosniff`; the metadata with `Cache-Control: public, max-age=<seconds>`.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

use axum::Extension;
use axum::routing::get;
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthContext, AuthLayer, RequestId};
use serde_json::Value;
use support::fixture::Harness;

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

fn id_of(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("x-request-id")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("|")
}

fn is_generated(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn assert_error_hygiene(r: &reqwest::Response, what: &str) {
    assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{what}");
}

// A valid id is echoed on the challenge and in its body; malformed ones
// (too long, bad characters, duplicated, a token) are replaced.
#[tokio::test]
async fn request_ids_are_echoed_or_replaced() {
    let h = Harness::start(|b| b).await;
    let http = reqwest::Client::new();
    let send = |ids: &[&str], extra: &[(&str, &str)]| {
        let mut r = http
            .post(&h.resource)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .body(LIST);
        for id in ids {
            r = r.header("x-request-id", *id);
        }
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.send()
    };
    let r = send(&["abc-123_x.y:z"], &[]).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(id_of(&r), "abc-123_x.y:z");
    assert_error_hygiene(&r, "401");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "abc-123_x.y:z");

    let token = h.token("alice");
    let long = "a".repeat(129);
    let bearer = format!("Bearer {token}");
    for bad in [
        long.as_str(),
        "has space",
        "semi;colon",
        "quote\"d",
        token.as_str(),
        // Ory's opaque token: no dot between its random parts, runs of 50
        // and 43 (found from outside: echoed, under the 63 rule).
        "ory_at_Xq3vN8Kc1TzR7bLm2WpYd9FsJhG4aE6uQoVi0nC5lBk.kT2mW9qXc4Rz7LpN1vHs8dJf3GbY6aEuQoVi0nC5lBt",
    ] {
        let r = send(&[bad], &[]).await.unwrap();
        let id = id_of(&r);
        // A JWT is three base64url parts joined by dots: all allowed
        // characters, but longer than 128, so it is replaced too.
        assert!(is_generated(&id), "{bad:.30}: replaced, got {id}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["request_id"], id.as_str());
    }
    // Two ids: neither is believed.
    let r = send(&["one", "two"], &[]).await.unwrap();
    assert!(is_generated(&id_of(&r)));
    // traceparent gives the trace id; an all-zero trace id is invalid.
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = send(&[], &[("traceparent", tp)]).await.unwrap();
    assert_eq!(id_of(&r), "4bf92f3577b34da6a3ce929d0e0e4736");
    let zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let r = send(&[], &[("traceparent", zero)]).await.unwrap();
    assert!(is_generated(&id_of(&r)));
    // Generated ids differ per request.
    let (a, b) = (send(&[], &[]).await.unwrap(), send(&[], &[]).await.unwrap());
    assert_ne!(id_of(&a), id_of(&b));
    // An accepted call: rmcp's answer carries the id too.
    let r = send(&["ok-1"], &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(id_of(&r), "ok-1");
}

// Every answer of the server: metadata (with its cache header), 404 of an
// unknown route, a refused Origin, a header mismatch.
#[tokio::test]
async fn every_answer_carries_the_id_and_error_bodies_are_not_cached() {
    let h = Harness::start(|b| b.metadata_max_age(Duration::from_secs(120))).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            h.base
        ))
        .header("x-request-id", "meta-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(id_of(&r), "meta-1");
    assert_eq!(r.headers()["cache-control"], "public, max-age=120");
    let r = http
        .get(format!("{}/.well-known/oauth-protected-resource", h.base))
        .send()
        .await
        .unwrap();
    assert!(is_generated(&id_of(&r)));
    assert_eq!(r.headers()["cache-control"], "public, max-age=120");

    let r = http
        .get(format!("{}/nowhere", h.base))
        .header("x-request-id", "404-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(id_of(&r), "404-1");

    let r = http
        .post(&h.resource)
        .header("origin", "https://evil.example")
        .header("x-request-id", "origin-1")
        .body(LIST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(id_of(&r), "origin-1");
    assert_error_hygiene(&r, "403 origin");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "origin-1");

    let token = h.token("alice");
    let r = http
        .post(&h.resource)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header("x-request-id", "mm-1")
        .body(LIST)
        .send()
        .await
        .unwrap();
    // Per-operation rules are off here: the header check is rmcp's or ours,
    // either way the id is echoed.
    assert_eq!(id_of(&r), "mm-1");
}

// A plain layer: handlers get the id through the extension and the context.
#[tokio::test]
async fn handlers_see_the_request_id() {
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/api", listener.local_addr().unwrap());
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let layer = AuthLayer::new(config).unwrap();
    let app = axum::Router::new()
        .route(
            "/api",
            get(
                |auth: AuthContext, Extension(id): Extension<RequestId>| async move {
                    format!("{}|{}", auth.request_id().unwrap_or("none"), id.as_str())
                },
            ),
        )
        .layer(layer.clone())
        .merge(layer.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let token = issuer.token().audience(&resource).sign();
    let http = reqwest::Client::new();
    let r = http
        .get(&resource)
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", "h-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(id_of(&r), "h-1");
    assert_eq!(r.text().await.unwrap(), "h-1|h-1");
    let r = http
        .get(&resource)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let id = id_of(&r);
    assert!(is_generated(&id));
    assert_eq!(r.text().await.unwrap(), format!("{id}|{id}"));
    // The metadata router of a plain layer echoes ids too.
    let base = resource.trim_end_matches("/api");
    let r = http
        .get(format!("{base}/.well-known/oauth-protected-resource/api"))
        .header("x-request-id", "m-2")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r), "m-2");
    assert_eq!(r.headers()["cache-control"], "public, max-age=3600");
}
