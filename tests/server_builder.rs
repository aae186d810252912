//! `McpServer`'s builder and lifecycle over real HTTP on loopback: what
//! `build` refuses, a custom verifier, the mount path and Host allowlist,
//! rmcp's transport settings, `serve` on the configured address, graceful
//! shutdown, and the router merged into a larger app.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

use mcp_oauth2::verify::from_fn;
use mcp_oauth2::{AuthConfig, AuthContext, AuthError, AuthErrorKind, McpServer};
use support::fixture::{EchoServer, bounded, challenge, param};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

const MODERN_TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

/// A configuration for `resource` whose issuer is never contacted.
fn offline_config(resource: &str) -> AuthConfig {
    AuthConfig::builder()
        .issuer("http://127.0.0.1:9")
        .resource(resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap()
}

/// A verifier that knows one static token.
fn static_token_verifier() -> impl mcp_oauth2::TokenVerifier {
    from_fn(|token: String| async move {
        if token == "let-me-in" {
            Ok(AuthContext::builder("https://static.example", "dev").build())
        } else {
            Err(AuthError::new(AuthErrorKind::Rejected))
        }
    })
}

/// A listener on 127.0.0.1:0, its address and the resource URI there.
async fn loopback() -> (tokio::net::TcpListener, std::net::SocketAddr, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr, format!("http://{addr}/mcp"))
}

/// The echo server for `resource`, admitting the static token only.
fn echo_server(resource: &str) -> McpServer {
    McpServer::builder()
        .auth(offline_config(resource))
        .verifier(static_token_verifier())
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap()
}

async fn post(url: &str, host: Option<&str>, token: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(host) = host {
        req = req.header("host", host);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    bounded(req.send()).await.unwrap()
}

/// The metadata document at `url`.
async fn metadata(url: String) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The status of an `initialize` at `url` with the static token.
async fn admitted_status(url: &str) -> reqwest::StatusCode {
    post(url, None, Some("let-me-in"), INITIALIZE)
        .await
        .status()
}

// Configuration mistakes are found by `build`, never at the first request,
// and name the setting (STYLE.md: a builder that fails at build time).
#[tokio::test]
async fn build_refuses_missing_parts_and_bad_paths() {
    let resource = "http://127.0.0.1:1/mcp";
    let err = McpServer::builder()
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "auth");
    assert!(err.message().contains("fail open"), "{err}");

    for (path, broken) in [
        ("mcp", "does not start with '/'"),
        ("/", "is the root: the MCP endpoint needs a path of its own"),
        ("/mcp/", "ends with '/'"),
        ("", "does not start with '/'"),
    ] {
        let err = McpServer::builder()
            .auth(offline_config(resource))
            .path(path)
            .service(|| Ok(EchoServer::new()))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "path", "{path:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid `path`: {path:?} {broken}: a path starts with '/' and does not end with '/' (such as \"/mcp\")"
            )
        );
    }

    for probe in ["ready", "/mcp"] {
        let err = McpServer::builder()
            .auth(offline_config(resource))
            .readiness_path(probe)
            .service(|| Ok(EchoServer::new()))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "readiness_path", "{probe:?}");
        // Found from outside: the MCP path was told it "must start with
        // '/'", which it does; each mistake is named as it is.
        let message = err.to_string();
        if probe == "/mcp" {
            assert!(message.contains("is the MCP endpoint's path"), "{message}");
            assert!(!message.contains("must start with"), "{message}");
        } else {
            assert!(message.contains("must start with '/'"), "{message}");
        }
    }
}

// A path axum's router refuses (it panics: a segment starting with `:` or
// `*`, axum 0.7 syntax) or reads as a pattern (`{x}`, `{*x}`, the `{{` and
// `}}` escapes, a lone brace), and a path another route of the server
// already holds (the metadata at either well-known path, the readiness
// probe), is a `ConfigError` from `build`, never a panic.
/// A service with tools and no `get_tool` (rmcp's default: `None` for
/// every name).
#[derive(Clone)]
struct NoLookup;

impl rmcp::ServerHandler for NoLookup {}

// A scope rule for a tool the service does not have protects nothing: the
// real tool needs only the required scopes (found from outside:
// `tool_scopes("add-note", ..)` left `add_note` open, silently). `build`
// asks the service's `get_tool` for every tool a rule names, static
// (`tool_scopes`) and computed (`tool_scopes_with`), and refuses each name
// it does not know; `AuthConfig::check_tool_names` makes the same check
// for a plain layer.
#[tokio::test]
async fn build_refuses_a_scope_rule_for_a_tool_the_service_lacks() {
    let config = |tweak: fn(mcp_oauth2::AuthConfigBuilder) -> mcp_oauth2::AuthConfigBuilder| {
        tweak(
            AuthConfig::builder()
                .issuer("http://127.0.0.1:9")
                .resource("http://127.0.0.1:1/mcp")
                .allow_insecure_http_for_loopback(true),
        )
        .build()
        .unwrap()
    };
    let build = |config: AuthConfig| {
        McpServer::builder()
            .auth(config)
            .service(|| Ok(EchoServer::new()))
            .build()
    };
    for (case, tweak, unknown) in [
        (
            "a misspelt tool",
            (|b| b.tool_scopes("export-notes", ["notes:export"]))
                as fn(mcp_oauth2::AuthConfigBuilder) -> mcp_oauth2::AuthConfigBuilder,
            vec!["\"export-notes\""],
        ),
        (
            "one known, one not",
            |b| {
                b.tool_scopes("export_notes", ["notes:export"])
                    .tool_scopes("exportNotes", ["notes:export"])
            },
            vec!["\"exportNotes\""],
        ),
        (
            // A look-alike is named escaped (found from outside: a Cyrillic
            // `е` printed as the Latin letter).
            "a look-alike letter",
            |b| b.tool_scopes("\u{435}xport_notes", ["notes:export"]),
            vec!["\"\\u{435}xport_notes\""],
        ),
        (
            "a computed rule",
            |b| b.tool_scopes_with("Export_notes", |_, _| Ok(vec![])),
            vec!["\"Export_notes\""],
        ),
        (
            "two unknown, named once each",
            |b| {
                b.tool_scopes("b_tool", ["x"])
                    .tool_scopes_with("a_tool", |_, _| Ok(vec![]))
                    .tool_scopes_with("b_tool", |_, _| Ok(vec![]))
            },
            vec!["\"a_tool\", \"b_tool\""],
        ),
    ] {
        let config = config(tweak);
        let e = build(config.clone()).expect_err(case);
        assert_eq!(e.field(), "tool_scopes", "{case}");
        for name in &unknown {
            assert!(e.to_string().contains(name), "{case}: {e}");
        }
        let direct = config.check_tool_names(&EchoServer::new()).unwrap_err();
        assert_eq!(direct.to_string(), e.to_string(), "{case}");
    }
    // The service's own names build; a prompt rule is not a tool's.
    for tweak in [
        (|b| b.tool_scopes("export_notes", ["notes:export"]))
            as fn(mcp_oauth2::AuthConfigBuilder) -> mcp_oauth2::AuthConfigBuilder,
        |b| b.tool_scopes_with("whoami", |_, _| Ok(vec![])),
        |b| b.prompt_scopes("no-such-prompt", ["x"]),
        |b| b,
    ] {
        let config = config(tweak);
        config.check_tool_names(&EchoServer::new()).unwrap();
        build(config).unwrap();
    }
    // A service without `get_tool` cannot have its names checked: refused
    // with a rule, served without one.
    let ruled = config(|b| b.tool_scopes("add_note", ["notes:write"]));
    let e = McpServer::builder()
        .auth(ruled)
        .service(|| Ok(NoLookup))
        .build()
        .expect_err("no get_tool");
    assert!(e.to_string().contains("implement get_tool"), "{e}");
    McpServer::builder()
        .auth(config(|b| b))
        .service(|| Ok(NoLookup))
        .build()
        .unwrap();
    // A factory that fails when `build` calls it cannot have its tools
    // checked: refused when a rule names one, built otherwise (rmcp then
    // answers each session or call the factory fails for).
    let failing = || -> std::io::Result<EchoServer> { Err(std::io::Error::other("no database")) };
    let e = McpServer::builder()
        .auth(config(|b| b.tool_scopes("export_notes", ["notes:export"])))
        .service(failing)
        .build()
        .expect_err("a failing factory");
    assert_eq!(e.field(), "service");
    assert!(e.to_string().contains("no database"), "{e}");
    McpServer::builder()
        .auth(config(|b| b))
        .service(failing)
        .build()
        .unwrap();
}

#[tokio::test]
async fn build_refuses_paths_the_router_would_panic_on_or_share() {
    let resource = "http://127.0.0.1:1/mcp";
    let build = |path: &str, probe: Option<&str>| {
        let mut builder = McpServer::builder()
            .auth(offline_config(resource))
            .path(path);
        if let Some(probe) = probe {
            builder = builder.readiness_path(probe);
        }
        builder.service(|| Ok(EchoServer::new())).build()
    };
    let patterns = [
        "/:x", "/*x", "/a/:b", "/{x}", "/{*x}", "/{{", "/}}", "/}", "/a{b", "/a}b",
    ];
    let taken = [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ];
    for path in patterns.iter().chain(&taken) {
        let err = build(path, None).expect_err(path);
        assert_eq!(err.field(), "path", "{path:?}");
        assert!(err.message().contains(path), "{err}");
    }
    for probe in patterns.iter().chain(&taken) {
        let err = build("/mcp", Some(probe)).expect_err(probe);
        assert_eq!(err.field(), "readiness_path", "{probe:?}");
        assert!(err.message().contains(probe), "{err}");
    }
    // Colons and asterisks inside a segment, and encoded braces, are
    // literal to axum: they are served.
    for path in ["/rpc:v1", "/a*b", "/%7Bx%7D", "/.well-known/other"] {
        build(path, Some("/ready")).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
    // A route no request can reach as written: a query or fragment, a
    // space or control character, non-ASCII, a dot segment, an escape of an
    // unreserved character or in lowercase; and the rest of the metadata's
    // well-known namespace (found from outside: a readiness probe at each
    // started and answered 404 for good, or was served where clients look
    // for another resource's metadata).
    let unreachable = [
        "/readyz?x",
        "/readyz#x",
        "/ready z",
        "/ready\tz",
        "/réady",
        "/a/../readyz",
        "/./readyz",
        "/%2e%2e/readyz",
        "/%72eadyz",
        "/ready%2fz",
        "/.well-known/oauth-protected-resource/x",
        // A '%' without two hex digits (found from outside: served as a
        // probe while the resource's path refused it).
        "/r%zz",
        "/r%",
        "/r%4",
    ];
    for probe in unreachable {
        let err = build("/mcp", Some(probe)).expect_err(probe);
        assert_eq!(err.field(), "readiness_path", "{probe:?}");
    }
    for path in unreachable {
        let err = build(path, None).expect_err(path);
        assert_eq!(err.field(), "path", "{path:?}");
    }
    // A probe with a trailing `/` is served where it is written.
    build("/mcp", Some("/readyz/")).unwrap();
}

// The resource's own path is routed too (its metadata lives under the
// well-known prefix followed by it): a resource path axum would refuse is a
// `ConfigError` of the configuration, never a panic in `metadata_router`.
#[test]
fn auth_config_refuses_a_resource_path_the_router_refuses() {
    for resource in ["http://127.0.0.1:1/:x", "http://127.0.0.1:1/a/*x"] {
        let err = AuthConfig::builder()
            .issuer("http://127.0.0.1:9")
            .resource(resource)
            .allow_insecure_http_for_loopback(true)
            .build()
            .expect_err(resource);
        assert_eq!(err.field(), "resource", "{resource}");
    }
}

// A custom verifier replaces the JWT verifier: its answers decide, the
// server is ready at once (no key set to fetch), and its refusals get the
// full RFC 6750 challenge. The mount path and the extra Host are honoured.
#[tokio::test]
async fn custom_verifier_at_a_custom_path_with_an_extra_host() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("http://{addr}/rpc");
    let server = McpServer::builder()
        .auth(offline_config(&resource))
        .verifier(static_token_verifier())
        .path("/rpc")
        .readiness_path("/ready")
        .allowed_host("mcp.internal")
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap();
    assert!(server.readiness().is_ready());
    let metrics = server.metrics();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));

    let ready = reqwest::get(format!("http://{addr}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), r#"{"ready":true}"#);

    let ok = post(&resource, None, Some("let-me-in"), INITIALIZE).await;
    assert_eq!(ok.status(), 200);
    let extra_host = post(
        &resource,
        Some("mcp.internal"),
        Some("let-me-in"),
        INITIALIZE,
    )
    .await;
    assert_eq!(extra_host.status(), 200);
    let foreign_host = post(
        &resource,
        Some("evil.example"),
        Some("let-me-in"),
        INITIALIZE,
    )
    .await;
    assert_eq!(foreign_host.status(), 403);

    let refused = post(&resource, None, Some("guess"), INITIALIZE).await;
    assert_eq!(refused.status(), 401);
    let params = challenge(&refused);
    assert_eq!(param(&params, "error"), Some("invalid_token"));
    assert_eq!(
        param(&params, "resource_metadata"),
        Some(format!("http://{addr}/.well-known/oauth-protected-resource/rpc").as_str())
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["reason"], "token_rejected");

    // rmcp is mounted at `/rpc` only: the default path is not routed.
    let elsewhere = post(
        &format!("http://{addr}/mcp"),
        None,
        Some("let-me-in"),
        INITIALIZE,
    )
    .await;
    assert_eq!(elsewhere.status(), 404);

    // Authentication accepted two: the foreign Host was refused before
    // its token was read.
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.accepted, 2, "{snapshot:?}");
    assert_eq!(
        snapshot.rejected.get("host_not_allowed"),
        Some(&1),
        "{snapshot:?}"
    );
    assert_eq!(
        snapshot.rejected.get("token_rejected"),
        Some(&1),
        "{snapshot:?}"
    );
    ct.cancel();
}

// `rmcp_config` reaches rmcp's transport: without JSON responses a
// stateless call answered with one message comes back as an SSE stream
// (the default is JSON).
#[tokio::test]
async fn rmcp_config_adjusts_the_transport() {
    let mut types = Vec::new();
    for json in [true, false] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
        let mut builder = McpServer::builder()
            .auth(offline_config(&resource))
            .verifier(static_token_verifier());
        if !json {
            builder = builder.rmcp_config(|c| c.with_json_response(false));
        }
        let server = builder.service(|| Ok(EchoServer::new())).build().unwrap();
        let ct = server.cancellation_token();
        tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        let response = reqwest::Client::new()
            .post(&resource)
            .bearer_auth("let-me-in")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .body(MODERN_TOOLS_LIST)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        types.push(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        ct.cancel();
    }
    assert!(types[0].starts_with("application/json"), "{types:?}");
    assert!(types[1].starts_with("text/event-stream"), "{types:?}");
}

/// A port free a moment ago.
async fn free_addr() -> std::net::SocketAddr {
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    probe.local_addr().unwrap()
}

// `serve` binds the configured address, answers there, and returns once
// the cancellation token is cancelled.
#[tokio::test]
async fn serve_binds_the_configured_address_until_cancelled() {
    let addr = free_addr().await;
    let resource = format!("http://{addr}/mcp");
    let server = McpServer::builder()
        .auth(offline_config(&resource))
        .verifier(static_token_verifier())
        .bind(addr.to_string())
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap();
    let ct = server.cancellation_token();
    let serving = tokio::spawn(server.serve());
    let mut status = None;
    for _ in 0..200 {
        if let Ok(r) = reqwest::Client::new().post(&resource).send().await {
            status = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, Some(401), "served on the configured address");
    ct.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returns after cancellation")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
}

// An address that cannot be bound is an error of `serve`, not a panic.
#[tokio::test]
async fn serve_reports_an_address_in_use() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let server = McpServer::builder()
        .auth(offline_config(&format!("http://{addr}/mcp")))
        .verifier(static_token_verifier())
        .bind(addr.to_string())
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap();
    let err = bounded(server.serve()).await.unwrap_err();
    assert!(matches!(err, mcp_oauth2::Error::Io(_)), "{err:?}");
    assert!(err.to_string().starts_with("I/O error: "), "{err}");
}

// The shutdown future ends serving: the cancellation token is cancelled
// (rmcp's sessions stop with it) and no new connection is accepted.
#[tokio::test]
async fn shutdown_future_stops_accepting_and_cancels_the_token() {
    let (listener, addr, resource) = loopback().await;
    let server = McpServer::builder()
        .auth(offline_config(&resource))
        .verifier(static_token_verifier())
        .tcp_nodelay(false)
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap();
    let ct = server.cancellation_token();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, async move {
        let _ = stopped.await;
    }));
    assert_eq!(
        post(&resource, None, Some("let-me-in"), INITIALIZE)
            .await
            .status(),
        200
    );
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serving ends after the shutdown future")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    assert!(ct.is_cancelled());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// A graceful stop lets the calls in progress finish: a call whose body is
// still arriving when the shutdown future completes is dispatched and
// answered (the server then stops). rmcp's cancellation token used to be
// cancelled at the stop itself, so rmcp dropped such a call and answered
// it 500 "no response message received from handler".
#[tokio::test]
async fn a_call_in_progress_at_the_stop_gets_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (listener, addr, resource) = loopback().await;
    let server = echo_server(&resource);
    let ct = server.cancellation_token();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, async move {
        let _ = stopped.await;
    }));
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer let-me-in\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/list\r\n\
         Content-Length: {}\r\n\r\n{MODERN_TOOLS_LIST}",
        MODERN_TOOLS_LIST.len()
    );
    let (first, rest) = request.as_bytes().split_at(request.len() - 20);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    // The server has the head and waits for the rest of the body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stream.write_all(rest).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("\"tools\""), "{answer:?}");
    let ended = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serving ends after the call")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    assert!(ct.is_cancelled());
}

// A legacy session's event stream only ends when rmcp's token is cancelled:
// a graceful stop ends it after a short grace (the calls in progress have
// had theirs), cleanly (the chunked body's last chunk), and the server
// stops; an open stream never holds the stop up.
#[tokio::test]
async fn an_open_event_stream_ends_shortly_after_the_stop() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (listener, addr, resource) = loopback().await;
    let server = echo_server(&resource);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, async move {
        let _ = stopped.await;
    }));
    let opened = post(&resource, None, Some("let-me-in"), INITIALIZE).await;
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = reqwest::Client::new()
        .post(&resource)
        .bearer_auth("let-me-in")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .unwrap();
    assert!(initialized.status().is_success(), "{initialized:?}");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer let-me-in\r\n\
         Accept: text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
         Mcp-Session-Id: {session}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 64];
    let n = stream.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &first[..n]);
    let stopping = std::time::Instant::now();
    stop.send(()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut rest))
        .await
        .expect("the event stream outlived the stop")
        .unwrap();
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let ended = tokio::time::timeout(Duration::from_secs(15), serving)
        .await
        .expect("the server did not stop")
        .unwrap();
    assert!(ended.is_ok(), "{ended:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
}

// `into_router`: the protected endpoint and the metadata inside a larger
// app that serves itself; the app's own routes stay public.
#[tokio::test]
async fn into_router_merges_into_a_larger_app() {
    let (listener, addr, resource) = loopback().await;
    let server = echo_server(&resource);
    let app = server
        .into_router()
        .route("/health", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let health = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let doc = metadata(format!(
        "http://{addr}/.well-known/oauth-protected-resource/mcp"
    ))
    .await;
    assert_eq!(doc["resource"], resource.as_str());
    let anonymous = post(&resource, None, None, INITIALIZE).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        post(&resource, None, Some("let-me-in"), INITIALIZE)
            .await
            .status(),
        200
    );
}

// The endpoint is served at the resource's path unless `path` names another
// (found from outside: `/mcp` whatever the resource, so a resource at
// `/a/mcp` answered 404 at the URL its metadata and tokens name, and the
// README's two resources on one host, `/a/mcp` and `/b/mcp`, panicked when
// merged: both took `/mcp`). `path` still sets another local path, for a
// proxy that maps the resource's path to it; a resource path that cannot
// be a route is refused naming the resource.
#[tokio::test]
async fn the_endpoint_is_served_at_the_resources_path_unless_set() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, b) = (
        format!("http://{addr}/a/mcp"),
        format!("http://{addr}/b/mcp"),
    );
    let second = McpServer::builder()
        .auth(offline_config(&b))
        .verifier(static_token_verifier())
        .service(|| Ok(EchoServer::new()))
        .root_metadata(false)
        .build()
        .unwrap();
    let app = echo_server(&a).into_router().merge(second.into_router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    for (resource, suffix) in [(&a, "a/mcp"), (&b, "b/mcp")] {
        assert_eq!(post(resource, None, None, INITIALIZE).await.status(), 401);
        assert_eq!(admitted_status(resource).await, 200, "{resource}");
        let doc = metadata(format!(
            "http://{addr}/.well-known/oauth-protected-resource/{suffix}"
        ))
        .await;
        assert_eq!(doc["resource"], resource.as_str());
    }
    let not_served = admitted_status(&format!("http://{addr}/mcp")).await;
    assert_eq!(not_served, 404);

    // A proxy maps the public `/api/mcp` to the local `/mcp`.
    let (listener, addr, _) = loopback().await;
    let proxied = McpServer::builder()
        .auth(offline_config(&format!("http://{addr}/api/mcp")))
        .verifier(static_token_verifier())
        .service(|| Ok(EchoServer::new()))
        .path("/mcp")
        .build()
        .unwrap()
        .into_router();
    tokio::spawn(async move { axum::serve(listener, proxied).await });
    let local = admitted_status(&format!("http://{addr}/mcp")).await;
    assert_eq!(local, 200);
    let public = admitted_status(&format!("http://{addr}/api/mcp")).await;
    assert_eq!(public, 404);

    // A root resource is served at `/mcp`, as before.
    let (listener, addr, _) = loopback().await;
    let root = echo_server(&format!("http://{addr}")).into_router();
    tokio::spawn(async move { axum::serve(listener, root).await });
    let at_mcp = admitted_status(&format!("http://{addr}/mcp")).await;
    assert_eq!(at_mcp, 200);

    // A resource path that cannot be the route is named as the resource.
    let err = McpServer::builder()
        .auth(offline_config("http://127.0.0.1:9/mcp/"))
        .verifier(static_token_verifier())
        .service(|| Ok(EchoServer::new()))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "resource", "{err}");
    assert!(err.message().contains("ends with '/'"), "{err}");
    assert!(
        err.message().contains("unless `path` names another"),
        "{err}"
    );
}

// `into_router` merged into an app that protects all its routes with an
// `AuthLayer` of its own: the outer layer admits the caller and, as it
// must (no token passthrough), takes the `Authorization` header off the
// request before the router; the server's own layer then found no token
// and refused every call with 401 `missing_token` ("a Bearer token is
// required", to a client that sent one). The inner layer verifies the
// same credentials the outer one admitted, against its own policy: a token
// the server's verifier refuses is still refused.
#[tokio::test]
async fn into_router_works_under_an_outer_auth_layer() {
    let (listener, _, resource) = loopback().await;
    let server = echo_server(&resource);
    // The app's layer admits two tokens; the server's only `let-me-in`.
    let outer = mcp_oauth2::AuthLayer::with_verifier(
        offline_config(&resource),
        from_fn(|token: String| async move {
            if token == "let-me-in" || token == "app-only" {
                Ok(AuthContext::builder("https://static.example", "dev").build())
            } else {
                Err(AuthError::new(AuthErrorKind::Rejected))
            }
        }),
    );
    let app = axum::Router::new()
        .route(
            "/api",
            axum::routing::get(|auth: AuthContext| async move { auth.subject().to_owned() }),
        )
        .merge(server.into_router())
        .layer(outer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let ok = post(&resource, None, Some("let-me-in"), INITIALIZE).await;
    let status = ok.status();
    assert_eq!(status, 200, "{}", ok.text().await.unwrap());
    let refused = post(&resource, None, Some("app-only"), INITIALIZE).await;
    assert_eq!(refused.status(), 401);
    let params = challenge(&refused);
    assert_eq!(param(&params, "error"), Some("invalid_token"));
    assert_eq!(post(&resource, None, None, INITIALIZE).await.status(), 401);
}

// Two layers, the inner one with an exempt route: the inner layer
// verifies the credentials the outer one admitted, but an exempt route
// is served without a verification, so it must not see them either (no
// token passthrough).
#[tokio::test]
async fn an_exempt_route_under_two_layers_never_sees_the_token() {
    let (listener, addr, resource) = loopback().await;
    let inner_config = AuthConfig::builder()
        .issuer("http://127.0.0.1:9")
        .resource(&resource)
        .exempt_path("/public")
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let inner = mcp_oauth2::AuthLayer::with_verifier(inner_config, static_token_verifier());
    let outer =
        mcp_oauth2::AuthLayer::with_verifier(offline_config(&resource), static_token_verifier());
    let seen = |headers: http::HeaderMap| async move {
        format!("authorization: {}", headers.contains_key("authorization"))
    };
    let app = axum::Router::new()
        .merge(
            axum::Router::new()
                .route("/public", axum::routing::get(seen))
                .layer(inner),
        )
        .layer(outer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/public"))
        .bearer_auth("let-me-in")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "authorization: false");
}

// `Debug` of the builder and the server names the resource and the bind
// address, never a secret of the configuration.
#[tokio::test]
async fn debug_output_names_the_server_never_its_secrets() {
    let resource = "http://127.0.0.1:1/mcp";
    let config = AuthConfig::builder()
        .issuer("http://127.0.0.1:9")
        .resource(resource)
        .introspection(
            mcp_oauth2::verify::IntrospectionSettings::new("rs-client", "top-s3cret-value")
                .endpoint(url::Url::parse("http://127.0.0.1:9/introspect").unwrap()),
        )
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let builder = McpServer::builder()
        .auth(config)
        .bind("127.0.0.1:1")
        .service(|| Ok(EchoServer::new()));
    let shown = format!("{builder:?}");
    assert!(
        shown.contains(resource) && shown.contains("127.0.0.1:1"),
        "{shown}"
    );
    assert!(!shown.contains("top-s3cret-value"), "{shown}");
    let server = builder.build().unwrap();
    let shown = format!("{server:?}");
    assert!(
        shown.contains(resource) && shown.contains("127.0.0.1:1"),
        "{shown}"
    );
    assert!(!shown.contains("top-s3cret-value"), "{shown}");
    // The layer's service shows nothing of its configuration.
    let layer =
        mcp_oauth2::AuthLayer::with_verifier(offline_config(resource), static_token_verifier());
    let service = tower::Layer::layer(&layer, ());
    assert_eq!(format!("{service:?}"), "AuthService { .. }");
}

// The key sets are fetched beside serving, not before it (found from
// outside: with an issuer that did not answer, nothing was accepted for the
// whole fetch deadline after the server was up, the metadata and the
// challenges included, and `verify_timeout` did not hold in that window).
// Here the issuer accepts connections and never answers, the fetch deadline
// is a minute: the metadata and a 401 are answered meanwhile, and a request
// that needs the keys gets 503 within its own verification deadline.
#[tokio::test]
async fn serving_does_not_wait_for_the_key_fetch() {
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", hung.local_addr().unwrap());
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = hung.accept().await {
            keep.lock().await.push(socket);
        }
    });
    let (listener, addr, resource) = loopback().await;
    let config = AuthConfig::builder()
        .issuer(&issuer)
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .http_timeout(Duration::from_secs(60))
        .verify_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (ct, _) = support::fixture::serve_echo(listener, config);
    let metadata = bounded(reqwest::get(format!(
        "http://{addr}/.well-known/oauth-protected-resource/mcp"
    )))
    .await
    .unwrap();
    assert_eq!(metadata.status(), 200);
    let anonymous = bounded(post(&resource, None, None, MODERN_TOOLS_LIST)).await;
    assert_eq!(anonymous.status(), 401);
    // A token of that issuer (its signature cannot be checked without keys).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let part = |json: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    };
    let token = format!(
        "{}.{}.{}",
        part(serde_json::json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"})),
        part(serde_json::json!({
            "iss": issuer, "aud": resource, "sub": "a",
            "exp": now + 600, "iat": now,
        })),
        // An RS256 signature's length (256 bytes), never checked here.
        "A".repeat(342),
    );
    let needs_keys = bounded(post(&resource, None, Some(&token), MODERN_TOOLS_LIST)).await;
    assert_eq!(
        needs_keys.status(),
        503,
        "{:?}",
        needs_keys.headers().get("www-authenticate")
    );
    // The fetch is still waiting on the issuer that never answers.
    assert!(!held.lock().await.is_empty());
    ct.cancel();
}
