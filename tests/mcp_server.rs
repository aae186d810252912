//! End to end: a real rmcp client with a bearer token against a real
//! protected rmcp server on loopback, both protocol generations.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use fixture::{Harness, bounded, call_text, legacy_client, stateless_client};
use mcp_oauth2::{AuthConfig, AuthContext, AuthLayer};

#[tokio::test]
async fn legacy_session_client_reaches_tools_with_auth_context() {
    let h = Harness::start(|b| b).await;
    let token = h
        .issuer
        .token()
        .subject("alice")
        .client_id("app-1")
        .audience(&h.resource)
        .scopes(["notes:read", "profile"])
        .claim("tenant", serde_json::json!("acme"))
        .sign();
    let client = bounded(legacy_client(&h.resource, &token))
        .await
        .expect("connect");
    let tools = bounded(client.list_all_tools()).await.expect("list tools");
    assert_eq!(tools.len(), 13);
    let who: serde_json::Value =
        serde_json::from_str(&bounded(call_text(&client, "whoami")).await.unwrap()).unwrap();
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["client_id"], "app-1");
    assert_eq!(who["scopes"], serde_json::json!(["notes:read", "profile"]));
    assert_eq!(who["issuer"], h.issuer.issuer());
    assert_eq!(who["audience"], serde_json::json!([h.resource]));
    assert_eq!(who["custom"], "acme");
    assert!(who["token_id"].is_string());
    assert!(who["expires_at"].as_u64().unwrap() > 0);
    // The FromContextPart path.
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "alice"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stateless_2026_client_reaches_tools_with_auth_context() {
    let h = Harness::start(|b| b).await;
    let client = bounded(stateless_client(&h.resource, &h.token("bob")))
        .await
        .expect("discover");
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "bob"
    );
    let who: serde_json::Value =
        serde_json::from_str(&bounded(call_text(&client, "whoami")).await.unwrap()).unwrap();
    assert_eq!(who["subject"], "bob");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn client_without_valid_token_cannot_connect() {
    let h = Harness::start(|b| b).await;
    let foreign = h
        .issuer
        .token()
        .audience("https://other.example.com/mcp")
        .sign();
    for token in [foreign.as_str(), "not-a-jwt"] {
        let err = bounded(legacy_client(&h.resource, token))
            .await
            .expect_err("refused");
        let text = format!("{err:?}");
        assert!(
            text.contains("401") || text.to_lowercase().contains("auth"),
            "{text}"
        );
        let err = bounded(stateless_client(&h.resource, token))
            .await
            .expect_err("refused");
        let text = format!("{err:?}");
        assert!(
            text.contains("401") || text.to_lowercase().contains("auth"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn each_request_is_authenticated_not_just_the_session() {
    // A session created with a valid token; a later request with a bad token
    // on the same session must be refused (tokens are checked on every request).
    let h = Harness::start(|b| b).await;
    let init = h
        .post(
            &[("authorization", &format!("Bearer {}", h.token("alice")))],
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .await;
    assert_eq!(init.status(), 200);
    let session = init
        .headers()
        .get("mcp-session-id")
        .expect("session id")
        .to_str()
        .unwrap()
        .to_owned();
    let resp = h
        .post(
            &[
                ("mcp-session-id", &session),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(resp.status(), 401);
    let expired = h
        .issuer
        .token()
        .audience(&h.resource)
        .expires_at(1_000)
        .issued_at(900)
        .sign();
    let resp = h
        .post(
            &[
                ("mcp-session-id", &session),
                ("mcp-protocol-version", "2025-11-25"),
                ("authorization", &format!("Bearer {expired}")),
            ],
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(resp.status(), 401);
}

/// rmcp's Host allowlist follows the resource URL: a public deployment is not
/// answered 403 "Host header is not allowed", and a foreign Host still is.
#[tokio::test]
async fn allowed_hosts_follow_the_resource_url() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = "https://mcp.example.com/mcp";
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let server = mcp_oauth2::McpServer::builder()
        .auth(config)
        .service(|| Ok(fixture::EchoServer::new()))
        .build()
        .unwrap();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let token = issuer.token().audience(resource).sign();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let send = |host: &'static str| {
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .post(format!("http://{addr}/mcp"))
                .header("host", host)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(send("mcp.example.com").await, 200);
    assert_eq!(send("mcp.example.com:443").await, 200);
    assert_eq!(send("localhost").await, 200);
    assert_eq!(send("evil.example.net").await, 403);
    ct.cancel();
}

/// The same protection as a plain tower layer on an axum app, with the
/// `AuthContext` extractor.
#[tokio::test]
async fn plain_axum_app_with_layer_and_extractor() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/api");
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .exempt_path("/health")
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/api",
            axum::routing::get(|auth: AuthContext| async move { format!("hi {}", auth.subject()) }),
        )
        .route("/health", axum::routing::get(|| async { "ok" }))
        .layer(AuthLayer::new(config).unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let token = issuer.token().subject("carol").audience(&resource).sign();
    let r = http
        .get(&resource)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hi carol");
    let r = http.get(&resource).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    // Exempt on path boundaries only.
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The layer also serves the metadata (root and path-suffixed).
    for path in [
        "/.well-known/oauth-protected-resource/api",
        "/.well-known/oauth-protected-resource",
    ] {
        let doc: serde_json::Value = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["resource"], resource.as_str());
    }
}

/// An axum handler behind no layer fails closed.
#[tokio::test]
async fn extractor_without_layer_fails_closed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/x",
        axum::routing::get(|auth: AuthContext| async move { auth.subject().to_owned() }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = reqwest::get(format!("http://{addr}/x")).await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("www-authenticate").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "not_authenticated");
}

/// The readiness probe answers 503 until the issuer's keys are loaded.
#[tokio::test]
async fn readiness_waits_for_the_first_key_set() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    issuer.set_jwks_available(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/mcp");
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .jwks_refresh_cooldown(std::time::Duration::from_millis(100))
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let server = mcp_oauth2::McpServer::builder()
        .auth(config)
        .readiness_path("/ready")
        .service(|| Ok(fixture::EchoServer::new()))
        .build()
        .unwrap();
    let readiness = server.readiness();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let ready_url = format!("http://{addr}/ready");
    let r = reqwest::get(&ready_url).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(!readiness.is_ready());
    issuer.set_jwks_available(true);
    let mut status = 0;
    for _ in 0..50 {
        status = reqwest::get(&ready_url).await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    assert!(readiness.is_ready());
    ct.cancel();
}

/// The readiness probe needs no token, so it fetches no more often than
/// requests do: while an issuer's key set fails to load, probes answer 503
/// from the cache's state within its failure backoff (found from outside:
/// every probe started a discovery and a key-set fetch, 419 of each in
/// 2 s, and a WARN line each), and an issuer whose set is loaded is never
/// fetched again for a probe (found from outside: each probe re-downloaded
/// the healthy issuer's set while the other was down).
#[tokio::test]
async fn readiness_probes_fetch_no_more_often_than_the_backoff_allows() {
    let healthy = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let down = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    down.set_jwks_available(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AuthConfig::builder()
        .issuer(healthy.issuer())
        .issuer(down.issuer())
        .resource(format!("http://{addr}/mcp"))
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let server = mcp_oauth2::McpServer::builder()
        .auth(config)
        .readiness_path("/ready")
        .service(|| Ok(fixture::EchoServer::new()))
        .build()
        .unwrap();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let ready_url = format!("http://{addr}/ready");
    let http = reqwest::Client::new();
    // The start-up fetch of both sets has run (one failed).
    bounded(async {
        while healthy.jwks_hits() == 0 || down.jwks_hits() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (healthy_before, down_before) = (healthy.jwks_hits(), down.jwks_hits());
    for _ in 0..200 {
        let r = http.get(&ready_url).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "5");
    }
    assert_eq!(
        healthy.jwks_hits(),
        healthy_before,
        "a loaded set is left alone"
    );
    // Within the failure backoff (5 s at most): at most one retry.
    assert!(
        down.jwks_hits() <= down_before + 1,
        "{} fetches of the failing set for 200 probes",
        down.jwks_hits() - down_before
    );
    // The probe still loads what comes back, once the backoff allows.
    down.set_jwks_available(true);
    let status = bounded(async {
        loop {
            let status = http.get(&ready_url).send().await.unwrap().status();
            if status == 200 {
                break status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(status, 200);
    ct.cancel();
}

/// rmcp tools served behind no layer fail closed: `ctx.auth()` and an
/// `AuthContext` argument answer an internal error naming the missing
/// layer, never an anonymous caller.
#[tokio::test]
async fn rmcp_tools_without_the_layer_fail_closed() {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let service = StreamableHttpService::new(
        || Ok(fixture::EchoServer::new()),
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().route_service("/mcp", service);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = bounded(stateless_client(&url, "unchecked"))
        .await
        .expect("no layer: the transport accepts anyone");
    for tool in ["whoami", "whoami_arg"] {
        let err = bounded(client.call_tool(rmcp::model::CallToolRequestParams::new(tool)))
            .await
            .expect_err("no caller, no answer");
        let rmcp::ServiceError::McpError(data) = &err else {
            panic!("{tool}: {err:?}");
        };
        assert_eq!(data.code, rmcp::model::ErrorCode::INTERNAL_ERROR, "{tool}");
        assert!(
            data.message.contains("no authenticated caller"),
            "{tool}: {}",
            data.message
        );
    }
    client.cancel().await.unwrap();
}
