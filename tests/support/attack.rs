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
    CompleteRequestParams, CompleteResult, CompletionInfo, GetSkillRequestParams, GetSkillResult,
    InitializeRequestParams, InitializeResult, ReadResourceDirectoryRequestParams,
    ReadResourceDirectoryResult, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Reference, Resource, ResourceContents, ServerCapabilities, ServerConfig,
    SubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

pub use super::raw_http::{Raw, RawResponse};

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
        w if w.starts_with("resource:res://private/")
            || w.starts_with("subscribe:res://private/")
            || w.starts_with("complete:res://private/")
            || w.starts_with("directory:res://private")
            || w.starts_with("skill:res://private/") =>
        {
            &[PRIVATE]
        }
        _ => &[],
    }
}

/// One operation that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// `read_tool`, `write_tool`, `open_tool`, `initialize`, `resource:<uri>`,
    /// `subscribe:<uri>`, `complete:<template uri or prompt name>`,
    /// `directory:<uri>` (SEP-2640 `resources/directory/read`),
    /// `skill:<uri>` (`skills/get`).
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
                .enable_resources_subscribe()
                .enable_completions()
                .enable_skills_with_directory_read()
                .build(),
        )
    }

    // SEP-2640 (rmcp 3.11): the children of a directory resource. The
    // answer lists what the directory holds, so its rules apply.
    async fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceDirectoryResult, rmcp::ErrorData> {
        self.record(&format!("directory:{}", request.uri), &context);
        Ok(ReadResourceDirectoryResult::with_all_items(vec![
            Resource::new(PRIVATE_URI, "secret-1"),
        ]))
    }

    // SEP-2640: one skill's manifest, named by its `SKILL.md` resource URI.
    // Recorded, then refused (the log is the oracle).
    async fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetSkillResult, rmcp::ErrorData> {
        self.record(&format!("skill:{}", request.uri), &context);
        Err(rmcp::ErrorData::invalid_params("no such skill", None))
    }

    // Argument completion of a prompt or a resource template: what it
    // answers may reveal what the prompt or the resources hold.
    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, rmcp::ErrorData> {
        let what = match &request.r#ref {
            Reference::Resource(template) => template.uri.clone(),
            Reference::Prompt(prompt) => prompt.name.clone(),
            _ => String::new(),
        };
        self.record(&format!("complete:{what}"), &context);
        let info = CompletionInfo::new(vec!["secret-1".into()])
            .map_err(|e| rmcp::ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
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

    // Legacy `resources/subscribe` (deprecated in rmcp for 2026-07-28, which
    // uses `subscriptions/listen`): per-resource rules must cover it too.
    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), rmcp::ErrorData> {
        self.record(&format!("subscribe:{}", request.uri), &context);
        Ok(())
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

/// A legacy session's GET event stream at `url`, opened with `token`,
/// open while the response lives.
#[allow(dead_code)] // not every test binary opens one
pub async fn legacy_event_stream(url: &str, token: &str, session: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", LEGACY)
        .send()
        .await
        .expect("GET")
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
