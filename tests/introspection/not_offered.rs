//! An issuer whose metadata names no `introspection_endpoint`, with
//! introspection configured to discover it (found from outside:
//! `MCP_OAUTH2_CLIENT_ID`, set for the token exchange, turns introspection
//! on, and every token that is not a JWT got 503 `introspection_unavailable`
//! for good, a retry a client could never get past). The issuer's answer is
//! told as such: 401 `introspection_not_offered`, without a cooldown and
//! without reading the metadata once per token; the server says so in its
//! log when it starts; a document that has the endpoint further down the
//! discovery list is used.

use std::sync::atomic::Ordering;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::verify::IntrospectionSettings;
use serde_json::{Value, json};

use super::fixture::{Harness, bounded, call_text, legacy_client, post_bearer};
use super::{RESOURCE, check, now, start_endpoint};
use crate::support;

/// A verifier for the issuer at `base` that discovers its endpoint.
fn discovering(base: &str) -> mcp_oauth2::verify::IntrospectionVerifier {
    mcp_oauth2::verify::IntrospectionVerifier::new(
        &super::loopback_config(base),
        IntrospectionSettings::new("rs:client", "s3cr&t"),
    )
    .unwrap()
}

/// `initialize` with `token`: status, `Retry-After`, `WWW-Authenticate` and
/// the body.
async fn initialize(h: &Harness, token: &str) -> (u16, bool, String, Value) {
    const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let resp = bounded(h.post(&[("authorization", &format!("Bearer {token}"))], INITIALIZE)).await;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, retry_after, challenge, body)
}

// `McpServer` with introspection discovered from a `TestIssuer` (whose
// metadata has a key set and a token endpoint, no introspection endpoint):
// opaque tokens are 401 `introspection_not_offered` with a Bearer
// challenge, no `Retry-After`; the metadata is read once, not once per
// token; a JWT is still accepted.
#[tokio::test]
async fn opaque_tokens_are_refused_as_not_offered_when_the_issuer_has_no_endpoint() {
    let h = Harness::start(|b| b.introspection(IntrospectionSettings::new("rs", "s3cret"))).await;
    for i in 0..50 {
        let (status, retry_after, challenge, body) = initialize(&h, &format!("opaque-{i}")).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["reason"], "introspection_not_offered", "{body}");
        assert_eq!(body["error"], "invalid_token", "{body}");
        assert!(!retry_after, "{body}");
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(challenge.contains("offers no introspection"), "{challenge}");
    }
    // A JWT with a damaged part is a malformed JWT, not a token "not a
    // JWT" (found from outside: it was told the issuer offers no
    // introspection); what is no JWT keeps that answer.
    let good = h.token("alice");
    let parts: Vec<&str> = good.split('.').collect();
    let damaged = [
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][1..]),
        format!("{}.{}~.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.e30.{}", parts[0], parts[2]).replace("e30", "bm90IGpzb24"),
    ];
    for token in &damaged {
        let (status, retry_after, challenge, body) = initialize(&h, token).await;
        assert_eq!(status, 401, "{token}: {body}");
        assert_ne!(body["reason"], "introspection_not_offered", "{body}");
        assert_eq!(body["error"], "invalid_token", "{body}");
        assert!(!retry_after, "{body}");
        assert!(
            !challenge.contains("offers no introspection"),
            "{challenge}"
        );
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
    let (_, _, _, body) = initialize(&h, &damaged[0]).await;
    assert_eq!(body["reason"], "malformed_token", "{body}");
    // Read when the server started and at most once more (the start-up
    // read may still be under way when the first token comes): never per
    // token (three metadata URLs at most per reading: RFC 8414, OpenID
    // Connect, and the issuer-path form).
    let metadata = h.issuer.metadata_hits();
    assert!((1..=6).contains(&metadata), "{metadata} metadata requests");
    let client = bounded(legacy_client(&h.resource, &h.token("alice")))
        .await
        .unwrap();
    assert!(bounded(call_text(&client, "whoami")).await.is_ok());
    client.cancel().await.unwrap();
}

// The verifier on its own (a plain layer has no start-up): the first
// opaque token reads the metadata, the next ones are answered from what it
// said; the error is the documented kind.
#[tokio::test]
async fn the_verifier_reads_the_metadata_once_for_many_tokens() {
    use mcp_oauth2::AuthErrorKind;
    let (e, base) = start_endpoint().await;
    *e.raw_metadata.lock().unwrap() =
        Some(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}).to_string());
    let v = discovering(&base);
    for i in 0..20 {
        assert_eq!(
            check(&v, &format!("opaque-{i}")).await.err(),
            Some(AuthErrorKind::IntrospectionNotOffered)
        );
    }
    assert_eq!(e.metadata_hits.load(Ordering::SeqCst), 1);
    assert_eq!(e.hits.load(Ordering::SeqCst), 0);
}

// A document without the member sends discovery on: an RFC 8414 document
// without `introspection_endpoint` beside an OpenID Connect one with it
// (before: the first document's lack ended discovery).
#[tokio::test]
async fn an_endpoint_named_in_the_openid_document_only_is_found() {
    let (e, base) = start_endpoint().await;
    *e.raw_metadata.lock().unwrap() =
        Some(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}).to_string());
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "olga", "aud": RESOURCE, "exp": now() + 300}),
    );
    // The OpenID Connect document names the endpoint.
    *e.oidc_metadata.lock().unwrap() = Some(
        json!({
            "issuer": base,
            "jwks_uri": format!("{base}/jwks"),
            "introspection_endpoint": format!("{base}/introspect"),
        })
        .to_string(),
    );
    let v = discovering(&base);
    assert_eq!(check(&v, "t").await.unwrap().subject(), "olga");
    assert_eq!(e.hits.load(Ordering::SeqCst), 1);
}

// The reference server as found from outside: an issuer without an
// introspection endpoint and `MCP_OAUTH2_CLIENT_ID` set. Its log says so
// before any request, naming the reason and the variable to set; opaque
// tokens are 401 `introspection_not_offered`, JWTs are served.
#[tokio::test]
async fn the_reference_server_says_at_start_up_that_its_issuer_offers_no_introspection() {
    let issuer = TestIssuer::start().await.unwrap();
    let (server, resource) = support::reference::start_trusting(
        issuer.issuer(),
        &[
            ("MCP_OAUTH2_CLIENT_ID", "rs"),
            ("MCP_OAUTH2_CLIENT_SECRET", "s3cret-value"),
            ("MCP_OAUTH2_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let mut lines = server.lines;
    let mut child = server.child;
    let warned = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("introspection_not_offered") {
                return line;
            }
        }
        String::new()
    })
    .await
    .expect("no start-up line about the missing introspection endpoint");
    let event: Value = serde_json::from_str(&warned).unwrap();
    assert_eq!(event["level"], "WARN", "{warned}");
    assert!(warned.contains("MCP_OAUTH2_INTROSPECTION_URI"), "{warned}");
    assert!(!warned.contains("s3cret-value"), "{warned}");
    let refused = post_bearer(
        &reqwest::Client::new(),
        &resource,
        "opaque-token-value",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(refused.status(), 401);
    assert!(!refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "introspection_not_offered", "{body}");
    let token = issuer
        .token()
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    let client = bounded(legacy_client(&resource, &token)).await.unwrap();
    assert!(bounded(call_text(&client, "whoami")).await.is_ok());
    client.cancel().await.unwrap();
    child.kill().await.unwrap();
}

// A document without the member beside a discovery URL that failed (a
// 500, a 429) is not the issuer's answer: the failed one may name the
// endpoint. An outage then (503, cooldown), and the endpoint is used once
// the failed URL answers (found from outside: taken for "none" for five
// minutes, every opaque token told it was invalid).
#[tokio::test]
async fn a_failed_metadata_url_beside_a_document_without_the_member_is_an_outage() {
    for status in [500, 429] {
        let (e, base) = start_endpoint().await;
        // RFC 8414: failing (it would name the endpoint); OpenID Connect:
        // a document without it.
        e.metadata_status.store(status, Ordering::SeqCst);
        *e.oidc_metadata.lock().unwrap() =
            Some(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}).to_string());
        e.answers.lock().unwrap().insert(
            "t".into(),
            json!({"active": true, "sub": "olga", "aud": RESOURCE, "exp": now() + 300}),
        );
        let v = discovering(&base);
        assert_eq!(
            check(&v, "t").await.err(),
            Some(mcp_oauth2::AuthErrorKind::IntrospectionUnavailable),
            "{status}"
        );
        // The RFC 8414 document is back: after the cooldown (1 s), the
        // endpoint it names is found and used.
        e.metadata_status.store(0, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(check(&v, "t").await.unwrap().subject(), "olga", "{status}");
    }
}

// Concurrent first tokens share one discovery: sixty distinct tokens sent
// at once while the metadata takes 300 ms cost one reading of it (up to
// three URLs), not one each.
#[tokio::test]
async fn concurrent_first_tokens_share_one_discovery() {
    let (e, base) = start_endpoint().await;
    e.metadata_delay_ms.store(300, Ordering::SeqCst);
    *e.raw_metadata.lock().unwrap() =
        Some(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}).to_string());
    let v = std::sync::Arc::new(discovering(&base));
    let lookups: Vec<_> = (0..60)
        .map(|i| {
            let v = std::sync::Arc::clone(&v);
            tokio::spawn(async move { check(&v, &format!("made-up-{i}")).await.err() })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(
            bounded(lookup).await.unwrap(),
            Some(mcp_oauth2::AuthErrorKind::IntrospectionNotOffered)
        );
    }
    let read = e.metadata_hits.load(Ordering::SeqCst);
    assert_eq!(read, 1, "{read} readings of the RFC 8414 document");
}

/// `GET path` on `addr`: the status.
async fn status_of(addr: std::net::SocketAddr, path: &str) -> u16 {
    bounded(reqwest::get(format!("http://{addr}{path}")))
        .await
        .unwrap()
        .status()
        .as_u16()
}

// An issuer of opaque tokens only may publish an empty key set. A server
// verifying its tokens by introspection is ready once that set is read
// (found from outside: it never was, and a readiness gate kept it from
// traffic for good), and serves its tokens; without introspection, the
// same issuer leaves it unready (no token of it could be verified).
#[tokio::test]
async fn an_introspecting_server_is_ready_when_its_issuer_publishes_no_key() {
    use mcp_oauth2::McpServer;
    let (e, base) = start_endpoint().await;
    *e.jwks.lock().unwrap() = Some(r#"{"keys":[]}"#.to_owned());
    for introspects in [true, false] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let resource = format!("http://{addr}/mcp");
        let mut config = mcp_oauth2::AuthConfig::builder()
            .issuer(&base)
            .resource(&resource)
            .allow_insecure_http_for_loopback(true);
        if introspects {
            config = config.introspection(IntrospectionSettings::new("rs:client", "s3cr&t"));
        }
        let server = McpServer::builder()
            .auth(config.build().unwrap())
            .readiness_path("/readyz")
            .service(|| Ok(support::fixture::EchoServer::new()))
            .build()
            .unwrap();
        let readiness = server.readiness();
        tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut status = status_of(addr, "/readyz").await;
        while status != 200 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            status = status_of(addr, "/readyz").await;
        }
        assert_eq!(
            status == 200,
            introspects,
            "introspection {introspects}: {status}"
        );
        assert_eq!(readiness.is_ready(), introspects);
        if !introspects {
            continue;
        }
        e.answers.lock().unwrap().insert(
            "opaque-olga".into(),
            json!({"active": true, "sub": "olga", "aud": resource, "exp": now() + 300}),
        );
        let client = reqwest::Client::new();
        let post = |token: &str| {
            client
                .post(&resource)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
                .send()
        };
        let served = bounded(post("opaque-olga")).await.unwrap();
        assert_eq!(served.status(), 200);
        let refused = bounded(post("opaque-unknown")).await.unwrap();
        assert_eq!(refused.status(), 401);
    }
}
