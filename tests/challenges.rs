//! Raw HTTP: every challenge and error body the layer answers with, and the
//! RFC 9728 metadata endpoints.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use fixture::{Harness, challenge, param};

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

fn metadata_url(h: &Harness) -> String {
    format!("{}/.well-known/oauth-protected-resource/mcp", h.base)
}

async fn body(resp: reqwest::Response) -> serde_json::Value {
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.expect("JSON body")
}

// RFC 6750 section 3.1 + RFC 9728 section 5.1 + MCP "Scope Selection Strategy":
// no credentials -> 401, resource_metadata and scope, no error code.
#[tokio::test]
async fn no_token_gets_a_discovery_challenge_without_error() {
    let h = Harness::start(|b| b.scopes_supported(["notes:read"])).await;
    let resp = h.post(&[], LIST).await;
    assert_eq!(resp.status(), 401);
    let c = challenge(&resp);
    assert_eq!(c[0].0, "resource_metadata");
    assert_eq!(
        param(&c, "resource_metadata"),
        Some(metadata_url(&h).as_str())
    );
    assert_eq!(param(&c, "scope"), Some("notes:read"));
    assert_eq!(param(&c, "error"), None);
    let b = body(resp).await;
    assert_eq!(b["reason"], "missing_token");
    assert!(b.get("error").is_none());
}

// RFC 6750 section 3.1: another scheme is "no Bearer credentials".
#[tokio::test]
async fn other_schemes_get_the_plain_challenge() {
    let h = Harness::start(|b| b).await;
    for auth in ["Basic dXNlcjpwYXNz", "DPoP abc", "Negotiate x"] {
        let resp = h.post(&[("authorization", auth)], LIST).await;
        assert_eq!(resp.status(), 401, "{auth}");
        assert_eq!(param(&challenge(&resp), "error"), None);
    }
}

// RFC 6750 section 3.1: invalid token -> 401 invalid_token with a fixed description.
#[tokio::test]
async fn bad_tokens_get_invalid_token() {
    let h = Harness::start(|b| b.required_scopes(["mcp"])).await;
    let cases = [
        ("garbage", "malformed_token"),
        ("a.b.c", "malformed_token"),
        ("a.b.c.d.e", "encrypted_token"),
    ];
    for (token, reason) in cases {
        let resp = h
            .post(&[("authorization", &format!("Bearer {token}"))], LIST)
            .await;
        assert_eq!(resp.status(), 401, "{token}");
        let c = challenge(&resp);
        assert_eq!(c[0], ("error".into(), "invalid_token".into()));
        assert_eq!(param(&c, "scope"), Some("mcp"));
        assert_eq!(
            param(&c, "resource_metadata"),
            Some(metadata_url(&h).as_str())
        );
        let b = body(resp).await;
        assert_eq!(b["error"], "invalid_token");
        assert_eq!(b["reason"], reason);
        assert_eq!(
            param(&c, "error_description"),
            b["error_description"].as_str()
        );
    }
    let expired = h
        .issuer
        .token()
        .audience(&h.resource)
        .scopes(["mcp"])
        .issued_at(1000)
        .expires_at(2000)
        .sign();
    let resp = h
        .post(&[("authorization", &format!("Bearer {expired}"))], LIST)
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(body(resp).await["reason"], "token_expired");
}

// RFC 6750 section 3.1: malformed request -> 400 invalid_request.
#[tokio::test]
async fn malformed_requests_get_invalid_request() {
    let h = Harness::start(|b| b).await;
    let token = h.token("alice");
    let two = format!("Bearer {token} {token}");
    for value in [
        "Bearer",
        "Bearer ",
        two.as_str(),
        "Bearer a,b",
        "Bearer \"quoted\"",
    ] {
        let resp = h.post(&[("authorization", value)], LIST).await;
        assert_eq!(resp.status(), 400, "{value}");
        let c = challenge(&resp);
        assert_eq!(param(&c, "error"), Some("invalid_request"));
        assert_eq!(body(resp).await["error"], "invalid_request");
    }
    // Two Authorization headers.
    let resp = reqwest::Client::new()
        .post(&h.resource)
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(LIST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await["reason"], "multiple_authorization_headers");
}

// OAuth 2.1 section 5.2 / MCP "Access Token Usage": never from the query string or body.
#[tokio::test]
async fn tokens_outside_the_header_are_never_read() {
    let h = Harness::start(|b| b).await;
    let token = h.token("alice");
    let resp = reqwest::Client::new()
        .post(format!("{}?access_token={token}", h.resource))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(param(&challenge(&resp), "error"), None);
}

#[tokio::test]
async fn scheme_is_case_insensitive() {
    let h = Harness::start(|b| b).await;
    let token = h.token("alice");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = h
            .post(&[("authorization", &format!("{scheme} {token}"))], init)
            .await;
        assert_eq!(resp.status(), 200, "{scheme}");
    }
}

// RFC 6750 section 3.1: a valid token without the required scope -> 403
// insufficient_scope naming every scope needed.
#[tokio::test]
async fn missing_required_scope_is_403_insufficient_scope() {
    let h = Harness::start(|b| b.required_scopes(["mcp", "notes:read"])).await;
    let token = h
        .issuer
        .token()
        .audience(&h.resource)
        .scopes(["mcp"])
        .sign();
    let resp = h
        .post(&[("authorization", &format!("Bearer {token}"))], LIST)
        .await;
    assert_eq!(resp.status(), 403);
    let c = challenge(&resp);
    assert_eq!(c[0], ("error".into(), "insufficient_scope".into()));
    assert_eq!(param(&c, "scope"), Some("mcp notes:read"));
    assert_eq!(
        param(&c, "resource_metadata"),
        Some(metadata_url(&h).as_str())
    );
    assert_eq!(body(resp).await["error"], "insufficient_scope");
}

// Fail closed when the keys cannot be had: 503 with Retry-After, never 200.
#[tokio::test]
async fn unreachable_keys_fail_closed_with_503() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    issuer.set_jwks_available(false);
    let h = Harness::start_with_issuer(issuer, |b| b).await;
    let resp = h
        .post(
            &[("authorization", &format!("Bearer {}", h.token("a")))],
            LIST,
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(body(resp).await["error"], "temporarily_unavailable");
}

// RFC 9728 sections 2, 3 and 3.1: the document at both well-known paths,
// public, JSON, CORS-readable.
#[tokio::test]
async fn metadata_is_served_at_both_well_known_paths() {
    let h = Harness::start(|b| {
        b.scopes_supported(["notes:read"])
            .resource_name("Notes")
            .resource_documentation("https://docs.example.com/notes")
    })
    .await;
    for url in [
        metadata_url(&h),
        format!("{}/.well-known/oauth-protected-resource", h.base),
    ] {
        let resp = reqwest::Client::new()
            .get(&url)
            .header("origin", "https://app.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert!(
            resp.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("public")
        );
        let doc = body(resp).await;
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": h.resource,
                "authorization_servers": [h.issuer.issuer()],
                "scopes_supported": ["notes:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Notes",
                "resource_documentation": "https://docs.example.com/notes",
            })
        );
    }
    // CORS preflight.
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, metadata_url(&h))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    // Other methods.
    let resp = reqwest::Client::new()
        .post(metadata_url(&h))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

// The challenge's resource_metadata URL is exactly where the document is,
// and the document's resource equals the URL the client connects to
// (RFC 9728 section 3.3), so an MCP client's discovery succeeds.
#[tokio::test]
async fn challenge_points_at_the_document_for_this_resource() {
    let h = Harness::start(|b| b).await;
    let resp = h.post(&[], LIST).await;
    let url = param(&challenge(&resp), "resource_metadata")
        .unwrap()
        .to_owned();
    let doc: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(doc["resource"], h.resource.as_str());
}
