//! The attack fixture (issue 12): a real `McpServer` whose tools are
//! protected only by `tool_scopes` (no check inside the tools), in front of a
//! real [`TestIssuer`], on 127.0.0.1:0; an execution log that every tool
//! (and `initialize`, and `resources/read`) appends to; tokens for an
//! attacker (`alice`) and a victim (`bob`); and a raw HTTP/1.1 client that
//! can send what reqwest cannot (duplicate headers, exact path bytes).
//!
//! The log, not the status codes, is the oracle: it says which operation ran,
//! for whom (the `AuthContext` the tool saw), with which `Mcp-Session-Id`
//! request headers, and inside which legacy session instance (the subject
//! that sent that instance's `initialize`).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthConfigBuilder, McpServer, RequestContextExt};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    InitializeRequestParams, InitializeResult, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The scope `read_tool` needs.
pub const READ: &str = "s:read";
/// The scope `write_tool` needs.
pub const WRITE: &str = "s:write";
/// The scope resources under `res://private/` need.
pub const PRIVATE: &str = "s:private";
/// The protected resource the bodies read.
pub const PRIVATE_URI: &str = "res://private/1";
/// The legacy protocol revision the session helper speaks.
pub const LEGACY: &str = "2025-11-25";
/// The stateless protocol revision.
pub const MODERN: &str = "2026-07-28";
/// How long a request may take to get its response head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(15);

/// The scopes an operation recorded in the log needs.
pub fn required_scopes(what: &str) -> &'static [&'static str] {
    match what {
        "read_tool" => &[READ],
        "write_tool" => &[WRITE],
        w if w.starts_with("resource:res://private/") => &[PRIVATE],
        _ => &[],
    }
}

/// One operation that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// `read_tool`, `write_tool`, `open_tool`, `initialize`, `resource:<uri>`.
    pub what: String,
    /// The subject of the `AuthContext` the handler saw (`None`: none).
    pub subject: Option<String>,
    /// That context's scopes.
    pub scopes: Vec<String>,
    /// Every `Mcp-Session-Id` field of the HTTP request that carried it.
    pub sessions: Vec<String>,
    /// The subject that initialized the service instance (legacy session),
    /// `None` for a stateless (per-request) instance.
    pub creator: Option<String>,
    /// The request target rmcp saw.
    pub uri: String,
}

/// The shared execution log.
#[derive(Debug, Clone, Default)]
pub struct ExecLog(Arc<Mutex<Vec<Exec>>>);

impl ExecLog {
    fn push(&self, exec: Exec) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(exec);
    }

    /// Takes every entry logged so far.
    pub fn take(&self) -> Vec<Exec> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of every entry logged so far.
    pub fn snapshot(&self) -> Vec<Exec> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Tools with no authorization code of their own: only `tool_scopes`
/// protects them.
#[derive(Clone)]
pub struct ScopedServer {
    tool_router: ToolRouter<Self>,
    log: ExecLog,
    creator: Arc<Mutex<Option<String>>>,
}

#[tool_router]
impl ScopedServer {
    pub fn new(log: ExecLog) -> Self {
        Self {
            tool_router: Self::tool_router(),
            log,
            creator: Arc::default(),
        }
    }

    fn record(&self, what: &str, ctx: &RequestContext<RoleServer>) {
        let auth = ctx.auth().ok();
        let parts = ctx.extensions.get::<http::request::Parts>();
        self.log.push(Exec {
            what: what.to_owned(),
            subject: auth.map(|a| a.subject().to_owned()),
            scopes: auth
                .map(|a| a.scopes().iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            sessions: parts
                .map(|p| {
                    p.headers
                        .get_all("mcp-session-id")
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            creator: self
                .creator
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            uri: parts.map(|p| p.uri.to_string()).unwrap_or_default(),
        });
    }

    #[tool(description = "needs s:read (declared with tool_scopes only)")]
    async fn read_tool(&self, ctx: RequestContext<RoleServer>) -> String {
        self.record("read_tool", &ctx);
        "read".into()
    }

    #[tool(description = "needs s:write (declared with tool_scopes only)")]
    async fn write_tool(&self, ctx: RequestContext<RoleServer>) -> String {
        self.record("write_tool", &ctx);
        "written".into()
    }

    #[tool(description = "needs no scope, only a verified token")]
    async fn open_tool(&self, ctx: RequestContext<RoleServer>) -> String {
        self.record("open_tool", &ctx);
        "open".into()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ScopedServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, rmcp::ErrorData> {
        let subject = context.auth().ok().map(|a| a.subject().to_owned());
        *self.creator.lock().unwrap_or_else(|e| e.into_inner()) = subject;
        self.record("initialize", &context);
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, rmcp::ErrorData> {
        self.record(&format!("resource:{}", request.uri), &context);
        Ok(ReadResourceResult::new(vec![ResourceContents::text("secret", request.uri)]).into())
    }
}

/// How the server under test is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// Default mount `/mcp`, resource `http://127.0.0.1:PORT/mcp`.
    Default,
    /// Default mount `/mcp`, root resource `http://127.0.0.1:PORT`.
    RootResource,
    /// `.path("/api/v1/mcp")`, resource `http://127.0.0.1:PORT/api/v1/mcp`.
    Custom,
}

impl Mount {
    /// The path rmcp is mounted at.
    pub fn path(self) -> &'static str {
        match self {
            Mount::Default | Mount::RootResource => "/mcp",
            Mount::Custom => "/api/v1/mcp",
        }
    }
}

/// Who a token speaks for, and whether it is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// alice, `s:read` only.
    AliceRead,
    /// alice, `s:write` only.
    AliceWrite,
    /// alice, every scope.
    AliceAll,
    /// alice, no scope at all.
    AliceNone,
    /// bob (another principal), every scope.
    Bob,
    /// alice, every scope, expired an hour ago.
    Expired,
    /// alice, every scope, issued for another resource.
    WrongAudience,
    /// alice, every scope, signed by a key the server does not know.
    ForeignIssuer,
    /// Not a JWT.
    Garbage,
}

impl TokenKind {
    /// Every kind.
    pub const ALL: [TokenKind; 9] = [
        TokenKind::AliceRead,
        TokenKind::AliceWrite,
        TokenKind::AliceAll,
        TokenKind::AliceNone,
        TokenKind::Bob,
        TokenKind::Expired,
        TokenKind::WrongAudience,
        TokenKind::ForeignIssuer,
        TokenKind::Garbage,
    ];

    /// What a verified token of this kind grants: (subject, scopes);
    /// `None` for a token that must never be accepted.
    pub fn grant(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            TokenKind::AliceRead => Some(("alice", &[READ])),
            TokenKind::AliceWrite => Some(("alice", &[WRITE])),
            TokenKind::AliceAll => Some(("alice", &[READ, WRITE, PRIVATE])),
            TokenKind::AliceNone => Some(("alice", &[])),
            TokenKind::Bob => Some(("bob", &[READ, WRITE, PRIVATE])),
            TokenKind::Expired
            | TokenKind::WrongAudience
            | TokenKind::ForeignIssuer
            | TokenKind::Garbage => None,
        }
    }
}

/// A running protected server, its issuer, its log and its tokens.
pub struct Target {
    pub issuer: TestIssuer,
    /// A second issuer the server does not trust.
    pub foreign: TestIssuer,
    pub mount: Mount,
    pub resource: String,
    pub addr: SocketAddr,
    pub log: ExecLog,
    tokens: Vec<(TokenKind, String)>,
    ct: CancellationToken,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

/// The policy under test: scopes declared only in the configuration.
pub fn scoped_rules(b: AuthConfigBuilder) -> AuthConfigBuilder {
    b.tool_scopes("read_tool", [READ])
        .tool_scopes("write_tool", [WRITE])
        .resource_scopes("res://private/{id}", [PRIVATE])
}

impl Target {
    /// Starts the server with [`scoped_rules`] plus `tweak`.
    pub async fn start(mount: Mount) -> Self {
        Self::start_with(mount, |b| b).await
    }

    /// Starts the server with [`scoped_rules`], then `tweak` applied to the
    /// configuration builder.
    pub async fn start_with(
        mount: Mount,
        tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
    ) -> Self {
        let issuer = TestIssuer::start().await.expect("issuer");
        let foreign = TestIssuer::start().await.expect("foreign issuer");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let resource = match mount {
            Mount::Default => format!("http://{addr}/mcp"),
            Mount::RootResource => format!("http://{addr}"),
            Mount::Custom => format!("http://{addr}/api/v1/mcp"),
        };
        let config: AuthConfig = tweak(scoped_rules(
            AuthConfig::builder()
                .issuer(issuer.issuer())
                .resource(&resource)
                .allow_insecure_http_for_loopback(true),
        ))
        .build()
        .expect("config");
        let log = ExecLog::default();
        let factory_log = log.clone();
        let mut builder = McpServer::builder().auth(config);
        if mount == Mount::Custom {
            builder = builder.path(mount.path());
        }
        let server = builder
            .service(move || Ok(ScopedServer::new(factory_log.clone())))
            .build()
            .expect("server");
        let ct = server.cancellation_token();
        tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        let now = now();
        let mut tokens = Vec::new();
        for kind in TokenKind::ALL {
            let token = match kind {
                TokenKind::Garbage => "not-a-jwt".to_owned(),
                TokenKind::Expired => issuer
                    .token()
                    .subject("alice")
                    .audience(&resource)
                    .scopes([READ, WRITE, PRIVATE])
                    .issued_at(now - 7200)
                    .expires_at(now - 3600)
                    .sign(),
                TokenKind::WrongAudience => issuer
                    .token()
                    .subject("alice")
                    .audience("http://127.0.0.1:1/other")
                    .scopes([READ, WRITE, PRIVATE])
                    .sign(),
                TokenKind::ForeignIssuer => foreign
                    .token()
                    .subject("alice")
                    .audience(&resource)
                    .scopes([READ, WRITE, PRIVATE])
                    .sign(),
                _ => {
                    let (sub, scopes) = kind.grant().unwrap_or(("nobody", &[]));
                    issuer
                        .token()
                        .subject(sub)
                        .audience(&resource)
                        .scopes(scopes.iter().copied())
                        .sign()
                }
            };
            tokens.push((kind, token));
        }
        Self {
            issuer,
            foreign,
            mount,
            resource,
            addr,
            log,
            tokens,
            ct,
        }
    }

    /// The token of `kind`.
    pub fn token(&self, kind: TokenKind) -> &str {
        self.tokens
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| t.as_str())
            .unwrap_or("missing")
    }

    /// `Authorization: Bearer <token of kind>`.
    pub fn bearer(&self, kind: TokenKind) -> String {
        format!("Bearer {}", self.token(kind))
    }

    /// The mount path (`/mcp` or `/api/v1/mcp`).
    pub fn path(&self) -> &'static str {
        self.mount.path()
    }

    /// The origin of the resource (`http://127.0.0.1:PORT`).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A raw request to this server.
    pub fn request(&self, method: &str, target: &str) -> Raw {
        Raw::new(self.addr, method, target)
    }

    /// A POST of `body` to `target` with the headers an MCP client sends
    /// (`Content-Type`, `Accept`) and `auth` as the bearer token.
    pub fn mcp_post(&self, target: &str, auth: Option<TokenKind>, body: &str) -> Raw {
        let mut raw = self
            .request("POST", target)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body);
        if let Some(kind) = auth {
            raw = raw.header("Authorization", &self.bearer(kind));
        }
        raw
    }

    /// A legacy session: `initialize` (protocol 2025-11-25) then
    /// `notifications/initialized` on the mount path with `kind`'s token.
    /// `None` when the server refused to open one; the response is returned
    /// either way.
    pub async fn open_session(&self, kind: TokenKind) -> (Option<String>, RawResponse) {
        self.open_session_at(self.path(), kind).await
    }

    /// [`open_session`](Self::open_session) on an exact request target.
    pub async fn open_session_at(
        &self,
        target: &str,
        kind: TokenKind,
    ) -> (Option<String>, RawResponse) {
        let response = self
            .mcp_post(target, Some(kind), &initialize_body(1))
            .send()
            .await
            .unwrap_or_else(|e| RawResponse::failed(&e));
        let Some(id) = response
            .header("mcp-session-id")
            .filter(|_| response.status == 200)
        else {
            return (None, response);
        };
        let id = id.to_owned();
        let _ = self
            .mcp_post(target, Some(kind), INITIALIZED)
            .header("Mcp-Session-Id", &id)
            .header("MCP-Protocol-Version", LEGACY)
            .send()
            .await;
        (Some(id), response)
    }

    /// Calls `tool` inside legacy session `session` with `kind`'s token.
    pub async fn call_in_session(
        &self,
        target: &str,
        kind: TokenKind,
        session: &str,
        tool: &str,
    ) -> RawResponse {
        self.mcp_post(target, Some(kind), &tool_call_body(9, tool))
            .header("Mcp-Session-Id", session)
            .header("MCP-Protocol-Version", LEGACY)
            .send()
            .await
            .unwrap_or_else(|e| RawResponse::failed(&e))
    }

    /// Whether `kind` can still use `session` (a tools/call of `open_tool`
    /// runs, for that subject, inside an instance that subject created).
    pub async fn session_works(&self, kind: TokenKind, session: &str) -> bool {
        let _ = self.log.take();
        let response = self
            .call_in_session(self.path(), kind, session, "open_tool")
            .await;
        let subject = kind.grant().map(|(s, _)| s);
        let ran = self.log.take();
        response.status == 200
            && ran.len() == 1
            && ran.iter().all(|e| {
                e.what == "open_tool" && e.subject.as_deref() == subject && e.creator == e.subject
            })
    }
}

/// An `initialize` request (protocol 2025-11-25).
pub fn initialize_body(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{LEGACY}","capabilities":{{}},"clientInfo":{{"name":"attacker","version":"1"}}}}}}"#
    )
}

/// The `notifications/initialized` notification.
pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// A legacy `tools/call` of `tool` without arguments.
pub fn tool_call_body(id: u64, tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

/// The `_meta` a 2026-07-28 request carries.
pub const MODERN_META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

/// A 2026-07-28 `tools/call` of `tool`.
pub fn modern_tool_call_body(id: u64, tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}},{MODERN_META}}}}}"#
    )
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ---------------------------------------------------------------------------

/// A request written byte for byte: the target as given, header fields in
/// order (duplicates allowed). `Host` (unless one is given),
/// `Content-Length` and `Connection: close` are added.
#[derive(Debug, Clone)]
pub struct Raw {
    addr: SocketAddr,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Stop reading an event stream once its head is in (a GET stream never ends).
    pub head_only_for_streams: bool,
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was read to its end.
    pub complete: bool,
}

impl RawResponse {
    fn failed(e: &str) -> Self {
        Self {
            status: 0,
            headers: vec![("x-client-error".into(), e.to_owned())],
            ..Self::default()
        }
    }

    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field named `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC messages of the body: the body itself when it is JSON,
    /// the `data:` lines of an event stream otherwise.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let text = self.text();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            return match v {
                serde_json::Value::Array(items) => items,
                v => vec![v],
            };
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    }

    /// A one-line summary for failure messages.
    pub fn summary(&self) -> String {
        let mut text = self.text();
        text.truncate(300);
        format!("{} {:?} {text:?}", self.status, self.headers)
    }
}

impl Raw {
    pub fn new(addr: SocketAddr, method: &str, target: &str) -> Self {
        Self {
            addr,
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            head_only_for_streams: true,
        }
    }

    /// Appends a header field (a second one of the same name is a second field).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    /// The request's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(format!("Host: {}\r\n", self.addr).as_bytes());
        }
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// The request's bytes with every `Authorization` value cut to its
    /// first characters, for failure messages.
    pub fn redacted(&self) -> String {
        let mut copy = self.clone();
        for (k, v) in &mut copy.headers {
            if k.eq_ignore_ascii_case("authorization") {
                let keep: String = v.chars().take(14).collect();
                *v = format!("{keep}...[redacted]");
            }
        }
        String::from_utf8_lossy(&copy.to_bytes()).into_owned()
    }

    /// Sends the request on a new connection. `Err` when no response head
    /// arrived within [`HEAD_TIMEOUT`] (a hang) or the connection failed.
    pub async fn send(&self) -> Result<RawResponse, String> {
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(&self.to_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = tokio::time::timeout(HEAD_TIMEOUT, async {
            loop {
                if let Some(i) = find(&buf, b"\r\n\r\n") {
                    return Ok(i);
                }
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err(format!(
                        "connection closed before a response head ({} bytes)",
                        buf.len()
                    ));
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        })
        .await
        .map_err(|_| format!("no response head within {HEAD_TIMEOUT:?}: the request hangs"))??;
        let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut response = RawResponse {
            status,
            headers,
            body: buf.get(head_end + 4..).unwrap_or_default().to_vec(),
            complete: false,
        };
        let is_stream = response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if self.method == "HEAD" || status == 204 || status == 304 {
            response.complete = true;
            return Ok(response);
        }
        if is_stream && self.method == "GET" && self.head_only_for_streams {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: Option<usize> = response
            .header("content-length")
            .and_then(|v| v.parse().ok());
        let mut raw = std::mem::take(&mut response.body);
        let done = |raw: &[u8]| match (length, chunked) {
            (Some(n), _) => raw.len() >= n,
            (None, true) => dechunk(raw).is_some(),
            (None, false) => false,
        };
        let read_body = tokio::time::timeout(HEAD_TIMEOUT, async {
            while !done(&raw) {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return length.is_none() && !chunked,
                    Ok(n) => raw.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                }
            }
            true
        })
        .await;
        response.complete = matches!(read_body, Ok(true));
        response.body = if chunked {
            dechunk(&raw).unwrap_or_else(|| lenient_dechunk(&raw))
        } else {
            raw
        };
        Ok(response)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body of a complete chunked message; `None` while it is incomplete.
fn dechunk(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size_text = String::from_utf8_lossy(rest.get(..line_end)?).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = rest.get(line_end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The chunks received so far of an unfinished chunked body.
fn lenient_dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(line_end) = find(rest, b"\r\n") {
        let Some(size) = rest
            .get(..line_end)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
        else {
            break;
        };
        let Some(after) = rest.get(line_end + 2..) else {
            break;
        };
        let take = size.min(after.len());
        out.extend_from_slice(after.get(..take).unwrap_or_default());
        rest = after.get(size + 2..).unwrap_or_default();
        if size == 0 || rest.is_empty() {
            break;
        }
    }
    out
}
