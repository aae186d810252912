//! Every Rust snippet of the README, compiled: each one is written below,
//! line for line, inside the little code it needs around it (the imports,
//! the variables it names). The test `every_readme_snippet_is_compiled_here`
//! fails when a README snippet is not found here, so a snippet edited in
//! the README must be edited here too, where the compiler checks it against
//! the crate's API. The wrappers are built, never run (they would reach
//! example hosts).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]
// The snippets are kept as the README shows them (one-line structs, long
// chains), and the wrappers only exist to be type-checked.
#![allow(dead_code, unused_imports, unused_variables, clippy::all)]

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

// "Usage": the whole program.
#[rustfmt::skip]
mod usage {
use mcp_oauth2::{AuthConfig, AuthContext, McpServer};
use rmcp::{ServerHandler, handler::server::router::tool::ToolRouter, tool, tool_handler, tool_router};
use std::sync::Arc;

#[derive(Clone)]
struct Notes { tool_router: Arc<ToolRouter<Self>> } // built once, shared

#[tool_router]
impl Notes {
    #[tool(description = "Who am I?")]
    async fn whoami(&self, auth: AuthContext) -> String { auth.subject().to_owned() }
}
#[tool_handler(router = self.tool_router)]
impl ServerHandler for Notes {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = AuthConfig::builder()
        .issuer("https://auth.example.com/realms/main")
        .resource("https://mcp.example.com/mcp")
        .build()?;
    let router = Arc::new(Notes::tool_router()); // once: it checks every tool name
    McpServer::builder().auth(config).bind("0.0.0.0:8080")
        .service(move || Ok(Notes { tool_router: Arc::clone(&router) }))
        .build()?.serve().await?;
    Ok(())
}
}

// "Usage": the plain tower layer.
#[rustfmt::skip]
fn tower_layer(config: mcp_oauth2::AuthConfig) -> Result {
    use axum::routing::get;
    use mcp_oauth2::AuthContext;
let app = axum::Router::new()
    .route("/api", get(|auth: AuthContext| async move { auth.subject().to_owned() }))
    .layer(mcp_oauth2::AuthLayer::new(config)?); // also serves the metadata
    let _: axum::Router = app;
    Ok(())
}

// "Usage": rmcp's own service behind the plain layer, with the
// resource's host allowed.
#[rustfmt::skip]
mod rmcp_behind_the_layer {
use mcp_oauth2::AuthContext;
use std::sync::Arc;
use rmcp::{ServerHandler, handler::server::router::tool::ToolRouter, tool, tool_handler, tool_router};

#[derive(Clone)]
struct Notes { tool_router: Arc<ToolRouter<Self>> } // built once, shared

#[tool_router]
impl Notes {
    #[tool(description = "Who am I?")]
    async fn whoami(&self, auth: AuthContext) -> String { auth.subject().to_owned() }
}
#[tool_handler(router = self.tool_router)]
impl ServerHandler for Notes {}

fn app(config: mcp_oauth2::AuthConfig) -> super::Result {
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
let rmcp_config = StreamableHttpServerConfig::default().with_allowed_hosts(config.allowed_hosts());
let router = Arc::new(Notes::tool_router());
config.check_tool_names(&Notes { tool_router: Arc::clone(&router) })?; // rules name real tools
let service = StreamableHttpService::new(
    move || Ok(Notes { tool_router: Arc::clone(&router) }),
    std::sync::Arc::new(LocalSessionManager::default()),
    rmcp_config,
);
let app = axum::Router::new()
    .nest_service("/mcp", service)
    .layer(mcp_oauth2::AuthLayer::new(config)?);
    let _: axum::Router = app;
    Ok(())
}
}

// "Usage": an app layer for another resource, on the app's routes alone,
// beside `McpServer::into_router()`.
#[rustfmt::skip]
fn app_layer_for_another_resource(
    api_config: mcp_oauth2::AuthConfig,
    mcp_server: mcp_oauth2::McpServer,
    api: fn() -> std::future::Ready<&'static str>,
) -> Result {
    use axum::{Router, routing::get};
    use mcp_oauth2::AuthLayer;
let api_layer = AuthLayer::new(api_config)?.root_metadata(false);
let app = Router::new()
    .route("/api", get(api))
    .route_layer(api_layer.clone())
    .merge(api_layer.metadata_router())   // its challenges name this document
    .merge(mcp_server.into_router());
    let _: Router = app;
    Ok(())
}

// "Scopes and step-up".
#[rustfmt::skip]
fn scopes() -> Result {
    use mcp_oauth2::AuthConfig;
let config = AuthConfig::builder()
    .issuer("https://auth.example.com")
    .resource("https://mcp.example.com/mcp")
    .scopes_supported(["notes:read"])                 // the basic scopes, advertised
    .tool_scopes("list_notes", ["notes:read"])
    .tool_scopes("add_note", ["notes:write"])
    .resource_scopes("notes://{id}", ["notes:read"])  // exact URI, {template} or prefix*
    .prompt_scopes("summarize", ["notes:read"])
    .method_scopes("tools/list", ["catalog"])          // any JSON-RPC method
    .scope_implies("notes:write", ["notes:read"])      // hierarchy, transitive
    .scope_wildcards(true)                             // notes:* grants notes:anything
    .build()?;
    let _ = config;
    Ok(())
}

// "Scopes and step-up": requirements computed from the arguments.
#[rustfmt::skip]
fn computed_scopes() -> Result {
    use mcp_oauth2::{AuthConfig, AuthContext, OperationRequest};
    let _ = AuthConfig::builder()
        .issuer("https://auth.example.com")
        .resource("https://mcp.example.com/mcp")
.tool_scopes("read_note", ["notes:read"])
.tool_scopes_with("read_note", |call: &OperationRequest<'_>, auth: &AuthContext| {
    Ok(match call.argument_str("folder") {
        Some("shared") => vec![],
        _ => vec!["notes:private".to_owned()],   // fail closed: any other value needs it
    })
})
.resource_scopes_with("files://{+path}", |call, _| Ok(if call.target().contains("/hr/") {
    vec!["files:hr".into()] } else { vec![] }))
        .build()?;
    Ok(())
}

// "Scopes and step-up": the late step-up inside a tool.
#[rustfmt::skip]
mod late_step_up {
use std::sync::Arc;
use mcp_oauth2::AuthContext;
use rmcp::{handler::server::router::tool::ToolRouter, tool, tool_router};

#[derive(Clone)]
struct Notes { tool_router: Arc<ToolRouter<Self>> } // built once, shared

fn serialize(notes: Vec<String>) -> String { notes.join("\n") }

impl Notes {
    fn load(&self, _subject: &str) -> Result<Vec<String>, rmcp::ErrorData> { Ok(Vec::new()) }
}

#[tool_router]
impl Notes {
#[tool(description = "Export all your notes")]
async fn export_notes(&self, auth: AuthContext) -> Result<String, rmcp::ErrorData> {
    let notes = self.load(auth.subject())?;
    auth.require_scopes(["notes:export"])?;      // learned only now
    Ok(serialize(notes))
}
}
}

// "Handles bound to the caller".
#[rustfmt::skip]
fn handles(auth: mcp_oauth2::AuthContext, secret: Vec<u8>) -> Result {
    use std::time::Duration;
    use mcp_oauth2::{HandleKey, HandleKeys};
let keys = HandleKeys::new(HandleKey::from_secret_with_id("2026-12", &secret)?); // or HandleKeys::generate()?
let handle = auth.mint_handle(&keys, "cart-42")?;          // one hour; mint_handle_with_ttl for others
let cart = auth.open_handle(&keys, &handle)?;             // fails for any other principal, or once expired
let state = auth.seal_request_state(&keys, "tools/call", "export_notes", "page=2", Duration::from_secs(300))?;
let page = auth.open_request_state(&keys, "tools/call", "export_notes", &state)?;
    let _ = (cart, page);
    Ok(())
}

// "Opaque tokens: introspection".
#[rustfmt::skip]
fn introspection() -> Result {
    use std::time::Duration;
    use mcp_oauth2::AuthConfig;
use mcp_oauth2::verify::{ClientAuthMethod, IntrospectionSettings};
let config = AuthConfig::builder()
    .issuer("https://auth.example.com")
    .resource("https://mcp.example.com/mcp")
    .introspection(IntrospectionSettings::new("rs-client-id", "rs-client-secret")
        .auth_method(ClientAuthMethod::ClientSecretBasic)   // or ClientSecretPost
        .cache_ttl(Duration::from_secs(60)))                // endpoint: discovered, or .endpoint(url)
    .build()?;
    let _ = config;
    Ok(())
}

// "DPoP".
#[rustfmt::skip]
fn dpop(shared_secret: [u8; 32]) -> Result {
    use std::time::Duration;
    use mcp_oauth2::AuthConfig;
use mcp_oauth2::{DpopMode, DpopPolicy};
let config = AuthConfig::builder()
    .issuer("https://auth.example.com")
    .resource("https://mcp.example.com/mcp")
    .dpop(DpopPolicy::default()
        .mode(DpopMode::Required)          // Allowed (default) | Required | Off
        .max_age(Duration::from_secs(120)) // the `iat` window, at most 300 s
        .nonce(true)                       // demand server nonces
        .nonce_secret(shared_secret))      // the same on every replica
    .build()?;
    let _ = config;
    Ok(())
}

// "Calling other APIs: token exchange".
#[rustfmt::skip]
async fn token_exchange(auth: mcp_oauth2::AuthContext, secret: String) -> Result {
    use std::time::Duration;
use mcp_oauth2::{DownstreamClient, ExchangeRequest, ExchangeSettings, TokenExchanger};
// Once, at start-up (the token endpoint is discovered from the caller's issuer, or `.endpoint(url)`):
let exchanger = TokenExchanger::new(ExchangeSettings::new("mcp-server", secret))?;
let http = DownstreamClient::new(Duration::from_secs(10))?;

// In a tool (`auth: AuthContext`, errors convert to rmcp errors with `?`):
let request = ExchangeRequest::audience("https://api.example").scopes(["read"]);
let token = exchanger.exchange_for(&auth, request).await?;
let me = http.get("https://api.example/me", &token).await?.text().await;
    let _ = me;
    Ok(())
}

// "Several issuers".
#[rustfmt::skip]
fn issuer_policies() -> Result {
use mcp_oauth2::{Algorithm, AuthConfig, IssuerPolicy, TypPolicy};

let config = AuthConfig::builder()
    .issuer("https://strict.example.com")
    .issuer("https://legacy.example.com")
    .issuer_policy(
        "https://legacy.example.com",
        IssuerPolicy::new()
            .typ_policy(TypPolicy::AllowJwt)  // algorithms, typ, audience
            .accept_audience("api://legacy")  // rule, audiences, scope claims
            .scope_claims(["scp"])
            .algorithms([Algorithm::RS256]),
    )
    .resource("https://mcp.example.com/mcp")
    .build()?;
    let _ = config;
    Ok(())
}

// "Shared state (several replicas)".
#[rustfmt::skip]
fn shared_store() -> Result {
    use mcp_oauth2::AuthConfig;
use std::sync::Arc;
use mcp_oauth2::store::RedisStore;

let store = RedisStore::new("redis://redis.internal:6379/0")?  // checks the URL; connects on first use
    .timeout(std::time::Duration::from_millis(250))          // per operation (the default)
    .prefix("prod-eu:");                                    // optional: deployments sharing one Redis
let config = AuthConfig::builder()
    /* issuer, resource, ... */
    .shared_store(Arc::new(store))
    .build()?;
    let _ = config;
    Ok(())
}

// "Testing your server".
#[rustfmt::skip]
mod testing_kit {
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthContext, McpServer};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};

#[derive(Clone)]
struct Hello { tool_router: ToolRouter<Self> }

#[tool_router]
impl Hello {
    fn new() -> Self { Self { tool_router: Self::tool_router() } }
    #[tool(description = "Greets the caller")]
    async fn hello(&self, auth: AuthContext) -> String { format!("hello, {}", auth.subject()) }
}
#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {}

async fn walk() -> super::Result {
let issuer = TestIssuer::start().await?;
let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
let resource = format!("http://{}/mcp", listener.local_addr()?);
let config = AuthConfig::builder().issuer(issuer.issuer()).resource(&resource)
    .allow_insecure_http_for_loopback(true).build()?;
let server = McpServer::builder().auth(config).service(|| Ok(Hello::new())).build()?; // Hello::new(): its ToolRouter
tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
let token = issuer.token().subject("alice").audience(&resource).scopes(["notes:read"]).sign();
let client = ().serve(StreamableHttpClientTransport::from_config(
    StreamableHttpClientTransportConfig::with_uri(resource).auth_header(token))).await?;
assert_eq!(client.call_tool(CallToolRequestParams::new("hello")).await?.content[0]
    .as_text().map(|t| t.text.as_str()), Some("hello, alice"));
    Ok(())
}

// This one runs: it needs nothing beyond loopback.
#[tokio::test]
async fn the_testing_kit_snippet_runs() {
    walk().await.unwrap();
}
}

/// The README's Rust snippets, each as its lines with the indentation and
/// blank lines dropped.
fn readme_snippets() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut snippets = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some(Vec::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => snippets.push(current.take().unwrap()),
            Some(lines) => {
                let line = line.trim();
                if !line.is_empty() {
                    lines.push(line.to_owned());
                }
            }
        }
    }
    assert!(current.is_none(), "a README code block is not closed");
    snippets
}

#[test]
fn every_readme_snippet_is_compiled_here() {
    let here: Vec<&str> = include_str!("readme_snippets.rs")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let snippets = readme_snippets();
    assert!(
        snippets.len() >= 12,
        "found only {} snippets",
        snippets.len()
    );
    for snippet in snippets {
        let found = here
            .windows(snippet.len())
            .any(|window| window.iter().zip(&snippet).all(|(a, b)| a == b));
        assert!(
            found,
            "this README snippet is not in tests/readme_snippets.rs (add it there, inside \
             what it needs to compile):\n{}",
            snippet.join("\n")
        );
    }
}
