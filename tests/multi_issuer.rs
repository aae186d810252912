//! Several authorization servers at once, through the real server and the
//! reference server binary configured by environment.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use fixture::{EchoServer, bounded, call_text, legacy_client};
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, McpServer};
use serde_json::json;

async fn serve(
    config: AuthConfig,
    listener: tokio::net::TcpListener,
) -> tokio_util::sync::CancellationToken {
    let server = McpServer::builder()
        .auth(config)
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    ct
}

// The token's `iss` selects among the configured issuers only; each issuer
// has its own discovery and key set; the context says which one accepted.
#[tokio::test]
async fn two_issuers_each_with_its_own_keys() {
    let a = TestIssuer::start().await.unwrap();
    let b = TestIssuer::start().await.unwrap();
    let stranger = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let config = AuthConfig::builder()
        .issuer(a.issuer())
        .issuer(b.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let ct = serve(config, listener).await;
    // The metadata lists both.
    let doc: serde_json::Value =
        reqwest::get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        doc["authorization_servers"],
        json!([a.issuer(), b.issuer()])
    );
    for (issuer, sub) in [(&a, "from-a"), (&b, "from-b")] {
        let token = issuer.token().subject(sub).audience(&resource).sign();
        let client = bounded(legacy_client(&resource, &token)).await.unwrap();
        let who: serde_json::Value =
            serde_json::from_str(&bounded(call_text(&client, "whoami")).await.unwrap()).unwrap();
        assert_eq!(who["subject"], sub);
        assert_eq!(who["issuer"], issuer.issuer(), "tenant identification");
        client.cancel().await.unwrap();
    }
    let post = |token: String| {
        let resource = resource.clone();
        async move {
            reqwest::Client::new()
                .post(&resource)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Claims issuer B, signed with A's key (even reusing B's kid): refused.
    let forged = a
        .token()
        .audience(&resource)
        .claim("iss", json!(b.issuer()))
        .header("kid", json!(b.current_kid()))
        .sign();
    assert_eq!(post(forged).await, 401);
    // An issuer that is not configured: refused, and never contacted.
    let unknown = stranger.token().audience(&resource).sign();
    assert_eq!(post(unknown).await, 401);
    assert_eq!(stranger.jwks_hits() + stranger.metadata_hits(), 0);
    ct.cancel();
}

// Introspection trusts every configured issuer, as the JWT path does: with
// the shared `introspection(..)` settings, an opaque token whose answer
// names the second issuer is accepted through the real server, and the
// context names that issuer; an issuer that is not configured is refused.
#[tokio::test]
async fn introspected_tokens_of_the_second_issuer_are_accepted() {
    use axum::routing::post;
    use mcp_oauth2::verify::IntrospectionSettings;
    let a = TestIssuer::start().await.unwrap();
    let b = TestIssuer::start().await.unwrap();
    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint_url = format!("http://{}/introspect", endpoint.local_addr().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (b_iss, aud) = (b.issuer().to_owned(), resource.clone());
    let app = axum::Router::new().route(
        "/introspect",
        post(move |body: String| {
            let (b_iss, aud) = (b_iss.clone(), aud.clone());
            async move {
                if body.contains("token=no-iss") {
                    return axum::Json(json!({"active": true, "sub": "opaque-bob", "aud": aud}));
                }
                let iss = if body.contains("token=from-b") {
                    b_iss
                } else {
                    "https://stranger.example".to_owned()
                };
                axum::Json(json!({"active": true, "sub": "opaque-bob", "aud": aud, "iss": iss}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(endpoint, app).await });
    let config = AuthConfig::builder()
        .issuer(a.issuer())
        .issuer(b.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .introspection(
            IntrospectionSettings::new("rs", "secret")
                .endpoint(url::Url::parse(&endpoint_url).unwrap()),
        )
        .build()
        .unwrap();
    let ct = serve(config, listener).await;
    let client = bounded(legacy_client(&resource, "from-b")).await.unwrap();
    let who: serde_json::Value =
        serde_json::from_str(&bounded(call_text(&client, "whoami")).await.unwrap()).unwrap();
    assert_eq!(who["subject"], "opaque-bob");
    assert_eq!(who["issuer"], b.issuer());
    client.cancel().await.unwrap();
    // An answer of this endpoint, given for both issuers, that names no
    // `iss`: whose user it is cannot be told, so it is refused (found from
    // outside: it was taken as the first issuer's, another issuer's user
    // of the same `sub` then reached her notes and exchanged token).
    for token in ["from-stranger", "no-iss"] {
        let resp = list_tools_with(&resource, token).await;
        assert_eq!(resp.status(), 401, "{token}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{token}");
        assert_eq!(body["reason"], "invalid_issuer", "{token}");
    }
    ct.cancel();
}

/// The reference server accepts tokens from two issuers given as
/// `MCP_OAUTH2_ISSUER=a,b` (and is configured by environment only).
#[tokio::test]
async fn reference_server_with_two_issuers_from_the_environment() {
    let a = TestIssuer::start().await.unwrap();
    let b = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let issuers = format!("{},{}", a.issuer(), b.issuer());
    let mut server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", &issuers),
            ("MCP_OAUTH2_RESOURCE", &resource),
        ],
    )
    .await;
    for (issuer, sub) in [(&a, "alice"), (&b, "bob")] {
        let token = issuer
            .token()
            .subject(sub)
            .audience(&resource)
            .scopes(["notes:read"])
            .sign();
        let client = bounded(legacy_client(&resource, &token)).await.unwrap();
        let who: serde_json::Value =
            serde_json::from_str(&bounded(call_text(&client, "whoami")).await.unwrap()).unwrap();
        assert_eq!(who["subject"], sub);
        assert_eq!(who["issuer"], issuer.issuer());
        assert!(bounded(call_text(&client, "list_notes")).await.is_ok());
        client.cancel().await.unwrap();
    }
    server.child.kill().await.unwrap();
}

// A hung introspection endpoint opens its cooldown even when the
// verification deadline is shorter than the HTTP timeout: its request
// times out first and counts as the outage it is (found from outside: with
// `verify_timeout` 1 s the request was dropped unsettled, the endpoint
// never cooled down, and every new token cost it a request and its caller
// the whole second).
#[tokio::test]
async fn a_hung_introspection_endpoint_cools_down_under_a_short_verification_deadline() {
    use axum::routing::post;
    use mcp_oauth2::verify::IntrospectionSettings;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/introspect", endpoint.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/introspect",
        post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                axum::Json(json!({"active": false}))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(endpoint, app).await });
    let h = support::fixture::Harness::start(|b| {
        b.verify_timeout(Duration::from_secs(1)).introspection(
            IntrospectionSettings::new("rs", "secret").endpoint(url::Url::parse(&url).unwrap()),
        )
    })
    .await;
    let status = |token: &'static str| {
        let resource = h.resource.clone();
        async move {
            let resp = list_tools_with(&resource, token).await;
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            (
                status,
                body["reason"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let (first, _) = bounded(status("opaque-1")).await;
    assert_eq!(first, 503);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let cooling = std::time::Instant::now();
    for token in ["opaque-2", "opaque-3", "opaque-4", "opaque-5"] {
        assert_eq!(
            bounded(status(token)).await,
            (503, "introspection_unavailable".to_owned()),
            "{token}"
        );
    }
    // Refused without a request while the endpoint cools down (1 s): on a
    // machine slow enough that the four took longer (CI's coverage run
    // under load), one probe per cooldown passed, never one per request.
    let probes = usize::try_from(cooling.elapsed().as_secs()).unwrap();
    let hits = hits.load(Ordering::SeqCst);
    assert!(
        hits <= 1 + probes,
        "{hits} requests in {probes} s of cooldown"
    );
    if probes == 0 {
        assert_eq!(hits, 1, "refused without a request");
    }
}

// A refusal of an introspected token judged the endpoint's answer, which
// may change: it is kept the negative TTL, not remembered as a refusal of
// the token's bytes (found from outside: an answer refused for its
// audience kept the token refused 30 s after the endpoint fixed it).
#[tokio::test]
async fn a_refused_introspection_answer_is_asked_again_after_the_negative_ttl() {
    use axum::routing::post;
    use mcp_oauth2::verify::IntrospectionSettings;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    let fixed = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&fixed);
    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/introspect", endpoint.local_addr().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let aud = resource.clone();
    let app = axum::Router::new().route(
        "/introspect",
        post(move || {
            let audience = if switch.load(Ordering::SeqCst) {
                aud.clone()
            } else {
                "https://elsewhere.example/mcp".to_owned()
            };
            async move { axum::Json(json!({"active": true, "sub": "carol", "aud": audience})) }
        }),
    );
    tokio::spawn(async move { axum::serve(endpoint, app).await });
    let issuer = TestIssuer::start().await.unwrap();
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .introspection(
            IntrospectionSettings::new("rs", "secret")
                .endpoint(url::Url::parse(&url).unwrap())
                .negative_ttl(Duration::from_millis(200)),
        )
        .build()
        .unwrap();
    let ct = serve(config, listener).await;
    let call = || list_tools_with(&resource, "opaque-carol");
    let refused = call().await;
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "invalid_audience");
    fixed.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = call().await.status();
    assert_ne!(status, 401, "still refused after the negative TTL");
    ct.cancel();
}

/// A `tools/list` with `token` as its Bearer token, sent to `resource`.
async fn list_tools_with(resource: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(resource)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap()
}
