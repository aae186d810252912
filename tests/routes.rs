//! One deterministic test per attack of issue 12: every route the router
//! sends to the MCP service is judged as MCP, sessions are used only by
//! their owner, the HTTP framing rules of the MCP 2026-07-28 streamable HTTP
//! transport (Origin, Host, header/body agreement, ignored session ids) and
//! CORS preflights. Real `McpServer`, real `TestIssuer`, raw HTTP on
//! loopback; the execution log (what ran, for whom) is the oracle, the
//! status codes are checked as the intended answers.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::attack;

use attack::{
    Exec, INITIALIZED, LEGACY, MODERN, Mount, RawResponse, Target, TokenKind, initialize_body,
    modern_tool_call_body, tool_call_body,
};

async fn send(raw: attack::Raw) -> RawResponse {
    raw.send().await.expect("a response within the timeout")
}

/// A 2026-07-28 `tools/call` of `tool` with consistent `Mcp-Method`/`Mcp-Name`.
fn modern_call(t: &Target, target: &str, kind: TokenKind, tool: &str) -> attack::Raw {
    t.mcp_post(target, Some(kind), &modern_tool_call_body(7, tool))
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", tool)
}

fn ran(log: &[Exec], what: &str) -> bool {
    log.iter().any(|e| e.what == what)
}

/// The attack of issue 12 finding 1, on one path spelling: a `s:read`-only
/// token calls `write_tool` (declared only with `tool_scopes`), statelessly
/// and inside a legacy session opened on the same spelling.
async fn write_tool_never_runs_via(target: &str) {
    let t = Target::start(Mount::Default).await;
    let stateless = send(modern_call(&t, target, TokenKind::AliceRead, "write_tool")).await;
    let log = t.log.take();
    assert!(
        !ran(&log, "write_tool"),
        "{target} (2026-07-28): write_tool ran for a s:read token: {log:?} {}",
        stateless.summary()
    );
    assert!(
        matches!(stateless.status, 403 | 404),
        "{target} (2026-07-28): {}",
        stateless.summary()
    );
    let (session, _) = t.open_session_at(target, TokenKind::AliceRead).await;
    let legacy = match &session {
        Some(id) => {
            t.call_in_session(target, TokenKind::AliceRead, id, "write_tool")
                .await
        }
        None => {
            send(
                t.mcp_post(
                    target,
                    Some(TokenKind::AliceRead),
                    &tool_call_body(3, "write_tool"),
                )
                .header("MCP-Protocol-Version", LEGACY),
            )
            .await
        }
    };
    let log = t.log.take();
    assert!(
        !ran(&log, "write_tool"),
        "{target} (legacy session {session:?}): write_tool ran for a s:read token: {log:?} {}",
        legacy.summary()
    );
    assert!(
        matches!(legacy.status, 403 | 404),
        "{target} (legacy session {session:?}): {}",
        legacy.summary()
    );
}

// Issue 12: "Per-operation scopes ... are skipped on /mcp/": whatever the
// router sends to the MCP service is judged as MCP.
#[tokio::test]
async fn trailing_slash_route_does_not_bypass_tool_scopes() {
    write_tool_never_runs_via("/mcp/").await;
}

// Issue 12: "... and /mcp/<anything>".
#[tokio::test]
async fn subpath_route_does_not_bypass_tool_scopes() {
    write_tool_never_runs_via("/mcp/x").await;
}

// Issue 12: "Two sources of truth for the MCP path": a root resource
// (`http://h:port`) with the default `/mcp` mount keeps every per-tool rule.
#[tokio::test]
async fn root_resource_still_enforces_tool_scopes_on_mcp() {
    let t = Target::start(Mount::RootResource).await;
    let denied = send(modern_call(&t, "/mcp", TokenKind::AliceRead, "write_tool")).await;
    let allowed = send(modern_call(&t, "/mcp", TokenKind::AliceRead, "read_tool")).await;
    let log = t.log.take();
    assert!(!ran(&log, "write_tool"), "{log:?} {}", denied.summary());
    assert_eq!(denied.status, 403, "{}", denied.summary());
    assert_eq!(allowed.status, 200, "{}", allowed.summary());
    assert!(ran(&log, "read_tool"), "{log:?}");

    let (session, opened) = t.open_session(TokenKind::AliceRead).await;
    let session = session.unwrap_or_else(|| panic!("a session: {}", opened.summary()));
    let denied = t
        .call_in_session("/mcp", TokenKind::AliceRead, &session, "write_tool")
        .await;
    let log = t.log.take();
    assert!(!ran(&log, "write_tool"), "{log:?} {}", denied.summary());
    assert_eq!(denied.status, 403, "{}", denied.summary());
}

/// bob's legacy session, and alice trying it on `target` with `method`.
async fn foreign_session_is_404(method: &str) {
    for target in ["/mcp", "/mcp/"] {
        let t = Target::start(Mount::Default).await;
        let (session, opened) = t.open_session(TokenKind::Bob).await;
        let session = session.unwrap_or_else(|| panic!("bob's session: {}", opened.summary()));
        let _ = t.log.take();
        let raw = match method {
            "POST" => t
                .mcp_post(
                    target,
                    Some(TokenKind::AliceAll),
                    &tool_call_body(5, "open_tool"),
                )
                .header("MCP-Protocol-Version", LEGACY),
            _ => t
                .request(method, target)
                .header("Authorization", &t.bearer(TokenKind::AliceAll))
                .header("Accept", "text/event-stream")
                .header("MCP-Protocol-Version", LEGACY),
        }
        .header("Mcp-Session-Id", &session);
        let response = send(raw).await;
        let log = t.log.take();
        assert!(
            log.is_empty(),
            "{method} {target}: ran in bob's session for alice: {log:?}"
        );
        assert_eq!(
            response.status,
            404,
            "{method} {target}: {}",
            response.summary()
        );
        assert!(
            t.session_works(TokenKind::Bob, &session).await,
            "{method} {target}: bob can no longer use his session"
        );
    }
}

// MCP 2025-11-25 "Session Management" / security best practices: a session
// is not usable by another principal (POST into it).
#[tokio::test]
async fn foreign_session_post_is_404() {
    foreign_session_is_404("POST").await;
}

// ... nor its SSE stream opened (GET).
#[tokio::test]
async fn foreign_session_get_stream_is_404() {
    foreign_session_is_404("GET").await;
}

// ... nor ended (DELETE); the owner keeps it.
#[tokio::test]
async fn foreign_session_delete_is_404_and_keeps_the_session() {
    foreign_session_is_404("DELETE").await;
}

// RFC 9112 section 3.2: a request with more than one Host field is 400.
#[tokio::test]
async fn two_host_fields_are_400() {
    let t = Target::start(Mount::Default).await;
    let own = t.addr.to_string();
    for second in [own.as_str(), "evil.example"] {
        let response = send(
            modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool")
                .header("Host", &own)
                .header("Host", second),
        )
        .await;
        let log = t.log.take();
        assert!(log.is_empty(), "Host {own} + {second}: {log:?}");
        assert_eq!(
            response.status,
            400,
            "Host {own} + {second}: {}",
            response.summary()
        );
    }
}

/// A refusal of the layer (not rmcp's plain-text 400): JSON with `reason`.
fn assert_host_refused(response: &RawResponse, reason: &str, what: &str) {
    assert_eq!(response.status, 400, "{what}: {}", response.summary());
    let body: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|_| panic!("{what}: not the layer's JSON: {}", response.summary()));
    assert_eq!(body["error"], "invalid_request", "{what}: {body}");
    assert_eq!(body["reason"], reason, "{what}: {body}");
}

// Two `MCP-Protocol-Version` fields name two revisions: rmcp serves the
// first, while the layer read neither and judged the call as legacy,
// skipping the stateless header rules (found from outside). Refused 400
// `duplicate_protocol_version` before the token is read, on every mount,
// method and order, with or without a token; nothing runs. One field
// holding a comma-joined list is one unknown revision (rmcp's -32022 or
// -32020), as before.
#[tokio::test]
async fn two_protocol_version_fields_are_refused() {
    for mount in [Mount::Default, Mount::Custom, Mount::RootResource] {
        let t = Target::start(mount).await;
        let path = mount.path();
        for (first, second) in [(MODERN, LEGACY), (LEGACY, MODERN), (MODERN, MODERN)] {
            for token in [Some(TokenKind::AliceAll), None] {
                for method in ["POST", "GET", "DELETE"] {
                    let mut raw = if method == "POST" {
                        t.mcp_post(path, token, &modern_tool_call_body(7, "open_tool"))
                            .header("Mcp-Method", "tools/call")
                            .header("Mcp-Name", "open_tool")
                    } else {
                        t.request(method, path)
                            .header("Accept", "application/json, text/event-stream")
                    };
                    if let (Some(kind), false) = (token, method == "POST") {
                        raw = raw.header("Authorization", &t.bearer(kind));
                    }
                    let raw = raw
                        .header("MCP-Protocol-Version", first)
                        .header("MCP-Protocol-Version", second);
                    let response = send(raw).await;
                    let what = format!("{path} {method} {first}+{second} token {token:?}");
                    assert_host_refused(&response, "duplicate_protocol_version", &what);
                    assert!(t.log.take().is_empty(), "{what}");
                }
            }
        }
    }
}

// RFC 9112 section 3.2: an HTTP/1.1 request without a Host field is 400,
// with a token or without one (it was 401 without a token and rmcp's
// plain-text 400 with one).
#[tokio::test]
async fn http11_without_host_is_400() {
    let t = Target::start(Mount::Default).await;
    for (what, raw) in [
        (
            "tools/call with a token",
            modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool"),
        ),
        (
            "tools/call without a token",
            t.mcp_post("/mcp", None, &modern_tool_call_body(7, "open_tool"))
                .header("MCP-Protocol-Version", MODERN),
        ),
        ("GET", t.request("GET", "/mcp")),
    ] {
        let response = send(raw.without_host()).await;
        let log = t.log.take();
        assert!(log.is_empty(), "{what}: {log:?}");
        assert_host_refused(&response, "missing_host", what);
    }
}

// RFC 9112 section 3.2: a Host field whose value is not `uri-host [":"
// port]` is 400 (userinfo, a path, a space, two ports, an empty host);
// rmcp let `user@host` through to the tool.
#[tokio::test]
async fn invalid_host_values_are_400() {
    let t = Target::start(Mount::Default).await;
    let own = t.addr.to_string();
    for host in [
        format!("user@{own}"),
        format!("evil.example@{own}"),
        format!("{own}/x"),
        format!("{own}:1"),
        "a b".to_owned(),
        format!("{own}?"),
        "[::1".to_owned(),
        "127.0.0.1:80x".to_owned(),
        // RFC 9110 section 4.2.1: an http(s) URI never has an empty host.
        String::new(),
        format!(":{}", t.addr.port()),
        // No TCP port (found from outside: served as the resource's host).
        "127.0.0.1:99999".to_owned(),
        "127.0.0.1:4294967297".to_owned(),
    ] {
        for kind in [Some(TokenKind::AliceAll), None] {
            let raw = t
                .mcp_post("/mcp", kind, &modern_tool_call_body(7, "open_tool"))
                .header("Host", &host)
                .header("MCP-Protocol-Version", MODERN)
                .header("Mcp-Method", "tools/call")
                .header("Mcp-Name", "open_tool");
            let response = send(raw).await;
            let log = t.log.take();
            let what = format!("Host {host:?} token {}", kind.is_some());
            assert!(log.is_empty(), "{what}: {log:?}");
            assert_host_refused(&response, "invalid_host", &what);
        }
    }
    // The valid spellings still reach the tool.
    for host in [own.clone(), own.to_uppercase()] {
        let response =
            send(modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool").header("Host", &host))
                .await;
        let log = t.log.take();
        assert_eq!(response.status, 200, "Host {host}: {}", response.summary());
        assert!(ran(&log, "open_tool"), "Host {host}: {log:?}");
    }
}

// RFC 9112 section 3.2.2: with an absolute-form target the authority of the
// target is the host, not the Host field. rmcp checks the Host field only
// (its DNS-rebinding guard), so `POST http://evil.example/mcp` with this
// server's Host reached the tool; a target whose authority disagrees with
// the Host field is 400. The same target naming this server is served.
#[tokio::test]
async fn absolute_form_target_must_agree_with_host() {
    let t = Target::start(Mount::Default).await;
    let own = t.addr.to_string();
    for target in [
        "http://evil.example/mcp".to_owned(),
        format!("http://evil.example:{}/mcp", t.addr.port()),
        format!("http://user@{own}/mcp"),
    ] {
        let response = send(modern_call(&t, &target, TokenKind::AliceAll, "open_tool")).await;
        let log = t.log.take();
        assert!(log.is_empty(), "{target}: {log:?}");
        assert_host_refused(&response, "host_mismatch", &target);
    }
    // A scheme other than http or https names no HTTP resource (found from
    // outside: `POST ftp://host/mcp` was served as `/mcp`).
    for target in [
        format!("ftp://{own}/mcp"),
        format!("FTP://{own}/mcp"),
        format!("ws://{own}/mcp"),
        format!("httpx://{own}/mcp"),
    ] {
        let response = send(modern_call(&t, &target, TokenKind::AliceAll, "open_tool")).await;
        let log = t.log.take();
        assert!(log.is_empty(), "{target}: {log:?}");
        assert_host_refused(&response, "invalid_target_scheme", &target);
    }
    let target = format!("http://{own}/mcp");
    let response = send(modern_call(&t, &target, TokenKind::AliceAll, "open_tool")).await;
    let log = t.log.take();
    assert_eq!(response.status, 200, "{target}: {}", response.summary());
    assert!(ran(&log, "open_tool"), "{target}: {log:?}");
}

// RFC 9110 sections 8.4 and 15.5.16: a body is read as its Content-Encoding
// says. Neither the layer nor rmcp decodes one, so a declared coding other
// than identity is refused with 415 (and `Accept-Encoding: identity`), never
// read as if it were absent: the tool ran for a plain JSON body declared
// `gzip` or `br`, which something in front that honours the header reads
// differently (and a real gzip body got a parse error).
#[tokio::test]
async fn content_encoded_bodies_are_415() {
    let t = Target::start(Mount::Default).await;
    for coding in [
        "gzip",
        "br",
        "deflate",
        "x-unknown",
        "identity, gzip",
        "GZIP",
    ] {
        for kind in [TokenKind::AliceAll, TokenKind::AliceRead] {
            let response =
                send(modern_call(&t, "/mcp", kind, "open_tool").header("Content-Encoding", coding))
                    .await;
            let log = t.log.take();
            let what = format!("Content-Encoding {coding:?} ({kind:?})");
            assert!(log.is_empty(), "{what}: {log:?}");
            assert_eq!(response.status, 415, "{what}: {}", response.summary());
            assert_eq!(
                response.header("accept-encoding"),
                Some("identity"),
                "{what}: {}",
                response.summary()
            );
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(
                body["reason"], "unsupported_content_encoding",
                "{what}: {body}"
            );
        }
    }
    // Two fields, one of them a coding.
    let response = send(
        modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool")
            .header("Content-Encoding", "identity")
            .header("Content-Encoding", "gzip"),
    )
    .await;
    assert!(t.log.take().is_empty());
    assert_eq!(response.status, 415, "{}", response.summary());
    // `identity` (no coding) is what an uncompressed body is.
    for coding in ["identity", "Identity", "identity, identity"] {
        let response = send(
            modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool")
                .header("Content-Encoding", coding),
        )
        .await;
        let log = t.log.take();
        assert_eq!(response.status, 200, "{coding}: {}", response.summary());
        assert!(ran(&log, "open_tool"), "{coding}: {log:?}");
    }
}

/// What an app serving rmcp behind the layer is built from: a test issuer,
/// a loopback listener, the resource `http://ADDR{resource_path}` with
/// [`attack::scoped_rules`], and rmcp's service of [`attack::ScopedServer`]
/// recording what runs in `log`.
struct Scoped {
    issuer: mcp_oauth2::testing::TestIssuer,
    listener: tokio::net::TcpListener,
    addr: std::net::SocketAddr,
    resource: String,
    config: mcp_oauth2::AuthConfig,
    log: attack::ExecLog,
    rmcp_service: rmcp::transport::streamable_http_server::StreamableHttpService<
        attack::ScopedServer,
        rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
    >,
}

impl Scoped {
    async fn start(resource_path: &str) -> Self {
        use std::sync::Arc;

        use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
        use rmcp::transport::streamable_http_server::{
            StreamableHttpServerConfig, StreamableHttpService,
        };

        let issuer = mcp_oauth2::testing::TestIssuer::start()
            .await
            .expect("issuer");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let resource = format!("http://{addr}{resource_path}");
        let config = attack::scoped_rules(
            mcp_oauth2::AuthConfig::builder()
                .issuer(issuer.issuer())
                .resource(&resource)
                .allow_insecure_http_for_loopback(true),
        )
        .build()
        .expect("config");
        let log = attack::ExecLog::default();
        let factory_log = log.clone();
        let rmcp_service = StreamableHttpService::new(
            move || Ok(attack::ScopedServer::new(factory_log.clone())),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        Self {
            issuer,
            listener,
            addr,
            resource,
            config,
            log,
            rmcp_service,
        }
    }
}

/// rmcp behind `AuthLayer` in an application's own router, served by
/// `axum::serve`: nested at `mount_at` (routed at `/` exactly when that is
/// `/`), the resource `http://ADDR{resource_path}`, [`attack::scoped_rules`].
struct LayerApp {
    addr: std::net::SocketAddr,
    log: attack::ExecLog,
    /// `Authorization` for alice with every scope.
    bearer: String,
    server: tokio::task::JoinHandle<()>,
    _issuer: mcp_oauth2::testing::TestIssuer,
}

impl Drop for LayerApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LayerApp {
    async fn start(resource_path: &str, mount_at: &str) -> Self {
        let Scoped {
            issuer,
            listener,
            addr,
            resource,
            config,
            log,
            rmcp_service,
        } = Scoped::start(resource_path).await;
        let app = if mount_at == "/" {
            axum::Router::new().route_service("/", rmcp_service)
        } else {
            axum::Router::new().nest_service(mount_at, rmcp_service)
        };
        let app = app.layer(mcp_oauth2::AuthLayer::new(config).expect("layer"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let bearer = format!(
            "Bearer {}",
            issuer
                .token()
                .subject("alice")
                .audience(&resource)
                .scopes([attack::READ, attack::WRITE, attack::PRIVATE])
                .sign()
        );
        Self {
            addr,
            log,
            bearer,
            server,
            _issuer: issuer,
        }
    }
}

/// A 2026-07-28 call of `write_tool` on `addr` at `target` with `auth`.
fn write_call(addr: std::net::SocketAddr, target: &str, auth: &str) -> attack::Raw {
    attack::Raw::new(addr, "POST", target)
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "write_tool")
        .body(modern_tool_call_body(7, "write_tool"))
}

/// The transfer codings of [`transfer_coded_bodies_are_501`], on one
/// server: `write_tool` (which `auth` may call) never runs for a body sent
/// under a coding other than `chunked` alone, and runs for `chunked`.
async fn assert_transfer_codings(
    addr: std::net::SocketAddr,
    target: &str,
    auth: &str,
    log: &attack::ExecLog,
    server: &str,
) {
    let refused = [
        ("gzip, chunked", None),
        ("deflate, chunked", None),
        ("x-unknown, chunked", None),
        ("identity, chunked", None),
        ("chunked, chunked", None),
        ("CHUNKED,chunked", None),
        ("chunked", Some("gzip")),
    ];
    for (coding, earlier_field) in refused {
        let mut raw = write_call(addr, target, auth);
        if let Some(field) = earlier_field {
            raw = raw.header("Transfer-Encoding", field);
        }
        let response = send(raw.chunked_as(coding)).await;
        let ran_now = log.take();
        let what = format!("{server}: Transfer-Encoding {earlier_field:?} + {coding:?}");
        assert!(ran_now.is_empty(), "{what}: {ran_now:?}");
        assert_eq!(response.status, 501, "{what}: {}", response.summary());
        let body: serde_json::Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|_| panic!("{what}: {}", response.summary()));
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        assert_eq!(
            body["reason"], "unsupported_transfer_coding",
            "{what}: {body}"
        );
        assert_eq!(
            response.header("connection"),
            Some("close"),
            "{what}: {}",
            response.summary()
        );
        assert!(response.header("www-authenticate").is_none(), "{what}");
    }
    // A last coding other than `chunked` cannot be framed (RFC 9112 section
    // 6.3): hyper answers 400 itself, with an empty body, before any layer
    // (the docs say so; found from outside where they said 501).
    for coding in ["chunked, identity", "chunked, gzip", "gzip"] {
        let response = send(write_call(addr, target, auth).chunked_as(coding)).await;
        let ran_now = log.take();
        let what = format!("{server}: Transfer-Encoding {coding:?}");
        assert!(ran_now.is_empty(), "{what}: {ran_now:?}");
        assert_eq!(response.status, 400, "{what}: {}", response.summary());
        assert!(response.body.is_empty(), "{what}: {}", response.summary());
    }
    // `chunked` alone is HTTP/1.1's own framing, served.
    for coding in ["chunked", "Chunked"] {
        let response = send(write_call(addr, target, auth).chunked_as(coding)).await;
        let ran_now = log.take();
        assert_eq!(
            response.status,
            200,
            "{server} {coding}: {}",
            response.summary()
        );
        assert!(
            ran(&ran_now, "write_tool"),
            "{server} {coding}: {ran_now:?}"
        );
    }
}

// RFC 9112 section 6.1: a server that receives a transfer coding it does
// not implement SHOULD answer 501, and a sender MUST NOT chunk twice.
// hyper undoes the chunking and hands the rest on still coded (`gzip,
// chunked`), or decodes `chunked, chunked` once: the tool ran for a plain
// JSON body that something in front honouring the field frames or decodes
// otherwise (as `Content-Encoding` before it). Refused before the token,
// with `Connection: close` (the framing is not shared), on every route to
// rmcp: McpServer at `/mcp`, a custom path and for a root resource, and
// `AuthLayer` in an application's router, nested and at `/`.
#[tokio::test]
async fn transfer_coded_bodies_are_501() {
    for mount in [Mount::Default, Mount::RootResource, Mount::Custom] {
        let t = Target::start(mount).await;
        let auth = t.bearer(TokenKind::AliceAll);
        let server = format!("McpServer {mount:?}");
        assert_transfer_codings(t.addr, t.path(), &auth, &t.log, &server).await;
    }
    for (resource_path, mount_at) in [("/mcp", "/mcp"), ("", "/")] {
        let app = LayerApp::start(resource_path, mount_at).await;
        let server = format!("AuthLayer at {mount_at:?}");
        assert_transfer_codings(app.addr, mount_at, &app.bearer, &app.log, &server).await;
    }
}

/// A 2026-07-28 call of `write_tool` over HTTP/2 (prior knowledge) to
/// `uri` (`/path` alone sends no `:authority`) with `auth`: the status and
/// the body.
async fn h2_write_call(addr: std::net::SocketAddr, uri: &str, auth: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let body = modern_tool_call_body(7, "write_tool");
    let request = http::Request::post(uri)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "write_tool")
        .body(())
        .expect("request");
    let (response, mut stream) = client.send_request(request, false).expect("send");
    stream
        .send_data(axum::body::Bytes::from(body), true)
        .expect("data");
    let response = tokio::time::timeout(attack::HEAD_TIMEOUT, response)
        .await
        .expect("an answer within the timeout")
        .expect("response");
    let status = response.status().as_u16();
    let mut received = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(attack::HEAD_TIMEOUT, received.data())
        .await
        .expect("the body within the timeout")
    {
        let chunk = chunk.expect("chunk");
        let _ = received.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    driver.abort();
    (status, String::from_utf8_lossy(&text).into_owned())
}

/// The host cases of [`a_request_naming_no_host_is_400_on_every_protocol`]
/// on one server; the failures, described.
async fn host_failures(
    addr: std::net::SocketAddr,
    path: &str,
    auth: &str,
    log: &attack::ExecLog,
    server: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut judge = |what: String, status: u16, body: &str, reason: &str| {
        let ran_now = log.take();
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        if !ran_now.is_empty() || status != 400 || parsed["reason"] != reason {
            failures.push(format!(
                "{server}, {what}: {status} {body:.160} ran {:?} (want 400 {reason})",
                ran_now.iter().map(|e| e.what.as_str()).collect::<Vec<_>>()
            ));
        }
    };
    let (status, body) = h2_write_call(addr, path, auth).await;
    judge(
        "HTTP/2 without :authority or Host".into(),
        status,
        &body,
        "missing_host",
    );
    let uri = format!("http://alice@{addr}{path}");
    let (status, body) = h2_write_call(addr, &uri, auth).await;
    judge(
        "HTTP/2 :authority with userinfo".into(),
        status,
        &body,
        "invalid_host",
    );
    let response = send(write_call(addr, path, auth).without_host().http_1_0()).await;
    judge(
        "HTTP/1.0 without Host".into(),
        response.status,
        &response.text(),
        "missing_host",
    );
    // The controls: each protocol naming this server is served.
    let (status, body) = h2_write_call(addr, &format!("http://{addr}{path}"), auth).await;
    if status != 200 || !ran(&log.take(), "write_tool") {
        failures.push(format!("{server}, HTTP/2 control: {status} {body:.160}"));
    }
    let response = send(write_call(addr, path, auth).http_1_0()).await;
    if response.status != 200 || !ran(&log.take(), "write_tool") {
        failures.push(format!(
            "{server}, HTTP/1.0 control: {}",
            response.summary()
        ));
    }
    failures
}

// RFC 9113 section 8.3.1: an HTTP/2 request for an `http(s)` URI MUST carry
// `:authority` or `Host`, and `:authority` MUST NOT include userinfo (RFC
// 9112 section 3.2 says the same of HTTP/1.1's `Host`, already 400). The
// layer let both through (its rules looked at `Host` only), and so did it
// an HTTP/1.0 MCP request without `Host`: rmcp, after the token was
// verified, answered the first and the last with its plain-text 400 (no
// documented error), and took the userinfo form's host as allowed. Each
// is now the layer's 400 (`missing_host`, `invalid_host`), before the
// token, on every route to rmcp.
#[tokio::test]
async fn a_request_naming_no_host_is_400_on_every_protocol() {
    let mut failures = Vec::new();
    for mount in [Mount::Default, Mount::RootResource, Mount::Custom] {
        let t = Target::start(mount).await;
        let auth = t.bearer(TokenKind::AliceAll);
        let server = format!("McpServer {mount:?}");
        failures.extend(host_failures(t.addr, t.path(), &auth, &t.log, &server).await);
    }
    for (resource_path, mount_at) in [("/mcp", "/mcp"), ("", "/")] {
        let app = LayerApp::start(resource_path, mount_at).await;
        let server = format!("AuthLayer at {mount_at:?}");
        failures.extend(host_failures(app.addr, mount_at, &app.bearer, &app.log, &server).await);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// MCP streamable HTTP (DNS rebinding): McpServer serves the resource's host
// and the loopback names only. rmcp refused another `Host` with a
// plain-text 403 ("Forbidden: Host header is not allowed", no documented
// error) and only after the token was verified: without one the page got
// 401 and a challenge. The layer now refuses it first, 403
// `host_not_allowed`, with a token, a bad one or none, over HTTP/1.1 and
// HTTP/2 (`:authority`), on every mount.
#[tokio::test]
async fn a_foreign_host_is_403_before_the_token() {
    let mut failures = Vec::new();
    for mount in [Mount::Default, Mount::RootResource, Mount::Custom] {
        let t = Target::start(mount).await;
        let path = t.path();
        let port = t.addr.port();
        for host in ["evil.example".to_owned(), format!("evil.example:{port}")] {
            for kind in [Some(TokenKind::AliceAll), Some(TokenKind::Expired), None] {
                let raw = match kind {
                    Some(kind) => write_call(t.addr, path, &t.bearer(kind)),
                    None => t.mcp_post(path, None, &modern_tool_call_body(7, "write_tool")),
                };
                let response = send(raw.header("Host", &host)).await;
                let ran_now = t.log.take();
                let body: serde_json::Value =
                    serde_json::from_slice(&response.body).unwrap_or_default();
                if !ran_now.is_empty()
                    || response.status != 403
                    || body["error"] != "host_not_allowed"
                    || body["reason"] != "host_not_allowed"
                    || response.header("www-authenticate").is_some()
                {
                    failures.push(format!(
                        "{mount:?} Host {host} {kind:?}: {}",
                        response.summary()
                    ));
                }
            }
        }
        let uri = format!("http://evil.example:{port}{path}");
        let (status, body) = h2_write_call(t.addr, &uri, &t.bearer(TokenKind::AliceAll)).await;
        let ran_now = t.log.take();
        if !ran_now.is_empty() || status != 403 || !body.contains("\"host_not_allowed\"") {
            failures.push(format!(
                "{mount:?} HTTP/2 :authority {uri}: {status} {body:.160}"
            ));
        }
        // The controls: the resource's host and the loopback names, any case.
        for host in [
            t.addr.to_string(),
            format!("localhost:{port}"),
            format!("LOCALHOST:{port}"),
        ] {
            let response = send(
                write_call(t.addr, path, &t.bearer(TokenKind::AliceAll)).header("Host", &host),
            )
            .await;
            if response.status != 200 || !ran(&t.log.take(), "write_tool") {
                failures.push(format!(
                    "{mount:?} control Host {host}: {}",
                    response.summary()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `McpServer` enforces its Host allowlist in the layer only (rmcp's own
/// copy is off: it parsed every allowed entry on every call). So the layer
/// must refuse a foreign Host on every route the router sends to rmcp:
/// every path spelling and method, with a good token. Each request is sent
/// twice, with the resource's Host (the control) and with a foreign one;
/// whatever the control's answer, the foreign one is 403
/// `host_not_allowed`, or the router's own 404 (no body) when the control
/// got a 404 too (the path reaches no service).
#[tokio::test]
async fn a_foreign_host_never_reaches_rmcp_on_any_route() {
    let mut failures = Vec::new();
    let mut reached = 0;
    for mount in [Mount::Default, Mount::RootResource, Mount::Custom] {
        let t = Target::start(mount).await;
        let path = t.path();
        let port = t.addr.port();
        let auth = t.bearer(TokenKind::AliceAll);
        let targets = [
            path.to_owned(),
            format!("{path}/"),
            format!("{path}/x"),
            format!("{path}?x=1"),
            format!("{path}%2F"),
            format!("{path};x"),
            format!("{path}/.."),
            path.to_uppercase(),
            "/".to_owned(),
            "/other".to_owned(),
        ];
        for target in &targets {
            let requests = |host: &str| {
                [
                    write_call(t.addr, target, &auth),
                    t.request("GET", target)
                        .header("Authorization", &auth)
                        .header("Accept", "text/event-stream"),
                    t.request("DELETE", target)
                        .header("Authorization", &auth)
                        .header("Mcp-Session-Id", "abc"),
                    t.request("PUT", target).header("Authorization", &auth),
                ]
                .map(|raw| raw.header("Host", host))
            };
            let controls = requests(&t.addr.to_string());
            let foreign = requests(&format!("evil.example:{port}"));
            for (control, foreign) in controls.into_iter().zip(foreign) {
                let what = format!("{mount:?} {} {target}", control.method);
                let control = send(control).await;
                t.log.take();
                let answer = send(foreign).await;
                let ran_now = t.log.take();
                let body: serde_json::Value =
                    serde_json::from_slice(&answer.body).unwrap_or_default();
                let refused = answer.status == 403 && body["error"] == "host_not_allowed";
                // The router's own 404 has no body (a session's 404 has one).
                let unrouted =
                    control.status == 404 && answer.status == 404 && answer.body.is_empty();
                if control.status != 404 {
                    reached += 1;
                }
                if !ran_now.is_empty() || !(refused || unrouted) {
                    failures.push(format!(
                        "{what}: control {} / foreign Host {}",
                        control.status,
                        answer.summary()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The controls reached the service (POST, GET and PUT on each mount's
    // path, with and without a query; not only 404s).
    assert!(reached >= 12, "only {reached} controls were routed");
}

// MCP 2026-07-28 "Transports", security warning: Origin MUST be validated;
// present and not allowed is 403.
#[tokio::test]
async fn foreign_origin_is_403() {
    let t = Target::start(Mount::Default).await;
    let response = send(
        modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool")
            .header("Origin", "https://evil.example"),
    )
    .await;
    let log = t.log.take();
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(response.status, 403, "{}", response.summary());
}

// The default allowed origin is the resource's own.
#[tokio::test]
async fn own_origin_is_allowed() {
    let t = Target::start(Mount::Default).await;
    let response = send(
        modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool").header("Origin", &t.origin()),
    )
    .await;
    let log = t.log.take();
    assert_eq!(response.status, 200, "{}", response.summary());
    assert!(ran(&log, "open_tool"), "{log:?}");
}

// Issue 12 item 1: OPTIONS passes unauthenticated only as a CORS preflight,
// answered by the layer, with the challenge readable by browser clients.
#[tokio::test]
async fn cors_preflight_is_answered_by_the_layer() {
    let t = Target::start(Mount::Default).await;
    let response = send(
        t.request("OPTIONS", "/mcp")
            .header("Origin", &t.origin())
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, mcp-protocol-version",
            )
            // A JSON-RPC body the inner service must never see.
            .header("Content-Type", "application/json")
            .body(modern_tool_call_body(1, "open_tool")),
    )
    .await;
    let log = t.log.take();
    assert!(log.is_empty(), "{log:?}");
    assert!(
        matches!(response.status, 200 | 204),
        "not answered by the layer (rmcp answers 405): {}",
        response.summary()
    );
    assert!(
        response.header("allow").is_none(),
        "rmcp's 405 Allow header: {}",
        response.summary()
    );
    assert!(
        response.lists("access-control-expose-headers", "www-authenticate"),
        "{}",
        response.summary()
    );
    assert!(
        response.header("access-control-allow-methods").is_some()
            || response.header("access-control-allow-origin").is_some(),
        "{}",
        response.summary()
    );
}

// An OPTIONS that is not a preflight is an ordinary request: no token, 401.
#[tokio::test]
async fn plain_options_without_token_is_401() {
    let t = Target::start(Mount::Default).await;
    let response = send(t.request("OPTIONS", "/mcp")).await;
    let log = t.log.take();
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(response.status, 401, "{}", response.summary());
    assert!(
        response
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer") && c.contains("resource_metadata")),
        "{}",
        response.summary()
    );
}

/// Asserts a 400 whose body is JSON (`application/json`) and returns it.
fn jsonrpc_400(response: &RawResponse, case: &str) -> serde_json::Value {
    assert_eq!(response.status, 400, "{case}: {}", response.summary());
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{case}"
    );
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{case}: {e}: {}", response.summary()))
}

/// Asserts a JSON-RPC refusal's `data.reason` and that its
/// `data.request_id` is the answer's `X-Request-Id` (present), as every
/// refusal of the layer carries them.
#[track_caller]
fn assert_reason_and_request_id(
    answer: &serde_json::Value,
    response: &RawResponse,
    reason: &str,
    case: &str,
) {
    assert_eq!(
        answer["error"]["data"]["reason"], reason,
        "{case}: {answer}"
    );
    assert!(response.header("x-request-id").is_some(), "{case}");
    assert_eq!(
        answer["error"]["data"]["request_id"].as_str(),
        response.header("x-request-id"),
        "{case}: {answer}"
    );
}

/// Asserts the MCP 2026-07-28 HeaderMismatch answer: 400, a JSON-RPC error
/// -32020 with the request's id, no OAuth `invalid_request` challenge.
#[track_caller]
fn assert_header_mismatch(response: &RawResponse, case: &str) {
    assert_eq!(response.status, 400, "{case}: {}", response.summary());
    assert!(
        response
            .headers_named("www-authenticate")
            .iter()
            .all(|c| !c.contains("invalid_request")),
        "{case}: an OAuth-style answer: {}",
        response.summary()
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {}", response.summary()));
    assert_eq!(body["jsonrpc"], "2.0", "{case}: {body}");
    assert_eq!(body["id"], 7, "{case}: {body}");
    assert_eq!(body["error"]["code"], -32020, "{case}: {body}");
}

// rmcp checks `Mcp-Name` only for the methods that name something
// (`tools/call`, `prompts/get` by `params.name`; `resources/read`,
// `resources/subscribe`, `resources/unsubscribe` by `params.uri`; the task
// methods by `params.taskId`) and ignores it on the others. The layer, which
// reads the body whenever per-operation rules exist, refused it there with
// -32020 (found from outside: a client mirroring `params.uri` on
// `resources/directory/read`, `skills/get` and `subscriptions/listen`, and any
// `Mcp-Name` on a list). Ignored now, on every mount; a lying `Mcp-Name` on a
// method that names something is still -32020, and nothing the header says
// is a rule.
#[tokio::test]
async fn a_modern_mcp_name_on_a_method_that_names_nothing_is_ignored() {
    for mount in [Mount::Default, Mount::Custom] {
        let t = Target::start(mount).await;
        let path = mount.path();
        let list = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{{{meta}}}}}"#,
            meta = attack::MODERN_META
        );
        for name in ["read_tool", "notes://shared", "=?base64?not base64?="] {
            let response = send(
                t.mcp_post(path, Some(TokenKind::AliceAll), &list)
                    .header("MCP-Protocol-Version", MODERN)
                    .header("Mcp-Method", "tools/list")
                    .header("Mcp-Name", name),
            )
            .await;
            let case = format!("{path} tools/list Mcp-Name {name}");
            assert_eq!(response.status, 200, "{case}: {}", response.summary());
            assert!(
                String::from_utf8_lossy(&response.body).contains("read_tool"),
                "{case}: {}",
                response.summary()
            );
        }
        // Two values are still one too many.
        let response = send(
            t.mcp_post(path, Some(TokenKind::AliceAll), &list)
                .header("MCP-Protocol-Version", MODERN)
                .header("Mcp-Method", "tools/list")
                .header("Mcp-Name", "a")
                .header("Mcp-Name", "b"),
        )
        .await;
        assert_header_mismatch(&response, "two Mcp-Name on tools/list");
        // A list runs no tool. A method that names something still has its
        // name checked (`modern_header_mismatch_is_400_with_jsonrpc_error_32020`).
        assert!(t.log.take().is_empty());
    }
}

// MCP 2026-07-28 "Transports": a header/body mismatch MUST be 400 with the
// JSON-RPC error -32020 (HeaderMismatch), never an OAuth-style body.
#[tokio::test]
async fn modern_header_mismatch_is_400_with_jsonrpc_error_32020() {
    let t = Target::start(Mount::Default).await;
    // Mcp-Name names the allowed tool, the body calls the forbidden one.
    let lying_name = send(
        t.mcp_post(
            "/mcp",
            Some(TokenKind::AliceRead),
            &modern_tool_call_body(7, "write_tool"),
        )
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "read_tool"),
    )
    .await;
    // Mcp-Method names a list, the body calls a tool.
    let lying_method = send(
        t.mcp_post(
            "/mcp",
            Some(TokenKind::AliceAll),
            &modern_tool_call_body(7, "open_tool"),
        )
        .header("MCP-Protocol-Version", MODERN)
        .header("Mcp-Method", "tools/list"),
    )
    .await;
    let log = t.log.take();
    assert!(log.is_empty(), "{log:?}");
    assert_header_mismatch(&lying_name, "Mcp-Name read_tool, body write_tool");
    assert_header_mismatch(&lying_method, "Mcp-Method tools/list, body tools/call");
}

// A missing required header is a header mismatch too (-32020): `Mcp-Method`
// on every stateless call, `Mcp-Name` on every method whose name it mirrors.
// The layer required `Mcp-Name` for tools/call, resources/read and
// prompts/get only, and left the others to rmcp, which requires it for
// resources/subscribe, resources/unsubscribe and the task methods too
// (found from outside: a `tasks/get` without it got rmcp's own text, no
// `data.reason`, where the three got the layer's answer). Every one now
// gets the layer's answer, naming what is missing; nothing runs.
#[tokio::test]
async fn a_missing_mcp_name_is_refused_alike_for_every_method_that_names_something() {
    for mount in [Mount::Default, Mount::Custom] {
        let t = Target::start(mount).await;
        let path = mount.path();
        let meta = attack::MODERN_META;
        let cases = [
            ("tools/call", r#""name":"read_tool","arguments":{}"#),
            ("prompts/get", r#""name":"some_prompt""#),
            ("resources/read", r#""uri":"notes://shared""#),
            ("resources/subscribe", r#""uri":"notes://shared""#),
            ("resources/unsubscribe", r#""uri":"notes://shared""#),
            ("tasks/get", r#""taskId":"t-1""#),
            ("tasks/update", r#""taskId":"t-1""#),
            ("tasks/cancel", r#""taskId":"t-1""#),
        ];
        for (method, params) in cases {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{{{params},{meta}}}}}"#
            );
            // Without `Mcp-Name`, then without `Mcp-Method` (and with the name).
            for (with_method, with_name) in [(true, false), (false, true)] {
                let mut raw = t
                    .mcp_post(path, Some(TokenKind::AliceAll), &body)
                    .header("MCP-Protocol-Version", MODERN);
                if with_method {
                    raw = raw.header("Mcp-Method", method);
                }
                if with_name {
                    raw = raw.header("Mcp-Name", "read_tool");
                }
                let response = send(raw).await;
                let case = format!("{path} {method} Mcp-Method {with_method} Mcp-Name {with_name}");
                // A name given for the wrong value (the prompt's, the URI's,
                // the task's) would be a mismatch of its own; without
                // `Mcp-Method` the missing header is what is said.
                assert_header_mismatch(&response, &case);
                let answer = jsonrpc_400(&response, &case);
                assert_reason_and_request_id(&answer, &response, "mcp_header_mismatch", &case);
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                if with_method {
                    assert!(
                        message.contains("is missing") && message.contains(method),
                        "{case}: {answer}"
                    );
                }
            }
        }
        // With both headers right, the request passes the layer (whatever
        // the service then answers of a task it does not have).
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tasks/get","params":{{"taskId":"t-1",{meta}}}}}"#
        );
        let response = send(
            t.mcp_post(path, Some(TokenKind::AliceAll), &body)
                .header("MCP-Protocol-Version", MODERN)
                .header("Mcp-Method", "tasks/get")
                .header("Mcp-Name", "t-1"),
        )
        .await;
        assert!(
            !String::from_utf8_lossy(&response.body).contains("mcp_header_mismatch"),
            "{path}: {}",
            response.summary()
        );
        assert!(t.log.take().is_empty());
    }
}

// SPEC-NOTES "Protocol revisions": `Mcp-Method` / `Mcp-Name` are trusted
// and checked only in a revision that defines them; an older one is judged
// by its body alone (found from outside in round 2: a legacy session's
// truthful call carrying a stray `Mcp-Name` was refused with -32020, an
// error of 2026-07-28). Both ways: a header naming the allowed tool never
// lets the body's forbidden one run, and a header naming the forbidden tool
// never refuses the body's allowed one. Mounts: default and custom path.
#[tokio::test]
async fn older_revisions_are_judged_by_their_body_whatever_the_mcp_headers_say() {
    for mount in [Mount::Default, Mount::Custom] {
        let t = Target::start(mount).await;
        let path = mount.path();
        let (session, opened) = t.open_session_at(path, TokenKind::AliceRead).await;
        let session = session.unwrap_or_else(|| panic!("a session: {}", opened.summary()));
        let _ = t.log.take();
        let stray: [&[(&str, &str)]; 4] = [
            &[("Mcp-Method", "tools/call"), ("Mcp-Name", "write_tool")],
            &[("Mcp-Method", "tools/list")],
            &[("Mcp-Name", "=?base64?not base64?=")],
            &[("Mcp-Name", "read_tool"), ("Mcp-Name", "write_tool")],
        ];
        for version in [Some(LEGACY), Some("2025-06-18"), None] {
            for headers in stray {
                for (tool, allowed) in [("read_tool", true), ("write_tool", false)] {
                    let mut raw = t
                        .mcp_post(path, Some(TokenKind::AliceRead), &tool_call_body(9, tool))
                        .header("Mcp-Session-Id", &session);
                    if let Some(version) = version {
                        raw = raw.header("MCP-Protocol-Version", version);
                    }
                    for (name, value) in headers {
                        raw = raw.header(name, value);
                    }
                    let response = send(raw).await;
                    let log = t.log.take();
                    let case = format!("{path} {version:?} {headers:?} {tool}");
                    assert!(
                        !String::from_utf8_lossy(&response.body).contains("mcp_header_mismatch"),
                        "{case}: {}",
                        response.summary()
                    );
                    if allowed {
                        assert_eq!(response.status, 200, "{case}: {}", response.summary());
                        assert!(ran(&log, "read_tool"), "{case}: {log:?}");
                    } else {
                        assert_eq!(response.status, 403, "{case}: {}", response.summary());
                        assert!(log.is_empty(), "{case}: {log:?}");
                    }
                }
            }
        }
    }
}

// rmcp answers a JSON body that is not one JSON-RPC message it reads (a
// batch, which MCP removed in 2025-06-18; a message of no known shape) with
// a plain-text 415, although the media type is right (found from outside
// in round 2). Behind `McpServer` it is the JSON-RPC error -32600 (Invalid
// Request) with a null id, HTTP 400; nothing in it runs. A body of another
// media type keeps rmcp's 415, as the crate's JSON refusal.
#[tokio::test]
async fn a_batch_or_a_message_rmcp_cannot_read_is_a_jsonrpc_error() {
    let t = Target::start(Mount::Default).await;
    let (session, opened) = t.open_session(TokenKind::AliceAll).await;
    let session = session.unwrap_or_else(|| panic!("a session: {}", opened.summary()));
    let _ = t.log.take();
    let call = tool_call_body(5, "open_tool");
    let bodies = [
        "[]".to_owned(),
        format!("[{call}]"),
        format!("[{call},{}]", tool_call_body(6, "read_tool")),
        r#"{"jsonrpc":"2.0","id":1}"#.to_owned(),
        // An id rmcp does not take (found from outside: the message spoke
        // of batches only).
        r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":true,"method":"tools/list"}"#.to_owned(),
    ];
    for body in &bodies {
        for in_session in [true, false] {
            let mut raw = t
                .mcp_post("/mcp", Some(TokenKind::AliceAll), body)
                .header("MCP-Protocol-Version", LEGACY);
            if in_session {
                raw = raw.header("Mcp-Session-Id", &session);
            }
            let response = send(raw).await;
            let log = t.log.take();
            let case = format!("{body} (in a session: {in_session})");
            assert!(log.is_empty(), "{case}: {log:?}");
            let answer = jsonrpc_400(&response, &case);
            assert_eq!(answer["error"]["code"], -32600, "{case}: {answer}");
            assert_eq!(answer["id"], serde_json::Value::Null, "{case}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("batch") && message.contains("an id that is neither"),
                "{case}: {answer}"
            );
            // A reason and the request id, as in the layer's JSON-RPC
            // refusals (found from outside: neither was there).
            assert_reason_and_request_id(&answer, &response, "invalid_message", &case);
        }
    }
    // A batch naming one id twice is told so, not that its id is in use
    // (found from outside); nothing of it runs.
    for body in [
        format!("[{call},{call}]"),
        format!(
            "[{call},{}]",
            tool_call_body(5, "read_tool").replace("\"id\":5", "\"id\":5.0")
        ),
    ] {
        let raw = t
            .mcp_post("/mcp", Some(TokenKind::AliceAll), &body)
            .header("MCP-Protocol-Version", LEGACY)
            .header("Mcp-Session-Id", &session)
            .header("X-Request-Id", "batch-7");
        let response = send(raw).await;
        assert!(t.log.take().is_empty(), "{body}");
        let answer = jsonrpc_400(&response, &body);
        assert_eq!(answer["error"]["code"], -32600, "{answer}");
        assert_eq!(
            answer["error"]["data"]["reason"], "request_id_repeated",
            "{answer}"
        );
        assert_eq!(answer["error"]["data"]["request_id"], "batch-7", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("same id")),
            "{answer}"
        );
    }
    // Another media type: rmcp's 415, as the crate's JSON refusal (found
    // from outside: plain text, no code, no request id).
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = send(
            t.request("POST", "/mcp")
                .header("Authorization", &t.bearer(TokenKind::AliceAll))
                .header("Accept", "application/json, text/event-stream")
                .header("Content-Type", content_type)
                .header("MCP-Protocol-Version", LEGACY)
                .header("Mcp-Session-Id", &session)
                .body(call.as_bytes()),
        )
        .await;
        assert_eq!(response.status, 415, "{}", response.summary());
        assert_eq!(response.header("content-type"), Some("application/json"));
        let answer: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(answer["error"], "invalid_request", "{answer}");
        assert_eq!(answer["reason"], "unsupported_media_type", "{answer}");
        assert_eq!(
            answer["request_id"].as_str(),
            response.header("x-request-id"),
            "{answer}"
        );
        assert!(t.log.take().is_empty());
    }
}

// JSON-RPC 2.0 section 5.1: a body that is no JSON is a parse error
// (-32700), JSON that is no message an invalid request (-32600); found from
// outside: an empty body, plain text or a byte order mark got -32600. And
// rmcp's own refusal of a message it does not take (a response sent to a
// stateless server) had no `id`, which JSON-RPC requires: it gets `null`,
// a reason and the request id. A 2026-07-28 array is a batch whatever it
// holds (-32020, as every other batch). Nothing runs.
#[tokio::test]
async fn every_unreadable_body_gets_the_jsonrpc_code_that_fits_it() {
    let t = Target::start(Mount::Default).await;
    for (body, code) in [
        ("", -32700),
        ("   ", -32700),
        ("hello", -32700),
        ("tru", -32700),
        ("1 2", -32700),
        ("\u{feff}{}", -32700),
        ("\"tools/call\"", -32600),
        ("true", -32600),
        ("42", -32600),
    ] {
        for modern in [true, false] {
            let mut raw = t.mcp_post("/mcp", Some(TokenKind::AliceAll), body);
            raw = if modern {
                raw.header("MCP-Protocol-Version", MODERN)
                    .header("Mcp-Method", "tools/call")
                    .header("Mcp-Name", "open_tool")
            } else {
                raw.header("MCP-Protocol-Version", LEGACY)
            };
            let response = send(raw).await;
            let case = format!("{body:?} (2026-07-28: {modern})");
            assert!(t.log.take().is_empty(), "{case}");
            let answer = jsonrpc_400(&response, &case);
            assert_eq!(answer["error"]["code"], code, "{case}: {answer}");
            assert_eq!(answer["id"], serde_json::Value::Null, "{case}: {answer}");
            assert_eq!(
                answer["error"]["data"]["reason"], "body_unreadable",
                "{case}: {answer}"
            );
        }
    }
    // UTF-16 without a byte-order mark (ASCII text with a NUL in every
    // other byte, little- or big-endian): told it is not UTF-8, as with
    // the mark (found from outside: a syntax error); nothing runs.
    let call = tool_call_body(3, "open_tool");
    let little: String = call.chars().flat_map(|c| [c, '\0']).collect();
    let big: String = call.chars().flat_map(|c| ['\0', c]).collect();
    for (name, body) in [("UTF-16LE", little), ("UTF-16BE", big)] {
        for version in [MODERN, LEGACY] {
            let response = send(
                t.mcp_post("/mcp", Some(TokenKind::AliceAll), &body)
                    .header("MCP-Protocol-Version", version),
            )
            .await;
            let case = format!("{name} {version}");
            assert!(t.log.take().is_empty(), "{case}");
            let answer = jsonrpc_400(&response, &case);
            assert_eq!(answer["error"]["code"], -32700, "{case}: {answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not UTF-8") && m.contains("UTF-16")),
                "{case}: {answer}"
            );
        }
    }
    // A response sent to the stateless server: rmcp's refusal, completed.
    let response = send(
        t.mcp_post(
            "/mcp",
            Some(TokenKind::AliceAll),
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        )
        .header("MCP-Protocol-Version", MODERN)
        .header("X-Request-Id", "resp-1"),
    )
    .await;
    assert!(t.log.take().is_empty());
    let answer = jsonrpc_400(&response, "a response");
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert!(
        answer.as_object().is_some_and(|a| a.contains_key("id")) && answer["id"].is_null(),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["data"]["reason"], "invalid_message",
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["request_id"], "resp-1", "{answer}");
    assert_eq!(response.header("cache-control"), Some("no-store"));
    // Arrays on 2026-07-28: of responses, of one call.
    for body in [
        r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#.to_owned(),
        format!("[{}]", modern_tool_call_body(3, "open_tool")),
    ] {
        let response = send(
            t.mcp_post("/mcp", Some(TokenKind::AliceAll), &body)
                .header("MCP-Protocol-Version", MODERN)
                .header("Mcp-Method", "tools/call")
                .header("Mcp-Name", "open_tool"),
        )
        .await;
        assert!(t.log.take().is_empty(), "{body}");
        let answer = jsonrpc_400(&response, &body);
        assert_eq!(answer["error"]["code"], -32020, "{body}: {answer}");
    }
}

// MCP 2026-07-28 "Transports": an unknown protocol version is 400 with the
// JSON-RPC UnsupportedProtocolVersionError (-32022) naming the versions the
// server knows, which a client reads to pick one. rmcp answered a body
// without its own `_meta` version with plain text; a body with one gets
// rmcp's JSON-RPC answer; a value that needs escaping is escaped.
#[tokio::test]
async fn an_unknown_protocol_version_is_a_jsonrpc_error() {
    let t = Target::start(Mount::Default).await;
    let legacy_body = tool_call_body(7, "open_tool");
    let modern_body = modern_tool_call_body(7, "open_tool").replace(
        r#"protocolVersion":"2026-07-28""#,
        r#"protocolVersion":"2027-01-01""#,
    );
    // The headers of the revision a client speaks may not be this one's:
    // missing or naming another target, the version is what is wrong
    // (found from outside: a later revision without `Mcp-Method` got
    // -32020, which tells a client nothing it can fall back on).
    let headers: [&[(&str, &str)]; 5] = [
        &[("Mcp-Method", "tools/call"), ("Mcp-Name", "open_tool")],
        &[],
        &[("Mcp-Method", "tools/call")],
        &[("Mcp-Method", "tools/list"), ("Mcp-Name", "read_tool")],
        &[("Mcp-Method", "tools/call"), ("Mcp-Name", "read_tool")],
    ];
    for (version, body, id) in [
        // The request's id, read by the layer where rmcp's plain text
        // had none (found from outside: `null`).
        ("2027-01-01", legacy_body.as_str(), serde_json::json!(7)),
        ("2027-01-01", modern_body.as_str(), serde_json::json!(7)),
        (r#"2027"\x"#, legacy_body.as_str(), serde_json::json!(7)),
    ] {
        for headers in headers {
            let mut raw = t
                .mcp_post("/mcp", Some(TokenKind::AliceAll), body)
                .header("MCP-Protocol-Version", version);
            for (name, value) in headers {
                raw = raw.header(name, value);
            }
            let response = send(raw).await;
            let case = format!("{version} {headers:?} {body}");
            let answer = jsonrpc_400(&response, &case);
            // rmcp checks a body that names its revision in `_meta` for
            // the headers first: its -32020, with the reason the layer's
            // has (the version without them is refused the same).
            let truthful = headers.len() == 2 && headers[1] == ("Mcp-Name", "open_tool");
            if body == modern_body && !truthful {
                assert_eq!(answer["error"]["code"], -32020, "{case}: {answer}");
                assert_eq!(
                    answer["error"]["data"]["reason"], "mcp_header_mismatch",
                    "{case}: {answer}"
                );
                continue;
            }
            assert_eq!(answer["error"]["code"], -32022, "{case}: {answer}");
            assert_eq!(answer["id"], id, "{case}: {answer}");
            assert_eq!(answer["error"]["data"]["requested"], version, "{case}");
            assert_reason_and_request_id(&answer, &response, "unsupported_protocol_version", &case);
            assert_eq!(response.header("cache-control"), Some("no-store"), "{case}");
            let supported = answer["error"]["data"]["supported"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                supported.contains(&serde_json::json!("2026-07-28")),
                "{case}: {answer}"
            );
            assert!(
                supported.contains(&serde_json::json!("2025-11-25")),
                "{case}: {answer}"
            );
        }
    }
    // A value past ASCII (found from outside: rmcp's plain text): the same
    // error, naming no requested version.
    let response = send(
        t.mcp_post("/mcp", Some(TokenKind::AliceAll), &legacy_body)
            .header("MCP-Protocol-Version", "2026-07-28\u{e9}"),
    )
    .await;
    let answer = jsonrpc_400(&response, "non-ASCII version");
    assert_eq!(answer["error"]["code"], -32022, "{answer}");
    assert_eq!(answer["id"], 7, "{answer}");
    assert!(
        answer["error"]["data"].get("requested").is_none(),
        "{answer}"
    );
    // A string id comes back as it was sent, escapes and all; a batch
    // (refused as such: -32600) names no one id.
    for (body, id, code) in [
        (
            legacy_body.replace(r#""id":7"#, r#""id":"a\"b\u00e9""#),
            serde_json::json!("a\"b\u{e9}"),
            -32022,
        ),
        (format!("[{legacy_body}]"), serde_json::Value::Null, -32600),
    ] {
        let response = send(
            t.mcp_post("/mcp", Some(TokenKind::AliceAll), &body)
                .header("MCP-Protocol-Version", "2027-01-01"),
        )
        .await;
        let answer = jsonrpc_400(&response, &body);
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert_eq!(answer["id"], id, "{body}: {answer}");
    }
    // A long value (found from outside: past 4 KiB, an empty 400): the
    // same error, the value not repeated back.
    for length in [100, 4_100, 12_000] {
        let version = format!("2027-{}", "1".repeat(length));
        let response = send(
            t.mcp_post("/mcp", Some(TokenKind::AliceAll), &legacy_body)
                .header("MCP-Protocol-Version", &version),
        )
        .await;
        let answer = jsonrpc_400(&response, &format!("{length}-byte version"));
        assert_eq!(answer["error"]["code"], -32022, "{length}: {answer}");
        assert_eq!(answer["id"], 7, "{length}: {answer}");
        assert!(
            answer["error"]["data"].get("requested").is_none(),
            "{length}"
        );
        assert!(
            response.body.len() < 1024,
            "{length}: {}",
            response.body.len()
        );
    }
    // A number comes back as it was written (found from outside: `1e2`
    // came back `100.0`, where the layer's own refusals echo `1e2`).
    for (written, version) in [
        ("1e2", "2027-01-01"),
        ("-0", "2027-01-01"),
        ("1.0", "2027-01-01"),
    ] {
        let body = legacy_body.replace(r#""id":7"#, &format!(r#""id":{written}"#));
        let response = send(
            t.mcp_post("/mcp", Some(TokenKind::AliceAll), &body)
                .header("MCP-Protocol-Version", version),
        )
        .await;
        let text = String::from_utf8_lossy(&response.body);
        assert!(
            text.contains(&format!(r#""id":{written},"#)),
            "{written}: {text}"
        );
    }
    assert!(
        answer["error"]["data"]["supported"]
            .as_array()
            .is_some_and(|s| s.contains(&serde_json::json!("2026-07-28"))),
        "{answer}"
    );
    assert!(t.log.take().is_empty(), "nothing ran");
}

// rmcp's own JSON-RPC refusals of a 2026-07-28 request's protocol
// metadata (a version header that disagrees with `_meta` or is missing,
// `_meta` fields missing): the code and the request's `id` rmcp gives,
// with a reason, the request id and the error headers as every refusal of
// the layer (found from outside: they had none). Nothing runs; on a
// custom mount path too.
#[tokio::test]
async fn rmcps_refusals_of_protocol_metadata_carry_reason_and_request_id() {
    for mount in [Mount::Default, Mount::Custom] {
        let t = Target::start(mount).await;
        let path = mount.path();
        let modern = modern_tool_call_body(7, "open_tool");
        let legacy_meta = modern.replace(
            r#"protocolVersion":"2026-07-28""#,
            r#"protocolVersion":"2025-11-25""#,
        );
        let no_meta = tool_call_body(7, "open_tool");
        let no_capabilities =
            modern.replace(r#","io.modelcontextprotocol/clientCapabilities":{}"#, "");
        let string_id = modern.replace(r#""id":7"#, r#""id":"seven""#);
        let cases: [(Option<&str>, &str, i64, &str, serde_json::Value); 6] = [
            (
                Some(LEGACY),
                &modern,
                -32020,
                "mcp_header_mismatch",
                7.into(),
            ),
            (None, &modern, -32020, "mcp_header_mismatch", 7.into()),
            (
                Some(MODERN),
                &legacy_meta,
                -32020,
                "mcp_header_mismatch",
                7.into(),
            ),
            (Some(MODERN), &no_meta, -32602, "invalid_message", 7.into()),
            (
                Some(MODERN),
                &no_capabilities,
                -32602,
                "invalid_message",
                7.into(),
            ),
            (
                None,
                &string_id,
                -32020,
                "mcp_header_mismatch",
                "seven".into(),
            ),
        ];
        assert_ne!(no_capabilities, modern);
        for (version, body, code, reason, id) in cases {
            let mut raw = t
                .mcp_post(path, Some(TokenKind::AliceAll), body)
                .header("Mcp-Method", "tools/call")
                .header("Mcp-Name", "open_tool");
            if let Some(version) = version {
                raw = raw.header("MCP-Protocol-Version", version);
            }
            let response = send(raw).await;
            let case = format!("{path} {version:?} {body}");
            let answer = jsonrpc_400(&response, &case);
            assert_eq!(answer["error"]["code"], code, "{case}: {answer}");
            assert_eq!(answer["id"], id, "{case}: {answer}");
            assert_reason_and_request_id(&answer, &response, reason, &case);
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{case}: {answer}"
            );
            assert_eq!(response.header("cache-control"), Some("no-store"), "{case}");
            assert_eq!(
                response.header("x-content-type-options"),
                Some("nosniff"),
                "{case}"
            );
            let log = t.log.take();
            assert!(log.is_empty(), "{case}: {log:?}");
        }
        // The served call beside them is untouched.
        let served = send(modern_call(&t, path, TokenKind::AliceAll, "open_tool")).await;
        assert_eq!(served.status, 200, "{}", served.summary());
        assert!(ran(&t.log.take(), "open_tool"));
    }
}

// A legacy (2025-11-25) request without its session id, other than
// `initialize`: 400, and the answer is a JSON-RPC error a client reads
// (rmcp's was plain text, the one refusal not in JSON), for a call, a GET
// stream and a DELETE, on every path spelling the router sends to the
// service; nothing runs.
#[tokio::test]
async fn a_legacy_request_without_its_session_is_a_jsonrpc_error() {
    let t = Target::start(Mount::Default).await;
    for target in ["/mcp", "/mcp/"] {
        let call = t
            .mcp_post(
                target,
                Some(TokenKind::AliceAll),
                &tool_call_body(4, "open_tool"),
            )
            .header("MCP-Protocol-Version", LEGACY);
        let stream = t
            .request("GET", target)
            .header("Accept", "text/event-stream")
            .header("Authorization", &t.bearer(TokenKind::AliceAll))
            .header("MCP-Protocol-Version", LEGACY);
        let delete = t
            .request("DELETE", target)
            .header("Authorization", &t.bearer(TokenKind::AliceAll))
            .header("MCP-Protocol-Version", LEGACY);
        for (what, raw) in [("call", call), ("GET", stream), ("DELETE", delete)] {
            let response = send(raw).await;
            let case = format!("{what} {target}");
            if response.status == 404 && target != "/mcp" {
                // A path spelling the router does not send to the service.
                continue;
            }
            let answer = jsonrpc_400(&response, &case);
            assert_eq!(answer["jsonrpc"], "2.0", "{case}: {answer}");
            // The call's id (found from outside: `null`); a GET or a
            // DELETE has none.
            let id = if what == "call" {
                serde_json::json!(4)
            } else {
                serde_json::Value::Null
            };
            assert_eq!(answer["id"], id, "{case}: {answer}");
            assert_eq!(answer["error"]["code"], -32600, "{case}: {answer}");
            assert_eq!(
                answer["error"]["data"]["reason"], "session_required",
                "{case}: {answer}"
            );
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Mcp-Session-Id")),
                "{case}: {answer}"
            );
        }
    }
    assert!(t.log.take().is_empty(), "nothing ran");
}

// MCP 2026-07-28 "Transports": a server SHOULD ignore Mcp-Session-Id on a
// 2026-07-28 request (someone else's or garbage): served, not 404.
#[tokio::test]
async fn modern_request_ignores_session_ids() {
    let t = Target::start(Mount::Default).await;
    let (bobs, opened) = t.open_session(TokenKind::Bob).await;
    let bobs = bobs.unwrap_or_else(|| panic!("bob's session: {}", opened.summary()));
    let _ = t.log.take();
    for session in [bobs.as_str(), "garbage-session-id"] {
        let response = send(
            modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool")
                .header("Mcp-Session-Id", session),
        )
        .await;
        let log = t.log.take();
        assert_eq!(
            response.status,
            200,
            "session {session}: {}",
            response.summary()
        );
        assert!(
            log.iter().any(|e| e.what == "open_tool"
                && e.subject.as_deref() == Some("alice")
                && e.creator.is_none()),
            "session {session}: {log:?}"
        );
    }
    assert!(t.session_works(TokenKind::Bob, &bobs).await);
}

// MCP 2026-07-28: a stateless request's session fields (`Mcp-Session-Id`,
// `Last-Event-ID`) are taken off before the service sees them, however
// spelled and however many; a legacy request keeps its session id and a
// `Last-Event-ID` of the standalone stream (digits), and loses one naming a
// request's stream. The handler behind a plain layer lists what it sees.
#[tokio::test]
async fn session_fields_the_service_must_not_act_on_never_reach_it() {
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let resource = support::loopback::serve_route(
        &issuer,
        "/mcp",
        |layer| layer.bind_sessions(false),
        support::loopback::seen_headers(),
    )
    .await;
    let token = issuer.token().audience(&resource).sign();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    // (protocol, fields sent, names the service sees, names it does not)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
        &'a [&'a str],
    );
    let cases: [Case; 5] = [
        (
            "2026-07-28",
            &[("Mcp-Session-Id", "s1"), ("last-event-id", "0/1")],
            &[],
            &["mcp-session-id", "last-event-id"],
        ),
        (
            "2026-07-28",
            &[
                ("LAST-EVENT-ID", "7"),
                ("last-event-id", "8"),
                ("MCP-SESSION-ID", "s"),
            ],
            &[],
            &["mcp-session-id", "last-event-id"],
        ),
        (
            "2026-07-28",
            &[("Last-Event-ID", "12")],
            &[],
            &["last-event-id"],
        ),
        (
            "2025-11-25",
            &[("Mcp-Session-Id", "s1"), ("Last-Event-ID", "12")],
            &["mcp-session-id", "last-event-id"],
            &[],
        ),
        (
            "2025-11-25",
            &[("Mcp-Session-Id", "s1"), ("Last-Event-ID", "0/1")],
            &["mcp-session-id"],
            &["last-event-id"],
        ),
    ];
    for (protocol, fields, kept, gone) in cases {
        let mut request = http
            .get(&resource)
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", protocol);
        for (name, value) in fields {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{protocol} {fields:?}");
        let seen = response.text().await.unwrap();
        let seen: Vec<&str> = seen.split(',').collect();
        assert!(seen.contains(&"mcp-protocol-version"), "{seen:?}");
        for name in kept {
            assert!(
                seen.contains(name),
                "{protocol} {fields:?}: {name} kept: {seen:?}"
            );
        }
        for name in gone {
            assert!(
                !seen.contains(name),
                "{protocol} {fields:?}: {name} gone: {seen:?}"
            );
        }
    }
}

// Issue 12 item 3: the operation reader is strict and answers 400 on a body
// it cannot read (duplicate keys) whenever per-operation rules exist.
#[tokio::test]
async fn duplicate_keys_are_400_when_operation_rules_exist() {
    let t = Target::start(Mount::Default).await;
    let meta = attack::MODERN_META;
    let bodies = [
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"read_tool","name":"write_tool","arguments":{{}},{meta}}}}}"#
        ),
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/list","method":"tools/call","params":{{"name":"write_tool","arguments":{{}},{meta}}}}}"#
        ),
    ];
    for body in &bodies {
        let response = send(
            t.mcp_post("/mcp", Some(TokenKind::AliceRead), body)
                .header("MCP-Protocol-Version", MODERN)
                .header("Mcp-Method", "tools/call")
                .header("Mcp-Name", "read_tool"),
        )
        .await;
        let log = t.log.take();
        assert!(!ran(&log, "write_tool"), "{body}: {log:?}");
        assert_eq!(response.status, 400, "{body}: {}", response.summary());
    }
    // The same inside a legacy session.
    let (session, opened) = t.open_session(TokenKind::AliceRead).await;
    let session = session.unwrap_or_else(|| panic!("a session: {}", opened.summary()));
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_tool","name":"write_tool","arguments":{}}}"#;
    let response = send(
        t.mcp_post("/mcp", Some(TokenKind::AliceRead), body)
            .header("MCP-Protocol-Version", LEGACY)
            .header("Mcp-Session-Id", &session),
    )
    .await;
    let log = t.log.take();
    assert!(!ran(&log, "write_tool"), "legacy: {log:?}");
    assert_eq!(response.status, 400, "legacy: {}", response.summary());
}

// The fixture itself: a legacy session and a stateless call work for the
// right token, and the log sees them (so the other tests' "nothing ran"
// means something).
#[tokio::test]
async fn fixture_sanity_allowed_calls_run_and_are_logged() {
    for mount in [Mount::Default, Mount::RootResource, Mount::Custom] {
        let t = Target::start(mount).await;
        let path = t.path();
        let ok = send(modern_call(&t, path, TokenKind::AliceRead, "read_tool")).await;
        assert_eq!(ok.status, 200, "{mount:?}: {}", ok.summary());
        let log = t.log.take();
        assert!(ran(&log, "read_tool"), "{mount:?}: {log:?}");
        let (session, opened) = t.open_session(TokenKind::AliceAll).await;
        let session = session.unwrap_or_else(|| panic!("{mount:?}: {}", opened.summary()));
        assert!(
            t.session_works(TokenKind::AliceAll, &session).await,
            "{mount:?}"
        );
        let raw = t
            .mcp_post(path, Some(TokenKind::AliceAll), &initialize_body(2))
            .header("MCP-Protocol-Version", LEGACY);
        assert_eq!(send(raw).await.status, 200);
    }
}

// Issue 12 item 1: `AuthLayer` in an arbitrary router fails closed. Here
// rmcp is nested at `/rpc` while the resource (and so the layer's idea of
// the MCP path) is `/mcp`: a JSON-RPC POST on a path the layer cannot place
// is judged as MCP (per-tool scopes apply), and so is an `Mcp-Session-Id`
// (only its owner may use it).
#[tokio::test]
async fn auth_layer_in_an_arbitrary_router_judges_unplaced_jsonrpc_as_mcp() {
    let Scoped {
        issuer,
        listener,
        addr,
        resource,
        config,
        log,
        rmcp_service,
    } = Scoped::start("/mcp").await;
    let app = axum::Router::new()
        .nest_service("/rpc", rmcp_service)
        .layer(mcp_oauth2::AuthLayer::new(config).expect("layer"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let token = |sub: &str, scopes: &[&str]| {
        format!(
            "Bearer {}",
            issuer
                .token()
                .subject(sub)
                .audience(&resource)
                .scopes(scopes.iter().copied())
                .sign()
        )
    };
    let post = |auth: &str, body: &str| {
        attack::Raw::new(addr, "POST", "/rpc")
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body)
    };
    // A s:read token calling write_tool (2026-07-28, stateless).
    let reader = token("alice", &[attack::READ]);
    let response = send(
        post(&reader, &modern_tool_call_body(7, "write_tool"))
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "write_tool"),
    )
    .await;
    let ran_now = log.take();
    assert!(!ran(&ran_now, "write_tool"), "{ran_now:?}");
    assert!(
        matches!(response.status, 403 | 404),
        "{}",
        response.summary()
    );
    // bob's legacy session, opened on /rpc, used by alice.
    let bob = token("bob", &[attack::READ, attack::WRITE]);
    let opened = send(post(&bob, &initialize_body(1))).await;
    if let Some(session) = opened.header("mcp-session-id").map(str::to_owned) {
        let _ = send(
            post(&bob, INITIALIZED)
                .header("Mcp-Session-Id", &session)
                .header("MCP-Protocol-Version", LEGACY),
        )
        .await;
        let _ = log.take();
        let alice = token("alice", &[attack::READ, attack::WRITE]);
        let response = send(
            post(&alice, &tool_call_body(5, "open_tool"))
                .header("Mcp-Session-Id", &session)
                .header("MCP-Protocol-Version", LEGACY),
        )
        .await;
        let ran_now = log.take();
        assert!(
            ran_now.is_empty(),
            "alice ran in bob's session: {ran_now:?}"
        );
        assert_eq!(response.status, 404, "{}", response.summary());
    }
    server.abort();
}

// Issue 12: "`subscriptions/listen` ... is not covered by resource scopes".
// MCP 2026-07-28: the resource URIs of `params.notifications.resourceSubscriptions`
// need their resource's scope, exactly as `resources/read` does; the legacy
// `resources/subscribe` too. RFC 6750 section 3.1: 403 naming the scope.
#[tokio::test]
async fn subscribing_to_a_protected_resource_needs_its_scope() {
    let t = Target::start(Mount::Default).await;
    let uri = attack::PRIVATE_URI;
    let meta = attack::MODERN_META;
    let listen = format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{{"notifications":{{"resourceSubscriptions":["res://public/1","{uri}"]}},{meta}}}}}"#
    );
    let response = send(
        t.mcp_post("/mcp", Some(TokenKind::AliceRead), &listen)
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", "subscriptions/listen"),
    )
    .await;
    let log = t.log.take();
    assert!(log.is_empty(), "{log:?}");
    assert_eq!(response.status, 403, "listen: {}", response.summary());
    let challenge = response.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains(attack::PRIVATE),
        "listen: {}",
        response.summary()
    );

    let subscribe = |id: u64| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"resources/subscribe","params":{{"uri":"{uri}"}}}}"#
        )
    };
    for (kind, allowed) in [(TokenKind::AliceRead, false), (TokenKind::AliceAll, true)] {
        let (session, opened) = t.open_session(kind).await;
        let session = session.unwrap_or_else(|| panic!("{kind:?}: {}", opened.summary()));
        let _ = t.log.take();
        let response = send(
            t.mcp_post("/mcp", Some(kind), &subscribe(8))
                .header("MCP-Protocol-Version", LEGACY)
                .header("Mcp-Session-Id", &session),
        )
        .await;
        let log = t.log.take();
        let subscribed = log
            .iter()
            .any(|e| e.what == format!("subscribe:{uri}") && e.subject.as_deref() == Some("alice"));
        assert_eq!(
            subscribed,
            allowed,
            "{kind:?}: {log:?} {}",
            response.summary()
        );
        let expected = if allowed { 200 } else { 403 };
        assert_eq!(
            response.status,
            expected,
            "{kind:?}: {}",
            response.summary()
        );
    }
}

// Issue 12 item 1: the challenge is readable by a browser client at an
// allowed origin (CORS on the rejection itself). So is the correlation id,
// which the body quotes too: a page may send its own `X-Request-Id` (the
// preflight allows it) and reads it back on the answer.
#[tokio::test]
async fn rejections_are_readable_by_an_allowed_origin() {
    let t = Target::start(Mount::Default).await;
    let origin = t.origin();
    let preflight = send(
        t.request("OPTIONS", "/mcp")
            .header("Origin", &origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, x-request-id",
            ),
    )
    .await;
    assert!(
        matches!(preflight.status, 200 | 204),
        "{}",
        preflight.summary()
    );
    assert!(
        preflight.lists("access-control-allow-headers", "x-request-id"),
        "{}",
        preflight.summary()
    );
    let response = send(
        t.mcp_post("/mcp", None, &modern_tool_call_body(1, "open_tool"))
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "open_tool")
            .header("Origin", &origin)
            .header("X-Request-Id", "page-42"),
    )
    .await;
    assert_eq!(response.status, 401, "{}", response.summary());
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert_eq!(response.header("x-request-id"), Some("page-42"));
    for exposed in ["www-authenticate", "x-request-id"] {
        assert!(
            response.lists("access-control-expose-headers", exposed),
            "{exposed}: {}",
            response.summary()
        );
    }
}

// `allowed_origin(..)` adds an origin; any other stays refused, preflights
// included. Only the exact RFC 6454 serialization is allowed (what a browser
// sends): another spelling of an allowed origin (trailing slash, explicit or
// zero-padded default port, uppercase) is not an origin and is refused, as
// docs/security-model.md says, instead of being echoed as it came.
#[tokio::test]
async fn configured_origins_are_allowed_and_others_refused() {
    let t = Target::start_with(Mount::Default, |b| {
        b.allowed_origin("https://app.example.com")
    })
    .await;
    let ok = send(
        modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool")
            .header("Origin", "https://app.example.com"),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.summary());
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let own = t.origin();
    let loopback_slash = format!("{own}/");
    for origin in [
        "https://app.example.com.evil.example",
        "null",
        "http://app.example.com",
        "https://app.example.com/",
        "https://app.example.com:0443",
        "https://app.example.com:443",
        "https://APP.example.com",
        "HTTPS://app.example.com",
        loopback_slash.as_str(),
    ] {
        let refused = send(
            modern_call(&t, "/mcp", TokenKind::AliceAll, "open_tool").header("Origin", origin),
        )
        .await;
        assert_eq!(refused.status, 403, "{origin}: {}", refused.summary());
        assert!(refused.text().contains("origin_not_allowed"));
        let preflight = send(
            t.request("OPTIONS", "/mcp")
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST"),
        )
        .await;
        assert_eq!(preflight.status, 403, "{origin}: {}", preflight.summary());
    }
    let log = t.log.take();
    assert_eq!(log.len(), 1, "{log:?}");
}

// Two `Mcp-Session-Id` fields, one of them another principal's: the layer
// never guesses which one the service acts on (404, nothing runs), in
// either order.
#[tokio::test]
async fn two_session_id_fields_are_404() {
    let t = Target::start(Mount::Default).await;
    let (own, opened) = t.open_session(TokenKind::AliceAll).await;
    let own = own.unwrap_or_else(|| panic!("alice's session: {}", opened.summary()));
    let (bobs, opened) = t.open_session(TokenKind::Bob).await;
    let bobs = bobs.unwrap_or_else(|| panic!("bob's session: {}", opened.summary()));
    let _ = t.log.take();
    for (first, second) in [(&own, &bobs), (&bobs, &own), (&own, &own)] {
        let response = send(
            t.mcp_post(
                "/mcp",
                Some(TokenKind::AliceAll),
                &tool_call_body(5, "open_tool"),
            )
            .header("MCP-Protocol-Version", LEGACY)
            .header("Mcp-Session-Id", first)
            .header("mcp-session-id", second),
        )
        .await;
        assert_eq!(response.status, 404, "{}", response.summary());
    }
    let log = t.log.take();
    assert!(log.is_empty(), "{log:?}");
    assert!(t.session_works(TokenKind::AliceAll, &own).await);
    assert!(t.session_works(TokenKind::Bob, &bobs).await);
}

// Found from outside: `Proxy-Authorization` (and a gateway's
// `X-Forwarded-Authorization`) reached the handlers, which saw whatever
// credential a client or a proxy put there. Every field that relays a
// caller's credential is taken off like `Authorization`, whatever its
// case and however many times it is sent, over every method; the unsafe
// opt-out keeps them.
#[tokio::test]
async fn relayed_credentials_never_reach_the_handler() {
    const RELAYED: [&str; 20] = [
        "proxy-authorization",
        "x-forwarded-authorization",
        "x-forwarded-access-token",
        "x-auth-request-access-token",
        "x-amzn-oidc-accesstoken",
        // Found from outside in the second round: Azure App Service's and
        // others' spellings; a rule on the name's ending catches them.
        "x-ms-token-aad-access-token",
        "x-ms-token-aad-id-token",
        "x-ms-token-aad-refresh-token",
        "x-original-authorization",
        "x-amzn-remapped-authorization",
        "x-authorization",
        "proxy_authorization",
        "x-ms-token-aad-access_token",
        "x-goog-iap-jwt-assertion",
        "cf-access-jwt-assertion",
        "x-amzn-oidc-data",
        // Found from outside in a third round: token fields by other names.
        "x-auth-token",
        "x-oauth-token",
        "authentication",
        "x_auth_token",
    ];
    let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    for forward in [false, true] {
        let resource = support::loopback::serve_route(
            &issuer,
            "/mcp",
            |layer| layer.forward_authorization_header_to_handlers_unsafe(forward),
            support::loopback::seen_headers(),
        )
        .await;
        let token = issuer.token().audience(&resource).sign();
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            // Each alone, in another case, twice.
            for name in RELAYED {
                let upper = name.to_ascii_uppercase();
                let response = http
                    .request(method.clone(), &resource)
                    .header("authorization", format!("Bearer {token}"))
                    .header("accept", "text/event-stream")
                    .header("mcp-protocol-version", "2025-11-25")
                    .header(upper.as_str(), format!("Bearer {token}"))
                    .header(name, "Basic dXNlcjpwYXNz")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{method} {name}");
                let seen = response.text().await.unwrap();
                let seen: Vec<&str> = seen.split(',').collect();
                assert!(seen.contains(&"accept"), "{seen:?}");
                assert_eq!(seen.contains(&name), forward, "{method} {name}: {seen:?}");
                assert_eq!(
                    seen.contains(&"authorization"),
                    forward,
                    "{method} {name}: {seen:?}"
                );
            }
            // All at once, beside other fields that stay.
            let mut request = http
                .request(method.clone(), &resource)
                .header("authorization", format!("Bearer {token}"))
                .header("accept", "text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .header("x-forwarded-for", "192.0.2.1")
                .header("x-authorization-hint", "kept")
                // An application's own credentials stay.
                .header("cookie", "app=1")
                .header("x-api-key", "app-key");
            for name in RELAYED {
                request = request.header(name, "secret");
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{method}");
            let seen = response.text().await.unwrap();
            let seen: Vec<&str> = seen.split(',').collect();
            assert!(seen.contains(&"x-forwarded-for"), "{seen:?}");
            assert!(seen.contains(&"x-authorization-hint"), "{seen:?}");
            assert!(seen.contains(&"cookie"), "{seen:?}");
            assert!(seen.contains(&"x-api-key"), "{seen:?}");
            for name in RELAYED {
                assert_eq!(seen.contains(&name), forward, "{method} {name}: {seen:?}");
            }
        }
    }
}

// rmcp's own 405 (a method it does not serve) and 406 (an `Accept` that
// does not list both `application/json` and `text/event-stream`, as MCP's
// transport asks) were plain text without a code or the request id, the
// last plain-text refusals on the MCP route (found from outside): now the
// crate's JSON refusal (`error`, `error_description`, `reason`,
// `request_id`), `Allow` kept, on every mount and spelling the router sends
// to the service; nothing runs, and the served call beside them is untouched.
#[tokio::test]
async fn rmcps_405_and_406_are_json_refusals_with_reason_and_request_id() {
    for mount in [Mount::Default, Mount::Custom, Mount::RootResource] {
        let t = Target::start(mount).await;
        let path = mount.path();
        // The mount path is the one spelling the router sends to the
        // service (`/mcp/` and the rest are its 404, `routes`' other tests).
        {
            let target = path;
            let mut cases = Vec::new();
            for method in ["PUT", "PATCH"] {
                for version in [MODERN, LEGACY] {
                    cases.push((
                        format!("{method} {target} {version}"),
                        t.request(method, target)
                            .header("Authorization", &t.bearer(TokenKind::AliceAll))
                            .header("Content-Type", "application/json")
                            .header("Accept", "application/json, text/event-stream")
                            .header("MCP-Protocol-Version", version)
                            .body(modern_tool_call_body(7, "open_tool")),
                        405,
                        "method_not_allowed",
                    ));
                }
            }
            for accept in [
                Some("*/*"),
                Some("application/json"),
                Some("text/event-stream"),
                Some("text/html"),
                None,
            ] {
                let mut raw = t
                    .request("POST", target)
                    .header("Authorization", &t.bearer(TokenKind::AliceAll))
                    .header("Content-Type", "application/json")
                    .header("MCP-Protocol-Version", MODERN)
                    .header("Mcp-Method", "tools/call")
                    .header("Mcp-Name", "open_tool")
                    .body(modern_tool_call_body(7, "open_tool"));
                if let Some(accept) = accept {
                    raw = raw.header("Accept", accept);
                }
                cases.push((
                    format!("POST {target} Accept {accept:?}"),
                    raw,
                    406,
                    "not_acceptable",
                ));
            }
            for (case, raw, status, reason) in cases {
                let response = send(raw).await;
                assert_eq!(response.status, status, "{case}: {}", response.summary());
                assert_eq!(
                    response.header("content-type"),
                    Some("application/json"),
                    "{case}"
                );
                let answer: serde_json::Value = serde_json::from_slice(&response.body)
                    .unwrap_or_else(|e| panic!("{case}: {e}: {}", response.summary()));
                assert_eq!(answer["error"], "invalid_request", "{case}: {answer}");
                assert_eq!(answer["reason"], reason, "{case}: {answer}");
                assert!(
                    answer["error_description"]
                        .as_str()
                        .is_some_and(|d| d.len() > 20),
                    "{case}: {answer}"
                );
                assert!(response.header("x-request-id").is_some(), "{case}");
                assert_eq!(
                    answer["request_id"].as_str(),
                    response.header("x-request-id"),
                    "{case}: {answer}"
                );
                assert_eq!(response.header("cache-control"), Some("no-store"), "{case}");
                if status == 405 {
                    // A stateless revision is served by POST alone; a
                    // legacy request by the session's three methods.
                    let allow = if case.ends_with(MODERN) {
                        "POST"
                    } else {
                        "GET, POST, DELETE"
                    };
                    assert_eq!(response.header("allow"), Some(allow), "{case}");
                }
                let log = t.log.take();
                assert!(log.is_empty(), "{case}: {log:?}");
            }
        }
        // Every 405 to a request of the stateless revision names POST
        // alone (found from outside: HEAD, PUT, a plain OPTIONS were told
        // `GET, POST, DELETE`, then a GET or DELETE was refused `POST`).
        for method in ["GET", "DELETE", "HEAD", "OPTIONS", "PUT", "TRACE"] {
            let response = send(
                t.request(method, path)
                    .header("Authorization", &t.bearer(TokenKind::AliceAll))
                    .header("Accept", "application/json, text/event-stream")
                    .header("MCP-Protocol-Version", MODERN),
            )
            .await;
            let case = format!("{method} {path} {MODERN}");
            assert_eq!(response.status, 405, "{case}: {}", response.summary());
            assert_eq!(response.header("allow"), Some("POST"), "{case}");
        }
        assert!(t.log.take().is_empty());
        // A GET (an event stream) is told to accept the event stream, which
        // is all it needs (found from outside: told to list both types).
        let get = send(
            t.request("GET", path)
                .header("Authorization", &t.bearer(TokenKind::AliceAll))
                .header("Accept", "application/json")
                .header("MCP-Protocol-Version", LEGACY),
        )
        .await;
        if get.status == 406 {
            let answer: serde_json::Value = serde_json::from_slice(&get.body).unwrap();
            assert_eq!(answer["reason"], "not_acceptable", "{answer}");
            let says = answer["error_description"].as_str().unwrap();
            assert!(
                says.contains("text/event-stream") && !says.contains("both"),
                "{says}"
            );
        } else {
            // rmcp may judge the missing session first: never plain text.
            assert_eq!(
                get.header("content-type"),
                Some("application/json"),
                "{}",
                get.summary()
            );
        }
        // Without a token, the method is still the token's business first.
        let tokenless = send(t.request("PUT", path).body("{}")).await;
        assert_eq!(tokenless.status, 401, "{}", tokenless.summary());
        let served = send(modern_call(&t, path, TokenKind::AliceAll, "open_tool")).await;
        assert_eq!(served.status, 200, "{}", served.summary());
        assert!(ran(&t.log.take(), "open_tool"));
    }
}

// A body broken on the wire (a chunk size that is no number, trailers past
// hyper's bound) leaves nothing after it that can be read as a request:
// hyper closes the connection after the 400, and the answer says so
// (`Connection: close`, as the 408 and 413 say it; found from outside: it
// said nothing, and the client's next request on the connection got no
// answer). Nothing runs.
#[tokio::test]
async fn a_body_broken_on_the_wire_is_answered_connection_close() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let t = Target::start(Mount::Default).await;
    let bearer = t.bearer(TokenKind::AliceAll);
    for broken in [
        "zz\r\n{}\r\n0\r\n\r\n".to_owned(),
        format!("2\r\n{{}}\r\n0\r\nX-Pad: {}\r\n\r\n", "p".repeat(20_000)),
    ] {
        let mut stream = tokio::net::TcpStream::connect(t.addr).await.unwrap();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: {bearer}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: {MODERN}\r\nMcp-Method: tools/call\r\nMcp-Name: open_tool\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
            t.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(broken.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut got),
        )
        .await;
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        let case = &broken[..broken.len().min(20)];
        assert!(text.starts_with("http/1.1 400"), "{case}: {text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{case}: {text}");
        assert!(text.contains("body_unreadable"), "{case}: {text}");
        assert!(t.log.take().is_empty(), "{case}");
    }
}
