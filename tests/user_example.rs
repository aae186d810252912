//! How to test your own protected tool with the testing kit (feature
//! `testing`): the same example as the documentation of
//! `mcp_oauth2::testing`, as a test file you can copy.
//!
//! ```toml
//! [dev-dependencies]
//! mcp-oauth2 = { path = "../mcp-oauth2", features = ["testing"] } # not on crates.io yet
//! rmcp = { version = "3.11", features = ["client", "transport-streamable-http-client-reqwest"] }
//! ```
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthConfig, AuthContext, McpServer};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};

/// The server under test: one tool that greets the caller.
#[derive(Clone)]
struct Hello {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Hello {
    #[tool(description = "Greets the caller")]
    async fn hello(&self, auth: AuthContext) -> String {
        format!("hello, {}", auth.subject())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {}

#[tokio::test]
async fn hello_greets_the_token_subject() -> Result<(), Box<dyn std::error::Error>> {
    // 1. An issuer and the protected server, both on loopback.
    let issuer = TestIssuer::start().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let resource = format!("http://{}/mcp", listener.local_addr()?);
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()?;
    let server = McpServer::builder()
        .auth(config)
        .service(|| {
            Ok(Hello {
                tool_router: Hello::tool_router(),
            })
        })
        .build()?;
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));

    // 2. A token for alice, bound to this server, and a client sending it.
    let token = issuer.token().subject("alice").audience(&resource).sign();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(resource).auth_header(token),
    );
    let client = ().serve(transport).await?;

    // 3. The tool knows who called.
    let result = client
        .call_tool(CallToolRequestParams::new("hello"))
        .await?;
    let text = result.content[0].as_text().map(|t| t.text.as_str());
    assert_eq!(text, Some("hello, alice"));
    Ok(())
}
