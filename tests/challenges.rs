//! Raw HTTP: every challenge and error body the layer answers with, and the
//! RFC 9728 metadata endpoints.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use fixture::{Harness, challenge, param};

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
/// A stateless (2026-07-28) `tools/list`, answered without a session.
const MODERN_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

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

// Control characters in the credentials. A tab is a field-value character
// (RFC 9110 section 5.5) and reaches the layer: not a b64token, 400
// `invalid_request` with the challenge. The others (NUL, ESC, DEL, a bare
// CR) are not: hyper refuses the request before any layer sees it, 400
// with an empty body and the connection closed (security-model.md, step 1;
// found from outside, where the docs said the layer answered them).
#[tokio::test]
async fn control_characters_in_the_credentials() {
    use support::raw_http::Raw;
    let h = Harness::start(|b| b).await;
    let token = h.token("alice");
    let (front, back) = token.split_at(20);
    let addr: std::net::SocketAddr = h
        .resource
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .unwrap();
    let send = |value: String| {
        Raw::new(addr, "POST", "/mcp")
            .header("authorization", &value)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(LIST)
    };
    for c in ['\0', '\x01', '\x1b', '\x7f', '\r'] {
        let r = send(format!("Bearer {front}{c}{back}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{:?}: {}", c, r.summary());
        assert!(r.body.is_empty(), "{:?}: {}", c, r.summary());
        assert!(r.header("www-authenticate").is_none(), "{c:?}");
    }
    let r = send(format!("Bearer {front}\t{back}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.summary());
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{}",
        r.summary()
    );
    // The server serves on.
    let ok = modern_list(addr, "/mcp", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.summary());
}

// OAuth 2.1 section 5.2 / MCP "Access Token Usage": never from the query
// string or body. A form body is not read (no credentials: 401 without an
// error); a token in the query is refused outright (see the next test).
#[tokio::test]
async fn tokens_outside_the_header_are_never_read() {
    let h = Harness::start(|b| b).await;
    let token = h.token("alice");
    let resp = reqwest::Client::new()
        .post(&h.resource)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(param(&challenge(&resp), "error"), None);
}

/// A raw stateless `tools/list` POST to `target` at `addr`, with `auth`
/// as its Bearer token when given.
fn modern_list(
    addr: std::net::SocketAddr,
    target: &str,
    auth: Option<&str>,
) -> support::raw_http::Raw {
    let mut raw = support::raw_http::Raw::new(addr, "POST", target)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(MODERN_LIST);
    if let Some(token) = auth {
        raw = raw.header("authorization", &format!("Bearer {token}"));
    }
    raw
}

// RFC 6750 section 2 (a client MUST NOT use more than one method to send
// the token) and section 3.1 (`invalid_request`); OAuth 2.1 section 5.2 and
// MCP "Access Token Usage" (tokens in the query string MUST NOT be
// accepted): an `access_token` parameter in the URI query is 400
// `invalid_request` (`token_in_query`), with or without a token in the
// header, whatever token it holds, however its name is spelled
// (percent-encoded, repeated, among other parameters). Raw HTTP/1.1 on
// McpServer, so the target reaches the server exactly as written.
#[tokio::test]
async fn an_access_token_in_the_query_is_invalid_request() {
    use support::raw_http::Raw;
    let h = Harness::start(|b| b).await;
    let alice = h.token("alice");
    let bob = h.token("bob");
    let addr: std::net::SocketAddr = h.base.trim_start_matches("http://").parse().unwrap();
    let post = |target: String, auth: Option<&str>| modern_list(addr, &target, auth);
    // The control: the header alone is accepted.
    let ok = post("/mcp".into(), Some(&alice)).send().await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.summary());
    let queries = [
        format!("access_token={alice}"),
        format!("access_token={bob}"),
        format!("access%5Ftoken={alice}"),
        format!("access%5ftoken={alice}"),
        format!("%61ccess_token={alice}"),
        format!("x=1&access_token={alice}&y=2"),
        format!("access_token={alice}&access_token={bob}"),
        format!("ACCESS_TOKEN={alice}"),
        "access_token=".to_owned(),
        "access_token".to_owned(),
    ];
    for query in &queries {
        for auth in [Some(alice.as_str()), None] {
            let target = format!("/mcp?{query}");
            let resp = post(target, auth).send().await.unwrap();
            let what = format!("{query:.40} header={}", auth.is_some());
            assert_eq!(resp.status, 400, "{what}: {}", resp.summary());
            let c = mcp_oauth2::testing::parse_bearer_challenge(
                resp.header("www-authenticate").unwrap(),
            )
            .unwrap();
            assert_eq!(param(&c, "error"), Some("invalid_request"), "{what}");
            let b: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(b["error"], "invalid_request", "{what}");
            assert_eq!(b["reason"], "token_in_query", "{what}");
            assert!(
                b["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("Authorization header"),
                "{what}: {b}"
            );
        }
    }
    // Other parameters, and names that only contain the word, are not it.
    for query in [
        "x=1",
        "my_access_token=1",
        "access_token_hint=1",
        "a=access_token",
    ] {
        let resp = post(format!("/mcp?{query}"), Some(&alice))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{query}: {}", resp.summary());
    }
    // The metadata is public: a query there changes nothing.
    let meta = Raw::new(
        addr,
        "GET",
        &format!("/.well-known/oauth-protected-resource/mcp?access_token={alice}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(meta.status, 200, "{}", meta.summary());
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
    let body = body(resp).await;
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "mcp notes:read");
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

// RFC 9728 section 2: `scopes_supported` lists scopes used to request
// access to the resource; every request needs the required ones, so the
// document names them even when `scopes_supported` lists others (README:
// scopes_supported defaults to the required scopes).
#[tokio::test]
async fn metadata_scopes_include_the_required_scopes() {
    let h = Harness::start(|b| {
        b.required_scopes(["mcp:use"])
            .scopes_supported(["notes:read", "mcp:use", "notes:write"])
    })
    .await;
    let doc = body(reqwest::get(metadata_url(&h)).await.unwrap()).await;
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["notes:read", "mcp:use", "notes:write"])
    );
    let h = Harness::start(|b| {
        b.required_scopes(["mcp:use", "mcp:base"])
            .scopes_supported(["notes:read"])
    })
    .await;
    let doc = body(reqwest::get(metadata_url(&h)).await.unwrap()).await;
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["notes:read", "mcp:use", "mcp:base"])
    );
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
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
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

// ---------------------------------------------------------------------------
// `AuthError: IntoResponse`: handlers that call `AuthLayer::authenticate`
// ---------------------------------------------------------------------------

/// What a rejection looks like on the wire: status, `WWW-Authenticate`,
/// `Cache-Control`, `Retry-After` and the JSON body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    cache_control: Option<String>,
    retry_after: Option<String>,
    body: serde_json::Value,
}

async fn answer(resp: reqwest::Response) -> Answer {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (challenge, cache_control, retry_after) = (
        header("www-authenticate"),
        header("cache-control"),
        header("retry-after"),
    );
    let status = resp.status().as_u16();
    Answer {
        status,
        challenge,
        cache_control,
        retry_after,
        body: body(resp).await,
    }
}

/// An issuer and, on loopback, `/mcp` answered by a handler that calls
/// `AuthLayer::authenticate` and returns its `AuthError`, beside `/layered`
/// behind the same layer.
async fn authenticate_app() -> (mcp_oauth2::testing::TestIssuer, String, String) {
    use axum::routing::any;
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let (listener, resource, config) =
        support::loopback::bind_with_config(&issuer, |b| b.required_scopes(["notes:read"])).await;
    let layer = mcp_oauth2::AuthLayer::new(config).unwrap();
    let handler_layer = layer.clone();
    let app = axum::Router::new()
        .route(
            "/mcp",
            any(move |headers: axum::http::HeaderMap| {
                let layer = handler_layer.clone();
                async move {
                    let ctx = layer.authenticate(&headers).await?;
                    Ok::<_, mcp_oauth2::AuthError>(ctx.subject().to_owned())
                }
            }),
        )
        .route("/layered", any(|| async { "ok" }).layer(layer));
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (issuer, resource, base)
}

// RFC 6750 section 3 + RFC 9728 section 5.1: an `AuthError` returned by
// `AuthLayer::authenticate` renders the layer's exact challenge
// (`resource_metadata`, `scope`), status and body.
#[tokio::test]
async fn authenticate_errors_render_the_layers_challenge() {
    let (issuer, resource, base) = authenticate_app().await;
    let metadata = format!("{base}/.well-known/oauth-protected-resource/mcp");
    let expired = issuer
        .token()
        .audience(&resource)
        .scopes(["notes:read"])
        .expires_at(1000)
        .issued_at(900)
        .sign();
    let unscoped = issuer.token().audience(&resource).sign();
    let http = reqwest::Client::new();
    let send = |path: &str, token: Option<&str>| {
        let mut req = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let cases = [
        (
            None,
            401,
            format!(r#"Bearer resource_metadata="{metadata}", scope="notes:read""#),
            "missing_token",
        ),
        (
            Some(expired.as_str()),
            401,
            format!(
                r#"Bearer error="invalid_token", scope="notes:read", resource_metadata="{metadata}", error_description="The access token expired""#
            ),
            "token_expired",
        ),
        (
            Some(unscoped.as_str()),
            403,
            format!(
                r#"Bearer error="insufficient_scope", scope="notes:read", resource_metadata="{metadata}", error_description="The access token lacks a required scope""#
            ),
            "insufficient_scope",
        ),
    ];
    for (token, status, challenge, reason) in cases {
        let from_handler = answer(send("/mcp", token).await.unwrap()).await;
        assert_eq!(from_handler.status, status, "{reason}");
        assert_eq!(from_handler.challenge.as_deref(), Some(challenge.as_str()));
        assert_eq!(from_handler.cache_control.as_deref(), Some("no-store"));
        assert_eq!(from_handler.body["reason"], reason);
        // The same answer as the layer's, but for the correlation id that
        // only the layer adds to its body (issue 17).
        let mut from_layer = answer(send("/layered", token).await.unwrap()).await;
        let id = from_layer
            .body
            .as_object_mut()
            .unwrap()
            .remove("request_id");
        assert!(id.is_some_and(|id| id.is_string()), "{reason}");
        assert_eq!(from_handler, from_layer, "{reason}");
    }
    let good = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["notes:read"])
        .sign();
    let resp = send("/mcp", Some(&good)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "alice");
}

// RFC 6750 section 3: an `AuthError` built without a layer knows no resource:
// `Bearer` with the error's own parameters only.
#[tokio::test]
async fn an_auth_error_without_a_layer_renders_bearer_with_its_code_only() {
    use axum::routing::get;
    use mcp_oauth2::{AuthError, AuthErrorKind};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/missing",
            get(|| async { AuthError::new(AuthErrorKind::MissingToken) }),
        )
        .route(
            "/expired",
            get(|| async { AuthError::new(AuthErrorKind::Expired) }),
        )
        .route(
            "/scope",
            get(|| async { AuthError::insufficient_scope(["a", "b"]) }),
        )
        .route(
            "/keys",
            get(|| async { AuthError::new(AuthErrorKind::KeysUnavailable) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let get = |path: &str| reqwest::get(format!("{base}{path}"));

    let missing = answer(get("/missing").await.unwrap()).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.challenge.as_deref(), Some("Bearer"));
    assert_eq!(missing.body["reason"], "missing_token");
    assert!(missing.body.get("error").is_none());

    let expired = answer(get("/expired").await.unwrap()).await;
    assert_eq!(expired.status, 401);
    assert_eq!(
        expired.challenge.as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="The access token expired""#)
    );
    assert_eq!(expired.cache_control.as_deref(), Some("no-store"));
    assert_eq!(expired.body["error"], "invalid_token");
    assert_eq!(expired.body["reason"], "token_expired");

    // RFC 6750 section 3.1: `scope` names the scopes the request needs.
    let scope = answer(get("/scope").await.unwrap()).await;
    assert_eq!(scope.status, 403);
    assert_eq!(
        scope.challenge.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", scope="a b", error_description="The access token lacks a required scope""#
        )
    );
    assert_eq!(scope.body["error"], "insufficient_scope");

    // A 503 is no challenge: `Retry-After` instead.
    let keys = answer(get("/keys").await.unwrap()).await;
    assert_eq!(keys.status, 503);
    assert_eq!(keys.challenge, None);
    assert_eq!(keys.retry_after.as_deref(), Some("5"));
    assert_eq!(keys.body["reason"], "keys_unavailable");
}

// The `AuthContext` extractor behind no layer is a server's mistake, not
// the client's token: 500 `server_error`, no challenge (a 401 would send
// the client to sign in again; found from outside), fail closed.
#[tokio::test]
async fn missing_auth_context_is_a_500_without_a_challenge() {
    use mcp_oauth2::AuthContext;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/x",
        axum::routing::get(|auth: AuthContext| async move { auth.subject().to_owned() }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    for token in [None, Some("Bearer abc.def.ghi")] {
        let mut request = reqwest::Client::new().get(format!("{base}/x"));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let a = answer(request.send().await.unwrap()).await;
        assert_eq!(a.status, 500, "{token:?}");
        assert_eq!(a.challenge, None, "{token:?}");
        assert_eq!(a.body["error"], "server_error");
        assert_eq!(a.body["reason"], "not_authenticated");
        assert!(
            a.body["error_description"]
                .as_str()
                .unwrap()
                .contains("configuration error")
        );
    }
}

// The outside tester's black-box findings, replayed on the reference server
// (examples/protected_server, configured by environment only) over raw
// HTTP/1.1: a token in the query (RFC 6750 sections 2 and 3.1), HEAD on the
// metadata (RFC 9110 section 9.3.2), Origin spellings (RFC 6454, MCP
// "Transports"), a JWT-shaped X-Request-Id (README "Correlation ids").
#[tokio::test]
async fn reference_server_replays_the_black_box_findings() {
    use support::raw_http::Raw;
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let mut server = support::reference::start(
        port,
        &[
            ("MCP_OAUTH2_ISSUER", issuer.issuer()),
            ("MCP_OAUTH2_RESOURCE", &resource),
            ("MCP_OAUTH2_ALLOWED_ORIGINS", "https://app.example.com"),
        ],
    )
    .await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let token = |sub: &str| {
        issuer
            .token()
            .subject(sub)
            .audience(&resource)
            .scopes(["notes:read"])
            .sign()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let post = |target: &str, auth: Option<&str>| modern_list(addr, target, auth);
    let ok = post("/mcp", Some(&alice)).send().await.unwrap();
    assert_eq!(ok.status, 200, "{}", ok.summary());

    // 1. A token in the query, beside the header or alone.
    for (query, auth) in [
        (&alice, Some(alice.as_str())),
        (&bob, Some(alice.as_str())),
        (&alice, None),
    ] {
        let r = post(&format!("/mcp?access_token={query}"), auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{}", r.summary());
        assert!(r.text().contains("token_in_query"), "{}", r.summary());
    }

    // 3. HEAD on the metadata sends the GET's length.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let get = Raw::new(addr, "GET", path).send().await.unwrap();
        let head = Raw::new(addr, "HEAD", path).send().await.unwrap();
        assert_eq!(head.status, 200);
        let length = get.body.len().to_string();
        assert!(
            head.header("content-length").is_none_or(|l| l == length),
            "{path}: {}",
            head.summary()
        );
    }

    // 4. Only exact serialized origins.
    let loopback_slash = format!("http://127.0.0.1:{port}/");
    for origin in [
        "https://app.example.com/",
        "https://app.example.com:0443",
        loopback_slash.as_str(),
    ] {
        let r = post("/mcp", Some(&alice))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{origin}: {}", r.summary());
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    let own = format!("http://127.0.0.1:{port}");
    for origin in ["https://app.example.com", own.as_str()] {
        let r = post("/mcp", Some(&alice))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{origin}: {}", r.summary());
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }

    // 5. A JWT-shaped X-Request-Id is not taken.
    let jwt_id = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let r = post("/mcp", None)
        .header("x-request-id", jwt_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let echoed = r.header("x-request-id").unwrap();
    assert_ne!(echoed, jwt_id);
    assert!(!r.text().contains("eyJ"), "{}", r.summary());
    server.child.kill().await.unwrap();
}

// RFC 6750 sections 2 and 3.1 over HTTP/2 (prior knowledge, as McpServer
// serves both): the `:path` with an `access_token` query is refused like
// the HTTP/1.1 request target, with or without the header.
#[tokio::test]
async fn an_access_token_in_the_query_is_invalid_request_over_http2() {
    let h = Harness::start(|b| b).await;
    let alice = h.token("alice");
    let addr: std::net::SocketAddr = h.base.trim_start_matches("http://").parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let send = |query: &str, auth: bool| {
        let mut client = client.clone();
        let uri = format!("{}{query}", h.resource);
        let auth = auth.then(|| format!("Bearer {alice}"));
        async move {
            let mut request = http::Request::post(uri)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/list");
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            client = client.ready().await.unwrap();
            let (response, mut body) = client
                .send_request(request.body(()).unwrap(), false)
                .unwrap();
            body.send_data(axum::body::Bytes::from_static(MODERN_LIST.as_bytes()), true)
                .unwrap();
            let response = fixture::bounded(response).await.unwrap();
            let status = response.status().as_u16();
            let mut stream = response.into_body();
            let mut text = Vec::new();
            while let Some(chunk) = fixture::bounded(stream.data()).await {
                let chunk = chunk.unwrap();
                let _ = stream.flow_control().release_capacity(chunk.len());
                text.extend_from_slice(&chunk);
            }
            (status, String::from_utf8_lossy(&text).into_owned())
        }
    };
    let (status, body) = send("", true).await;
    assert_eq!(status, 200, "{body:.200}");
    for query in [
        format!("?access_token={alice}"),
        format!("?x=1&access%5Ftoken={alice}"),
    ] {
        for auth in [true, false] {
            let (status, body) = send(&query, auth).await;
            assert_eq!(status, 400, "{query:.30} header={auth}: {body:.200}");
            assert!(body.contains("token_in_query"), "{body:.200}");
        }
    }
}
