//! `AuthLayer` as a plain tower layer in an axum app, over real HTTP on
//! loopback: its options (`mcp_path`, `max_body_bytes`, `bind_sessions`),
//! how it places requests it cannot route (Origin, JSON-RPC bodies on other
//! paths, batches in the stateless revision), and list filtering that fails
//! closed when the inner service answers something it cannot read.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use axum::Router;
use axum::routing::any;
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthConfigBuilder, AuthContext, AuthLayer};
use support::fixture::bounded;

const WRITE_CALL: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write","arguments":{}}}"#;

/// A protected app: `/mcp` and `/other` echo the caller, `/health` is
/// exempt. `layer` adjusts the layer, `tweak` the configuration.
struct App {
    issuer: TestIssuer,
    base: String,
    resource: String,
    http: reqwest::Client,
}

impl App {
    async fn start(
        tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
        layer: impl FnOnce(AuthLayer) -> AuthLayer,
    ) -> Self {
        Self::start_with(tweak, layer, Router::new()).await
    }

    /// The same with extra routes (they override nothing: their paths differ).
    async fn start_with(
        tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
        layer: impl FnOnce(AuthLayer) -> AuthLayer,
        extra: Router,
    ) -> Self {
        let issuer = TestIssuer::start().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let resource = format!("{base}/mcp");
        let config = tweak(
            AuthConfig::builder()
                .issuer(issuer.issuer())
                .resource(&resource)
                .exempt_path("/health")
                .allow_insecure_http_for_loopback(true),
        )
        .build()
        .unwrap();
        let layer = layer(AuthLayer::new(config).unwrap());
        assert_eq!(layer.metadata().resource, resource);
        let echo = |auth: AuthContext| async move { format!("hello {}", auth.subject()) };
        let app = Router::new()
            .route("/mcp", any(echo))
            .route("/other", any(echo))
            .route("/health", any(|| async { "ok" }))
            .merge(extra)
            .layer(layer);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            issuer,
            base,
            resource,
            http: reqwest::Client::new(),
        }
    }

    fn token(&self, scopes: &[&str]) -> String {
        self.issuer
            .token()
            .subject("alice")
            .audience(&self.resource)
            .scopes(scopes.iter().copied())
            .sign()
    }

    fn post(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body.to_owned())
    }
}

async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = bounded(req.send()).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn reason(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["reason"]
        .as_str()
        .or(v["error"]["data"]["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn write_rule(b: AuthConfigBuilder) -> AuthConfigBuilder {
    b.tool_scopes("write", ["notes:write"])
}

// The body read for per-operation scopes is capped: a larger one is a 413
// (RFC 9110 section 15.5.14, what rmcp answers itself for a body over its
// own cap) `invalid_request` (reason `body_too_large`), never read further,
// whether it declares its length or comes chunked. It was a 400
// `body_unreadable` with a Bearer `invalid_request` challenge: the same
// body got 413 or 400 depending on whether per-tool scopes were declared.
#[tokio::test]
async fn body_over_the_cap_is_refused_before_the_service() {
    let app = App::start(write_rule, |l| l.max_body_bytes(256)).await;
    let token = app.token(&["notes:write"]);
    let (status, _, body) = send(app.post("/mcp", &token, "application/json", WRITE_CALL)).await;
    assert_eq!((status, body.as_str()), (200, "hello alice"));
    let padded = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"write","arguments":{{"pad":"{}"}}}}}}"#,
        "x".repeat(300)
    );
    let (status, headers, body) = send(app.post("/mcp", &token, "application/json", &padded)).await;
    assert_eq!(status, 413, "{body}");
    assert!(headers.get("www-authenticate").is_none(), "{headers:?}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "invalid_request");
    assert_eq!(v["reason"], "body_too_large");
    // Chunked: no length declared, the cap is found while reading.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let half = padded.len() / 2;
    let chunks = format!(
        "{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        half,
        &padded[..half],
        padded.len() - half,
        &padded[half..]
    );
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{chunks}"
    );
    let answer = bounded(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"reason\":\"body_too_large\""), "{answer}");
}

// `mcp_path("/")`: every path is the MCP endpoint, so nothing is exempt
// and every Origin is checked (fail closed).
#[tokio::test]
async fn root_mcp_path_judges_every_path_as_mcp() {
    let app = App::start(|b| b, |l| l.mcp_path("/")).await;
    let (status, _, _) = send(app.http.get(format!("{}/health", app.base))).await;
    assert_eq!(status, 401, "an exemption does not cover the MCP endpoint");
    let token = app.token(&[]);
    let (status, _, body) = send(
        app.http
            .get(format!("{}/health", app.base))
            .bearer_auth(&token)
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(reason(&body), "origin_not_allowed");
}

// A route of the app that is not MCP answers its own cross-origin
// requests: the layer still wants a token there but does not refuse the
// Origin, nor add CORS headers for it.
#[tokio::test]
async fn foreign_origin_on_an_app_route_is_left_to_the_app() {
    let app = App::start(|b| b, |l| l).await;
    let token = app.token(&[]);
    let get = |path: &str, token: Option<&str>| {
        let mut req = app
            .http
            .get(format!("{}{path}", app.base))
            .header("origin", "https://evil.example");
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req
    };
    let (status, headers, body) = send(get("/other", Some(&token))).await;
    assert_eq!((status, body.as_str()), (200, "hello alice"));
    assert!(headers.get("access-control-allow-origin").is_none());
    let (status, _, body) = send(get("/other", None)).await;
    assert_eq!((status, reason(&body).as_str()), (401, "missing_token"));
    let (status, _, body) = send(get("/mcp", Some(&token))).await;
    assert_eq!(
        (status, reason(&body).as_str()),
        (403, "origin_not_allowed")
    );
}

// With per-operation rules, a JSON POST that carries JSON-RPC calls is
// judged as MCP on any path (the layer cannot see the routes): the tool's
// scope is required and the Origin rule applies. A `+json` media type is
// JSON too; a body sent as text is not read.
#[tokio::test]
async fn json_rpc_posts_on_other_paths_are_judged_as_mcp() {
    let app = App::start(write_rule, |l| l).await;
    let reader = app.token(&["notes:read"]);
    for content_type in [
        "application/json",
        "application/vnd.example+json; charset=utf-8",
    ] {
        let (status, headers, body) =
            send(app.post("/other", &reader, content_type, WRITE_CALL)).await;
        assert_eq!(status, 403, "{content_type}: {body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(challenge.contains(r#"scope="notes:write""#), "{challenge}");
    }
    let (status, _, body) = send(app.post("/other", &reader, "text/plain", WRITE_CALL)).await;
    assert_eq!((status, body.as_str()), (200, "hello alice"));
    let writer = app.token(&["notes:write"]);
    let (status, _, body) = send(
        app.post("/other", &writer, "application/json", WRITE_CALL)
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(
        (status, reason(&body).as_str()),
        (403, "origin_not_allowed")
    );
}

// With per-operation rules, the application's own JSON routes under the
// layer: a REST body (an object, or an array of objects, without a
// JSON-RPC request in it) reaches its handler unchanged;
// a body the layer cannot read strictly is refused on every route with the
// JSON-RPC parse error (it cannot tell which route reaches rmcp), as
// docs/security-model.md says.
#[tokio::test]
async fn rest_bodies_on_other_paths_pass_and_unreadable_ones_are_refused() {
    let echo_body = Router::new().route(
        "/items",
        axum::routing::post(|auth: AuthContext, body: String| async move {
            format!("{} sent {body}", auth.subject())
        }),
    );
    let app = App::start_with(write_rule, |l| l, echo_body).await;
    let reader = app.token(&["notes:read"]);
    for body in [
        r#"{"name":"pen","price":3}"#,
        r#"[{"sku":1},{"sku":2}]"#,
        r#"{"method":"card","amount":5}"#,
        "[]",
    ] {
        let (status, _, answer) = send(app.post("/items", &reader, "application/json", body)).await;
        assert_eq!(
            (status, answer.as_str()),
            (200, format!("alice sent {body}").as_str()),
            "{body}"
        );
    }
    for (body, code) in [
        ("{oops", -32700),
        (r#"{"a":1,"a":2}"#, -32700),
        ("[1,2,3]", -32600),
        (r#""just a string""#, -32600),
    ] {
        let (status, _, answer) = send(app.post("/items", &reader, "application/json", body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["error"]["code"], code, "{body}: {answer}");
    }
}

// MCP 2026-07-28: the `Mcp-Method` header names one message, so a batch
// sent under the stateless revision is a header mismatch (-32020).
#[tokio::test]
async fn stateless_batch_is_a_header_mismatch() {
    let app = App::start(write_rule, |l| l).await;
    let token = app.token(&["notes:write"]);
    let batch = format!("[{WRITE_CALL},{WRITE_CALL}]");
    let (status, _, body) = send(
        app.post("/mcp", &token, "application/json", &batch)
            .header("mcp-protocol-version", "2026-07-28"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32020);
    assert_eq!(v["error"]["data"]["reason"], "mcp_header_mismatch");
}

// Sessions are bound to their creator by default: a session id this layer
// did not see created is 404. `bind_sessions(false)` leaves sessions to the
// service behind.
#[tokio::test]
async fn unbound_sessions_are_left_to_the_service() {
    for (bind, expected) in [(true, 404), (false, 200)] {
        let app = App::start(|b| b, |l| l.bind_sessions(bind)).await;
        let token = app.token(&[]);
        let (status, _, _) = send(
            app.http
                .get(&app.resource)
                .bearer_auth(&token)
                .header("mcp-session-id", "made-up-session"),
        )
        .await;
        assert_eq!(status, expected, "bind_sessions({bind})");
    }
}

/// A `tools/list` answer from an inner service with this content type and body.
fn list_route(path: &'static str, content_type: &'static str, body: &'static str) -> Router {
    Router::new().route(
        path,
        any(move || async move { ([("content-type", content_type)], body) }),
    )
}

// `hide_unauthorized_in_lists`: a list the layer cannot read is never
// shown unfiltered (500); an answer that is not JSON or SSE is no list and
// passes as it is; a readable one is filtered.
#[tokio::test]
async fn list_filtering_fails_closed_on_unreadable_answers() {
    let routes = Router::new()
        .merge(list_route(
            "/broken",
            "application/json",
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":["#,
        ))
        .merge(list_route("/plain", "text/plain", "not a list"))
        .merge(list_route(
            "/good",
            "application/json",
            r#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"write"},{"name":"read"}]}}]"#,
        ));
    let app = App::start_with(
        |b| write_rule(b).hide_unauthorized_in_lists(true),
        |l| l,
        routes,
    )
    .await;
    let token = app.token(&[]);
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let (status, _, _) = send(app.post("/broken", &token, "application/json", list)).await;
    assert_eq!(status, 500);
    let (status, _, body) = send(app.post("/plain", &token, "application/json", list)).await;
    assert_eq!((status, body.as_str()), (200, "not a list"));
    let (status, _, body) = send(app.post("/good", &token, "application/json", list)).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v[0]["result"]["tools"],
        serde_json::json!([{"name": "read"}])
    );
}

// RFC 9110 section 9.3.2: HEAD on the metadata answers as GET would,
// without the body.
#[tokio::test]
async fn metadata_answers_head_without_a_body() {
    let app = App::start(|b| b, |l| l).await;
    let url = format!("{}/.well-known/oauth-protected-resource/mcp", app.base);
    let (status, headers, body) = send(app.http.head(&url)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.is_empty(), "{body}");
    let (status, _, body) = send(app.http.get(&url)).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["resource"], app.resource.as_str());
}

// A custom verifier that checks the MCP headers itself and reports a
// mismatch is answered as MCP 2026-07-28 requires: 400 with the JSON-RPC
// error -32020 (HeaderMismatch), not an OAuth challenge.
#[tokio::test]
async fn a_verifiers_header_mismatch_is_answered_as_json_rpc() {
    use mcp_oauth2::{AuthError, AuthErrorKind};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let config = AuthConfig::builder()
        .issuer("http://127.0.0.1:9")
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let verifier = mcp_oauth2::verify::from_fn(|_: String| async {
        Err(AuthError::new(AuthErrorKind::McpHeaderMismatch))
    });
    let app = Router::new()
        .route("/mcp", any(|| async { "unreachable" }))
        .layer(AuthLayer::with_verifier(config, verifier));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, headers, body) = send(
        reqwest::Client::new()
            .post(&resource)
            .bearer_auth("any")
            .header("content-type", "application/json")
            .body(WRITE_CALL),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(headers.get("www-authenticate").is_none());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32020);
}

// RFC 9110 sections 8.6 and 9.3.2: HEAD on either metadata document sends
// the Content-Length a GET would (the length of the document), never 0; on
// the layer in an axum app and on McpServer, read from the raw response.
#[tokio::test]
async fn metadata_head_sends_the_length_of_the_get() {
    use support::raw_http::Raw;
    let app = App::start(|b| b, |l| l).await;
    let server = support::fixture::Harness::start(|b| b).await;
    for base in [&app.base, &server.base] {
        let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            let get = Raw::new(addr, "GET", path).send().await.unwrap();
            assert_eq!(get.status, 200, "{path}: {}", get.summary());
            let length = get.header("content-length").unwrap().to_owned();
            assert_eq!(length, get.body.len().to_string(), "{path}");
            let head = Raw::new(addr, "HEAD", path).send().await.unwrap();
            assert_eq!(head.status, 200, "{path}: {}", head.summary());
            assert!(head.body.is_empty(), "{path}: {}", head.summary());
            let head_length = head.header("content-length");
            assert!(
                head_length.is_none() || head_length == Some(length.as_str()),
                "{base}{path}: HEAD Content-Length {head_length:?}, GET {length}"
            );
        }
    }
}

// RFC 6750 sections 2 and 3.1: on every route the layer protects in an
// axum app (the MCP endpoint and the app's other routes), an `access_token`
// in the query is 400 invalid_request, with or without the header; the
// exempt route and the metadata are not the layer's to judge.
#[tokio::test]
async fn an_access_token_in_the_query_is_refused_on_every_protected_route() {
    let app = App::start(|b| b, |l| l).await;
    let token = app.token(&[]);
    for path in ["/mcp", "/other"] {
        let (status, _, body) = send(app.post(path, &token, "text/plain", "x")).await;
        assert_eq!((status, body.as_str()), (200, "hello alice"), "{path}");
        for query in [
            format!("access_token={token}"),
            format!("access%5Ftoken={token}"),
            format!("a=b&access_token={token}&access_token=x"),
        ] {
            let url = format!("{path}?{query}");
            let (status, headers, body) = send(app.post(&url, &token, "text/plain", "x")).await;
            assert_eq!(status, 400, "{url:.30}: {body}");
            assert_eq!(reason(&body), "token_in_query", "{url:.30}");
            let challenge = headers["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("error=\"invalid_request\""),
                "{challenge}"
            );
            let (status, _, body) = send(
                app.http
                    .get(format!("{}{url}", app.base))
                    .header("content-type", "text/plain"),
            )
            .await;
            assert_eq!(status, 400, "no header, {url:.30}: {body}");
            assert_eq!(reason(&body), "token_in_query");
        }
    }
    let (status, _, body) = send(
        app.http
            .get(format!("{}/health?access_token={token}", app.base)),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, _) = send(app.http.get(format!(
        "{}/.well-known/oauth-protected-resource/mcp?access_token={token}",
        app.base
    )))
    .await;
    assert_eq!(status, 200);
}

// A resource whose path ends with `/` (`http://h/mcp/`, significant and
// kept by the configuration): the MCP path is `/mcp/` and "it and every
// path under it are judged as MCP" (`AuthLayer::mcp_path`). The layer
// compared the untrimmed `/mcp/` and so judged `/mcp/x` (and `/mcp`) as
// another route of the app: a foreign `Origin` reached the service there.
// `AuthLayer::mcp_path("/mcp/")` trimmed the slash; the default did not.
#[tokio::test]
async fn a_resource_with_a_trailing_slash_judges_its_subpaths_as_mcp() {
    let echo = |auth: AuthContext| async move { format!("hello {}", auth.subject()) };
    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp/");
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/mcp", any(echo))
        .route("/mcp/", any(echo))
        .route("/mcp/{*rest}", any(echo))
        .layer(AuthLayer::new(config).unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let token = issuer.token().subject("alice").audience(&resource).sign();
    let http = reqwest::Client::new();
    for path in ["/mcp/", "/mcp/x", "/mcp"] {
        let (status, _, body) = send(
            http.post(format!("{base}{path}"))
                .bearer_auth(&token)
                .header("origin", "https://evil.example"),
        )
        .await;
        assert_eq!(
            (status, reason(&body).as_str()),
            (403, "origin_not_allowed"),
            "{path}: {body}"
        );
    }
}

// `mcp_path` takes a path; one written without its leading `/` (`"mcp"`,
// `"v1/mcp"`) named no request path, so nothing was judged as MCP by its
// path: a foreign `Origin` reached the endpoint. It is read as the
// absolute path it names.
#[tokio::test]
async fn an_mcp_path_without_its_leading_slash_still_names_the_endpoint() {
    let app = App::start(|b| b, |l| l.mcp_path("mcp")).await;
    let token = app.token(&[]);
    for path in ["/mcp", "/mcp/x"] {
        let (status, _, body) = send(
            app.http
                .post(format!("{}{path}", app.base))
                .bearer_auth(&token)
                .header("origin", "https://evil.example"),
        )
        .await;
        assert_eq!(
            (status, reason(&body).as_str()),
            (403, "origin_not_allowed"),
            "{path}: {body}"
        );
    }
}

/// A plain layer for a root resource (`http://h:port`, whose default MCP
/// path is `/mcp`) in front of rmcp served at the root
/// (`fallback_service`: every path reaches rmcp). The layer cannot place
/// these requests by their path, so it judges them by what they carry
/// (MCP fields, a JSON-RPC body), and every rule of MCP requests holds on
/// every path: Origin, Host, per-tool scopes, sessions. The notes the
/// handlers stored are the oracle: no refused `add_note` ever ran.
#[tokio::test]
async fn rmcp_at_the_root_of_a_root_resource_keeps_every_mcp_rule() {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    use support::attack::{LEGACY, MODERN, MODERN_META, initialize_body};
    use support::notes::server::{NoteStore, NotesServer, declare_scopes};
    use support::raw_http::Raw;

    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = declare_scopes(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(format!("http://{addr}"))
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .unwrap();
    let layer = AuthLayer::new(config).unwrap();
    let resource = layer.metadata().resource.clone();
    let mut rmcp_config = StreamableHttpServerConfig::default();
    rmcp_config.allowed_hosts = Vec::new();
    let store = NoteStore::default();
    let service = StreamableHttpService::new(
        {
            let store = store.clone();
            move || Ok(NotesServer::new(store.clone()))
        },
        std::sync::Arc::new(LocalSessionManager::default()),
        rmcp_config,
    );
    let app = Router::new().fallback_service(service).layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let token = |scopes: &[&str]| {
        issuer
            .token()
            .subject("alice")
            .audience(&resource)
            .scopes(scopes.iter().copied())
            .sign()
    };
    let (reader, writer) = (token(&["notes:read"]), token(&["notes:write"]));
    let post = |target: &str, token: &str, body: String| {
        Raw::new(addr, "POST", target)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body)
    };
    let add_note = |id: u64, meta: bool| {
        let meta = if meta {
            format!(",{MODERN_META}")
        } else {
            String::new()
        };
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"add_note","arguments":{{"text":"n{id}"}}{meta}}}}}"#
        )
    };
    let reason = |answer: &support::raw_http::RawResponse| {
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        body["reason"]
            .as_str()
            .or(body["error"]["data"]["reason"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let challenge_error = |answer: &support::raw_http::RawResponse| {
        answer
            .header("www-authenticate")
            .unwrap_or_default()
            .to_owned()
    };

    // A session opened at the root, as an MCP client would.
    let opened = post("/", &writer, initialize_body(1)).send().await.unwrap();
    assert_eq!(opened.status, 200, "{}", opened.summary());
    let session = opened.header("mcp-session-id").unwrap().to_owned();
    let initialized = post("/", &writer, support::attack::INITIALIZED.to_owned())
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", LEGACY)
        .send()
        .await
        .unwrap();
    assert_eq!(initialized.status, 202, "{}", initialized.summary());

    for target in ["/", "/x", "/mcp-not"] {
        // A foreign Origin: an initialize carries no MCP field, only its
        // body says MCP.
        let answer = post(target, &writer, initialize_body(2))
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (answer.status, reason(&answer).as_str()),
            (403, "origin_not_allowed"),
            "{target}: {}",
            answer.summary()
        );
        // No Host at all (HTTP/1.0): refused as on the MCP path.
        let answer = post(target, &writer, initialize_body(3))
            .http_1_0()
            .without_host()
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status, 400, "{target}: {}", answer.summary());
        assert_eq!(
            reason(&answer),
            "missing_host",
            "{target}: {}",
            answer.summary()
        );
        // Per-tool scopes, in the session and statelessly.
        let in_session = post(target, &reader, add_note(4, false))
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", LEGACY)
            .send()
            .await
            .unwrap();
        assert_eq!(in_session.status, 403, "{target}: {}", in_session.summary());
        assert!(
            challenge_error(&in_session).contains("insufficient_scope"),
            "{target}: {}",
            in_session.summary()
        );
        let stateless = post(target, &reader, add_note(5, true))
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "add_note")
            .send()
            .await
            .unwrap();
        assert_eq!(stateless.status, 403, "{target}: {}", stateless.summary());
        // The right scope from a foreign page: refused for its Origin.
        let foreign = post(target, &writer, add_note(6, false))
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", LEGACY)
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            (foreign.status, reason(&foreign).as_str()),
            (403, "origin_not_allowed"),
            "{target}: {}",
            foreign.summary()
        );
    }
    // None of the refused calls ran; the writer's own call does.
    let allowed = post("/", &writer, add_note(7, false))
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", LEGACY)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.summary());
    let notes = store
        .lock()
        .unwrap()
        .values()
        .flatten()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(notes, ["n7"]);
}

/// Exempt routes pass through unless the request is judged as MCP, and a
/// JSON POST whose body holds JSON-RPC calls is MCP on any route: with
/// rmcp reachable at an exempt path (here as the app's fallback, served
/// statelessly, and an exempt prefix it also answers), a headerless
/// `tools/call` there needs its token and the tool's scopes like on the
/// MCP path. The execution log is the oracle. The app's own exempt route
/// still serves its REST body, and a GET there, without a token.
#[tokio::test]
async fn json_rpc_calls_on_exempt_routes_are_judged_as_mcp() {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    use support::attack::{ExecLog, ScopedServer, scoped_rules, tool_call_body};
    use support::raw_http::Raw;

    let issuer = TestIssuer::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/mcp");
    let config = scoped_rules(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(&resource)
            .exempt_path("/health")
            .exempt_prefix("/public")
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .unwrap();
    let mut rmcp_config = StreamableHttpServerConfig::default();
    rmcp_config.allowed_hosts = Vec::new();
    rmcp_config.legacy_session_mode = false;
    let log = ExecLog::default();
    let service = StreamableHttpService::new(
        {
            let log = log.clone();
            move || Ok(ScopedServer::new(log.clone()))
        },
        std::sync::Arc::new(LocalSessionManager::default()),
        rmcp_config,
    );
    let app = Router::new()
        .route("/health", any(|| async { "ok" }))
        .fallback_service(service)
        .layer(AuthLayer::new(config).unwrap().max_body_bytes(64 * 1024));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let reader = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["s:read"])
        .sign();
    let post = |target: &str, token: Option<&str>, body: String| {
        let mut raw = Raw::new(addr, "POST", target)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body);
        if let Some(token) = token {
            raw = raw.header("Authorization", &format!("Bearer {token}"));
        }
        raw
    };
    for target in ["/public", "/public/x", "/health"] {
        let anonymous = post(target, None, tool_call_body(1, "write_tool"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status, 401, "{target}: {}", anonymous.summary());
        let narrow = post(target, Some(&reader), tool_call_body(2, "write_tool"))
            .send()
            .await
            .unwrap();
        assert_eq!(narrow.status, 403, "{target}: {}", narrow.summary());
        let ran = log.take();
        assert!(ran.is_empty(), "{target}: {ran:?}");
    }
    // Other shapes of a call: in a batch, under another JSON media type,
    // with the member names in another order. A body the layer cannot
    // read strictly (a repeated `method`: which copy would rmcp take?) is
    // refused as on any route; one over the cap too, unread.
    let batch = format!("[{}]", tool_call_body(4, "write_tool"));
    let reordered = r#"{"params":{"arguments":{},"name":"write_tool"},"method":"tools/call","id":5,"jsonrpc":"2.0"}"#;
    for (target, body) in [("/public/x", batch.as_str()), ("/health", reordered)] {
        let answer = post(target, Some(&reader), body.to_owned())
            .header(
                "Content-Type",
                "application/vnd.example+json; charset=utf-8",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status, 403, "{target} {body}: {}", answer.summary());
    }
    let twice = r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","method":"tools/list","params":{"name":"write_tool","arguments":{}}}"#;
    let answer = post("/public/x", None, twice.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.summary());
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"write_tool","arguments":{{"pad":"{}"}}}}}}"#,
        "x".repeat(100 * 1024)
    );
    let answer = post("/public/x", None, huge).send().await.unwrap();
    assert_eq!(answer.status, 413, "{}", answer.summary());
    // The right scope, but from a foreign page, or naming no host.
    let writer = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["s:write"])
        .sign();
    let foreign = post("/public/x", Some(&writer), tool_call_body(8, "write_tool"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status, 403, "{}", foreign.summary());
    assert!(
        foreign.text().contains("origin_not_allowed"),
        "{}",
        foreign.summary()
    );
    let hostless = post("/public/x", Some(&writer), tool_call_body(9, "write_tool"))
        .http_1_0()
        .without_host()
        .send()
        .await
        .unwrap();
    assert_eq!(hostless.status, 400, "{}", hostless.summary());
    assert!(
        hostless.text().contains("missing_host"),
        "{}",
        hostless.summary()
    );
    let ran = log.take();
    assert!(ran.is_empty(), "{ran:?}");
    // What any route reads as a call, or refuses, an exempt one does too:
    // an object with a string `method` (with or without `jsonrpc`) needs
    // a token; a body that is not objects is 400.
    let bare_method = post("/health", None, r#"{"method":"card"}"#.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(bare_method.status, 401, "{}", bare_method.summary());
    let numbers = post("/health", None, "[1,2]".to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(numbers.status, 400, "{}", numbers.summary());
    // An empty body (a ping) carries no call: still exempt.
    for empty in ["", " \r\n"] {
        let ping = post("/health", None, empty.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(
            (ping.status, ping.text().as_str()),
            (200, "ok"),
            "{}",
            ping.summary()
        );
    }
    // The exempt route's own traffic is untouched.
    let rest = post("/health", None, r#"{"check":"deep"}"#.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(
        (rest.status, rest.text().as_str()),
        (200, "ok"),
        "{}",
        rest.summary()
    );
    let get = Raw::new(addr, "GET", "/health").send().await.unwrap();
    assert_eq!(
        (get.status, get.text().as_str()),
        (200, "ok"),
        "{}",
        get.summary()
    );
    // And the allowed call runs, on the exempt prefix as elsewhere.
    let allowed = post("/public/x", Some(&reader), tool_call_body(3, "read_tool"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.summary());
    let ran = log.take();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].what, "read_tool");
    assert_eq!(ran[0].subject.as_deref(), Some("alice"));
}

/// A `write` call whose arguments hold `zeros` zeros in one array: twenty
/// JSON values besides them as the cap counts them (three objects, the
/// message, `params` and `arguments`, five each; `jsonrpc`, `id`,
/// `method`, `name` and the array, one each).
fn call_with_zeros(zeros: usize) -> String {
    let mut body = String::from(
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write","arguments":{"values":["#,
    );
    for i in 0..zeros {
        if i > 0 {
            body.push(',');
        }
        body.push('0');
    }
    body.push_str("]}}}");
    body
}

// Found from outside: a 4 MiB body of two million `0`s took the reference
// server from 25 MB to 450 MB for one call (rmcp's parse; the body cap
// bounds bytes, not values). A body with more JSON values than
// `max_json_values` is answered 413 `invalid_request` (`body_too_complex`)
// before the service sees it, in one message or a batch, at any depth;
// one at the cap is served.
#[tokio::test]
async fn a_body_of_too_many_values_is_refused_before_the_service() {
    let app = App::start(write_rule, |l| l.max_json_values(100)).await;
    let token = app.token(&["notes:write"]);
    // 73 zeros + 27 = 100 values: at the cap (the message's own: three
    // objects of five, five values, seven member names).
    let (status, _, body) =
        send(app.post("/mcp", &token, "application/json", &call_with_zeros(73))).await;
    assert_eq!((status, body.as_str()), (200, "hello alice"));
    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"write","arguments":{{"deep":{}}}}}}}"#,
        "[".repeat(100) + &"]".repeat(100)
    );
    let batch = format!("[{},{}]", call_with_zeros(50), call_with_zeros(50));
    // An object counts five (found from outside: 50,000 one-member
    // objects cost three times the memory of 100,000 zeros): 10 of them
    // (seven each: the object, its member's name and value) with the
    // message's own 27 pass the cap of 100, 11 do not.
    let objects = |n: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"write","arguments":{{"o":[{}]}}}}}}"#,
            vec![r#"{"k":0}"#; n].join(",")
        )
    };
    let (status, _, body) = send(app.post("/mcp", &token, "application/json", &objects(10))).await;
    assert_eq!((status, body.as_str()), (200, "hello alice"));
    for body in [
        call_with_zeros(74),
        nested,
        batch,
        objects(11),
        call_with_zeros(50_000),
    ] {
        let (status, headers, answer) =
            send(app.post("/mcp", &token, "application/json", &body)).await;
        assert_eq!(status, 413, "{answer}");
        assert!(headers.get("www-authenticate").is_none(), "{headers:?}");
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["error"], "invalid_request");
        assert_eq!(v["reason"], "body_too_complex");
        assert_eq!(
            v["error_description"],
            "The request body holds more JSON values than this server accepts"
        );
    }
    // Without a valid token the token is judged first: 401.
    let (status, _, _) =
        send(app.post("/mcp", "bad", "application/json", &call_with_zeros(74))).await;
    assert_eq!(status, 401);
    // The default (100,000) serves what the small cap refused.
    let app = App::start(write_rule, |l| l).await;
    let token = app.token(&["notes:write"]);
    let (status, _, body) =
        send(app.post("/mcp", &token, "application/json", &call_with_zeros(50_000))).await;
    assert_eq!((status, body.as_str()), (200, "hello alice"));
    let (status, _, answer) = send(app.post(
        "/mcp",
        &token,
        "application/json",
        &call_with_zeros(100_000),
    ))
    .await;
    assert_eq!(status, 413, "{answer}");
}

/// rmcp mounted behind a plain layer for a resource on a real host name
/// (`https://mcp.example.com/mcp`, reached through a proxy as loopback):
/// rmcp's own Host check admits loopback names only by default, so every
/// call the layer accepted was refused 403 by rmcp (found from outside).
/// With `AuthConfig::allowed_hosts()` given to rmcp, the resource's host is
/// served, with and without a port, and a DNS-rebinding page's host is
/// still refused.
#[tokio::test]
async fn rmcp_behind_a_plain_layer_serves_the_resources_host() {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    use support::attack::initialize_body;
    use support::raw_http::Raw;

    let issuer = TestIssuer::start().await.unwrap();
    let resource = "https://mcp.example.com/mcp";
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    assert_eq!(
        config.allowed_hosts(),
        ["localhost", "127.0.0.1", "::1", "mcp.example.com"]
    );
    let serve = |rmcp_config: StreamableHttpServerConfig| {
        let config = config.clone();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let service = StreamableHttpService::new(
                || Ok(support::fixture::EchoServer::new()),
                std::sync::Arc::new(LocalSessionManager::default()),
                rmcp_config,
            );
            let app = Router::new()
                .nest_service("/mcp", service)
                .layer(AuthLayer::new(config).unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await });
            addr
        }
    };
    let token = issuer.token().audience(resource).sign();
    let call = |addr, host: &str| {
        let request = Raw::new(addr, "POST", "/mcp")
            .header("Host", host)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(initialize_body(1));
        async move { request.send().await }
    };

    // rmcp's default: the layer admits the token, rmcp refuses the host.
    let plain = serve(StreamableHttpServerConfig::default()).await;
    let refused = call(plain, "mcp.example.com").await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.summary());

    let served =
        serve(StreamableHttpServerConfig::default().with_allowed_hosts(config.allowed_hosts()))
            .await;
    for host in ["mcp.example.com", "mcp.example.com:443", "127.0.0.1"] {
        let answer = call(served, host).await.unwrap();
        assert_eq!(answer.status, 200, "{host}: {}", answer.summary());
    }
    for host in [
        "evil.example",
        "mcp.example.com.evil.example",
        "example.com",
    ] {
        let answer = call(served, host).await.unwrap();
        assert_eq!(answer.status, 403, "{host}: {}", answer.summary());
    }
    // Without a token, the layer's challenge comes first whatever the host.
    let anonymous = Raw::new(served, "POST", "/mcp")
        .header("Host", "mcp.example.com")
        .header("Content-Type", "application/json")
        .body(initialize_body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.summary());
}
