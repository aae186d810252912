//! Shared fixtures for the integration tests: a real issuer (TestIssuer), a
//! real protected rmcp server on 127.0.0.1:0, and a real rmcp client.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{
    AuthConfigBuilder, AuthContext, AuthErrorKind, BearerToken, HandleKeys, JwtVerifier, McpServer,
    RequestContextExt, TokenVerifier,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig};
use rmcp::service::{RequestContext, RoleClient, RoleServer, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{
    ClientLifecycleMode, ClientServiceExt, ServerHandler, ServiceExt, tool, tool_handler,
    tool_router,
};
use tokio_util::sync::CancellationToken;

use super::loopback::bind_with_config;

/// A tool argument.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Arg {
    pub value: String,
}

/// A tool argument that may be absent (the first round of a
/// multi-round-trip request).
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct OptionalArg {
    pub value: Option<String>,
}

fn handle_keys() -> &'static HandleKeys {
    static KEYS: std::sync::OnceLock<HandleKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| HandleKeys::generate().expect("random"))
}

/// A multi-round-trip tool: without `value` it answers with `requestState`
/// sealed for ("tools/call", `name`); with `value` it opens that state.
fn round_trip(
    auth: &AuthContext,
    name: &str,
    state: Option<&str>,
) -> Result<String, rmcp::ErrorData> {
    let keys = handle_keys();
    match state {
        None => auth
            .seal_request_state(
                keys,
                "tools/call",
                name,
                "page=2",
                std::time::Duration::from_secs(60),
            )
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None)),
        Some(state) => auth
            .open_request_state(keys, "tools/call", name, state)
            .map_err(|e| rmcp::ErrorData::invalid_params(e.to_string(), None)),
    }
}

/// What `chatty_carry_on` and `quiet_carry_on` answer after their failed
/// step-up: never to be sent.
pub const STEP_UP_SECRET: &str = "the-secret-export";

/// Opened by a test to let `gated_echo` answer.
pub static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Told by `chatty_ask_then_wait` once its step-up has failed.
pub static ASKED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Streams a log message of the request, then asks for `notes:export`
/// (which the test tokens lack) and carries on whatever the answer.
// Logging notifications are deprecated (SEP-2577) but still sent by rmcp.
#[allow(deprecated)]
async fn log_then_fail_to_step_up(ctx: &RequestContext<RoleServer>) {
    let message = rmcp::model::LoggingMessageNotificationParam::new(
        rmcp::model::LoggingLevel::Info,
        serde_json::json!("exporting"),
    );
    let _ = ctx.peer.notify_logging_message(message).await;
    if let Ok(auth) = ctx.auth() {
        let _ = auth.require_scopes(["notes:export"]);
    }
}

/// A server whose tools report the caller.
#[derive(Clone)]
pub struct EchoServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl EchoServer {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "subject via ctx.auth()")]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> Result<String, rmcp::ErrorData> {
        let auth = ctx.auth()?;
        Ok(serde_json::json!({
            "subject": auth.subject(),
            "client_id": auth.client_id(),
            "scopes": auth.scopes(),
            "issuer": auth.issuer(),
            "tenant": auth.tenant(),
            "audience": auth.audience(),
            "token_id": auth.token_id(),
            "expires_at": auth.expires_at_unix(),
            "custom": auth.claim("tenant"),
        })
        .to_string())
    }

    #[tool(description = "mints a handle bound to the caller")]
    async fn mint(
        &self,
        auth: AuthContext,
        Parameters(arg): Parameters<Arg>,
    ) -> Result<String, rmcp::ErrorData> {
        auth.mint_handle(handle_keys(), &arg.value)
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
    }

    #[tool(description = "opens a handle")]
    async fn open(
        &self,
        auth: AuthContext,
        Parameters(arg): Parameters<Arg>,
    ) -> Result<String, rmcp::ErrorData> {
        auth.open_handle(handle_keys(), &arg.value)
            .map_err(|e| rmcp::ErrorData::invalid_params(e.to_string(), None))
    }

    #[tool(description = "two rounds: returns requestState, then opens it")]
    async fn export_notes(
        &self,
        auth: AuthContext,
        Parameters(arg): Parameters<OptionalArg>,
    ) -> Result<String, rmcp::ErrorData> {
        round_trip(&auth, "export_notes", arg.value.as_deref())
    }

    #[tool(description = "the same for another tool name")]
    async fn import_notes(
        &self,
        auth: AuthContext,
        Parameters(arg): Parameters<OptionalArg>,
    ) -> Result<String, rmcp::ErrorData> {
        round_trip(&auth, "import_notes", arg.value.as_deref())
    }

    #[tool(description = "needs notes:read inside the handler (hierarchy-aware)")]
    async fn read_inside(&self, auth: AuthContext) -> Result<String, rmcp::ErrorData> {
        auth.require_scopes(["notes:read"])?;
        Ok("read ok".into())
    }

    #[tool(
        description = "streams a log message, then asks for notes:export (late step-up after bytes were sent)"
    )]
    // Logging notifications are deprecated (SEP-2577) but still sent by
    // rmcp; any notification before the answer serves this test.
    #[allow(deprecated)]
    async fn chatty_export(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<String, rmcp::ErrorData> {
        let message = rmcp::model::LoggingMessageNotificationParam::new(
            rmcp::model::LoggingLevel::Info,
            serde_json::json!("exporting"),
        );
        ctx.peer
            .notify_logging_message(message)
            .await
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))?;
        ctx.auth()?.require_scopes(["notes:export"])?;
        Ok("exported".into())
    }

    #[tool(
        description = "streams a log message, ignores its failed ask for notes:export and answers a secret"
    )]
    async fn chatty_carry_on(&self, ctx: RequestContext<RoleServer>) -> String {
        log_then_fail_to_step_up(&ctx).await;
        STEP_UP_SECRET.to_owned()
    }

    #[tool(
        description = "streams a log message, asks for notes:export, tells ASKED, then answers only after a minute"
    )]
    async fn chatty_ask_then_wait(&self, ctx: RequestContext<RoleServer>) -> String {
        log_then_fail_to_step_up(&ctx).await;
        ASKED.notify_one();
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        STEP_UP_SECRET.to_owned()
    }

    #[tool(description = "ignores its failed ask for notes:export and answers a secret")]
    async fn quiet_carry_on(&self, auth: AuthContext) -> String {
        let _ = auth.require_scopes(["notes:export"]);
        STEP_UP_SECRET.to_owned()
    }

    #[tool(description = "answers once the test opens GATE")]
    async fn gated_echo(&self) -> String {
        GATE.notified().await;
        "released".to_owned()
    }

    #[tool(description = "asks for notes:export before answering (late step-up)")]
    async fn quiet_export(&self, auth: AuthContext) -> Result<String, rmcp::ErrorData> {
        auth.require_scopes(["notes:export", "notes:read"])?;
        Ok("exported".into())
    }

    #[tool(description = "subject via an AuthContext argument")]
    async fn whoami_arg(&self, auth: AuthContext) -> String {
        auth.subject().to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A running issuer + protected server.
pub struct Harness {
    pub issuer: TestIssuer,
    pub resource: String,
    pub base: String,
    /// The server's counters.
    pub metrics: mcp_oauth2::Metrics,
    pub ct: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

impl Harness {
    /// Starts with the default config (plus `tweak`).
    pub async fn start(tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder) -> Self {
        let issuer = TestIssuer::start().await.expect("issuer");
        Self::start_with_issuer(issuer, tweak).await
    }

    pub async fn start_with_issuer(
        issuer: TestIssuer,
        tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
    ) -> Self {
        let (listener, resource, config) = bind_with_config(&issuer, tweak).await;
        let base = resource.trim_end_matches("/mcp").to_owned();
        let (ct, metrics) = serve_echo(listener, config);
        Self {
            issuer,
            resource,
            base,
            metrics,
            ct,
        }
    }

    /// A valid token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.issuer
            .token()
            .subject(sub)
            .audience(&self.resource)
            .sign()
    }

    /// A valid token for the default subject with these scopes.
    pub fn scoped_token(&self, scopes: &[&str]) -> String {
        self.issuer
            .token()
            .audience(&self.resource)
            .scopes(scopes.iter().copied())
            .sign()
    }

    /// POSTs a JSON-RPC body with optional extra headers.
    pub async fn post(
        &self,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(&self.resource)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.as_ref().to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }
}

pub type Client = RunningService<RoleClient, ()>;

/// `McpServer` with `config` around the echo service, serving on
/// `listener` until its cancellation token (returned, with its counters) is
/// cancelled.
#[allow(dead_code)] // not every test binary serves the echo service itself
pub fn serve_echo(
    listener: tokio::net::TcpListener,
    config: mcp_oauth2::AuthConfig,
) -> (CancellationToken, mcp_oauth2::Metrics) {
    let server = McpServer::builder()
        .auth(config)
        .service(|| Ok(EchoServer::new()))
        .build()
        .expect("server");
    let ct = server.cancellation_token();
    let metrics = server.metrics();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    (ct, metrics)
}

/// A real rmcp client with a bearer token, using the legacy (initialize +
/// session) lifecycle.
pub async fn legacy_client(
    url: &str,
    token: &str,
) -> Result<Client, rmcp::service::ClientInitializeError> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned()),
    );
    ().serve(transport).await
}

/// A real rmcp client with a bearer token, using the stateless 2026-07-28 lifecycle.
pub async fn stateless_client(
    url: &str,
    token: &str,
) -> Result<Client, rmcp::service::ClientInitializeError> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned()),
    );
    ().serve_with_lifecycle(
        transport,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
}

/// Calls a tool and returns its text.
pub async fn call_text(client: &Client, tool: &'static str) -> Result<String, rmcp::ServiceError> {
    call_with(client, tool, None).await
}

/// Calls a tool with a `value` argument and returns its text.
pub async fn call_with(
    client: &Client,
    tool: &'static str,
    value: Option<&str>,
) -> Result<String, rmcp::ServiceError> {
    let mut params = CallToolRequestParams::new(tool);
    if let Some(v) = value {
        let mut args = serde_json::Map::new();
        args.insert("value".into(), serde_json::Value::String(v.to_owned()));
        params = params.with_arguments(args);
    }
    let result = client.call_tool(params).await?;
    if result.is_error == Some(true) {
        return Err(rmcp::ServiceError::UnexpectedResponse);
    }
    Ok(tool_text(&result))
}

/// The text blocks of a tool result, joined.
pub fn tool_text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// Calls `tool` without arguments (bounded) and returns (isError, text):
/// for tests that look at tool errors too.
pub async fn call_result(client: &Client, tool: &'static str) -> (bool, String) {
    let result = bounded(client.call_tool(CallToolRequestParams::new(tool)))
        .await
        .expect("tools/call");
    (result.is_error == Some(true), tool_text(&result))
}

/// POSTs the JSON-RPC `body` to the MCP endpoint `url` as a client does,
/// with `token` as Bearer (bounded).
#[allow(dead_code)] // not every test binary posts this way
pub async fn post_bearer(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &'static str,
) -> reqwest::Response {
    let request = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    bounded(request.send()).await.expect("request")
}

/// Runs `f` with a timeout so no test can hang.
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), f)
        .await
        .expect("the test step took more than 30 s")
}

/// The `WWW-Authenticate` header of a response.
pub fn challenge(resp: &reqwest::Response) -> Vec<(String, String)> {
    let value = resp
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .expect("ASCII");
    mcp_oauth2::testing::parse_bearer_challenge(value).expect("a Bearer challenge")
}

/// Looks up one challenge parameter.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Verifies `token` with `v`, keeping only the error's kind.
pub async fn verify(v: &JwtVerifier, token: &str) -> Result<AuthContext, AuthErrorKind> {
    v.verify(BearerToken::new(token))
        .await
        .map_err(|e| e.kind())
}

/// Seconds since the Unix epoch, for `exp`/`iat`/`nbf` claims.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
