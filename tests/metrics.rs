//! The metrics snapshot: outcomes by reason, cache activity, key-set fetches.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthLayer};

#[tokio::test]
async fn snapshot_counts_what_happened() {
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/api");
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .required_scopes(["api"])
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let layer = AuthLayer::new(config).unwrap();
    let metrics = layer.metrics();
    let app = axum::Router::new()
        .route("/api", axum::routing::get(|| async { "ok" }))
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let get = |token: Option<String>| {
        let mut r = http.get(&resource);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let good = issuer.token().audience(&resource).scopes(["api"]).sign();
    for _ in 0..3 {
        assert_eq!(get(Some(good.clone())).await, 200);
    }
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("garbage".into())).await, 401);
    let narrow = issuer.token().audience(&resource).sign();
    assert_eq!(get(Some(narrow)).await, 403);
    let s = metrics.snapshot();
    assert_eq!(s.accepted, 3);
    assert_eq!(s.rejected.get("missing_token"), Some(&1));
    assert_eq!(s.rejected.get("malformed_token"), Some(&1));
    assert_eq!(s.rejected.get("insufficient_scope"), Some(&1));
    assert_eq!(s.rejected_total(), 3);
    assert_eq!(s.cache_hits, 2, "{s:?}");
    assert_eq!(s.cache_entries, 2);
    assert_eq!(s.jwks_fetches, 1);
    assert_eq!(s.jwks_fetch_failures, 0);
    assert!(s.key_set_age[issuer.issuer()].is_some());
    // Debug of the handle shows counters, never a token.
    assert!(!format!("{metrics:?}").contains(&good[..20]));
}
